package resume

import (
	"fmt"
	"math"
)

// Overflow says what a full journal does with one more frame.
type Overflow uint8

const (
	// DropOldest drops the oldest unacknowledged frames from the journal to
	// make room. They are still on their way over the link, and a link that
	// never drops delivers them: the drop only matters if a resume needs
	// them, and then it is reported as a Loss (LossBudget) with their exact
	// range. Send never fails for the budget, never blocks.
	DropOldest Overflow = iota
	// Refuse refuses the frame with ErrFull: nothing is ever lost to the
	// budget, but Send fails while the peer is slow to acknowledge or the
	// link is down, and the program must try again.
	Refuse
)

// Defaults of JournalConfig.
const (
	DefaultMaxFrames = 32768
	DefaultMaxBytes  = 4 << 20
	// initialBytes and initialFrames size a new journal's arena; it grows
	// by doubling up to the budget as needed and never shrinks.
	initialBytes  = 16 << 10
	initialFrames = 256
)

// JournalConfig bounds what a journal keeps for one direction of one peer.
type JournalConfig struct {
	// MaxFrames is the most unacknowledged frames kept. Default 32768:
	// more than 100 s of a game's 300 messages a second, which a cut of
	// any length up to the resume window must cover. Each costs 8 bytes of
	// index.
	MaxFrames int
	// MaxBytes is the most bytes of frames kept (the arena's size). Default
	// 4 MiB: 40000 frames of 100 bytes. A frame is never split, so a frame
	// that does not fit at the arena's end leaves that end unused until the
	// arena wraps: at least MaxBytes less the largest frame is usable. The
	// arena is allocated as it fills and kept, so a busy peer costs up to
	// this much memory for as long as it is known; with many peers, size it
	// as memory allows.
	MaxBytes int
	// Overflow is what a full journal does. Default DropOldest.
	Overflow Overflow
}

// DefaultJournalConfig returns the defaults.
func DefaultJournalConfig() JournalConfig {
	return JournalConfig{MaxFrames: DefaultMaxFrames, MaxBytes: DefaultMaxBytes}
}

// Validate reports the first bad field, wrapping ErrConfig.
func (c JournalConfig) Validate() error {
	switch {
	case c.MaxFrames < 1 || c.MaxFrames > math.MaxUint32:
		return fmt.Errorf("%w: MaxFrames %d must be 1 to 2^32-1", ErrConfig, c.MaxFrames)
	case c.MaxBytes < 1 || c.MaxBytes > math.MaxUint32:
		return fmt.Errorf("%w: MaxBytes %d must be 1 to 2^32-1", ErrConfig, c.MaxBytes)
	case c.Overflow > Refuse:
		return fmt.Errorf("%w: unknown Overflow %d", ErrConfig, c.Overflow)
	}
	return nil
}

// JournalStats counts what a journal did, since it was made.
type JournalStats struct {
	Appended uint64 // frames given a sequence
	Acked    uint64 // frames trimmed by acknowledgements
	Evicted  uint64 // unacknowledged frames dropped for the budget (DropOldest)
	Refused  uint64 // frames refused with ErrFull or ErrTooLarge
	Resent   uint64 // frames copied out by AppendFrames
	Lost     uint64 // frames reported lost (the sum of every Loss returned)
}

// entry is where one kept frame lies in the arena.
type entry struct{ off, n uint32 }

