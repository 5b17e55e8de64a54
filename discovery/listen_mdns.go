package discovery

import (
	"context"
	"encoding/base64"
	"io"
	"log"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/hashicorp/mdns"

	"github.com/lanmesh/lanmesh/internal/ifaddr"
	"github.com/lanmesh/lanmesh/meshkey"
)

// BrowseMDNS asks once, on each named interface (every suitable one when
// names is empty), for the lanmesh nodes of every mesh that publish
// service by mDNS, and returns what they claim after timeout. A browse
// is a question, not an announcement: nobody takes the asker for a node.
// Keyed nodes publish only a sealed beacon: kr opens those of the named
// meshes, as NewListener does; the others are opaque (see Heard.Verified).
func BrowseMDNS(ctx context.Context, service string, names []string, timeout time.Duration, kr meshkey.Keyring, meshes ...string) ([]Heard, error) {
	opener := newKeyOpener(kr, meshes)
	ifs, err := ifaddr.List(names)
	if err != nil {
		return nil, err
	}
	quiet := log.New(io.Discard, "", 0)
	entries := make(chan *mdns.ServiceEntry, 64)
	var wg sync.WaitGroup
	for _, it := range ifs {
		if !it.Up || !it.Multicast || it.Loopback || len(it.Prefixes) == 0 {
			continue
		}
		ifi, err := net.InterfaceByIndex(it.Index)
		if err != nil {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			mdns.QueryContext(ctx, &mdns.QueryParam{Service: service, Domain: "local", Timeout: timeout,
				Interface: ifi, Entries: entries, DisableIPv6: true, Logger: quiet})
		}()
	}
	go func() { wg.Wait(); close(entries) }()
	var out []Heard
	for e := range entries {
		if h, ok := heardOfEntry(e, opener); ok {
			out = append(out, h)
		}
	}
	return out, ctx.Err()
}

// heardOfEntry reads an mDNS answer as a Listener reads a beacon.
func heardOfEntry(e *mdns.ServiceEntry, opener *keyOpener) (Heard, bool) {
	if !hasField(e.InfoFields, txtVersion+"="+strconv.Itoa(KeyedBeaconVersion)) {
		s, ok := parseEntry(e)
		if !ok {
			return Heard{}, false
		}
		return Heard{Beacon: Beacon{ID: s.ID, Instance: s.Instance, Port: s.Addr.Port(), Mesh: s.Mesh, Name: s.Name},
			From: s.Addr, At: time.Now()}, true
	}
	ip, ok := entryAddr(e)
	if !ok {
		return Heard{}, false
	}
	var sig string
	for _, f := range e.InfoFields {
		if v, ok := strings.CutPrefix(f, txtSig+"="); ok {
			sig = v
		}
	}
	if len(sig) > base64.RawStdEncoding.EncodedLen(MaxBeaconLen) {
		return Heard{}, false
	}
	raw, err := base64.RawStdEncoding.DecodeString(sig)
	if err != nil {
		return Heard{}, false
	}
	h, ok := opener.open(raw)
	if !ok || (h.Verified && h.Port != uint16(e.Port)) {
		return Heard{}, false
	}
	h.From, h.At = netip.AddrPortFrom(ip, uint16(e.Port)), time.Now()
	if !h.Verified {
		h.ID = OpaqueID(ip, h.KeyID)
	}
	return h, true
}

func hasField(fields []string, f string) bool {
	for _, x := range fields {
		if strings.EqualFold(x, f) {
			return true
		}
	}
	return false
}
