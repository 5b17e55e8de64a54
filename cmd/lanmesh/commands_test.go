package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
	meshpkg "github.com/lanmesh/lanmesh/mesh"
	"github.com/lanmesh/lanmesh/message"
)

// secretMsg is a type that the commands do not know.
type secretMsg struct {
	Data string `json:"data" msgpack:"data"`
}

func (m secretMsg) AppendBinary(b []byte) ([]byte, error) { return append(b, m.Data...), nil }

func (m *secretMsg) UnmarshalBinary(p []byte) error {
	m.Data = string(p)
	return nil
}

func mustAtoi(t *testing.T, s string) int {
	t.Helper()
	n, err := strconv.Atoi(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

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
	chat.out.waitFor(t, 10*time.Second, "* runner#")
	chat.out.waitFor(t, 10*time.Second, "* watcher#")
	runner.out.waitFor(t, 10*time.Second, "joined    chatter (")
	runner.out.waitFor(t, 10*time.Second, "joined    watcher (")

	// peers lists the three, as JSON, without joining: nobody sees it.
	look := []string{"--loopback", "--beacon-port", common[2], "--mesh", mesh}
	code, out, errOut := runCmd(t, append([]string{"peers", "--json", "--wait", "1500ms"}, look...)...)
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
		if p.State != "reachable" || p.RTTMics <= 0 || p.FoundBy != "broadcast" || len(p.ID) != 36 || p.Addr == "" || p.Codec != "binary" {
			t.Errorf("peer %+v: want reachable, with a connection time, a source, an id, an address, a codec", p)
		}
	}
	if want := []string{"chatter", "runner", "watcher"}; !slices.Equal(names, want) {
		t.Errorf("peers found %v, want %v", names, want)
	}

	// A table, too; and browse lists the mesh.
	code, out, _ = runCmd(t, append([]string{"peers", "--wait", "1100ms"}, look...)...)
	if code != 0 || !strings.HasPrefix(out, "NAME ") || !strings.Contains(out, "\nrunner ") {
		t.Errorf("peers table: exit %d:\n%s", code, out)
	}
	code, out, _ = runCmd(t, "browse", "--loopback", "--beacon-port", common[2], "--wait", "1100ms")
	if code != 0 || !strings.Contains(out, mesh+"  runner ") {
		t.Errorf("browse: exit %d:\n%s", code, out)
	}

	// A message of a type watch does not know: shown by code and size.
	reg := message.NewRegistry()
	message.MustRegister[secretMsg](reg, 0x77, "Secret")
	cfg := meshpkg.DefaultNodeConfig()
	cfg.UseLoopback(mustAtoi(t, common[2]))
	cfg.Mesh, cfg.Name, cfg.Registry = mesh, "sender", reg
	cfg.Link.AutoFlush = true
	sender, err := meshpkg.NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	watch.out.waitFor(t, 10*time.Second, "joined    sender (")
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(watch.out.String(), "unknown code 0x77") && time.Now().Before(deadline) {
		sender.Broadcast(&secretMsg{Data: "abc"})
		time.Sleep(50 * time.Millisecond)
	}
	watch.out.waitFor(t, time.Second, "in  sender           unknown code 0x77    5")
	sender.Close()

	// Nobody saw peers or browse join.
	for _, c := range []*started{runner, chat, watch} {
		if o := c.out.String(); strings.Contains(o, "lister") || strings.Count(o, "joined") > 3 {
			t.Errorf("a looker left a trace:\n%s", o)
		}
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
	chat.out.waitFor(t, 5*time.Second, "* runner#")
	chat.out.waitFor(t, 5*time.Second, " left: peer closed the link (the peer's reason: interrupted)")
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

// TestDoctorOnLoopback: doctor, in this process and on loopback, finds a
// node of another codec (exit 1) and then, that node gone, a healthy mesh
// (exit 0); its JSON says the same.
func TestDoctorOnLoopback(t *testing.T) {
	leaktest.Check(t)
	port := freeUDP(t)
	mesh := fmt.Sprintf("doctortest-%d", time.Now().UnixNano())
	common := []string{"--loopback", "--beacon-port", port, "--mesh", mesh}
	good := start(t, append([]string{"run", "--name", "good"}, common...)...)
	bad := start(t, append([]string{"run", "--name", "bad", "--codec", "json"}, common...)...)
	good.out.waitFor(t, 5*time.Second, "node good (")
	bad.out.waitFor(t, 5*time.Second, "node bad (")
	good.err.waitFor(t, 10*time.Second, "warning   heard bad at 127.0.0.1:")

	code, out, errOut := runCmd(t, append([]string{"doctor", "--wait", "1200ms"}, common...)...)
	if code != 1 || !strings.Contains(out, "[codec] bad (") || !strings.Contains(out, "speaks json; a node here speaks binary: they will never link.") ||
		!strings.Contains(out, "Broadcast: works") || errOut != "" {
		t.Errorf("doctor: exit %d\n%s%s", code, out, errOut)
	}
	bad.stop(t)
	code, out, errOut = runCmd(t, append([]string{"doctor", "--json", "--wait", "1200ms"}, common...)...)
	var r doctorReport
	if err := json.Unmarshal([]byte(out), &r); err != nil || code != 0 || !r.Healthy || len(r.Nodes) != 1 || r.Nodes[0].Name != "good" {
		t.Errorf("doctor --json: exit %d, %v\n%s%s", code, err, out, errOut)
	}
}

// TestChatDuplicateNames: two nodes of one name are shown apart (name#id)
// and addressed apart; /help, /who and /quit are commands, not text.
func TestChatDuplicateNames(t *testing.T) {
	leaktest.Check(t)
	mesh := fmt.Sprintf("chattest-%d", time.Now().UnixNano())
	common := []string{"--loopback", "--beacon-port", freeUDP(t), "--mesh", mesh, "--interval", "200ms"}
	twins := []*started{
		start(t, append([]string{"run", "--name", "twin"}, common...)...),
		start(t, append([]string{"run", "--name", "twin"}, common...)...),
	}
	var ids []string
	for _, tw := range twins {
		tw.out.waitFor(t, 5*time.Second, "node twin (")
		line := tw.out.String()
		i := strings.Index(line, "node twin (")
		ids = append(ids, line[i+len("node twin ("):i+len("node twin (")+8])
	}
	chat := start(t, append([]string{"chat", "--name", "ann"}, common...)...)
	chat.out.waitFor(t, 10*time.Second, "* twin#"+ids[0]+" joined")
	chat.out.waitFor(t, 10*time.Second, "* twin#"+ids[1]+" joined")

	fmt.Fprintln(chat.stdin, "/help")
	chat.out.waitFor(t, 5*time.Second, "* commands: /who")
	fmt.Fprintln(chat.stdin, "/who")
	chat.out.waitFor(t, 5*time.Second, "* here: twin#")
	fmt.Fprintln(chat.stdin, "/to twin hello")
	chat.out.waitFor(t, 5*time.Second, `* 2 peers are called "twin": say which, as twin#`)
	fmt.Fprintln(chat.stdin, "/to twin#"+ids[1]+" for the second")
	twins[1].out.waitFor(t, 5*time.Second, "ChatLine {Text:for the second}")
	fmt.Fprintln(chat.stdin, "/nonsense")
	chat.out.waitFor(t, 5*time.Second, "* unknown command /nonsense: /help lists them")
	fmt.Fprintln(chat.stdin, "/quit")
	if code := chat.wait(t); code != 0 {
		t.Errorf("chat after /quit: exit %d", code)
	}
	if strings.Contains(twins[0].out.String(), "for the second") || strings.Contains(twins[0].out.String(), "Text:/") {
		t.Errorf("the first twin got what was not for it:\n%s", twins[0].out.String())
	}
	twins[0].out.waitFor(t, 5*time.Second, "left      ann (")
}