// Journal is the outbound side of one direction of a peer pair: it gives
// each reliable frame the next 64-bit sequence (1, 2, ...; 0 means none),
// keeps a copy of every frame the peer has not acknowledged, within a
// budget of frames and bytes, and gives back exactly the frames a resume
// needs. It lives as long as the session, across links.
//
// A Journal is not safe for concurrent use: the mesh guards it with the
// peer's send lock, so that a frame's sequence is its place on the wire.
// In steady state (the arena grown to what traffic needs) Append and Ack
// allocate nothing.
//
// Sequences never wrap: at a billion frames a second, 2^64 lasts 584 years.
type Journal struct {
	cfg JournalConfig

	next  uint64 // the sequence the next Append assigns
	acked uint64 // the peer delivered every sequence up to here
	// lost: every sequence up to here that the peer did not deliver was
	// reported lost already (a Loss is never reported twice).
	lost uint64
	// pin: frames with a sequence at or above it may not be dropped for
	// the budget (0: none pinned).
	pin uint64

	// The kept frames are sequences next-count .. next-1, in order: ents
	// is a ring (head, count) and their bytes lie in arena in the same
	// order, wrapping once. tail is where the next frame's bytes go.
	arena []byte
	ents  []entry
	head  int
	count int
	tail  int
	used  int // bytes of the kept frames

	stats JournalStats
}

// NewJournal returns an empty journal; the first frame gets sequence 1.
func NewJournal(cfg JournalConfig) (*Journal, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Journal{
		cfg:   cfg,
		next:  1,
		arena: make([]byte, min(cfg.MaxBytes, initialBytes)),
		ents:  make([]entry, min(cfg.MaxFrames, initialFrames)),
	}, nil
}

// Next returns the sequence the next Append will assign.
func (j *Journal) Next() uint64 { return j.next }

// Acked returns the highest sequence the peer acknowledged (0: none).
func (j *Journal) Acked() uint64 { return j.acked }

// From returns the oldest sequence the journal can still resend: Next when
// it holds nothing. Every sequence from Acked()+1 to From()-1 was dropped
// for the budget: lost if a resume needs it (and then reported once).
func (j *Journal) From() uint64 { return j.next - uint64(j.count) }

// Kept returns how many frames, and how many bytes of frames, the journal
// holds.
func (j *Journal) Kept() (frames, bytes int) { return j.count, j.used }

// Stats returns the journal's counters.
func (j *Journal) Stats() JournalStats { return j.stats }

// Pin forbids dropping frames with a sequence at or above seq for the
// budget: while a resume is being agreed (from the announced From) and
// while the frames it needs are resent (from the first not yet resent).
// Appends that would need such a drop fail with ErrFull instead. Pin(0)
// lifts it.
func (j *Journal) Pin(seq uint64) { j.pin = seq }

// Append gives frame the next sequence and keeps a copy of it. When the
// budget is full it drops the oldest frames not pinned (DropOldest) or
// fails with ErrFull (Refuse, or every frame pinned); a failed Append uses
// no sequence. Under DropOldest a frame larger than MaxBytes is given its
// sequence but cannot be kept: like a dropped frame, it is lost only if a
// resume needs it.
func (j *Journal) Append(frame []byte) (uint64, error) {
	n := len(frame)
	switch {
	case n == 0:
		return 0, ErrEmptyFrame
	case n > j.cfg.MaxBytes:
		return j.appendUnkept(n)
	}
	for {
		if j.count < len(j.ents) { // len(ents) <= MaxFrames
			if off, ok := j.fit(n); ok {
				return j.put(off, frame), nil
			}
		}
		if j.grow(n) {
			continue
		}
		if j.cfg.Overflow == Refuse || j.count == 0 || j.pinned(j.From()) {
			j.stats.Refused++
			return 0, fmt.Errorf("%w: %d frames and %d bytes kept (the budget: %d, %d), none may be dropped",
				ErrFull, j.count, j.used, j.cfg.MaxFrames, j.cfg.MaxBytes)
		}
		j.pop()
		j.stats.Evicted++
	}
}

