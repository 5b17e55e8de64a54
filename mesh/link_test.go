package mesh

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/codec"
	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
	"github.com/lanmesh/lanmesh/message"
)

func TestSendGet(t *testing.T) {
	eachTransport(t, func(t *testing.T, tc transportCase) {
		leaktest.Check(t)
		a, b := pair(t, tc, testConfig(t), testConfig(t))
		if got := a.l.Remote().NodeID; got != b.l.Local().NodeID {
			t.Errorf("a sees node %v, b is %v", got, b.l.Local().NodeID)
		}
		if b.l.Remote().ListenPort != 0 || a.l.Remote().ListenPort == 0 {
			t.Errorf("listen ports: a sees %d, b sees %d; want the listener's port and 0", a.l.Remote().ListenPort, b.l.Remote().ListenPort)
		}
		// The Messenger's view of its peer.
		if r := a.Remote(); r.ID != b.l.Local().NodeID || r.Name != b.l.Local().Name || r.State != StateLinked ||
			r.RemoteAddr == nil || (tc.name == "tcp" && r.Addr == "") {
			t.Errorf("a.Remote() = %+v", r)
		}
		if r := b.Remote(); r.Addr != "" {
			t.Errorf("b.Remote().Addr = %q for a peer that does not listen", r.Addr)
		}
		if err := a.Send(&Msg32{Seq: 0}); err != nil {
			t.Fatal(err)
		}
		if err := a.Send(Text{S: "by value"}); err != nil {
			t.Fatal(err)
		}
		if _, ok := b.Get(); ok {
			t.Fatal("Get returned a message before it was sent")
		}
		if err := a.Xfer(); err != nil {
			t.Fatal(err)
		}
		// The game-loop way: poll Get, bounded.
		var got []any
		for deadline := time.Now().Add(5 * time.Second); len(got) < 2 && time.Now().Before(deadline); {
			if msg, ok := b.Get(); ok {
				got = append(got, msg.Msg)
			} else {
				time.Sleep(time.Millisecond)
			}
		}
		if len(got) != 2 {
			t.Fatalf("got %d messages, want 2", len(got))
		}
		if m, ok := got[0].(*Msg32); !ok || m.Seq != 0 {
			t.Errorf("first: %#v", got[0])
		}
		if m, ok := got[1].(*Text); !ok || m.S != "by value" {
			t.Errorf("second: %#v", got[1])
		}
		st := a.Stats()
		if st.MsgsOut != 2 || st.BytesOut == 0 {
			t.Errorf("a's stats: %+v", st)
		}
		if st := b.Stats(); st.MsgsIn != 2 || st.BytesIn == 0 {
			t.Errorf("b's stats: %+v", st)
		}
	})
}

func TestCodecs(t *testing.T) {
	for _, name := range codec.Names() {
		t.Run(name, func(t *testing.T) {
			leaktest.Check(t)
			ca, cb := testConfig(t), testConfig(t)
			ca.Codec, cb.Codec = name, name
			a, b := pair(t, transports[0], ca, cb)
			for i := range 100 {
				if err := a.Send(&Msg32{Seq: uint64(i), Data: [20]byte{1, 2, 3}}); err != nil {
					t.Fatal(err)
				}
			}
			a.Xfer()
			receiveN(t, b, 100, 10*time.Second)
		})
	}
}

func TestFullDuplex(t *testing.T) {
	eachTransport(t, func(t *testing.T, tc transportCase) {
		leaktest.Check(t)
		a, b := pair(t, tc, testConfig(t), testConfig(t))
		const n = 20000
		var wg sync.WaitGroup
		for _, m := range []*Messenger{a, b} {
			wg.Add(2)
			go func() {
				defer wg.Done()
				sendN(t, m, n, 0)
			}()
			go func() {
				defer wg.Done()
				receiveN(t, m, n, 20*time.Second)
			}()
		}
		wg.Wait()
	})
}

