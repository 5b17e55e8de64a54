package resume

import (
	"errors"
	"sync"
	"testing"
)

// deliverAll takes every frame offered and records their sequences.
func deliverAll(s *Stream, n int, got *[]uint64) (int, error) {
	first := s.Next()
	return s.Deliver(n, func(skip int) (int, int) {
		for i := skip; i < n; i++ {
			*got = append(*got, first+uint64(i))
		}
		return n - skip, 10 * (n - skip)
	})
}

func TestTrackerDeliversInOrder(t *testing.T) {
	tr := newTracker(t)
	s, d := tr.Fence()
	if d != 0 {
		t.Fatalf("delivered %d", d)
	}
	if _, err := s.Deliver(1, nil); !errors.Is(err, ErrNotStarted) {
		t.Fatalf("deliver before Start: %v", err)
	}
	if loss, err := s.Start(1); loss != nil || err != nil {
		t.Fatal(loss, err)
	}
	var got []uint64
	for _, n := range []int{1, 5, 128, 3} {
		if k, err := deliverAll(s, n, &got); err != nil || k != n {
			t.Fatalf("Deliver(%d): %d %v", n, k, err)
		}
	}
	if tr.Delivered() != 137 || len(got) != 137 || got[136] != 137 {
		t.Fatalf("delivered %d, got %d", tr.Delivered(), len(got))
	}
	if k, err := s.Deliver(0, nil); k != 0 || err != nil {
		t.Fatal(k, err)
	}
}

// A new link that starts below what was delivered (the peer resent what
// an old link delivered meanwhile): the overlap is dropped as duplicates.
func TestTrackerDuplicates(t *testing.T) {
	tr := newTracker(t)
	old, _ := tr.Fence()
	old.Start(1)
	var got []uint64
	deliverAll(old, 10, &got)
	s, d := tr.Fence()
	if d != 10 {
		t.Fatalf("delivered %d", d)
	}
	// The peer resends from 6 (say it had our ack only up to 5).
	if _, err := s.Start(6); err != nil {
		t.Fatal(err)
	}
	k, err := deliverAll(s, 8, &got) // 6..13: 6..10 are duplicates
	if err != nil || k != 3 {
		t.Fatalf("Deliver: %d %v", k, err)
	}
	if tr.Delivered() != 13 || tr.Stats().Duplicates != 5 {
		t.Fatalf("delivered %d, stats %+v", tr.Delivered(), tr.Stats())
	}
	for i, seq := range got {
		if seq != uint64(i+1) {
			t.Fatalf("delivered %v", got)
		}
	}
	// All duplicates: the sink is not even asked.
	s2, _ := tr.Fence()
	s2.Start(2)
	if k, err := s2.Deliver(4, func(int) (int, int) { t.Fatal("called"); return 0, 0 }); k != 0 || err != nil {
		t.Fatal(k, err)
	}
}

func TestTrackerGapIsAnError(t *testing.T) {
	tr := newTracker(t)
	s, _ := tr.Fence()
	s.Start(1)
	var got []uint64
	deliverAll(s, 3, &got)
	s2, _ := tr.Fence()
	s2.Start(4)
	s2.next = 6 // a peer that skipped two frames on the wire
	if _, err := deliverAll(s2, 1, &got); !errors.Is(err, ErrGap) {
		t.Fatalf("gap: %v", err)
	}
	if tr.Delivered() != 3 {
		t.Fatalf("delivered %d", tr.Delivered())
	}
}

// The peer announced it could not resend some (its journal dropped them):
// the gap is a Loss, and delivery goes on after it.
func TestTrackerAnnouncedGap(t *testing.T) {
	tr := newTracker(t)
	s, _ := tr.Fence()
	s.Start(1)
	var got []uint64
	deliverAll(s, 1040, &got)
	s2, _ := tr.Fence()
	loss, err := s2.Start(1633)
	if err != nil || loss == nil || loss.First != 1041 || loss.Last != 1632 || loss.Count() != 592 {
		t.Fatalf("Start: %v %v", loss, err)
	}
	if k, _ := deliverAll(s2, 1, &got); k != 1 || got[len(got)-1] != 1633 || tr.Delivered() != 1633 {
		t.Fatalf("after the gap: %v", got[len(got)-1])
	}
	if tr.Stats().Lost != 592 {
		t.Fatalf("stats %+v", tr.Stats())
	}
	if _, err := s2.Start(0); !errors.Is(err, ErrMalformed) {
		t.Fatalf("Start(0): %v", err)
	}
}

// A fenced stream delivers nothing more, even mid-batch on another
// goroutine: its frames come again on the newer link.
func TestTrackerFenceStopsOldLink(t *testing.T) {
	tr := newTracker(t)
	old, _ := tr.Fence()
	old.Start(1)
	var got []uint64
	deliverAll(old, 5, &got)
	s, d := tr.Fence()
	if _, err := deliverAll(old, 5, &got); !errors.Is(err, ErrStale) {
		t.Fatalf("old link after the fence: %v", err)
	}
	if _, err := old.Start(1); !errors.Is(err, ErrStale) {
		t.Fatalf("old Start: %v", err)
	}
	if d != 5 || tr.Delivered() != 5 || tr.Stats().Stale != 5 {
		t.Fatalf("delivered %d %d, stats %+v", d, tr.Delivered(), tr.Stats())
	}
	s.Start(6)
	if k, _ := deliverAll(s, 5, &got); k != 5 {
		t.Fatal(k)
	}
	for i, seq := range got {
		if seq != uint64(i+1) {
			t.Fatalf("delivered %v", got)
		}
	}
}

