package resume

import (
	"errors"
	"math"
	"math/rand/v2"
	"slices"
	"testing"
)

func TestJournalSequencesStartAtOne(t *testing.T) {
	j := newJournal(t, 100, 1<<16, DropOldest)
	if j.Next() != 1 || j.Acked() != 0 || j.From() != 1 {
		t.Fatalf("new journal: next %d acked %d from %d", j.Next(), j.Acked(), j.From())
	}
	for i := uint64(1); i <= 5; i++ {
		if seq := mustAppend(t, j, frameOf(i, 20)); seq != i {
			t.Fatalf("append %d got sequence %d", i, seq)
		}
	}
	if f, b := j.Kept(); f != 5 || b != 100 {
		t.Fatalf("kept %d frames %d bytes, want 5, 100", f, b)
	}
	for i := uint64(1); i <= 5; i++ {
		if m := msgOf(t, j.Frame(i)); m != i {
			t.Fatalf("frame %d holds message %d", i, m)
		}
	}
	if j.Frame(0) != nil || j.Frame(6) != nil {
		t.Fatal("Frame outside the kept range returned bytes")
	}
	if _, err := j.Append(nil); !errors.Is(err, ErrEmptyFrame) {
		t.Fatalf("empty frame: %v", err)
	}
}

// Every pattern of acknowledgement: one by one, in jumps, all at once,
// repeated, stale, of nothing, and ahead of what was sent.
func TestJournalAckPatterns(t *testing.T) {
	cases := []struct {
		name string
		acks []uint64
		want uint64 // Acked after
	}{
		{"none", nil, 0},
		{"zero", []uint64{0}, 0},
		{"one by one", []uint64{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}, 10},
		{"jumps", []uint64{3, 7, 10}, 10},
		{"all at once", []uint64{10}, 10},
		{"repeated", []uint64{4, 4, 4}, 4},
		{"stale after newer", []uint64{8, 3, 5}, 8},
		{"partial", []uint64{6}, 6},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			j := newJournal(t, 100, 1<<16, DropOldest)
			for i := uint64(1); i <= 10; i++ {
				mustAppend(t, j, frameOf(i, 16))
			}
			for _, a := range c.acks {
				if err := j.Ack(a); err != nil {
					t.Fatalf("Ack(%d): %v", a, err)
				}
			}
			if j.Acked() != c.want || j.From() != c.want+1 {
				t.Fatalf("acked %d from %d, want %d, %d", j.Acked(), j.From(), c.want, c.want+1)
			}
			if f, _ := j.Kept(); f != int(10-c.want) {
				t.Fatalf("kept %d, want %d", f, 10-c.want)
			}
			if got := resend(t, j, j.From(), 16); !slices.Equal(got, seqRange(c.want+1, 10)) {
				t.Fatalf("resend %v", got)
			}
		})
	}
	j := newJournal(t, 100, 1<<16, DropOldest)
	mustAppend(t, j, frameOf(1, 16))
	for _, a := range []uint64{2, math.MaxUint64} {
		if err := j.Ack(a); !errors.Is(err, ErrAckAhead) {
			t.Fatalf("Ack(%d) of 1 sent: %v", a, err)
		}
	}
}

func seqRange(first, last uint64) []uint64 {
	var out []uint64
	for i := first; i <= last; i++ {
		out = append(out, i)
	}
	return out
}

