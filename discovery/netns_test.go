//go:build linux

package discovery

import (
	"encoding/json"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/signal"
	"runtime"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/lanmeshtest/netlab"
)

// The namespace tests run one Discoverer per helper process inside a lab
// host; the helper prints one JSON line per event on stdout.

const nodeEnv = "LANMESH_DISCOVERY_NODE" // the helper's nodeSpec, as JSON

// nodeSpec is what a helper node is told by its test.
type nodeSpec struct {
	Mesh      string
	NodeID    uuid.UUID
	Port      int
	Broadcast bool
	MDNS      bool
	Interval  time.Duration
	LostAfter time.Duration
	// Interfaces restricts the node, as Config.Interfaces.
	Interfaces []string
}

// nodeLine is one line printed by a helper node.
type nodeLine struct {
	T        string // "ready" or an event kind
	ID       uuid.UUID
	Instance uuid.UUID
	Addr     string
	Via      string
	Reason   string
	At       int64 // wall clock, Unix ns; all hosts share the kernel's clock
}

// schedSlack is how late a timer may fire on a busy test machine (two
// cores, -race, other tests running).
const schedSlack = 200 * time.Millisecond

func TestHelperProcess(t *testing.T) {
	role := netlab.HelperRole()
	if role == "" {
		return
	}
	var spec nodeSpec
	if err := json.Unmarshal([]byte(os.Getenv(nodeEnv)), &spec); err != nil {
		fmt.Fprintln(os.Stderr, "bad spec:", err)
		os.Exit(2)
	}
	switch role {
	case "discovery-node":
		os.Exit(runHelperNode(spec))
	case "discovery-leak":
		os.Exit(runLeakCheck(spec))
	}
	fmt.Fprintln(os.Stderr, "unknown role", role)
	os.Exit(2)
}

// runLeakCheck runs a node with every source on until it has found a peer,
// closes it, and reports whether goroutines and sockets went back to what
// they were before New. It runs in a lab host because mDNS must never run
// in the machine's own namespace.
func runLeakCheck(spec nodeSpec) int {
	enc := json.NewEncoder(os.Stdout)
	before := countResources()
	cfg := helperConfig(spec)
	found := make(chan struct{}, 1)
	cfg.OnEvent = func(ev Event) {
		select {
		case found <- struct{}{}:
		default:
		}
	}
	d, err := New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "New:", err)
		return 1
	}
	select {
	case <-found:
	case <-time.After(10 * time.Second):
		fmt.Fprintln(os.Stderr, "found no peer")
		return 1
	}
	// Let a periodic browse and beacon round run too.
	time.Sleep(2 * spec.Interval)
	start := time.Now()
	d.Close()
	closed := time.Since(start)
	deadline := time.Now().Add(3 * time.Second)
	now := countResources()
	for time.Now().Before(deadline) && (now.goroutines > before.goroutines || now.sockets > before.sockets) {
		time.Sleep(10 * time.Millisecond)
		now = countResources()
	}
	result := "ok"
	if now.goroutines > before.goroutines || now.sockets > before.sockets {
		buf := make([]byte, 1<<20)
		buf = buf[:runtime.Stack(buf, true)]
		fmt.Fprintf(os.Stderr, "%s\n", buf)
		result = fmt.Sprintf("goroutines %d (before %d), sockets %d (before %d)", now.goroutines, before.goroutines, now.sockets, before.sockets)
	}
	_ = enc.Encode(nodeLine{T: "leakcheck", Reason: result, At: int64(closed)})
	return 0
}

func helperConfig(spec nodeSpec) Config {
	cfg := DefaultConfig()
	cfg.Mesh = spec.Mesh
	cfg.NodeID = spec.NodeID
	cfg.Port = spec.Port
	cfg.Broadcast = spec.Broadcast
	cfg.MDNS = spec.MDNS
	cfg.Interval = spec.Interval
	cfg.Jitter = spec.Interval / 10
	cfg.MDNSInterval = spec.Interval
	cfg.MDNSTimeout = spec.Interval / 2
	cfg.LostAfter = spec.LostAfter
	cfg.InterfaceRefresh = 300 * time.Millisecond
	cfg.Interfaces = spec.Interfaces
	return cfg
}

