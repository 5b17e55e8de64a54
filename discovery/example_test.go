package discovery_test

import (
	"fmt"
	"net/netip"

	"github.com/lanmesh/lanmesh/discovery"
)

// Discovery kept on the loopback interface, as in tests and demos: beacons
// go to 127.255.255.255 only and mDNS is off. On a LAN, leave Interfaces,
// Destinations and MDNS at their defaults.
func Example() {
	cfg := discovery.DefaultConfig()
	cfg.Mesh = "demo"
	cfg.Port = 7946 // the TCP port peers should dial
	cfg.BeaconPort = 48222
	cfg.Interfaces = []string{"lo"}
	cfg.Destinations = []netip.AddrPort{netip.MustParseAddrPort("127.255.255.255:48222")}
	cfg.MDNS = false
	cfg.OnEvent = func(ev discovery.Event) {
		// One goroutine, in order; keep it short.
		fmt.Println(ev.Kind, ev.Peer.Name, ev.Peer.Addr)
	}
	d, err := discovery.New(cfg)
	if err != nil {
		fmt.Println(err)
		return
	}
	defer d.Close()
	for _, p := range d.Peers() {
		fmt.Println(p.Name, p.Addr, p.Via)
	}
}
