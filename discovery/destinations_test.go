package discovery

import (
	"net/netip"
	"slices"
	"testing"

	"github.com/lanmesh/lanmesh/internal/ifaddr"
)

func TestBeaconDestinations(t *testing.T) {
	ifs := []ifaddr.Interface{
		{Name: "lo", Up: true, Loopback: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}},
		{Name: "eth0", Up: true, Broadcast: true, Multicast: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("10.1.2.3/24")}},
		{Name: "eth1", Up: false, Broadcast: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("10.9.0.3/16")}},
	}
	loop := netip.MustParseAddrPort("127.255.255.255:9000")
	ap := netip.MustParseAddrPort
	tests := []struct {
		name string
		cfg  func(*Config)
		// ifs are what the system reports for cfg.Interfaces; ifaddr.List
		// has already applied the restriction.
		ifs  []ifaddr.Interface
		want []netip.AddrPort
	}{
		{"all interfaces", func(c *Config) {}, ifs,
			[]netip.AddrPort{ap("10.1.2.255:8222"), ap("255.255.255.255:8222")}},
		{"restricted: no limited broadcast", func(c *Config) { c.Interfaces = []string{"eth0"} }, ifs[1:2],
			[]netip.AddrPort{ap("10.1.2.255:8222")}},
		{"loopback only: nothing without destinations", func(c *Config) { c.Interfaces = []string{"lo"} }, ifs[:1], nil},
		{"destinations replace everything", func(c *Config) { c.Destinations = []netip.AddrPort{loop} }, ifs,
			[]netip.AddrPort{loop}},
		{"broadcast off", func(c *Config) { c.Broadcast = false; c.Destinations = []netip.AddrPort{loop} }, ifs, nil},
		{"interface down", func(c *Config) { c.Interfaces = []string{"eth1"} }, ifs[2:], nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg := DefaultConfig()
			tt.cfg(&cfg)
			got := beaconDestinations(&cfg, tt.ifs)
			if !slices.Equal(got, tt.want) {
				t.Fatalf("destinations %v, want %v", got, tt.want)
			}
		})
	}
}
