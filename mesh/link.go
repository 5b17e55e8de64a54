package mesh

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lanmesh/lanmesh/codec"
	"github.com/lanmesh/lanmesh/meshkey"
	"github.com/lanmesh/lanmesh/message"
)

// linkSink takes the messages a link receives: a Messenger's queue, or a
// node's stream of all its links.
type linkSink interface {
	// Deliver takes msgs, pointers to registered types, received on l, in
	// the order they arrived. The link calls it on its reader goroutine with
	// what it decoded from one read (so a busy link costs one call per many
	// messages), and reuses the slice afterwards: copy the values, not the
	// slice. Deliver may block to make the link stop reading (which in turn
	// stops the peer: backpressure), but once stop is closed it must return
	// promptly. It returns how many of msgs it took, in order; the link
	// drops and counts the rest.
	Deliver(l *link, msgs []any, stop <-chan struct{}) int
}

// readBatch is the most messages the reader hands a Sink at once.
const readBatch = 128

// closeMode says how a link ends.
type closeMode struct {
	flush bool // write what is pending first
	bye   bool // then a Bye with the reason
	drain bool // then read until the peer's EOF, so it gets everything
}

var (
	closeLocal    = closeMode{flush: true, bye: true, drain: true} // Close
	closePeerBye  = closeMode{flush: true}                         // the peer's Bye
	closeBadInput = closeMode{bye: true}                           // the peer's bytes are bad
	closeAbrupt   = closeMode{}                                    // the conn is gone
)

// link is one established connection to a peer, after the handshake: it
// frames messages with the agreed codec, batches writes, reads into a Sink,
// keeps the link checked with pings, and closes it with a reason.
//
// A Link runs two goroutines, both ended by Close: a reader, which decodes
// frames, answers pings and hands messages to the Sink, and a writer, which
// writes each batch that Flush hands it in one write (Flush writes a small
// one itself when it can do so without waiting), sends the pings and
// carries out the close. Its methods are safe for concurrent use.
type link struct {
	conn          net.Conn
	cfg           Config
	codec         codec.Codec
	local, remote hello
	sink          linkSink
	log           *slog.Logger
	epoch         time.Time // RTT samples are nanoseconds since it
	// quiet links carry no control frames: no pings (so no silence check)
	// and no Bye. They are for peers that know none, such as cable_car.
	quiet bool

	// sendMu guards the outgoing buffer and whether Send may add to it. A
	// resumable link shares its peer session's lock (rs.s.mu).
	sendMu  *sync.Mutex
	pending []byte
	closing bool
	mode    closeMode

	cause         atomic.Pointer[CloseError] // set once, when a close begins
	closeDeadline atomic.Int64               // unix ns; 0 while open
	closeOnce     sync.Once
	flushReq      chan struct{} // a token asks the writer to write pending
	closingCh     chan struct{} // closed when a close begins
	done          chan struct{} // closed when the link has ended
	readerDone    chan struct{}
	wg            sync.WaitGroup
	stats         linkStats
	warnedDrop    atomic.Bool

	// keyed links (a mesh key): the key id the handshake used; seal and
	// open are the two directions' record ciphers.
	keyed bool
	keyID meshkey.ID

	// rs is the link's part of its peer's resumable session (session.go);
	// nil for links that do not resume (a Messenger's, cable_car's, an
	// older peer's).
	rs *linkResume
	// byeLater: a graceful close of a resumable link writes its Bye only
	// after the resend (teardown); set once, by shutdown.
	byeLater bool
	open     *recordCipher // owned by the reader goroutine

	// writeMu is held by whoever writes to conn: the writer goroutine, or
	// Flush writing a small batch itself. It guards the fields below it.
	writeMu sync.Mutex
	spare   []byte
	direct  *directWriter // nil: the conn has no non-blocking write
	seal    *recordCipher // nil: unkeyed
	wire    []byte        // sealed records not yet written

	// Owned by the writer goroutine.
	ping       message.Ping
	pingSeq    uint32
	writeArmed time.Time // when the write deadline was last set
	// Owned by the reader goroutine.
	pong      message.Pong
	batch     []any     // decoded, not yet delivered
	sizes     []int     // the frame size of each of batch, for the traffic log
	readArmed time.Time // when the read deadline was last set
	readLong  bool      // it was set with the handshake's bound (before the peer's Resume)
	meter     frameMeter
}

