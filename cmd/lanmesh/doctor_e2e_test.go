//go:build linux

package main

// End-to-end tests of looking without joining (doctor, browse, peers),
// of watch, and of live interfaces, in network namespaces.

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanmesh/lanmesh/lanmeshtest/netlab"
)

// runHost runs lanmesh in host h to its end and returns its exit status and
// outputs.
func runHost(t *testing.T, h *netlab.Host, args ...string) (int, string, string) {
	t.Helper()
	bin := binary(t, "lanmesh") // built on first use: before the deadline
	ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
	defer cancel()
	cmd := h.Command(ctx, bin, args...)
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatalf("lanmesh %v in %s: %v", args, h.Name, err)
	}
	return code, stdout.String(), stderr.String()
}

// inNS runs a command in a host's namespace, failing the test on error.
func inNS(t *testing.T, h *netlab.Host, args ...string) {
	t.Helper()
	out, err := exec.Command("ip", append([]string{"netns", "exec", h.NS}, args...)...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v: %v\n%s", h.Name, args, err, out)
	}
}

// TestE2EDoctor: nodes of several meshes, each with one thing wrong, run
// on three hosts; doctor on a fourth names each cause with exit status 1,
// and a healthy mesh with 0. browse lists every mesh; peers and doctor
// leave no trace on the nodes they look at.
func TestE2EDoctor(t *testing.T) {
	lab := netlab.New(t, 4)
	h1, h2, h3, h4 := lab.Hosts[0], lab.Hosts[1], lab.Hosts[2], lab.Hosts[3]
	_, key, _ := runHost(t, h1, "keygen")
	key = strings.TrimSpace(key)
	runs := map[string]*proc{
		"ok1":   startIn(t, h1, "lanmesh", "run", "--mesh", "ok", "--name", "ok1"),
		"ok2":   startIn(t, h2, "lanmesh", "run", "--mesh", "ok", "--name", "ok2"),
		"cb":    startIn(t, h1, "lanmesh", "run", "--mesh", "codec", "--name", "cb"),
		"cj":    startIn(t, h2, "lanmesh", "run", "--mesh", "codec", "--name", "cj", "--codec", "json"),
		"k1":    startIn(t, h2, "lanmesh", "run", "--mesh", "keyed", "--name", "k1", "--key", key),
		"twin1": startIn(t, h1, "lanmesh", "run", "--mesh", "twins", "--name", "twin"),
		"twin2": startIn(t, h2, "lanmesh", "run", "--mesh", "twins", "--name", "twin"),
		"fw":    startIn(t, h4, "lanmesh", "run", "--mesh", "fw", "--name", "fw", "--port", "7009"),
		"quiet": startIn(t, h1, "lanmesh", "run", "--mesh", "quiet", "--name", "quiet", "--no-broadcast"),
	}
	for name, p := range runs {
		p.waitFor("node ")
		_ = name
	}
	// h4 drops TCP to the fw node's port; its beacons still go out.
	inNS(t, h4, "nft", "add table inet doctortest")
	inNS(t, h4, "nft", "add chain inet doctortest in { type filter hook input priority 0 ; }")
	inNS(t, h4, "nft", "add rule inet doctortest in tcp dport 7009 drop")
	// h3 has an interface without broadcast: a tunnel.
	inNS(t, h3, "ip", "tuntap", "add", "dev", "tun7", "mode", "tun")
	inNS(t, h3, "ip", "addr", "add", "10.99.0.1/24", "dev", "tun7")
	inNS(t, h3, "ip", "link", "set", "tun7", "up")
	runs["ok1"].waitFor("joined    ok2 (")
	runs["twin1"].waitFor("joined    twin (")

	type want struct {
		args  []string
		code  int
		cause string // a problem's cause that must be there ("" for none)
		text  string // and words of its sentence
	}
	cases := map[string]want{
		"healthy":  {[]string{"--mesh", "ok"}, 0, "", ""},
		"codec":    {[]string{"--mesh", "codec"}, 1, "codec", "cj ("},
		"mesh":     {[]string{"--mesh", "nosuch"}, 1, "mesh", `no node of mesh "nosuch" was heard, only nodes of other meshes: "codec" (cb, cj); "fw" (fw); "ok" (ok1, ok2); "quiet" (quiet)`},
		"nokey":    {[]string{"--mesh", "keyed"}, 1, "key", "seals its beacons with a mesh key; a node here has none"},
		"haskey":   {[]string{"--mesh", "ok", "--key", key}, 1, "key", "has no mesh key; a node here has one"},
		"twins":    {[]string{"--mesh", "twins"}, 1, "duplicate-name", "call themselves twin"},
		"firewall": {[]string{"--mesh", "fw"}, 1, "firewall", "gets no answer"},
		"iface":    {[]string{"--mesh", "ok", "--iface", "tun7"}, 1, "no-broadcast", "tun7: no broadcast"},
	}
	type result struct {
		code   int
		report doctorReport
		out    string
	}
	results := make(map[string]result)
	var mu sync.Mutex
	var wg sync.WaitGroup
	for name, c := range cases {
		wg.Add(1)
		go func() {
			defer wg.Done()
			code, out, errOut := runHost(t, h3, append([]string{"doctor", "--json", "--wait", "2s"}, c.args...)...)
			var r doctorReport
			if err := json.Unmarshal([]byte(out), &r); err != nil {
				t.Errorf("%s: doctor --json: %v\n%s\n%s", name, err, out, errOut)
			}
			mu.Lock()
			results[name] = result{code, r, out}
			mu.Unlock()
		}()
	}
	wg.Wait()
	for name, c := range cases {
		r := results[name]
		var causes []string
		found := c.cause == ""
		for _, f := range r.report.Findings {
			if f.Problem {
				causes = append(causes, f.Cause)
				if f.Cause == c.cause && strings.Contains(f.Text, c.text) && f.Fix != "" {
					found = true
				}
			}
		}
		if r.code != c.code || !found || (c.code == 0) != r.report.Healthy {
			t.Errorf("%s: exit %d, problems %v; want exit %d and a %q problem saying %q\n%s", name, r.code, causes, c.code, c.cause, c.text, r.out)
		}
	}
	// A node heard by mDNS only is found, slowly: a note, not a problem.
	code, out, _ := runHost(t, h3, "doctor", "--json", "--mesh", "quiet", "--wait", "2s")
	var quiet doctorReport
	if err := json.Unmarshal([]byte(out), &quiet); err != nil || code != 0 ||
		!slices.ContainsFunc(quiet.Findings, func(f finding) bool { return f.Cause == "mdns-only" && !f.Problem }) {
		t.Errorf("mDNS only: exit %d, %v\n%s", code, err, out)
	}

	if r := results["healthy"].report; !r.Healthy || r.EchoBack == 0 {
		t.Errorf("healthy: %+v", r)
	} else {
		var linkable []string
		for _, n := range r.Nodes {
			if n.Mesh == "ok" && n.Linkable && n.Codec == "binary" && n.RTTMics > 0 {
				linkable = append(linkable, n.Name)
			}
		}
		if slices.Sort(linkable); !slices.Equal(linkable, []string{"ok1", "ok2"}) {
			t.Errorf("healthy: linkable %v, want ok1 ok2", linkable)
		}
	}

	// The text form says the same, in sentences with fixes.
	code, out, _ = runHost(t, h3, "doctor", "--mesh", "codec", "--wait", "1500ms")
	if code != 1 || !strings.Contains(out, "speaks json; a node here speaks binary: they will never link.") ||
		!strings.Contains(out, "Fix: give every node of mesh codec the same --codec") {
		t.Errorf("doctor text: exit %d\n%s", code, out)
	}

	if testing.Verbose() {
		for _, args := range [][]string{{"--mesh", "ok"}, {"--mesh", "fw"}, {"--iface", "tun7"}} {
			_, out, _ := runHost(t, h3, append([]string{"doctor", "--wait", "1500ms"}, args...)...)
			t.Logf("lanmesh doctor %v:\n%s", args, out)
		}
		_, out, _ := runHost(t, h3, "browse", "--wait", "1500ms")
		t.Logf("lanmesh browse:\n%s", out)
	}

	// browse lists every mesh; a keyed one, sealed, as a key id only.
	code, out, errOut := runHost(t, h3, "browse", "--json", "--wait", "1500ms")
	var nodes []browseJSON
	if err := json.Unmarshal([]byte(out), &nodes); err != nil || code != 0 {
		t.Fatalf("browse: exit %d, %v\n%s%s", code, err, out, errOut)
	}
	meshes := map[string]int{}
	for _, n := range nodes {
		meshes[n.Mesh]++
	}
	if meshes["ok"] != 2 || meshes["codec"] != 2 || meshes[""] != 1 || meshes["twins"] != 2 || meshes["fw"] != 1 || meshes["quiet"] != 1 {
		t.Errorf("browse found %v\n%s", meshes, out)
	}

	// peers lists a mesh without joining it, and mentions the others.
	code, out, errOut = runHost(t, h3, "peers", "--mesh", "ok", "--json")
	var peers []peerJSON
	if err := json.Unmarshal([]byte(out), &peers); err != nil || code != 0 || len(peers) != 2 ||
		!strings.Contains(errOut, `also heard 2 node(s) of mesh "codec"`) {
		t.Errorf("peers: exit %d, %v\n%s%s", code, err, out, errOut)
	}

	// The running nodes told of their mismatch, once each; nobody saw the
	// lookers join.
	for _, name := range []string{"cb", "cj"} {
		p := runs[name]
		other := map[string]string{"cb": "cj", "cj": "cb"}[name]
		deadline := time.Now().Add(e2eWait)
		var stderr string
		for !strings.Contains(stderr, "warning   heard "+other+" at ") && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
			p.mu.Lock()
			stderr = p.stderr.String()
			p.mu.Unlock()
		}
		seen := strings.Join(p.seenLines(), "\n") + stderr
		if n := strings.Count(seen, "they will never link"); n != 1 {
			t.Errorf("%s warned %d times:\n%s", name, n, p.report())
		}
	}
	for name, p := range runs {
		for _, l := range p.seenLines() {
			if strings.Contains(l, "joined") && !strings.Contains(l, "joined    ok") && !strings.Contains(l, "joined    twin") {
				t.Errorf("%s saw a looker: %s", name, l)
			}
		}
	}
	if n := strings.Count(strings.Join(runs["ok1"].seenLines(), "\n"), "joined"); n != 1 {
		t.Errorf("ok1 saw %d joins, want 1 (ok2):\n%s", n, runs["ok1"].report())
	}
}

