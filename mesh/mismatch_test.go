package mesh

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/discovery"
)

// warnLog is a log destination for several goroutines.
type warnLog = syncBuffer

// TestNodeTellsCodecMismatchOnce: two nodes of one mesh that speak two
// codecs each say why they never link, at Warn, once, however many
// beacons and redials pass.
func TestNodeTellsCodecMismatchOnce(t *testing.T) {
	for _, nn := range nodeNets(t) {
		t.Run(nn.name, func(t *testing.T) {
			logs := []*warnLog{{}, {}}
			nodes := startNodes(t, nn, 2, func(i int, c *NodeConfig) {
				c.Logger = slog.New(slog.NewTextHandler(logs[i], &slog.HandlerOptions{Level: slog.LevelWarn}))
				if i == 1 {
					c.Codec = "json"
				}
			})
			want := []string{"heard node1", "heard node0"}
			says := []string{"speaking json; this node speaks binary: they will never link",
				"speaking binary; this node speaks json: they will never link"}
			for i := range nodes {
				waitUntil(t, 10*time.Second, "the warning", func() bool {
					s := logs[i].String()
					return strings.Contains(s, want[i]) && strings.Contains(s, says[i])
				})
			}
			time.Sleep(500 * time.Millisecond) // several redials: still one line
			for i := range nodes {
				if k := strings.Count(logs[i].String(), "will never link"); k != 1 {
					t.Errorf("node %d warned %d times:\n%s", i, k, logs[i])
				}
			}
		})
	}
}

// TestProbeReadsHelloWithoutJoining: Probe learns a node's codec and mesh
// and the node reports no peer.
func TestProbeReadsHelloWithoutJoining(t *testing.T) {
	nn := nodeNet{name: "loopback", beaconPort: freeUDPPort(t)}
	n := startNodes(t, nn, 1, func(i int, c *NodeConfig) { c.Codec = "msgpack" })[0]
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	r, err := Probe(ctx, n.Addrs()[0].String(), true)
	if err != nil {
		t.Fatal(err)
	}
	if !r.HasHello || r.Codec != "msgpack" || r.NodeID != n.ID() || r.Connect <= 0 {
		t.Errorf("probe: %+v", r)
	}
	time.Sleep(100 * time.Millisecond)
	if ev, ok := n.Get(); ok {
		t.Errorf("the probed node saw %v", ev)
	}
}

// TestNodeTellsUnreachablePeer: a peer whose beacons arrive but whose TCP
// port refuses is told of once, after a few dials, at Warn.
func TestNodeTellsUnreachablePeer(t *testing.T) {
	nn := nodeNet{name: "loopback", beaconPort: freeUDPPort(t)}
	var logs warnLog
	node := startNodes(t, nn, 1, func(i int, c *NodeConfig) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, &slog.HandlerOptions{Level: slog.LevelWarn}))
	})[0]
	// A port with nobody behind it.
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := portOf(ln.Addr())
	ln.Close()
	conn, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: nn.beaconPort})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	b := discovery.Beacon{ID: uuid.New(), Instance: uuid.New(), Port: dead, Mesh: node.link.Mesh, Name: "ghost"}
	p, err := b.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	want := fmt.Sprintf("heard ghost at 127.0.0.1:%d, but its TCP port refuses connections (3 tries)", dead)
	defer func() {
		if t.Failed() {
			t.Log(logs.String())
		}
	}()
	defer func() {
		if t.Failed() {
			t.Log(logs.String())
		}
	}()
	waitUntil(t, 10*time.Second, "the warning", func() bool {
		conn.Write(p) // keep the ghost alive
		time.Sleep(20 * time.Millisecond)
		return strings.Contains(logs.String(), want)
	})
	if n := strings.Count(logs.String(), "refuses connections"); n != 1 {
		t.Errorf("warned %d times:\n%s", n, logs.String())
	}
}
