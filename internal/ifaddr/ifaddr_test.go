package ifaddr

import (
	"net/netip"
	"testing"
)

func TestDirectedBroadcast(t *testing.T) {
	tests := []struct {
		prefix string
		want   string // "" means no broadcast address
	}{
		{"10.1.2.3/8", "10.255.255.255"},
		{"172.16.5.4/16", "172.16.255.255"},
		{"192.168.1.77/24", "192.168.1.255"},
		{"10.77.0.1/24", "10.77.0.255"},
		{"192.168.1.5/30", "192.168.1.7"},
		{"192.168.1.4/30", "192.168.1.7"},
		{"10.0.0.129/25", "10.0.0.255"},
		{"10.0.0.1/0", "255.255.255.255"},
		{"192.168.1.4/31", ""},
		{"192.168.1.4/32", ""},
		{"fe80::1/64", ""},
		{"::ffff:10.2.3.4/104", ""}, // a mapped prefix is IPv6 arithmetic; refuse it
	}
	for _, tt := range tests {
		p := netip.MustParsePrefix(tt.prefix)
		got, ok := DirectedBroadcast(p)
		if tt.want == "" {
			if ok {
				t.Errorf("DirectedBroadcast(%s) = %v, want none", tt.prefix, got)
			}
			continue
		}
		if !ok || got != netip.MustParseAddr(tt.want) {
			t.Errorf("DirectedBroadcast(%s) = %v, %v; want %s", tt.prefix, got, ok, tt.want)
		}
	}
}

func TestBroadcastTargetsAndOnLink(t *testing.T) {
	ifs := []Interface{
		{Name: "lo", Up: true, Loopback: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("127.0.0.1/8")}},
		{Name: "eth0", Up: true, Broadcast: true, Prefixes: []netip.Prefix{
			netip.MustParsePrefix("10.9.0.2/24"), netip.MustParsePrefix("10.9.0.3/24"),
		}},
		{Name: "eth1", Up: false, Broadcast: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("10.8.0.2/24")}},
		{Name: "tun0", Up: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("10.7.0.2/32")}},
	}
	got := BroadcastTargets(ifs)
	if len(got) != 1 || got[0] != netip.MustParseAddr("10.9.0.255") {
		t.Fatalf("BroadcastTargets = %v, want [10.9.0.255]", got)
	}
	pre := AllPrefixes(ifs)
	if !OnLink(pre, netip.MustParseAddr("10.9.0.200")) {
		t.Error("10.9.0.200 should be on-link")
	}
	if OnLink(pre, netip.MustParseAddr("10.8.0.1")) {
		t.Error("10.8.0.1 is on a down interface and must not be on-link")
	}
	if !OnLink(pre, netip.MustParseAddr("::ffff:127.0.0.1")) {
		t.Error("a mapped loopback address should be on-link on lo")
	}
}