// newLink starts a link; sec carries a keyed handshake's keys (nil:
// unkeyed).
func newLink(conn net.Conn, cfg Config, local, remote hello, sink linkSink, quiet bool, sec *session) (*link, error) {
	conn, budget := takeBudget(conn)
	if err := cfg.validate(); err != nil {
		return nil, err
	}
	if local.Codec != cfg.Codec || remote.Codec != cfg.Codec {
		return nil, fmt.Errorf("%w: the Hellos name codecs %q and %q, the Config %q", ErrConfig, local.Codec, remote.Codec, cfg.Codec)
	}
	c, err := codec.New(cfg.Codec, cfg.registry())
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	l := &link{
		conn: conn, cfg: cfg, codec: c, local: local, remote: remote, sink: sink,
		log:   cfg.logger().With("peer", remote.Name, "node", remote.NodeID, "addr", conn.RemoteAddr()),
		epoch: time.Now(),
		quiet: quiet,

		sendMu:     new(sync.Mutex),
		pending:    make([]byte, 0, 4096),
		spare:      make([]byte, 0, 4096),
		direct:     newDirectWriter(conn),
		flushReq:   make(chan struct{}, 1),
		closingCh:  make(chan struct{}),
		done:       make(chan struct{}),
		readerDone: make(chan struct{}),
		batch:      make([]any, 0, min(readBatch, cfg.ReceiveQueueLimit)),
		sizes:      make([]int, 0, min(readBatch, cfg.ReceiveQueueLimit)),
	}
	l.meter.init(conn, cfg.Link.Accept, budget)
	if sec != nil && sec.keyed {
		l.keyed, l.keyID = true, sec.keyID
		l.seal, l.open = sec.send, sec.recv
		l.wire = make([]byte, 0, 4096)
	}
	if sec != nil && sec.lr != nil {
		l.rs = sec.lr
		l.sendMu = &l.rs.s.mu
		l.rs.deliverFn = func(skip int) (int, int) { return l.rs.sinkDeliver(l, skip) }
	}
	l.wg.Add(2)
	go l.readLoop()
	go l.writeLoop()
	l.log.Debug("mesh: link open")
	return l, nil
}

// Send encodes msg (a registered message, best passed as a pointer) into the
// outgoing buffer and returns at once; it never waits for the network. The
// bytes leave on the next Flush (Xfer on a Messenger), or at once with
// Config.AutoFlush. It returns ErrBackpressure when the buffer is at
// Config.SendBufferLimit, a codec error for a message it cannot encode, and
// the link's *CloseError once it is closing. Control messages (Ping, Pong,
// Bye) are the link's own: do not send them.
func (l *link) Send(msg any) error {
	_, err := l.send(msg)
	return err
}

// send is Send that also returns the size of msg's frame, which the
// traffic log records.
func (l *link) send(msg any) (int, error) {
	if l.rs != nil {
		return l.rs.s.put(nil, msg, nil)
	}
	l.sendMu.Lock()
	if l.closing {
		l.sendMu.Unlock()
		return 0, l.cause.Load()
	}
	n := len(l.pending)
	buf, err := l.codec.AppendFrame(l.pending, msg)
	size := len(buf) - n
	return size, l.finishSend(n, buf, err)
}

// sendPair queues a marker (a request or reply header) and the message it
// marks together, so that no other Send can come between them. It returns
// the size of msg's frame.
func (l *link) sendPair(marker, msg any) (int, error) {
	if l.rs != nil {
		return l.rs.s.put(marker, msg, nil)
	}
	l.sendMu.Lock()
	if l.closing {
		l.sendMu.Unlock()
		return 0, l.cause.Load()
	}
	n := len(l.pending)
	buf, err := l.codec.AppendFrame(l.pending, marker)
	size := 0
	if err == nil {
		m := len(buf)
		buf, err = l.codec.AppendFrame(buf, msg)
		size = len(buf) - m
	}
	return size, l.finishSend(n, buf, err)
}

