package lane

import (
	"errors"
	"testing"
)

func TestReplayWindow(t *testing.T) {
	var w replayWindow
	accept := func(n uint64, want error) {
		t.Helper()
		if err := w.accept(n); !errors.Is(err, want) {
			t.Fatalf("accept(%d) = %v, want %v", n, err, want)
		}
	}
	accept(0, nil)
	accept(0, ErrReplay)
	accept(1, nil)
	accept(5, nil)
	accept(3, nil) // late, inside the window
	accept(3, ErrReplay)
	accept(4, nil)
	accept(5, ErrReplay)
	// Far ahead: the window moves, old bits are cleared, not kept.
	accept(10_000, nil)
	accept(10_000-WindowSize+1, nil) // the oldest still inside
	accept(10_000-WindowSize, ErrTooOld)
	accept(5, ErrTooOld)
	accept(10_000-1, nil)
	// Every counter in the window once, in reverse: each accepted once.
	accept(20_000, nil)
	for n := uint64(20_000 - 1); n > 20_000-WindowSize; n-- {
		accept(n, nil)
	}
	for n := uint64(20_000 - 1); n > 20_000-WindowSize; n-- {
		accept(n, ErrReplay)
	}
	// A jump of exactly one ring clears every word.
	accept(20_000+windowBits, nil)
	accept(20_000+windowBits-1, nil)
}

// The window is exact: compared with a map of everything ever accepted, over
// a random walk that goes forward in jumps and back by less and more than the
// window.
func TestReplayWindowAgainstModel(t *testing.T) {
	var w replayWindow
	seen := map[uint64]bool{}
	var last uint64
	x := uint64(12345)
	for i := 0; i < 200_000; i++ {
		x ^= x << 13
		x ^= x >> 7
		x ^= x << 17
		var n uint64
		switch x % 4 {
		case 0:
			n = last + x%70
		case 1:
			n = last + x%3000
		default:
			d := x % 2500
			if d > last {
				d = last
			}
			n = last - d
		}
		err := w.accept(n)
		var want error
		switch {
		case len(seen) > 0 && n <= last && last-n >= WindowSize:
			want = ErrTooOld
		case seen[n]:
			want = ErrReplay
		}
		if !errors.Is(err, want) || (want == nil) != (err == nil) {
			t.Fatalf("step %d: accept(%d) with last %d = %v, want %v", i, n, last, err, want)
		}
		if err == nil {
			seen[n] = true
			last = max(last, n)
		}
	}
}
