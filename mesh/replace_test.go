package mesh

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
)

// cutTransport wraps a transport so that a test can cut every conn it has
// made so far in a way neither end notices at once: from the cut on, what
// this side writes is dropped, what the other side writes is read and
// dropped, and closing the conn here does not close it there. It is a
// cable pulled on a link whose peer keeps counting it live, the state the
// fast-redial race needs.
type cutTransport struct {
	Transport
	mu    sync.Mutex
	conns []*cutConn // not yet cut
	all   []*cutConn
	dials []time.Time
	// unreachable: dials fail (the far host is cut off too).
	unreachable atomic.Bool
}

func (c *cutTransport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	if c.unreachable.Load() {
		return nil, errors.New("network is unreachable")
	}
	conn, err := c.Transport.Dial(ctx, addr)
	if err != nil {
		return nil, err
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dials = append(c.dials, time.Now())
	return c.wrapLocked(conn), nil
}

func (c *cutTransport) Listen(addr string) (net.Listener, error) {
	ln, err := c.Transport.Listen(addr)
	if err != nil {
		return nil, err
	}
	return &cutListener{Listener: ln, t: c}, nil
}

func (c *cutTransport) wrapLocked(conn net.Conn) *cutConn {
	cc := &cutConn{Conn: conn}
	c.conns = append(c.conns, cc)
	c.all = append(c.all, cc)
	return cc
}

// cut cuts every conn made so far.
func (c *cutTransport) cut() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cc := range c.conns {
		cc.cut.Store(true)
	}
	c.conns = nil
}

// dialsSince returns when the dials made since t were made.
func (c *cutTransport) dialsSince(t time.Time) []time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []time.Time
	for _, d := range c.dials {
		if !d.Before(t) {
			out = append(out, d)
		}
	}
	return out
}

type cutListener struct {
	net.Listener
	t *cutTransport
}

func (l *cutListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	l.t.mu.Lock()
	defer l.t.mu.Unlock()
	return l.t.wrapLocked(conn), nil
}

type cutConn struct {
	net.Conn
	cut      atomic.Bool
	closed   atomic.Bool
	closedAt atomic.Int64 // unix ns of a Close after the cut
	under    sync.Once    // closes the real conn
}

func (c *cutConn) Read(p []byte) (int, error) {
	for {
		n, err := c.Conn.Read(p)
		if c.closed.Load() {
			return 0, net.ErrClosed
		}
		if err == nil && c.cut.Load() {
			continue // the other side's bytes die on the cut cable
		}
		return n, err
	}
}

func (c *cutConn) Write(p []byte) (int, error) {
	if c.closed.Load() {
		return 0, net.ErrClosed
	}
	if c.cut.Load() {
		return len(p), nil
	}
	return c.Conn.Write(p)
}

func (c *cutConn) CloseWrite() error {
	if cw, ok := c.Conn.(interface{ CloseWrite() error }); ok && !c.cut.Load() {
		return cw.CloseWrite()
	}
	return nil
}

func (c *cutConn) Close() error {
	if !c.closed.Swap(true) && c.cut.Load() {
		c.closedAt.Store(time.Now().UnixNano())
		// The other end must not learn of it: unblock our reader only.
		// The real conn is closed when the test ends (closeUnder).
		return c.Conn.SetReadDeadline(time.Unix(1, 0))
	}
	if !c.cut.Load() {
		c.under.Do(func() { c.Conn.Close() })
	}
	return nil
}

