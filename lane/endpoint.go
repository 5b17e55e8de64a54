package lane

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// PacketConn is what an Endpoint needs of a UDP socket; *net.UDPConn has it.
type PacketConn interface {
	ReadFromUDPAddrPort(b []byte) (int, netip.AddrPort, error)
	WriteToUDPAddrPort(b []byte, addr netip.AddrPort) (int, error)
	LocalAddr() net.Addr
	Close() error
}

var _ PacketConn = (*net.UDPConn)(nil)

// readBuffer holds the largest UDP datagram, so that a peer with a larger
// MTU is never cut short.
const readBuffer = 64 << 10

// SocketReadBuffer is the receive buffer NewEndpoint asks the kernel for
// (SO_RCVBUF; the kernel may give less: Linux caps it at net.core.rmem_max).
// A tick's datagrams from every peer arrive together, and the default
// (about 200 KiB on Linux, under a hundred full datagrams) overflows when
// the reader runs a millisecond or two late: a lost datagram, which no
// retransmission brings back. 4 MiB holds the datagrams of tens of
// milliseconds of a loopback flood, as long as a loaded machine may keep
// the reader off its CPU: in lanmesh bench's throughput figure on a loaded
// 2-core machine, 1 MiB lost 3 to 16% of the datagrams there, 4 MiB
// almost none. The memory is the kernel's, taken only while datagrams wait.
const SocketReadBuffer = 4 << 20

// maxReadErrors ends the reader after this many read errors in a row with no
// datagram between (a socket that fails for good).
const maxReadErrors = 100

// Endpoint is one UDP socket that carries the lanes of every peer of a
// node. Its reader goroutine hands each datagram to the lane whose token it
// carries (a datagram of no lane here is dropped and counted), and that
// lane's messages to the deliver function given with it.
type Endpoint struct {
	conn PacketConn

	mu    sync.RWMutex // guards lanes
	lanes map[Token]*route

	unknown    atomic.Uint64
	readErrors atomic.Uint64

	closeOnce sync.Once
	closed    atomic.Bool
	wg        sync.WaitGroup
	err       atomic.Pointer[error]
}

type route struct {
	lane    *Lane
	deliver func([]Message)
}

// EndpointStats counts what an endpoint dropped before any lane saw it.
type EndpointStats struct {
	// Unknown counts datagrams that name no lane of this endpoint: a
	// spoofer's, a closed link's, another program's, or not a lane
	// datagram at all. Each lane counts its own drops (Lane.Stats).
	Unknown    uint64
	ReadErrors uint64
}

// NewEndpoint starts reading conn; Close stops the reader and closes conn.
// It asks for a receive buffer of SocketReadBuffer when conn has
// SetReadBuffer (as *net.UDPConn does); a smaller one is no error.
func NewEndpoint(conn PacketConn) *Endpoint {
	if c, ok := conn.(interface{ SetReadBuffer(int) error }); ok {
		_ = c.SetReadBuffer(SocketReadBuffer) // best effort: the kernel's cap applies
	}
	e := &Endpoint{conn: conn, lanes: map[Token]*route{}}
	e.wg.Add(1)
	go e.read()
	return e
}

// Port is the endpoint's UDP port: what the link handshake announces.
func (e *Endpoint) Port() uint16 {
	if a, ok := e.conn.LocalAddr().(*net.UDPAddr); ok {
		return uint16(a.Port)
	}
	return 0
}

// Open adds the lane of session s, which sends to s.Peer (required) and
// accepts datagrams from there alone. deliver runs on the endpoint's reader
// goroutine with the messages of each datagram; their payloads are valid
// only during the call, and deliver must not block (copy them to a queue).
func (e *Endpoint) Open(cfg Config, s Session, deliver func([]Message)) (*Lane, error) {
	if !s.Peer.IsValid() {
		return nil, fmt.Errorf("%w: the session has no peer address", ErrConfig)
	}
	if deliver == nil {
		return nil, fmt.Errorf("%w: no deliver function", ErrConfig)
	}
	peer := s.Peer
	l, err := New(cfg, s, func(b []byte) error {
		_, err := e.conn.WriteToUDPAddrPort(b, peer)
		return err
	})
	if err != nil {
		return nil, err
	}
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.closed.Load() {
		return nil, net.ErrClosed
	}
	if _, dup := e.lanes[s.Local]; dup {
		return nil, fmt.Errorf("%w: token %x is in use", ErrConfig, s.Local)
	}
	e.lanes[s.Local] = &route{lane: l, deliver: deliver}
	return l, nil
}

// Remove takes l off the endpoint (its link has closed): from then on its
// datagrams count as Unknown. A deliver call under way may still finish.
func (e *Endpoint) Remove(l *Lane) {
	e.mu.Lock()
	defer e.mu.Unlock()
	if r := e.lanes[l.sess.Local]; r != nil && r.lane == l {
		delete(e.lanes, l.sess.Local)
	}
}

// Stats returns the endpoint's counters.
func (e *Endpoint) Stats() EndpointStats {
	return EndpointStats{Unknown: e.unknown.Load(), ReadErrors: e.readErrors.Load()}
}

// Err returns the error that ended the reader before Close, or nil.
func (e *Endpoint) Err() error {
	if p := e.err.Load(); p != nil {
		return *p
	}
	return nil
}

// Close closes the socket and waits for the reader to end. It is
// idempotent.
func (e *Endpoint) Close() error {
	var err error
	e.closeOnce.Do(func() {
		e.closed.Store(true)
		err = e.conn.Close()
		e.wg.Wait()
	})
	return err
}

func (e *Endpoint) read() {
	defer e.wg.Done()
	buf := make([]byte, readBuffer)
	out := make([]Message, 0, 64)
	fails := 0
	for {
		n, from, err := e.conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			if e.closed.Load() || errors.Is(err, net.ErrClosed) {
				return
			}
			e.readErrors.Add(1)
			if fails++; fails >= maxReadErrors {
				// A variable of its own: taking err's address would move
				// every iteration's err to the heap (an allocation a
				// datagram).
				stopped := fmt.Errorf("lane: endpoint reader stopped after %d read errors: %w", fails, err)
				e.err.Store(&stopped)
				return
			}
			time.Sleep(time.Millisecond) // a transient error: do not spin
			continue
		}
		fails = 0
		tok, ok := PeekToken(buf[:n])
		e.mu.RLock()
		r := e.lanes[tok]
		e.mu.RUnlock()
		if !ok || r == nil {
			e.unknown.Add(1)
			continue
		}
		out, err = r.lane.Receive(buf[:n], from, time.Now(), out[:0])
		if err == nil && len(out) > 0 {
			r.deliver(out)
		}
	}
}