// appendUnkept handles a frame larger than the whole byte budget.
func (j *Journal) appendUnkept(n int) (uint64, error) {
	switch {
	case j.cfg.Overflow == Refuse:
		j.stats.Refused++
		return 0, fmt.Errorf("%w: a frame of %d bytes, the budget is %d", ErrTooLarge, n, j.cfg.MaxBytes)
	case j.pin != 0:
		// Unkept, it would be missing from the resend the pin protects.
		j.stats.Refused++
		return 0, fmt.Errorf("%w: a frame of %d bytes while a resend is agreed", ErrFull, n)
	}
	for j.count > 0 {
		j.pop()
		j.stats.Evicted++
	}
	j.stats.Evicted++ // the frame itself
	j.stats.Appended++
	seq := j.next
	j.next++
	return seq, nil
}

func (j *Journal) pinned(seq uint64) bool { return j.pin != 0 && seq >= j.pin }

// fit finds where n bytes go in the arena, without growing it.
func (j *Journal) fit(n int) (int, bool) {
	if j.count == 0 {
		return 0, n <= len(j.arena)
	}
	head := int(j.ents[j.head].off)
	if j.tail > head { // the data is head..tail: room after it, or at 0
		if len(j.arena)-j.tail >= n {
			return j.tail, true
		}
		return 0, head >= n
	}
	// Wrapped: the data is head..end and 0..tail.
	return j.tail, head-j.tail >= n
}

// put copies frame to off and records it.
func (j *Journal) put(off int, frame []byte) uint64 {
	copy(j.arena[off:], frame)
	j.ents[j.slot(j.count)] = entry{off: uint32(off), n: uint32(len(frame))}
	j.count++
	j.used += len(frame)
	j.tail = off + len(frame)
	j.stats.Appended++
	seq := j.next
	j.next++
	return seq
}

// slot returns the index in ents of the i-th kept frame (0 <= i <=
// len(ents)-1): a wrap, not a division, on the Append path.
func (j *Journal) slot(i int) int {
	k := j.head + i
	if k >= len(j.ents) {
		k -= len(j.ents)
	}
	return k
}

// pop forgets the oldest kept frame.
func (j *Journal) pop() {
	j.used -= int(j.ents[j.head].n)
	j.head = j.slot(1)
	j.count--
	if j.count == 0 {
		j.head, j.tail = 0, 0
	}
}

// grow enlarges the index, when it is what is full, or else the arena (for
// n more bytes, copying the kept frames to the start of the new one), as
// far as the budget allows. It reports whether it grew anything: if not,
// the caller must drop a frame or refuse.
func (j *Journal) grow(n int) bool {
	if j.count == len(j.ents) {
		if len(j.ents) >= j.cfg.MaxFrames {
			return false
		}
		ents := make([]entry, min(2*len(j.ents), j.cfg.MaxFrames))
		for i := range j.count {
			ents[i] = j.ents[j.slot(i)]
		}
		j.ents, j.head = ents, 0
		return true
	}
	if len(j.arena) >= j.cfg.MaxBytes {
		return false
	}
	size := 2 * len(j.arena)
	for size < j.used+n {
		size *= 2
	}
	arena := make([]byte, min(size, j.cfg.MaxBytes))
	off := 0
	for i := range j.count {
		e := &j.ents[j.slot(i)]
		copy(arena[off:], j.arena[e.off:e.off+e.n])
		e.off = uint32(off)
		off += int(e.n)
	}
	j.arena, j.tail = arena, off
	return true
}

// Ack records the peer's cumulative acknowledgement: it delivered every
// sequence up to n. The frames up to n are forgotten. An acknowledgement
// below an earlier one is stale (a late one from a replaced link) and
// changes nothing; one of a sequence never sent is ErrAckAhead.
func (j *Journal) Ack(n uint64) error {
	if n >= j.next {
		return fmt.Errorf("%w: acknowledged %d, the last sent is %d", ErrAckAhead, n, j.next-1)
	}
	if n <= j.acked {
		return nil
	}
	j.acked = n
	for j.count > 0 && j.From() <= n {
		j.pop()
		j.stats.Acked++
	}
	return nil
}

