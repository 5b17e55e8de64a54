package discovery

import (
	"net/netip"
	"testing"

	"github.com/lanmesh/lanmesh/internal/ifaddr"
)

func TestUseLoopback(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Mesh, cfg.Port = "m", 7000
	cfg.UseLoopback(9999)
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	if cfg.MDNS || cfg.BeaconPort != 9999 || len(cfg.Destinations) != 1 ||
		cfg.Destinations[0].String() != "127.255.255.255:9999" || len(cfg.Interfaces) != 1 {
		t.Fatalf("%+v", cfg)
	}
	// Nothing it computes leaves the machine, whatever the interfaces.
	ifs := []ifaddr.Interface{
		{Name: "eth0", Up: true, Broadcast: true, Multicast: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("10.1.2.3/24")}},
	}
	for _, d := range beaconDestinations(&cfg, ifs) {
		if !d.Addr().IsLoopback() {
			t.Errorf("destination %v is not on loopback", d)
		}
	}
}
