package bench

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lanmesh/lanmesh/lane"
	"github.com/lanmesh/lanmesh/lanmeshtest/netlab"
)

// runLane measures the UDP lane beside the TCP link, in one run: (a) the age
// of a 60 Hz stream of positions over a wire with a Wi-Fi-like delay and
// loss, (b) 40 objects a tick through a wire that carries half of that, (c)
// one-way unreliable throughput on loopback beside raw UDP. Both ends of
// (a) and (b) run in this process, their sockets opened inside two
// namespace hosts (Host.Do) joined by a netlab Wire, so that every frame
// crosses the wire and both ends read one clock.
func runLane(ctx context.Context, r *runner) ([]Result, error) {
	if err := netlab.Available(); err != nil {
		return nil, skip("needs root and ip(8) to build network namespaces (%v)", err)
	}
	r.progressf("building two network namespace hosts and a wire between them")
	lab, err := netlab.Build(ctx, 2)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err := lab.Close(); err != nil {
			r.progressf("removing the lab: %v", err)
		}
	}()
	ha, hb := lab.Hosts[0], lab.Hosts[1]
	w, err := lab.NewWire(ha, hb, laneWireBase)
	if err != nil {
		return nil, err
	}
	env := &laneEnv{r: r, w: w, inA: ha.Do, inB: hb.Do}
	out, err := env.lossFigures(ctx)
	if err != nil {
		return out, err
	}
	more, err := env.rateFigures(ctx)
	out = append(out, more...)
	if err != nil {
		return out, err
	}
	more, err = laneThroughputFigures(ctx, r)
	return append(out, more...), err
}

// laneWireBase is a Wi-Fi-like wire: 3 ms +- 1 ms each way, no loss.
var laneWireBase = netlab.Impairment{Delay: 3 * time.Millisecond, Jitter: time.Millisecond}

const (
	laneTick = time.Second / 60
	// laneStallLimit: a rep of (a) in which either pump went this long
	// beyond a tick without running is run again (as many times as there
	// are reps at most): on a loaded machine such a stall, not the link, is
	// what its ages would show.
	laneStallLimit = 2 * laneTick
	tcpLinkName    = "the same stream Reliable over the TCP link (Node, binary codec)"
	laneKindNote   = "Node to Node: Sequenced (one channel an object, unkeyed lane) beside Reliable on the same link"
)

type laneEnv struct {
	r        *runner
	w        *netlab.Wire
	inA, inB func(func() error) error
	run      uint16
}

// stream runs one stream over the pair and summarises it.
func (e *laneEnv) stream(ctx context.Context, snd, rcv posLink, objects int, dur time.Duration) (ageSummary, string, error) {
	e.run++
	res, err := runStream(ctx, snd, rcv, streamSpec{run: e.run, objects: objects, tick: laneTick, dur: dur})
	if err != nil {
		return ageSummary{}, "", err
	}
	rcv.note() // the sender's note is the one that matters (its messages waited, or were refused)
	sum := summarizeAges(res.samples)
	sum.Stall = res.stall
	return sum, snd.note(), nil
}

// lossCase is one condition of figure (a).
type lossCase struct {
	loss  float64
	burst int
}

func (c lossCase) String() string {
	switch {
	case c.loss == 0:
		return "no loss"
	case c.burst > 1:
		return fmt.Sprintf("%g%% loss in bursts of %d", 100*c.loss, c.burst)
	}
	return fmt.Sprintf("%g%% loss at random", 100*c.loss)
}

