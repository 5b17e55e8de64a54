package web

import (
	"bufio"
	"crypto/rand"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
	"github.com/lanmesh/lanmesh/mesh"
	"github.com/lanmesh/lanmesh/meshkey"
	"github.com/lanmesh/lanmesh/message"
)

// client keeps no connection open after a request, so that none outlives
// a test.
var client = &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 10 * time.Second}

func get(t *testing.T, url string) (int, http.Header, string) {
	t.Helper()
	res, err := client.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, res.Header, string(b)
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	code, h, body := get(t, url)
	if code != 200 || !strings.HasPrefix(h.Get("Content-Type"), "application/json") {
		t.Fatalf("%s: %d %s: %s", url, code, h.Get("Content-Type"), body)
	}
	if err := json.Unmarshal([]byte(body), v); err != nil {
		t.Fatalf("%s: %v: %s", url, err, body)
	}
}

// TestEndpoints: /api/peers, /api/events and /metrics tell what the node
// knows, the event stream pushes it, the page and its files are served
// with headers that forbid running anything but its own script, and the
// server closes cleanly with nothing left running.
func TestEndpoints(t *testing.T) {
	leaktest.Check(t)
	nodes := startMesh(t, "alpha", "beta", `evil"} 1`+"\nlanmesh_peers 99")
	a := nodes[0]
	srv, err := Serve(a, Options{Addr: "127.0.0.1:0", Traffic: true, Sample: 50 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	base := srv.URL()
	var peers []peerView
	waitUntil(t, 10*time.Second, "two linked peers with traffic in /api/peers", func() bool {
		getJSON(t, base+"api/peers", &peers)
		n := 0
		for _, p := range peers {
			if p.State == "linked" && p.MsgsOut == 0 {
				// A first message, or one again on a link that replaced
				// the one it went on.
				id, _ := uuid.Parse(p.ID)
				a.Send(id, &message.Identify{Username: "u", Hostname: "h"})
				a.Xfer()
			}
			if p.State == "linked" && p.MsgsOut > 0 && p.Found == "broadcast" && p.RTTms > 0 {
				n++
			}
		}
		return n == 2
	})
	if peers[0].Name != "beta" || peers[0].ID != nodes[1].ID().String() || peers[0].Keyed {
		t.Errorf("peers[0]: %+v", peers[0])
	}

	var events []eventView
	getJSON(t, base+"api/events", &events)
	if len(events) != 2 || events[0].Kind != "joined" || events[1].Kind != "joined" || events[1].Seq != 2 {
		t.Fatalf("events: %+v", events)
	}
	getJSON(t, base+"api/events?after=1", &events)
	if len(events) != 1 || events[0].Seq != 2 {
		t.Errorf("events after 1: %+v", events)
	}
	if code, _, _ := get(t, base+"api/events?after=x"); code != 400 {
		t.Errorf("after=x: %d", code)
	}

	var metrics string
	traffic := regexp.MustCompile(`\nlanmesh_traffic_messages_total\{type="MsgIdentify",direction="out"\} [1-9][0-9]*\n`)
	waitUntil(t, 5*time.Second, "the traffic log in /metrics", func() bool {
		_, _, metrics = get(t, base+"metrics")
		return traffic.MatchString(metrics)
	})
	if !regexp.MustCompile(`\nlanmesh_link_messages_total\{peer_id="` + nodes[1].ID().String() + `",peer_name="beta",direction="out"\} [1-9][0-9]*\n`).MatchString(metrics) {
		t.Errorf("no messages out to beta in the metrics:\n%s", metrics)
	}
	for _, want := range []string{
		"# TYPE lanmesh_peers gauge\n",
		"lanmesh_peers{state=\"linked\"} 2\n",
		"lanmesh_peer_events_total{kind=\"joined\"} 2\n",
		// A hostile name stays inside its label.
		`peer_name="evil\"} 1\nlanmesh_peers 99",direction="in"}`,
		"lanmesh_traffic_log_recording 1\n",
	} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q:\n%s", want, metrics)
		}
	}
	for _, line := range strings.Split(metrics, "\n") {
		if strings.HasPrefix(line, "lanmesh_peers ") {
			t.Errorf("a name forged a line: %q", line)
		}
	}

	// The page, its script, and the headers.
	code, h, body := get(t, base)
	if code != 200 || !strings.Contains(body, `<script src="/static/app.js"`) || !strings.Contains(h.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Errorf("page: %d %v", code, h)
	}
	if code, h, body := get(t, base+"static/app.js"); code != 200 || !strings.Contains(h.Get("Content-Type"), "javascript") || !strings.Contains(body, "textContent") || strings.Contains(body, "innerHTML") {
		t.Errorf("app.js: %d %v", code, h.Get("Content-Type"))
	}
	// Another host name (DNS rebinding) is refused on loopback.
	req, _ := http.NewRequest("GET", base+"api/peers", nil)
	req.Host = "evil.example:80"
	if res, err := client.Do(req); err != nil || res.StatusCode != 403 {
		t.Errorf("a foreign Host: %v %v", res, err)
	} else {
		res.Body.Close()
	}

	// The event stream: the state at once, then again as it changes.
	res, err := (&http.Client{Transport: &http.Transport{DisableKeepAlives: true}}).Get(base + "events")
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if ct := res.Header.Get("Content-Type"); ct != "text/event-stream" {
		t.Errorf("events: %s", ct)
	}
	r := bufio.NewReader(res.Body)
	states := 0
	for states < 2 {
		line, err := r.ReadString('\n')
		if err != nil {
			t.Fatalf("stream: %v after %d states", err, states)
		}
		if data, ok := strings.CutPrefix(line, "data: "); ok {
			var s snapshot
			if err := json.Unmarshal([]byte(data), &s); err != nil || s.Self.ID != a.ID().String() || len(s.Peers) != 2 {
				t.Fatalf("state: %v: %.200s", err, data)
			}
			states++
		}
	}

	// Closing the server ends the stream, and stops the traffic log it
	// started.
	srv.Close()
	if a.Traffic().Recording() {
		t.Error("the traffic log still records after Close")
	}
	if _, err := io.Copy(io.Discard, r); err != nil && !strings.Contains(err.Error(), "EOF") {
		t.Logf("stream ended with %v", err)
	}
	if res, err := client.Get(base); err == nil {
		res.Body.Close()
		t.Error("the server still answers after Close")
	}
}