// Sequences are 64-bit and never wrap: a journal far along works the same.
func TestJournalSixtyFourBitSequences(t *testing.T) {
	for _, start := range []uint64{1 << 32, 1<<40 + 7, math.MaxUint64 - 100} {
		j := newJournal(t, 8, 1<<10, DropOldest)
		j.next, j.acked = start, start-1
		for i := range uint64(20) {
			if seq := mustAppend(t, j, frameOf(i, 24)); seq != start+i {
				t.Fatalf("sequence %d, want %d", seq, start+i)
			}
		}
		// 8 kept: the last 8; 12 dropped for the budget.
		if j.From() != start+12 {
			t.Fatalf("from %d, want %d", j.From(), start+12)
		}
		if err := j.Ack(start + 14); err != nil {
			t.Fatal(err)
		}
		first, loss, err := j.Resume(start+14, 0)
		if err != nil || loss != nil || first != start+15 {
			t.Fatalf("Resume: %d %v %v", first, loss, err)
		}
		if got := resend(t, j, first, 24); !slices.Equal(got, seqRange(15, 19)) {
			t.Fatalf("resend %v", got)
		}
	}
}

// A full journal drops its oldest frames and, when a resume needs them,
// reports exactly their range; it resends exactly the rest.
func TestJournalBudgetOverflowLossRange(t *testing.T) {
	for _, c := range []struct {
		name          string
		frames, bytes int
		size          int
	}{
		{"count budget", 592, 1 << 20, 40},
		{"byte budget", 100000, 592 * 40, 40},
	} {
		t.Run(c.name, func(t *testing.T) {
			j := newJournal(t, c.frames, c.bytes, DropOldest)
			for i := uint64(1); i <= 1040; i++ {
				mustAppend(t, j, frameOf(i, c.size))
				if err := j.Ack(i); err != nil {
					t.Fatal(err)
				}
			}
			// The cut: 1184 more, of which only the last 592 fit.
			for i := uint64(1041); i <= 1632+592; i++ {
				mustAppend(t, j, frameOf(i, c.size))
			}
			if ev := j.Stats().Evicted; ev != 592 {
				t.Fatalf("evicted %d, want 592", ev)
			}
			start, loss, err := j.Resume(1040, 0)
			if err != nil {
				t.Fatal(err)
			}
			want := &Loss{First: 1041, Last: 1632, Reason: LossBudget}
			if loss == nil || *loss != *want || loss.Count() != 592 {
				t.Fatalf("loss %v, want %v", loss, want)
			}
			if s := loss.Error(); s != "messages 1041-1632 (592) lost: resend budget exceeded" {
				t.Fatalf("loss reads %q", s)
			}
			if !errors.Is(loss, ErrLost) {
				t.Fatal("a Loss does not match ErrLost")
			}
			if start != 1633 {
				t.Fatalf("start %d", start)
			}
			if got := resend(t, j, start, c.size); !slices.Equal(got, seqRange(1633, 2224)) {
				t.Fatalf("resend %d frames from %v", len(got), got[:min(3, len(got))])
			}
			if j.Stats().Lost != 592 {
				t.Fatalf("stats lost %d", j.Stats().Lost)
			}
			// The loss is settled: a later reset does not report it again.
			if l := j.Reset(LossClosed); l == nil || l.First != 1633 {
				t.Fatalf("reset after resume: %v", l)
			}
		})
	}
}

// Dropped frames are lost only if a resume needs them: a peer that had
// delivered them (its acknowledgement late) loses nothing.
func TestJournalEvictionWithoutResumeLosesNothing(t *testing.T) {
	j := newJournal(t, 10, 1<<16, DropOldest)
	for i := uint64(1); i <= 30; i++ {
		mustAppend(t, j, frameOf(i, 16))
	}
	start, loss, err := j.Resume(20, 0)
	if err != nil || loss != nil || start != 21 {
		t.Fatalf("Resume(20): %d %v %v", start, loss, err)
	}
	if got := resend(t, j, start, 16); !slices.Equal(got, seqRange(21, 30)) {
		t.Fatalf("resend %v", got)
	}
}