// sendFrame queues a frame already encoded with this link's codec
// (Broadcast encodes once for every link).
func (l *link) sendFrame(frame []byte) error {
	if l.rs != nil {
		_, err := l.rs.s.put(nil, nil, frame)
		return err
	}
	l.sendMu.Lock()
	if l.closing {
		l.sendMu.Unlock()
		return l.cause.Load()
	}
	n := len(l.pending)
	return l.finishSend(n, append(l.pending, frame...), nil)
}

// finishSend keeps what a send appended to the first n bytes of the pending
// buffer, giving buf, or takes it back on err or past SendBufferLimit. It is
// called with sendMu held and releases it.
func (l *link) finishSend(n int, buf []byte, err error) error {
	if err == nil && len(buf) > l.cfg.Link.SendBufferLimit {
		err = ErrBackpressure
		if len(buf)-n > l.cfg.Link.SendBufferLimit {
			err = fmt.Errorf("%w: %d bytes exceed SendBufferLimit %d", codec.ErrFrameTooLarge, len(buf)-n, l.cfg.Link.SendBufferLimit)
		}
	}
	if err != nil {
		l.pending = buf[:n]
		l.sendMu.Unlock()
		return err
	}
	l.pending = buf
	l.sendMu.Unlock()
	l.stats.msgsOut.Add(1)
	if l.cfg.Link.AutoFlush {
		signal(l.flushReq)
	}
	return nil
}

// Flush hands what Send has queued to the network in one write. It never
// blocks. A small batch, when no write is under way and the conn allows it
// (TCP on Unix), it writes itself with one non-blocking write, which spares
// a game loop's tick the wake-up of the writer goroutine; anything else,
// and whatever that write leaves, the writer goroutine writes as soon as it
// is free.
func (l *link) Flush() {
	if l.direct != nil && l.writeMu.TryLock() {
		done := l.flushDirect()
		l.writeMu.Unlock()
		if done {
			return
		}
	}
	signal(l.flushReq)
}

// directMax is the largest batch Flush writes itself; larger ones come from
// busy links, which the writer goroutine batches better.
const directMax = 1024

// flushDirect makes one non-blocking write of a small pending batch and
// puts back what the socket did not take. It reports whether it left
// nothing for the writer goroutine. l.writeMu is held.
func (l *link) flushDirect() bool {
	if l.seal != nil {
		return l.flushDirectSealed()
	}
	if ok, ret := l.lockDirect(); !ok {
		return ret
	}
	batch := l.pending
	if len(batch) == 0 || len(batch) > directMax || l.closing {
		l.sendMu.Unlock()
		return len(batch) == 0
	}
	l.pending = l.spare[:0]
	l.sendMu.Unlock()
	n, err := l.direct.write(batch)
	l.stats.bytesOut.Add(uint64(n))
	switch {
	case err != nil:
		l.spare = batch[:0]
		l.writeFailed(err)
		return true
	case n == len(batch):
		l.spare = batch[:0]
		return true
	}
	// The rest goes out first, before what was queued meanwhile.
	l.sendMu.Lock()
	rest := append(batch[:0], batch[n:]...)
	l.spare = l.pending[:0]
	l.pending = append(rest, l.pending...)
	l.sendMu.Unlock()
	return false
}

// lockDirect takes l.sendMu for a direct write and reports whether the
// link may write now. When it may not, l.sendMu is released again and ret
// is what flushDirect returns: true when a resume error closed the link.
func (l *link) lockDirect() (ok, ret bool) {
	l.sendMu.Lock()
	ok, err := l.readyToWrite()
	if ok {
		return true, false
	}
	l.sendMu.Unlock()
	if err != nil {
		l.shutdown(closeErr(ErrProtocol, false, err.Error()), closeBadInput)
		return false, true
	}
	return false, false
}

