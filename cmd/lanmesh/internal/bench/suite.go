package bench

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime"
	"slices"
	"strings"
	"time"
)

// Options configure a run.
type Options struct {
	// Quick runs every part briefly (a smoke test: under a minute in all);
	// its figures are rough.
	Quick bool
	// Only names the parts to run (see Parts); empty runs them all.
	Only []string
	// Reps is how many measured repetitions each figure gets after its
	// warm-up. Default 5, or 2 with Quick.
	Reps int
	// Progress receives a line per part and repetition; nil discards.
	Progress io.Writer
	// Command is recorded in the report ("lanmesh bench --quick").
	Command string

	// NodeExe, NodeArgs and NodeEnv say how to run a node in a namespace
	// host: the program NodeExe with NodeArgs, then one argument (the
	// node's spec), and NodeEnv added to the environment. That program
	// must call RunNode with the spec. Without NodeExe the namespace parts
	// are skipped.
	NodeExe  string
	NodeArgs []string
	NodeEnv  []string
}

// ErrUnknownPart is returned by Run for a name in Only that is no part.
var ErrUnknownPart = errors.New("bench: unknown part")

// errSkip marks a part that cannot run here; its text says why.
type skipError struct{ why string }

func (e *skipError) Error() string { return e.why }

func skip(format string, args ...any) error { return &skipError{fmt.Sprintf(format, args...)} }

// part is one named piece of the suite.
type part struct {
	name, title string
	run         func(ctx context.Context, r *runner) ([]Result, error)
}

// parts is the suite, in the order it runs: the in-process parts first,
// then those in namespaces.
var parts = []part{
	{"throughput", "one-way throughput between two nodes, loopback TCP", runThroughput},
	{"rtt", "round trip of a 32-byte message, loopback TCP", runRTT},
	{"fanout", "one node broadcasting to N-1 peers, loopback TCP", runFanout},
	{"keyed", "throughput and round trip with a mesh key", runKeyed},
	{"resume", "throughput and round trip with resumable links off and on, side by side", runResume},
	{"cost", "memory, goroutines and allocations", runCost},
	{"hub", "two sites through an embedded NATS hub: round trip and presence, loopback TCP", runHub},
	{"discovery", "start of a node to Found on another host (namespaces)", runDiscovery},
	{"mesh", "N nodes, one per host, to a full mesh (namespaces)", runMeshForm},
	{"liveness", "a lost peer noticed (namespaces)", runLiveness},
	{"lane", "the UDP lane beside the TCP link: position age under loss and a slow wire (namespaces), throughput", runLane},
}

// Parts returns the names of the suite's parts, in the order they run.
func Parts() []string {
	names := make([]string, len(parts))
	for i, p := range parts {
		names[i] = p.name
	}
	return names
}

// runner carries a run's settings to the parts.
type runner struct {
	opts     Options
	reps     int
	progress io.Writer
	part     string
}

// progressf writes a progress line, prefixed with the part's name.
func (r *runner) progressf(format string, args ...any) {
	if r.progress != nil {
		fmt.Fprintf(r.progress, "[%s] %s\n", r.part, fmt.Sprintf(format, args...))
	}
}

// pick returns full, or quick in quick mode.
func pick[T any](r *runner, full, quick T) T {
	if r.opts.Quick {
		return quick
	}
	return full
}

// Run runs the parts Options select and returns their results. A part that
// fails is recorded in the report (its Error) and the others still run;
// Run then returns an error naming the failed parts with the report. A
// part that cannot run here is recorded as skipped. When ctx ends, Run
// stops at once (what each part built is removed) and returns ctx's error.
func Run(ctx context.Context, opts Options) (*Report, error) {
	for _, name := range opts.Only {
		if !slices.Contains(Parts(), name) {
			return nil, fmt.Errorf("%w %q: the parts are %s", ErrUnknownPart, name, strings.Join(Parts(), ", "))
		}
	}
	r := &runner{opts: opts, reps: opts.Reps, progress: opts.Progress}
	if r.reps <= 0 {
		r.reps = pick(r, 5, 2)
	}
	rep := &Report{
		Command:   opts.Command,
		Started:   time.Now().UTC().Truncate(time.Second),
		GoVersion: runtime.Version(),
		GOOS:      runtime.GOOS,
		GOARCH:    runtime.GOARCH,
		CPUs:      runtime.NumCPU(),
		Quick:     opts.Quick,
		Reps:      r.reps,
	}
	start := time.Now()
	for _, p := range parts {
		if len(opts.Only) > 0 && !slices.Contains(opts.Only, p.name) {
			continue
		}
		if err := ctx.Err(); err != nil {
			return rep, err
		}
		r.part = p.name
		r.progressf("%s", p.title)
		t0 := time.Now()
		res, err := p.run(ctx, r)
		pr := PartResult{Name: p.name, Title: p.title, Results: res, Seconds: time.Since(t0).Seconds()}
		var se *skipError
		switch {
		case err == nil:
		case errors.As(err, &se):
			pr.Skipped = se.why
			r.progressf("skipped: %s", se.why)
		case ctx.Err() != nil:
			rep.Parts = append(rep.Parts, pr)
			rep.Seconds = time.Since(start).Seconds()
			return rep, ctx.Err()
		default:
			pr.Error = err.Error()
			r.progressf("failed: %v", err)
		}
		r.progressf("done in %.1fs", pr.Seconds)
		rep.Parts = append(rep.Parts, pr)
	}
	rep.Seconds = time.Since(start).Seconds()
	if failed := rep.Failed(); len(failed) > 0 {
		var names []string
		for _, p := range failed {
			names = append(names, p.Name)
		}
		return rep, fmt.Errorf("bench: %d part(s) failed: %s", len(failed), strings.Join(names, ", "))
	}
	return rep, nil
}

// repeat runs a warm-up (its result discarded) then r.reps measurements of
// f, which returns one value per figure; it returns each figure's values.
func (r *runner) repeat(ctx context.Context, what string, f func() ([]float64, error), show func([]float64) string) ([][]float64, error) {
	return r.repeatN(ctx, what, r.reps, f, show)
}

// repeatN is repeat with n measurements.
func (r *runner) repeatN(ctx context.Context, what string, n int, f func() ([]float64, error), show func([]float64) string) ([][]float64, error) {
	if _, err := f(); err != nil {
		return nil, fmt.Errorf("%s: warm-up: %w", what, err)
	}
	var cols [][]float64
	for i := range n {
		if err := ctx.Err(); err != nil {
			return nil, err
		}
		v, err := f()
		if err != nil {
			return nil, fmt.Errorf("%s: rep %d: %w", what, i+1, err)
		}
		if cols == nil {
			cols = make([][]float64, len(v))
		}
		for j := range v {
			cols[j] = append(cols[j], v[j])
		}
		r.progressf("%s: rep %d/%d: %s", what, i+1, n, show(v))
	}
	return cols, nil
}
