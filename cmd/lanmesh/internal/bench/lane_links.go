package bench

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"
)

// posLink is one end of a way to carry positions: what the lane part
// measures, so that the lane and the TCP link run the same stream. One
// goroutine (the game's pump) calls its methods, never two at once.
//
// nodePosLink (lane_node.go) is the one implementation: a linked pair of
// Nodes, SendChannel with the kind (Sequenced, one channel an object, or
// Reliable), Xfer a tick, Get at the receiver.
type posLink interface {
	// send queues a position for the end of the tick (the lane keeps only
	// the newest per object).
	send(p LanePos) error
	// tick ends a tick: queued positions go out (Xfer, Flush).
	tick(now time.Time) error
	// recv calls fn with each position received since the last call.
	recv(fn func(LanePos))
	// note says anything worth reporting after a stream ("" if nothing).
	note() string
	close() error
}

// streamSpec is one stream of positions.
type streamSpec struct {
	run     uint16
	objects int
	tick    time.Duration
	dur     time.Duration
}

// streamResult is what a stream measured: the ages in the order sampled,
// and the longest either pump went between two ticks beyond one tick
// (a stall of this process: on a loaded machine it, not the link, can be
// what the ages show).
type streamResult struct {
	samples []time.Duration
	stall   time.Duration
}

// stallMeter keeps the longest gap between calls of tick beyond one tick.
type stallMeter struct {
	last time.Time
	max  time.Duration
}

func (m *stallMeter) tick(now time.Time, period time.Duration) {
	if !m.last.IsZero() {
		m.max = max(m.max, now.Sub(m.last)-period)
	}
	m.last = now
}

// runStream sends spec.objects positions a tick from snd for spec.dur and,
// on its own ticker, takes what rcv received and samples the ages. Both
// ends' pumps run on goroutines of their own, as two games would.
func runStream(ctx context.Context, snd, rcv posLink, spec streamSpec) (streamResult, error) {
	epoch := time.Now()
	mono := func() int64 { return int64(time.Since(epoch)) + 1 } // never 0: 0 is "none" to the sampler
	ctx, cancel := context.WithTimeout(ctx, spec.dur)
	defer cancel()
	var wg sync.WaitGroup
	var sendErr error
	var sendStall, recvStall stallMeter
	wg.Add(1)
	go func() {
		defer wg.Done()
		t := time.NewTicker(spec.tick)
		defer t.Stop()
		var seq uint32
		for {
			seq++
			for o := range spec.objects {
				p := LanePos{Obj: uint16(o), Run: spec.run, Seq: seq, Sent: mono(), X: float32(seq), Y: float32(o)}
				if err := snd.send(p); err != nil {
					sendErr = err
					return
				}
			}
			now := time.Now()
			sendStall.tick(now, spec.tick)
			if err := snd.tick(now); err != nil {
				sendErr = err
				return
			}
			select {
			case <-t.C:
			case <-ctx.Done():
				return
			}
		}
	}()
	s := newAgeSampler(spec.run, spec.objects)
	t := time.NewTicker(spec.tick)
	defer t.Stop()
	var recvErr error
loop:
	for {
		select {
		case <-t.C:
		case <-ctx.Done():
			break loop
		}
		now := time.Now()
		recvStall.tick(now, spec.tick)
		if err := rcv.tick(now); err != nil {
			recvErr = err
			break
		}
		rcv.recv(s.see)
		s.sample(mono())
	}
	cancel()
	wg.Wait()
	if err := errors.Join(sendErr, recvErr); err != nil {
		return streamResult{}, err
	}
	if len(s.samples) == 0 {
		return streamResult{}, fmt.Errorf("no position arrived in %v", spec.dur)
	}
	return streamResult{s.samples, max(sendStall.max, recvStall.max)}, nil
}
