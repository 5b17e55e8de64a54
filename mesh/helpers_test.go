package mesh

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"testing"
	"time"

	"github.com/lanmesh/lanmesh/message"
)

// Msg32 is the test and benchmark message: a 32-byte binary frame (length,
// code, 30 bytes of payload), encoded and decoded without allocating.
type Msg32 struct {
	Seq    uint64   `json:"seq" msgpack:"seq"`
	Sender uint16   `json:"sender" msgpack:"sender"`
	Data   [20]byte `json:"data" msgpack:"data"`
}

const msg32Payload = 30

func (m Msg32) AppendBinary(b []byte) ([]byte, error) {
	b = binary.BigEndian.AppendUint64(b, m.Seq)
	b = binary.BigEndian.AppendUint16(b, m.Sender)
	return append(b, m.Data[:]...), nil
}

func (m *Msg32) UnmarshalBinary(p []byte) error {
	if len(p) != msg32Payload {
		return fmt.Errorf("Msg32: %d bytes", len(p))
	}
	m.Seq = binary.BigEndian.Uint64(p)
	m.Sender = binary.BigEndian.Uint16(p[8:])
	copy(m.Data[:], p[10:])
	return nil
}

// Text is a variable-size test message.
type Text struct {
	S string `json:"s" msgpack:"s"`
}

func (m Text) AppendBinary(b []byte) ([]byte, error) { return append(b, m.S...), nil }
func (m *Text) UnmarshalBinary(p []byte) error       { m.S = string(p); return nil }

const (
	codeMsg32 byte = 0x10
	codeText  byte = 0x11
)

var testRegistry = func() *message.Registry {
	r := message.NewRegistry()
	message.MustRegister[Msg32](r, codeMsg32, "Msg32")
	message.MustRegister[Text](r, codeText, "Text")
	return r
}()

// testConfig returns a Config with short timers, so the suite runs fast.
// Set MESH_TEST_LOG=1 to see the links' logs.
func testConfig(t testing.TB) Config {
	cfg := DefaultConfig()
	cfg.Name = t.Name()
	cfg.Mesh = "test"
	cfg.Registry = testRegistry
	cfg.Link = testLinkConfig()
	cfg.Logger = testLogger()
	return cfg
}

func testLinkConfig() LinkConfig {
	lc := DefaultLinkConfig()
	lc.HandshakeTimeout = 2 * time.Second
	lc.PingInterval = 100 * time.Millisecond
	lc.Silence = 2 * time.Second
	lc.WriteTimeout = 5 * time.Second
	lc.CloseTimeout = 2 * time.Second
	return lc
}

