package mesh

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/internal/leaktest"
)

func TestConfigValidate(t *testing.T) {
	good := DefaultConfig()
	if err := good.Validate(); err != nil {
		t.Fatalf("DefaultConfig: %v", err)
	}
	if good.Silence > 3*time.Second {
		t.Errorf("default Silence %v is over 3 s", good.Silence)
	}
	if DefaultConfig().NodeID == good.NodeID {
		t.Error("two DefaultConfigs share a NodeID")
	}
	if DefaultConfig().InstanceID != good.InstanceID {
		t.Error("the InstanceID changed within one process")
	}
	for name, edit := range map[string]func(c *Config){
		"nil node":        func(c *Config) { c.NodeID = uuid.Nil },
		"nil instance":    func(c *Config) { c.InstanceID = uuid.Nil },
		"empty mesh":      func(c *Config) { c.Mesh = "" },
		"long name":       func(c *Config) { c.Name = string(make([]byte, 256)) },
		"name utf8":       func(c *Config) { c.Name = "\xff" },
		"codec":           func(c *Config) { c.Codec = "xml" },
		"handshake":       func(c *Config) { c.HandshakeTimeout = 0 },
		"ping >= silence": func(c *Config) { c.PingInterval = c.Silence },
		"silence":         func(c *Config) { c.Silence = -1 },
		"write timeout":   func(c *Config) { c.WriteTimeout = 0 },
		"close timeout":   func(c *Config) { c.CloseTimeout = 0 },
		"send buffer":     func(c *Config) { c.SendBufferLimit = 10 },
		"receive queue":   func(c *Config) { c.ReceiveQueueLimit = 0 },
	} {
		c := DefaultConfig()
		edit(&c)
		if err := c.Validate(); !errors.Is(err, ErrConfig) {
			t.Errorf("%s: Validate = %v", name, err)
		}
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
func linkedConns(t *testing.T, tc transportCase, cfg Config) (ca, cb net.Conn, ha, hb Hello) {
	t.Helper()
	tr, addr := tc.new()
	ca, cb = connPair(t, tr, addr)
	cfgB := cfg
	cfgB.NodeID = uuid.New()
	ha, hb = cfg.Hello(), cfgB.Hello()
	errc := make(chan error, 1)
	go func() {
		_, err := Handshake(context.Background(), cb, hb, cfgB)
		errc <- err
	}()
	if _, err := Handshake(context.Background(), ca, ha, cfg); err != nil {
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
		cfg.PingInterval = time.Hour // no pings in the count
		cfg.Silence = 2 * time.Hour
		ca, cb, ha, hb := linkedConns(t, tc, cfg)
		counted := &countingConn{Conn: ca}
		a, err := newMessenger(counted, cfg, ha, hb)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		b, err := newMessenger(cb, cfg, hb, ha)
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

func (s chanSink) Deliver(l *Link, msgs []any, stop <-chan struct{}) int {
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
		cfg.AutoFlush = true
		ca, cb, ha, hb := linkedConns(t, tc, cfg)
		sink := make(chanSink, 1)
		la, err := NewLink(ca, cfg, ha, hb, sink)
		if err != nil {
			t.Fatal(err)
		}
		lb, err := NewLink(cb, cfg, hb, ha, sink)
		if err != nil {
			t.Fatal(err)
		}
		la.Send(&Msg32{Seq: 1})
		lb.Send(&Msg32{Seq: 2})
		got := map[*Link]uint64{}
		for range 2 {
			select {
			case d := <-sink:
				got[d[0].(*Link)] = d[1].(*Msg32).Seq
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
		cfg.WriteTimeout = 200 * time.Millisecond
		cfg.PingInterval = time.Second
		cfg.Silence = time.Minute   // the raw peer is silent too; that is not what is tested
		p := newRawPeer(t, tc, cfg) // it never reads
		msg := &Msg32{}
		deadline := time.Now().Add(20 * time.Second)
		for p.m.Err() == nil && time.Now().Before(deadline) {
			if err := p.m.Send(msg); errors.Is(err, ErrBackpressure) {
				time.Sleep(time.Millisecond)
			}
			p.m.Xfer()
		}
		ce := wantClose(t, waitDone(t, p.m.Link, 5*time.Second), ErrWriteTimeout, false)
		if !ce.Timeout() {
			t.Errorf("%v: Timeout() is false", ce)
		}
	})
}

// syncBuffer is a bytes.Buffer safe for a logger's concurrent writes.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestListenerRefusals(t *testing.T) {
	leaktest.Check(t)
	var logged syncBuffer
	cfg := testConfig(t)
	cfg.Transport = NewMemNetwork()
	cfg.HandshakeTimeout = time.Minute // Close, not the timeout, ends the silent one
	server := cfg
	server.Logger = slog.New(slog.NewTextHandler(&logged, &slog.HandlerOptions{Level: slog.LevelDebug}))
	defer func() {
		if t.Failed() {
			t.Logf("the server logged:\n%s", logged.String())
		}
	}()
	ln, err := Listen(server, "server:0")
	if err != nil {
		t.Fatal(err)
	}
	// A client of another mesh is refused, and the server says why.
	other := cfg
	other.Mesh = "other"
	if _, err := Dial(testCtx(t, 5*time.Second), other, ln.Addr().String()); !errors.Is(err, ErrMeshMismatch) {
		t.Fatalf("dial: %v", err)
	}
	waitLog := func(s string) {
		t.Helper()
		for deadline := time.Now().Add(5 * time.Second); !strings.Contains(logged.String(), s); {
			if time.Now().After(deadline) {
				t.Fatalf("no %q in the log", s)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	waitLog("another mesh")
	// A connection that never speaks, and a link nobody accepted: Close
	// ends both.
	silent, err := cfg.Transport.Dial(testCtx(t, 5*time.Second), ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer silent.Close()
	unaccepted, err := Dial(testCtx(t, 5*time.Second), cfg, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	waitLog("link open") // the server's side of the handshake is done too
	closed := make(chan struct{})
	go func() { ln.Close(); close(closed) }()
	select {
	case <-closed:
	case <-time.After(10 * time.Second):
		t.Fatal("Listener.Close hangs")
	}
	_, err = unaccepted.Receive(testCtx(t, 5*time.Second))
	if ce := wantClose(t, err, ErrPeerBye, true); ce.Reason != "listener closed" {
		t.Errorf("reason %q", ce.Reason)
	}
	if _, err := ln.Accept(context.Background()); !errors.Is(err, ErrListenerClosed) {
		t.Errorf("Accept after Close: %v", err)
	}
	unaccepted.Close()
}
