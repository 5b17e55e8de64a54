package main

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
)

// TestHubFlags: --hub and its companions parse into the hub's options on
// every command that runs a node; a bare host:port gets nats://.
func TestHubFlags(t *testing.T) {
	fs := newFlags("run", "", nil)
	nf := addNodeFlags(fs)
	if err := fs.Parse([]string{"--hub", "hub.example:4222", "--hub-site", "office", "--hub-user", "ann", "--hub-password", "pw"}); err != nil {
		t.Fatal(err)
	}
	if err := nf.hub.check(); err != nil {
		t.Fatal(err)
	}
	o := nf.hub.options(nil)
	if o.URL != "nats://hub.example:4222" || o.Site != "office" || o.User != "ann" || o.Password != "pw" || o.Token != "" {
		t.Errorf("options %+v", o)
	}
	h := hubFlags{url: "nats://a:4222, tls://b:4222", token: "t"}
	if err := h.check(); err != nil || h.url != "nats://a:4222,tls://b:4222" || h.options(nil).Token != "t" {
		t.Errorf("two URLs and a token: %v, %q", err, h.url)
	}
	h = hubFlags{}
	if err := h.check(); err != nil {
		t.Errorf("no hub: %v", err)
	}
}

func TestHubFlagErrors(t *testing.T) {
	creds := filepath.Join(t.TempDir(), "x.creds")
	if err := os.WriteFile(creds, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		h    hubFlags
		want string
	}{
		{hubFlags{site: "office"}, "--hub-site needs --hub: give the hub's URL too"},
		{hubFlags{token: "t"}, "--hub-token needs --hub"},
		{hubFlags{url: "http://h:4222"}, `the scheme "http" is not one of nats, tls, ws, wss`},
		{hubFlags{url: "nats://"}, "not a URL; give nats://host:4222"},
		{hubFlags{url: "nats://h:4222,"}, "empty URL"},
		{hubFlags{url: "h:4222", user: "ann"}, "--hub-user and --hub-password go together"},
		{hubFlags{url: "h:4222", token: "t", creds: creds}, "give one way to log in"},
		{hubFlags{url: "h:4222", nkey: "/nonexistent/seed"}, "--hub-nkey /nonexistent/seed: no such file or directory"},
	} {
		if err := tc.h.check(); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%+v: %v, want an error about %s", tc.h, err, tc.want)
		}
	}
	// On the command line: exit 2, in one line, before any node starts.
	code, _, errOut := runCmd(t, "run", "--loopback", "--hub-site", "office")
	if code != 2 || !strings.Contains(errOut, "--hub-site needs --hub") || strings.Contains(errOut, "Usage:") {
		t.Errorf("run --hub-site alone: exit %d: %s", code, errOut)
	}
	// peers only looks, never joins: it has --hub and its login, no site.
	if code, _, errOut := runCmd(t, "peers", "--loopback", "--hub-token", "t"); code != 2 || !strings.Contains(errOut, "--hub-token needs --hub") {
		t.Errorf("peers --hub-token alone: exit %d: %s", code, errOut)
	}
	if code, _, errOut := runCmd(t, "peers", "--hub", "h:4222", "--hub-site", "office"); code != 2 || !strings.Contains(errOut, "-hub-site") {
		t.Errorf("peers --hub-site: exit %d: %s", code, errOut)
	}
}

func TestRedactURL(t *testing.T) {
	if got := redactURL("nats://ann:secret@h:4222"); strings.Contains(got, "secret") || !strings.Contains(got, "ann") {
		t.Errorf("redacted %q", got)
	}
	if got := redactURL("nats://h:4222"); got != "nats://h:4222" {
		t.Errorf("no password: %q", got)
	}
}

// TestHubJoinError: a failure to join says which hub and what to do.
func TestHubJoinError(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want string
	}{
		{fmt.Errorf("hub: %w", nats.ErrNoServers), `no hub answers at nats://ann:xxxxx@h:4222 (nats: no servers available for connection): check the address, or start one with "lanmesh hub"`},
		{fmt.Errorf("hub: %w", nats.ErrAuthorization), "the hub at nats://ann:xxxxx@h:4222 refused the login"},
		{errors.New("hub: something else\x1b[2J"), `joining the hub at nats://ann:xxxxx@h:4222: something else\x1b[2J`},
	} {
		got := hubJoinError("nats://ann:secret@h:4222", tc.err).Error()
		if !strings.Contains(got, tc.want) || strings.Contains(got, "secret") || strings.Contains(got, "\x1b") {
			t.Errorf("%v: %q, want %q", tc.err, got, tc.want)
		}
	}
}

