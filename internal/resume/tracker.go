package resume

import (
	"fmt"
	"sync"
	"sync/atomic"
)

// Defaults of TrackerConfig.
const (
	// DefaultAckFrames: with one-way traffic, an acknowledgement at least
	// every 1024 messages (or a quarter of the sender's frame budget, if
	// less). At a million small messages a second that is a 10-byte frame
	// per millisecond, beside TCP's own acknowledgements.
	DefaultAckFrames = 1024
	// DefaultAckBytes: and at least every 256 KiB (or a quarter of the
	// sender's byte budget, if less).
	DefaultAckBytes = 256 << 10
)

// TrackerConfig says how often the receiver acknowledges when it has
// nothing to send (acknowledgements ride free on its own writes and on
// every ping).
type TrackerConfig struct {
	// AckFrames: acknowledge once this many messages are delivered and not
	// yet acknowledged. Default 1024. Fewer keeps the sender's journal
	// smaller for a few more packets.
	AckFrames int
	// AckBytes: acknowledge once this many bytes of messages are delivered
	// and not yet acknowledged. Default 256 KiB.
	AckBytes int
}

// DefaultTrackerConfig returns the defaults.
func DefaultTrackerConfig() TrackerConfig {
	return TrackerConfig{AckFrames: DefaultAckFrames, AckBytes: DefaultAckBytes}
}

// Validate reports the first bad field, wrapping ErrConfig.
func (c TrackerConfig) Validate() error {
	if c.AckFrames < 1 || c.AckBytes < 1 {
		return fmt.Errorf("%w: AckFrames %d and AckBytes %d must be positive", ErrConfig, c.AckFrames, c.AckBytes)
	}
	return nil
}

// TrackerStats counts what a tracker did.
type TrackerStats struct {
	Delivered  uint64 // messages delivered (all sessions)
	Duplicates uint64 // frames dropped as already delivered (resent after a resume)
	Stale      uint64 // frames dropped because a newer link of the peer fenced theirs
	Lost       uint64 // messages the peer reported it could not resend (gaps)
	Acks       uint64 // acknowledgement values taken to be sent
}

// Tracker is the inbound side of one direction of a peer pair: the last
// sequence delivered to the program, which every link of the peer shares.
// Each link reads a Stream of it. The tracker delivers each sequence once,
// in order: a frame at or below the last delivered is a duplicate (dropped,
// counted), one past the next is a gap (a protocol error), and when two
// links of the peer overlap (a redial while the old link still reads), the
// newer one fences the older off.
//
// Its methods are safe for concurrent use: Stream.Deliver, Fence and
// Reset take its lock (once per batch, and the mesh's Sink runs under it so
// that a peer's messages reach the program in order); Delivered and AckDue
// take none, and TakeAck only a short one of its own that delivery never
// holds, so a writer is never held up by a blocked delivery.
type Tracker struct {
	// mu guards epoch and serialises delivery.
	mu    sync.Mutex
	epoch uint64 // the live stream's; older streams are stale

	delivered atomic.Uint64 // the last sequence delivered
	bytes     atomic.Uint64 // bytes delivered, all time

	// ackMu guards what an acknowledgement takes, so that Reset and
	// TakeAck never mix two sessions' values. Never held while delivering.
	ackMu     sync.Mutex
	ackSent   atomic.Uint64 // the last value TakeAck returned (written under ackMu)
	ackBytes  atomic.Uint64 // bytes at that time (written under ackMu)
	ackFrames atomic.Int64  // thresholds (SetPeerBudget)
	ackLimit  atomic.Int64

	// skipFrom..skipLast: the last gap Start skipped (guarded by mu). While
	// nothing was delivered after it (delivered == skipLast), the peer may
	// not know it was skipped: the next resume says so (Skipped).
	skipFrom, skipLast uint64

	cfg   TrackerConfig
	stats struct {
		delivered, dups, stale, lost, acks atomic.Uint64
	}
}

// NewTracker returns a tracker that has delivered nothing.
func NewTracker(cfg TrackerConfig) (*Tracker, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	t := &Tracker{cfg: cfg}
	t.ackFrames.Store(int64(cfg.AckFrames))
	t.ackLimit.Store(int64(cfg.AckBytes))
	return t, nil
}

// Delivered returns the last sequence delivered (0: none): the cumulative
// acknowledgement.
func (t *Tracker) Delivered() uint64 { return t.delivered.Load() }

// SetPeerBudget lowers the acknowledgement thresholds to a quarter of the
// sender's journal budget (from its resume message), so that one-way
// traffic is acknowledged well before the sender's journal fills.
func (t *Tracker) SetPeerBudget(frames, bytes uint32) {
	t.ackFrames.Store(int64(max(1, min(uint64(t.cfg.AckFrames), uint64(frames)/4))))
	t.ackLimit.Store(int64(max(1, min(uint64(t.cfg.AckBytes), uint64(bytes)/4))))
}

// AckDue reports whether enough was delivered since the last
// acknowledgement that one should go now, alone if need be.
func (t *Tracker) AckDue() bool {
	d, a := t.delivered.Load(), t.ackSent.Load()
	if d <= a {
		return false
	}
	return d-a >= uint64(t.ackFrames.Load()) || t.bytes.Load()-t.ackBytes.Load() >= uint64(t.ackLimit.Load())
}