// sendN sends n Msg32 numbered from 0, waiting out backpressure, with an
// Xfer every 64 messages as a game loop would each tick.
func sendN(t testing.TB, m *Messenger, n int, sender uint16) {
	msg := &Msg32{Sender: sender}
	deadline := time.Now().Add(20 * time.Second)
	for i := 0; i < n; {
		msg.Seq = uint64(i)
		err := m.Send(msg)
		switch {
		case err == nil:
			i++
			if i%64 == 0 {
				m.Xfer()
			}
		case errors.Is(err, ErrBackpressure):
			m.Xfer()
			if time.Now().After(deadline) {
				t.Errorf("backpressure for 20 s")
				return
			}
			time.Sleep(100 * time.Microsecond)
		default:
			t.Errorf("Send: %v", err)
			return
		}
	}
	m.Xfer()
}

func TestConcurrentSenders(t *testing.T) {
	eachTransport(t, func(t *testing.T, tc transportCase) {
		leaktest.Check(t)
		cb := testConfig(t)
		cb.Link.AutoFlush = true
		a, b := pair(t, tc, testConfig(t), cb)
		const senders, n = 4, 2000
		var wg sync.WaitGroup
		for s := range senders {
			wg.Add(1)
			go func() {
				defer wg.Done()
				sendN(t, a, n, uint16(s))
			}()
		}
		next := make([]uint64, senders)
		ctx := testCtx(t, 20*time.Second)
		for range senders * n {
			msg, err := b.Receive(ctx)
			if err != nil {
				t.Fatal(err)
			}
			m := msg.Msg.(*Msg32)
			if m.Seq != next[m.Sender] {
				t.Fatalf("sender %d: got %d, want %d", m.Sender, m.Seq, next[m.Sender])
			}
			next[m.Sender]++
		}
		wg.Wait()
	})
}

func TestSlowReader(t *testing.T) {
	eachTransport(t, func(t *testing.T, tc transportCase) {
		leaktest.Check(t)
		ca, cb := testConfig(t), testConfig(t)
		ca.Link.SendBufferLimit = 4096
		cb.ReceiveQueueLimit = 16
		a, b := pair(t, tc, ca, cb)
		// b does not read: a's sends fill b's queue, the transport's
		// buffers, then a's send buffer. Send says so, and keeps saying so
		// while b does not read: a stall is 50 refusals in a row, with an
		// Xfer and a millisecond between them, once b's queue is full.
		msg := &Msg32{}
		sent, refused := 0, 0
		deadline := time.Now().Add(20 * time.Second)
		for refused < 50 {
			if time.Now().After(deadline) {
				t.Fatalf("no lasting backpressure after 20 s (%d sent)", sent)
			}
			msg.Seq = uint64(sent)
			err := a.Send(msg)
			switch {
			case err == nil:
				sent++
				refused = 0
				if sent%32 == 0 {
					a.Xfer()
				}
			case errors.Is(err, ErrBackpressure):
				if b.in.len() == cb.ReceiveQueueLimit {
					refused++
				}
				a.Xfer()
				time.Sleep(time.Millisecond)
			default:
				t.Fatal(err)
			}
		}
		if sent < cb.ReceiveQueueLimit+ca.Link.SendBufferLimit/32 {
			t.Fatalf("only %d sent before the stall", sent)
		}
		a.l.sendMu.Lock()
		pending := len(a.l.pending)
		a.l.sendMu.Unlock()
		if pending > ca.Link.SendBufferLimit {
			t.Errorf("send buffer holds %d bytes, limit %d", pending, ca.Link.SendBufferLimit)
		}
		if n := b.in.len(); n > cb.ReceiveQueueLimit {
			t.Errorf("receive queue holds %d, limit %d", n, cb.ReceiveQueueLimit)
		}
		// Now b reads: everything Send accepted arrives, in order.
		a.Xfer()
		receiveN(t, b, sent, 30*time.Second)
		if err := a.Err(); err != nil {
			t.Fatalf("link closed: %v", err)
		}
		t.Logf("%d messages accepted before backpressure", sent)
	})
}

