package mesh

import (
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
)

// Messenger is one link to one peer with a receive queue: the pumped API a
// game loop uses, and the blocking and callback forms for other programs.
//
// A game loop calls, each tick, Send for what it has to say, Xfer to move
// bytes, and Get until it returns nil; none of them blocks:
//
//	for running {
//		m.Send(&Move{X: 1})
//		if err := m.Xfer(); err != nil { ... } // the link ended: err says why
//		for msg := m.Get(); msg != nil; msg = m.Get() { ... }
//	}
//
// Other programs call Receive, which blocks with a context, or Handle, which
// calls functions on a goroutine of the Messenger's. All methods are safe for
// concurrent use. Messages received before the link closed stay available
// to Get and Receive after it.
type Messenger struct {
	*Link
	in *queue[any]

	// takeMu guards the messages taken from the queue in one go and not
	// yet returned.
	takeMu sync.Mutex
	taken  []any
	next   int

	handled   atomic.Bool
	inHandler atomic.Bool
	waiters   atomic.Int32
	dispatch  sync.WaitGroup
}

// Handlers are the callbacks of a Messenger; any may be nil. They run one
// at a time, in order, on the Messenger's dispatch goroutine, never under a
// lock of the link's: OnOpen first, then OnMessage for each message, then
// OnClose once with the link's *CloseError after the last message. A slow
// handler delays the ones after it and, once the receive queue is full,
// stops the link from reading (backpressure); the link's own pings still go
// out. A handler may call any method, Close included.
type Handlers struct {
	OnOpen    func(m *Messenger)
	OnMessage func(m *Messenger, msg any)
	OnClose   func(m *Messenger, err error)
}

// errHandled is returned by Handle on a Messenger that has handlers already.
var errHandled = errors.New("mesh: Handle called twice")

// queueSink makes a queue a Link's Sink.
type queueSink struct{ q *queue[any] }

func (s queueSink) Deliver(_ *Link, msgs []any, stop <-chan struct{}) int {
	return s.q.push(msgs, stop)
}

// newMessenger starts a Messenger's link on conn, after the handshake.
func newMessenger(conn net.Conn, cfg Config, local Hello, s session) (*Messenger, error) {
	m := &Messenger{in: newQueue[any](cfg.ReceiveQueueLimit), taken: make([]any, 0, readBatch)}
	l, err := newLink(conn, cfg, local, s.remote, queueSink{m.in}, false, &s)
	if err != nil {
		return nil, err
	}
	m.Link = l
	return m, nil
}

// Xfer moves bytes: it hands what Send queued since the last Xfer to the
// writer goroutine, to go out in one write. Received messages are made
// available to Get as the reader decodes them. It never blocks. It returns
// nil while the link is open and the link's *CloseError once it is closing;
// messages that arrived before stay available to Get.
func (m *Messenger) Xfer() error {
	m.Flush()
	return m.Err()
}

// Get returns the next received message (a pointer to its registered type),
// or nil if there is none. It never blocks. Messages are available as soon
// as the reader goroutine has decoded them, Xfer or not. Use either Get and
// Receive or an OnMessage handler, not both: they take from the same queue.
func (m *Messenger) Get() any {
	v, _ := m.take()
	return v
}

// take returns the next message, taking a batch from the queue when the
// last one is used up.
func (m *Messenger) take() (any, bool) {
	m.takeMu.Lock()
	defer m.takeMu.Unlock()
	if m.next == len(m.taken) {
		m.taken, m.next = m.in.popMany(m.taken[:0], readBatch), 0
		if len(m.taken) == 0 {
			return nil, false
		}
	}
	v := m.taken[m.next]
	m.taken[m.next] = nil
	m.next++
	return v, true
}

// Receive returns the next received message, waiting for one until ctx
// ends (ctx.Err()) or the link has ended and every message that came before
// was returned (the link's *CloseError).
func (m *Messenger) Receive(ctx context.Context) (any, error) {
	for {
		if v, ok := m.take(); ok {
			if m.waiters.Load() > 0 {
				signal(m.in.ready) // pass the wake-up on to another Receive
			}
			return v, nil
		}
		m.waiters.Add(1)
		select {
		case <-m.in.ready:
		case <-m.Done():
			m.waiters.Add(-1)
			if v, ok := m.take(); ok {
				return v, nil
			}
			return nil, m.Err()
		case <-ctx.Done():
			m.waiters.Add(-1)
			return nil, ctx.Err()
		}
		m.waiters.Add(-1)
	}
}

// Handle starts the dispatch goroutine, which calls h's functions (see
// Handlers). Messages that arrived before Handle are dispatched first. Call
// it at most once; Close ends the goroutine.
func (m *Messenger) Handle(h Handlers) error {
	if !m.handled.CompareAndSwap(false, true) {
		return errHandled
	}
	m.dispatch.Add(1)
	go m.dispatchLoop(h)
	return nil
}

func (m *Messenger) dispatchLoop(h Handlers) {
	defer m.dispatch.Done()
	if h.OnOpen != nil {
		m.inHandler.Store(true)
		h.OnOpen(m)
		m.inHandler.Store(false)
	}
	// Without OnMessage the queue is the caller's, wake-ups included.
	var ready chan struct{}
	if h.OnMessage != nil {
		ready = m.in.ready
	}
	deliver := func() bool {
		v, ok := m.take()
		if ok {
			m.inHandler.Store(true)
			h.OnMessage(m, v)
			m.inHandler.Store(false)
		}
		return ok
	}
	for {
		if h.OnMessage != nil && deliver() {
			continue
		}
		select {
		case <-ready:
			continue
		case <-m.Done():
		}
		for h.OnMessage != nil && deliver() {
		}
		if h.OnClose != nil {
			m.inHandler.Store(true)
			h.OnClose(m, m.Err())
			m.inHandler.Store(false)
		}
		return
	}
}

// Close closes the link gracefully (see Link.CloseReason) and waits for the
// dispatch goroutine, if Handle started one, to deliver what is left and
// call OnClose, unless a handler is running at that moment (it may be the
// caller): then the goroutine ends as soon as that handler returns.
func (m *Messenger) Close() error { return m.CloseReason("closed") }

// CloseReason is Close with a reason for the peer.
func (m *Messenger) CloseReason(reason string) error {
	err := m.Link.CloseReason(reason)
	if !m.inHandler.Load() {
		m.dispatch.Wait()
	}
	return err
}
