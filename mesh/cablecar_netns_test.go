//go:build linux

package mesh

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	ossignal "os/signal"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lanmesh/lanmesh/lanmeshtest/netlab"
)

// The cable_car reflection test: a victim node with cable_car compatibility
// on a namespace LAN, and an attacker host that sends "BROADCAST" from
// many source addresses it holds: on the LAN's subnet (so that the dials
// they draw reach the attacker, which counts them) and off it (which a
// node must never dial). The victim's BroadcastTotal is lowered to make
// the bound on dials tight.
const (
	ccFloodOnSubnet  = 100 // sources 10.x.y.100-199 of the lab's /24
	ccFloodOffSubnet = 50  // sources 10.99.0.1-50
	ccFloodCopies    = 8   // datagrams from each source
	ccFloodTotalRate = 5   // the victim's BroadcastTotal
)

func cableCarFloodHelper(role string) {
	switch role {
	case "cablecar-victim":
		cableCarFloodVictim()
	case "cablecar-attacker":
		cableCarFloodAttacker()
	}
	os.Exit(0)
}

// cableCarFloodVictim runs a node with cable_car on; on SIGTERM it prints
//
//	final HEARD RATEDROPPED IMPLAUSIBLE DIALS DIALFAILURES SKIPPED
func cableCarFloodVictim() {
	cfg := DefaultNodeConfig()
	cfg.Name = "victim"
	cfg.Mesh = "ccflood"
	cfg.Discovery.Off = true
	cfg.CableCar.Enabled = true
	cfg.CableCar.BroadcastTotal = ccFloodTotalRate
	sigs := make(chan os.Signal, 1)
	ossignal.Notify(sigs, syscall.SIGTERM)
	n, err := NewNode(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Println("ready")
	select {
	case <-sigs:
	case <-time.After(2 * time.Minute):
	}
	st := n.Stats().CableCar
	fmt.Printf("final %d %d %d %d %d %d\n", st.Heard, st.RateDropped, st.Implausible, st.Dials, st.DialFailures, st.DialsSkipped)
	n.Close()
}

// cableCarFloodAttacker sends the datagrams from every address in SOURCES
// to VICTIM:8222, counts the connections that arrive on its port 8223, and
// prints "attacked SENT ACCEPTED" once no connection came for a second
// after the flood.
func cableCarFloodAttacker() {
	ln, err := net.Listen("tcp4", fmt.Sprintf(":%d", CableCarPort))
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	var accepted atomic.Int64
	var last atomic.Int64
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			accepted.Add(1)
			last.Store(time.Now().UnixNano())
			c.Close()
		}
	}()
	to := &net.UDPAddr{IP: net.ParseIP(os.Getenv("VICTIM")), Port: CableCarBeaconPort}
	sent := 0
	var conns []*net.UDPConn
	for _, s := range strings.Fields(os.Getenv("SOURCES")) {
		c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.ParseIP(s)})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		defer c.Close()
		conns = append(conns, c)
	}
	// Round by round, one datagram from each source in turn, as a flood
	// of spoofed sources arrives.
	for range ccFloodCopies {
		for _, c := range conns {
			if _, err := c.WriteToUDP([]byte("BROADCAST"), to); err == nil {
				sent++
			}
		}
	}
	last.Store(time.Now().UnixNano())
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); {
		if time.Since(time.Unix(0, last.Load())) > time.Second {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	ln.Close()
	fmt.Printf("attacked %d %d\n", sent, accepted.Load())
}

// A cable_car "BROADCAST" flood from spoofed sources makes a bounded number
// of dials, all to sources on the LAN's subnet: none to the 50 off-subnet
// sources. (Before the bounds, each source was dialled: 150 dials, 50 of
// them off the LAN.)
func TestNetnsCableCarFlood(t *testing.T) {
	lab := netlab.New(t, 2)
	victimHost, attackerHost := lab.Hosts[0], lab.Hosts[1]
	base := lab.Subnet.Addr().As4()
	var sources []string // on and off the subnet in turn, then the rest on it
	for i := range ccFloodOnSubnet {
		sources = append(sources, netip.AddrFrom4([4]byte{base[0], base[1], base[2], byte(100 + i)}).String())
		if i < ccFloodOffSubnet {
			sources = append(sources, netip.AddrFrom4([4]byte{10, 99, 0, byte(1 + i)}).String())
		}
	}
	for _, s := range sources {
		cmd := attackerHost.Command(t.Context(), "ip", "addr", "add", s+"/32", "dev", attackerHost.Iface)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("ip addr add %s: %v: %s", s, err, out)
		}
	}
	victim := victimHost.StartHelper(t, "cablecar-victim")
	if _, err := victim.WaitLine(10*time.Second, func(l string) bool { return l == "ready" }); err != nil {
		t.Fatalf("victim: %v\n%s", err, victim.Stderr())
	}
	start := time.Now()
	attacker := attackerHost.StartHelper(t, "cablecar-attacker",
		"VICTIM="+victimHost.Addr.String(), "SOURCES="+strings.Join(sources, " "))
	line, err := attacker.WaitLine(time.Minute, func(l string) bool { return strings.HasPrefix(l, "attacked ") })
	if err != nil {
		t.Fatalf("attacker: %v\n%s", err, attacker.Stderr())
	}
	victim.Signal(syscall.SIGTERM)
	final, err := victim.WaitLine(10*time.Second, func(l string) bool { return strings.HasPrefix(l, "final ") })
	if err != nil {
		t.Fatalf("victim: %v\n%s", err, victim.Stderr())
	}
	window := time.Since(start)
	num := func(fields []string) []uint64 {
		var v []uint64
		for _, f := range fields[1:] {
			x, _ := strconv.ParseUint(f, 10, 64)
			v = append(v, x)
		}
		return v
	}
	a, f := num(strings.Fields(line)), num(strings.Fields(final))
	sent, accepted := a[0], a[1]
	heard, rateDropped, implausible, dials, failures, skipped := f[0], f[1], f[2], f[3], f[4], f[5]
	bound := uint64(2*ccFloodTotalRate+1) + uint64(ccFloodTotalRate*window.Seconds()) + 1
	t.Logf("%d BROADCASTs from %d spoofed sources (%d off the subnet) in a window of %v: victim heard %d, dropped %d by rate, %d implausible, %d dials (bound %d), %d failed, %d skipped; the attacker accepted %d connections",
		sent, len(sources), ccFloodOffSubnet, window.Round(time.Millisecond), heard, rateDropped, implausible, dials, bound, failures, skipped, accepted)
	if sent != uint64(len(sources)*ccFloodCopies) {
		t.Fatalf("the attacker sent %d datagrams, want %d", sent, len(sources)*ccFloodCopies)
	}
	if dials == 0 || dials > bound || dials > ccFloodOnSubnet {
		t.Errorf("%d dials, want 1 to %d", dials, min(bound, ccFloodOnSubnet))
	}
	// Every dial went to an address the attacker holds on the subnet: it
	// accepted each, and none failed (an off-subnet dial has no route).
	if failures != 0 || accepted != dials {
		t.Errorf("%d dials, %d failed, %d reached the attacker: some went elsewhere", dials, failures, accepted)
	}
	if implausible == 0 {
		t.Error("no datagram was found implausible: the off-subnet sources were not put to the rule")
	}
	if heard > 0 && rateDropped+implausible+dials+skipped > heard {
		t.Errorf("counters add up to more than heard: %d", rateDropped+implausible+dials+skipped)
	}
}