func TestJournalResumeRefusesInconsistentPeer(t *testing.T) {
	j := newJournal(t, 10, 1<<16, DropOldest)
	for i := uint64(1); i <= 5; i++ {
		mustAppend(t, j, frameOf(i, 16))
	}
	if err := j.Ack(3); err != nil {
		t.Fatal(err)
	}
	if _, _, err := j.Resume(2, 0); !errors.Is(err, ErrAckBehind) {
		t.Fatalf("Resume behind an ack: %v", err)
	}
	if _, _, err := j.Resume(6, 0); !errors.Is(err, ErrAckAhead) {
		t.Fatalf("Resume ahead: %v", err)
	}
	if _, _, err := j.AppendFrames(nil, 2, 100); !errors.Is(err, ErrEvicted) {
		t.Fatalf("AppendFrames of trimmed: %v", err)
	}
	if _, _, err := j.AppendFrames(nil, 7, 100); !errors.Is(err, ErrAckAhead) {
		t.Fatalf("AppendFrames of unsent: %v", err)
	}
	buf, next, err := j.AppendFrames(nil, 6, 100)
	if err != nil || len(buf) != 0 || next != 6 {
		t.Fatalf("AppendFrames at Next: %d bytes, %d, %v", len(buf), next, err)
	}
}

func TestJournalRefusePolicy(t *testing.T) {
	j := newJournal(t, 4, 1<<16, Refuse)
	for i := uint64(1); i <= 4; i++ {
		mustAppend(t, j, frameOf(i, 16))
	}
	if _, err := j.Append(frameOf(5, 16)); !errors.Is(err, ErrFull) {
		t.Fatalf("append to a full Refuse journal: %v", err)
	}
	if j.Next() != 5 {
		t.Fatalf("a refused frame used a sequence: next %d", j.Next())
	}
	if err := j.Ack(2); err != nil {
		t.Fatal(err)
	}
	if seq := mustAppend(t, j, frameOf(5, 16)); seq != 5 {
		t.Fatalf("sequence %d", seq)
	}
	if _, err := j.Append(make([]byte, 1<<17)); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("a frame over the byte budget: %v", err)
	}
	if st := j.Stats(); st.Refused != 2 || st.Evicted != 0 {
		t.Fatalf("stats %+v", st)
	}
}

// Pinned frames (a resume being agreed, or resent) are never dropped: the
// journal refuses instead, so the agreed stream has no hole.
func TestJournalPin(t *testing.T) {
	j := newJournal(t, 4, 1<<16, DropOldest)
	for i := uint64(1); i <= 6; i++ {
		mustAppend(t, j, frameOf(i, 16))
	}
	j.Pin(j.From()) // 3
	if _, err := j.Append(frameOf(7, 16)); !errors.Is(err, ErrFull) {
		t.Fatalf("append with everything pinned: %v", err)
	}
	if _, err := j.Append(make([]byte, 1<<17)); !errors.Is(err, ErrFull) {
		t.Fatalf("an unkeepable frame while pinned: %v", err)
	}
	j.Pin(5) // 3 and 4 resent: they may go
	if seq := mustAppend(t, j, frameOf(7, 16)); seq != 7 || j.From() != 4 {
		t.Fatalf("seq %d from %d", seq, j.From())
	}
	j.Pin(0)
	for i := uint64(8); i <= 20; i++ {
		mustAppend(t, j, frameOf(i, 16))
	}
	if j.From() != 17 {
		t.Fatalf("from %d", j.From())
	}
}

// A frame larger than the byte budget is sent but cannot be kept: the
// journal empties, and only a resume that needs it reports it.
func TestJournalFrameLargerThanBudget(t *testing.T) {
	j := newJournal(t, 100, 256, DropOldest)
	for i := uint64(1); i <= 3; i++ {
		mustAppend(t, j, frameOf(i, 16))
	}
	if seq := mustAppend(t, j, frameOf(4, 300)); seq != 4 {
		t.Fatalf("seq %d", seq)
	}
	seq := mustAppend(t, j, frameOf(5, 16))
	if seq != 5 || j.From() != 5 {
		t.Fatalf("seq %d from %d", seq, j.From())
	}
	_, loss, err := j.Resume(2, 0)
	if err != nil || loss == nil || loss.First != 3 || loss.Last != 4 {
		t.Fatalf("Resume(2): %v %v", loss, err)
	}
}

