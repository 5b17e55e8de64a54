package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"runtime"
	"time"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/codec"
	"github.com/lanmesh/lanmesh/mesh"
)

func runCost(ctx context.Context, r *runner) ([]Result, error) {
	var out []Result
	for _, k := range []int{1, 10, 50} {
		res, err := idleLinks(ctx, r, k)
		if err != nil {
			return out, fmt.Errorf("%d idle links: %w", k, err)
		}
		out = append(out, res...)
	}
	res, err := allocsPerMessage(ctx, r)
	if err != nil {
		return out, fmt.Errorf("allocations: %w", err)
	}
	return append(out, res...), nil
}

// memNow returns the live heap plus goroutine stacks after a collection,
// and the number of goroutines.
func memNow() (bytes float64, goroutines int) {
	runtime.GC()
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return float64(ms.HeapAlloc + ms.StackInuse), runtime.NumGoroutine()
}

// idleLinks measures what k idle links cost: a hub node and k peers are
// started first; the figures are the growth, divided by k, once the hub
// has linked with every peer. Both ends of each link live in this process,
// so a link's cost counts both.
func idleLinks(ctx context.Context, r *runner, k int) ([]Result, error) {
	what := fmt.Sprintf("%d idle links", k)
	cols, err := r.repeat(ctx, what, func() ([]float64, error) {
		var cl closers
		defer func() { cl.close() }()
		hub, err := mesh.NewNode(nodeConfig("bench-hub", "binary", nil))
		if err != nil {
			return nil, err
		}
		cl.addNode(hub)
		var peers []*mesh.Node
		for i := range k {
			p, err := mesh.NewNode(nodeConfig(fmt.Sprintf("bench-peer%d", i+1), "binary", nil))
			if err != nil {
				return nil, err
			}
			cl.addNode(p)
			peers = append(peers, p)
		}
		m0, g0 := memNow()
		if err := linkNodes(ctx, hub, peers...); err != nil {
			return nil, err
		}
		// Let the first pings go both ways: a link's buffers are in use.
		time.Sleep(pick(r, 600*time.Millisecond, 200*time.Millisecond))
		m1, g1 := memNow()
		return []float64{(m1 - m0) / float64(k), float64(g1-g0) / float64(k)}, nil
	}, func(v []float64) string {
		return fmt.Sprintf("%s, %s per link", formatValue(v[0], UnitBytes), formatValue(v[1], UnitGoroutines))
	})
	if err != nil {
		return nil, err
	}
	return []Result{
		{Name: fmt.Sprintf("memory per link, %d idle", k), Unit: UnitBytes, Stat: Summarize(cols[0]),
			Note: "heap + stacks, both ends of the link"},
		{Name: fmt.Sprintf("goroutines per link, %d idle", k), Unit: UnitGoroutines, Stat: Summarize(cols[1]),
			Note: "both ends of the link"},
	}, nil
}

// rawPeer is a hand-made peer of a node: a TCP connection that did the
// unkeyed handshake by hand (SPEC.md) and then moves bytes itself, so that
// the node's side of a link is measured alone.
type rawPeer struct {
	conn net.Conn
	id   uuid.UUID
}

func dialRawPeer(ctx context.Context, n *mesh.Node) (*rawPeer, error) {
	cfg := nodeConfig("bench-raw", "binary", nil)
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp4", n.Addrs()[0].String())
	if err != nil {
		return nil, err
	}
	if err := rawHandshake(ctx, conn, cfg); err != nil {
		conn.Close()
		return nil, err
	}
	if err := waitLinked(ctx, n, cfg.NodeID); err != nil {
		conn.Close()
		return nil, err
	}
	return &rawPeer{conn: conn, id: cfg.NodeID}, nil
}

// rawHandshake runs the unkeyed handshake on conn as SPEC.md writes it:
// send a Hello, read the peer's, send Accept, read Accept.
func rawHandshake(ctx context.Context, conn net.Conn, cfg mesh.NodeConfig) error {
	if d, ok := ctx.Deadline(); ok {
		conn.SetDeadline(d)
		defer conn.SetDeadline(time.Time{})
	}
	frame := func(kind byte, body []byte) []byte {
		return append([]byte{'L', 'N', 'M', 'H', 1, kind, byte(len(body) >> 8), byte(len(body))}, body...)
	}
	inst := uuid.New()
	body := append(append([]byte{}, cfg.NodeID[:]...), inst[:]...)
	body = append(body, 0, 0, 0, 0) // no listen port, no suite, no flags
	for _, s := range []string{cfg.Name, cfg.Mesh, cfg.Codec} {
		body = append(append(body, byte(len(s))), s...)
	}
	body = append(body, 0, 0) // no suite data
	read := func() (byte, error) {
		hdr := make([]byte, 8)
		if _, err := io.ReadFull(conn, hdr); err != nil {
			return 0, err
		}
		n := int(hdr[6])<<8 | int(hdr[7])
		if _, err := io.ReadFull(conn, make([]byte, n)); err != nil {
			return 0, err
		}
		return hdr[5], nil
	}
	if _, err := conn.Write(frame(1, body)); err != nil {
		return err
	}
	if kind, err := read(); err != nil || kind != 1 {
		return fmt.Errorf("handshake: kind %d, %v", kind, err)
	}
	if _, err := conn.Write(frame(3, nil)); err != nil {
		return err
	}
	if kind, err := read(); err != nil || kind != 3 {
		return fmt.Errorf("handshake: kind %d, %v", kind, err)
	}
	return nil
}