// Two links of one peer delivering at once never interleave out of order.
func TestTrackerConcurrentLinks(t *testing.T) {
	tr := newTracker(t)
	a, _ := tr.Fence()
	a.Start(1)
	var mu sync.Mutex
	var got []uint64
	deliver := func(s *Stream, n int) {
		first := s.Next()
		s.Deliver(n, func(skip int) (int, int) {
			mu.Lock()
			for i := skip; i < n; i++ {
				got = append(got, first+uint64(i))
			}
			mu.Unlock()
			return n - skip, 0
		})
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for range 1000 {
			deliver(a, 3)
		}
	}()
	b, d := tr.Fence()
	b.Start(d + 1)
	for range 1000 {
		deliver(b, 2)
	}
	wg.Wait()
	for i, seq := range got {
		if seq != uint64(i+1) {
			t.Fatalf("position %d holds %d", i, seq)
		}
	}
}

// A sink that takes fewer than offered (closing) ends the stream; what it
// did not take is not acknowledged.
func TestTrackerPartialTake(t *testing.T) {
	tr := newTracker(t)
	s, _ := tr.Fence()
	s.Start(1)
	k, err := s.Deliver(10, func(skip int) (int, int) { return 4, 40 })
	if k != 4 || err != nil || tr.Delivered() != 4 {
		t.Fatalf("%d %v delivered %d", k, err, tr.Delivered())
	}
	if _, err := s.Deliver(1, func(int) (int, int) { return 1, 0 }); !errors.Is(err, ErrStale) {
		t.Fatalf("after a partial take: %v", err)
	}
}

func TestTrackerAcks(t *testing.T) {
	tr, err := NewTracker(TrackerConfig{AckFrames: 100, AckBytes: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := tr.TakeAck(); ok {
		t.Fatal("an ack before anything was delivered")
	}
	s, _ := tr.Fence()
	s.Start(1)
	take := func(n, bytes int) {
		s.Deliver(n, func(skip int) (int, int) { return n - skip, bytes })
	}
	take(99, 99)
	if tr.AckDue() {
		t.Fatal("due at 99 frames")
	}
	take(1, 1)
	if !tr.AckDue() {
		t.Fatal("not due at 100 frames")
	}
	if a, ok := tr.TakeAck(); !ok || a != 100 {
		t.Fatalf("TakeAck: %d %v", a, ok)
	}
	if _, ok := tr.TakeAck(); ok || tr.AckDue() {
		t.Fatal("the same ack taken twice")
	}
	take(1, 1000) // bytes
	if !tr.AckDue() {
		t.Fatal("not due at 1000 bytes")
	}
	// The peer's budget lowers the thresholds to a quarter of it.
	tr.SetPeerBudget(16, 1<<20)
	tr.TakeAck()
	take(3, 3)
	if tr.AckDue() {
		t.Fatal("due at 3 of a budget of 16")
	}
	take(1, 1)
	if !tr.AckDue() {
		t.Fatal("not due at 4")
	}
	tr.SetPeerBudget(0, 0) // clamped to 1
	if !tr.AckDue() {
		t.Fatal("not due with a budget of 0")
	}
	// Every ack value taken once, whichever goroutine takes it.
	var wg sync.WaitGroup
	taken := make(chan uint64, 100)
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 50 {
				if a, ok := tr.TakeAck(); ok {
					taken <- a
				}
			}
		}()
	}
	wg.Wait()
	close(taken)
	n := 0
	for range taken {
		n++
	}
	if n != 1 {
		t.Fatalf("one value taken %d times", n)
	}
	tr.Reset()
	if tr.Delivered() != 0 || tr.AckDue() {
		t.Fatal("reset")
	}
	if _, err := NewTracker(TrackerConfig{}); !errors.Is(err, ErrConfig) {
		t.Fatal(err)
	}
	if st := tr.Stats(); st.Delivered != 105 || st.Acks != 3 {
		t.Fatalf("stats %+v", st)
	}
}

// An acknowledgement taken while the session is reset is of one session or
// the other, never the old value after the reset.
func TestTrackerResetVersusTakeAck(t *testing.T) {
	for range 200 {
		tr := newTracker(t)
		s, _ := tr.Fence()
		s.Start(1)
		s.Deliver(500, func(skip int) (int, int) { return 500, 0 })
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			tr.TakeAck()
		}()
		tr.Reset()
		wg.Wait()
		if a, ok := tr.TakeAck(); ok {
			t.Fatalf("an ack of %d after the reset, nothing delivered since", a)
		}
		if tr.ackSent.Load() != 0 {
			t.Fatalf("the old session's ack %d survived the reset", tr.ackSent.Load())
		}
	}
}
