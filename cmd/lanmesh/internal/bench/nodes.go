package bench

import (
	"context"
	"errors"
	"fmt"
	"net"
	"time"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/mesh"
)

// benchMesh is the mesh name of the in-process nodes.
const benchMesh = "lanmesh-bench"

// configMod changes a node's configuration before it starts: the keyed part
// passes the one that turns a mesh key on.
type configMod func(*mesh.NodeConfig)

// nodeConfig is the configuration of an in-process node: loopback only, no
// discovery, the suite's registry, the default timers but a long silence
// (a loaded machine must not drop a link in the middle of a measurement).
func nodeConfig(name, codecName string, mod configMod) mesh.NodeConfig {
	cfg := mesh.DefaultNodeConfig()
	cfg.Name = name
	cfg.Mesh = benchMesh
	cfg.Codec = codecName
	cfg.Registry = registry
	cfg.Link.Silence = 10 * time.Second
	cfg.Net.Listen = []string{"127.0.0.1:0"}
	cfg.Discovery.Off = true
	if mod != nil {
		mod(&cfg)
	}
	return cfg
}

// messengerConfig is the Config of a Messenger with a node's identity and
// tunables.
func messengerConfig(nc mesh.NodeConfig) mesh.Config {
	cfg := mesh.DefaultConfig()
	cfg.NodeID, cfg.Name, cfg.Mesh, cfg.Codec = nc.NodeID, nc.Name, nc.Mesh, nc.Codec
	cfg.Registry, cfg.Keyring, cfg.Logger = nc.Registry, nc.Keyring, nc.Logger
	cfg.Link = nc.Link
	return cfg
}

// closers closes what a measurement opened, last first.
type closers []func()

func (c *closers) add(f func())         { *c = append(*c, f) }
func (c *closers) addNode(n *mesh.Node) { c.add(func() { n.Close() }) }
func (c closers) close() {
	for i := len(c) - 1; i >= 0; i-- {
		c[i]()
	}
}

// linkNodes links a to each of others (a dials) and waits, bounded, until
// every link is up at both ends.
func linkNodes(ctx context.Context, a *mesh.Node, others ...*mesh.Node) error {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, b := range others {
		if _, err := a.Connect(ctx, b.Addrs()[0].String()); err != nil {
			return fmt.Errorf("linking %s to %s: %w", a.Name(), b.Name(), err)
		}
	}
	for _, b := range others {
		if err := waitLinked(ctx, b, a.ID()); err != nil {
			return err
		}
		if err := waitLinked(ctx, a, b.ID()); err != nil {
			return err
		}
	}
	return nil
}

// waitLinked waits until n has a link to id.
func waitLinked(ctx context.Context, n *mesh.Node, id uuid.UUID) error {
	for {
		if p, err := n.Peer(id); err == nil && p.State == mesh.StateLinked {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("%s: no link to %s: %w", n.Name(), id, ctx.Err())
		case <-time.After(time.Millisecond):
		}
	}
}

// nodePair starts two nodes and links them.
func nodePair(ctx context.Context, codecName string, mod configMod, cl *closers) (a, b *mesh.Node, err error) {
	a, err = mesh.NewNode(nodeConfig("bench-a", codecName, mod))
	if err != nil {
		return nil, nil, err
	}
	cl.addNode(a)
	b, err = mesh.NewNode(nodeConfig("bench-b", codecName, mod))
	if err != nil {
		return nil, nil, err
	}
	cl.addNode(b)
	return a, b, linkNodes(ctx, a, b)
}

// tcpPair returns the two ends of a fresh loopback TCP connection.
func tcpPair(ctx context.Context) (client, server net.Conn, err error) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		return nil, nil, err
	}
	defer ln.Close()
	type accepted struct {
		c   net.Conn
		err error
	}
	ch := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		ch <- accepted{c, err}
	}()
	var d net.Dialer
	dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	client, err = d.DialContext(dctx, "tcp4", ln.Addr().String())
	if err != nil {
		return nil, nil, err
	}
	select {
	case a := <-ch:
		if a.err != nil {
			client.Close()
			return nil, nil, a.err
		}
		return client, a.c, nil
	case <-dctx.Done():
		client.Close()
		return nil, nil, errors.New("accept timed out")
	}
}

// sendRetry sends msg to id, waiting out backpressure as a game loop would
// until its next tick (a short one: spinning would take the CPU the
// receiver needs), for at most 10 s.
func sendRetry(n *mesh.Node, id uuid.UUID, msg any) error {
	var deadline time.Time
	for {
		err := n.Send(id, msg)
		if err == nil || !errors.Is(err, mesh.ErrBackpressure) {
			return err
		}
		if deadline.IsZero() {
			deadline = time.Now().Add(10 * time.Second)
		} else if time.Now().After(deadline) {
			return fmt.Errorf("send: backpressure for 10s: %w", err)
		}
		n.Xfer()
		time.Sleep(50 * time.Microsecond)
	}
}

// waitCount waits until count() reaches want, bounded by limit, and
// returns when it did (polling every 50 µs: a small error on a
// measurement of 0.2 s or more).
func waitCount(ctx context.Context, count func() int64, want int64, limit time.Duration) (time.Time, error) {
	deadline := time.Now().Add(limit)
	for {
		now := time.Now()
		if c := count(); c >= want {
			return now, nil
		} else if now.After(deadline) {
			return now, fmt.Errorf("%d of %d messages arrived within %v", c, want, limit)
		}
		if err := ctx.Err(); err != nil {
			return now, err
		}
		time.Sleep(50 * time.Microsecond)
	}
}