// TestFastRedialReplacesLiveLink is the fast-redial race of issue 12, made
// repeatable: b's link to a is cut so that b's silence check ends it while
// a, with a longer Silence, still counts it live. b redials after its
// backoff (never sooner than RedialMin/2 after its link ended); the new
// link reaches a while the old one is still counted live there. Both sides
// (once a's guard found the old link silent for Silence/2) must see the
// replacement as PeerLeft then PeerJoined, a's PeerLeft
// saying ErrLinkReplaced, and a's request pending on the old link must fail
// at once with that reason rather than wait out its context.
func TestFastRedialReplacesLiveLink(t *testing.T) {
	leaktest.Check(t)
	mem := NewMemNetwork()
	ct := &cutTransport{Transport: mem}
	const redialMin = 300 * time.Millisecond
	nodes := startNodes(t, nodeNet{name: "mem", mem: mem}, 2, func(i int, c *NodeConfig) {
		c.Net.RedialMin, c.Net.RedialMax = redialMin, 2*redialMin
		c.Link.PingInterval = 50 * time.Millisecond
		// The lifecycle without resumable links (an older peer's):
		// TestResumeFastRedial is the same race with them.
		c.Resume.Disabled = true
		if i == 0 {
			// a notices the cut later than b: b's new link arrives while a
			// still counts the old one live. a's guard probes the old link
			// (for Silence/2) before it lets the new one replace it.
			c.Link.Silence = 2 * time.Second
			c.Net.Peers = nil // a never redials: b does
		} else {
			c.Link.Silence = 300 * time.Millisecond
			c.Link.Transport = ct
		}
	})
	a, b := nodes[0], nodes[1]
	t.Cleanup(ct.closeUnder)
	fullMesh(t, nodes)
	for _, n := range nodes {
		if ev, err := nextEvent(testCtx(t, 5*time.Second), n); err != nil || ev.Kind != PeerJoined {
			t.Fatalf("%s: first event %v, %v", n.Name(), ev.Kind, err)
		}
	}
	const rounds = 6
	for round := range rounds {
		// A request from a to b, pending when the cable is cut: nobody
		// answers requests in this test, so only a failure can end it.
		reqErr := make(chan error, 1)
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		go func() {
			_, err := a.Request(ctx, b.ID(), &Text{S: "are you there"})
			reqErr <- err
		}()
		waitUntil(t, 5*time.Second, "the request to be pending", func() bool {
			select {
			case err := <-reqErr:
				t.Fatalf("round %d: the request ended before the cut: %v", round, err)
			default:
			}
			return a.reqs.pending() == 1
		})
		ct.cut()
		cutAt := time.Now()

		ev, err := nextEvent(testCtx(t, 5*time.Second), b)
		if err != nil || ev.Kind != PeerLeft || !errors.Is(ev.Err, ErrSilence) {
			t.Fatalf("round %d: b's first event after the cut: %v %v (%v)", round, ev.Kind, ev.Err, err)
		}
		if ev, err := nextEvent(testCtx(t, 5*time.Second), b); err != nil || ev.Kind != PeerJoined {
			t.Fatalf("round %d: b's second event: %v (%v)", round, ev.Kind, err)
		}
		// The redial waited out the backoff: no dial in the first
		// RedialMin/2 after b's end of the cut link closed.
		var closedAt time.Time
		for _, d := range ct.dialsSince(cutAt) {
			if closedAt.IsZero() {
				closedAt = ct.lastClose(cutAt)
			}
			if gap := d.Sub(closedAt); gap < redialMin/2 {
				t.Fatalf("round %d: b redialled %v after its link ended; the backoff is at least %v", round, gap, redialMin/2)
			}
		}
		if len(ct.dialsSince(cutAt)) == 0 {
			t.Fatalf("round %d: no redial recorded", round)
		}
		ev, err = nextEvent(testCtx(t, 5*time.Second), a)
		if err != nil || ev.Kind != PeerLeft || !errors.Is(ev.Err, ErrLinkReplaced) {
			t.Fatalf("round %d: a's first event after the cut: %v %v (%v)", round, ev.Kind, ev.Err, err)
		}
		if ev, err := nextEvent(testCtx(t, 5*time.Second), a); err != nil || ev.Kind != PeerJoined {
			t.Fatalf("round %d: a's second event: %v (%v)", round, ev.Kind, err)
		}
		select {
		case err := <-reqErr:
			if !errors.Is(err, ErrPeerGone) || !errors.Is(err, ErrLinkReplaced) {
				t.Fatalf("round %d: request: %v", round, err)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: the request on the replaced link is still waiting", round)
		}
		cancel()

		fullMesh(t, nodes)
	}
}

// lastClose returns when the last conn cut after t was closed here.
func (c *cutTransport) lastClose(after time.Time) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	var last time.Time
	for _, cc := range c.all {
		if ns := cc.closedAt.Load(); ns != 0 {
			if at := time.Unix(0, ns); at.After(after) && at.After(last) {
				last = at
			}
		}
	}
	return last
}

func (c *cutTransport) closeUnder() {
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, cc := range c.all {
		cc.under.Do(func() { cc.Conn.Close() })
	}
}

// pending returns how many requests wait for an answer.
func (r *requests) pending() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.waiting)
}