func TestPeerKilledMidFrame(t *testing.T) {
	eachTransport(t, func(t *testing.T, tc transportCase) {
		leaktest.Check(t)
		p := newRawPeer(t, tc, testConfig(t))
		frame, _ := codec.NewBinary(testRegistry).AppendFrame(nil, &Msg32{Seq: 7})
		p.conn.Write(frame)
		p.conn.Write(frame[:10])
		p.conn.Close()
		msg, err := p.m.Receive(testCtx(t, 5*time.Second))
		if err != nil || msg.Msg.(*Msg32).Seq != 7 {
			t.Fatalf("the whole frame: %v %v", msg, err)
		}
		ce := wantClose(t, waitDone(t, p.m.l, 5*time.Second), ErrConnLost, true)
		if !strings.Contains(ce.Reason, "middle of a frame") {
			t.Errorf("reason %q", ce.Reason)
		}
	})
}

func TestPeerHangsUp(t *testing.T) {
	eachTransport(t, func(t *testing.T, tc transportCase) {
		leaktest.Check(t)
		p := newRawPeer(t, tc, testConfig(t))
		p.conn.Close()
		wantClose(t, waitDone(t, p.m.l, 5*time.Second), ErrConnLost, true)
		if err := p.m.Send(&Msg32{}); !errors.Is(err, ErrConnLost) {
			t.Errorf("Send after the end: %v", err)
		}
	})
}

func TestGarbageAfterHandshake(t *testing.T) {
	eachTransport(t, func(t *testing.T, tc transportCase) {
		leaktest.Check(t)
		p := newRawPeer(t, tc, testConfig(t))
		c := codec.NewBinary(testRegistry)
		b, _ := c.AppendFrame(nil, &Msg32{Seq: 1})
		b = append(b, 0x00, 0xde, 0xad, 0xbe, 0xef) // length byte 0
		p.conn.Write(b)
		msg, err := p.m.Receive(testCtx(t, 5*time.Second))
		if err != nil || msg.Msg.(*Msg32).Seq != 1 {
			t.Fatalf("the frame before the garbage: %v %v", msg, err)
		}
		wantClose(t, waitDone(t, p.m.l, 5*time.Second), ErrProtocol, false)
		// The peer is told why, in a Bye.
		p.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		dec := c.NewDecoder(p.conn)
		for {
			msg, _, err := dec.Decode()
			if err != nil {
				t.Fatalf("no bye: %v", err)
			}
			if bye, ok := msg.(*message.Bye); ok {
				if !strings.Contains(bye.Reason, "length") {
					t.Errorf("bye reason %q", bye.Reason)
				}
				break
			}
		}
	})
}

func TestUnknownTypeDropped(t *testing.T) {
	eachTransport(t, func(t *testing.T, tc transportCase) {
		leaktest.Check(t)
		p := newRawPeer(t, tc, testConfig(t))
		b := []byte{4, 0x55, 1, 2} // an unregistered code
		b, _ = codec.NewBinary(testRegistry).AppendFrame(b, &Msg32{Seq: 0})
		p.conn.Write(b)
		receiveN(t, p.m, 1, 5*time.Second)
		if st := p.m.Stats(); st.Dropped != 1 {
			t.Errorf("Dropped = %d, want 1", st.Dropped)
		}
	})
}

func TestFrameOverLimit(t *testing.T) {
	eachTransport(t, func(t *testing.T, tc transportCase) {
		leaktest.Check(t)
		cfg := testConfig(t)
		cfg.Codec = "msgpack"
		p := newRawPeer(t, tc, cfg)
		p.conn.Write([]byte{0xff, 0xff, 0xff, 0xf0, 0x92})
		ce := wantClose(t, waitDone(t, p.m.l, 5*time.Second), ErrProtocol, false)
		if !strings.Contains(ce.Error(), "too large") {
			t.Errorf("err %v", ce)
		}
		// And the sending side refuses a frame bigger than the buffer.
		big := Text{S: strings.Repeat("x", 2<<20)}
		if err := p.m.Send(big); err == nil {
			t.Error("Send of 2 MiB succeeded")
		}
	})
}