// mallocs returns the process's count of heap allocations so far.
func mallocs() uint64 {
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.Mallocs
}

// allocsPerMessage counts the process's heap allocations over many 32-byte
// binary messages, on each side of a node alone: sending (Send, Xfer every
// 64) to a raw peer that discards the bytes, and receiving (Receive) what a
// raw peer writes as ready-made frames. The count covers every goroutine,
// the link's reader and writer included.
func allocsPerMessage(ctx context.Context, r *runner) ([]Result, error) {
	msgs := pick(r, 200000, 20000)
	var cl closers
	defer func() { cl.close() }()
	cfg := nodeConfig("bench-allocs", "binary", nil)
	// The raw peers never answer pings.
	cfg.Link.PingInterval = 10 * time.Second
	cfg.Link.Silence = time.Minute
	n, err := mesh.NewNode(cfg)
	if err != nil {
		return nil, err
	}
	cl.addNode(n)
	lctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	sink, err := dialRawPeer(lctx, n)
	if err != nil {
		return nil, err
	}
	cl.add(func() { sink.conn.Close() })
	go io.Copy(io.Discard, sink.conn)
	src, err := dialRawPeer(lctx, n)
	if err != nil {
		return nil, err
	}
	cl.add(func() { src.conn.Close() })
	go io.Copy(io.Discard, src.conn) // pings

	var batch []byte
	c := codec.NewBinary(registry)
	for i := range 128 {
		if batch, err = c.AppendFrame(batch, &Bin32{Seq: uint64(i)}); err != nil {
			return nil, err
		}
	}
	msg := &Bin32{}
	send := func(count int) error {
		for i := range count {
			msg.Seq = uint64(i)
			if err := sendRetry(n, sink.id, msg); err != nil {
				return err
			}
			if i%64 == 63 {
				n.Xfer()
			}
		}
		n.Xfer()
		return nil
	}
	recvCtx, stopRecv := context.WithCancel(ctx)
	defer stopRecv()
	receive := func(count int) error {
		// count is a multiple of 128: whole batches.
		werr := make(chan error, 1)
		go func() {
			for sent := 0; sent < count; sent += 128 {
				if _, err := src.conn.Write(batch); err != nil {
					werr <- err
					return
				}
			}
			werr <- nil
		}()
		rctx, cancel := context.WithTimeout(recvCtx, 30*time.Second)
		defer cancel()
		for got := 0; got < count; {
			m, err := n.Receive(rctx)
			if err != nil {
				return err
			}
			if _, isEvent := m.Msg.(*mesh.PeerEvent); !isEvent {
				got++
			}
		}
		return <-werr
	}
	msgs = msgs / 128 * 128
	cols, err := r.repeat(ctx, "allocations per 32 B message", func() ([]float64, error) {
		runtime.GC()
		m0 := mallocs()
		if err := send(msgs); err != nil {
			return nil, fmt.Errorf("send: %w", err)
		}
		m1 := mallocs()
		runtime.GC()
		m2 := mallocs()
		if err := receive(msgs); err != nil {
			return nil, fmt.Errorf("receive: %w", err)
		}
		m3 := mallocs()
		return []float64{float64(m1-m0) / float64(msgs), float64(m3-m2) / float64(msgs)}, nil
	}, func(v []float64) string {
		return fmt.Sprintf("sent %.3f, received %.3f allocs/msg", v[0], v[1])
	})
	if err != nil {
		return nil, err
	}
	note := fmt.Sprintf("%d messages a rep; the whole process's allocations", msgs)
	return []Result{
		{Name: "allocations per message sent, 32 B binary", Unit: UnitAllocs, Stat: Summarize(cols[0]), Note: note},
		{Name: "allocations per message received, 32 B binary", Unit: UnitAllocs, Stat: Summarize(cols[1]),
			Note: "the received message itself is one"},
	}, nil
}
