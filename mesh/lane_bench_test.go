package mesh

import (
	"context"
	"reflect"
	"sync/atomic"

	"github.com/lanmesh/lanmesh/lane"
	"testing"
	"time"
)

// BenchmarkNodeSendKind measures the sending end of the lane: SendKind of
// a 32-byte binary message and an Xfer a tick, with four messages a tick
// on four sequenced channels' worth of sends (one type: each tick's newest
// leaves) or unreliable. The receiver takes what arrives. allocs/op is the
// sender's and the receiver's together (the receiver decodes one value per
// message it gets).
func BenchmarkNodeSendKind(b *testing.B) {
	for _, d := range []Delivery{Sequenced, Unreliable} {
		b.Run(d.String(), func(b *testing.B) {
			a, c := benchNodes(b)
			deadline := time.Now().Add(5 * time.Second)
			for time.Now().Before(deadline) {
				a.Xfer()
				c.Xfer()
				if p, err := a.Peer(c.ID()); err == nil && p.Lane.State == "up" {
					break
				}
				time.Sleep(time.Millisecond)
			}
			to := c.ID()
			msg := &Msg32{}
			b.ReportAllocs()
			b.SetBytes(32)
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				msg.Seq = uint64(i)
				if err := a.SendKind(to, msg, d); err != nil {
					b.Fatal(err)
				}
				if i%4 == 3 {
					a.Xfer()
					for {
						if _, ok := c.Get(); !ok {
							break
						}
					}
				}
			}
			b.StopTimer()
			p, _ := a.Peer(c.ID())
			b.ReportMetric(float64(p.Lane.Stats.SentDatagrams)/float64(b.N), "datagrams/op")
		})
	}
}

// TestLaneSendDoesNotAllocate: SendKind over an agreed lane and the Xfer
// that flushes it allocate nothing for the binary codec.
func TestLaneSendDoesNotAllocate(t *testing.T) {
	// The lane is up within a few pings, and then stays up however long
	// the run takes: b stops answering below, and a lane judged blocked
	// hands its messages to the link, where b's reader decodes them (one
	// value each, which testing.AllocsPerRun counts with a's, being the
	// process's). The default BlockedAfter of 2 s was shorter than this
	// test under -race on a loaded machine: 1 alloc per op.
	stay := lane.DefaultConfig()
	stay.PingInterval, stay.BlockedPings, stay.BlockedAfter = 30*time.Millisecond, 1<<20, time.Hour
	a, b := lanePair(t, func(_ int, c *NodeConfig) { c.Lane = LaneConfig{Config: stay} })
	// The receiver's decoding would count here: b's lane stops taking
	// datagrams.
	_, lnB := laneTo(t, b, a)
	b.lane.ep.Remove(lnB)
	defer func() {
		if p, err := a.Peer(b.ID()); err != nil || p.Lane.State != "up" {
			t.Errorf("a's lane to b is %q (%v) after the run, want up: the figures above are not the lane's", p.Lane.State, err)
		}
	}()
	to := b.ID()
	msg := &Msg32{}
	for _, d := range []Delivery{Sequenced, Unreliable} {
		if n := testing.AllocsPerRun(1000, func() {
			if err := a.SendKind(to, msg, d); err != nil {
				t.Fatal(err)
			}
			a.Xfer()
		}); n != 0 {
			t.Errorf("SendKind(%v) and Xfer: %v allocs", d, n)
		}
		if n := testing.AllocsPerRun(1000, func() {
			if _, err := a.BroadcastKind(msg, d); err != nil {
				t.Fatal(err)
			}
			a.Xfer()
		}); n != 0 {
			t.Errorf("BroadcastKind(%v) and Xfer: %v allocs", d, n)
		}
	}
}