func TestSendTooLarge(t *testing.T) {
	leaktest.Check(t)
	cfg := testConfig(t)
	cfg.Codec = "msgpack"
	cfg.Link.SendBufferLimit = 4096
	a, _ := pair(t, transports[0], cfg, cfg)
	err := a.Send(Text{S: strings.Repeat("x", 8192)})
	if !errors.Is(err, codec.ErrFrameTooLarge) {
		t.Errorf("err = %v, want ErrFrameTooLarge", err)
	}
	if err := a.Send(Text{S: "small"}); err != nil {
		t.Errorf("the next Send: %v", err)
	}
}

func TestSilence(t *testing.T) {
	eachTransport(t, func(t *testing.T, tc transportCase) {
		leaktest.Check(t)
		cfg := testConfig(t)
		cfg.Link.PingInterval = 50 * time.Millisecond
		cfg.Link.Silence = 300 * time.Millisecond
		p := newRawPeer(t, tc, cfg) // it never answers
		start := time.Now()
		ce := wantClose(t, waitDone(t, p.m.l, 5*time.Second), ErrSilence, false)
		if waited := time.Since(start); waited < cfg.Link.Silence/2 {
			t.Errorf("declared silent after %v; Silence is %v", waited, cfg.Link.Silence)
		}
		var ne net.Error
		if !errors.As(ce, &ne) || !ne.Timeout() {
			t.Errorf("%v is not a net.Error timeout", ce)
		}
	})
}

func TestNoSilenceWhileAlive(t *testing.T) {
	eachTransport(t, func(t *testing.T, tc transportCase) {
		leaktest.Check(t)
		cfg := testConfig(t)
		cfg.Link.PingInterval = 20 * time.Millisecond
		cfg.Link.Silence = 800 * time.Millisecond // a margin for a loaded machine under -race (400 ms failed once at load 6)
		a, b := pair(t, tc, cfg, cfg)
		// Quiet links stay up on pings alone: wait for three silences' worth
		// of pongs, then check both links are open and measured an RTT.
		ctx := testCtx(t, 20*time.Second)
		for a.Stats().RTTSamples < 120 || b.Stats().RTTSamples < 120 {
			if ctx.Err() != nil || a.Err() != nil || b.Err() != nil {
				t.Fatalf("RTT samples: a %d, b %d; links: %v, %v", a.Stats().RTTSamples, b.Stats().RTTSamples, a.Err(), b.Err())
			}
			time.Sleep(10 * time.Millisecond)
		}
		if a.Err() != nil || b.Err() != nil {
			t.Fatalf("links closed: %v, %v", a.Err(), b.Err())
		}
		if st := a.Stats(); st.RTT <= 0 || st.MsgsIn != 0 {
			t.Errorf("stats %+v", st)
		}
		_, okA := a.Get()
		_, okB := b.Get()
		if okA || okB {
			t.Error("a control message surfaced from Get")
		}
	})
}

func TestGracefulClose(t *testing.T) {
	eachTransport(t, func(t *testing.T, tc transportCase) {
		leaktest.Check(t)
		a, b := pair(t, tc, testConfig(t), testConfig(t))
		const n = 5000
		msg := &Msg32{}
		for i := range n {
			msg.Seq = uint64(i)
			if err := a.Send(msg); err != nil {
				t.Fatal(err)
			}
		}
		// No Xfer: Close itself sends what is pending, then the bye. It
		// returns once b has read them all (more than b's queue holds).
		closed := make(chan error, 1)
		go func() { closed <- a.CloseReason("game over") }()
		receiveN(t, b, n, 10*time.Second)
		if err := <-closed; err != nil {
			t.Fatal(err)
		}
		wantClose(t, a.Err(), ErrClosed, false)
		_, err := b.Receive(testCtx(t, 5*time.Second))
		ce := wantClose(t, err, ErrPeerBye, true)
		if ce.Reason != "game over" {
			t.Errorf("reason %q", ce.Reason)
		}
		// Close is idempotent, and keeps the first reason.
		a.Close()
		b.Close()
		if err := a.Send(msg); !errors.Is(err, ErrClosed) {
			t.Errorf("Send after Close: %v", err)
		}
		if err := b.Xfer(); !errors.Is(err, ErrPeerBye) {
			t.Errorf("Xfer after the peer's bye: %v", err)
		}
	})
}

