package bench

import (
	"bytes"
	"testing"
	"time"
)

func TestLanePosRoundTrip(t *testing.T) {
	p := LanePos{Obj: 39, Run: 7, Seq: 1 << 31, Sent: -5, X: 1.5, Y: -2}
	b, err := p.AppendBinary(nil)
	if err != nil || len(b) != lanePosSize {
		t.Fatalf("AppendBinary: %d bytes, %v", len(b), err)
	}
	var q LanePos
	if err := q.UnmarshalBinary(b); err != nil || q != p {
		t.Fatalf("got %+v, %v; want %+v", q, err, p)
	}
	if err := q.UnmarshalBinary(b[:23]); err == nil {
		t.Error("23 bytes accepted")
	}
	if err := q.UnmarshalBinary(append(bytes.Clone(b), 0)); err == nil {
		t.Error("25 bytes accepted")
	}
}

func TestAgeSampler(t *testing.T) {
	ms := func(n int) int64 { return int64(time.Duration(n) * time.Millisecond) }
	s := newAgeSampler(2, 3)
	s.sample(ms(5)) // nothing held yet: no sample
	if len(s.samples) != 0 {
		t.Fatalf("samples before any position: %v", s.samples)
	}
	s.see(LanePos{Obj: 0, Run: 2, Sent: ms(10)})
	s.see(LanePos{Obj: 0, Run: 2, Sent: ms(4)})  // older than the newest held: the age stays
	s.see(LanePos{Obj: 1, Run: 1, Sent: ms(15)}) // another run: ignored
	s.see(LanePos{Obj: 9, Run: 2, Sent: ms(15)}) // no such object: ignored
	s.sample(ms(30))
	s.see(LanePos{Obj: 1, Run: 2, Sent: ms(25)})
	s.sample(ms(40))
	want := []time.Duration{20 * time.Millisecond, 30 * time.Millisecond, 15 * time.Millisecond}
	if len(s.samples) != len(want) {
		t.Fatalf("samples %v, want %v", s.samples, want)
	}
	for i := range want {
		if s.samples[i] != want[i] {
			t.Fatalf("samples %v, want %v", s.samples, want)
		}
	}
}

func TestSummarizeAges(t *testing.T) {
	if got := summarizeAges(nil); got != (ageSummary{}) {
		t.Fatalf("no samples: %+v", got)
	}
	// An age that grows: 1..300 ms in order.
	var grow []time.Duration
	for i := 1; i <= 300; i++ {
		grow = append(grow, time.Duration(i)*time.Millisecond)
	}
	g := summarizeAges(grow)
	ms := time.Millisecond
	if g.P50 != 150*ms || g.P99 != 297*ms || g.Max != 300*ms || g.N != 300 {
		t.Errorf("growing: %+v", g)
	}
	if g.First != 99*ms || g.Last != 299*ms {
		t.Errorf("growing thirds: first %v, last %v; want 99ms, 299ms", g.First, g.Last)
	}
	// A flat run: the same 1..100 ms three times over; thirds alike.
	flat := append(append(append([]time.Duration(nil), grow[:100]...), grow[:100]...), grow[:100]...)
	f := summarizeAges(flat)
	if f.P99 != 99*ms || f.First != 99*ms || f.Last != 99*ms || f.Max != 100*ms {
		t.Errorf("flat: %+v", f)
	}
	if grow[0] != ms || grow[299] != 300*ms {
		t.Error("summarizeAges reordered its input")
	}
	one := summarizeAges([]time.Duration{7})
	if one.P50 != 7 || one.P99 != 7 || one.Max != 7 || one.First != 7 || one.Last != 7 {
		t.Errorf("one sample: %+v", one)
	}
	if len(g.figures()) != len(ageFigureNames) {
		t.Errorf("%d figures, %d names", len(g.figures()), len(ageFigureNames))
	}
}

func TestStallMeter(t *testing.T) {
	var m stallMeter
	t0 := time.Unix(100, 0)
	tick := 10 * time.Millisecond
	for i, at := range []time.Duration{0, 10, 20, 55, 65, 66} {
		m.tick(t0.Add(at*time.Millisecond), tick)
		if i == 0 && m.max != 0 {
			t.Fatalf("first tick: %v", m.max)
		}
	}
	if m.max != 25*time.Millisecond {
		t.Fatalf("max %v, want 25ms (a 35 ms gap in 10 ms ticks)", m.max)
	}
}
