package mesh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
)

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
	cfg.Link.Transport = NewMemNetwork()
	cfg.Link.HandshakeTimeout = time.Minute // Close, not the timeout, ends the silent one
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
		waitUntil(t, 5*time.Second, fmt.Sprintf("%q in the log", s), func() bool { return strings.Contains(logged.String(), s) })
	}
	waitLog("another mesh")
	// A connection that never speaks, and a link nobody accepted: Close
	// ends both.
	silent, err := cfg.Link.Transport.Dial(testCtx(t, 5*time.Second), ln.Addr().String())
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

func TestDialErrors(t *testing.T) {
	leaktest.Check(t)
	cfg := testConfig(t)
	cfg.Link.Transport = NewMemNetwork()
	if _, err := Dial(testCtx(t, time.Second), cfg, "nowhere:1"); err == nil {
		t.Error("dial to nowhere succeeded")
	}
	bad := cfg
	bad.Mesh = ""
	if _, err := Dial(testCtx(t, time.Second), bad, "nowhere:1"); !errors.Is(err, ErrConfig) {
		t.Errorf("bad config: %v", err)
	}
	// A listener in another mesh: the dialler learns why.
	other := cfg
	other.Mesh = "other"
	ln, err := Listen(other, "server:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = Dial(testCtx(t, 5*time.Second), cfg, ln.Addr().String())
	ce := wantClose(t, err, ErrMeshMismatch, false)
	if !strings.Contains(ce.Reason, `"other"`) {
		t.Errorf("reason %q", ce.Reason)
	}
	// A cancelled dial.
	raw, _ := cfg.Link.Transport.Listen("silent:0")
	defer raw.Close()
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(50*time.Millisecond, cancel)
	if _, err := Dial(ctx, cfg, raw.Addr().String()); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled dial: %v", err)
	}
}

func TestListenerServe(t *testing.T) {
	eachTransport(t, func(t *testing.T, tc transportCase) {
		leaktest.Check(t)
		tr, addr := tc.new()
		cfg := testConfig(t)
		cfg.Link.Transport = tr
		cfg.Link.AutoFlush = true
		ln, err := Listen(cfg, addr, addr)
		if err != nil {
			t.Fatal(err)
		}
		defer ln.Close()
		ctx, cancel := context.WithCancel(context.Background())
		served := make(chan error, 1)
		go func() {
			served <- ln.Serve(ctx, Handlers{OnMessage: func(m *Messenger, msg Message) { m.Send(msg.Msg) }})
		}()
		// A client on each address gets its echo.
		for _, a := range ln.Addrs() {
			c, err := Dial(testCtx(t, 5*time.Second), cfg, a.String())
			if err != nil {
				t.Fatal(err)
			}
			c.Send(&Msg32{Seq: 0})
			receiveN(t, c, 1, 5*time.Second)
			defer c.Close()
		}
		cancel()
		if err := <-served; !errors.Is(err, context.Canceled) {
			t.Errorf("Serve: %v", err)
		}
	})
}

// One host's silent connections take at most a quarter of a Listener's
// handshake slots; the rest are closed at once, and another host still gets
// its link. (Without the per-source bound, 80 silent connections would fill
// all 64 slots and the honest dial would wait in the backlog behind them.)
func TestListenerFloodFromOneSource(t *testing.T) {
	leaktest.Check(t)
	cfg := testConfig(t)
	cfg.Link.HandshakeTimeout = time.Minute // the silent ones hold their slots
	ln, err := Listen(cfg, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	const flood = 80
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 5 * time.Second}
	for range flood {
		c, err := d.Dial("tcp", ln.Addr().String())
		if err != nil {
			t.Fatalf("flood dial: %v", err)
		}
		defer c.Close()
	}
	want := uint64(flood - defaultMaxHandshakes/4)
	waitUntil(t, 10*time.Second, fmt.Sprintf("%d refusals", want), func() bool { return ln.Refused() >= want })
	m, err := Dial(testCtx(t, 5*time.Second), cfg, ln.Addr().String())
	if err != nil {
		t.Fatalf("honest dial during the flood: %v", err)
	}
	defer m.Close()
	acc, err := ln.Accept(testCtx(t, 5*time.Second))
	if err != nil {
		t.Fatalf("accept during the flood: %v", err)
	}
	defer acc.Close()
	if got := ln.Refused(); got != want {
		t.Errorf("refused %d, want exactly %d", got, want)
	}
}