// flushDirectSealed is flushDirect for a keyed link: the batch becomes one
// record, and what the socket does not take stays sealed in l.wire for the
// writer goroutine, ahead of anything sealed later. l.writeMu is held.
func (l *link) flushDirectSealed() bool {
	if ok, ret := l.lockDirect(); !ok {
		return ret
	}
	batch := l.pending
	if len(batch) == 0 || len(batch) > directMax || l.closing || len(l.wire) > 0 {
		l.sendMu.Unlock()
		return len(batch) == 0 && len(l.wire) == 0
	}
	l.pending = l.spare[:0]
	l.sendMu.Unlock()
	wire, err := l.seal.seal(l.wire[:0], batch)
	l.spare = batch[:0]
	if err != nil {
		l.wire = wire[:0]
		l.shutdown(closeErr(ErrProtocol, false, err.Error()), closeAbrupt)
		return true
	}
	n, err := l.direct.write(wire)
	l.stats.bytesOut.Add(uint64(n))
	switch {
	case err != nil:
		l.wire = wire[:0]
		l.writeFailed(err)
		return true
	case n == len(wire):
		l.wire = wire[:0]
		return true
	}
	l.wire = wire[:copy(wire, wire[n:])]
	return false
}

// readyToWrite reports whether the pending buffer may be written now, and
// readies a resumable link's (the resend, the Ack). l.sendMu is held; on
// an error the caller releases it and ends the link.
func (l *link) readyToWrite() (bool, error) {
	if l.rs == nil {
		return true, nil
	}
	return l.rs.prepareWrite(l)
}

// Close closes the link gracefully with the reason "closed"; see CloseReason.
func (l *link) Close() error { return l.CloseReason("closed") }

// CloseReason closes the link gracefully: it writes what Send had queued,
// then a Bye carrying reason, which the peer reports as a CloseError with
// Remote set; then it reads until the peer hangs up, so that the peer's
// last bytes are not lost to a reset. All of it is bounded by
// Config.CloseTimeout. It returns when both of the link's goroutines have
// ended. It is idempotent; a link that had already ended for another reason
// keeps that reason.
func (l *link) CloseReason(reason string) error {
	l.shutdown(closeErr(ErrClosed, false, reason), closeLocal)
	l.wg.Wait()
	return nil
}

// Done is closed when the link has ended.
func (l *link) Done() <-chan struct{} { return l.done }

// Err returns nil while the link is open and, once a close has begun, the
// *CloseError that says why.
func (l *link) Err() error {
	if e := l.cause.Load(); e != nil {
		return e
	}
	return nil
}

// Stats returns the link's counters and round-trip time.
func (l *link) Stats() Stats { return l.stats.snapshot() }

// KeyID returns the id of the mesh key the link's handshake used, and
// whether the link is keyed at all.
func (l *link) KeyID() (meshkey.ID, bool) { return l.keyID, l.keyed }

// Local returns the Hello this side sent.
func (l *link) Local() hello { return l.local }

// Remote returns the Hello the peer sent.
func (l *link) Remote() hello { return l.remote }

// LocalAddr and RemoteAddr are the conn's addresses.
func (l *link) LocalAddr() net.Addr { return l.conn.LocalAddr() }

// RemoteAddr is the peer's address.
func (l *link) RemoteAddr() net.Addr { return l.conn.RemoteAddr() }

// shutdown begins a close. The first call wins; it decides the cause and
// the mode, and the writer goroutine carries it out.
func (l *link) shutdown(cause *CloseError, mode closeMode) {
	l.closeOnce.Do(func() {
		// Store the deadline first: from here on every read and write the
		// link starts is bounded by it.
		deadline := time.Now().Add(l.cfg.Link.CloseTimeout)
		l.closeDeadline.Store(deadline.UnixNano())
		if l.quiet {
			// Such a peer would not know a Bye, and it does not hang up
			// when we do: there is nothing to wait for.
			mode.bye, mode.drain = false, false
		}
		l.sendMu.Lock()
		l.closing = true
		l.mode = mode
		if !mode.flush || l.rs != nil && l.rs.state == rsUnopened {
			// A link the node never chose says nothing but Bye.
			l.pending = l.pending[:0]
		}
		l.byeLater = mode.bye && mode.flush && l.rs != nil && l.rs.state != rsUnopened
		if mode.bye && !l.byeLater {
			if b, err := l.codec.AppendFrame(l.pending, &message.Bye{Reason: cause.Reason}); err == nil {
				l.pending = b
			}
		}
		l.cause.Store(cause)
		l.sendMu.Unlock()
		// Cut short a write blocked on a peer that does not read.
		_ = l.conn.SetWriteDeadline(deadline)
		if mode == closeAbrupt {
			_ = l.conn.Close()
		}
		close(l.closingCh)
		switch {
		case cause.Remote || cause.Err == ErrClosed:
			l.log.Debug("mesh: link closing", "err", cause)
		default:
			l.log.Error("mesh: link failed", "err", cause)
		}
	})
}

