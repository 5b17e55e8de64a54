package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/lanmesh/lanmesh/mesh"
)

func runFanout(ctx context.Context, r *runner) ([]Result, error) {
	var out []Result
	for _, n := range []int{5, 10} {
		res, err := fanout(ctx, r, n)
		if err != nil {
			return out, fmt.Errorf("fan-out to %d nodes: %w", n, err)
		}
		out = append(out, res)
	}
	return out, nil
}

// fanout measures one node broadcasting 32-byte binary messages to n-1
// peers in this process: deliveries per second, all peers together. The
// baseline writes the same frames to n-1 raw TCP connections, one buffered
// writer each.
func fanout(ctx context.Context, r *runner, n int) (Result, error) {
	d := pick(r, time.Second, 200*time.Millisecond)
	var cl closers
	defer func() { cl.close() }()
	hub, err := mesh.NewNode(nodeConfig("bench-hub", "binary", nil))
	if err != nil {
		return Result{}, err
	}
	cl.addNode(hub)
	var peers []*mesh.Node
	var recv []*counter
	for i := range n - 1 {
		p, err := mesh.NewNode(nodeConfig(fmt.Sprintf("bench-peer%d", i+1), "binary", nil))
		if err != nil {
			return Result{}, err
		}
		cl.addNode(p)
		peers = append(peers, p)
		c := startNodeCounter(p)
		cl.add(c.stop)
		recv = append(recv, c)
	}
	if err := linkNodes(ctx, hub, peers...); err != nil {
		return Result{}, err
	}
	var writers []*bufio.Writer
	var raw []*counter
	for range n - 1 {
		c, s, err := tcpPair(ctx)
		if err != nil {
			return Result{}, err
		}
		rc := startRawCounter(s, 2)
		cl.add(func() { c.Close(); s.Close(); rc.wait() })
		raw = append(raw, rc)
		writers = append(writers, bufio.NewWriterSize(c, 64<<10))
	}
	total := func(cs []*counter) func() int64 {
		return func() int64 {
			var t int64
			for _, c := range cs {
				t += c.count()
			}
			return t
		}
	}
	name := fmt.Sprintf("N=%d: 1 -> %d peers, 32 B binary", n, n-1)
	cols, err := r.repeat(ctx, name, func() ([]float64, error) {
		lm, err := broadcastRate(ctx, hub, total(recv), d)
		if err != nil {
			return nil, fmt.Errorf("lanmesh: %w", err)
		}
		rw, err := rawFanoutRate(ctx, writers, total(raw), d)
		if err != nil {
			return nil, fmt.Errorf("raw: %w", err)
		}
		return []float64{lm, rw}, nil
	}, func(v []float64) string {
		return fmt.Sprintf("lanmesh %s, raw %s", formatValue(v[0], UnitMsgsPerSec), formatValue(v[1], UnitMsgsPerSec))
	})
	if err != nil {
		return Result{}, err
	}
	return Result{Name: name, Unit: UnitMsgsPerSec, Stat: Summarize(cols[0]), Higher: true,
		Note: "deliveries/s, all peers together; Broadcast, Xfer every 64"}.
		withBaseline("raw TCP to each peer, 2-byte prefix, buffered writes", Summarize(cols[1])), nil
}

// broadcastRate broadcasts for d and returns deliveries per second: every
// copy Broadcast queued, over the time to the last arrival. A peer whose
// buffer is full misses that message (Broadcast says so); the loop then
// waits a moment, as a game loop would until its next tick.
func broadcastRate(ctx context.Context, hub *mesh.Node, count func() int64, d time.Duration) (float64, error) {
	base := count()
	msg := &Bin32{}
	start := time.Now()
	deadline := start.Add(d)
	var queued int64
	for i := 0; ; i++ {
		if i%64 == 0 && time.Now().After(deadline) {
			break
		}
		msg.Seq = uint64(i)
		k, err := hub.Broadcast(msg)
		queued += int64(k)
		if err != nil {
			if !errors.Is(err, mesh.ErrBackpressure) {
				return 0, err
			}
			hub.Xfer()
			time.Sleep(50 * time.Microsecond)
		}
		if i%64 == 63 {
			hub.Xfer()
		}
	}
	hub.Xfer()
	end, err := waitCount(ctx, func() int64 { return count() - base }, queued, 10*time.Second)
	if err != nil {
		return 0, err
	}
	return float64(queued) / end.Sub(start).Seconds(), nil
}

func rawFanoutRate(ctx context.Context, ws []*bufio.Writer, count func() int64, d time.Duration) (float64, error) {
	base := count()
	frame := make([]byte, 32)
	putPrefix(frame, 2)
	start := time.Now()
	deadline := start.Add(d)
	var sent int64
	for i := 0; ; i++ {
		if i%64 == 0 && time.Now().After(deadline) {
			break
		}
		binary.BigEndian.PutUint64(frame[24:], uint64(i))
		for _, w := range ws {
			if _, err := w.Write(frame); err != nil {
				return 0, err
			}
		}
		sent += int64(len(ws))
		if i%64 == 63 {
			for _, w := range ws {
				if err := w.Flush(); err != nil {
					return 0, err
				}
			}
		}
	}
	for _, w := range ws {
		if err := w.Flush(); err != nil {
			return 0, err
		}
	}
	end, err := waitCount(ctx, func() int64 { return count() - base }, sent, 10*time.Second)
	if err != nil {
		return 0, err
	}
	return float64(sent) / end.Sub(start).Seconds(), nil
}
