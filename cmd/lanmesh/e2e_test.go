//go:build linux

package main

// End-to-end tests: the real binaries (lanmesh and the examples), built
// once per test run, run in the hosts of a LAN of network namespaces with
// their default settings (broadcast and mDNS on every interface), which
// never leave the namespaces. They need root; netlab.New skips them
// otherwise.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lanmesh/lanmesh/lanmeshtest/netlab"
)

// e2eWait bounds every wait for a line; the things waited for take well
// under a second.
const e2eWait = 20 * time.Second

var (
	buildOnce sync.Once
	buildDir  string
	buildErr  error
)

func TestMain(m *testing.M) {
	code := m.Run()
	if buildDir != "" {
		os.RemoveAll(buildDir)
	}
	os.Exit(code)
}

// binary returns the path of a program of this module, built (with the
// others) on first use.
func binary(t *testing.T, name string) string {
	t.Helper()
	buildOnce.Do(func() {
		goTool, err := exec.LookPath("go")
		if err != nil {
			goTool = "/usr/local/go/bin/go"
		}
		if buildDir, buildErr = os.MkdirTemp("", "lanmesh-e2e-"); buildErr != nil {
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, goTool, "build", "-o", buildDir+string(filepath.Separator),
			"github.com/lanmesh/lanmesh/cmd/lanmesh",
			"github.com/lanmesh/lanmesh/examples/chat",
			"github.com/lanmesh/lanmesh/examples/cpumon",
			"github.com/lanmesh/lanmesh/examples/game")
		if out, err := cmd.CombinedOutput(); err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return filepath.Join(buildDir, name)
}

// proc is a program running in a host of the lab.
type proc struct {
	t     *testing.T
	name  string // host/program, for messages
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan string // stdout, closed at its end
	done  chan struct{}

	// mu guards seen and stderr.
	mu     sync.Mutex
	seen   []string // every stdout line, for failure reports
	stderr bytes.Buffer
}

// startIn runs bin in host h; t.Cleanup kills it if it still runs.
func startIn(t *testing.T, h *netlab.Host, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{t: t, name: h.Name + "/" + filepath.Base(bin), lines: make(chan string, 4096), done: make(chan struct{})}
	p.cmd = h.Command(context.Background(), binary(t, bin), args...)
	p.cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	p.cmd.Stderr = writerFunc(func(b []byte) (int, error) {
		p.mu.Lock()
		defer p.mu.Unlock()
		return p.stderr.Write(b)
	})
	var err error
	if p.stdin, err = p.cmd.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	stdout, err := p.cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("%s: %v", p.name, err)
	}
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			p.mu.Lock()
			p.seen = append(p.seen, sc.Text())
			p.mu.Unlock()
			select {
			case p.lines <- sc.Text():
			default: // nobody reads: the line is still in seen
			}
		}
		close(p.lines)
		p.cmd.Wait()
		close(p.done)
	}()
	t.Cleanup(func() {
		p.stdin.Close()
		select {
		case <-p.done:
			return
		default:
		}
		p.cmd.Process.Kill()
		select {
		case <-p.done:
		case <-time.After(10 * time.Second):
			t.Errorf("%s: not reaped after SIGKILL", p.name)
		}
	})
	return p
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }

func (p *proc) report() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return fmt.Sprintf("%s stdout:\n  %s\n%s stderr:\n%s", p.name, strings.Join(p.seen, "\n  "), p.name, p.stderr.String())
}

// waitLine returns the first line from now on that match accepts, failing
// the test if none comes within e2eWait.
func (p *proc) waitLine(match func(string) bool) string {
	p.t.Helper()
	deadline := time.NewTimer(e2eWait)
	defer deadline.Stop()
	for {
		select {
		case line, ok := <-p.lines:
			if !ok {
				p.t.Fatalf("%s ended before the line it was waited for\n%s", p.name, p.report())
			}
			if match(line) {
				return line
			}
		case <-deadline.C:
			p.t.Fatalf("%s: no such line within %v\n%s", p.name, e2eWait, p.report())
		}
	}
}