// arm sets a read or write deadline (set is the conn's SetReadDeadline or
// SetWriteDeadline) d from now, or at the close deadline once closing. To
// spare a busy link a timer update per read and per write, it leaves a
// deadline alone that it set less than d/16 ago (*armed): a silent peer is
// thus given up on after 15/16 of d to d, never later.
func (l *link) arm(set func(time.Time) error, armed *time.Time, d time.Duration) {
	if ns := l.closeDeadline.Load(); ns != 0 {
		_ = set(time.Unix(0, ns))
		return
	}
	now := time.Now()
	if now.Sub(*armed) < d/16 {
		return
	}
	*armed = now
	_ = set(now.Add(d))
}

// readLoop is the reader goroutine. Decoded messages collect in l.batch,
// which goes to the Sink before each read from the conn, so that a busy link
// hands over many at once and a quiet one each at once.
func (l *link) readLoop() {
	defer l.wg.Done()
	defer close(l.readerDone)
	var src io.Reader = linkReader{l}
	if l.open != nil {
		src = newRecordReader(src, l.open)
	}
	src = l.meter.reader(src)
	dec := l.codec.NewDecoder(src)
	for {
		msg, size, err := dec.Decode()
		if size > 0 && l.meter.frame(size) {
			dec = l.codec.NewDecoder(src) // gives back a large buffer
		}
		if err != nil {
			if errors.Is(err, codec.ErrUnknownType) {
				if u, ok := l.sink.(unknownNoter); ok {
					u.noteUnknown(l, size, err)
				}
				if l.rs != nil && !l.rs.laneNext {
					// It uses its sequence number all the same.
					l.deliver()
					if err := l.rs.skipUnknown(); err != nil {
						l.shutdown(closeErr(ErrProtocol, false, err.Error()), closeBadInput)
						return
					}
				}
				if l.rs != nil {
					l.rs.laneNext = false
				}
				// A newer peer may know types this node does not: skip.
				l.drop(1, "unknown message type", err)
				continue
			}
			if codec.Recoverable(err) {
				// The framing is intact but the peer sent a frame its own
				// type cannot have: it is broken or hostile.
				l.deliver()
				l.shutdown(closeErr(ErrProtocol, false, err.Error()), closeBadInput)
				return
			}
			l.deliver() // what came before the error is the application's
			l.readFailed(err)
			return
		}
		switch m := msg.(type) {
		case *message.Ping:
			l.answer(m)
			continue
		case *message.Pong:
			if r := time.Since(l.epoch) - time.Duration(m.Time); r >= 0 && r < time.Minute {
				l.stats.addRTT(r)
			}
			continue
		case *message.Bye:
			l.deliver()
			l.shutdown(closeErr(ErrPeerBye, true, m.Reason), closePeerBye)
			return
		}
		if l.rs != nil {
			if err := l.readResumable(msg, size); err != nil {
				l.deliver()
				l.shutdown(closeErr(ErrProtocol, false, err.Error()), closeBadInput)
				return
			}
			continue
		}
		l.batch = append(l.batch, msg)
		l.sizes = append(l.sizes, size)
		if len(l.batch) == cap(l.batch) {
			l.deliver()
		}
	}
}

