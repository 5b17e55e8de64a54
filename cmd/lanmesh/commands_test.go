package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
)

// These tests run the commands in the test process, on loopback only
// (--loopback: discovery on lo via 127.255.255.255, a free beacon port).

// output is a command's stdout or stderr, safe to read while it is written.
type output struct {
	mu  sync.Mutex // guards buf
	buf strings.Builder
}

func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.Write(p)
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.buf.String()
}

// waitFor waits until the output holds want, failing the test after
// timeout.
func (o *output) waitFor(t *testing.T, timeout time.Duration, want string) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !strings.Contains(o.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("no %q within %v in:\n%s", want, timeout, o.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// started is a command running on a goroutine of the test.
type started struct {
	out, err output
	stdin    *io.PipeWriter
	cancel   context.CancelFunc
	done     chan int
}

// start runs lanmesh with args until stop; its stdin is a pipe.
func start(t *testing.T, args ...string) *started {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	r, w := io.Pipe()
	s := &started{stdin: w, cancel: cancel, done: make(chan int, 1)}
	go func() {
		s.done <- run(ctx, args, r, &s.out, &s.err)
		r.Close()
	}()
	t.Cleanup(func() { s.stop(t) })
	return s
}

// stop interrupts the command (as Ctrl-C does) and returns its exit status.
func (s *started) stop(t *testing.T) int {
	t.Helper()
	s.cancel()
	s.stdin.Close()
	return s.wait(t)
}

func (s *started) wait(t *testing.T) int {
	t.Helper()
	select {
	case code := <-s.done:
		s.done <- code // for a second call
		return code
	case <-time.After(15 * time.Second):
		t.Fatalf("command did not end; stdout:\n%s\nstderr:\n%s", s.out.String(), s.err.String())
		return -1
	}
}

func freeUDP(t *testing.T) string {
	t.Helper()
	p, err := freeUDPPort()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprint(p)
}

func TestCommandsOnLoopback(t *testing.T) {
	leaktest.Check(t)
	mesh := fmt.Sprintf("cmdtest-%d", time.Now().UnixNano())
	common := []string{"--loopback", "--beacon-port", freeUDP(t), "--mesh", mesh, "--interval", "200ms"}
	with := func(cmd string, extra ...string) []string {
		return append(append([]string{cmd}, common...), extra...)
	}
	runner := start(t, with("run", "--name", "runner")...)
	runner.out.waitFor(t, 5*time.Second, `node runner (`)
	chat := start(t, with("chat", "--name", "chatter")...)
	watch := start(t, with("watch", "--name", "watcher")...)
	chat.out.waitFor(t, 10*time.Second, "* runner joined")
	chat.out.waitFor(t, 10*time.Second, "* watcher joined")
	runner.out.waitFor(t, 10*time.Second, "joined    chatter (")
	runner.out.waitFor(t, 10*time.Second, "joined    watcher (")

	// peers lists the three, as JSON.
	code, out, errOut := runCmd(t, with("peers", "--name", "lister", "--json", "--wait", "2s")...)
	if code != 0 {
		t.Fatalf("peers: exit %d: %s", code, errOut)
	}
	var got []peerJSON
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("peers --json: %v\n%s", err, out)
	}
	var names []string
	for _, p := range got {
		names = append(names, p.Name)
		if p.State != "linked" || p.RTTMics <= 0 || p.FoundBy == "none" || len(p.ID) != 36 || p.Addr == "" {
			t.Errorf("peer %+v: want linked, with an RTT, a source, an id and an address", p)
		}
	}
	if want := []string{"chatter", "runner", "watcher"}; !slices.Equal(names, want) {
		t.Errorf("peers found %v, want %v", names, want)
	}
	runner.out.waitFor(t, 10*time.Second, "lister (")
	runner.out.waitFor(t, 10*time.Second, "the peer's reason: lanmesh peers is done")

	// A table, too.
	code, out, _ = runCmd(t, with("peers", "--name", "lister2", "--wait", "1s")...)
	if code != 0 || !strings.HasPrefix(out, "NAME ") || !strings.Contains(out, "\nrunner ") {
		t.Errorf("peers table: exit %d:\n%s", code, out)
	}

	// A chat line reaches every node; run prints it, watch logs it.
	fmt.Fprintln(chat.stdin, "hello, mesh")
	runner.out.waitFor(t, 5*time.Second, "message   chatter (")
	runner.out.waitFor(t, 5*time.Second, "ChatLine {Text:hello, mesh}")
	watch.out.waitFor(t, 5*time.Second, "in  chatter")
	fmt.Fprintln(chat.stdin, "/to runner for you only")
	runner.out.waitFor(t, 5*time.Second, "ChatLine {Text:for you only}")
	fmt.Fprintln(chat.stdin, "/to nobody hi")
	chat.out.waitFor(t, 5*time.Second, `no linked peer is called "nobody"`)

	// Ctrl-C on run: the others see why it left.
	if code := runner.stop(t); code != 0 {
		t.Errorf("run: exit %d: %s", code, runner.err.String())
	}
	chat.out.waitFor(t, 5*time.Second, "* runner left: mesh: peer closed the link (the peer's reason: interrupted)")
	watch.out.waitFor(t, 5*time.Second, "# left      runner")

	// The end of chat's input ends it gracefully.
	chat.stdin.Close()
	if code := chat.wait(t); code != 0 {
		t.Errorf("chat: exit %d: %s", code, chat.err.String())
	}
	watch.out.waitFor(t, 5*time.Second, "the peer's reason: chat ended")
	if code := watch.stop(t); code != 0 {
		t.Errorf("watch: exit %d", code)
	}
}

func TestPeersNoneFound(t *testing.T) {
	leaktest.Check(t)
	code, _, errOut := runCmd(t, "peers", "--loopback", "--beacon-port", freeUDP(t), "--mesh", "nobody-here", "--wait", "300ms")
	if code != 1 || !strings.Contains(errOut, `lanmesh peers: no node of mesh "nobody-here" found within 300ms`) {
		t.Errorf("exit %d, stderr %q", code, errOut)
	}
	if code, out, _ := runCmd(t, "peers", "--loopback", "--beacon-port", freeUDP(t), "--mesh", "nobody-here", "--wait", "100ms", "--json"); code != 1 || strings.TrimSpace(out) != "[]" {
		t.Errorf("--json: exit %d, %q", code, out)
	}
}

func TestPortInUse(t *testing.T) {
	leaktest.Check(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
	code, _, errOut := runCmd(t, "run", "--loopback", "--beacon-port", freeUDP(t), "--port", port)
	if want := "lanmesh run: port " + port + " is in use (--port)\n"; code != 1 || errOut != want {
		t.Errorf("exit %d, stderr %q, want %q", code, errOut, want)
	}
}
