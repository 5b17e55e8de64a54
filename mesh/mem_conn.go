package mesh

import (
	"io"
	"net"
	"os"
	"sync"
	"time"
)

// The conns of the in-memory network (see MemNetwork): a pair of ring
// buffers with a window each, deadlines, and the half-close of TCP.

// memWindow is how many bytes a mem conn buffers in each direction, about
// what a loopback socket holds before a writer blocks.
const memWindow = 256 << 10

// memPipe returns the two ends of an in-memory connection.
func memPipe(a, b memAddr) (*memConn, *memConn) {
	ab, ba := newMemBuf(), newMemBuf()
	return newMemConn(ba, ab, a, b), newMemConn(ab, ba, b, a)
}

// memBuf is one direction of a mem conn: a ring buffer of memWindow bytes.
type memBuf struct {
	// mu guards the fields below it.
	mu     sync.Mutex
	data   []byte
	head   int  // first unread byte
	n      int  // unread bytes
	eof    bool // the writer ended its half: read the rest, then io.EOF
	broken bool // the reader closed its end: writes fail

	readable chan struct{} // a token when bytes or eof arrive
	writable chan struct{} // a token when room frees or the reader leaves
}

func newMemBuf() *memBuf {
	return &memBuf{data: make([]byte, memWindow), readable: make(chan struct{}, 1), writable: make(chan struct{}, 1)}
}

// read copies buffered bytes into p; ok is false when it must wait.
func (b *memBuf) read(p []byte) (n int, ok bool, err error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.n == 0 {
		if b.eof {
			return 0, true, io.EOF
		}
		return 0, false, nil
	}
	for n < len(p) && b.n > 0 {
		k := copy(p[n:], b.data[b.head:min(b.head+b.n, len(b.data))])
		n += k
		b.n -= k
		b.head = (b.head + k) % len(b.data)
	}
	if b.n == 0 {
		b.head = 0
	}
	signal(b.writable)
	return n, true, nil
}

// write copies what fits of p; it returns 0, nil when it must wait.
func (b *memBuf) write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.broken || b.eof {
		return 0, io.ErrClosedPipe
	}
	n := 0
	for n < len(p) && b.n < len(b.data) {
		tail := (b.head + b.n) % len(b.data)
		end := len(b.data)
		if tail < b.head {
			end = b.head
		}
		k := copy(b.data[tail:end], p[n:])
		n += k
		b.n += k
	}
	if n > 0 {
		signal(b.readable)
	}
	return n, nil
}

func (b *memBuf) closeWrite() {
	b.mu.Lock()
	b.eof = true
	b.mu.Unlock()
	signal(b.readable)
}

func (b *memBuf) closeRead() {
	b.mu.Lock()
	b.broken = true
	b.n, b.head = 0, 0
	b.mu.Unlock()
	signal(b.writable)
}

// memConn is one end of a mem connection.
type memConn struct {
	in, out       *memBuf
	local, remote memAddr
	rd, wd        deadline
	closed        chan struct{}
	closeOnce     sync.Once
	// readMu and writeMu make each Read and Write whole with respect to
	// others on the same end, as a socket's are.
	readMu, writeMu sync.Mutex
}

var (
	_ net.Conn    = (*memConn)(nil)
	_ closeWriter = (*memConn)(nil)
)

func newMemConn(in, out *memBuf, local, remote memAddr) *memConn {
	return &memConn{in: in, out: out, local: local, remote: remote,
		rd: newDeadline(), wd: newDeadline(), closed: make(chan struct{})}
}

func (c *memConn) opErr(op string, err error) error {
	return &net.OpError{Op: op, Net: "mem", Source: c.local, Addr: c.remote, Err: err}
}

func (c *memConn) Read(p []byte) (int, error) {
	c.readMu.Lock()
	defer c.readMu.Unlock()
	for {
		select {
		case <-c.closed:
			return 0, c.opErr("read", net.ErrClosed)
		case <-c.rd.wait():
			return 0, c.opErr("read", os.ErrDeadlineExceeded)
		default:
		}
		if len(p) == 0 {
			return 0, nil
		}
		if n, ok, err := c.in.read(p); ok {
			if err != nil && err != io.EOF {
				err = c.opErr("read", err)
			}
			return n, err
		}
		select {
		case <-c.in.readable:
		case <-c.rd.wait():
		case <-c.closed:
		}
	}
}

func (c *memConn) Write(p []byte) (int, error) {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	total := 0
	for {
		select {
		case <-c.closed:
			return total, c.opErr("write", net.ErrClosed)
		case <-c.wd.wait():
			return total, c.opErr("write", os.ErrDeadlineExceeded)
		default:
		}
		n, err := c.out.write(p[total:])
		total += n
		if err != nil {
			return total, c.opErr("write", err)
		}
		if total == len(p) {
			return total, nil
		}
		if n == 0 {
			select {
			case <-c.out.writable:
			case <-c.wd.wait():
			case <-c.closed:
			}
		}
	}
}

// Close ends both halves: the peer reads what was sent, then EOF, and its
// writes fail.
func (c *memConn) Close() error {
	c.closeOnce.Do(func() {
		close(c.closed)
		c.out.closeWrite()
		c.in.closeRead()
		c.rd.stop()
		c.wd.stop()
	})
	return nil
}

// CloseWrite ends the sending half: the peer reads what was sent, then EOF.
func (c *memConn) CloseWrite() error {
	c.out.closeWrite()
	return nil
}

func (c *memConn) LocalAddr() net.Addr  { return c.local }
func (c *memConn) RemoteAddr() net.Addr { return c.remote }

func (c *memConn) SetDeadline(t time.Time) error {
	c.rd.set(t)
	c.wd.set(t)
	return nil
}

func (c *memConn) SetReadDeadline(t time.Time) error  { c.rd.set(t); return nil }
func (c *memConn) SetWriteDeadline(t time.Time) error { c.wd.set(t); return nil }

// deadline is a channel that closes when a settable time passes. One timer
// is reused, since links move their read deadline forward on every read.
type deadline struct {
	// mu guards the fields below it.
	mu    *sync.Mutex
	when  time.Time
	ch    chan struct{}
	timer *time.Timer
}

func newDeadline() deadline {
	return deadline{mu: new(sync.Mutex), ch: make(chan struct{})}
}

func isClosed(ch chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

func (d *deadline) set(t time.Time) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.when = t
	if d.timer != nil {
		d.timer.Stop()
	}
	if isClosed(d.ch) {
		d.ch = make(chan struct{})
	}
	if t.IsZero() {
		return
	}
	dur := time.Until(t)
	if dur <= 0 {
		close(d.ch)
		return
	}
	if d.timer == nil {
		d.timer = time.AfterFunc(dur, d.fire)
	} else {
		d.timer.Reset(dur)
	}
}

// fire closes the channel if the deadline now set has passed: a timer that
// fired for an older deadline must not end a newer one.
func (d *deadline) fire() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if !d.when.IsZero() && !time.Now().Before(d.when) && !isClosed(d.ch) {
		close(d.ch)
	}
}

func (d *deadline) wait() <-chan struct{} {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.ch
}

func (d *deadline) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.timer != nil {
		d.timer.Stop()
	}
}
