package ifaddr

import (
	"net/netip"
	"testing"
)

func TestKindOf(t *testing.T) {
	for _, c := range []struct {
		it   Interface
		want Kind
	}{
		{Interface{Name: "eth0", Broadcast: true}, KindLAN},
		{Interface{Name: "wlp2s0", Broadcast: true}, KindLAN},
		{Interface{Name: "lo", Loopback: true}, KindLoopback},
		{Interface{Name: "docker0", Broadcast: true}, KindContainer},
		{Interface{Name: "br-1a2b3c", Broadcast: true}, KindContainer},
		{Interface{Name: "vEthernet (WSL)", Broadcast: true}, KindContainer},
		{Interface{Name: "wg0"}, KindVPN},
		{Interface{Name: "tailscale0"}, KindVPN},
		{Interface{Name: "utun3"}, KindVPN},
		{Interface{Name: "corpnet", PointToPoint: true}, KindVPN},
	} {
		if got := KindOf(c.it); got != c.want {
			t.Errorf("KindOf(%q) = %v, want %v", c.it.Name, got, c.want)
		}
	}
}

func TestUnusable(t *testing.T) {
	p := []netip.Prefix{netip.MustParsePrefix("10.1.2.3/24")}
	for _, c := range []struct {
		it   Interface
		want string
	}{
		{Interface{Up: true, Broadcast: true, Prefixes: p}, ""},
		{Interface{Up: false, Broadcast: true, Prefixes: p}, "down"},
		{Interface{Up: true, Loopback: true, Prefixes: p}, "loopback"},
		{Interface{Up: true, Broadcast: true}, "no IPv4 address"},
		{Interface{Up: true, Prefixes: p}, "no broadcast"},
		{Interface{Up: true, Broadcast: true, Prefixes: []netip.Prefix{netip.MustParsePrefix("10.1.2.3/32")}}, "no broadcast address (a /31 or /32)"},
	} {
		if got := Unusable(c.it); got != c.want {
			t.Errorf("Unusable(%+v) = %q, want %q", c.it, got, c.want)
		}
	}
}
