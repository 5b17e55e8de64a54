package bench

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/discovery"
	"github.com/lanmesh/lanmesh/mesh"
)

// nodeSpec tells a node in a namespace host what to run. It travels as the
// node program's last argument, in JSON.
type nodeSpec struct {
	// Role is "discovery" (a Discoverer alone: its events) or "mesh" (a
	// Node: its peer events).
	Role      string
	Mesh      string
	NodeID    uuid.UUID
	Name      string
	Broadcast bool
	MDNS      bool
	// Silence and PingInterval set the links' (mesh; 0 keeps the default).
	Silence      time.Duration `json:",omitempty"`
	PingInterval time.Duration `json:",omitempty"`
	// FastRedial shortens the redial backoff (50-300 ms), so a peer that
	// comes back is linked again at once.
	FastRedial bool `json:",omitempty"`
	// WaitStart makes the node print "armed" and start only on SIGUSR1, so
	// that many nodes start together.
	WaitStart bool `json:",omitempty"`
	// Life bounds the node's run; it exits after it. Default 10 minutes.
	Life time.Duration `json:",omitempty"`
}

// nodeLine is one line a node prints: "armed", "ready" (At: just before
// the node starts), or an event ("found", "lost", "updated", "restarted"
// for discovery; "joined", "left", "restarted" for a mesh node) about the
// peer ID. At is the wall clock in Unix nanoseconds: the namespaces share
// the machine's clock, so it compares with the parent's.
type nodeLine struct {
	T      string
	ID     uuid.UUID
	At     int64
	Via    string `json:",omitempty"`
	Reason string `json:",omitempty"`
}

// RunNode runs one node in a namespace host for the namespace parts: the
// program that Options.NodeExe names calls it with the arguments after
// Options.NodeArgs (one: the node's spec). It prints one JSON line per fact
// on stdout and returns when ctx ends (SIGTERM or SIGINT, in the command),
// after closing the node.
func RunNode(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	if len(args) != 1 {
		return fmt.Errorf("bench node: want one argument, the node's spec in JSON; have %d", len(args))
	}
	var spec nodeSpec
	if err := json.Unmarshal([]byte(args[0]), &spec); err != nil {
		return fmt.Errorf("bench node: bad spec: %w", err)
	}
	if spec.Life <= 0 {
		spec.Life = 10 * time.Minute
	}
	ctx, cancel := context.WithTimeout(ctx, spec.Life)
	defer cancel()
	var mu sync.Mutex
	enc := json.NewEncoder(stdout)
	emit := func(l nodeLine) {
		mu.Lock()
		defer mu.Unlock()
		_ = enc.Encode(l)
	}
	if spec.WaitStart {
		go1 := make(chan os.Signal, 1)
		signal.Notify(go1, syscall.SIGUSR1)
		defer signal.Stop(go1)
		emit(nodeLine{T: "armed", ID: spec.NodeID, At: time.Now().UnixNano()})
		select {
		case <-go1:
		case <-ctx.Done():
			return nil
		}
	}
	switch spec.Role {
	case "discovery":
		return runDiscoveryNode(ctx, spec, emit)
	case "mesh":
		return runMeshNode(ctx, spec, emit)
	}
	return fmt.Errorf("bench node: unknown role %q", spec.Role)
}

func runDiscoveryNode(ctx context.Context, spec nodeSpec, emit func(nodeLine)) error {
	cfg := discovery.DefaultConfig()
	cfg.Mesh = spec.Mesh
	cfg.NodeID = spec.NodeID
	cfg.Name = spec.Name
	cfg.Port = 7000 // advertised only: nothing dials it
	cfg.Broadcast = spec.Broadcast
	cfg.MDNS = spec.MDNS
	ready := make(chan struct{})
	cfg.OnEvent = func(ev discovery.Event) {
		<-ready // the ready line comes first
		emit(nodeLine{T: ev.Kind.String(), ID: ev.Peer.ID, At: time.Now().UnixNano(),
			Via: ev.Peer.Via.String(), Reason: ev.Reason.String()})
	}
	return runGated(ctx, spec, emit, ready, func() (func() error, error) {
		d, err := discovery.New(cfg)
		if err != nil {
			return nil, err
		}
		return d.Close, nil
	})
}

// runGated starts a node with open, which returns how to stop it, prints
// the ready line stamped with the time open began, then lets the node's
// event lines (which wait on ready) through, and stops it when ctx ends.
func runGated(ctx context.Context, spec nodeSpec, emit func(nodeLine), ready chan struct{}, open func() (func() error, error)) error {
	start := time.Now()
	stop, err := open()
	if err != nil {
		close(ready)
		return err
	}
	emit(nodeLine{T: "ready", ID: spec.NodeID, At: start.UnixNano()})
	close(ready)
	<-ctx.Done()
	return stop()
}

func runMeshNode(ctx context.Context, spec nodeSpec, emit func(nodeLine)) error {
	cfg := mesh.DefaultNodeConfig()
	cfg.NodeID = spec.NodeID
	cfg.Name = spec.Name
	cfg.Mesh = spec.Mesh
	if spec.Silence > 0 {
		cfg.Link.Silence = spec.Silence
	}
	if spec.PingInterval > 0 {
		cfg.Link.PingInterval = spec.PingInterval
	}
	if spec.FastRedial {
		cfg.Net.RedialMin, cfg.Net.RedialMax = 50*time.Millisecond, 300*time.Millisecond
	}
	cfg.Discovery.Broadcast = spec.Broadcast
	cfg.Discovery.MDNS = spec.MDNS
	ready := make(chan struct{})
	cfg.OnPeer = func(ev mesh.PeerEvent) {
		<-ready
		l := nodeLine{T: ev.Kind.String(), ID: ev.Peer.ID, At: time.Now().UnixNano()}
		if ev.Err != nil {
			l.Reason = strings.ReplaceAll(ev.Err.Error(), "\n", " ")
		}
		emit(l)
	}
	return runGated(ctx, spec, emit, ready, func() (func() error, error) {
		n, err := mesh.NewNode(cfg)
		if err != nil {
			return nil, err
		}
		return func() error { return n.CloseReason("bench node stopped") }, nil
	})
}
