package main

import (
	"context"
	"fmt"
	"net"
	"strings"

	"github.com/lanmesh/lanmesh/mesh"
	"github.com/lanmesh/lanmesh/web"
)

const webSummary = `Join a mesh and serve a live page of it: the mesh as a graph (this node
in the middle, each link with its round-trip time and messages per second,
how each peer was found, keyed or not), a timeline of peers joining and
leaving, a table of peers, and traffic by message type. The same data is at
/api/peers and /api/events (JSON) and /metrics (Prometheus). The page is on
this machine only (127.0.0.1) unless --http names another address.`

func runWeb(ctx context.Context, args []string, std stdio) error {
	fs := newFlags("web", webSummary, std.err)
	nf := addNodeFlags(fs)
	addr := fs.String("http", web.DefaultAddr, "serve the page at this `address`; one beyond loopback shows the mesh to the LAN")
	traffic := fs.Bool("traffic", true, "record the traffic log, for the page's traffic by message type")
	cfg, err := parseNode(fs, nf, args, std.err)
	if err != nil {
		return err
	}
	cfg.OnMessage = func(mesh.Message) {} // nothing reads them; the traffic log has counted them
	if warn := beyondLoopback(*addr); warn != "" {
		fmt.Fprintf(std.err, "lanmesh web: warning: %s\n", warn)
	}
	n, br, err := startNode(cfg, nf)
	if err != nil {
		return err
	}
	srv, err := web.Serve(n, web.Options{Addr: *addr, Keyed: cfg.Keyring.Keyed(), Traffic: *traffic, Logger: cfg.Logger})
	if err != nil {
		closeHub(br)
		n.Close()
		return fmt.Errorf("%w (choose another with --http)", err)
	}
	fmt.Fprintf(std.out, "lanmesh web: node %s in mesh %q; the page is at %s\n", n.Name(), cfg.Mesh, srv.URL())
	if br != nil {
		fmt.Fprintf(std.out, "lanmesh web: %s\n", describeHub(&nf.hub, br))
	}
	<-ctx.Done()
	srv.Close()
	closeHub(br)
	return n.CloseReason("interrupted")
}

// beyondLoopback says why serving at addr shows the mesh to others, or ""
// when addr is on loopback.
func beyondLoopback(addr string) string {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return "" // Serve will say what is wrong with it
	}
	if strings.EqualFold(host, "localhost") {
		return ""
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return ""
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		return fmt.Sprintf("--http %s serves the page on every interface: anyone who can reach this machine sees the mesh's names, addresses and traffic (read-only)", addr)
	}
	return fmt.Sprintf("--http %s serves the page beyond this machine: anyone who can reach %s sees the mesh's names, addresses and traffic (read-only)", addr, host)
}