// lossFigures is figure (a): one object at 60 Hz, under each loss.
func (e *laneEnv) lossFigures(ctx context.Context) ([]Result, error) {
	cases := pick(e.r, []lossCase{{0, 0}, {0.01, 0}, {0.01, 4}, {0.05, 0}, {0.05, 4}},
		[]lossCase{{0, 0}, {0.05, 0}, {0.05, 4}})
	dur := pick(e.r, 4*time.Second, 800*time.Millisecond)
	reps := pick(e.r, e.r.reps, 1)
	pair, err := newNodePosPair(ctx, e.inA, e.inB, e.w.AddrA, e.w.AddrB)
	if err != nil {
		return nil, fmt.Errorf("node pair: %w", err)
	}
	defer pair.close()
	la, lb, ta, tb := pair.laneSnd, pair.laneRcv, pair.tcpSnd, pair.tcpRcv
	var out []Result
	for _, c := range cases {
		imp := laneWireBase
		imp.Loss, imp.Burst = c.loss, c.burst
		e.w.Set(imp)
		var laneVals, tcpVals [][]float64
		var notes []string
		var laneStall, tcpStall time.Duration
		rerun := 0
		for rep := 0; rep < reps; {
			if err := pair.waitUp(ctx); err != nil {
				return out, fmt.Errorf("%v: %w", c, err)
			}
			ls, ln, err := e.stream(ctx, la, lb, 1, dur)
			if err != nil {
				return out, fmt.Errorf("%v, lane: %w", c, err)
			}
			ts, tn, err := e.stream(ctx, ta, tb, 1, dur)
			if err != nil {
				return out, fmt.Errorf("%v, TCP: %w", c, err)
			}
			e.r.progressf("%v: rep %d/%d: age p99 lane %s, TCP %s; max lane %s, TCP %s; pumps stalled up to %s, %s", c, rep+1, reps,
				fmtDur(ls.P99), fmtDur(ts.P99), fmtDur(ls.Max), fmtDur(ts.Max), fmtDur(ls.Stall), fmtDur(ts.Stall))
			if max(ls.Stall, ts.Stall) > laneStallLimit && rerun < reps {
				rerun++
				e.r.progressf("%v: rep %d again: this process stalled over %s, which the ages would show", c, rep+1, fmtDur(laneStallLimit))
				continue
			}
			rep++
			laneVals, tcpVals = appendCols(laneVals, ls.figures()), appendCols(tcpVals, ts.figures())
			notes = appendNote(notes, ln, tn)
			laneStall, tcpStall = max(laneStall, ls.Stall), max(tcpStall, ts.Stall)
		}
		for i, name := range ageFigureNames[:3] {
			res := Result{Name: fmt.Sprintf("position age, 1 object, %v, %s", c, name), Unit: UnitSeconds,
				Stat: Summarize(laneVals[i])}
			switch {
			case i == 0:
				res.Note = fmt.Sprintf("%s; %v streams of 60 Hz, wire 3 ms ±1 ms each way", laneKindNote, dur)
				if rerun > 0 {
					res.Note += fmt.Sprintf("; %d rep(s) run again after a stall of this process over %s", rerun, fmtDur(laneStallLimit))
				}
			case i == 1 && c.loss >= 0.05 && c.burst > 1:
				res.Note = fmt.Sprintf("a burst loses %d ticks' datagrams in a row: about %d ticks is the lane's floor", c.burst, c.burst+1)
			case i == 1 && c.loss >= 0.05:
				res.Note = "aim: lane within ~40 ms (two ticks + delay), TCP ~200 ms"
			case i == 1 && c.loss == 0:
				res.Note = "aim: lane no worse than TCP"
			}
			if i == 2 {
				res.Note = strings.Join(append(notes, stallNote(laneStall, tcpStall)), "; ")
			}
			out = append(out, res.withBaseline(tcpLinkName, Summarize(tcpVals[i])))
		}
	}
	e.w.Set(laneWireBase)
	return out, nil
}