// TestE2EWatchUnknownType: watch shows the messages of a program whose
// types it does not know (the cpu monitor's) by code and size.
func TestE2EWatchUnknownType(t *testing.T) {
	lab := netlab.New(t, 2)
	startIn(t, lab.Hosts[0], "cpumon", "-plain", "-interval", "200ms", "-mesh", "e2e-watch")
	w := startIn(t, lab.Hosts[1], "lanmesh", "watch", "--mesh", "e2e-watch")
	w.waitFor("# joined    h1 (")
	l := w.waitFor("unknown code 0x")
	if f := strings.Fields(l); len(f) != 7 || f[1] != "in" || f[2] != "h1" || f[3] != "unknown" {
		t.Errorf("watch line %q: want TIME in h1 unknown code 0xNN SIZE", l)
	}
}

// TestE2ELateInterface: a node started while its only interface is down is
// found, and linked, soon after the interface comes up, without a restart.
func TestE2ELateInterface(t *testing.T) {
	lab := netlab.New(t, 2)
	h1, h2 := lab.Hosts[0], lab.Hosts[1]
	if err := h2.LinkDown(); err != nil {
		t.Fatal(err)
	}
	late := startIn(t, h2, "lanmesh", "run", "--mesh", "late", "--iface", "eth0")
	late.waitFor("node h2 (")
	early := startIn(t, h1, "lanmesh", "run", "--mesh", "late", "--iface", "eth0")
	early.waitFor("node h1 (")
	start := time.Now()
	if err := h2.LinkUp(); err != nil {
		t.Fatal(err)
	}
	early.waitFor("joined    h2 (")
	took := time.Since(start)
	t.Logf("h2 linked with h1 %v after its interface came up", took.Round(time.Millisecond))
	// Without following the interface, h2 would beacon only after its next
	// re-read of the interfaces, 5 s later.
	if took > 3*time.Second {
		t.Errorf("h2 was linked %v after its interface came up; it should follow the interface within about a second", took)
	}
}