func TestCloseBothWays(t *testing.T) {
	eachTransport(t, func(t *testing.T, tc transportCase) {
		leaktest.Check(t)
		a, b := pair(t, tc, testConfig(t), testConfig(t))
		// Both close at once while both have data in flight.
		for i := range 100 {
			a.Send(&Msg32{Seq: uint64(i)})
			b.Send(&Msg32{Seq: uint64(i)})
		}
		var wg sync.WaitGroup
		for _, m := range []*Messenger{a, b} {
			wg.Add(1)
			go func() { defer wg.Done(); m.Close() }()
		}
		wg.Wait()
	})
}

func TestReceiveContext(t *testing.T) {
	leaktest.Check(t)
	a, _ := pair(t, transports[0], testConfig(t), testConfig(t))
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel()
	if _, err := a.Receive(ctx); !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v", err)
	}
}

func TestHandlers(t *testing.T) {
	eachTransport(t, func(t *testing.T, tc transportCase) {
		leaktest.Check(t)
		a, b := pair(t, tc, testConfig(t), testConfig(t))
		// Sent before Handle: delivered to the handler all the same.
		a.Send(&Msg32{Seq: 0})
		a.Xfer()
		var events []string
		closed := make(chan struct{})
		err := b.Handle(Handlers{
			OnOpen: func(m *Messenger) { events = append(events, "open") },
			OnMessage: func(m *Messenger, msg Message) {
				seq := msg.Msg.(*Msg32).Seq
				events = append(events, "msg")
				if seq == 2 {
					m.CloseReason("enough") // from inside a handler
				}
			},
			OnClose: func(m *Messenger, err error) {
				events = append(events, "close:"+err.(*CloseError).Reason)
				close(closed)
			},
		})
		if err != nil {
			t.Fatal(err)
		}
		if b.Handle(Handlers{}) == nil {
			t.Error("second Handle succeeded")
		}
		a.Send(&Msg32{Seq: 1})
		a.Send(&Msg32{Seq: 2})
		a.Xfer()
		select {
		case <-closed:
		case <-time.After(5 * time.Second):
			t.Fatal("no OnClose")
		}
		want := "open msg msg msg close:enough"
		if got := strings.Join(events, " "); got != want {
			t.Errorf("events %q, want %q", got, want)
		}
		wantClose(t, waitDone(t, a.l, 5*time.Second), ErrPeerBye, true)
	})
}

func TestMemConn(t *testing.T) {
	leaktest.Check(t)
	a, b := connPair(t, NewMemNetwork(), "x:0")
	a.SetReadDeadline(time.Now().Add(20 * time.Millisecond))
	var buf [8]byte
	_, err := a.Read(buf[:])
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("read past the deadline: %v", err)
	}
	a.SetReadDeadline(time.Time{})
	b.Write([]byte("hi"))
	b.(closeWriter).CloseWrite()
	got, err := io.ReadAll(a)
	if string(got) != "hi" || err != nil {
		t.Fatalf("ReadAll = %q, %v", got, err)
	}
	// A writer blocks at the window and its deadline frees it.
	a.SetWriteDeadline(time.Now().Add(50 * time.Millisecond))
	n, err := a.Write(make([]byte, 2*memWindow))
	if !errors.As(err, &ne) || !ne.Timeout() || n != memWindow {
		t.Fatalf("write past the window: %d, %v", n, err)
	}
	b.Close()
	a.SetWriteDeadline(time.Time{})
	if _, err := a.Write([]byte("x")); err == nil {
		t.Fatal("write to a closed peer succeeded")
	}
}

// countingConn counts the writes made on a conn.
type countingConn struct {
	net.Conn
	writes atomic.Int64
}

func (c *countingConn) Write(p []byte) (int, error) {
	c.writes.Add(1)
	return c.Conn.Write(p)
}

