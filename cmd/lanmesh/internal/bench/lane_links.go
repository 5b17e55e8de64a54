package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/lanmesh/lanmesh/lane"
	"github.com/lanmesh/lanmesh/mesh"
)

// posLink is one end of a way to carry positions: what the lane part
// measures, so that the lane and the TCP link run the same stream. One
// goroutine (the game's pump) calls its methods, never two at once.
//
// When the Node gets delivery kinds, each implementation becomes a few
// lines over a linked pair of Nodes: send is Send(peer, &p, kind), tick is
// Xfer, recv takes Get until nil.
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

// tcpPosLink carries positions over a mesh link: a Messenger, the binary
// codec, Send each, Xfer once a tick, Get at the receiver.
type tcpPosLink struct {
	m       *mesh.Messenger
	refused int // sends refused (ErrBackpressure): the game would drop those
	lastErr error
}

var _ posLink = (*tcpPosLink)(nil)

func (t *tcpPosLink) send(p LanePos) error {
	err := t.m.Send(&p)
	if errors.Is(err, mesh.ErrBackpressure) {
		t.refused++
		t.lastErr = err
		return nil
	}
	return err
}

func (t *tcpPosLink) tick(time.Time) error { return t.m.Xfer() }

func (t *tcpPosLink) recv(fn func(LanePos)) {
	for m, ok := t.m.Get(); ok; m, ok = t.m.Get() {
		if p, ok := m.Msg.(*LanePos); ok {
			fn(*p)
		}
	}
}

func (t *tcpPosLink) note() string {
	if t.refused == 0 {
		return ""
	}
	n := t.refused
	t.refused = 0
	return fmt.Sprintf("TCP refused %d sends (send buffer full)", n)
}

func (t *tcpPosLink) close() error { return t.m.Close() }

// laneLinkConfig is the mesh link configuration of the TCP side: the
// part's registry, binary codec, a long Silence (a loaded machine must not
// drop the link mid-stream) and a short close (a backlogged link is
// abandoned, not flushed).
func laneLinkConfig(name string) mesh.Config {
	nc := nodeConfig(name, "binary", nil)
	cfg := mesh.DefaultConfig()
	cfg.Name, cfg.Mesh, cfg.Codec, cfg.Registry = nc.Name, nc.Mesh, "binary", laneRegistry
	cfg.Link = nc.Link
	cfg.Link.CloseTimeout = 200 * time.Millisecond
	return cfg
}

// tcpPosPair links a Messenger that listens on lis (inside listenIn) with
// one that dials it (inside dialIn). listenIn and dialIn run a function in
// a host's network namespace (netlab's Host.Do), or just run it.
func tcpPosPair(ctx context.Context, listenIn, dialIn func(func() error) error, lis netip.Addr) (snd, rcv *tcpPosLink, err error) {
	var ln *mesh.Listener
	if err := listenIn(func() (err error) {
		ln, err = mesh.Listen(laneLinkConfig("lane-bench-rcv"), netip.AddrPortFrom(lis, 0).String())
		return err
	}); err != nil {
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
	var a *mesh.Messenger
	if err := dialIn(func() (err error) {
		a, err = mesh.Dial(dctx, laneLinkConfig("lane-bench-snd"), ln.Addr().String())
		return err
	}); err != nil {
		<-ch
		return nil, nil, err
	}
	acc := <-ch
	if acc.err != nil {
		a.Close()
		return nil, nil, acc.err
	}
	return &tcpPosLink{m: a}, &tcpPosLink{m: acc.m}, nil
}

// lanePosLink carries positions over a lane: Enqueue (Sequenced, one
// channel per object) each, Flush once a tick; the receiver's endpoint
// reader hands positions to an inbox that recv empties.
type lanePosLink struct {
	ep   *lane.Endpoint
	l    *lane.Lane
	kind lane.Kind
	buf  []byte

	notUp int // ticks while the lane was not Up (its messages waited)

	mu    sync.Mutex // guards inbox
	inbox []LanePos
	spare []LanePos
}

var _ posLink = (*lanePosLink)(nil)

func (l *lanePosLink) send(p LanePos) error {
	l.buf, _ = p.AppendBinary(l.buf[:0])
	_, err := l.l.Enqueue(l.kind, byte(p.Obj), l.buf)
	return err
}

func (l *lanePosLink) tick(now time.Time) error {
	if l.l.State() != lane.Up {
		l.notUp++
	}
	return l.l.Flush(now)
}

// deliver runs on the endpoint's reader.
func (l *lanePosLink) deliver(msgs []lane.Message) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, m := range msgs {
		var p LanePos
		if p.UnmarshalBinary(m.Payload) == nil {
			l.inbox = append(l.inbox, p)
		}
	}
}

