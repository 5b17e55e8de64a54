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
// Its pump has the Node's shape: Send, Xfer, and Get returning a Message.
//
// A game loop calls, each tick, Send for what it has to say, Xfer to move
// bytes, and Get until it returns false; none of them blocks:
//
//	for running {
//		m.Send(&Move{X: 1})
//		if err := m.Xfer(); err != nil { ... } // the link ended: err says why
//		for msg, ok := m.Get(); ok; msg, ok = m.Get() { ... } // msg.Msg is *Move, ...
//	}
//
// Other programs call Receive, which blocks with a context, or Handle, which
// calls functions on a goroutine of the Messenger's. All methods are safe for
// concurrent use. Messages received before the link closed stay available
// to Get and Receive after it.
type Messenger struct {
	l    *link
	in   *queue[any] // the messages alone: who sent them is fixed (peer)
	peer PeerInfo    // the peer's identity, fixed at the handshake

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
	OnMessage func(m *Messenger, msg Message)
	OnClose   func(m *Messenger, err error)
}

// errHandled is returned by Handle on a Messenger that has handlers already.
var errHandled = errors.New("mesh: Handle called twice")

// messengerSink makes a Messenger's queue its link's sink. The queue holds
// the messages alone: a Messenger has one peer, so take adds who sent them.
type messengerSink struct{ q *queue[any] }

func (s messengerSink) Deliver(_ *link, msgs []any, stop <-chan struct{}) int {
	return s.q.push(msgs, stop)
}

// newMessenger starts a Messenger's link on conn, after the handshake.
func newMessenger(conn net.Conn, cfg Config, local hello, s session) (*Messenger, error) {
	m := &Messenger{in: newQueue[any](cfg.ReceiveQueueLimit), taken: make([]any, 0, readBatch)}
	sink := messengerSink{q: m.in}
	l, err := newLink(conn, cfg, local, s.remote, sink, false, &s)
	if err != nil {
		return nil, err
	}
	m.l = l
	m.peer = PeerInfo{ID: s.remote.NodeID, Instance: s.remote.InstanceID, Name: s.remote.Name,
		State: StateLinked, Since: l.epoch, LocalAddr: conn.LocalAddr(), RemoteAddr: conn.RemoteAddr()}
	if s.remote.ListenPort != 0 {
		if ta, ok := conn.RemoteAddr().(*net.TCPAddr); ok {
			m.peer.Addr = (&net.TCPAddr{IP: ta.IP, Port: int(s.remote.ListenPort), Zone: ta.Zone}).String()
		}
	}
	return m, nil
}

// Send encodes msg (a registered message, best passed as a pointer) into the
// outgoing buffer and returns at once; it never waits for the network. The
// bytes leave on the next Xfer, or at once with LinkConfig.AutoFlush. It
// returns ErrBackpressure when the buffer is at LinkConfig.SendBufferLimit,
// a codec error for a message it cannot encode, and the link's *CloseError
// once it is closing. For the binary codec and a pointer it does not
// allocate.
func (m *Messenger) Send(msg any) error { return m.l.Send(msg) }

// Xfer moves bytes: it hands what Send queued since the last Xfer to the
// network, in one write. Received messages are made available to Get as
// the reader decodes them. It never blocks. It returns nil while the link
// is open and the link's *CloseError once it is closing; messages that
// arrived before stay available to Get.
func (m *Messenger) Xfer() error {
	m.l.Flush()
	return m.l.Err()
}

// Get returns the next received message, or false if there is none. It
// never blocks. Messages are available as soon as the reader goroutine has
// decoded them, Xfer or not. Use either Get and Receive or an OnMessage
// handler, not both: they take from the same queue.
func (m *Messenger) Get() (Message, bool) { return m.take() }

// take returns the next message, taking a batch from the queue when the
// last one is used up.
func (m *Messenger) take() (Message, bool) {
	m.takeMu.Lock()
	defer m.takeMu.Unlock()
	if m.next == len(m.taken) {
		m.taken, m.next = m.in.popMany(m.taken[:0], readBatch), 0
		if len(m.taken) == 0 {
			return Message{}, false
		}
	}
	v := m.taken[m.next]
	m.taken[m.next] = nil
	m.next++
	return Message{From: m.peer.ID, FromName: m.peer.Name, Msg: v, link: m.l}, true
}

// Receive returns the next received message, waiting for one until ctx
// ends (ctx.Err()) or the link has ended and every message that came before
// was returned (the link's *CloseError).
func (m *Messenger) Receive(ctx context.Context) (Message, error) {
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
		case <-m.l.Done():
			m.waiters.Add(-1)
			if v, ok := m.take(); ok {
				return v, nil
			}
			return Message{}, m.l.Err()
		case <-ctx.Done():
			m.waiters.Add(-1)
			return Message{}, ctx.Err()
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
		case <-m.l.Done():
		}
		for h.OnMessage != nil && deliver() {
		}
		if h.OnClose != nil {
			m.inHandler.Store(true)
			h.OnClose(m, m.l.Err())
			m.inHandler.Store(false)
		}
		return
	}
}

// Close closes the link gracefully with the reason "closed"; see
// CloseReason.
func (m *Messenger) Close() error { return m.CloseReason("closed") }

// CloseReason closes the link gracefully: it writes what Send had queued,
// then a Bye carrying reason, which the peer reports as a CloseError with
// Remote set; then it reads until the peer hangs up, so that the peer's
// last bytes are not lost. All of it is bounded by LinkConfig.CloseTimeout.
// It returns when the link's goroutines have ended, and the dispatch
// goroutine, if Handle started one, has delivered what is left and called
// OnClose, unless a handler is running at that moment (it may be the
// caller): then that goroutine ends as soon as the handler returns. It is
// idempotent; a link that had already ended for another reason keeps that
// reason.
func (m *Messenger) CloseReason(reason string) error {
	err := m.l.CloseReason(reason)
	if !m.inHandler.Load() {
		m.dispatch.Wait()
	}
	return err
}

// Done is closed when the link has ended.
func (m *Messenger) Done() <-chan struct{} { return m.l.Done() }

// Err returns nil while the link is open and, once a close has begun, the
// *CloseError that says why.
func (m *Messenger) Err() error { return m.l.Err() }

// Stats returns the link's counters and round-trip time.
func (m *Messenger) Stats() Stats { return m.l.Stats() }

// Remote describes the peer, as its handshake named it: its id, instance,
// name, the address it accepts links on (if it said), and the link's ends.
func (m *Messenger) Remote() PeerInfo {
	p := m.peer
	if m.l.Err() != nil {
		p.State = StateSeen
	}
	p.Link = m.l.Stats()
	return p
}
