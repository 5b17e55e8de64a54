package mesh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lanmesh/lanmesh/meshkey"
)

// Dial connects to a node listening at addr (a known address: no discovery)
// over cfg.Transport, runs the handshake and returns the Messenger. ctx
// bounds the whole; cfg.Link.HandshakeTimeout bounds the connection and the
// handshake each.
func Dial(ctx context.Context, cfg Config, addr string) (*Messenger, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	dialCtx, cancel := context.WithTimeout(ctx, cfg.Link.HandshakeTimeout)
	conn, err := cfg.Link.transport().Dial(dialCtx, addr)
	cancel()
	if err != nil {
		return nil, fmt.Errorf("mesh: dial %s: %w", addr, err)
	}
	local := cfg.hello()
	s, err := handshake(ctx, conn, local, cfg, hsOptions{initiator: true, keys: cfg.Keyring.Derive(cfg.Mesh)})
	if err != nil {
		conn.Close()
		return nil, err
	}
	m, err := newMessenger(conn, cfg, local, s)
	if err != nil {
		conn.Close()
		return nil, err
	}
	return m, nil
}

// Listener accepts links on one or more addresses: the server side of Dial.
// Each connection is handshaken on its own goroutine, so a slow or hostile
// one never holds up the others; failures are logged and the connection
// dropped, and Accept returns only links that are up.
//
// At most 64 connections are handshaken at once, a quarter
// of them from any one source address, so that a flood of silent
// connections costs bounded memory and cannot shut out other hosts. A
// connection past either bound is closed at once, before any handshake
// work, and counted (Refused).
type Listener struct {
	cfg       Config
	keys      *meshkey.Set // cfg.Keyring derived for cfg.Mesh; nil: unkeyed
	lns       []net.Listener
	ready     chan *Messenger
	ctx       context.Context // ends handshakes in progress on Close
	cancel    context.CancelFunc
	slots     hsSlots
	refused   atomic.Uint64
	wg        sync.WaitGroup
	closeOnce sync.Once
}

// Listen listens on each of addrs over cfg.Transport (a server can listen on
// several addresses, one per interface say). When cfg.listenPort is 0 it
// advertises the port of the first address.
func Listen(cfg Config, addrs ...string) (*Listener, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if len(addrs) == 0 {
		return nil, fmt.Errorf("%w: Listen needs at least one address", ErrConfig)
	}
	l := &Listener{cfg: cfg, keys: cfg.Keyring.Derive(cfg.Mesh), ready: make(chan *Messenger)}
	l.slots.init(defaultMaxHandshakes)
	l.ctx, l.cancel = context.WithCancel(context.Background())
	for _, addr := range addrs {
		ln, err := cfg.Link.transport().Listen(addr)
		if err != nil {
			l.Close()
			return nil, fmt.Errorf("mesh: listen %s: %w", addr, err)
		}
		l.lns = append(l.lns, ln)
	}
	if l.cfg.listenPort == 0 {
		if _, port, err := net.SplitHostPort(l.lns[0].Addr().String()); err == nil {
			p, _ := strconv.ParseUint(port, 10, 16)
			l.cfg.listenPort = uint16(p)
		}
	}
	for _, ln := range l.lns {
		l.wg.Add(1)
		go l.acceptLoop(ln)
	}
	return l, nil
}

// Addr returns the first address listened on.
func (l *Listener) Addr() net.Addr { return l.lns[0].Addr() }

// Addrs returns every address listened on.
func (l *Listener) Addrs() []net.Addr {
	out := make([]net.Addr, len(l.lns))
	for i, ln := range l.lns {
		out[i] = ln.Addr()
	}
	return out
}

// Refused returns how many connections were closed unhandshaken because
// too many handshakes were in progress, in all or from their source.
func (l *Listener) Refused() uint64 { return l.refused.Load() }

// Accept returns the next link that completed its handshake, waiting until
// ctx ends or the Listener is closed (ErrListenerClosed).
func (l *Listener) Accept(ctx context.Context) (*Messenger, error) {
	select {
	case m := <-l.ready:
		return m, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-l.ctx.Done():
		return nil, ErrListenerClosed
	}
}

// Close stops listening, abandons handshakes in progress and closes links
// that Accept has not returned; those it returned are the caller's. It
// returns once every goroutine of the Listener has ended.
func (l *Listener) Close() error {
	l.closeOnce.Do(func() {
		l.cancel()
		for _, ln := range l.lns {
			ln.Close()
		}
	})
	l.wg.Wait()
	return nil
}

func (l *Listener) acceptLoop(ln net.Listener) {
	defer l.wg.Done()
	delay := time.Duration(0)
	for {
		conn, err := ln.Accept()
		if err != nil {
			if l.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			// Out of file descriptors and the like: back off, bounded.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			l.cfg.logger().Warn("mesh: accept failed", "addr", ln.Addr(), "err", err, "retry", delay)
			select {
			case <-time.After(delay):
				continue
			case <-l.ctx.Done():
				return
			}
		}
		delay = 0
		src := sourceAddr(conn.RemoteAddr())
		if !l.slots.acquire(src) {
			l.refused.Add(1)
			l.cfg.logger().Debug("mesh: connection refused: too many handshakes in progress", "remote", conn.RemoteAddr())
			conn.Close()
			continue
		}
		l.wg.Add(1)
		go l.handshake(conn, src)
	}
}

func (l *Listener) handshake(conn net.Conn, src netip.Addr) {
	defer l.wg.Done()
	local := l.cfg.hello()
	s, err := handshake(l.ctx, conn, local, l.cfg, hsOptions{keys: l.keys})
	l.slots.release(src)
	if err != nil {
		conn.Close()
		if l.ctx.Err() == nil { // else the Listener is closing: no news
			l.cfg.logger().Warn("mesh: incoming link refused", "addr", conn.RemoteAddr(), "err", err)
		}
		return
	}
	m, err := newMessenger(conn, l.cfg, local, s)
	if err != nil {
		conn.Close()
		return
	}
	select {
	case l.ready <- m:
	case <-l.ctx.Done():
		m.CloseReason("listener closed")
	}
}

// Serve accepts links and starts h on each (see Messenger.Handle), as a
// server built on callbacks does, until ctx ends (it returns ctx.Err()) or
// the Listener is closed (ErrListenerClosed). Before it returns it closes
// every link it started that is still open.
func (l *Listener) Serve(ctx context.Context, h Handlers) error {
	// live holds the links still open, so that they can be closed on return.
	var mu sync.Mutex
	live := map[*Messenger]struct{}{}
	onClose := h.OnClose
	h.OnClose = func(m *Messenger, err error) {
		mu.Lock()
		delete(live, m)
		mu.Unlock()
		if onClose != nil {
			onClose(m, err)
		}
	}
	defer func() {
		mu.Lock()
		open := make([]*Messenger, 0, len(live))
		for m := range live {
			open = append(open, m)
		}
		mu.Unlock()
		for _, m := range open {
			m.CloseReason("server stopping")
		}
	}()
	for {
		m, err := l.Accept(ctx)
		if err != nil {
			return err
		}
		mu.Lock()
		live[m] = struct{}{}
		mu.Unlock()
		m.Handle(h)
	}
}
