package wire

import (
	"sync"

	"github.com/google/uuid"
)

// WindowBits is how far behind the newest sequence an envelope may come and
// still be taken (once): NATS keeps one publisher's order on one
// subscription, so only envelopes of one sender on different subjects
// interleave, and each class of subjects has a window of its own.
const WindowBits = 256

// Window is a WireGuard-style sliding replay window over one sender
// session's sequence numbers.
type Window struct {
	session uuid.UUID
	start   int64
	max     uint64
	bits    [WindowBits / 64]uint64
	used    uint64 // when last used, in the table's clock
}

// Accept reports whether seq of session (begun at start) is new, and
// records it. A session begun earlier than the one in the window is old (a
// replay of a past session); a later one replaces it.
func (w *Window) Accept(session uuid.UUID, start int64, seq uint64) bool {
	if session != w.session {
		if start <= w.start && w.session != uuid.Nil {
			return false
		}
		*w = Window{session: session, start: start, used: w.used}
	}
	switch {
	case seq > w.max:
		shift := seq - w.max
		if shift >= WindowBits {
			w.bits = [WindowBits / 64]uint64{}
		} else {
			for range shift {
				w.shiftOne()
			}
		}
		w.max = seq
		w.bits[0] |= 1
		return true
	case w.max-seq >= WindowBits:
		return false
	}
	d := w.max - seq
	word, bit := d/64, d%64
	if w.bits[word]&(1<<bit) != 0 {
		return false
	}
	w.bits[word] |= 1 << bit
	return true
}

// shiftOne moves the bitmap one sequence on: bit i (seq max-i) becomes bit
// i+1.
func (w *Window) shiftOne() {
	carry := uint64(0)
	for i := range w.bits {
		next := w.bits[i] >> 63
		w.bits[i] = w.bits[i]<<1 | carry
		carry = next
	}
}

// Class separates the windows of one sender: data comes on the node's own
// subject, presence on others.
type Class uint8

const (
	ClassData Class = iota
	ClassPresence
)

type windowKey struct {
	sender uuid.UUID
	class  Class
}

// ReplayTable holds the windows of the senders heard, at most MaxWindows;
// past that the least recently used is forgotten (its sender's next
// envelope starts a new window, which a replay of its current session
// could then pass: the bound is what memory costs).
type ReplayTable struct {
	// mu guards the table.
	mu    sync.Mutex
	clock uint64
	byKey map[windowKey]*Window
}

// MaxWindows bounds a ReplayTable.
const MaxWindows = 4096

// Accept is Window.Accept on the window of sender's class c.
func (t *ReplayTable) Accept(sender uuid.UUID, c Class, session uuid.UUID, start int64, seq uint64) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.byKey == nil {
		t.byKey = map[windowKey]*Window{}
	}
	t.clock++
	k := windowKey{sender, c}
	w := t.byKey[k]
	if w == nil {
		if len(t.byKey) >= MaxWindows {
			var oldest windowKey
			first := true
			for k2, w2 := range t.byKey {
				if first || w2.used < t.byKey[oldest].used {
					oldest, first = k2, false
				}
			}
			delete(t.byKey, oldest)
		}
		w = &Window{}
		t.byKey[k] = w
	}
	w.used = t.clock
	return w.Accept(session, start, seq)
}