// TestE2EAddressChange: a node whose address changes (a new DHCP lease) is
// found at its new address by its peer, which links to it there and
// resumes the session.
func TestE2EAddressChange(t *testing.T) {
	lab := netlab.New(t, 2)
	h1, h2 := lab.Hosts[0], lab.Hosts[1]
	a := startIn(t, h1, "lanmesh", "run", "--mesh", "moving")
	b := startIn(t, h2, "lanmesh", "run", "--mesh", "moving")
	a.waitFor("joined    h2 (")
	b.waitFor("joined    h1 (")
	next := h2.Addr.As4()
	next[3] += 100
	newAddr := netip.AddrFrom4(next)
	start := time.Now()
	if err := h2.SetAddr(newAddr); err != nil {
		t.Fatal(err)
	}
	// The link to the old address ends; the new one resumes the session
	// (a node with resume off would see it left and joined again).
	a.waitLine(func(l string) bool {
		return (strings.Contains(l, "resumed   h2 (") || strings.Contains(l, "joined    h2 (")) &&
			strings.Contains(l, " at "+newAddr.String()+":")
	})
	t.Logf("h1 linked with h2 at its new address %v after the change", time.Since(start).Round(time.Millisecond))
}

// TestHelperProcess plays the roles of helper processes in the hosts of a
// lab (netlab.StartHelper); in an ordinary run it does nothing.
func TestHelperProcess(t *testing.T) {
	switch netlab.HelperRole() {
	case "":
		return
	case "hold5353":
		// An mDNS responder that does not share its port: no SO_REUSEADDR.
		c, err := net.ListenUDP("udp4", &net.UDPAddr{Port: 5353})
		if err != nil {
			fmt.Println("error", err)
			os.Exit(1)
		}
		defer c.Close()
		fmt.Println("ready")
		time.Sleep(e2eWait)
		os.Exit(0)
	}
}

// TestE2EDoctorMDNSPort: a program that holds UDP 5353 without sharing it
// is named as the reason mDNS cannot run, exit status 1.
func TestE2EDoctorMDNSPort(t *testing.T) {
	lab := netlab.New(t, 2)
	startIn(t, lab.Hosts[0], "lanmesh", "run", "--mesh", "m5353").waitFor("node h1 (")
	holder := lab.Hosts[1].StartHelper(t, "hold5353")
	if l, err := holder.Next(e2eWait); err != nil || l != "ready" {
		t.Fatalf("helper: %q %v %s", l, err, holder.Stderr())
	}
	code, out, errOut := runHost(t, lab.Hosts[1], "doctor", "--mesh", "m5353", "--wait", "1500ms")
	if code != 1 || !strings.Contains(out, "[mdns-port] another program holds UDP port 5353 (an mDNS responder) without sharing it") ||
		!strings.Contains(out, "h1") {
		t.Errorf("doctor: exit %d\n%s%s", code, out, errOut)
	}
}