// readResumable takes a frame of a resumable link other than Ping, Pong
// and Bye: the Resume first, then Acks, the lane's frames (not numbered)
// and numbered frames, which collect in the batch.
func (l *link) readResumable(msg any, size int) error {
	rs := l.rs
	if m, ok := msg.(*message.Resume); ok {
		return rs.onResume(l, m)
	}
	if !rs.seen {
		return fmt.Errorf("%w: a frame before the Resume", ErrProtocol)
	}
	switch m := msg.(type) {
	case *message.Ack:
		return rs.onAck(l, m)
	case *message.LaneOffer:
		return l.deliverUnnumbered(msg, size)
	case *message.LaneTag:
		rs.laneNext = true
		return l.deliverUnnumbered(msg, size)
	}
	if rs.laneNext {
		// A lane message the link carried: it has its own delivery
		// (Sequenced or Unreliable) and is never resent.
		rs.laneNext = false
		return l.deliverUnnumbered(msg, size)
	}
	l.batch = append(l.batch, msg)
	l.sizes = append(l.sizes, size)
	if len(l.batch) == cap(l.batch) {
		return l.deliverErr()
	}
	return nil
}

// deliverUnnumbered hands one frame that has no sequence number to the
// Sink, after the numbered ones before it.
func (l *link) deliverUnnumbered(msg any, size int) error {
	if err := l.deliverErr(); err != nil {
		return err
	}
	l.batch = append(l.batch, msg)
	l.sizes = append(l.sizes, size)
	l.stats.msgsIn.Add(1)
	l.sink.Deliver(l, l.batch, l.closingCh)
	clear(l.batch)
	l.batch, l.sizes = l.batch[:0], l.sizes[:0]
	return nil
}

// deliverErr is deliver that returns a resumable link's protocol error.
func (l *link) deliverErr() error {
	if len(l.batch) == 0 {
		return nil
	}
	err := l.rs.deliver(l)
	clear(l.batch)
	l.batch = l.batch[:0]
	l.sizes = l.sizes[:0]
	return err
}

// deliver hands the batch to the Sink. Once closing, what the Sink has no
// room for is dropped.
func (l *link) deliver() {
	if len(l.batch) == 0 {
		return
	}
	if l.rs != nil {
		if err := l.deliverErr(); err != nil {
			l.shutdown(closeErr(ErrProtocol, false, err.Error()), closeBadInput)
		}
		return
	}
	l.stats.msgsIn.Add(uint64(len(l.batch)))
	if n := l.sink.Deliver(l, l.batch, l.closingCh); n < len(l.batch) {
		l.drop(len(l.batch)-n, "receive queue full after close", nil)
	}
	clear(l.batch)
	l.batch = l.batch[:0]
	l.sizes = l.sizes[:0]
}

func (l *link) drop(n int, why string, err error) {
	l.stats.dropped.Add(uint64(n))
	if l.warnedDrop.CompareAndSwap(false, true) {
		l.log.Warn("mesh: dropping frames", "why", why, "err", err)
	}
}

// readFailed ends the link after a read error, unless a close had already
// begun (then the error is the expected end of the drain).
func (l *link) readFailed(err error) {
	if l.cause.Load() != nil {
		return
	}
	var ne net.Error
	switch {
	case err == io.EOF:
		l.shutdown(closeErr(ErrConnLost, true, "the peer hung up without a bye"), closeAbrupt)
	case errors.Is(err, errRecord):
		l.shutdown(closeErr(ErrProtocol, false, err.Error()), closeBadInput)
	case errors.Is(err, codec.ErrTruncated):
		l.shutdown(closeErr(ErrConnLost, true, "the peer hung up in the middle of a frame"), closeAbrupt)
	case errors.Is(err, io.ErrUnexpectedEOF):
		l.shutdown(closeErr(ErrConnLost, true, "the peer hung up in the middle of a record"), closeAbrupt)
	case errors.As(err, &ne) && ne.Timeout():
		l.shutdown(closeErr(ErrSilence, false, fmt.Sprintf("nothing from the peer for %v, a ping unanswered", 2*l.cfg.Link.Silence)), closeAbrupt)
	case errors.Is(err, codec.ErrFrameTooLarge) || errors.Is(err, codec.ErrBadLength) ||
		errors.Is(err, codec.ErrNoBinaryForm) || errors.Is(err, io.ErrNoProgress) || errors.Is(err, errPartialFrame):
		l.shutdown(closeErr(ErrProtocol, false, err.Error()), closeBadInput)
	default:
		l.shutdown(closeErr(ErrConnLost, true, err.Error()), closeAbrupt)
	}
}

