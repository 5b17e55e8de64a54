// Package ifaddr holds the interface and IPv4 broadcast-address math that
// discovery needs: which interfaces are worth beaconing on, the directed
// broadcast address of a prefix, and whether an address is on-link.
//
// It imports only the standard library so that it stays trivially testable.
package ifaddr

import (
	"net"
	"net/netip"
	"slices"
)

// Interface is a snapshot of one network interface: what discovery needs to
// decide where to send and whom to believe.
type Interface struct {
	Name      string
	Index     int
	Up        bool
	Loopback  bool
	Broadcast bool // the interface can send IPv4 broadcasts
	Multicast bool // the interface can send IPv4 multicast (mDNS)
	// PointToPoint: a link to one other end (most VPNs, PPP), where a
	// broadcast reaches nobody else.
	PointToPoint bool
	// Prefixes are the interface's IPv4 addresses with their masks.
	// IPv6 is left out on purpose: beacons are IPv4 broadcasts.
	Prefixes []netip.Prefix
}

// DirectedBroadcast returns the directed broadcast address of an IPv4
// prefix (host bits all ones). Prefixes of /31 and /32 have no broadcast
// address (RFC 3021 point-to-point links and single hosts), nor has IPv6;
// ok is false for those.
func DirectedBroadcast(p netip.Prefix) (addr netip.Addr, ok bool) {
	a := p.Addr().Unmap()
	if !a.Is4() || !p.IsValid() {
		return netip.Addr{}, false
	}
	bits := p.Bits()
	if bits > 30 {
		return netip.Addr{}, false
	}
	b := a.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	v |= ^uint32(0) >> uint(bits)
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)}), true
}

// OnLink reports whether addr lies inside one of the prefixes.
func OnLink(prefixes []netip.Prefix, addr netip.Addr) bool {
	addr = addr.Unmap()
	for _, p := range prefixes {
		if p.Contains(addr) {
			return true
		}
	}
	return false
}

// List reads the system's interfaces. When names is not empty only the
// named interfaces are returned (in system order); names that do not exist
// are skipped, because an interface may appear later and discovery re-reads
// the list periodically.
func List(names []string) ([]Interface, error) {
	ifs, err := net.Interfaces()
	if err != nil {
		return nil, err
	}
	out := make([]Interface, 0, len(ifs))
	for _, ifi := range ifs {
		if len(names) > 0 && !slices.Contains(names, ifi.Name) {
			continue
		}
		addrs, err := ifi.Addrs()
		if err != nil {
			// An interface that vanished between the two calls is simply
			// not there any more.
			continue
		}
		out = append(out, fromNet(ifi, addrs))
	}
	return out, nil
}

func fromNet(ifi net.Interface, addrs []net.Addr) Interface {
	it := Interface{
		Name:      ifi.Name,
		Index:     ifi.Index,
		Up:        ifi.Flags&net.FlagUp != 0,
		Loopback:  ifi.Flags&net.FlagLoopback != 0,
		Broadcast: ifi.Flags&net.FlagBroadcast != 0,
		Multicast: ifi.Flags&net.FlagMulticast != 0,

		PointToPoint: ifi.Flags&net.FlagPointToPoint != 0,
	}
	for _, a := range addrs {
		ipn, ok := a.(*net.IPNet)
		if !ok {
			continue
		}
		ip, ok := netip.AddrFromSlice(ipn.IP)
		if !ok {
			continue
		}
		ip = ip.Unmap()
		if !ip.Is4() {
			continue
		}
		ones, bits := ipn.Mask.Size()
		if bits == 128 {
			ones -= 96
		}
		if ones < 0 || ones > 32 {
			continue
		}
		it.Prefixes = append(it.Prefixes, netip.PrefixFrom(ip, ones))
	}
	return it
}

// BroadcastTargets returns the directed broadcast addresses of every up,
// broadcast-capable interface with an IPv4 address, without duplicates.
func BroadcastTargets(ifs []Interface) []netip.Addr {
	var out []netip.Addr
	for _, it := range ifs {
		if !it.Up || !it.Broadcast || it.Loopback {
			continue
		}
		for _, p := range it.Prefixes {
			if b, ok := DirectedBroadcast(p); ok && !slices.Contains(out, b) {
				out = append(out, b)
			}
		}
	}
	return out
}

// AllPrefixes returns the IPv4 prefixes of the given interfaces that are up.
func AllPrefixes(ifs []Interface) []netip.Prefix {
	var out []netip.Prefix
	for _, it := range ifs {
		if it.Up {
			out = append(out, it.Prefixes...)
		}
	}
	return out
}
