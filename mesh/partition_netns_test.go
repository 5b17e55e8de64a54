//go:build linux

package mesh

import (
	"fmt"
	"os"
	ossignal "os/signal"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/lanmeshtest/netlab"
)

// mflapRate is how many messages a second an mflap node sends each peer.
const mflapRate = 50

// mflapHelper is flapHelper for many peers: a node with the default link
// timers that sends every linked peer Msg32s numbered 1, 2, ... (Sender: its
// HOST_INDEX) at mflapRate each, and checks, per sender, what it receives.
// Lines: ready ID; the peer events as flapHelper prints them; after SIGUSR1
// it stops sending and prints "sent IDX N" for each peer; after each
// SIGUSR2 "got IDX N DUP HOLES" for each sender, then "end".
func mflapHelper() {
	cfg := DefaultNodeConfig()
	cfg.NodeID = uuid.MustParse(os.Getenv("NODE_ID"))
	cfg.Name = os.Getenv("NODE_NAME")
	cfg.Mesh = "mflaptest"
	cfg.Registry = testRegistry
	cfg.Link.AutoFlush = true
	cfg.Discovery.MDNS = false
	cfg.Discovery.Interval = nsInterval
	cfg.Discovery.Jitter = nsInterval / 10
	cfg.Discovery.InterfaceRefresh = 500 * time.Millisecond
	self, _ := strconv.Atoi(os.Getenv("HOST_INDEX"))

	var mu sync.Mutex // guards the maps
	peers := map[uuid.UUID]int{}
	got, dup, holes := map[int]uint64{}, map[int]uint64{}, map[int]uint64{}
	cfg.OnPeer = func(ev PeerEvent) {
		if ev.Kind == PeerLeft {
			fmt.Printf("left %s %d %v\n", ev.Peer.ID, time.Now().UnixNano(), strings.ReplaceAll(fmt.Sprint(ev.Err), "\n", " "))
			return
		}
		if ev.Kind == PeerJoined || ev.Kind == PeerRestarted {
			idx, _ := strconv.Atoi(strings.TrimPrefix(ev.Peer.Name, "mh"))
			mu.Lock()
			peers[ev.Peer.ID] = idx
			mu.Unlock()
		}
		fmt.Printf("%s %s %d %s %v\n", ev.Kind, ev.Peer.ID, time.Now().UnixNano(), ev.Peer.Name, ev.Lost)
	}
	cfg.OnMessage = func(m Message) {
		v, ok := m.Msg.(*Msg32)
		if !ok {
			return
		}
		s := int(v.Sender)
		mu.Lock()
		switch {
		case v.Seq == got[s]+1:
			got[s]++
		case v.Seq <= got[s]:
			dup[s]++
		default:
			holes[s]++
			got[s] = v.Seq
		}
		mu.Unlock()
	}
	sigs := make(chan os.Signal, 4)
	ossignal.Notify(sigs, syscall.SIGTERM, syscall.SIGUSR1, syscall.SIGUSR2)
	n, err := NewNode(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("ready %s\n", n.ID())
	tick := time.NewTicker(time.Second / mflapRate)
	defer tick.Stop()
	sent := map[uuid.UUID]uint64{}
	sending := true
	end := time.After(time.Hour)
	for {
		select {
		case <-tick.C:
			if !sending {
				continue
			}
			mu.Lock()
			for id := range peers {
				if n.Send(id, &Msg32{Seq: sent[id] + 1, Sender: uint16(self)}) == nil {
					sent[id]++
				}
			}
			mu.Unlock()
		case s := <-sigs:
			switch s {
			case syscall.SIGUSR1:
				sending = false
				mu.Lock()
				for id, idx := range peers {
					fmt.Printf("sent %d %d\n", idx, sent[id])
				}
				mu.Unlock()
				fmt.Println("end")
			case syscall.SIGUSR2:
				mu.Lock()
				keys := make([]int, 0, len(got))
				for k := range got {
					keys = append(keys, k)
				}
				sort.Ints(keys)
				for _, k := range keys {
					fmt.Printf("got %d %d %d %d\n", k, got[k], dup[k], holes[k])
				}
				mu.Unlock()
				fmt.Println("end")
			default:
				n.CloseReason("helper stopped")
				os.Exit(0)
			}
		case <-end:
			n.CloseReason("helper ran too long")
			os.Exit(0)
		}
	}
}

// mflapReport signals n and collects the lines up to "end" that start
// with kind: index -> fields.
func mflapReport(t *testing.T, n *nsNode, sig syscall.Signal, kind string) map[int][]uint64 {
	t.Helper()
	from := n.mark()
	if err := n.proc.Signal(sig); err != nil {
		t.Fatal(err)
	}
	endLine := n.waitLine(t, 5*time.Second, from, func(f []string) bool { return f[0] == "end" })
	_ = endLine
	out := map[int][]uint64{}
	for _, l := range n.lines[from:] {
		if l.fields[0] != kind {
			continue
		}
		idx, _ := strconv.Atoi(l.fields[1])
		var vals []uint64
		for _, f := range l.fields[2:] {
			v, _ := strconv.ParseUint(f, 10, 64)
			vals = append(vals, v)
		}
		out[idx] = vals
	}
	return out
}

// TestNetnsPartition (issue 12): five hosts, every node sending every other
// 50 numbered messages a second; {1,2} are cut off from {3,4,5} for 10 s
// (nftables drops everything between the groups, broadcasts included).
// Every link across the cut resumes: every message Send accepted arrives
// once, in order, and no node reports a peer left.
func TestNetnsPartition(t *testing.T) {
	lab := netlab.New(t, 5)
	ids := sortedIDs(5)
	nodes := make([]*nsNode, 5)
	for i, h := range lab.Hosts {
		name := fmt.Sprintf("mh%d", i+1)
		nodes[i] = &nsNode{host: h, id: ids[i], name: name}
		nodes[i].proc = h.StartHelper(t, "mflap", "NODE_ID="+ids[i].String(), "NODE_NAME="+name, "HOST_INDEX="+strconv.Itoa(i+1))
		nodes[i].waitLine(t, 10*time.Second, 0, func(f []string) bool { return f[0] == "ready" })
	}
	for _, n := range nodes {
		n.waitEvents(t, 15*time.Second, 0, "joined", nodes)
	}
	m := marks(nodes)
	groupA, groupB := lab.Hosts[:2], lab.Hosts[2:]
	block := func(h *netlab.Host, others []*netlab.Host) string {
		var addrs []string
		for _, o := range others {
			addrs = append(addrs, o.Addr.String())
		}
		set := "{ " + strings.Join(addrs, ", ") + " }"
		return "table inet part {\n  chain in { type filter hook input priority 0; policy accept;\n    ip saddr " + set +
			" drop\n  }\n  chain out { type filter hook output priority 0; policy accept;\n    ip daddr " + set + " drop\n  }\n}\n"
	}
	for _, h := range groupA {
		if err := h.Nft(block(h, groupB)); err != nil {
			t.Skipf("no nftables in this lab: %v", err)
		}
	}
	for _, h := range groupB {
		if err := h.Nft(block(h, groupA)); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(10 * time.Second) // the partition itself
	for _, h := range lab.Hosts {
		if err := h.Nft("table inet part\ndelete table inet part\n"); err != nil {
			t.Fatal(err)
		}
	}
	// Every link across the cut resumes (both ends report it).
	for i, n := range nodes {
		var across []*nsNode
		for j, o := range nodes {
			if (i < 2) != (j < 2) {
				across = append(across, o)
			}
		}
		n.waitEvents(t, 20*time.Second, m[i], "resumed", across)
	}
	sent := map[[2]int]uint64{}
	for i, n := range nodes {
		for to, v := range mflapReport(t, n, syscall.SIGUSR1, "sent") {
			sent[[2]int{i + 1, to}] = v[0]
		}
	}
	deadline := time.Now().Add(20 * time.Second)
	var total uint64
	for i, n := range nodes {
		for {
			got := mflapReport(t, n, syscall.SIGUSR2, "got")
			done := true
			for from := 1; from <= 5; from++ {
				if from == i+1 {
					continue
				}
				want := sent[[2]int{from, i + 1}]
				g := got[from]
				if len(g) < 3 {
					g = []uint64{0, 0, 0}
				}
				if g[1] != 0 || g[2] != 0 || g[0] > want {
					t.Fatalf("%s from mh%d: got %d of %d, %d duplicated, %d holes (lost or reordered)", n.name, from, g[0], want, g[1], g[2])
				}
				if g[0] < want {
					done = false
				}
			}
			if done {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: not everything arrived: %v (sent to it: %v)", n.name, got, sent)
			}
			time.Sleep(100 * time.Millisecond) // the next look; bounded by deadline
		}
	}
	for _, v := range sent {
		total += v
	}
	for _, n := range nodes {
		for _, l := range n.lines {
			if l.fields[0] == "left" {
				t.Errorf("%s: %s", n.name, strings.Join(l.fields, " "))
			}
		}
	}
	t.Logf("10 s partition of {1,2} from {3,4,5}: %d messages sent in all, every one delivered once, in order; every link across resumed; no PeerLeft", total)
}
