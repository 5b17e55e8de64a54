package web

import (
	"encoding/json"
	"flag"
	"fmt"
	"math"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
	"github.com/lanmesh/lanmesh/mesh"
	"github.com/lanmesh/lanmesh/message"
)

var screenshotPath = flag.String("screenshot", "", "save the browser test's screenshot here (docs/web.png for the README: -screenshot ../docs/web.png)")

// hostile is a node name that would run script if a page used it as
// markup.
const hostile = `<img src=x onerror=alert(1)>`

// chat keeps messages flowing on every link of nodes until stop, so that
// links show messages per second and the traffic log has types.
func chat(nodes []*mesh.Node, stop <-chan struct{}) {
	t := time.NewTicker(100 * time.Millisecond)
	defer t.Stop()
	for i := 0; ; i++ {
		for _, n := range nodes {
			n.Broadcast(&message.Identify{Username: "web", Hostname: fmt.Sprint(i)})
			if i%3 == 0 {
				n.Broadcast(&message.Join{})
			}
			n.Xfer()
			for _, ok := n.Get(); ok; _, ok = n.Get() {
			}
		}
		select {
		case <-t.C:
		case <-stop:
			return
		}
	}
}

// chartFigures feeds the server figures of the kind the cpu monitor
// charts, for each node, so that the screenshot shows the charts too.
func chartFigures(srv *Server, nodes []*mesh.Node, points int) {
	for i := range points {
		for k, n := range nodes {
			x := float64(i)/6 + float64(k)*2
			srv.Chart(n.ID().String(), n.Name(),
				Figure{Name: "cpu", Unit: "%", Max: 100, Value: 35 + 25*math.Sin(x) + 8*math.Sin(3.1*x)},
				Figure{Name: "load 1", Unit: "", Value: 1.2 + 0.6*math.Sin(x/2+1)},
				Figure{Name: "memory", Unit: "%", Max: 100, Value: 48 + 10*float64(k) + 3*math.Sin(x/5)},
				Figure{Name: "temp", Unit: "°C", Max: 100, Value: 52 + 6*math.Sin(x/3)})
		}
	}
}