func runHelperNode(spec nodeSpec) int {
	enc := json.NewEncoder(os.Stdout)
	cfg := helperConfig(spec)
	// Events wait for the ready line, which the test reads first.
	ready := make(chan struct{})
	cfg.OnEvent = func(ev Event) {
		<-ready
		_ = enc.Encode(nodeLine{T: ev.Kind.String(), ID: ev.Peer.ID, Instance: ev.Peer.Instance,
			Addr: ev.Peer.Addr.String(), Via: ev.Peer.Via.String(), Reason: ev.Reason.String(), At: time.Now().UnixNano()})
	}
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM, syscall.SIGINT)
	start := time.Now()
	d, err := New(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "New:", err)
		return 1
	}
	_ = enc.Encode(nodeLine{T: "ready", ID: d.Self().ID, Instance: d.Self().Instance, At: start.UnixNano()})
	close(ready)
	<-sigs
	d.Close()
	return 0
}

// labNode is a helper node seen from the test.
type labNode struct {
	host *netlab.Host
	proc *netlab.Proc
	spec nodeSpec
	self nodeLine // its ready line
}

// nsSpec is a node with short timers. LostAfter is long enough (10
// intervals) that a loaded test machine does not produce false Losts in
// tests about finding; the Lost test shortens it.
func nsSpec(mesh string, broadcast, mdns bool) nodeSpec {
	return nodeSpec{Mesh: mesh, NodeID: uuid.New(), Port: 7000, Broadcast: broadcast, MDNS: mdns,
		Interval: 200 * time.Millisecond, LostAfter: 2 * time.Second}
}

func startNode(t testing.TB, h *netlab.Host, spec nodeSpec) *labNode {
	t.Helper()
	js, _ := json.Marshal(spec)
	p := h.StartHelper(t, "discovery-node", nodeEnv+"="+string(js))
	n := &labNode{host: h, proc: p, spec: spec}
	l, err := p.WaitLine(20*time.Second, func(s string) bool { return strings.Contains(s, `"T":"ready"`) })
	if err != nil {
		t.Fatalf("node on %s did not start: %v\nstderr: %s", h.Name, err, p.Stderr())
	}
	if err := json.Unmarshal([]byte(l), &n.self); err != nil {
		t.Fatal(err)
	}
	return n
}

// waitEvent waits for an event line of n that match accepts.
func (n *labNode) waitEvent(t testing.TB, timeout time.Duration, what string, match func(nodeLine) bool) nodeLine {
	t.Helper()
	var got nodeLine
	_, err := n.proc.WaitLine(timeout, func(s string) bool {
		var l nodeLine
		if json.Unmarshal([]byte(s), &l) != nil {
			return false // the test framework's own output
		}
		if match(l) {
			got = l
			return true
		}
		return false
	})
	if err != nil {
		t.Fatalf("%s on %s: %s: %v\nstderr: %s", n.spec.Mesh, n.host.Name, what, err, n.proc.Stderr())
	}
	return got
}

// waitFoundAll waits until n has found each of others, checking that the
// address is the other's host address.
func (n *labNode) waitFoundAll(t testing.TB, timeout time.Duration, others []*labNode, via string) {
	t.Helper()
	want := map[uuid.UUID]*labNode{}
	for _, o := range others {
		want[o.self.ID] = o
	}
	deadline := time.Now().Add(timeout)
	for len(want) > 0 {
		l := n.waitEvent(t, time.Until(deadline), fmt.Sprintf("find %d more", len(want)), func(l nodeLine) bool {
			_, ok := want[l.ID]
			return l.T == "found" || ok && l.T != "ready"
		})
		o, ok := want[l.ID]
		if !ok {
			t.Fatalf("%s: found %v at %s, which it should not see (or not again)", n.host.Name, l.ID, l.Addr)
		}
		if l.T != "found" {
			t.Fatalf("%s: %s for %s, want found", n.host.Name, l.T, o.host.Name)
		}
		if wantAddr := fmt.Sprintf("%s:%d", o.host.Addr, o.spec.Port); l.Addr != wantAddr {
			t.Fatalf("%s: %s found at %s, want %s", n.host.Name, o.host.Name, l.Addr, wantAddr)
		}
		if via != "" && l.Via != via {
			t.Fatalf("%s: %s found via %s, want %s", n.host.Name, o.host.Name, l.Via, via)
		}
		delete(want, l.ID)
	}
}

