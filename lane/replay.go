package lane

// The replay window keeps which of the last WindowSize packet counters were
// seen, as WireGuard's replay filter does (RFC 6479): a ring of 64-bit
// words, and the highest counter seen. Moving forward clears the words the
// window leaves behind; a counter behind the window is refused without
// looking, as is one whose bit is set.
const (
	windowWords = 32
	windowBits  = windowWords * 64
	// WindowSize is how far behind the newest counter a datagram may be and
	// still be delivered (once). One word of the ring is the one being
	// filled, so the window is a word short of the ring.
	WindowSize = windowBits - 64
)

type replayWindow struct {
	last uint64 // highest counter accepted
	any  bool   // something was accepted
	ring [windowWords]uint64
}

// check reports whether counter n would be accepted, changing nothing: the
// cheap test before the work of opening a datagram.
func (w *replayWindow) check(n uint64) error {
	if !w.any || n > w.last {
		return nil
	}
	if w.last-n >= WindowSize {
		return ErrTooOld
	}
	if w.ring[(n/64)%windowWords]&(1<<(n%64)) != 0 {
		return ErrReplay
	}
	return nil
}

// accept marks n seen, after its datagram has been authenticated. It
// returns the same error check would.
func (w *replayWindow) accept(n uint64) error {
	if err := w.check(n); err != nil {
		return err
	}
	if !w.any || n > w.last {
		cur := w.last / 64
		if !w.any {
			cur = n/64 - 1 // clear the word n lands in (it is zero anyway)
		}
		next := n / 64
		for i, k := cur+1, 0; i <= next && k < windowWords; i, k = i+1, k+1 {
			w.ring[i%windowWords] = 0
		}
		w.last, w.any = n, true
	}
	w.ring[(n/64)%windowWords] |= 1 << (n % 64)
	return nil
}
