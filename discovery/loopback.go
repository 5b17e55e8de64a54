package discovery

import (
	"net"
	"net/netip"
)

// LoopbackBroadcast stands in for a LAN broadcast on one machine: datagrams
// sent to it (from a socket with SO_BROADCAST) reach every socket bound to
// the beacon port on this host, and nothing leaves the machine.
var LoopbackBroadcast = netip.AddrFrom4([4]byte{127, 255, 255, 255})

// UseLoopback keeps discovery on this machine: beacons go only to
// LoopbackBroadcast on beaconPort, only the loopback interface is used, and
// mDNS is off (loopback interfaces carry no multicast). It is for trying
// several nodes on one machine, demos and tests.
func (c *Config) UseLoopback(beaconPort int) {
	c.BeaconPort = beaconPort
	c.Interfaces = []string{loopbackInterface()}
	c.Destinations = []netip.AddrPort{netip.AddrPortFrom(LoopbackBroadcast, uint16(beaconPort))}
	c.MDNS = false
}

// loopbackInterface names the machine's loopback interface: lo on Linux,
// lo0 on macOS and the BSDs.
func loopbackInterface() string {
	ifs, err := net.Interfaces()
	if err == nil {
		for _, i := range ifs {
			if i.Flags&net.FlagLoopback != 0 && i.Flags&net.FlagUp != 0 {
				return i.Name
			}
		}
	}
	return "lo"
}