func TestJournalReset(t *testing.T) {
	j := newJournal(t, 100, 1<<16, DropOldest)
	if l := j.Reset(LossPeerRestarted); l != nil {
		t.Fatalf("reset of an empty journal: %v", l)
	}
	for i := uint64(1); i <= 10; i++ {
		mustAppend(t, j, frameOf(i, 16))
	}
	if err := j.Ack(4); err != nil {
		t.Fatal(err)
	}
	l := j.Reset(LossPeerRestarted)
	if l == nil || l.First != 5 || l.Last != 10 || l.Reason != LossPeerRestarted {
		t.Fatalf("reset: %v", l)
	}
	if s := l.Error(); s != "messages 5-10 (6) lost: the peer restarted" {
		t.Fatalf("loss reads %q", s)
	}
	if j.Next() != 1 || j.From() != 1 || j.Acked() != 0 {
		t.Fatal("a reset journal does not start again at 1")
	}
	mustAppend(t, j, frameOf(11, 16))
	if l := j.Reset(LossWindowExpired); l == nil || l.Count() != 1 || l.Error() != "message 1 lost: resume window expired" {
		t.Fatalf("reset: %v", l)
	}
}

func TestJournalConfigValidate(t *testing.T) {
	if err := DefaultJournalConfig().Validate(); err != nil {
		t.Fatal(err)
	}
	for _, c := range []JournalConfig{
		{MaxFrames: 0, MaxBytes: 1},
		{MaxFrames: 1, MaxBytes: 0},
		{MaxFrames: 1, MaxBytes: 1, Overflow: 7},
		{MaxFrames: 1 << 33, MaxBytes: 1},
	} {
		if _, err := NewJournal(c); !errors.Is(err, ErrConfig) {
			t.Fatalf("%+v: %v", c, err)
		}
	}
}

// A random walk of appends of random sizes, acknowledgements and resumes
// against a model: the arena wraps and grows, and every kept frame reads
// back intact, in order.
func TestJournalModel(t *testing.T) {
	for seed := range uint64(10) {
		rng := rand.New(rand.NewPCG(seed, 99))
		frames := 1 + rng.IntN(1000)
		bytes := 64 + rng.IntN(64<<10)
		j := newJournal(t, frames, bytes, DropOldest)
		sent := map[uint64]uint64{} // seq -> message
		var acked uint64
		msg := uint64(0)
		for range 3000 {
			switch r := rng.IntN(10); {
			case r < 7:
				msg++
				seq := mustAppend(t, j, frameOf(msg, 8+rng.IntN(min(bytes, 300))))
				sent[seq] = msg
			case r < 9 && j.Next() > 1:
				a := acked + uint64(rng.IntN(int(j.Next()-acked)))
				if err := j.Ack(a); err != nil {
					t.Fatal(err)
				}
				acked = max(acked, a)
			default:
				d := acked + uint64(rng.IntN(int(j.Next()-acked)))
				start, loss, err := j.Resume(d, 0)
				if err != nil {
					t.Fatal(err)
				}
				if loss != nil && (loss.First != d+1 || loss.Last != start-1) {
					t.Fatalf("loss %v for resume at %d, start %d", loss, d, start)
				}
				acked = start - 1
			}
			if f, b := j.Kept(); f > frames || b > bytes {
				t.Fatalf("kept %d frames %d bytes over budget %d, %d", f, b, frames, bytes)
			}
			if j.From() <= acked && j.From() != j.Next() {
				t.Fatalf("from %d with acked %d", j.From(), acked)
			}
			for seq := j.From(); seq < j.Next(); seq++ {
				if m := msgOf(t, j.Frame(seq)); m != sent[seq] {
					t.Fatalf("seed %d: frame %d holds %d, want %d", seed, seq, m, sent[seq])
				}
			}
		}
	}
}
