//go:build linux

package mesh

import (
	"fmt"
	"os"
	ossignal "os/signal"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/lanmeshtest/netlab"
	"github.com/lanmesh/lanmesh/meshkey"
)

// flapRate is how many messages a second each flap node sends its peer.
const flapRate = 200

// nsFlapSilence is the flap nodes' Silence (the default).
const nsFlapSilence = 3 * time.Second

// flapHelper is the child side of the flap tests: a node with the default
// link timers (Silence 3 s, a ping every 500 ms) that sends its one peer
// Msg32s numbered 1, 2, ... at flapRate and checks what it receives. Lines:
//
//	ready ID
//	joined ID UNIXNANO NAME | left ID UNIXNANO REASON
//	sent N                      (after SIGUSR1: it stops sending; N were accepted by Send)
//
// SIGHUP starts the sending (with START_IDLE set it waits for one). RATE
// overrides flapRate; PEER and LISTEN put the node on given addresses (a
// netlab Wire) with discovery off; MESH_KEY (a key's text form) keys it.
//
//	got N DUP HOLES DELIVERED   (after each SIGUSR2: the highest number delivered in
//	                            order, the faults, and how many were delivered in all)
//
// A message Send refused is not counted and its number is offered again, so
// that the numbers accepted are 1..N with no hole: lost = accepted but never
// delivered, duplicated = delivered twice, a hole = a number skipped (lost,
// or reordered: either fails the test).
func flapHelper() {
	cfg := DefaultNodeConfig()
	cfg.NodeID = uuid.MustParse(os.Getenv("NODE_ID"))
	cfg.Name = os.Getenv("NODE_NAME")
	cfg.Mesh = "flaptest"
	cfg.Registry = testRegistry
	cfg.Link.AutoFlush = true
	cfg.Discovery.MDNS = false
	cfg.Discovery.Interval = nsInterval
	cfg.Discovery.Jitter = nsInterval / 10
	cfg.Discovery.InterfaceRefresh = 500 * time.Millisecond
	if peerAddr := os.Getenv("PEER"); peerAddr != "" {
		// Over a netlab Wire: its addresses only, no discovery.
		cfg.Discovery.Off = true
		cfg.Net.Listen = []string{os.Getenv("LISTEN")}
		cfg.Net.Peers = []string{peerAddr}
	}
	if text := os.Getenv("MESH_KEY"); text != "" {
		key, err := meshkey.Parse(text)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		cfg.Keyring = meshkey.Keyring{Primary: key}
	}
	rate := flapRate
	if r, err := strconv.Atoi(os.Getenv("RATE")); err == nil && r > 0 {
		rate = r
	}

	var mu sync.Mutex // guards the counts below
	var peer uuid.UUID
	var got, dup, reordered, delivered uint64
	cfg.OnPeer = func(ev PeerEvent) {
		switch ev.Kind {
		case PeerLeft:
			fmt.Printf("left %s %d %v\n", ev.Peer.ID, time.Now().UnixNano(), strings.ReplaceAll(fmt.Sprint(ev.Err), "\n", " "))
		default:
			mu.Lock()
			peer = ev.Peer.ID
			mu.Unlock()
			fmt.Printf("%s %s %d %s\n", ev.Kind, ev.Peer.ID, time.Now().UnixNano(), ev.Peer.Name)
		}
	}
	cfg.OnMessage = func(m Message) {
		v, ok := m.Msg.(*Msg32)
		if !ok {
			return
		}
		mu.Lock()
		delivered++
		switch {
		case v.Seq == got+1:
			got++
		case v.Seq <= got:
			dup++
		default: // a hole: what was in it comes later, or never
			reordered++
			got = v.Seq
		}
		mu.Unlock()
	}
	sigs := make(chan os.Signal, 4)
	ossignal.Notify(sigs, syscall.SIGTERM, syscall.SIGUSR1, syscall.SIGUSR2, syscall.SIGHUP)
	n, err := NewNode(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(1)
	}
	fmt.Printf("ready %s\n", n.ID())
	tick := time.NewTicker(time.Second / time.Duration(rate))
	defer tick.Stop()
	var sent uint64
	sending := os.Getenv("START_IDLE") == ""
	end := time.After(time.Hour) // a test never runs this long
	for {
		select {
		case <-tick.C:
			mu.Lock()
			to := peer
			mu.Unlock()
			if !sending || to == uuid.Nil {
				continue
			}
			if n.Send(to, &Msg32{Seq: sent + 1}) == nil {
				sent++
			}
		case s := <-sigs:
			switch s {
			case syscall.SIGHUP:
				sending = true
			case syscall.SIGUSR1:
				sending = false
				fmt.Printf("sent %d\n", sent)
			case syscall.SIGUSR2:
				mu.Lock()
				fmt.Printf("got %d %d %d %d\n", got, dup, reordered, delivered)
				mu.Unlock()
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

// flapPair starts a flap node in each of two hosts, with env added to
// their environment, and waits until each has joined the other.
func flapPair(t *testing.T, lab *netlab.Lab, env ...string) []*nsNode {
	ids := sortedIDs(2)
	nodes := make([]*nsNode, 2)
	for i, h := range lab.Hosts {
		nodes[i] = &nsNode{host: h, id: ids[i], name: h.Name}
		nodes[i].proc = h.StartHelper(t, "flap", append([]string{"NODE_ID=" + ids[i].String(), "NODE_NAME=" + h.Name}, env...)...)
		nodes[i].waitLine(t, 10*time.Second, 0, func(f []string) bool { return f[0] == "ready" })
	}
	for _, n := range nodes {
		n.waitEvents(t, 10*time.Second, 0, "joined", nodes)
	}
	return nodes
}

// flapAccount stops the sending and waits (bounded) until each node has
// received, in order, all its peer's Send accepted; it fails the test on any
// loss, duplicate, reordering, or PeerLeft, and returns the totals.
func flapAccount(t *testing.T, nodes []*nsNode) (sent [2]uint64) {
	t.Helper()
	for i, n := range nodes {
		from := n.mark()
		if err := n.proc.Signal(syscall.SIGUSR1); err != nil {
			t.Fatal(err)
		}
		l := n.waitLine(t, 5*time.Second, from, func(f []string) bool { return f[0] == "sent" })
		sent[i], _ = strconv.ParseUint(l.fields[1], 10, 64)
	}
	deadline := time.Now().Add(20 * time.Second)
	for i, n := range nodes {
		want := sent[1-i]
		for {
			from := n.mark()
			if err := n.proc.Signal(syscall.SIGUSR2); err != nil {
				t.Fatal(err)
			}
			l := n.waitLine(t, 5*time.Second, from, func(f []string) bool { return f[0] == "got" })
			var got, dup, reord uint64
			fmt.Sscan(strings.Join(l.fields[1:], " "), &got, &dup, &reord)
			if dup != 0 || reord != 0 || got > want {
				t.Fatalf("%s: got %d of %d, %d duplicated, %d holes (lost or reordered)", n.name, got, want, dup, reord)
			}
			if got == want {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: got %d of the %d its peer's Send accepted: %d lost", n.name, got, want, want-got)
			}
			time.Sleep(100 * time.Millisecond) // the next look; bounded by deadline
		}
	}
	for _, n := range nodes {
		for _, l := range n.lines {
			if l.fields[0] == "left" {
				t.Errorf("%s: %s", n.name, strings.Join(l.fields, " "))
			}
		}
	}
	return sent
}

// TestNetnsFlap (issue 12): cuts of 0.5, 2, 5 and 20 s by interface down,
// and 5% packet loss each way, while both nodes send 200 messages a second:
// every message Send accepted arrives once, in order, and no side reports
// the peer left. A cut shorter than Silence (3 s, the default) is carried
// by TCP itself; a longer one ends the link, and the next link resumes the
// session (each side reports PeerResuming, then PeerResumed, once). A 7 s
// cut is run on a keyed mesh too.
func TestNetnsFlap(t *testing.T) {
	for _, cut := range []time.Duration{500 * time.Millisecond, 2 * time.Second, 5 * time.Second, 20 * time.Second} {
		t.Run("cut"+cut.String(), func(t *testing.T) { flapCut(t, cut) })
	}
	// Keyed: a cut past 2 x Silence, so that the link ends and is resumed
	// (a shorter one is carried by TCP and would pass without keyed resume).
	keyedCut := 2*nsFlapSilence + time.Second
	t.Run("keyed-cut"+keyedCut.String(), func(t *testing.T) { flapCut(t, keyedCut, "MESH_KEY="+testKey(1).String()) })
	t.Run("loss5pct", func(t *testing.T) {
		lab := netlab.New(t, 2)
		for _, h := range lab.Hosts {
			if err := h.DropPercent(5, 5); err != nil {
				t.Skipf("no packet loss in this lab: %v", err)
			}
		}
		nodes := flapPair(t, lab)
		for _, n := range nodes {
			flapWaitGot(t, n, 20*flapRate) // about 20 s of traffic
		}
		sent := flapAccount(t, nodes)
		t.Logf("5%% loss each way: sent %d and %d, all delivered once, in order; no PeerLeft", sent[0], sent[1])
	})
}

// flapCut is one cut of TestNetnsFlap: the nodes' environment gets env.
func flapCut(t *testing.T, cut time.Duration, env ...string) {
	lab := netlab.New(t, 2)
	nodes := flapPair(t, lab, env...)
	// Traffic flows before the cut: wait for it, not for a time.
	for _, n := range nodes {
		flapWaitGot(t, n, flapRate/2)
	}
	m := marks(nodes)
	if err := lab.Hosts[1].LinkDown(); err != nil {
		t.Fatal(err)
	}
	time.Sleep(cut) // the cut itself
	if err := lab.Hosts[1].LinkUp(); err != nil {
		t.Fatal(err)
	}
	// Traffic flows again after it.
	for _, n := range nodes {
		flapWaitGot(t, n, flapGot(t, n)+flapRate)
	}
	sent := flapAccount(t, nodes)
	var events []string
	for i, n := range nodes {
		var resuming, resumed int
		for _, l := range n.lines[m[i]:] {
			switch l.fields[0] {
			case "resuming":
				resuming++
			case "resumed":
				resumed++
			}
		}
		// A side that had not yet noticed the end when the new link
		// came sees PeerResumed alone (documented on PeerResuming).
		if resuming > resumed || resumed > 1 || cut >= 2*nsFlapSilence && resumed != 1 {
			t.Errorf("%s: %d PeerResuming and %d PeerResumed after a cut of %v", n.name, resuming, resumed, cut)
		}
		events = append(events, fmt.Sprintf("%s resumed %d", n.name, resumed))
	}
	t.Logf("cut of %v: sent %d and %d, all delivered once, in order (0 lost, 0 duplicated, 0 reordered); no PeerLeft; %v",
		cut, sent[0], sent[1], events)
}

// flapGot asks n how many messages it has received in order.
func flapGot(t *testing.T, n *nsNode) uint64 {
	t.Helper()
	from := n.mark()
	if err := n.proc.Signal(syscall.SIGUSR2); err != nil {
		t.Fatal(err)
	}
	l := n.waitLine(t, 5*time.Second, from, func(f []string) bool { return f[0] == "got" })
	got, _ := strconv.ParseUint(l.fields[1], 10, 64)
	return got
}

// flapWaitGot waits (bounded: 60 s) until n has received at least want.
func flapWaitGot(t *testing.T, n *nsNode, want uint64) {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for flapGot(t, n) < want {
		if time.Now().After(deadline) {
			t.Fatalf("%s: fewer than %d messages after 60 s", n.name, want)
		}
		time.Sleep(100 * time.Millisecond) // the next look; bounded by deadline
	}
}

// TestNetnsSoakBadWire (issue 12): two nodes on a Wire with a 7 ms round
// trip and 10% loss in bursts of 4 (a poor Wi-Fi link), with the default
// link timers: LANMESH_SOAK (a duration, 10m for the figure) idle,
// then as long exchanging 60 messages a second each way. No PeerLeft, and
// every message Send accepted arrives once, in order. Gated: it is long.
//
// Measured once (LANMESH_SOAK=10m, 2 cores shared): the busy phase held
// (35789 and 35768 messages, all once and in order, no PeerLeft), but the
// idle phase did not: each side saw the other silent 3 times in 10 min (with
// a 3 s Silence and no grace, about once in 45 s). On an idle link a burst
// of 4 lost frames is the segment and its retransmissions, so TCP's timer
// backs off past 2 x Silence. Measured again with resumable links on
// (LANMESH_SOAK=10m, same machine, 3 other helpers busy): both phases held,
// 35698 and 35710 messages all once and in order, no PeerLeft (the wire
// dropped 8996 of 97859 frames). With resumable links such a link is resumed
// (PeerResuming, PeerResumed: nothing lost, and no PeerLeft, which is what
// this test checks); dialling the new connection on the first Silence would
// spare even the pause (SPEC.md section 12.9).
func TestNetnsSoakBadWire(t *testing.T) {
	phase, err := time.ParseDuration(os.Getenv("LANMESH_SOAK"))
	if err != nil || phase <= 0 {
		t.Skip("set LANMESH_SOAK to a duration (10m for issue 12's figure) to run the soak")
	}
	lab := netlab.New(t, 2)
	w, err := lab.NewWire(lab.Hosts[0], lab.Hosts[1], netlab.Impairment{Delay: 3500 * time.Microsecond, Loss: 0.10, Burst: 4})
	if err != nil {
		t.Fatal(err)
	}
	ids := sortedIDs(2)
	addrs := []string{w.AddrA.String() + ":7500", w.AddrB.String() + ":7500"}
	nodes := make([]*nsNode, 2)
	for i, h := range lab.Hosts {
		nodes[i] = &nsNode{host: h, id: ids[i], name: h.Name}
		nodes[i].proc = h.StartHelper(t, "flap", "NODE_ID="+ids[i].String(), "NODE_NAME="+h.Name,
			"LISTEN="+addrs[i], "PEER="+addrs[1-i], "RATE=60", "START_IDLE=1")
		nodes[i].waitLine(t, 10*time.Second, 0, func(f []string) bool { return f[0] == "ready" })
	}
	for _, n := range nodes {
		n.waitEvents(t, 20*time.Second, 0, "joined", nodes)
	}
	time.Sleep(phase) // the idle phase itself
	for _, n := range nodes {
		if err := n.proc.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	time.Sleep(phase) // the busy phase itself
	sent := flapAccount(t, nodes)
	st := w.Stats()
	t.Logf("%v idle, %v at 60 msgs/s each way over 7 ms RTT with 10%% loss in bursts of 4: sent %d and %d, all delivered once, in order; no PeerLeft; wire %+v",
		phase, phase, sent[0], sent[1], st)
}
