package mesh

import (
	"context"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"

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
// cfg.Link.Accept bounds what connections may cost (see AcceptConfig): a rate
// per source address, handshakes in progress in all (the oldest evicted
// for a newcomer) and per source (the rest refused), partial frames, and
// the backlog of links that wait for Accept (past it, new links are
// closed with the reason "listener backlog full"). Refused counts the
// connections and links so closed.
type Listener struct {
	cfg       Config
	keys      *meshkey.Set // cfg.Keyring derived for cfg.Mesh; nil: unkeyed
	lns       []net.Listener
	ready     chan *Messenger // the backlog, of cfg.Link.Accept.Backlog
	ctx       context.Context // ends handshakes in progress on Close
	cancel    context.CancelFunc
	acc       *acceptor
	budget    *frameBudget
	refused   atomic.Uint64 // links closed on a full backlog
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
	l := &Listener{cfg: cfg, keys: cfg.Keyring.Derive(cfg.Mesh), ready: make(chan *Messenger, cfg.Link.Accept.Backlog),
		budget: newFrameBudget(cfg.Link.Accept.PartialFrameBudget)}
	l.ctx, l.cancel = context.WithCancel(context.Background())
	l.acc = newAcceptor(l.ctx, &l.wg, cfg.Link.Accept, cfg.logger())
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
		l.acc.serve(ln, l.handshake)
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

// Refused returns how many connections were closed unhandshaken (over
// their source's ConnRate, or past PerSourceHandshakes) and how many links
// were closed because the backlog was full.
func (l *Listener) Refused() uint64 { return l.acc.refused.Load() + l.refused.Load() }

// Evicted returns how many handshakes in progress were closed to make room
// for a new connection when all of cfg.Link.Accept.MaxHandshakes were taken.
func (l *Listener) Evicted() uint64 { return l.acc.evicted.Load() }

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
	for {
		select {
		case m := <-l.ready:
			m.CloseReason("listener closed")
		default:
			return nil
		}
	}
}

func (l *Listener) handshake(conn net.Conn, slot *slot) {
	local := l.cfg.hello()
	s, err := handshake(l.ctx, conn, local, l.cfg, hsOptions{keys: l.keys})
	slot.release()
	if err != nil {
		conn.Close()
		if l.ctx.Err() == nil { // else the Listener is closing: no news
			l.cfg.logger().Warn("mesh: incoming link refused", "addr", conn.RemoteAddr(), "err", err)
		}
		return
	}
	m, err := newMessenger(withBudget(conn, l.budget), l.cfg, local, s)
	if err != nil {
		conn.Close()
		return
	}
	if l.ctx.Err() != nil {
		m.CloseReason("listener closed")
		return
	}
	select {
	case l.ready <- m:
	default:
		l.refused.Add(1)
		l.cfg.logger().Warn("mesh: incoming link closed: the Listener's backlog is full (call Accept)",
			"addr", conn.RemoteAddr(), "backlog", cap(l.ready))
		m.CloseReason("listener backlog full")
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