// answer queues a pong, unless the buffer is over its limit (a peer that
// pings while not reading gets no more answers than it can take).
func (l *link) answer(p *message.Ping) {
	l.sendMu.Lock()
	if !l.closing && len(l.pending) < l.cfg.Link.SendBufferLimit {
		l.pong = message.Pong(*p)
		if b, err := l.codec.AppendFrame(l.pending, &l.pong); err == nil {
			l.pending = b
		}
	}
	l.sendMu.Unlock()
	signal(l.flushReq)
}

// linkReader is what the decoder reads: the conn, with the silence deadline
// moved forward before every read, and bytes counted.
type linkReader struct{ l *link }

func (r linkReader) Read(p []byte) (int, error) {
	l := r.l
	l.deliver() // before waiting for more bytes
	if !l.quiet || l.closeDeadline.Load() != 0 {
		silence := l.cfg.Link.Silence
		long := l.rs != nil && !l.rs.seen
		if long {
			// The peer writes nothing before its Resume, which waits for
			// its node to choose the link (a probe of the old one may take
			// Silence/2 there): the handshake's bound applies until then.
			silence = max(silence, l.cfg.Link.HandshakeTimeout)
		} else if l.readLong {
			// The Resume came: Silence applies from now, however soon
			// (a cut right after it was noticed only after the handshake's
			// bound: 6 s for a 1 s Silence).
			l.readArmed = time.Time{}
		}
		l.readLong = long
		l.arm(l.conn.SetReadDeadline, &l.readArmed, silence)
	}
	n, err := l.conn.Read(p)
	if n == 0 && l.suspect(err) {
		// Silence is suspicion, not death (see LinkConfig.Silence): a cut
		// shorter than Silence ends with TCP retransmitting on a timer
		// that has backed off to seconds. Ping, and give the peer one more
		// Silence to be heard.
		l.queuePing()
		signal(l.flushReq)
		l.readArmed = time.Now()
		_ = l.conn.SetReadDeadline(l.readArmed.Add(l.cfg.Link.Silence))
		n, err = l.conn.Read(p)
	}
	l.stats.bytesIn.Add(uint64(n))
	return n, err
}

// suspect reports whether err is the first silence of an open link: a
// read deadline of Silence that passed while the link was not closing.
func (l *link) suspect(err error) bool {
	var ne net.Error
	return !l.quiet && l.closeDeadline.Load() == 0 && l.cause.Load() == nil &&
		errors.As(err, &ne) && ne.Timeout()
}

// writeLoop is the writer goroutine. It also owns the end of the link.
func (l *link) writeLoop() {
	defer l.wg.Done()
	tick := time.NewTicker(l.cfg.Link.PingInterval)
	defer tick.Stop()
	pings := tick.C
	if l.quiet {
		pings = nil
	}
	for {
		select {
		case <-l.flushReq:
		case <-pings:
			l.queuePing()
		case <-l.closingCh:
			l.teardown()
			return
		}
		if err := l.writePending(); err != nil {
			l.writeFailed(err)
		}
	}
}

// writeFailed ends the link after a failed write, by the writer goroutine
// or by Flush's direct write alike: a timeout is a peer that took no bytes
// for WriteTimeout, anything else a lost connection.
func (l *link) writeFailed(err error) {
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		l.shutdown(closeErr(ErrWriteTimeout, false, fmt.Sprintf("the peer took no bytes for %v", l.cfg.Link.WriteTimeout)), closeAbrupt)
		return
	}
	l.shutdown(closeErr(ErrConnLost, true, err.Error()), closeAbrupt)
}

