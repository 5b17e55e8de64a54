package bench

import (
	"encoding/binary"
	"fmt"
	"math"
	"slices"
	"time"

	"github.com/lanmesh/lanmesh/message"
)

// The lane part streams game positions and samples, at the receiver, the
// age of the newest position it holds of each object. This file has the
// pure pieces: the position message, the sampler and its summary.

// LanePos is the lane part's position message: 24 bytes of payload (26 as
// a binary-codec frame), the same on the lane and on the TCP link.
type LanePos struct {
	Obj  uint16 // the object, 0..objects-1; also its sequenced channel
	Run  uint16 // the stream it belongs to
	Seq  uint32
	Sent int64 // when it was sent: nanoseconds on the run's monotonic clock
	X, Y float32
}

// lanePosSize is LanePos's binary form.
const lanePosSize = 24

func (p LanePos) AppendBinary(b []byte) ([]byte, error) {
	b = binary.BigEndian.AppendUint16(b, p.Obj)
	b = binary.BigEndian.AppendUint16(b, p.Run)
	b = binary.BigEndian.AppendUint32(b, p.Seq)
	b = binary.BigEndian.AppendUint64(b, uint64(p.Sent))
	b = binary.BigEndian.AppendUint32(b, math.Float32bits(p.X))
	return binary.BigEndian.AppendUint32(b, math.Float32bits(p.Y)), nil
}

func (p *LanePos) UnmarshalBinary(b []byte) error {
	if len(b) != lanePosSize {
		return fmt.Errorf("LanePos: %d bytes, want %d", len(b), lanePosSize)
	}
	p.Obj = binary.BigEndian.Uint16(b)
	p.Run = binary.BigEndian.Uint16(b[2:])
	p.Seq = binary.BigEndian.Uint32(b[4:])
	p.Sent = int64(binary.BigEndian.Uint64(b[8:]))
	p.X = math.Float32frombits(binary.BigEndian.Uint32(b[16:]))
	p.Y = math.Float32frombits(binary.BigEndian.Uint32(b[20:]))
	return nil
}

// laneRegistry holds LanePos for the TCP side of the lane part.
var laneRegistry = func() *message.Registry {
	r := message.NewRegistry()
	message.MustRegister[LanePos](r, 0x13, "LanePos")
	return r
}()

// ageSampler keeps the newest position of each object that a receiver
// holds and, at each sample, records for every object it has heard of the
// age of that newest position: now minus its send time. Positions of
// another run are ignored. Not safe for concurrent use.
type ageSampler struct {
	run     uint16
	newest  []int64 // per object: the send time of the newest held; 0 none
	samples []time.Duration
}

func newAgeSampler(run uint16, objects int) *ageSampler {
	return &ageSampler{run: run, newest: make([]int64, objects)}
}

// see takes a received position.
func (s *ageSampler) see(p LanePos) {
	if p.Run != s.run || int(p.Obj) >= len(s.newest) {
		return
	}
	if p.Sent > s.newest[p.Obj] {
		s.newest[p.Obj] = p.Sent
	}
}

// sample records one age per object heard of, at now (same clock as Sent).
func (s *ageSampler) sample(now int64) {
	for _, t := range s.newest {
		if t != 0 {
			s.samples = append(s.samples, time.Duration(now-t))
		}
	}
}

// ageSummary is what a stream's samples say.
type ageSummary struct {
	P50, P99, Max time.Duration
	// First and Last are the p99 of the first and of the last third of
	// the samples, in the order taken: equal for a flat run, Last far above
	// First for an age that grows.
	First, Last time.Duration
	N           int
	// Stall is the longest either pump went between ticks beyond one
	// tick (set by the stream, not by summarizeAges).
	Stall time.Duration
}

// summarizeAges summarises samples in the order they were taken.
func summarizeAges(samples []time.Duration) ageSummary {
	n := len(samples)
	if n == 0 {
		return ageSummary{}
	}
	p99 := func(xs []time.Duration) time.Duration {
		s := slices.Clone(xs)
		slices.Sort(s)
		return Percentile(s, 0.99)
	}
	all := slices.Clone(samples)
	slices.Sort(all)
	third := max(n/3, 1)
	return ageSummary{
		P50: Percentile(all, 0.50), P99: Percentile(all, 0.99), Max: all[n-1],
		First: p99(samples[:third]), Last: p99(samples[n-third:]), N: n,
	}
}

// figures returns the summary's values in seconds, in the order of
// ageFigureNames.
func (a ageSummary) figures() []float64 {
	return []float64{a.P50.Seconds(), a.P99.Seconds(), a.Max.Seconds(), a.First.Seconds(), a.Last.Seconds()}
}

var ageFigureNames = []string{"p50", "p99", "max", "p99 first third", "p99 last third"}