func others(all []*labNode, i int) []*labNode {
	var out []*labNode
	for j, n := range all {
		if j != i {
			out = append(out, n)
		}
	}
	return out
}

// testAllToAll runs a node on each of three hosts and a second one on the
// first host, sharing its beacon port and mDNS port, and checks that every
// node finds every other.
func testAllToAll(t *testing.T, broadcast, mdns bool, via string) {
	lab := netlab.New(t, 3)
	var nodes []*labNode
	for _, h := range append(lab.Hosts, lab.Hosts[0]) {
		spec := nsSpec("lab", broadcast, mdns)
		spec.Port = 7000 + len(nodes) // two nodes on one host differ by port
		nodes = append(nodes, startNode(t, h, spec))
	}
	for i, n := range nodes {
		n.waitFoundAll(t, 5*time.Second, others(nodes, i), via)
	}
}

func TestNetnsBroadcastAllToAll(t *testing.T) { testAllToAll(t, true, false, "broadcast") }

func TestNetnsMDNSAllToAll(t *testing.T) { testAllToAll(t, false, true, "mdns") }

func TestNetnsLostAndRestarted(t *testing.T) {
	for _, mode := range []struct {
		name            string
		broadcast, mdns bool
	}{{"broadcast", true, false}, {"mdns", false, true}} {
		t.Run(mode.name, func(t *testing.T) {
			lab := netlab.New(t, 3)
			var nodes []*labNode
			for _, h := range lab.Hosts {
				spec := nsSpec("lab", mode.broadcast, mode.mdns)
				spec.LostAfter = 700 * time.Millisecond
				nodes = append(nodes, startNode(t, h, spec))
			}
			for i, n := range nodes {
				n.waitFoundAll(t, 5*time.Second, others(nodes, i), "")
			}
			victim := nodes[2]
			lost := victim.spec.LostAfter
			if err := victim.proc.Kill(); err != nil {
				t.Fatal(err)
			}
			killed := time.Now()
			for _, n := range nodes[:2] {
				l := n.waitEvent(t, 3*lost, "Lost after kill -9", func(l nodeLine) bool { return l.ID == victim.self.ID })
				if l.T != "lost" || l.Reason != "timeout" {
					t.Fatalf("%s: %s (%s) after kill, want lost (timeout)", n.host.Name, l.T, l.Reason)
				}
				// The last sign of life came before the kill, so Lost is due
				// within LostAfter of the kill; the slack is for scheduling
				// on a loaded machine (unloaded, Lost comes 0-20 ms early).
				if el := time.Duration(l.At - killed.UnixNano()); el > lost+schedSlack {
					t.Fatalf("%s: Lost %v after kill, LostAfter %v", n.host.Name, el, lost)
				} else {
					t.Logf("%s: Lost %v after kill -9 (LostAfter %v)", n.host.Name, el, lost)
				}
			}
			// The same node comes back: a new instance of the same id.
			spec := victim.spec
			back := startNode(t, victim.host, spec)
			for _, n := range nodes[:2] {
				l := n.waitEvent(t, 5*time.Second, "Restarted", func(l nodeLine) bool { return l.ID == spec.NodeID })
				if l.T != "restarted" || l.Instance != back.self.Instance {
					t.Fatalf("%s: %s instance %v on comeback, want restarted with %v", n.host.Name, l.T, l.Instance, back.self.Instance)
				}
			}
		})
	}
}