func testLogger() *slog.Logger {
	if os.Getenv("MESH_TEST_LOG") != "" {
		return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	return nil
}

// setTestConfig gives a node config the test's identity and short timers.
func setTestConfig(cfg *NodeConfig, t testing.TB) {
	cfg.Name = t.Name()
	cfg.Mesh = "test"
	cfg.Registry = testRegistry
	cfg.Link = testLinkConfig()
	cfg.Logger = testLogger()
}

// transportCase is one transport the link suite runs over.
type transportCase struct {
	name string
	// new returns a fresh transport and an address to listen on.
	new func() (Transport, string)
}

var transports = []transportCase{
	{"mem", func() (Transport, string) { return NewMemNetwork(), "node:0" }},
	{"tcp", func() (Transport, string) { return &TCPTransport{}, "127.0.0.1:0" }},
}

// eachTransport runs f as a subtest over every transport.
func eachTransport(t *testing.T, f func(t *testing.T, tc transportCase)) {
	for _, tc := range transports {
		t.Run(tc.name, func(t *testing.T) { f(t, tc) })
	}
}

// testCtx is a context for one wait: every wait in the suite is bounded.
func testCtx(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// connPair returns the two ends of one fresh connection over tr.
func connPair(t testing.TB, tr Transport, addr string) (client, server net.Conn) {
	t.Helper()
	ln, err := tr.Listen(addr)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, _ := ln.Accept()
		accepted <- c
	}()
	client, err = tr.Dial(testCtx(t, 5*time.Second), ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	select {
	case server = <-accepted:
	case <-time.After(5 * time.Second):
		t.Fatal("accept timed out")
	}
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// pair returns two Messengers linked over tc: a dialled b's Listener.
func pair(t testing.TB, tc transportCase, ca, cb Config) (a, b *Messenger) {
	t.Helper()
	tr, addr := tc.new()
	ca.Link.Transport, cb.Link.Transport = tr, tr
	ln, err := Listen(cb, addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	a, err = Dial(testCtx(t, 5*time.Second), ca, ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	b, err = ln.Accept(testCtx(t, 5*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return a, b
}

// rawPeer is the far end of a Messenger driven by hand: it did a real
// handshake and now writes whatever a test wants, garbage included.
type rawPeer struct {
	conn net.Conn
	m    *Messenger
}

func newRawPeer(t testing.TB, tc transportCase, cfg Config) *rawPeer {
	t.Helper()
	tr, addr := tc.new()
	client, server := connPair(t, tr, addr)
	rawCfg := cfg
	rawCfg.NodeID = DefaultConfig().NodeID
	errc := make(chan error, 1)
	go func() {
		_, err := handshakeUnkeyed(context.Background(), client, rawCfg.hello(), rawCfg)
		errc <- err
	}()
	remote, err := handshakeUnkeyed(context.Background(), server, cfg.hello(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	if err := <-errc; err != nil {
		t.Fatal(err)
	}
	m, err := newMessenger(server, cfg, cfg.hello(), session{remote: remote})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		client.Close() // first, or Close would wait for the raw end to hang up
		m.Close()
	})
	return &rawPeer{conn: client, m: m}
}

// waitDone waits for the link to end and returns its error.
func waitDone(t testing.TB, l *link, d time.Duration) error {
	t.Helper()
	select {
	case <-l.Done():
		return l.Err()
	case <-time.After(d):
		t.Fatalf("link still open after %v", d)
		return nil
	}
}

// wantClose checks that err is a *CloseError for sentinel, from the given
// side, and returns it.
func wantClose(t testing.TB, err, sentinel error, remote bool) *CloseError {
	t.Helper()
	var ce *CloseError
	if !errors.As(err, &ce) {
		t.Fatalf("err = %v (%T), want a *CloseError", err, err)
	}
	if !errors.Is(err, sentinel) || !errors.Is(err, ErrClosed) {
		t.Fatalf("err = %v, want it to match %v and ErrClosed", err, sentinel)
	}
	if ce.Remote != remote {
		t.Fatalf("err = %v: Remote = %v, want %v", err, ce.Remote, remote)
	}
	return ce
}

// receiveN receives n Msg32 and checks they arrive in order from sender.
func receiveN(t testing.TB, m *Messenger, n int, d time.Duration) {
	t.Helper()
	ctx := testCtx(t, d)
	for i := range n {
		msg, err := m.Receive(ctx)
		if err != nil {
			t.Fatalf("after %d of %d messages: %v", i, n, err)
		}
		got, ok := msg.Msg.(*Msg32)
		if !ok || got.Seq != uint64(i) {
			t.Fatalf("message %d: got %#v", i, msg)
		}
	}
}

// handshakeUnkeyed runs the opening handshake of an unkeyed link on conn, which
// is fresh from a Transport: each side sends its Hello, checks the other's,
// and answers with Accept or Reject. It returns the peer's Hello once both
// sides have accepted. It never dials, and it leaves conn open either way;
// on failure the caller closes it. A keyed handshake (cfg.Keyring set) has
// an initiator and a responder and yields the link's keys: it is run by
// Dial, Listen and the Node, and Handshake refuses it with ErrConfig.
//
// It fails with a *CloseError wrapping ErrHandshake, ErrVersion,
// ErrMeshMismatch, ErrCodecMismatch, ErrHandshakeTimeout, ErrConnLost,
// ErrKeyRequired or ErrRejected. When this side refused, the peer was sent
// a Reject with the reason (Remote false); when the peer refused, Reason is
// the peer's (Remote true). The whole exchange is bounded by
// cfg.Link.HandshakeTimeout and ctx; when ctx ends first, the error wraps
// ctx.Err().
func handshakeUnkeyed(ctx context.Context, conn net.Conn, local hello, cfg Config) (hello, error) {
	if cfg.Keyring.Keyed() {
		return hello{}, fmt.Errorf("%w: a keyed handshake is run by Dial, Listen or a Node", ErrConfig)
	}
	s, err := handshake(ctx, conn, local, cfg, hsOptions{})
	return s.remote, err
}
