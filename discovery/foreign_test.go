package discovery

import (
	"bytes"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanmesh/lanmesh/meshkey"
)

type logBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestLoopbackTellsMismatches: nodes that can never link say why, once
// per peer, at Warn: another key, no key, another mesh while alone.
func TestLoopbackTellsMismatches(t *testing.T) {
	port := freeUDPPort(t)
	start := func(name, mesh string, ring meshkey.Keyring) *logBuffer {
		cfg := loopbackConfig(t, port)
		cfg.Name, cfg.Mesh, cfg.Keyring = name, mesh, ring
		var logs logBuffer
		cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
		d, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		return &logs
	}
	keyed := start("keyed", "m", testRing(1))
	start("otherkey", "m", testRing(2))
	plain := start("plain", "m", meshkey.Keyring{})
	lonely := start("lonely", "elsewhere", meshkey.Keyring{})
	for _, c := range []struct {
		logs *logBuffer
		want string
	}{
		{plain, "heard a node at 127.0.0.1 sealing its beacons with a mesh key (key id "},
		{keyed, "heard plain at 127.0.0.1 (mesh m) without a mesh key; this node has one: they will never link"},
		{keyed, "which this node's key for mesh m does not open, so if it is of this mesh the two cannot link"},
		{lonely, `heard plain at 127.0.0.1 (mesh m); this node is in mesh \"elsewhere\" and has found none of it`},
	} {
		waitFor(t, 3*time.Second, c.want, func() bool { return strings.Contains(c.logs.String(), c.want) })
	}
	time.Sleep(300 * time.Millisecond) // a few more beacons: no more lines
	if n := strings.Count(plain.String(), "sealing its beacons"); n != 2 {
		t.Errorf("plain told of the two keyed nodes %d times, want once each:\n%s", n, plain)
	}
	if n := strings.Count(lonely.String(), "has found none of it"); n != 1 {
		t.Errorf("lonely warned %d times, want once for mesh m:\n%s", n, lonely)
	}
}

// TestUnknownInterfaceWarned: a name in Interfaces that no interface has
// is told once, at Warn.
func TestUnknownInterfaceWarned(t *testing.T) {
	cfg := loopbackConfig(t, freeUDPPort(t))
	cfg.Interfaces = []string{"lo", "wlan9"}
	var logs logBuffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	d.Close()
	if s := logs.String(); strings.Count(s, `this machine has no interface \"wlan9\" (it has lo`) != 1 || strings.Contains(s, `interface \"lo\"`) {
		t.Errorf("log:\n%s", s)
	}
}
