package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/lanmesh/lanmesh/mesh"
)

// resumeOption turns resumable links (mesh.ResumeConfig) on or off,
// whatever the default.
func resumeOption(on bool) configMod {
	return func(c *mesh.NodeConfig) { c.Resume.Disabled = !on }
}

// runResume measures what resumable links cost (each message journaled,
// acknowledgements on the writes): the binary throughput cases and the
// request round trip, with resume off and on side by side in every rep
// (their order alternating), so that the ratio does not depend on the
// machine's load drifting between two parts.
func runResume(ctx context.Context, r *runner) ([]Result, error) {
	d := pick(r, time.Second, 200*time.Millisecond)
	var out []Result
	for _, c := range tpCases {
		if c.codec != "binary" {
			continue
		}
		res, err := resumeThroughputCase(ctx, r, c, d)
		if err != nil {
			return out, fmt.Errorf("%s: %w", c.name, err)
		}
		out = append(out, res)
	}
	rtt, err := resumeRTT(ctx, r)
	return append(out, rtt...), err
}

func resumeThroughputCase(ctx context.Context, r *runner, c tpCase, d time.Duration) (Result, error) {
	var cl closers
	defer func() { cl.close() }()
	type side struct {
		a, b *mesh.Node
		recv *counter
	}
	var sides [2]side // off, on
	for i := range sides {
		a, b, err := nodePair(ctx, c.codec, resumeOption(i == 1), &cl)
		if err != nil {
			return Result{}, err
		}
		recv := startNodeCounter(b)
		cl.add(recv.stop)
		sides[i] = side{a, b, recv}
	}
	msg, setSeq := c.msg()
	batch := batchOf(c.size)
	rep := 0
	cols, err := r.repeat(ctx, c.name+", resume off and on", func() ([]float64, error) {
		v := make([]float64, 2)
		for k := range 2 {
			i := (k + rep) % 2
			s := sides[i]
			rate, err := nodeRate(ctx, s.a, s.b, s.recv, msg, setSeq, batch, d)
			if err != nil {
				return nil, fmt.Errorf("resume %s: %w", onOff(i == 1), err)
			}
			v[i] = rate
		}
		rep++
		return v, nil
	}, func(v []float64) string {
		return fmt.Sprintf("off %s, on %s", formatValue(v[0], UnitMsgsPerSec), formatValue(v[1], UnitMsgsPerSec))
	})
	if err != nil {
		return Result{}, err
	}
	return Result{Name: c.name + ", resume on", Unit: UnitMsgsPerSec, Stat: Summarize(cols[1]), Higher: true,
		Note: fmt.Sprintf("Send, Xfer every %d, Receive; the baseline: resume off", batch)}.
		withBaseline(c.name+", resume off", Summarize(cols[0])), nil
}

func onOff(on bool) string {
	if on {
		return "on"
	}
	return "off"
}

// resumeRTT is the round trip of Node.Request answered by Node.Reply (as
// the rtt part's), with resume off and on.
func resumeRTT(ctx context.Context, r *runner) ([]Result, error) {
	samples := pick(r, 20000, 2000)
	var cl closers
	defer func() { cl.close() }()
	echoCtx, stopEcho := context.WithCancel(ctx)
	var echoes sync.WaitGroup
	cl.add(func() { stopEcho(); echoes.Wait() })
	var as, bs [2]*mesh.Node
	for i := range as {
		a, b, err := nodePair(ctx, "binary", resumeOption(i == 1), &cl)
		if err != nil {
			return nil, err
		}
		as[i], bs[i] = a, b
		echoRequests(echoCtx, b, &echoes)
	}
	msg := &Bin32{}
	buf := make([]time.Duration, samples)
	np := len(rttPercentiles)
	rep := 0
	cols, err := r.repeat(ctx, "32 B round trip, resume off and on", func() ([]float64, error) {
		v := make([]float64, 2*np)
		for k := range 2 {
			i := (k + rep) % 2
			to := bs[i].ID()
			for j := range buf {
				msg.Seq = uint64(j)
				t0 := time.Now()
				rctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				_, err := as[i].Request(rctx, to, msg)
				cancel()
				if err != nil {
					return nil, fmt.Errorf("resume %s: %w", onOff(i == 1), err)
				}
				buf[j] = time.Since(t0)
			}
			slices.Sort(buf)
			for pi, p := range rttPercentiles {
				v[i*np+pi] = Percentile(buf, p.p).Seconds()
			}
		}
		rep++
		return v, nil
	}, func(v []float64) string {
		return fmt.Sprintf("p50: off %s, on %s", formatValue(v[0], UnitSeconds), formatValue(v[np], UnitSeconds))
	})
	if err != nil {
		return nil, err
	}
	var out []Result
	for pi, p := range rttPercentiles {
		res := Result{Name: fmt.Sprintf("32 B, Node.Request/Reply, resume on, %s", p.name), Unit: UnitSeconds,
			Stat: Summarize(cols[np+pi])}
		if pi == 0 {
			res.Note = fmt.Sprintf("%d samples a rep; the baseline: resume off", samples)
		}
		out = append(out, res.withBaseline(fmt.Sprintf("32 B, Node.Request/Reply, resume off, %s", p.name), Summarize(cols[pi])))
	}
	return out, nil
}
