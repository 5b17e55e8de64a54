package mesh

import (
	"context"
	"testing"
	"time"
)

// benchNodes links two nodes over loopback TCP (one dial, no discovery).
func benchNodes(b *testing.B) (*Node, *Node) { return benchNodesResume(b, false) }

// benchNodesResume is benchNodes with resumable links on or off.
func benchNodesResume(b *testing.B, resume bool) (*Node, *Node) {
	b.Helper()
	mk := func(name string) *Node {
		cfg := DefaultNodeConfig()
		setTestConfig(&cfg, b)
		cfg.Resume.Disabled = !resume
		cfg.Name = name
		cfg.Net.Listen = []string{"127.0.0.1:0"}
		cfg.Discovery.Off = true
		n, err := NewNode(cfg)
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(func() { n.Close() })
		return n
	}
	a, c := mk("a"), mk("b")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if _, err := a.Connect(ctx, c.Addrs()[0].String()); err != nil {
		b.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for len(linkedPeers(c)) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	return a, c
}

// BenchmarkNodeSendGet measures the node's pump on one link: Send of a
// 32-byte binary message (a pointer reused, as a game would), Xfer every
// 64 messages, and Get on the other node. allocs/op counts both ends: the
// one allocation per message is the received message value. cpu-ns/op is
// the process's CPU time per message (Unix).
func BenchmarkNodeSendGet(b *testing.B) { benchNodeSendGet(b, false) }

// BenchmarkNodeSendGetResume is BenchmarkNodeSendGet on a resumable link:
// each message is also journaled, and acknowledgements ride on the pings
// and writes.
func BenchmarkNodeSendGetResume(b *testing.B) { benchNodeSendGet(b, true) }

func benchNodeSendGet(b *testing.B, resume bool) {
	a, c := benchNodesResume(b, resume)
	to := c.ID()
	msg := &Msg32{}
	done := make(chan struct{})
	b.ReportAllocs()
	b.SetBytes(32)
	b.ResetTimer()
	cpu0 := cpuTime()
	go func() {
		defer close(done)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		for i := 0; i < b.N; i++ {
			if m, ok := c.Get(); ok {
				_ = m
				continue
			}
			if _, err := c.Receive(ctx); err != nil {
				return
			}
		}
	}()
	for i := 0; i < b.N; i++ {
		msg.Seq = uint64(i)
		for a.Send(to, msg) != nil {
			a.Xfer()
			time.Sleep(10 * time.Microsecond)
		}
		if i%64 == 63 {
			a.Xfer()
		}
	}
	a.Xfer()
	<-done
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "msgs/s")
	if cpu := cpuTime() - cpu0; cpu > 0 {
		// Both nodes' goroutines, the runtime's too: what a message costs
		// in CPU, which other programs' load changes less than ns/op.
		b.ReportMetric(float64(cpu.Nanoseconds())/float64(b.N), "cpu-ns/op")
	}
}

// TestNodeSendDoesNotAllocate: the node's Send (table lookup, link buffer,
// binary encode) allocates nothing, with the traffic log off.
func TestNodeSendDoesNotAllocate(t *testing.T) {
	t.Run("plain", func(t *testing.T) { testNodeSendDoesNotAllocate(t, false) })
	t.Run("resume", func(t *testing.T) { testNodeSendDoesNotAllocate(t, true) })
}

func testNodeSendDoesNotAllocate(t *testing.T, resume bool) {
	nodes := startNodes(t, nodeNet{name: "mem", mem: NewMemNetwork()}, 2, func(i int, c *NodeConfig) {
		c.Resume.Disabled = !resume
		if i == 1 {
			c.Net.Peers = nil
		}
		c.Link.SendBufferLimit = 64 << 20
	})
	fullMesh(t, nodes)
	a, to := nodes[0], nodes[1].ID()
	msg := &Msg32{}
	if n := testing.AllocsPerRun(1000, func() {
		if err := a.Send(to, msg); err != nil {
			t.Fatal(err)
		}
	}); n != 0 {
		t.Errorf("Send: %v allocs per message", n)
	}
	if n := testing.AllocsPerRun(100, func() { a.Xfer() }); n != 0 {
		t.Errorf("Xfer: %v allocs per call", n)
	}
	// Broadcast encodes into a pooled buffer, which the race detector's
	// sync.Pool drops now and then: counted without it only.
	if n := testing.AllocsPerRun(1000, func() {
		if _, err := a.Broadcast(msg); err != nil {
			t.Fatal(err)
		}
	}); n != 0 && !raceOn {
		t.Errorf("Broadcast: %v allocs per message", n)
	}
	// Get of a stream item copies it out: nothing allocated on the way.
	b := nodes[1]
	a.Xfer()
	waitUntil(t, 5*time.Second, "messages at b", func() bool { return b.inbox.len() > 100 })
	if n := testing.AllocsPerRun(100, func() { b.Get() }); n != 0 {
		t.Errorf("Get: %v allocs per message", n)
	}
}
