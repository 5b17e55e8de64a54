// Command lanmesh joins and inspects lanmesh meshes. Run "lanmesh help" for
// the commands.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/lanmesh/lanmesh/safetext"
)

// stdio is a command's standard input and outputs, so that tests can run
// commands in the test process.
type stdio struct {
	in       io.Reader
	out, err io.Writer
}

type command struct {
	name  string
	short string
	run   func(ctx context.Context, args []string, std stdio) error
}

func commands() []command {
	return []command{
		{"demo", "show lanmesh at work in this process, on loopback, then exit", runDemo},
		{"run", "join a mesh; print peers and messages until interrupted", runRun},
		{"peers", "list the nodes of a mesh, without joining it", runPeers},
		{"browse", "list every node of every mesh heard, without joining", runBrowse},
		{"doctor", "say why peers are not found, with the fix", runDoctor},
		{"chat", "chat, line by line, with every node of the mesh", runChat},
		{"watch", "print the traffic log, live, one line per message", runWatch},
		{"web", "serve a live page of the mesh (graph, peers, traffic) on 127.0.0.1", runWeb},
		{"hub", "run a hub that joins the meshes of several LANs (sites)", runHub},
		{"keygen", "print a new mesh key (for --key-file on every node)", runKeygen},
		{"bench", "measure lanmesh on this machine against raw TCP", runBench},
		{"version", "print the version and build of this program", runVersion},
	}
}

// errUsage marks an error already explained to the user with usage text.
var errUsage = errors.New("usage")

// errReported marks a failure the command has already printed: exit
// status 1, and nothing more.
var errReported = errors.New("reported")

// usageError reports a bad flag value in one line, with where to find
// the flags, and returns errUsage (exit status 2). The whole usage is for
// flags that do not parse.
func usageError(fs *flag.FlagSet, err error) error {
	fmt.Fprintf(fs.Output(), "%s: %v\nRun \"%s --help\" for the flags.\n", fs.Name(), err, fs.Name())
	return errUsage
}

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run runs the command that args name and returns the exit status: 0 for
// success, 1 for a failure, 2 for a usage error.
func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) int {
	if len(args) > 0 && (args[0] == "--version" || args[0] == "-version") {
		args = []string{"version"}
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(stdout)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	for _, c := range commands() {
		if c.name == args[0] {
			err := c.run(ctx, args[1:], stdio{in: stdin, out: stdout, err: stderr})
			switch {
			case err == nil:
				return 0
			case errors.Is(err, flag.ErrHelp):
				return 0
			case errors.Is(err, errUsage):
				return 2
			case errors.Is(err, errReported):
				return 1
			}
			// An error may quote a peer (a name, a reason): escaped.
			fmt.Fprintf(stderr, "lanmesh %s: %s\n", c.name, safetext.Line(err.Error()))
			return 1
		}
	}
	fmt.Fprintf(stderr, "lanmesh: unknown command %q\n\n", args[0])
	usage(stderr)
	return 2
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "lanmesh finds programs on a LAN and lets them talk, with no server.")
	fmt.Fprintln(w, "\nUsage: lanmesh <command> [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-8s %s\n", c.name, c.short)
	}
	fmt.Fprintln(w, "\nRun \"lanmesh <command> --help\" for a command's flags.")
}

// newFlags returns a flag set that reports errors to stderr and whose -h
// prints the command's usage.
func newFlags(name, summary string, stderr io.Writer) *flag.FlagSet {
	fs := flag.NewFlagSet("lanmesh "+name, flag.ContinueOnError)
	fs.SetOutput(stderr)
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: lanmesh %s [flags]\n\n%s\n\nFlags:\n", name, summary)
		fs.PrintDefaults()
	}
	return fs
}

// parse parses args, mapping a flag error to errUsage (already reported).
func parse(fs *flag.FlagSet, args []string) error {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return err
		}
		return errUsage
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(fs.Output(), "unexpected arguments: %v\n", fs.Args())
		fs.Usage()
		return errUsage
	}
	return nil
}
