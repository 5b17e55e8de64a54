package main

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
	"github.com/lanmesh/lanmesh/meshkey"
)

// TestPeersHub: "lanmesh peers --hub" lists a node of its LAN (loopback,
// its beacon port) once, as found there, and a node of another site (a
// beacon port of its own: no beacon of it reaches peers) through the hub,
// with its site; neither sees peers join. A hub that does not answer is
// said so, with the fix.
func TestPeersHub(t *testing.T) {
	leaktest.Check(t)
	h, url := startHub(t)
	mesh := fmt.Sprintf("peershub-%d", time.Now().UnixNano())
	lanPort := freeUDP(t)
	common := []string{"--loopback", "--mesh", mesh, "--interval", "200ms", "--hub", url}
	ann := start(t, append([]string{"run", "--name", "ann", "--beacon-port", lanPort, "--hub-site", "office"}, common...)...)
	bob := start(t, append([]string{"run", "--name", "bob", "--beacon-port", freeUDP(t), "--hub-site", "lab\x1b[2J"}, common...)...)
	ann.out.waitFor(t, 10*time.Second, "joined    bob (")
	bob.out.waitFor(t, 10*time.Second, "joined    ann (")

	look := []string{"peers", "--loopback", "--beacon-port", lanPort, "--mesh", mesh, "--hub", url, "--wait", "1500ms"}
	code, out, errOut := runCmd(t, append(look, "--json")...)
	if code != 0 {
		t.Fatalf("peers --hub: exit %d: %s", code, errOut)
	}
	var got []peerJSON
	if err := json.Unmarshal([]byte(out), &got); err != nil {
		t.Fatalf("peers --hub --json: %v\n%s", err, out)
	}
	if len(got) != 2 {
		t.Fatalf("peers --hub listed %d nodes, want ann once and bob:\n%s", len(got), out)
	}
	if p := got[0]; p.Name != "ann" || p.Site != "" || p.FoundBy != "broadcast" || p.State != "reachable" || p.Addr == "" {
		t.Errorf("the LAN node: %+v", p)
	}
	if p := got[1]; p.Name != "bob" || p.Site != "lab\x1b[2J" || p.FoundBy != "hub" || p.State != stateHub || p.Addr != "" || len(p.ID) != 36 {
		t.Errorf("the other site's node: %+v", p)
	}

	code, out, errOut = runCmd(t, look...)
	if code != 0 || !strings.HasPrefix(out, "NAME ") || !strings.Contains(out, " SITE ") ||
		!strings.Contains(out, `lab\x1b[2J`) || strings.Contains(out, "\x1b") {
		t.Errorf("peers --hub table: exit %d: %s\n%s", code, errOut, out)
	}
	// Nobody saw peers join: each node joined the other only.
	for _, n := range []*started{ann, bob} {
		if k := strings.Count(n.out.String(), "joined    "); k != 1 {
			t.Errorf("a node saw %d joins:\n%s", k, n.out.String())
		}
	}

	// Under a mesh key it does not have, peers says why it lists no one.
	k, err := meshkey.Generate(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	key := "--key=" + k.String()
	carol := start(t, "run", "--name", "carol", "--loopback", "--beacon-port", freeUDP(t), "--mesh", mesh+"k", "--hub", url, "--hub-site", "k", key)
	carol.out.waitFor(t, 10*time.Second, "joined the hub at ")
	code, _, errOut = runCmd(t, "peers", "--loopback", "--beacon-port", freeUDP(t), "--mesh", mesh+"k", "--hub", url, "--wait", "1200ms")
	if code != 1 || !strings.Contains(errOut, "sealed roster(s)") || !strings.Contains(errOut, "give it with --key") {
		t.Errorf("peers without the key: exit %d: %s", code, errOut)
	}
	code, out, errOut = runCmd(t, "peers", "--loopback", "--beacon-port", freeUDP(t), "--mesh", mesh+"k", "--hub", url, "--wait", "1200ms", key)
	if code != 0 || !strings.Contains(out, "carol") || !strings.Contains(out, stateHubSealed) {
		t.Errorf("peers with the key: exit %d: %s\n%s", code, errOut, out)
	}
	for _, n := range []*started{ann, bob, carol} {
		if code := n.stop(t); code != 0 {
			t.Errorf("run: exit %d: %s", code, n.err.String())
		}
	}
	h.stop(t)

	// No hub: the words run uses, at once.
	port := freeTCP(t)
	start := time.Now()
	code, _, errOut = runCmd(t, "peers", "--loopback", "--beacon-port", freeUDP(t), "--hub", "127.0.0.1:"+port, "--wait", "1m")
	if code != 1 || !strings.Contains(errOut, "no hub answers at nats://127.0.0.1:"+port) || !strings.Contains(errOut, `start one with "lanmesh hub"`) {
		t.Errorf("no hub: exit %d: %s", code, errOut)
	}
	if d := time.Since(start); d > 30*time.Second {
		t.Errorf("no hub: peers took %v with --wait 1m", d)
	}
}