// waitFor returns the first line printed so far, or within e2eWait, that
// holds substr. Unlike waitLine it looks at every line since the start, so
// that the order of unrelated lines does not matter.
func (p *proc) waitFor(substr string) string {
	p.t.Helper()
	deadline := time.Now().Add(e2eWait)
	for {
		for _, l := range p.seenLines() {
			if strings.Contains(l, substr) {
				return l
			}
		}
		select {
		case <-p.done:
			p.t.Fatalf("%s ended without printing %q\n%s", p.name, substr, p.report())
		default:
		}
		if time.Now().After(deadline) {
			p.t.Fatalf("%s: no %q within %v\n%s", p.name, substr, e2eWait, p.report())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// exit waits for the program to end and returns its exit status.
func (p *proc) exit() int {
	p.t.Helper()
	select {
	case <-p.done:
		return p.cmd.ProcessState.ExitCode()
	case <-time.After(e2eWait):
		p.t.Fatalf("%s did not exit\n%s", p.name, p.report())
		return -1
	}
}

func (p *proc) interrupt() { p.cmd.Process.Signal(os.Interrupt) }

// TestE2EPeers: "lanmesh peers" on one host lists the nodes that "lanmesh
// run" runs on three others without joining (their runs never see it), and
// a run that is interrupted leaves with its reason.
func TestE2EPeers(t *testing.T) {
	lab := netlab.New(t, 4)
	var runs []*proc
	for _, h := range lab.Hosts[:3] {
		p := startIn(t, h, "lanmesh", "run", "--mesh", "e2e")
		p.waitFor("node " + h.Name + " (")
		runs = append(runs, p)
	}
	ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
	defer cancel()
	cmd := lab.Hosts[3].Command(ctx, binary(t, "lanmesh"), "peers", "--mesh", "e2e", "--json", "--wait", "2s")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("peers: %v\n%s", err, stderr.String())
	}
	var peers []peerJSON
	if err := json.Unmarshal(out, &peers); err != nil {
		t.Fatalf("peers --json: %v\n%s", err, out)
	}
	var names []string
	for _, p := range peers {
		names = append(names, p.Name)
		if p.State != "reachable" || p.RTTMics <= 0 || !strings.HasPrefix(p.Addr, lab.Subnet.Addr().String()[:len("10.77.")]) {
			t.Errorf("%+v: want reachable, a connection time, a lab address", p)
		}
	}
	if !slices.Equal(names, []string{"h1", "h2", "h3"}) {
		t.Errorf("peers found %v, want h1 h2 h3\n%s", names, out)
	}
	for _, r := range runs {
		for _, l := range r.seenLines() {
			if strings.Contains(l, "h4") {
				t.Errorf("%s saw peers: %s", r.name, l)
			}
		}
	}

	// Another mesh is empty: exit status 1, and why.
	cmd = lab.Hosts[3].Command(ctx, binary(t, "lanmesh"), "peers", "--mesh", "nobody", "--wait", "500ms")
	stderr.Reset()
	cmd.Stderr = &stderr
	if err := cmd.Run(); !isExit(err, 1) || !strings.Contains(stderr.String(), `no node of mesh "nobody" found`) {
		t.Errorf("peers of an empty mesh: %v, %q", err, stderr.String())
	}

	// Ctrl-C: the others see the reason.
	runs[0].interrupt()
	if code := runs[0].exit(); code != 0 {
		t.Errorf("run after Ctrl-C: exit %d\n%s", code, runs[0].report())
	}
	for _, r := range runs[1:] {
		if l := r.waitFor("left      h1 ("); !strings.Contains(l, "peer closed the link (the peer's reason: interrupted)") {
			t.Errorf("%s did not see why h1 left: %s", r.name, l)
		}
	}
}

func (p *proc) seenLines() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return slices.Clone(p.seen)
}

func isExit(err error, code int) bool {
	var ee *exec.ExitError
	return errors.As(err, &ee) && ee.ExitCode() == code
}

// waitTable waits for a whole cpumon table (-plain) whose hosts are want.
func waitTable(p *proc, want ...string) {
	p.t.Helper()
	var rows []string
	p.waitLine(func(l string) bool {
		switch f := strings.Fields(l); {
		case l == "--":
			slices.Sort(rows)
			got := rows
			rows = nil
			return slices.Equal(got, want)
		case len(f) == 0, strings.HasPrefix(l, "cpumon: "), f[0] == "HOST":
		default:
			rows = append(rows, f[0])
		}
		return false
	})
}

// TestE2ECPUMon: cpumon on three hosts; each shows all three machines, and
// a machine that leaves drops out of the others' tables.
func TestE2ECPUMon(t *testing.T) {
	lab := netlab.New(t, 3)
	var mons []*proc
	for _, h := range lab.Hosts {
		mons = append(mons, startIn(t, h, "cpumon", "-plain", "-interval", "200ms", "-mesh", "e2e-cpumon"))
	}
	for _, m := range mons {
		waitTable(m, "h1", "h2", "h3")
	}
	mons[2].interrupt()
	if code := mons[2].exit(); code != 0 {
		t.Errorf("cpumon after Ctrl-C: exit %d", code)
	}
	for _, m := range mons[:2] {
		waitTable(m, "h1", "h2")
	}
}

// TestE2EGame: two game bots on two hosts see each other join, play a
// round, and print the same final scores.
func TestE2EGame(t *testing.T) {
	lab := netlab.New(t, 2)
	var players []*proc
	for _, h := range lab.Hosts {
		players = append(players, startIn(t, h, "game", "-bot", "-mesh", "e2e-game",
			"-tick", "20ms", "-pause", "300ms", "-limit", "30s"))
	}
	for _, p := range players {
		if code := p.exit(); code != 0 {
			t.Fatalf("%s: exit %d\n%s", p.name, code, p.report())
		}
	}
	final := func(lines []string) (found string, n int) {
		for _, l := range lines {
			if strings.HasPrefix(l, "final 1 ") {
				found, n = l, n+1
			}
		}
		return found, n
	}
	f0, n0 := final(players[0].seenLines())
	f1, n1 := final(players[1].seenLines())
	if n0 != 1 || n1 != 1 || f0 != f1 || !strings.Contains(f0, " h1=") || !strings.Contains(f0, " h2=") {
		t.Errorf("final scores %q and %q\n%s\n%s", f0, f1, players[0].report(), players[1].report())
	}
	for i, me := range []string{"h1", "h2"} {
		if !slices.Contains(players[1-i].seenLines(), "join "+me) {
			t.Errorf("the other never saw %s join\n%s", me, players[1-i].report())
		}
	}
}

// TestE2EChat: a line typed in "lanmesh chat" on one host reaches the
// example chat on two others, and a line typed there comes back; the end
// of input leaves the mesh gracefully.
func TestE2EChat(t *testing.T) {
	lab := netlab.New(t, 3)
	lm := startIn(t, lab.Hosts[0], "lanmesh", "chat", "--mesh", "e2e-chat")
	ex := []*proc{
		startIn(t, lab.Hosts[1], "chat", "-mesh", "e2e-chat"),
		startIn(t, lab.Hosts[2], "chat", "-mesh", "e2e-chat"),
	}
	lm.waitFor("* h2#")
	lm.waitFor("* h3#")
	ex[0].waitFor("* h1 joined")
	ex[1].waitFor("* h1 joined")
	fmt.Fprintln(lm.stdin, "hello from h1")
	for _, p := range ex {
		p.waitFor("h1: hello from h1")
	}
	ex[0].waitFor("* h3 joined")
	fmt.Fprintln(ex[0].stdin, "hi back from h2")
	lm.waitFor("h2: hi back from h2")
	ex[1].waitFor("h2: hi back from h2")

	lm.stdin.Close()
	if code := lm.exit(); code != 0 {
		t.Errorf("lanmesh chat at the end of input: exit %d\n%s", code, lm.report())
	}
	for _, p := range ex {
		p.waitFor("* h1 left: mesh: peer closed the link (the peer's reason: chat ended)") // the example's words
	}
}
