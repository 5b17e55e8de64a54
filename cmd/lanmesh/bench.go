package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/lanmesh/lanmesh/cmd/lanmesh/internal/bench"
)

// benchNodeArg, as the first argument of "lanmesh bench", makes this
// program a node of the benchmark's namespace parts: the suite re-executes
// the lanmesh binary that way inside each host. It is not for people.
const benchNodeArg = "__node"

func runBench(ctx context.Context, args []string, std stdio) error {
	stdout, stderr := std.out, std.err
	if len(args) > 0 && args[0] == benchNodeArg {
		return bench.RunNode(ctx, args[1:], stdout, stderr)
	}
	summary := "Measure lanmesh on this machine, each figure beside a baseline measured in the same run\n" +
		"(raw TCP, or the configured limit), and print a table. The parts are:\n  " +
		strings.Join(bench.Parts(), ", ") + ".\n" +
		"In-process parts use loopback only. The discovery, mesh and liveness parts build network\n" +
		"namespaces (as root, with ip(8)) and remove them after; elsewhere they are skipped."
	fs := newFlags("bench", summary, stderr)
	quick := fs.Bool("quick", false, "run every part briefly (under a minute): a smoke test, rough figures")
	var only listFlag
	fs.Var(&only, "only", "run only this part (repeatable, or comma-separated)")
	reps := fs.Int("reps", 0, "measured repetitions of each figure after the warm-up (default 5, 2 with --quick)")
	jsonPath := fs.String("json", "", "also write the results as JSON to this file")
	chartPath := fs.String("chart", "", "also write a chart of throughput and round trip (SVG) to this file")
	markdown := fs.Bool("markdown", false, "print the table in Markdown")
	if err := parse(fs, args); err != nil {
		return err
	}
	opts := bench.Options{
		Quick:    *quick,
		Only:     only,
		Reps:     *reps,
		Progress: stderr,
		Command:  "lanmesh bench " + strings.Join(args, " "),
	}
	if exe, err := os.Executable(); err == nil {
		opts.NodeExe, opts.NodeArgs = exe, []string{"bench", benchNodeArg}
	}
	rep, runErr := bench.Run(ctx, opts)
	if errors.Is(runErr, bench.ErrUnknownPart) {
		fmt.Fprintln(stderr, runErr)
		return errUsage
	}
	if rep == nil {
		return runErr
	}
	write := bench.WriteTable
	if *markdown {
		write = bench.WriteMarkdown
	}
	if err := write(stdout, rep); err != nil {
		return err
	}
	for _, out := range []struct {
		path  string
		write func(io.Writer, *bench.Report) error
	}{{*jsonPath, bench.WriteJSON}, {*chartPath, bench.WriteChart}} {
		if out.path == "" {
			continue
		}
		var b bytes.Buffer
		if err := out.write(&b, rep); err != nil {
			return err
		}
		if err := os.WriteFile(out.path, b.Bytes(), 0o644); err != nil {
			return err
		}
		fmt.Fprintf(stderr, "wrote %s\n", out.path)
	}
	if runErr != nil && ctx.Err() != nil {
		return fmt.Errorf("interrupted (what was measured is above): %w", runErr)
	}
	return runErr
}
