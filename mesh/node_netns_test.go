//go:build linux

package mesh

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	ossignal "os/signal"
	"slices"
	"sort"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/lanmeshtest/netlab"
)

// The timers of the namespace tests: a killed peer must be seen as gone
// within nsSilence (plus a ping's worth of slack).
const (
	nsSilence  = 1 * time.Second
	nsInterval = 200 * time.Millisecond
)

// TestHelperProcess is the child side of the namespace tests: a node in a
// host of a netlab LAN, printing one line per peer event:
//
//	ready ID
//	joined ID UNIXNANO NAME | left ID UNIXNANO REASON | restarted ID UNIXNANO NAME
//
// (the namespaces share the machine's clock, so the time a child prints is
// comparable with the parent's)
//
// It runs until SIGTERM (a graceful close) or SIGKILL.
func TestHelperProcess(t *testing.T) {
	switch role := netlab.HelperRole(); {
	case strings.HasPrefix(role, "flood-"):
		floodHelper(role)
		return
	case strings.HasPrefix(role, "cablecar-"):
		cableCarFloodHelper(role)
	case strings.HasPrefix(role, "hostile-"):
		hostileHelper(role)
		return
	case role == "flap":
		flapHelper()
		return
	case role == "mflap":
		mflapHelper()
		return
	case role != "node":
		return
	}
	cfg := DefaultNodeConfig()
	cfg.NodeID = uuid.MustParse(os.Getenv("NODE_ID"))
	cfg.Name = os.Getenv("NODE_NAME")
	cfg.Mesh = "nstest"
	cfg.Registry = testRegistry
	cfg.Link.PingInterval = 100 * time.Millisecond
	cfg.Link.Silence = nsSilence
	cfg.Link.HandshakeTimeout = time.Second
	cfg.Discovery.MDNS = false
	cfg.Discovery.Interval = nsInterval
	cfg.Discovery.Jitter = nsInterval / 10
	cfg.Discovery.LostAfter = 4 * nsInterval
	cfg.Discovery.InterfaceRefresh = 500 * time.Millisecond
	cfg.Net.RedialMin = 50 * time.Millisecond
	cfg.Net.RedialMax = 300 * time.Millisecond
	if os.Getenv("MESH_TEST_LOG") != "" {
		cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	cfg.OnPeer = func(ev PeerEvent) {
		switch ev.Kind {
		case PeerLeft:
			fmt.Printf("left %s %d %v\n", ev.Peer.ID, time.Now().UnixNano(), strings.ReplaceAll(fmt.Sprint(ev.Err), "\n", " "))
		default:
			fmt.Printf("%s %s %d %s\n", ev.Kind, ev.Peer.ID, time.Now().UnixNano(), ev.Peer.Name)
		}
	}
	sigs := make(chan os.Signal, 1)
	ossignal.Notify(sigs, syscall.SIGTERM)
	n, err := NewNode(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("ready %s\n", n.ID())
	select {
	case <-sigs:
	case <-time.After(5 * time.Minute): // a test never runs this long
	}
	n.CloseReason("helper stopped")
	os.Exit(0)
}

type nsNode struct {
	host  *netlab.Host
	id    uuid.UUID
	name  string
	proc  *netlab.Proc
	lines []nsLine // every line the node printed, in order
}

type nsLine struct {
	at     time.Time
	fields []string
}

func startNSNode(t *testing.T, h *netlab.Host, id uuid.UUID) *nsNode {
	t.Helper()
	n := &nsNode{host: h, id: id, name: h.Name}
	n.proc = h.StartHelper(t, "node", "NODE_ID="+id.String(), "NODE_NAME="+h.Name)
	n.waitLine(t, 10*time.Second, 0, func(f []string) bool { return f[0] == "ready" })
	return n
}

// mark returns the position after the lines read so far; waits from a mark
// consider only lines printed after it.
func (n *nsNode) mark() int { return len(n.lines) }

// waitLine returns the first line at or after position from that match
// accepts, reading more lines as needed until timeout.
func (n *nsNode) waitLine(t *testing.T, timeout time.Duration, from int, match func([]string) bool) nsLine {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for i := from; ; i++ {
		for i >= len(n.lines) {
			line, err := n.proc.Next(time.Until(deadline))
			if err != nil {
				var seen strings.Builder
				for _, l := range n.lines[from:] {
					seen.WriteString(strings.Join(l.fields, " ") + "\n")
				}
				t.Fatalf("%s: %v\nlines since the mark:\n%s\nstderr:\n%s", n.name, err, seen.String(), n.proc.Stderr())
			}
			if f := strings.Fields(line); len(f) > 0 {
				at := time.Now()
				if len(f) >= 3 {
					if ns, err := strconv.ParseInt(f[2], 10, 64); err == nil {
						at = time.Unix(0, ns)
					}
				}
				n.lines = append(n.lines, nsLine{at: at, fields: f})
			}
		}
		if match(n.lines[i].fields) {
			return n.lines[i]
		}
	}
}

// waitEvents waits until node n has reported, after position from, an
// event of one of kinds ("joined|restarted") for every peer in want but
// itself, and returns when the last of them came.
func (n *nsNode) waitEvents(t *testing.T, timeout time.Duration, from int, kinds string, want []*nsNode) time.Time {
	t.Helper()
	var last time.Time
	for _, w := range want {
		if w == n {
			continue
		}
		l := n.waitLine(t, timeout, from, func(f []string) bool {
			return len(f) >= 2 && strings.Contains("|"+kinds+"|", "|"+f[0]+"|") && f[1] == w.id.String()
		})
		if l.at.After(last) {
			last = l.at
		}
	}
	return last
}

func marks(nodes []*nsNode) []int {
	m := make([]int, len(nodes))
	for i, n := range nodes {
		m[i] = n.mark()
	}
	return m
}

func sortedIDs(n int) []uuid.UUID {
	ids := make([]uuid.UUID, n)
	for i := range ids {
		ids[i] = uuid.New()
	}
	return ids
}

// TestNetnsMesh runs one node in each of 5 hosts: a full mesh forms; a node
// killed with no goodbye is seen as left by all within the silence; when it
// starts again it is linked again; a host cut off is seen as left and the
// mesh heals when its link comes back.
func TestNetnsMesh(t *testing.T) {
	lab := netlab.New(t, 5)
	ids := sortedIDs(5)
	nodes := make([]*nsNode, 5)
	start := time.Now()
	for i, h := range lab.Hosts {
		nodes[i] = startNSNode(t, h, ids[i])
	}
	var formed time.Time
	for _, n := range nodes {
		if at := n.waitEvents(t, 10*time.Second, 0, "joined", nodes); at.After(formed) {
			formed = at
		}
	}
	t.Logf("5 hosts: full mesh %v after the first node started", formed.Sub(start).Round(time.Millisecond))

	// Kill one with no goodbye.
	victim := nodes[4]
	m := marks(nodes)
	killed := time.Now()
	if err := victim.proc.Kill(); err != nil {
		t.Fatal(err)
	}
	var gone time.Time
	for i, n := range nodes[:4] {
		if at := n.waitEvents(t, nsSilence+time.Second, m[i], "left", []*nsNode{victim}); at.After(gone) {
			gone = at
		}
	}
	t.Logf("killed node: seen as left by all 4 after %v (silence %v)", gone.Sub(killed).Round(time.Millisecond), nsSilence)

	// It comes back: same id, a new instance.
	m = marks(nodes)
	nodes[4] = startNSNode(t, victim.host, victim.id)
	for i, n := range nodes[:4] {
		// Restarted, or joined if discovery had lost it after it left.
		n.waitEvents(t, 10*time.Second, m[i], "restarted|joined", []*nsNode{nodes[4]})
	}
	nodes[4].waitEvents(t, 10*time.Second, 0, "joined", nodes)

	// Cut a host off: everyone notices (the peer is resuming: its session
	// is kept), and the links resume when it returns.
	cut := nodes[3]
	others := []*nsNode{nodes[0], nodes[1], nodes[2], nodes[4]}
	m = marks(nodes)
	if err := cut.host.LinkDown(); err != nil {
		t.Fatal(err)
	}
	downAt := time.Now()
	var seen time.Time
	for _, n := range others {
		at := n.waitEvents(t, nsSilence+2*time.Second, m[slices.Index(nodes, n)], "resuming", []*nsNode{cut})
		if at.After(seen) {
			seen = at
		}
	}
	cut.waitEvents(t, nsSilence+2*time.Second, m[3], "resuming", others)
	t.Logf("host cut off: seen as resuming by all after %v (silence %v)", seen.Sub(downAt).Round(time.Millisecond), nsSilence)
	m = marks(nodes)
	upAt := time.Now()
	if err := cut.host.LinkUp(); err != nil {
		t.Fatal(err)
	}
	var healed time.Time
	for _, n := range others {
		at := n.waitEvents(t, 15*time.Second, m[slices.Index(nodes, n)], "resumed", []*nsNode{cut})
		if at.After(healed) {
			healed = at
		}
	}
	cut.waitEvents(t, 15*time.Second, m[3], "resumed", others)
	t.Logf("host back: mesh healed %v after the link-up command began", healed.Sub(upAt).Round(time.Millisecond))
}

// TestNetnsMeasureMesh measures, for N = 2, 5 and 10 hosts, the time from
// starting every node to a full mesh, and the time to notice a killed peer.
// It runs only with LANMESH_MEASURE=1.
func TestNetnsMeasureMesh(t *testing.T) {
	if os.Getenv("LANMESH_MEASURE") == "" {
		t.Skip("measurement: set LANMESH_MEASURE=1 to run")
	}
	sizes := []int{2, 5, 10}
	if s := os.Getenv("LANMESH_MEASURE_SIZES"); s != "" {
		sizes = nil
		for _, f := range strings.Split(s, ",") {
			n, _ := strconv.Atoi(f)
			sizes = append(sizes, n)
		}
	}
	for _, size := range sizes {
		t.Run(fmt.Sprint(size), func(t *testing.T) {
			lab := netlab.New(t, size)
			ids := sortedIDs(size)
			nodes := make([]*nsNode, size)
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			_ = ctx
			start := time.Now()
			for i, h := range lab.Hosts {
				nodes[i] = &nsNode{host: h, id: ids[i], name: h.Name}
				nodes[i].proc = h.StartHelper(t, "node", "NODE_ID="+ids[i].String(), "NODE_NAME="+h.Name)
			}
			var last time.Time
			for _, n := range nodes {
				if at := n.waitEvents(t, 30*time.Second, 0, "joined", nodes); at.After(last) {
					last = at
				}
			}
			formed := last.Sub(start)
			killed := time.Now()
			nodes[size-1].proc.Kill()
			var detect []time.Duration
			for _, n := range nodes[:size-1] {
				at := n.waitEvents(t, 5*time.Second, n.mark(), "left", []*nsNode{nodes[size-1]})
				detect = append(detect, at.Sub(killed))
			}
			sort.Slice(detect, func(i, j int) bool { return detect[i] < detect[j] })
			t.Logf("N=%d: full mesh (%d links) %v after starting all nodes; killed peer seen as left by all in %v (silence %v)",
				size, size*(size-1)/2, formed.Round(time.Millisecond), detect[len(detect)-1].Round(time.Millisecond), nsSilence)
		})
	}
}