func (l *lanePosLink) recv(fn func(LanePos)) {
	l.mu.Lock()
	got := l.inbox
	l.inbox = l.spare[:0]
	l.mu.Unlock()
	for _, p := range got {
		fn(p)
	}
	l.spare = got
}

func (l *lanePosLink) note() string {
	if l.notUp == 0 {
		return ""
	}
	n := l.notUp
	l.notUp = 0
	return fmt.Sprintf("the lane was not up for %d ticks (its messages waited)", n)
}

func (l *lanePosLink) close() error { return l.ep.Close() }

// lanePosPair opens a UDP socket on each address (inside inA and inB), an
// endpoint on each and an unkeyed lane between them, and waits until both
// ends see the lane Up. Pings every 100 ms, so that it is Up soon.
func lanePosPair(ctx context.Context, inA, inB func(func() error) error, addrA, addrB netip.Addr) (a, b *lanePosLink, err error) {
	open := func(in func(func() error) error, addr netip.Addr) (*net.UDPConn, error) {
		var c *net.UDPConn
		err := in(func() (err error) {
			c, err = net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(addr, 0)))
			return err
		})
		return c, err
	}
	ca, err := open(inA, addrA)
	if err != nil {
		return nil, nil, err
	}
	cb, err := open(inB, addrB)
	if err != nil {
		ca.Close()
		return nil, nil, err
	}
	a = &lanePosLink{ep: lane.NewEndpoint(ca), kind: lane.Sequenced}
	b = &lanePosLink{ep: lane.NewEndpoint(cb), kind: lane.Sequenced}
	fail := func(err error) (*lanePosLink, *lanePosLink, error) {
		a.close()
		b.close()
		return nil, nil, err
	}
	ta, err := lane.NewToken()
	if err != nil {
		return fail(err)
	}
	tb, err := lane.NewToken()
	if err != nil {
		return fail(err)
	}
	sa, err := lane.NewSession(ta, tb, true, nil)
	if err != nil {
		return fail(err)
	}
	sb, err := lane.NewSession(tb, ta, false, nil)
	if err != nil {
		return fail(err)
	}
	sa.Peer = cb.LocalAddr().(*net.UDPAddr).AddrPort()
	sb.Peer = ca.LocalAddr().(*net.UDPAddr).AddrPort()
	cfg := lane.DefaultConfig()
	cfg.PingInterval = 100 * time.Millisecond
	if a.l, err = a.ep.Open(cfg, sa, a.deliver); err != nil {
		return fail(err)
	}
	if b.l, err = b.ep.Open(cfg, sb, b.deliver); err != nil {
		return fail(err)
	}
	if err := waitLanesUp(ctx, a, b); err != nil {
		return fail(err)
	}
	return a, b, nil
}

// waitLanesUp flushes both ends (pings and pongs) until both are Up.
func waitLanesUp(ctx context.Context, ends ...*lanePosLink) error {
	deadline := time.Now().Add(10 * time.Second)
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		up := true
		for _, e := range ends {
			if err := e.l.Flush(time.Now()); err != nil {
				return err
			}
			up = up && e.l.State() == lane.Up
		}
		if up {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("the lane is not up after 10s (state %v)", ends[0].l.State())
		}
		select {
		case <-t.C:
		case <-ctx.Done():
			return ctx.Err()
		}
	}
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