func TestHubBeyondLoopback(t *testing.T) {
	for _, tc := range []struct {
		addr string
		open bool
		want string
	}{
		{"127.0.0.1:4222", true, ""},
		{"localhost:4222", true, ""},
		{"[::1]:4222", true, ""},
		{":4222", true, "accepts anyone who can reach this machine with no login"},
		{"0.0.0.0:4222", false, "accepts anyone who can reach this machine who has the login"},
		{"10.0.0.5:4222", true, "anyone who can reach 10.0.0.5 with no login"},
	} {
		got := hubBeyondLoopback("--listen", tc.addr, tc.open)
		if (tc.want == "") != (got == "") || !strings.Contains(got, tc.want) {
			t.Errorf("%s open=%v: %q, want %q", tc.addr, tc.open, got, tc.want)
		}
	}
	if got := joinURL("nats://0.0.0.0:4222", ":4222"); got != "nats://THIS-HOST:4222" {
		t.Errorf("joinURL for every interface: %q", got)
	}
	if got := joinURL("nats://127.0.0.1:4222", "127.0.0.1:4222"); got != "nats://127.0.0.1:4222" {
		t.Errorf("joinURL on loopback: %q", got)
	}
}

// hubURLPattern finds the URL that "lanmesh hub" prints.
var hubURLPattern = regexp.MustCompile(`listening at (nats://127\.0\.0\.1:\d+)`)

// startHub runs "lanmesh hub" on 127.0.0.1, any port, and returns it with
// its URL.
func startHub(t *testing.T, args ...string) (*started, string) {
	t.Helper()
	h := start(t, append([]string{"hub", "--listen", "127.0.0.1:0"}, args...)...)
	h.out.waitFor(t, 10*time.Second, "join with: lanmesh run --hub ")
	m := hubURLPattern.FindStringSubmatch(h.out.String())
	if m == nil {
		t.Fatalf("no URL in:\n%s", h.out.String())
	}
	return h, m[1]
}

// TestHubCommand: "lanmesh hub" serves NATS at the URL it prints, asks
// for the login it was given, and stops on Ctrl-C.
func TestHubCommand(t *testing.T) {
	leaktest.Check(t)
	h, url := startHub(t, "--token", "s3cret")
	if !strings.Contains(h.out.String(), "--hub "+url+" --hub-token TOKEN --hub-site NAME") {
		t.Errorf("join line:\n%s", h.out.String())
	}
	if h.err.String() != "" {
		t.Errorf("a hub on loopback warned:\n%s", h.err.String())
	}
	if nc, err := nats.Connect(url, nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Error("the hub let a client in without the token")
	}
	nc, err := nats.Connect(url, nats.Token("s3cret"), nats.MaxReconnects(0))
	if err != nil {
		t.Fatal(err)
	}
	sub, err := nc.SubscribeSync("lanmesh.test")
	if err != nil {
		t.Fatal(err)
	}
	if err := nc.Publish("lanmesh.test", []byte("hi")); err != nil {
		t.Fatal(err)
	}
	if m, err := sub.NextMsg(5 * time.Second); err != nil || string(m.Data) != "hi" {
		t.Fatalf("round trip through the hub: %v", err)
	}
	nc.Close()
	if code := h.stop(t); code != 0 {
		t.Errorf("hub: exit %d: %s", code, h.err.String())
	}
	if !strings.Contains(h.out.String(), "lanmesh hub: closed") {
		t.Errorf("output:\n%s", h.out.String())
	}
	if nc, err := nats.Connect(url, nats.Token("s3cret"), nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Error("the hub still serves after Ctrl-C")
	}
}

func TestHubCommandErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"hub", "--user", "ann"}, "--user and --password go together"},
		{[]string{"hub", "--token", "t", "--user", "a", "--password", "p"}, "give --token or --user/--password"},
		{[]string{"hub", "--listen", "4222"}, "--listen 4222: give host:port"},
	} {
		code, _, errOut := runCmd(t, tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d: %s", tc.args, code, errOut)
		}
	}
	// A port in use: said with the flag to change.
	h, url := startHub(t)
	port := url[strings.LastIndex(url, ":")+1:]
	code, _, errOut := runCmd(t, "hub", "--listen", "127.0.0.1:"+port)
	if code != 1 || !strings.Contains(errOut, "choose another address with --listen") {
		t.Errorf("port in use: exit %d: %s", code, errOut)
	}
	h.stop(t)
}

// freeTCP returns a loopback TCP port that nothing listens on (just now).
func freeTCP(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return fmt.Sprint(ln.Addr().(*net.TCPAddr).Port)
}

// TestHubUnreachable: a node told to join a hub where none listens fails
// at start, saying which URL and how to start a hub.
func TestHubUnreachable(t *testing.T) {
	leaktest.Check(t)
	port := freeTCP(t)
	code, _, errOut := runCmd(t, "run", "--loopback", "--no-broadcast", "--hub", "127.0.0.1:"+port)
	if code != 1 || !strings.Contains(errOut, "no hub answers at nats://127.0.0.1:"+port) || !strings.Contains(errOut, `start one with "lanmesh hub"`) {
		t.Errorf("exit %d: %s", code, errOut)
	}
}

// TestHubTwoSites: "lanmesh hub", and a run and a chat in two sites that
// cannot find each other on the LAN (no discovery): each sees the other
// through the hub, with its site; a chat line crosses; the chat's leaving
// is seen; a wrong token is refused with words that say so.
func TestHubTwoSites(t *testing.T) {
	leaktest.Check(t)
	h, url := startHub(t, "--token", "tok")
	mesh := fmt.Sprintf("hubtest-%d", time.Now().UnixNano())
	common := []string{"--loopback", "--no-broadcast", "--mesh", mesh, "--hub", url, "--hub-token", "tok"}
	runner := start(t, append([]string{"run", "--name", "ann", "--hub-site", "office"}, common...)...)
	runner.out.waitFor(t, 10*time.Second, `joined the hub at `+url+` as site "office"`)
	chat := start(t, append([]string{"chat", "--name", "bob", "--hub-site", "lab\x1b[2J"}, common...)...)
	chat.out.waitFor(t, 10*time.Second, `* joined the hub at `+url+` as site "lab\x1b[2J"`)

	runner.out.waitFor(t, 10*time.Second, `joined    bob (`)
	runner.out.waitFor(t, time.Second, `) in site "lab\x1b[2J", found by the hub`)
	chat.out.waitFor(t, 10*time.Second, `(site "office", through the hub) joined`)
	fmt.Fprintln(chat.stdin, "/who")
	chat.out.waitFor(t, 5*time.Second, `* here: ann (site "office")`)
	fmt.Fprintln(chat.stdin, "hello, other site")
	runner.out.waitFor(t, 10*time.Second, "message   bob (")
	runner.out.waitFor(t, time.Second, "ChatLine {Text:hello, other site}")

	// web and watch join as well, from a third site, on their own port.
	web := start(t, append([]string{"web", "--name", "wes", "--hub-site", "home", "--http", "127.0.0.1:0"}, common...)...)
	web.out.waitFor(t, 10*time.Second, `lanmesh web: joined the hub at `+url+` as site "home"`)
	watch := start(t, append([]string{"watch", "--name", "wat", "--hub-site", "home2"}, common...)...)
	watch.out.waitFor(t, 10*time.Second, `# joined the hub at `+url+` as site "home2"`)
	watch.out.waitFor(t, 10*time.Second, `# joined    wes (`)
	runner.out.waitFor(t, 10*time.Second, `joined    wat (`)
	for _, c := range []*started{web, watch} {
		if code := c.stop(t); code != 0 {
			t.Errorf("exit %d: %s", code, c.err.String())
		}
	}

	// A last line and at once the end of input (echo hi | lanmesh chat):
	// the line arrives, before the chat's leaving.
	fmt.Fprintln(chat.stdin, "last words")
	chat.stdin.Close()
	if code := chat.wait(t); code != 0 {
		t.Errorf("chat: exit %d: %s", code, chat.err.String())
	}
	runner.out.waitFor(t, 10*time.Second, "left      bob (")
	if o := runner.out.String(); !strings.Contains(o, "ChatLine {Text:last words}") ||
		strings.Index(o, "ChatLine {Text:last words}") > strings.Index(o, "left      bob (") {
		t.Errorf("the chat's last line did not arrive before its leaving:\n%s", o)
	}
	// A command's own leaving is not news of its peers.
	if o := chat.out.String(); strings.Contains(o, "detached") {
		t.Errorf("chat reported its own bridge closing:\n%s", o)
	}
	if code := runner.stop(t); code != 0 {
		t.Errorf("run: exit %d: %s", code, runner.err.String())
	}
	if strings.Contains(runner.out.String()+chat.out.String(), "\x1b") {
		t.Error("a site name reached the terminal unescaped")
	}

	code, _, errOut := runCmd(t, "run", "--loopback", "--no-broadcast", "--hub", url, "--hub-token", "wrong")
	if code != 1 || !strings.Contains(errOut, "the hub at "+url+" refused the login") {
		t.Errorf("wrong token: exit %d: %s", code, errOut)
	}
	if code := h.stop(t); code != 0 {
		t.Errorf("hub: exit %d: %s", code, h.err.String())
	}
}

