package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/mesh"
	"github.com/lanmesh/lanmesh/meshkey"
	"github.com/lanmesh/lanmesh/message"
)

// Text is the tests' message.
type Text struct{ S string }

func (m Text) AppendBinary(b []byte) ([]byte, error) { return append(b, m.S...), nil }
func (m *Text) UnmarshalBinary(p []byte) error       { m.S = string(p); return nil }

var testRegistry = func() *message.Registry {
	r := message.NewRegistry()
	message.MustRegister[Text](r, 0x11, "Text")
	return r
}()

// testLogger logs at Debug to stderr with HUB_TEST_LOG=1, else nowhere.
func testLogger(name string) *slog.Logger {
	if os.Getenv("HUB_TEST_LOG") == "" {
		return nil
	}
	return slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug})).With("node", name)
}

// startServer starts an embedded hub on 127.0.0.1 (port 0 unless listen
// says otherwise), closed by the test's cleanup.
func startServer(t *testing.T, opts ServerOptions) *Server {
	t.Helper()
	if opts.Listen == "" {
		opts.Listen = "127.0.0.1:0"
	}
	s, err := StartServer(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// watched is a node with a goroutine that takes everything it receives:
// it records events and messages and answers requests with "pong from
// NAME".
type watched struct {
	*mesh.Node
	done chan struct{}

	// mu guards the record.
	mu     sync.Mutex
	events []mesh.PeerEvent
	msgs   []mesh.Message
}

// testNode starts a node on network (discovery off; it dials peers),
// watched, and closes it (and waits for its watcher) on cleanup.
func testNode(t *testing.T, network mesh.Transport, name string, peers []string, kr meshkey.Keyring, adjust ...func(*mesh.NodeConfig)) *watched {
	t.Helper()
	cfg := mesh.DefaultNodeConfig()
	cfg.Name = name
	cfg.Mesh = "hubtest"
	cfg.Registry = testRegistry
	cfg.Keyring = kr
	cfg.Link.Transport = network
	cfg.Net.Listen = []string{name + ":1"}
	cfg.Net.Peers = peers
	cfg.Discovery.Off = true
	for _, f := range adjust {
		f(&cfg)
	}
	n, err := mesh.NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	w := watch(n)
	t.Cleanup(func() {
		n.Close()
		<-w.done
	})
	return w
}

func watch(n *mesh.Node) *watched {
	w := &watched{Node: n, done: make(chan struct{})}
	go func() {
		defer close(w.done)
		for {
			m, err := n.Receive(context.Background())
			if err != nil {
				return
			}
			w.mu.Lock()
			if ev, ok := m.Msg.(*mesh.PeerEvent); ok {
				w.events = append(w.events, *ev)
			} else {
				w.msgs = append(w.msgs, m)
			}
			w.mu.Unlock()
			if m.IsRequest() {
				n.Reply(m, &Text{S: "pong from " + n.Name()})
			}
		}
	}()
	return w
}

// count counts the messages with text s.
func (w *watched) count(s string) int {
	w.mu.Lock()
	defer w.mu.Unlock()
	k := 0
	for _, m := range w.msgs {
		if txt, ok := m.Msg.(*Text); ok && txt.S == s {
			k++
		}
	}
	return k
}

// eventsOf returns the events about id.
func (w *watched) eventsOf(id uuid.UUID) []mesh.PeerEvent {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []mesh.PeerEvent
	for _, ev := range w.events {
		if ev.Peer.ID == id {
			out = append(out, ev)
		}
	}
	return out
}

// linked returns the names of the linked peers, with "@site" for remote
// ones, sorted as Peers sorts them.
func (w *watched) linked() []string {
	var out []string
	for _, p := range w.Peers() {
		if p.State != mesh.StateLinked {
			continue
		}
		s := p.Name
		if p.Site != "" {
			s += "@" + p.Site
		}
		out = append(out, s)
	}
	return out
}

// waitFor polls cond until it holds or timeout passes; it returns how long
// it took.
func waitFor(t *testing.T, timeout time.Duration, what string, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for deadline := start.Add(timeout); ; time.Sleep(5 * time.Millisecond) {
		if cond() {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
	}
}

// waitLinked waits until every node sees exactly want (LAN and remote
// peers, as linked() spells them); it returns how long that took.
func waitLinked(t *testing.T, timeout time.Duration, want map[*watched][]string) time.Duration {
	t.Helper()
	start := time.Now()
	for deadline := start.Add(timeout); ; time.Sleep(5 * time.Millisecond) {
		bad := ""
		for w, names := range want {
			if got := w.linked(); strings.Join(got, ",") != strings.Join(names, ",") {
				bad = fmt.Sprintf("%s sees %v, want %v", w.Name(), got, names)
				break
			}
		}
		if bad == "" {
			return time.Since(start)
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", timeout, bad)
		}
	}
}

// join joins w to the hub at url as a member of site, closing the bridge
// on cleanup (before the node).
func join(t *testing.T, w *watched, url, site string, hb time.Duration) *Bridge {
	t.Helper()
	b, err := Join(w.Node, Options{URL: url, Site: site, Heartbeat: hb, Logger: testLogger(w.Name())})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// crash ends a bridge as a dying process would: its connection is cut with
// no goodbye, and nothing more is published.
func (b *Bridge) crash() {
	b.nc.Close()
	b.Close()
}

// request asks to for a pong, through whatever route the node takes.
func request(from *watched, to uuid.UUID, timeout time.Duration) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	r, err := from.Request(ctx, to, &Text{S: "ping"})
	if err != nil {
		return "", err
	}
	txt, ok := r.(*Text)
	if !ok {
		return "", errors.New("reply is no Text")
	}
	return txt.S, nil
}