// TestNetnsInterfaceComesUp starts a node, restricted to eth0, while its
// host's link is down: it is found once the link comes up, because the
// interface list is re-read.
func TestNetnsInterfaceComesUp(t *testing.T) {
	lab := netlab.New(t, 3)
	late := lab.Hosts[2]
	if err := late.LinkDown(); err != nil {
		t.Fatal(err)
	}
	a := startNode(t, lab.Hosts[0], nsSpec("lab", true, false))
	b := startNode(t, lab.Hosts[1], nsSpec("lab", true, false))
	spec := nsSpec("lab", true, false)
	spec.Interfaces = []string{late.Iface}
	c := startNode(t, late, spec)
	a.waitFoundAll(t, 5*time.Second, []*labNode{b}, "broadcast")
	b.waitFoundAll(t, 5*time.Second, []*labNode{a}, "broadcast")
	if err := late.LinkUp(); err != nil {
		t.Fatal(err)
	}
	up := time.Now()
	for _, n := range []*labNode{a, b} {
		n.waitFoundAll(t, 5*time.Second, []*labNode{c}, "broadcast")
	}
	c.waitFoundAll(t, 5*time.Second, []*labNode{a, b}, "broadcast")
	t.Logf("found %v after link-up (interface refresh 300ms, interval %v)", time.Since(up), spec.Interval)
}

// TestNetnsNoLeakAfterClose checks, in a lab host, that Close leaves no
// goroutine or socket behind with broadcast and mDNS both on.
func TestNetnsNoLeakAfterClose(t *testing.T) {
	lab := netlab.New(t, 2)
	startNode(t, lab.Hosts[0], nsSpec("lab", true, true))
	js, _ := json.Marshal(nsSpec("lab", true, true))
	p := lab.Hosts[1].StartHelper(t, "discovery-leak", nodeEnv+"="+string(js))
	line, err := p.WaitLine(30*time.Second, func(s string) bool { return strings.Contains(s, `"T":"leakcheck"`) })
	if err != nil {
		t.Fatalf("leak check: %v\nstderr: %s", err, p.Stderr())
	}
	var l nodeLine
	if err := json.Unmarshal([]byte(line), &l); err != nil {
		t.Fatal(err)
	}
	if l.Reason != "ok" {
		t.Fatalf("leak after Close: %s\n%s", l.Reason, p.Stderr())
	}
	t.Logf("Close took %v (MDNSTimeout %v)", time.Duration(l.At), nsSpec("", true, true).Interval/2)
}

// TestNetnsUpdated moves a host to a new address: the others report the
// node Updated at the new address, not Lost and Found.
func TestNetnsUpdated(t *testing.T) {
	lab := netlab.New(t, 2)
	a := startNode(t, lab.Hosts[0], nsSpec("lab", true, false))
	b := startNode(t, lab.Hosts[1], nsSpec("lab", true, false))
	a.waitFoundAll(t, 5*time.Second, []*labNode{b}, "broadcast")
	moved := lab.Hosts[1].Addr.Next().Next().Next()
	if err := lab.Hosts[1].SetAddr(moved); err != nil {
		t.Fatal(err)
	}
	l := a.waitEvent(t, 5*time.Second, "Updated", func(l nodeLine) bool { return l.ID == b.self.ID })
	if want := fmt.Sprintf("%s:%d", moved, b.spec.Port); l.T != "updated" || l.Addr != want {
		t.Fatalf("%s at %s after the move, want updated at %s", l.T, l.Addr, want)
	}
}

func TestNetnsTwoMeshes(t *testing.T) {
	lab := netlab.New(t, 3)
	// Mesh a on h1 and h2, mesh b on h2 and h3: h2 runs one node of each,
	// sharing the beacon port.
	a1 := startNode(t, lab.Hosts[0], nsSpec("a", true, true))
	a2 := startNode(t, lab.Hosts[1], nsSpec("a", true, true))
	b2 := startNode(t, lab.Hosts[1], nsSpec("b", true, true))
	b3 := startNode(t, lab.Hosts[2], nsSpec("b", true, true))
	a1.waitFoundAll(t, 5*time.Second, []*labNode{a2}, "")
	a2.waitFoundAll(t, 5*time.Second, []*labNode{a1}, "")
	b2.waitFoundAll(t, 5*time.Second, []*labNode{b3}, "")
	b3.waitFoundAll(t, 5*time.Second, []*labNode{b2}, "")
	// Several beacon and browse rounds later, nobody has found a node of
	// the other mesh. The window is a few rounds; lines that arrived in it
	// are buffered, so the later checks need no window of their own.
	window := 4 * a1.spec.Interval
	for _, n := range []*labNode{a1, a2, b2, b3} {
		_, err := n.proc.WaitLine(window, func(s string) bool { return strings.Contains(s, `"T":"found"`) })
		if err == nil {
			t.Fatalf("%s node on %s found a node of the other mesh", n.spec.Mesh, n.host.Name)
		}
		window = time.Millisecond
	}
}

