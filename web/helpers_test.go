package web

import (
	"fmt"
	"net"
	"testing"
	"time"

	"github.com/lanmesh/lanmesh/mesh"
)

// This file and the tests reach mesh only to make nodes, as a program
// would.

func freeUDPPort(t testing.TB) int {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// startNode starts a node named name on loopback (discovery on
// 127.255.255.255:beaconPort only, short timers), closed at the end of the
// test.
func startNode(t *testing.T, mesh_ string, beaconPort int, name string, adjust ...func(*mesh.NodeConfig)) *mesh.Node {
	t.Helper()
	cfg := mesh.DefaultNodeConfig()
	cfg.Mesh = mesh_
	cfg.Name = name
	cfg.Codec = "json"
	cfg.Link.PingInterval = 100 * time.Millisecond
	cfg.Link.Silence = time.Second
	cfg.Net.DialGrace = 50 * time.Millisecond
	cfg.Net.RedialMin = 20 * time.Millisecond
	cfg.Net.RedialMax = 200 * time.Millisecond
	cfg.UseLoopback(beaconPort)
	d := &cfg.Discovery
	d.Interval = 200 * time.Millisecond
	d.Jitter = 20 * time.Millisecond
	d.LostAfter = 800 * time.Millisecond
	for _, f := range adjust {
		f(&cfg)
	}
	n, err := mesh.NewNode(cfg)
	if err != nil {
		t.Fatalf("node %s: %v", name, err)
	}
	t.Cleanup(func() { n.Close() })
	return n
}

func linked(n *mesh.Node) int {
	c := 0
	for _, p := range n.Peers() {
		if p.State == mesh.StateLinked {
			c++
		}
	}
	return c
}

// waitUntil polls cond until it holds, failing the test after timeout.
func waitUntil(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// startMesh starts nodes with the names given on one loopback mesh and
// waits until each is linked with every other.
func startMesh(t *testing.T, names ...string) []*mesh.Node {
	t.Helper()
	return startMeshWith(t, nil, names...)
}

// startMeshWith is startMesh with each node's config adjusted.
func startMeshWith(t *testing.T, adjust func(*mesh.NodeConfig), names ...string) []*mesh.Node {
	t.Helper()
	var adj []func(*mesh.NodeConfig)
	if adjust != nil {
		adj = append(adj, adjust)
	}
	port := freeUDPPort(t)
	meshName := fmt.Sprintf("web-test-%d", port)
	nodes := make([]*mesh.Node, len(names))
	for i, name := range names {
		nodes[i] = startNode(t, meshName, port, name, adj...)
	}
	waitUntil(t, 10*time.Second, "a full mesh", func() bool {
		for _, n := range nodes {
			if linked(n) != len(nodes)-1 {
				return false
			}
		}
		return true
	})
	return nodes
}
