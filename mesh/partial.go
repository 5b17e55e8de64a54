package mesh

import (
	"errors"
	"fmt"
	"io"
	"net"
	"sync/atomic"
	"time"
)

// errPartialFrame ends a link whose incomplete frame broke a bound of
// AcceptConfig: it stalled past PartialFrameTimeout, or its buffer would
// take the node past PartialFrameBudget.
var errPartialFrame = errors.New("mesh: partial frame")

// frameBudget is the bytes that links of one owner (a Node, a Listener, a
// Dial) may buffer for frames larger than PartialFrameFree, all together.
// A nil *frameBudget allows everything. Safe for concurrent use.
type frameBudget struct {
	max     int64
	used    atomic.Int64
	peak    atomic.Int64  // the most ever used, for tests and stats
	refused atomic.Uint64 // links closed because the budget was spent
	stalled atomic.Uint64 // links closed because a large frame stalled
}

func newFrameBudget(max int64) *frameBudget { return &frameBudget{max: max} }

// reserve takes n bytes, reporting false if they would pass the maximum.
func (b *frameBudget) reserve(n int64) bool {
	if b == nil {
		return true
	}
	for {
		u := b.used.Load()
		if u+n > b.max {
			return false
		}
		if b.used.CompareAndSwap(u, u+n) {
			for p := b.peak.Load(); u+n > p && !b.peak.CompareAndSwap(p, u+n); p = b.peak.Load() {
			}
			return true
		}
	}
}

// pressed reports whether over half the budget is spent.
func (b *frameBudget) pressed() bool { return b != nil && 2*b.used.Load() > b.max }

func (b *frameBudget) free(n int64) {
	if b != nil && n > 0 {
		b.used.Add(-n)
	}
}

// budgetConn hands a budget to newLink along with the conn it is for; the
// link takes the conn out again (takeBudget), so that its reads and writes
// go to the conn itself.
type budgetConn struct {
	net.Conn
	budget *frameBudget
}

// withBudget marks conn's link as one that charges budget.
func withBudget(conn net.Conn, budget *frameBudget) net.Conn {
	if budget == nil {
		return conn
	}
	return budgetConn{Conn: conn, budget: budget}
}

// takeBudget undoes withBudget.
func takeBudget(conn net.Conn) (net.Conn, *frameBudget) {
	if bc, ok := conn.(budgetConn); ok {
		return bc.Conn, bc.budget
	}
	return conn, nil
}

// frameMeter sits between a link's decoder and what it reads from, and
// knows how much of an incomplete frame the decoder holds: the bytes it
// was given less the sizes of the frames it returned. Frames up to
// PartialFrameFree cost nothing; a larger one must be complete within
// PartialFrameTimeout of passing that size, and is charged to the budget
// until the decoder, whose buffer grew for it, is replaced by a new one.
// Owned by the link's reader goroutine, but for the timer.
type frameMeter struct {
	src     io.Reader
	conn    net.Conn // its read deadline cuts a stalled frame short
	free    int64
	timeout time.Duration
	budget  *frameBudget

	in, out int64 // bytes given to the decoder; bytes of the frames it returned
	held    int64 // bytes charged to the budget
	timer   *time.Timer
	expired atomic.Bool
	frames  uint64
	first   chan struct{} // closed when the first whole frame arrives
}

func (m *frameMeter) init(conn net.Conn, cfg AcceptConfig, budget *frameBudget) {
	m.conn = conn
	m.free = int64(cfg.PartialFrameFree)
	m.timeout = cfg.PartialFrameTimeout
	if m.free <= 0 || m.timeout <= 0 { // a Config made without DefaultConfig
		d := DefaultAcceptConfig()
		m.free, m.timeout = int64(d.PartialFrameFree), d.PartialFrameTimeout
	}
	m.budget = budget
	m.first = make(chan struct{})
}

// reader returns src metered: what the link's decoder reads.
func (m *frameMeter) reader(src io.Reader) io.Reader {
	m.src = src
	return m
}

// Read is the decoder's read. A decoder reads only when it needs more
// bytes for the frame it is on, so all it holds then is that frame's
// beginning: in less out, exactly. A frame past PartialFrameFree is
// charged to the budget (what the link holds only grows until the decoder
// is renewed) and gets a deadline.
func (m *frameMeter) Read(p []byte) (int, error) {
	if m.expired.Load() {
		return 0, m.stalledErr()
	}
	if partial := m.in - m.out; partial > m.free {
		if partial > m.held {
			if !m.budget.reserve(partial - m.held) {
				m.budget.refused.Add(1)
				return 0, fmt.Errorf("%w: a frame of %d bytes so far would take the links' partial frames past PartialFrameBudget (%d bytes)",
					errPartialFrame, partial, m.budget.max)
			}
			m.held = partial
		}
		if m.timer == nil {
			m.timer = time.AfterFunc(m.timeout, m.fire)
		}
	}
	n, err := m.src.Read(p)
	m.in += int64(n)
	if m.expired.Load() {
		return n, m.stalledErr()
	}
	return n, err
}

// fire ends a read that waits for the rest of a stalled frame.
func (m *frameMeter) fire() {
	m.expired.Store(true)
	_ = m.conn.SetReadDeadline(time.Unix(1, 0))
}

func (m *frameMeter) stalledErr() error {
	m.budget.countStalled()
	return fmt.Errorf("%w: a frame larger than %d bytes did not arrive within %v (%d bytes of it came)",
		errPartialFrame, m.free, m.timeout, m.in-m.out)
}

func (b *frameBudget) countStalled() {
	if b != nil {
		b.stalled.Add(1)
	}
}

// frame records a frame of size bytes that the decoder returned. It
// reports whether the decoder should be replaced by a new one, which gives
// back a buffer that grew past PartialFrameFree: when the decoder holds
// nothing and either this frame was small (the large ones have stopped; on
// a lanmesh link a ping soon comes) or the budget is over half spent. A
// stream of large frames keeps its buffer rather than growing a new one
// for each.
func (m *frameMeter) frame(size int) (renew bool) {
	m.out += int64(size)
	if m.frames++; m.frames == 1 {
		close(m.first)
	}
	if m.timer != nil && !m.expired.Load() {
		// Progress: the next large frame gets a deadline of its own.
		m.timer.Stop()
		m.timer = nil
	}
	if m.in == m.out && m.held > 0 && (int64(size) <= m.free || m.budget.pressed()) {
		m.budget.free(m.held)
		m.held = 0
		return true
	}
	return false
}

// stop gives back what the link held, once its reader has ended.
func (m *frameMeter) stop() {
	if m.timer != nil {
		m.timer.Stop()
	}
	m.budget.free(m.held)
	m.held = 0
}