// TestMeasureFoundLatency reports the median time from a node's start to
// Found on another host, for broadcast and for mDNS. Set LANMESH_MEASURE=1.
func TestMeasureFoundLatency(t *testing.T) {
	if os.Getenv("LANMESH_MEASURE") == "" {
		t.Skip("set LANMESH_MEASURE=1 to measure")
	}
	const trials = 25
	lab := netlab.New(t, 2)
	for _, mode := range []struct {
		name            string
		broadcast, mdns bool
	}{{"broadcast", true, false}, {"mdns", false, true}} {
		t.Run(mode.name, func(t *testing.T) {
			spec := func() nodeSpec {
				s := nsSpec("m", mode.broadcast, mode.mdns)
				// mDNS-only peers are lost by timeout between trials.
				s.LostAfter = 700 * time.Millisecond
				return s
			}
			watcher := startNode(t, lab.Hosts[0], spec())
			var byOld, byNew []time.Duration
			for range trials {
				n := startNode(t, lab.Hosts[1], spec())
				l := watcher.waitEvent(t, 5*time.Second, "Found", func(l nodeLine) bool { return l.T == "found" && l.ID == n.self.ID })
				byOld = append(byOld, time.Duration(l.At-n.self.At))
				l = n.waitEvent(t, 5*time.Second, "Found", func(l nodeLine) bool { return l.T == "found" && l.ID == watcher.self.ID })
				byNew = append(byNew, time.Duration(l.At-n.self.At))
				if err := n.proc.Stop(5 * time.Second); err != nil {
					t.Fatal(err)
				}
				watcher.waitEvent(t, 5*time.Second, "Lost", func(l nodeLine) bool { return l.T == "lost" && l.ID == n.self.ID })
			}
			t.Logf("%s: start -> Found on the other host (existing node finds the new): %s", mode.name, summary(byOld))
			t.Logf("%s: start -> Found by the new node (new node finds the existing): %s", mode.name, summary(byNew))
		})
	}
}

// TestMeasureLostLatency reports how long after a kill -9 (no leaving
// beacon) the other host reports Lost, against LostAfter. Set
// LANMESH_MEASURE=1.
func TestMeasureLostLatency(t *testing.T) {
	if os.Getenv("LANMESH_MEASURE") == "" {
		t.Skip("set LANMESH_MEASURE=1 to measure")
	}
	const trials = 20
	lab := netlab.New(t, 2)
	for _, mode := range []struct {
		name            string
		broadcast, mdns bool
	}{{"broadcast", true, false}, {"mdns", false, true}} {
		t.Run(mode.name, func(t *testing.T) {
			spec := func() nodeSpec {
				s := nsSpec("m", mode.broadcast, mode.mdns)
				s.LostAfter = 700 * time.Millisecond
				return s
			}
			watcher := startNode(t, lab.Hosts[0], spec())
			var lost []time.Duration
			for range trials {
				n := startNode(t, lab.Hosts[1], spec())
				watcher.waitEvent(t, 5*time.Second, "Found", func(l nodeLine) bool { return l.T == "found" && l.ID == n.self.ID })
				// Kill at a random point of the beacon period.
				time.Sleep(time.Duration(rand.Int64N(int64(n.spec.Interval))))
				if err := n.proc.Kill(); err != nil {
					t.Fatal(err)
				}
				killed := time.Now()
				l := watcher.waitEvent(t, 5*time.Second, "Lost", func(l nodeLine) bool { return l.ID == n.self.ID })
				if l.T != "lost" || l.Reason != "timeout" {
					t.Fatalf("%s (%s) after kill -9, want lost (timeout)", l.T, l.Reason)
				}
				lost = append(lost, time.Duration(l.At-killed.UnixNano()))
			}
			t.Logf("%s: kill -9 -> Lost on the other host, LostAfter %v: %s", mode.name, spec().LostAfter, summary(lost))
		})
	}
}