// TestBrowser opens the page of one of three nodes on loopback in
// headless Chromium and checks, from the DOM, that the three nodes and
// their links are drawn, that a hostile name is text, that a node that
// leaves is gone from the graph within 2 s, and that the page comes back
// after its server restarts. It saves a screenshot (see -screenshot).
func TestBrowser(t *testing.T) {
	leaktest.Check(t)
	b := startBrowser(t)
	nodes := startMesh(t, "alpha", hostile, "gamma")
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() { defer wg.Done(); chat(nodes, stop) }()
	t.Cleanup(func() { close(stop); wg.Wait() })

	srv, err := Serve(nodes[0], Options{Addr: "127.0.0.1:0", Traffic: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	chartFigures(srv, nodes, 90)
	b.open(srv.URL(), 1280, 1000)
	ctx := t.Context()

	ids := make([]string, len(nodes))
	for i, n := range nodes {
		ids[i] = n.ID().String()
	}
	const graphJS = `JSON.stringify({
		nodes: [...document.querySelectorAll("#graph .node:not(.leaving)")].map(e => e.dataset.id).sort(),
		links: [...document.querySelectorAll("#graph .link")].map(e => e.dataset.peer).sort(),
		labels: [...document.querySelectorAll("#graph .edge-label")].map(e => e.textContent),
		self: document.querySelector("#graph .node.self")?.dataset.id || "",
	})`
	type graphDOM struct {
		Nodes, Links, Labels []string
		Self                 string
	}
	readGraph := func() graphDOM {
		var s string
		if err := b.eval(graphJS, &s); err != nil {
			t.Fatal(err)
		}
		var g graphDOM
		json.Unmarshal([]byte(s), &g)
		return g
	}
	// All three, this node marked, a link to each peer with its RTT and
	// rate, once the rates are in.
	if _, err := b.waitFor(ctx, 10*time.Second, "three nodes with measured links",
		`document.querySelectorAll("#graph .node").length === 3 &&
		 [...document.querySelectorAll("#graph .edge-label")].every(e => /^[0-9.]+ ms · [1-9][0-9.]* msg\/s$/.test(e.textContent)) &&
		 document.querySelectorAll("#graph .edge-label").length === 2`); err != nil {
		t.Fatalf("%v; graph: %+v", err, readGraph())
	}
	g := readGraph()
	if want := slices.Sorted(slices.Values(ids)); !slices.Equal(g.Nodes, want) || g.Self != ids[0] {
		t.Errorf("nodes %v (self %s), want %v (self %s)", g.Nodes, g.Self, want, ids[0])
	}
	if want := slices.Sorted(slices.Values(ids[1:])); !slices.Equal(g.Links, want) {
		t.Errorf("links %v, want %v", g.Links, want)
	}

	// The hostile name is text: in the table whole, in the graph cut short,
	// and no element came of it.
	var hostileDOM struct {
		Cell   string
		Imgs   int
		Graph  []string
		Events []string
	}
	var s string
	if err := b.eval(`JSON.stringify({
		Cell: document.querySelector('#peers tr[data-id="`+ids[1]+`"] td.name')?.textContent,
		Imgs: document.querySelectorAll("img").length,
		Graph: [...document.querySelectorAll("#graph .name")].map(e => e.textContent),
		Events: [...document.querySelectorAll("#timeline .ev-name")].map(e => e.textContent),
	})`, &s); err != nil {
		t.Fatal(err)
	}
	json.Unmarshal([]byte(s), &hostileDOM)
	if hostileDOM.Cell != hostile || hostileDOM.Imgs != 0 || !slices.Contains(hostileDOM.Graph, hostile[:23]+"…") || !slices.Contains(hostileDOM.Events, hostile) {
		t.Errorf("the hostile name: %+v", hostileDOM)
	}

	// The traffic by type and the charts are drawn.
	if _, err := b.waitFor(ctx, 5*time.Second, "traffic by type and charts",
		`[...document.querySelectorAll("#traffic tbody td:first-child")].map(e => e.textContent).join() === "MsgIdentify,MsgJoin" &&
		 document.querySelectorAll("#charts .machine").length === 3 && document.querySelectorAll("#charts .spark-line").length === 12`); err != nil {
		t.Error(err)
	}

	shot := *screenshotPath
	if shot == "" {
		dir := os.Getenv("LANMESH_ARTIFACTS")
		if dir == "" {
			dir = t.TempDir()
		}
		shot = filepath.Join(dir, "web.png")
	}
	if err := b.screenshot(shot, 1280); err != nil {
		t.Error(err)
	} else {
		t.Logf("screenshot: %s", shot)
	}

	// A node that leaves is gone from the graph within 2 s.
	nodes[2].CloseReason("test: gamma leaves")
	took, err := b.waitFor(ctx, 2*time.Second, "gamma to leave the graph",
		`!document.querySelector('#graph .node[data-id="`+ids[2]+`"]') && !document.querySelector('#graph .link[data-peer="`+ids[2]+`"]')`)
	if err != nil {
		t.Fatalf("%v; graph: %+v", err, readGraph())
	}
	t.Logf("gamma left the graph %v after its Close returned", took.Round(time.Millisecond))
	if _, err := b.waitFor(ctx, 2*time.Second, "a left event", `document.querySelector("#timeline .ev-left .ev-name")?.textContent === "gamma"`); err != nil {
		t.Error(err)
	}

	// The server restarts; the page notices, then comes back by itself.
	addr := srv.Addr().String()
	srv.Close()
	if _, err := b.waitFor(ctx, 5*time.Second, "the page to notice", `document.getElementById("status").textContent === "reconnecting…"`); err != nil {
		t.Fatal(err)
	}
	srv2, err := Serve(nodes[0], Options{Addr: addr})
	if err != nil {
		t.Fatalf("serve again on %s: %v", addr, err)
	}
	t.Cleanup(func() { srv2.Close() })
	if _, err := b.waitFor(ctx, 10*time.Second, "the page to reconnect",
		`document.getElementById("status").textContent.startsWith("live")`); err != nil {
		t.Fatal(err)
	}
}

// TestBrowserRemoteSite: a peer in another site is drawn with its site,
// as text, in the address column.
func TestBrowserRemoteSite(t *testing.T) {
	leaktest.Check(t)
	b := startBrowser(t)
	n, id := remoteNode(t, hostile)
	srv, err := Serve(n, Options{Addr: "127.0.0.1:0", Sample: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { srv.Close() })
	b.open(srv.URL(), 1280, 1000)
	want := "site " + hostile + " (through the hub)"
	if _, err := b.waitFor(t.Context(), 10*time.Second, "the remote peer's site in the table",
		`document.querySelector('#peers tr[data-id="`+id.String()+`"] td.site')?.textContent === `+strconv.Quote(want)); err != nil {
		t.Fatal(err)
	}
	var imgs int
	if err := b.eval(`document.querySelectorAll("img").length`, &imgs); err != nil || imgs != 0 {
		t.Fatalf("%d img elements from the site (%v)", imgs, err)
	}
}
