package main

import (
	"fmt"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/discovery"
	"github.com/lanmesh/lanmesh/internal/udpshare"
	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
	"github.com/lanmesh/lanmesh/mesh"
	"github.com/lanmesh/lanmesh/message"
	"github.com/lanmesh/lanmesh/safetext"
)

// hostileName and hostileText carry what a terminal acts on: an escape
// sequence that clears the line, a carriage return that starts it over, a
// bell, and a right-to-left override.
const (
	hostileName = "evil\x1b[2K\rhonest-a\a\u202e"
	hostileText = "\x1b[2K\rhonest-a: forged line\a\u202eeno"
)

// rawControls are the characters that must never reach the terminal raw.
var rawControls = []string{"\x1b", "\r", "\a", "\u202e"}

func checkEscaped(t *testing.T, what, out string) {
	t.Helper()
	for _, c := range rawControls {
		if strings.Contains(out, c) {
			t.Errorf("%s printed %q raw:\n%q", what, c, out)
		}
	}
}

// startHostilePeer starts a node with a hostile name on the loopback mesh of
// a test, registered for ChatLine.
func startHostilePeer(t *testing.T, meshName string, beaconPort int) *mesh.Node {
	t.Helper()
	cfg := mesh.DefaultNodeConfig()
	cfg.Mesh = meshName
	cfg.Name = hostileName
	cfg.Registry = message.Default
	cfg.Link.AutoFlush = true
	cfg.Net.Listen = []string{"127.0.0.1:0"}
	cfg.Discovery.UseLoopback(beaconPort)
	cfg.Discovery.Interval = 200 * time.Millisecond
	cfg.Discovery.Jitter = 20 * time.Millisecond
	cfg.Discovery.LostAfter = 600 * time.Millisecond
	n, err := mesh.NewNode(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { n.CloseReason("bye\x1b[2J\r\a\u202e") })
	return n
}

// spoofBeacons sends, every 50 ms until stop is closed, a beacon of a node
// that does not exist (its port is closed), named with terminal controls, to
// the loopback broadcast address.
func spoofBeacons(t *testing.T, meshName string, beaconPort int, stop <-chan struct{}) {
	t.Helper()
	pc, err := udpshare.ListenSender()
	if err != nil {
		t.Fatal(err)
	}
	b := discovery.Beacon{ID: uuid.New(), Instance: uuid.New(), Port: 9, Mesh: meshName, Name: "spoofed\x1b[31m\a"}
	p, err := b.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	dst := &net.UDPAddr{IP: net.IPv4(127, 255, 255, 255), Port: beaconPort}
	go func() {
		defer pc.Close()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			pc.WriteTo(p, dst)
			select {
			case <-tick.C:
			case <-stop:
				return
			}
		}
	}()
}

// TestHostileNamesPrintEscaped (issue 14, finding 4): a peer whose name
// and chat text carry terminal controls is printed escaped by run, chat,
// watch and peers, and a name from beacons of a node that never linked is
// not printed by peers at all.
func TestHostileNamesPrintEscaped(t *testing.T) {
	leaktest.Check(t)
	meshName := fmt.Sprintf("hostiletest-%d", time.Now().UnixNano())
	portStr := freeUDP(t)
	port, _ := strconv.Atoi(portStr)
	common := []string{"--loopback", "--beacon-port", portStr, "--mesh", meshName, "--interval", "200ms"}
	with := func(cmd string, extra ...string) []string {
		return append(append([]string{cmd}, common...), extra...)
	}
	runner := start(t, with("run", "--name", "runner")...)
	chat := start(t, with("chat", "--name", "chatter")...)
	watch := start(t, with("watch", "--name", "watcher")...)
	evil := startHostilePeer(t, meshName, port)
	stop := make(chan struct{})
	defer close(stop)
	spoofBeacons(t, meshName, port, stop)

	escaped := safetext.Line(hostileName)
	runner.out.waitFor(t, 10*time.Second, "joined    "+escaped+" (")
	chat.out.waitFor(t, 10*time.Second, "* "+escaped+"#") // chat shows name#id on joins
	watch.out.waitFor(t, 10*time.Second, "# joined    "+escaped+" (")
	for deadline := time.Now().Add(10 * time.Second); ; {
		if k, err := evil.Broadcast(&ChatLine{Text: hostileText}); err == nil && k >= 3 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the hostile peer never linked with all three")
		}
		time.Sleep(20 * time.Millisecond)
	}
	chat.out.waitFor(t, 5*time.Second, ": "+safetext.Line(hostileText))
	runner.out.waitFor(t, 5*time.Second, "message   "+escaped+" (")
	watch.out.waitFor(t, 5*time.Second, "in  "+escaped)

	code, table, _ := runCmd(t, "peers", "--loopback", "--beacon-port", portStr, "--mesh", meshName, "--wait", "1s")
	if code != 0 || !strings.Contains(table, escaped) {
		t.Errorf("peers: exit %d, no %q in:\n%s", code, escaped, table)
	}
	if strings.Contains(table, "spoofed") || !strings.Contains(table, unverifiedName) {
		t.Errorf("peers printed the name of a node that never linked, or did not list it as %s:\n%s", unverifiedName, table)
	}

	evil.CloseReason("gone\x1b[2J\r\a\u202e")
	chat.out.waitFor(t, 5*time.Second, " left: ")
	runner.out.waitFor(t, 5*time.Second, `gone\x1b[2J\x0d\x07\u202e`)
	for _, c := range []*started{runner, chat, watch} {
		c.stop(t)
	}
	checkEscaped(t, "run", runner.out.String())
	checkEscaped(t, "chat", chat.out.String())
	checkEscaped(t, "watch", watch.out.String())
	checkEscaped(t, "peers", table)
}