// Resume applies the peer's resume, which says it delivered every sequence
// up to delivered (skipped > 0: except skipped..delivered, which it was
// told on an earlier link were lost and skipped, and which this side may
// not have reported yet, if that link failed before this side read the
// peer's resume). It acknowledges them and returns the first sequence to
// send on the new link (From, after the acknowledgement) and the Loss of
// the frames the peer still needed that the journal had dropped, with the
// skipped ones not yet reported: exact, each reported once. A delivered
// value below an earlier acknowledgement is ErrAckBehind, one of a
// sequence never sent ErrAckAhead, a skipped one past delivered
// ErrMalformed.
func (j *Journal) Resume(delivered, skipped uint64) (start uint64, loss *Loss, err error) {
	if delivered < j.acked {
		return 0, nil, fmt.Errorf("%w: the peer says it delivered %d, it had acknowledged %d", ErrAckBehind, delivered, j.acked)
	}
	if skipped > delivered {
		return 0, nil, fmt.Errorf("%w: skipped from %d, delivered %d", ErrMalformed, skipped, delivered)
	}
	if err := j.Ack(delivered); err != nil {
		return 0, nil, err
	}
	start = j.From()
	first := delivered + 1
	if skipped != 0 {
		first = skipped
	}
	if loss = lossOf(max(first, j.lost+1), start-1, LossBudget); loss != nil {
		j.stats.Lost += loss.Count()
		j.lost = loss.Last
	}
	return start, loss, nil
}

// AppendFrames appends kept frames to dst, in order, from sequence seq on,
// as long as they fit in max bytes (one frame at least, however large),
// and returns the sequence of the first frame it did not append (Next when
// it appended them all). seq below From is ErrEvicted.
func (j *Journal) AppendFrames(dst []byte, seq uint64, max int) ([]byte, uint64, error) {
	if seq < j.From() {
		return dst, seq, fmt.Errorf("%w: sequence %d, the oldest kept is %d", ErrEvicted, seq, j.From())
	}
	if seq > j.next {
		return dst, seq, fmt.Errorf("%w: sequence %d was never sent", ErrAckAhead, seq)
	}
	added := 0
	for ; seq < j.next; seq++ {
		e := j.ents[j.slot(int(seq-j.From()))]
		if added > 0 && added+int(e.n) > max {
			break
		}
		dst = append(dst, j.arena[e.off:e.off+e.n]...)
		added += int(e.n)
		j.stats.Resent++
	}
	return dst, seq, nil
}

// Frame returns the kept frame of sequence seq (aliasing the arena: valid
// until the next Append), or nil.
func (j *Journal) Frame(seq uint64) []byte {
	if seq < j.From() || seq >= j.next {
		return nil
	}
	e := j.ents[j.slot(int(seq-j.From()))]
	return j.arena[e.off : e.off+e.n : e.off+e.n]
}

// Reset ends the session: every frame not acknowledged is lost for reason
// (the Loss says which; nil when there were none), and the journal starts
// again at sequence 1, keeping its arena.
func (j *Journal) Reset(reason LossReason) *Loss {
	loss := lossOf(max(j.acked, j.lost)+1, j.next-1, reason)
	if loss != nil {
		j.stats.Lost += loss.Count()
	}
	j.next, j.acked, j.lost, j.pin = 1, 0, 0, 0
	j.head, j.count, j.tail, j.used = 0, 0, 0, 0
	return loss
}

// Unappend takes back the newest Append, which must have succeeded and be
// followed by nothing else: a request's marker whose message was then
// refused, so that the pair is journaled whole or not at all. Frames the
// Append dropped for the budget stay dropped.
func (j *Journal) Unappend() {
	if j.next <= 1 {
		return
	}
	j.next--
	j.stats.Appended--
	if j.count == 0 {
		j.stats.Evicted-- // it was not kept (larger than the budget)
		return
	}
	e := j.ents[j.slot(j.count-1)]
	j.count--
	j.used -= int(e.n)
	j.tail = int(e.off)
	if j.count == 0 {
		j.head, j.tail = 0, 0
	}
}