func (l *link) queuePing() {
	l.sendMu.Lock()
	if !l.closing && len(l.pending) < l.cfg.Link.SendBufferLimit {
		l.pingSeq++
		l.ping = message.Ping{Seq: l.pingSeq, Time: int64(time.Since(l.epoch))}
		if b, err := l.codec.AppendFrame(l.pending, &l.ping); err == nil {
			l.pending = b
		}
		if l.rs != nil && l.rs.state != rsUnopened {
			// One-way traffic is acknowledged at least every PingInterval.
			l.rs.takeAck(l)
		}
	}
	l.sendMu.Unlock()
}

// writePending writes the pending batch in one write. Send fills the other
// buffer meanwhile; the two swap roles each time, so nothing is allocated.
func (l *link) writePending() error {
	l.writeMu.Lock()
	defer l.writeMu.Unlock()
	l.sendMu.Lock()
	if ok, err := l.readyToWrite(); !ok {
		l.sendMu.Unlock()
		if err != nil {
			l.shutdown(closeErr(ErrProtocol, false, err.Error()), closeBadInput)
		}
		return nil
	}
	batch := l.pending
	l.pending = l.spare[:0]
	l.sendMu.Unlock()
	if l.seal != nil {
		return l.writeSealed(batch)
	}
	if len(batch) == 0 {
		l.spare = batch
		return nil
	}
	l.arm(l.conn.SetWriteDeadline, &l.writeArmed, l.cfg.Link.WriteTimeout)
	n, err := l.conn.Write(batch)
	l.stats.bytesOut.Add(uint64(n))
	l.spare = batch[:0]
	return err
}

// writeSealed seals batch as records after any sealed bytes a direct write
// left, and writes them all. l.writeMu is held.
func (l *link) writeSealed(batch []byte) error {
	var err error
	l.wire, err = l.seal.seal(l.wire, batch)
	l.spare = batch[:0]
	if err != nil {
		return err
	}
	if len(l.wire) == 0 {
		return nil
	}
	l.arm(l.conn.SetWriteDeadline, &l.writeArmed, l.cfg.Link.WriteTimeout)
	n, err := l.conn.Write(l.wire)
	l.stats.bytesOut.Add(uint64(n))
	l.wire = l.wire[:0]
	return err
}

// teardown carries out the close that shutdown began, on the writer
// goroutine, and ends the link.
func (l *link) teardown() {
	l.sendMu.Lock()
	mode := l.mode
	l.sendMu.Unlock()
	if l.byeLater {
		// What the session holds for the peer goes before the Bye: wait
		// (within the close deadline) for the peer's Resume, resend, then
		// say goodbye.
		l.finishResend()
		l.sendMu.Lock()
		if b, err := l.codec.AppendFrame(l.pending, &message.Bye{Reason: l.cause.Load().Reason}); err == nil {
			l.pending = b
		}
		l.sendMu.Unlock()
	}
	if mode.flush || mode.bye {
		if err := l.writePending(); err == nil {
			if cw, ok := l.conn.(closeWriter); ok {
				_ = cw.CloseWrite()
			}
		}
	}
	if mode.drain {
		// The reader reads until the peer's EOF or the close deadline.
		_ = l.conn.SetReadDeadline(time.Unix(0, l.closeDeadline.Load()))
		<-l.readerDone
	}
	_ = l.conn.Close()
	<-l.readerDone
	l.meter.stop()
	l.log.Debug("mesh: link closed", "err", l.cause.Load(), "stats", l.stats.snapshot())
	close(l.done)
}

// finishResend waits, within the close deadline, until a closing
// resumable link has sent what its session holds for the peer: the peer's
// Resume read, the resend written. Writer goroutine.
func (l *link) finishResend() {
	deadline := time.NewTimer(time.Until(time.Unix(0, l.closeDeadline.Load())))
	defer deadline.Stop()
	for {
		l.sendMu.Lock()
		st := l.rs.state
		l.sendMu.Unlock()
		switch st {
		case rsStreaming, rsUnopened:
			return
		case rsResending:
			if err := l.writePending(); err != nil {
				return
			}
			continue
		}
		select {
		case <-l.flushReq:
		case <-l.readerDone:
			return
		case <-deadline.C:
			return
		}
	}
}