// BenchmarkLaneUnreliableThroughput is the bench's throughput figure as a
// Go benchmark, for profiles: one goroutine sends 40 unreliable 32-byte
// messages and an Xfer (one datagram), another takes them with Get (and
// Receive when none wait), as a game's pump. One op is one message sent;
// the receiver's count is reported as delivered/op (loopback drops some
// when the receiver falls behind).
func BenchmarkLaneUnreliableThroughput(b *testing.B) {
	a, c := benchNodes(b)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		a.Xfer()
		c.Xfer()
		pa, errA := a.Peer(c.ID())
		pc, errC := c.Peer(a.ID())
		if errA == nil && errC == nil && pa.Lane.State == "up" && pc.Lane.State == "up" {
			break
		}
		time.Sleep(time.Millisecond)
	}
	for _, ok := c.Get(); ok; _, ok = c.Get() {
	}
	var got atomic.Int64
	ctx, stop := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			m, ok := c.Get()
			if !ok {
				var err error
				if m, err = c.Receive(ctx); err != nil {
					return
				}
			}
			if m.Via == Unreliable {
				got.Add(1)
			}
		}
	}()
	to, msg := c.ID(), &Msg32{}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := a.SendChannel(to, msg, Unreliable, 0); err != nil {
			b.Fatal(err)
		}
		if i%40 == 39 {
			a.Xfer()
		}
	}
	a.Xfer()
	b.StopTimer()
	for last, end := int64(-1), time.Now().Add(time.Second); got.Load() != last && time.Now().Before(end); {
		last = got.Load()
		time.Sleep(20 * time.Millisecond)
	}
	stop()
	<-done
	b.ReportMetric(float64(got.Load())/float64(b.N), "delivered/op")
}

// BenchmarkLaneSendChannel is the sending end: SendChannel of unreliable
// 32-byte messages and an Xfer every 40 (one datagram). Nobody takes what
// the receiver queues (its queue fills, and it drops and counts the rest).
// One op is one message sent.
func BenchmarkLaneSendChannel(b *testing.B) {
	a, c := benchNodes(b)
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		a.Xfer()
		c.Xfer()
		if p, err := a.Peer(c.ID()); err == nil && p.Lane.State == "up" {
			break
		}
		time.Sleep(time.Millisecond)
	}
	to, msg := c.ID(), &Msg32{}
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := a.SendChannel(to, msg, Unreliable, 0); err != nil {
			b.Fatal(err)
		}
		if i%40 == 39 {
			a.Xfer()
		}
	}
}

// TestLaneReceiveAllocs: a lane datagram's messages of one type reach the
// program with one allocation a run (their values, allocated together, at
// most slabBytes of them), queued under one lock a datagram, and Get of
// them allocates nothing.
func TestLaneReceiveAllocs(t *testing.T) {
	a, b := lanePair(t, nil)
	llB, lnB := laneTo(t, b, a)
	b.lane.ep.Remove(lnB) // the test plays the endpoint's reader
	l := b.links.Load().byID[a.ID()]
	frame, err := l.codec.AppendFrame(nil, &Msg32{Seq: 1})
	if err != nil {
		t.Fatal(err)
	}
	msgs := make([]lane.Message, 40)
	for i := range msgs {
		msgs[i] = lane.Message{Kind: lane.Unreliable, Payload: frame}
	}
	for _, ok := b.Get(); ok; _, ok = b.Get() {
	}
	size := int(reflect.TypeFor[Msg32]().Size())
	want := (len(msgs)*size + slabBytes - 1) / slabBytes
	if n := testing.AllocsPerRun(10, func() { llB.deliver(l, msgs) }); n > float64(want) {
		t.Errorf("deliver of a datagram of %d messages of %d bytes: %v allocs, want %d", len(msgs), size, n, want)
	}
	if got := b.inbox.len(); got < 10*len(msgs) {
		t.Fatalf("%d messages queued, want %d", got, 11*len(msgs))
	}
	if n := testing.AllocsPerRun(100, func() {
		if m, ok := b.Get(); !ok || m.Via != Unreliable {
			t.Fatalf("Get: %v, %v", m, ok)
		}
	}); n != 0 {
		t.Errorf("Get: %v allocs per message", n)
	}
}