// rateFigures is figure (b): 40 objects a tick through a wire whose rate is
// half of what the TCP stream puts on it, with a short queue (50 ms of the
// rate, as a tbf qdisc would hold) and, in a full run, the wire's 64 KiB
// default (a bloated access point).
func (e *laneEnv) rateFigures(ctx context.Context) ([]Result, error) {
	const objects = 40
	// One TCP segment a tick: 40 frames of 26 bytes, TCP/IP with
	// timestamps and Ethernet headers.
	offered := 60 * (objects*(lanePosSize+binHeader) + 66) * 8
	rate := offered / 2
	// The lane's datagram a tick (the same 26-byte frames): its header,
	// an item header a message (3 bytes), UDP/IP and Ethernet headers. A
	// little more than TCP's segment, so the wire carries a little less
	// than half of it.
	laneOffered := 60 * (lane.HeaderSize + objects*lane.ItemSize(lanePosSize+binHeader) + 42) * 8
	queues := pick(e.r, []int{rate / 8 / 20, 64 << 10}, []int{rate / 8 / 20})
	dur := pick(e.r, 15*time.Second, 2*time.Second)
	var out []Result
	for _, q := range queues {
		imp := laneWireBase
		imp.Rate, imp.QueueBytes = rate, q
		what := fmt.Sprintf("40 objects, wire at %d kbit/s (half), %s queue", rate/1000, formatValue(float64(q), UnitBytes))
		// Fresh pairs each time, made on a clear wire: a TCP link left with
		// seconds of backlog is of no use after.
		e.w.Set(laneWireBase)
		pair, err := newNodePosPair(ctx, e.inA, e.inB, e.w.AddrA, e.w.AddrB)
		if err != nil {
			return out, fmt.Errorf("node pair: %w", err)
		}
		la, lb, ta, tb := pair.laneSnd, pair.laneRcv, pair.tcpSnd, pair.tcpRcv
		e.w.Set(imp)
		ls, ln, err := e.stream(ctx, la, lb, objects, dur)
		var ts ageSummary
		var tn string
		if err == nil {
			ts, tn, err = e.stream(ctx, ta, tb, objects, dur)
		}
		e.w.Set(laneWireBase)
		pair.close()
		if err != nil {
			return out, fmt.Errorf("%s: %w", what, err)
		}
		e.r.progressf("%s: age p99 lane %s (thirds %s -> %s), TCP %s (thirds %s -> %s); pumps stalled up to %s, %s", what,
			fmtDur(ls.P99), fmtDur(ls.First), fmtDur(ls.Last), fmtDur(ts.P99), fmtDur(ts.First), fmtDur(ts.Last),
			fmtDur(ls.Stall), fmtDur(ts.Stall))
		lf, tf := ls.figures(), ts.figures()
		for i, name := range ageFigureNames {
			res := Result{Name: fmt.Sprintf("position age, %s, %s", what, name), Unit: UnitSeconds,
				Stat: Summarize(lf[i : i+1])}
			switch i {
			case 0:
				res.Note = fmt.Sprintf("one %v stream each; on the wire TCP offers %d kbit/s, the lane %d", dur, offered/1000, laneOffered/1000)
			case 1:
				res.Note = "aim: lane under 100 ms and flat; TCP grows to seconds"
			case 2:
				res.Note = strings.Join(append(appendNote(nil, ln, tn), stallNote(ls.Stall, ts.Stall)), "; ")
			}
			out = append(out, res.withBaseline(tcpLinkName, Summarize(tf[i:i+1])))
		}
	}
	return out, nil
}

// laneThroughputFigures is figure (c).
func laneThroughputFigures(ctx context.Context, r *runner) ([]Result, error) {
	d := pick(r, time.Second, 300*time.Millisecond)
	var laneV, rawV []float64
	// A warm-up of each first (sockets, buffers, the collector's pace).
	for _, raw := range []bool{true, false} {
		if _, err := unreliableThroughput(ctx, raw, d/2); err != nil {
			return nil, err
		}
	}
	for rep := range pick(r, r.reps, 2) {
		raw, err := unreliableThroughput(ctx, true, d)
		if err != nil {
			return nil, fmt.Errorf("raw UDP: %w", err)
		}
		ln, err := unreliableThroughput(ctx, false, d)
		if err != nil {
			return nil, fmt.Errorf("lane: %w", err)
		}
		laneV, rawV = append(laneV, ln), append(rawV, raw)
		r.progressf("unreliable throughput: rep %d: lane %s, raw %s", rep+1,
			formatValue(ln, UnitMsgsPerSec), formatValue(raw, UnitMsgsPerSec))
	}
	res := Result{Name: "unreliable 24 B messages one-way, loopback, delivered", Unit: UnitMsgsPerSec,
		Stat: Summarize(laneV), Higher: true,
		Note: fmt.Sprintf("Node to Node, SendChannel Unreliable, %d a datagram (raw: the same), one sending goroutine, %v a rep; aim: at least 50%%",
			nodePerDatagram, d)}
	return []Result{res.withBaseline(rawUDPName, Summarize(rawV))}, nil
}

// appendCols appends each of v to its column.
func appendCols(cols [][]float64, v []float64) [][]float64 {
	if cols == nil {
		cols = make([][]float64, len(v))
	}
	for i := range v {
		cols[i] = append(cols[i], v[i])
	}
	return cols
}

// appendNote adds lane and TCP notes that are not empty and not there yet.
func appendNote(notes []string, laneNote, tcpNote string) []string {
	for _, n := range []string{laneNote, tcpNote} {
		if n != "" && !slices.Contains(notes, n) {
			notes = append(notes, n)
		}
	}
	return notes
}

// stallNote says how long this process's pumps stalled in the lane's and
// the TCP link's streams: an age near a stall is the machine's, not the
// link's.
func stallNote(lane, tcp time.Duration) string {
	return fmt.Sprintf("pumps stalled up to %s (lane runs), %s (TCP runs)", fmtDur(lane), fmtDur(tcp))
}

func fmtDur(d time.Duration) string { return formatValue(d.Seconds(), UnitSeconds) }
