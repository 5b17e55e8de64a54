//go:build linux

package mesh

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
	"github.com/lanmesh/lanmesh/lanmeshtest/netlab"
)

// lockedBuffer is a log sink for a test to read while nodes write.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (w *lockedBuffer) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

func (w *lockedBuffer) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.String()
}

// TestLaneNetnsFallbackAndBack: two nodes in two namespace hosts agree a
// lane; a firewall in one host that drops UDP (and lets TCP through) makes
// the lane blocked: sequenced messages then cross the TCP link, still
// marked Sequenced, the newest of each tick alone; the node says so once,
// with the fix, and in PeerInfo. When the rule is lifted the lane is up
// again and carries them.
func TestLaneNetnsFallbackAndBack(t *testing.T) {
	if testing.Short() {
		t.Skip("namespace test")
	}
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("skipping: nft (nftables) is not installed")
	}
	leaktest.Check(t)
	lab := netlab.New(t, 2)
	h1, h2 := lab.Hosts[0], lab.Hosts[1]
	var logs lockedBuffer
	start := func(h *netlab.Host, name string, log *slog.Logger) *Node {
		var n *Node
		err := h.Do(func() (err error) {
			cfg := DefaultNodeConfig()
			setTestConfig(&cfg, t)
			cfg.Name = name
			cfg.Discovery.Off = true
			cfg.Net.Listen = []string{netip.AddrPortFrom(h.Addr, 7700).String()}
			cfg.Lane = fastLane()
			if log != nil {
				cfg.Logger = log
			}
			n, err = NewNode(cfg)
			return err
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { n.Close() })
		return n
	}
	a := start(h1, "a", nil)
	b := start(h2, "b", slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn})))
	if err := h2.Do(func() error {
		_, err := b.Connect(testCtx(t, 5*time.Second), a.Addrs()[0].String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	waitLane(t, b, a, "up")
	waitLane(t, a, b, "up")
	if p, _ := b.Peer(a.ID()); p.Lane.Health.RTT <= 0 {
		t.Fatalf("no lane RTT: %+v", p.Lane.Health)
	}

	var last uint64
	seq := uint64(0)
	// take reads what a holds, checking that no sequenced message is older
	// than one before it, and returns the sequence numbers it got.
	take := func() []uint64 {
		var got []uint64
		for {
			m, ok := a.Get()
			if !ok {
				return got
			}
			v, ok := m.Msg.(*Msg32)
			if !ok {
				continue
			}
			if m.Via != Sequenced || v.Seq <= last {
				t.Fatalf("got %d (%v) after %d", v.Seq, m.Via, last)
			}
			last = v.Seq
			got = append(got, v.Seq)
		}
	}
	tick := func(n int) {
		for range n {
			seq++
			if err := b.SendKind(a.ID(), &Msg32{Seq: seq}, Sequenced); err != nil {
				t.Fatal(err)
			}
		}
		b.Xfer()
		a.Xfer()
	}

	if err := h2.Nft("table inet lanetest {\n chain in { type filter hook input priority 0; policy accept; meta l4proto udp drop; }\n" +
		" chain out { type filter hook output priority 0; policy accept; meta l4proto udp drop; }\n}\n"); err != nil {
		t.Fatal(err)
	}
	lifted := false
	t.Cleanup(func() {
		if !lifted {
			h2.Nft("delete table inet lanetest\n")
		}
	})
	waitUntil(t, 10*time.Second, "b's lane blocked", func() bool {
		tick(1)
		take()
		p, _ := b.Peer(a.ID())
		return p.Lane.State == "blocked"
	})
	if n := strings.Count(logs.String(), "allow UDP to port"); n != 1 {
		t.Fatalf("the blocked lane was told %d times, want once:\n%s", n, logs.String())
	}
	if !strings.Contains(logs.String(), fmt.Sprint(b.LanePort())) {
		t.Fatalf("the warning does not name the port %d:\n%s", b.LanePort(), logs.String())
	}

	// Blocked: ten positions a tick, the link carries the newest alone.
	waitUntil(t, 5*time.Second, "what was sent before", func() bool {
		b.Xfer()
		take()
		return last == seq
	})
	for round := range 10 {
		tick(10)
		want := seq
		var got []uint64
		waitUntil(t, 5*time.Second, fmt.Sprintf("round %d's newest over the link", round), func() bool {
			b.Xfer()
			got = append(got, take()...)
			return len(got) > 0 && got[len(got)-1] == want
		})
		if len(got) != 1 {
			t.Fatalf("round %d: got %v over the fallback, want only %d", round, got, want)
		}
	}
	p, _ := b.Peer(a.ID())
	if p.Lane.State != "blocked" || p.Lane.Stats.Superseded < 90 {
		t.Fatalf("after the fallback rounds: %+v", p.Lane)
	}
	sentOnLane := p.Lane.Stats.SentMessages

	if err := h2.Nft("delete table inet lanetest\n"); err != nil {
		t.Fatal(err)
	}
	lifted = true
	waitUntil(t, 10*time.Second, "b's lane back up", func() bool {
		tick(1)
		take()
		p, _ := b.Peer(a.ID())
		return p.Lane.State == "up"
	})
	waitUntil(t, 5*time.Second, "a sequenced message over UDP again", func() bool {
		tick(1)
		take()
		p, _ := b.Peer(a.ID())
		return p.Lane.Stats.SentMessages > sentOnLane && last == seq
	})
	if n := strings.Count(logs.String(), "allow UDP to port"); n != 1 {
		t.Fatalf("told %d times", n)
	}
}
