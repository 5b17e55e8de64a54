package bench

import (
	"bufio"
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"net"
	"slices"
	"sync"
	"time"

	"github.com/lanmesh/lanmesh/mesh"
)

// The round-trip percentiles reported, with their names.
var rttPercentiles = []struct {
	name string
	p    float64
}{{"p50", 0.50}, {"p99", 0.99}, {"p99.9", 0.999}}

const rawPingName = "raw TCP ping-pong, 2-byte prefix, buffered"

func runRTT(ctx context.Context, r *runner) ([]Result, error) {
	return rttResults(ctx, r, nil)
}

// rttResults measures the round trip of a 32-byte message three ways, each
// rep taking the same number of samples of each: Node.Request answered by
// Node.Reply on a goroutine that Receives; a Messenger ping-pong (Send,
// Xfer, Receive on both ends: the link alone); and raw TCP ping-pong.
func rttResults(ctx context.Context, r *runner, mod configMod) ([]Result, error) {
	samples := pick(r, 20000, 2000)
	var cl closers
	defer func() { cl.close() }()

	a, b, err := nodePair(ctx, "binary", mod, &cl)
	if err != nil {
		return nil, err
	}
	echoCtx, stopEcho := context.WithCancel(ctx)
	var echoes sync.WaitGroup
	cl.add(func() { stopEcho(); echoes.Wait() })
	echoRequests(echoCtx, b, &echoes)

	ma, mb, err := messengerPair(ctx, mod, &cl)
	if err != nil {
		return nil, err
	}
	echoes.Add(1)
	go func() {
		defer echoes.Done()
		for {
			msg, err := mb.Receive(echoCtx)
			if err != nil {
				return
			}
			mb.Send(msg.Msg)
			mb.Xfer()
		}
	}()

	client, server, err := tcpPair(ctx)
	if err != nil {
		return nil, err
	}
	echoes.Add(1)
	go func() {
		defer echoes.Done()
		rawEcho(server)
	}()
	cl.add(func() { client.Close(); server.Close() })

	to := b.ID()
	msg := &Bin32{}
	ping := &Bin32{}
	rc, wc := bufio.NewReader(client), bufio.NewWriter(client)
	frame := make([]byte, 32)
	putPrefix(frame, 2)
	ways := []struct {
		name string
		once func(i int) error
	}{
		{"Node.Request/Reply", func(i int) error {
			msg.Seq = uint64(i)
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			_, err := a.Request(rctx, to, msg)
			return err
		}},
		{"Messenger ping-pong", func(i int) error {
			ping.Seq = uint64(i)
			if err := ma.Send(ping); err != nil {
				return err
			}
			ma.Xfer()
			rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			_, err := ma.Receive(rctx)
			return err
		}},
		{"raw", func(i int) error {
			binary.BigEndian.PutUint64(frame[24:], uint64(i))
			wc.Write(frame)
			if err := wc.Flush(); err != nil {
				return err
			}
			client.SetReadDeadline(time.Now().Add(5 * time.Second))
			_, err := io.ReadFull(rc, frame)
			return err
		}},
	}
	buf := make([]time.Duration, samples)
	cols, err := r.repeat(ctx, "32 B round trip", func() ([]float64, error) {
		var v []float64
		for _, w := range ways {
			for i := range buf {
				t0 := time.Now()
				if err := w.once(i); err != nil {
					return nil, fmt.Errorf("%s: %w", w.name, err)
				}
				buf[i] = time.Since(t0)
			}
			slices.Sort(buf)
			for _, p := range rttPercentiles {
				v = append(v, Percentile(buf, p.p).Seconds())
			}
		}
		return v, nil
	}, func(v []float64) string {
		return fmt.Sprintf("p50: request %s, messenger %s, raw %s", formatValue(v[0], UnitSeconds),
			formatValue(v[3], UnitSeconds), formatValue(v[6], UnitSeconds))
	})
	if err != nil {
		return nil, err
	}
	var out []Result
	np := len(rttPercentiles)
	for wi, w := range ways[:2] {
		for pi, p := range rttPercentiles {
			res := Result{Name: fmt.Sprintf("32 B, %s, %s", w.name, p.name), Unit: UnitSeconds,
				Stat: Summarize(cols[wi*np+pi])}
			if pi == 0 {
				res.Note = fmt.Sprintf("%d samples a rep", samples)
			}
			out = append(out, res.withBaseline(rawPingName, Summarize(cols[2*np+pi])))
		}
	}
	return out, nil
}

// messengerPair links two Messengers (Listen, Dial) over loopback.
func messengerPair(ctx context.Context, mod configMod, cl *closers) (a, b *mesh.Messenger, err error) {
	cfgA := messengerConfig(nodeConfig("bench-ma", "binary", mod))
	cfgB := messengerConfig(nodeConfig("bench-mb", "binary", mod))
	ln, err := mesh.Listen(cfgB, "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	defer ln.Close()
	dctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	type accepted struct {
		m   *mesh.Messenger
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		m, err := ln.Accept(dctx)
		ch <- accepted{m, err}
	}()
	a, err = mesh.Dial(dctx, cfgA, ln.Addr().String())
	if err != nil {
		return nil, nil, err
	}
	cl.add(func() { a.Close() })
	acc := <-ch
	if acc.err != nil {
		return nil, nil, acc.err
	}
	cl.add(func() { acc.m.Close() })
	return a, acc.m, nil
}

// rawEcho sends back every 32-byte frame that arrives on conn until it is
// closed.
func rawEcho(conn net.Conn) {
	r, w := bufio.NewReader(conn), bufio.NewWriter(conn)
	var frame [32]byte
	for {
		if _, err := io.ReadFull(r, frame[:]); err != nil {
			return
		}
		w.Write(frame[:])
		if err := w.Flush(); err != nil {
			return
		}
	}
}

// echoRequests answers every request b receives with its own message,
// until ctx ends; wg counts the goroutine.
func echoRequests(ctx context.Context, b *mesh.Node, wg *sync.WaitGroup) {
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			m, err := b.Receive(ctx)
			if err != nil {
				return
			}
			if m.IsRequest() {
				b.Reply(m, m.Msg)
			}
		}
	}()
}