// TestHubLeaf: a site's own hub, a leaf of the main one (--leaf-remote to
// its --leaf-listen), joins its nodes to the nodes of the main hub.
func TestHubLeaf(t *testing.T) {
	leaktest.Check(t)
	main, mainURL := startHub(t, "--leaf-listen", "127.0.0.1:0")
	m := regexp.MustCompile(`accepting leaf hubs at (nats-leaf://127\.0\.0\.1:\d+)`).FindStringSubmatch(main.out.String())
	if m == nil {
		t.Fatalf("no leaf URL in:\n%s", main.out.String())
	}
	leaf, leafURL := startHub(t, "--leaf-remote", m[1])
	mesh := fmt.Sprintf("leaftest-%d", time.Now().UnixNano())
	common := []string{"--loopback", "--no-broadcast", "--mesh", mesh}
	ann := start(t, append([]string{"run", "--name", "ann", "--hub", mainURL, "--hub-site", "office"}, common...)...)
	bob := start(t, append([]string{"run", "--name", "bob", "--hub", leafURL, "--hub-site", "lab"}, common...)...)
	ann.out.waitFor(t, 15*time.Second, `joined    bob (`)
	bob.out.waitFor(t, 15*time.Second, `joined    ann (`)
	for _, c := range []*started{ann, bob, leaf, main} {
		if code := c.stop(t); code != 0 {
			t.Errorf("exit %d: %s", code, c.err.String())
		}
	}
}

// TestHubSecretsFromEnv: a password or token can stay off the command
// line, in the environment; a login given on the command line wins.
func TestHubSecretsFromEnv(t *testing.T) {
	env := map[string]string{hubTokenEnv: "envtok", hubPasswordEnv: "envpw"}
	getenv := func(k string) string { return env[k] }
	for _, tc := range []struct {
		h               hubFlags
		user, pw, token string
	}{
		{hubFlags{url: "h:4222"}, "", "", "envtok"},
		{hubFlags{url: "h:4222", user: "ann"}, "ann", "envpw", ""},
		{hubFlags{url: "h:4222", user: "ann", password: "pw"}, "ann", "pw", ""},
		{hubFlags{url: "h:4222", token: "flagtok"}, "", "", "flagtok"},
		{hubFlags{}, "", "", ""}, // no --hub: the environment is not read
	} {
		h := tc.h
		if err := h.checkEnv(getenv); err != nil || h.user != tc.user || h.password != tc.pw || h.token != tc.token {
			t.Errorf("%+v: %v, got %q %q %q", tc.h, err, h.user, h.password, h.token)
		}
	}
	t.Setenv(hubTokenEnv, "s3cret")
	h, url := startHub(t)
	if nc, err := nats.Connect(url, nats.MaxReconnects(0)); err == nil {
		nc.Close()
		t.Error("the hub took no token from $" + hubTokenEnv)
	}
	h.stop(t)
}
