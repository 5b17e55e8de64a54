package resume

import "testing"

// Once the arena has grown to what traffic needs, the hot path allocates
// nothing: Append, Ack, Deliver, TakeAck, and a resend's AppendFrames.
func TestSteadyStateAllocatesNothing(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts")
	}
	j := newJournal(t, DefaultMaxFrames, DefaultMaxBytes, DropOldest)
	frame := frameOf(1, 100)
	for range 1000 {
		j.Append(frame)
	}
	j.Ack(j.Next() - 1)
	tr := newTracker(t)
	s, _ := tr.Fence()
	s.Start(1)
	deliver := func(skip int) (int, int) { return 8 - skip, 800 }
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(1000, func() {
		var seq uint64
		for range 8 {
			seq, _ = j.Append(frame)
		}
		buf, _, _ = j.AppendFrames(buf[:0], seq-7, 4096)
		j.Ack(seq)
		s.Deliver(8, deliver)
		tr.AckDue()
		tr.TakeAck()
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per run", allocs)
	}
}