// linkedConns returns two conns over which a handshake has succeeded, and
// the Hellos.
func linkedConns(t *testing.T, tc transportCase, cfg Config) (ca, cb net.Conn, ha, hb hello) {
	t.Helper()
	tr, addr := tc.new()
	ca, cb = connPair(t, tr, addr)
	cfgB := cfg
	cfgB.NodeID = uuid.New()
	ha, hb = cfg.hello(), cfgB.hello()
	errc := make(chan error, 1)
	go func() {
		_, err := handshakeUnkeyed(context.Background(), cb, hb, cfgB)
		errc <- err
	}()
	if _, err := handshakeUnkeyed(context.Background(), ca, ha, cfg); err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	return ca, cb, ha, hb
}

func TestBatching(t *testing.T) {
	eachTransport(t, func(t *testing.T, tc transportCase) {
		leaktest.Check(t)
		cfg := testConfig(t)
		cfg.Link.PingInterval = time.Hour // no pings in the count
		cfg.Link.Silence = 2 * time.Hour
		ca, cb, ha, hb := linkedConns(t, tc, cfg)
		counted := &countingConn{Conn: ca}
		a, err := newMessenger(counted, cfg, ha, session{remote: hb})
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		b, err := newMessenger(cb, cfg, hb, session{remote: ha})
		if err != nil {
			t.Fatal(err)
		}
		defer b.Close()
		for i := range 100 {
			a.Send(&Msg32{Seq: uint64(i)})
		}
		a.Xfer()
		receiveN(t, b, 100, 5*time.Second)
		if n := counted.writes.Load(); n != 1 {
			t.Errorf("100 Sends and an Xfer took %d writes, want 1", n)
		}
	})
}

// chanSink is a Sink that a mesh node might be: it tags each message with
// its link.
type chanSink chan [2]any

func (s chanSink) Deliver(l *link, msgs []any, stop <-chan struct{}) int {
	for i, msg := range msgs {
		select {
		case s <- [2]any{l, msg}:
		case <-stop:
			return i
		}
	}
	return len(msgs)
}

func TestLinkSink(t *testing.T) {
	eachTransport(t, func(t *testing.T, tc transportCase) {
		leaktest.Check(t)
		cfg := testConfig(t)
		cfg.Link.AutoFlush = true
		ca, cb, ha, hb := linkedConns(t, tc, cfg)
		sink := make(chanSink, 1)
		la, err := newLink(ca, cfg, ha, hb, sink, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		lb, err := newLink(cb, cfg, hb, ha, sink, false, nil)
		if err != nil {
			t.Fatal(err)
		}
		la.Send(&Msg32{Seq: 1})
		lb.Send(&Msg32{Seq: 2})
		got := map[*link]uint64{}
		for range 2 {
			select {
			case d := <-sink:
				got[d[0].(*link)] = d[1].(*Msg32).Seq
			case <-time.After(5 * time.Second):
				t.Fatal("no delivery")
			}
		}
		if got[lb] != 1 || got[la] != 2 {
			t.Errorf("deliveries %v", got)
		}
		if lb.Remote().NodeID != ha.NodeID {
			t.Errorf("b's peer is %v, want %v", lb.Remote().NodeID, ha.NodeID)
		}
		la.Close()
		lb.Close()
		wantClose(t, lb.Err(), ErrPeerBye, true)
	})
}

func TestWriteTimeout(t *testing.T) {
	eachTransport(t, func(t *testing.T, tc transportCase) {
		leaktest.Check(t)
		cfg := testConfig(t)
		cfg.Link.WriteTimeout = 200 * time.Millisecond
		cfg.Link.PingInterval = time.Second
		cfg.Link.Silence = time.Minute // the raw peer is silent too; that is not what is tested
		p := newRawPeer(t, tc, cfg)    // it never reads
		msg := &Msg32{}
		deadline := time.Now().Add(20 * time.Second)
		for p.m.Err() == nil && time.Now().Before(deadline) {
			if err := p.m.Send(msg); errors.Is(err, ErrBackpressure) {
				time.Sleep(time.Millisecond)
			}
			p.m.Xfer()
		}
		ce := wantClose(t, waitDone(t, p.m.l, 5*time.Second), ErrWriteTimeout, false)
		if !ce.Timeout() {
			t.Errorf("%v: Timeout() is false", ce)
		}
	})
}