func summary(ds []time.Duration) string {
	s := append([]time.Duration(nil), ds...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	pct := func(p float64) time.Duration { return s[int(p*float64(len(s)-1))] }
	return fmt.Sprintf("n=%d min=%v median=%v p90=%v max=%v", len(s), s[0], pct(0.5), pct(0.9), s[len(s)-1])
}

// TestNetnsInterfaces puts four hosts on two LANs: h1 restricted to the
// second, h3 to the first, h2 and h4 unrestricted. Each node finds exactly
// the nodes it shares a chosen LAN with, at an address on that LAN, and a
// node heard on both LANs is one peer whose address does not flap.
func TestNetnsInterfaces(t *testing.T) {
	for _, mode := range []struct {
		name            string
		broadcast, mdns bool
	}{{"broadcast", true, false}, {"mdns", false, true}} {
		t.Run(mode.name, func(t *testing.T) {
			lab := netlab.New(t, 4)
			lan2 := lab.AddLAN()
			h1, h2, h3, h4 := lab.Hosts[0], lab.Hosts[1], lab.Hosts[2], lab.Hosts[3]
			spec := func(ifaces ...string) nodeSpec {
				s := nsSpec("lab", mode.broadcast, mode.mdns)
				s.Interfaces = ifaces
				return s
			}
			n1 := startNode(t, h1, spec(lan2.Iface))
			n2 := startNode(t, h2, spec())
			n3 := startNode(t, h3, spec(h3.Iface))
			n4 := startNode(t, h4, spec())

			// expect waits until n has found exactly the given peers at the
			// given addresses ("" accepts either of the peer's addresses).
			expect := func(n *labNode, peers map[*labNode]string) {
				t.Helper()
				left := len(peers)
				byID := map[uuid.UUID]*labNode{}
				for p := range peers {
					byID[p.self.ID] = p
				}
				for left > 0 {
					l := n.waitEvent(t, 5*time.Second, fmt.Sprintf("%d more peers", left), func(l nodeLine) bool { return l.T == "found" })
					p, ok := byID[l.ID]
					if !ok {
						t.Fatalf("%s found %s, which shares no chosen LAN with it", n.host.Name, l.Addr)
					}
					want := peers[p]
					if want == "" {
						a, b := fmt.Sprintf("%s:%d", p.host.Addr, p.spec.Port), fmt.Sprintf("%s:%d", p.host.AddrOn(lan2), p.spec.Port)
						if l.Addr != a && l.Addr != b {
							t.Fatalf("%s found %s at %s, want %s or %s", n.host.Name, p.host.Name, l.Addr, a, b)
						}
					} else if l.Addr != want {
						t.Fatalf("%s found %s at %s, want %s", n.host.Name, p.host.Name, l.Addr, want)
					}
					left--
				}
			}
			at := func(n *labNode, a netip.Addr) string { return fmt.Sprintf("%s:%d", a, n.spec.Port) }
			expect(n1, map[*labNode]string{n2: at(n2, h2.AddrOn(lan2)), n4: at(n4, h4.AddrOn(lan2))})
			expect(n3, map[*labNode]string{n2: at(n2, h2.Addr), n4: at(n4, h4.Addr)})
			expect(n2, map[*labNode]string{n1: at(n1, h1.AddrOn(lan2)), n3: at(n3, h3.Addr), n4: ""})
			expect(n4, map[*labNode]string{n1: at(n1, h1.AddrOn(lan2)), n3: at(n3, h3.Addr), n2: ""})
			// Several rounds later: nothing new was found, and the peers
			// heard on both LANs did not flap (no Updated, no Lost).
			window := 5 * n2.spec.Interval
			for _, n := range []*labNode{n1, n2, n3, n4} {
				if l, err := n.proc.WaitLine(window, func(s string) bool { return strings.Contains(s, `"T":`) }); err == nil {
					t.Fatalf("%s: unexpected event %s", n.host.Name, l)
				}
				window = time.Millisecond
			}
		})
	}
}