// TakeAck returns the acknowledgement to send, if it moved since the last
// one taken; the caller then sends it. Any goroutine may call it (the
// writer with its batch or a ping, the reader when AckDue): each value is
// taken once.
func (t *Tracker) TakeAck() (uint64, bool) {
	t.ackMu.Lock()
	defer t.ackMu.Unlock()
	d := t.delivered.Load()
	if d <= t.ackSent.Load() {
		return 0, false
	}
	t.ackSent.Store(d)
	t.ackBytes.Store(t.bytes.Load())
	t.stats.acks.Add(1)
	return d, true
}

// Stats returns the tracker's counters.
func (t *Tracker) Stats() TrackerStats {
	return TrackerStats{
		Delivered:  t.stats.delivered.Load(),
		Duplicates: t.stats.dups.Load(),
		Stale:      t.stats.stale.Load(),
		Lost:       t.stats.lost.Load(),
		Acks:       t.stats.acks.Load(),
	}
}

// Fence begins a new link's stream: every older stream is stale from now
// on (its frames are dropped and counted, never delivered), so the value it
// returns, the last sequence delivered, is final for everything before:
// the value this side puts in its resume message. A delivery under way on
// an older stream finishes first.
func (t *Tracker) Fence() (*Stream, uint64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.epoch++
	return &Stream{t: t, epoch: t.epoch}, t.delivered.Load()
}

// Skipped returns where the last gap this side skipped begins, if nothing
// was delivered after it (else 0): the peer may not have reported those
// sequences lost yet (the link that announced them failed before it read
// this side's resume), so the next resume message names them. Call it
// right after Fence.
func (t *Tracker) Skipped() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.skipFrom != 0 && t.skipLast == t.delivered.Load() {
		return t.skipFrom
	}
	return 0
}

// Reset begins a new session (the peer restarted, or either side holds no
// resumable session): nothing delivered yet, and every stream stale. Fence
// the new link's stream after it.
func (t *Tracker) Reset() {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.epoch++
	t.skipFrom, t.skipLast = 0, 0
	t.ackMu.Lock()
	t.delivered.Store(0)
	t.ackSent.Store(0)
	t.ackBytes.Store(t.bytes.Load())
	t.ackMu.Unlock()
}

// Stream is one link's view of its peer's sequence: the link counts the
// sequenced frames it reads from where the resume exchange said they
// begin. Owned by the link's reader goroutine.
type Stream struct {
	t       *Tracker
	epoch   uint64
	next    uint64 // the sequence of the next frame the link reads
	started bool
}

// Start sets the sequence of the first frame the peer sends on this link
// (from the resume exchange: the first after Delivered, or later when the
// peer could not resend some). Sequences skipped that way are lost, and
// returned as a Loss with the peer's reason, LossBudget; the tracker counts
// from after them.
func (s *Stream) Start(first uint64) (*Loss, error) {
	t := s.t
	t.mu.Lock()
	defer t.mu.Unlock()
	if s.epoch != t.epoch {
		return nil, ErrStale
	}
	if first == 0 {
		return nil, fmt.Errorf("%w: a stream starting at sequence 0", ErrMalformed)
	}
	d := t.delivered.Load()
	loss := lossOf(d+1, first-1, LossBudget)
	if loss != nil {
		if t.skipFrom == 0 || t.skipLast != d {
			t.skipFrom = d + 1 // else the new gap extends one the peer may not know of
		}
		t.skipLast = first - 1
		t.delivered.Store(first - 1)
		t.stats.lost.Add(loss.Count())
	}
	s.next, s.started = first, true
	return loss, nil
}

// Next returns the sequence of the next frame the link will read.
func (s *Stream) Next() uint64 { return s.next }

// Deliver takes the next n sequenced frames the link read. Those already
// delivered (on an older link) are duplicates: it counts them and calls
// deliver with skip, the number of them at the start of the n, to hand the
// rest to the program; deliver returns how many of the rest it took, and
// their bytes (for the acknowledgement thresholds). It returns how many
// were delivered. deliver runs under the tracker's lock: it must not call
// Fence, Reset, Skipped or a Stream's methods (Delivered, AckDue and
// TakeAck are fine).
//
// Errors: ErrStale when a newer link fenced this one (nothing delivered;
// the frames will come again on the newer link), ErrNotStarted before
// Start, ErrGap when the frames are past the next sequence. When deliver
// takes fewer than offered (the link is closing), the stream ends: what
// was not taken is not acknowledged, and is resent on the next link.
func (s *Stream) Deliver(n int, deliver func(skip int) (taken, bytes int)) (int, error) {
	if n <= 0 {
		return 0, nil
	}
	t := s.t
	t.mu.Lock()
	defer t.mu.Unlock()
	switch {
	case s.epoch != t.epoch:
		t.stats.stale.Add(uint64(n))
		return 0, ErrStale
	case !s.started:
		return 0, ErrNotStarted
	}
	d := t.delivered.Load()
	if s.next > d+1 {
		return 0, fmt.Errorf("%w: the link's next frame is %d, the last delivered %d", ErrGap, s.next, d)
	}
	skip := int(min(uint64(n), d+1-s.next))
	t.stats.dups.Add(uint64(skip))
	taken := 0
	b := 0
	if skip < n {
		taken, b = deliver(skip)
		taken = max(0, min(taken, n-skip))
	}
	s.next += uint64(skip + taken)
	t.delivered.Add(uint64(taken))
	t.bytes.Add(uint64(b))
	t.stats.delivered.Add(uint64(taken))
	if skip+taken < n {
		s.epoch = 0 // the rest were dropped: this stream can deliver no more
	}
	return taken, nil
}

// AckPending reports, without a lock, whether TakeAck would return a value
// now: the writer's hot path asks it on every write.
func (t *Tracker) AckPending() bool { return t.delivered.Load() > t.ackSent.Load() }