// TestClosesWithNode: a server whose node closes stops by itself, and a
// peer that leaves is an event with its reason.
func TestClosesWithNode(t *testing.T) {
	leaktest.Check(t)
	nodes := startMesh(t, "one", "two")
	srv, err := Serve(nodes[0], Options{Addr: "127.0.0.1:0", Sample: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	base := srv.URL()
	nodes[1].CloseReason("gone fishing")
	var events []eventView
	waitUntil(t, 5*time.Second, "a left event", func() bool {
		getJSON(t, base+"api/events", &events)
		return len(events) == 2
	})
	if e := events[1]; e.Kind != "left" || e.Name != "two" || !strings.Contains(e.Reason, "gone fishing") {
		t.Errorf("left: %+v", e)
	}
	nodes[0].Close()
	waitUntil(t, 5*time.Second, "the server to stop", func() bool {
		res, err := client.Get(base)
		if err == nil {
			res.Body.Close()
		}
		return err != nil
	})
	srv.Close() // still fine, and waits for nothing
}

func TestLoopbackHost(t *testing.T) {
	for host, want := range map[string]bool{
		"localhost:8280": true, "127.0.0.1:1": true, "[::1]:8280": true, "127.3.4.5": true, "LOCALHOST": true,
		"example.com:8280": false, "10.0.0.1:80": false, "": false, "localhost.evil.example": false,
	} {
		if loopbackHost(host) != want {
			t.Errorf("%q: %v", host, !want)
		}
	}
}

// TestChart: figures are kept per machine, bounded, and a NaN (which JSON
// cannot carry) reads 0 rather than breaking the state.
func TestChart(t *testing.T) {
	leaktest.Check(t)
	nodes := startMesh(t, "solo")
	srv, err := Serve(nodes[0], Options{Addr: "127.0.0.1:0", Sample: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	for i := range chartPoints + 10 {
		srv.Chart("m1", "one", Figure{Name: "cpu", Unit: "%", Max: 100, Value: float64(i)}, Figure{Name: "bad", Value: math.NaN()})
	}
	srv.Chart("m2", "two", Figure{Name: "cpu", Value: 1})
	srv.Forget("m2")
	var s snapshot
	waitUntil(t, 5*time.Second, "the charts in the state", func() bool {
		getJSON(t, srv.URL()+"api/state", &s)
		return len(s.Charts) == 1
	})
	c := s.Charts[0]
	if c.ID != "m1" || c.Name != "one" || len(c.Figures) != 2 || len(c.Figures[0].Values) != chartPoints ||
		c.Figures[0].Values[chartPoints-1] != chartPoints+9 || c.Figures[1].Values[0] != 0 {
		t.Errorf("chart: %+v", c)
	}
}

// TestKeyed: with a mesh key, this node and its links are marked keyed.
func TestKeyed(t *testing.T) {
	leaktest.Check(t)
	key, err := meshkey.Generate(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	nodes := startMeshWith(t, func(c *mesh.NodeConfig) { c.Keyring = meshkey.Keyring{Primary: key} }, "k1", "k2")
	srv, err := Serve(nodes[0], Options{Addr: "127.0.0.1:0", Keyed: true})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var s snapshot
	getJSON(t, srv.URL()+"api/state", &s)
	if !s.Self.Keyed || len(s.Peers) != 1 || !s.Peers[0].Keyed || s.Peers[0].CableCar {
		t.Errorf("state: %+v", s)
	}
}

// nopRelay is a relay that carries nothing: enough to show remote peers.
type nopRelay struct{}

func (nopRelay) RelaySend(uuid.UUID, mesh.RelayFrame) error { return nil }

// remoteNode starts a node alone with one remote peer, of the given site,
// as package hub would report it; it returns the node and the peer's id.
func remoteNode(t *testing.T, site string) (*mesh.Node, uuid.UUID) {
	t.Helper()
	n := startNode(t, "webremote"+rand.Text()[:6], freeUDPPort(t), "here")
	port, err := n.AttachRelay(nopRelay{})
	if err != nil {
		t.Fatal(err)
	}
	id := uuid.New()
	if err := port.PeerUp(mesh.RemotePeer{ID: id, Instance: uuid.New(), Name: "far", Site: site}); err != nil {
		t.Fatal(err)
	}
	return n, id
}

// TestRemoteSite: a peer in another site comes with its site in
// /api/peers and /api/events, found by the relay, and its site is text.
func TestRemoteSite(t *testing.T) {
	leaktest.Check(t)
	site := `<b>office</b> "2"`
	n, id := remoteNode(t, site)
	srv, err := Serve(n, Options{Addr: "127.0.0.1:0", Sample: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var peers []peerView
	waitUntil(t, 5*time.Second, "the remote peer in /api/peers", func() bool {
		getJSON(t, srv.URL()+"api/peers", &peers)
		return len(peers) == 1
	})
	if p := peers[0]; p.ID != id.String() || p.Site != site || p.Found != "relay" || p.State != "linked" {
		t.Errorf("remote peer: %+v", p)
	}
	if _, _, body := get(t, srv.URL()+"api/peers"); strings.Contains(body, "<b>") {
		t.Errorf("the site is not escaped in the JSON: %s", body)
	}
	var events []eventView
	getJSON(t, srv.URL()+"api/events", &events)
	if len(events) != 1 || events[0].Site != site {
		t.Errorf("events: %+v", events)
	}
}
