package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/lanmeshtest/netlab"
	"github.com/lanmesh/lanmesh/safetext"
)

// The namespace parts run nodes as processes in the hosts of a netlab LAN;
// see RunNode for the child's side.

// nsCheck says why the namespace parts cannot run here, as a skip.
func nsCheck(r *runner) error {
	if err := netlab.Available(); err != nil {
		return skip("needs root and ip(8) to build network namespaces (%v)", err)
	}
	if r.opts.NodeExe == "" {
		return skip("no node program to run in the namespaces (Options.NodeExe is empty)")
	}
	return nil
}

// nsSession is one lab and the nodes started in it; close removes them all.
type nsSession struct {
	r     *runner
	lab   *netlab.Lab
	nodes []*nsNode
}

func newSession(ctx context.Context, r *runner, hosts int) (*nsSession, error) {
	if err := nsCheck(r); err != nil {
		return nil, err
	}
	r.progressf("building a LAN of %d network namespaces", hosts)
	lab, err := netlab.Build(ctx, hosts)
	if err != nil {
		return nil, err
	}
	return &nsSession{r: r, lab: lab}, nil
}

// close kills every node still running and removes the lab.
func (s *nsSession) close() {
	for _, n := range s.nodes {
		n.proc.Kill()
	}
	if err := s.lab.Close(); err != nil {
		s.r.progressf("removing the lab: %v", err)
	}
}

// nsNode is a node process seen from the parent.
type nsNode struct {
	host  *netlab.Host
	proc  *netlab.Proc
	spec  nodeSpec
	lines []nodeLine // every line read so far, in order
}

var specSeq atomic.Uint32

// start runs a node with spec in h and waits for its first line (armed,
// or ready).
func (s *nsSession) start(ctx context.Context, h *netlab.Host, spec nodeSpec) (*nsNode, error) {
	n, err := s.spawn(h, spec)
	if err != nil {
		return nil, err
	}
	_, err = n.waitFrom(ctx, 20*time.Second, 0, func(l nodeLine) bool { return l.T == "armed" || l.T == "ready" })
	return n, err
}

// spawn runs a node without waiting for it.
func (s *nsSession) spawn(h *netlab.Host, spec nodeSpec) (*nsNode, error) {
	if spec.NodeID == uuid.Nil {
		spec.NodeID = uuid.New()
	}
	if spec.Name == "" {
		spec.Name = fmt.Sprintf("%s-%d", h.Name, specSeq.Add(1))
	}
	js, err := json.Marshal(spec)
	if err != nil {
		return nil, err
	}
	args := append(slices.Clone(s.r.opts.NodeArgs), string(js))
	p, err := h.Start(s.r.opts.NodeExe, args, s.r.opts.NodeEnv...)
	if err != nil {
		return nil, err
	}
	n := &nsNode{host: h, proc: p, spec: spec}
	s.nodes = append(s.nodes, n)
	return n, nil
}

// mark is the position after the lines read so far.
func (n *nsNode) mark() int { return len(n.lines) }

// waitFrom returns the first line at or after position from that match
// accepts, reading more as needed, within timeout.
func (n *nsNode) waitFrom(ctx context.Context, timeout time.Duration, from int, match func(nodeLine) bool) (nodeLine, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	for i := from; ; i++ {
		for i >= len(n.lines) {
			select {
			case s, ok := <-n.proc.Lines():
				if !ok {
					return nodeLine{}, fmt.Errorf("node %s on %s exited: %s", n.spec.Name, n.host.Name, strings.TrimSpace(n.proc.Stderr()))
				}
				var l nodeLine
				if json.Unmarshal([]byte(s), &l) == nil && l.T != "" {
					n.lines = append(n.lines, l)
				}
			case <-t.C:
				return nodeLine{}, fmt.Errorf("node %s on %s: nothing expected within %v", n.spec.Name, n.host.Name, timeout)
			case <-ctx.Done():
				return nodeLine{}, ctx.Err()
			}
		}
		if match(n.lines[i]) {
			return n.lines[i], nil
		}
	}
}

// ready returns the node's ready line.
func (n *nsNode) ready(ctx context.Context) (nodeLine, error) {
	return n.waitFrom(ctx, 20*time.Second, 0, func(l nodeLine) bool { return l.T == "ready" })
}

func at(ns int64) time.Time { return time.Unix(0, ns) }

func is(kind string, id uuid.UUID) func(nodeLine) bool {
	return func(l nodeLine) bool { return l.T == kind && l.ID == id }
}

// stop stops a node gracefully (SIGTERM), or kills it after 5 s.
func (n *nsNode) stop() error {
	err := n.proc.Stop(5 * time.Second)
	var ee interface{ ExitCode() int }
	if errors.As(err, &ee) && ee.ExitCode() >= 0 {
		return fmt.Errorf("node %s exited with %v: %s", n.spec.Name, err, strings.TrimSpace(n.proc.Stderr()))
	}
	return nil
}

// runDiscovery: start of a node to Found on another host, by broadcast and
// by mDNS alone. Each trial starts a new node (a new id) in the second host
// while a node runs in the first.
func runDiscovery(ctx context.Context, r *runner) ([]Result, error) {
	s, err := newSession(ctx, r, 2)
	if err != nil {
		return nil, err
	}
	defer s.close()
	trials := pick(r, 15, 3)
	var out []Result
	for _, mode := range []struct {
		name            string
		broadcast, mdns bool
	}{{"broadcast", true, false}, {"mDNS alone", false, true}} {
		spec := nodeSpec{Role: "discovery", Mesh: "bench-disc-" + strings.Fields(mode.name)[0], Broadcast: mode.broadcast, MDNS: mode.mdns}
		watcher, err := s.start(ctx, s.lab.Hosts[0], spec)
		if err != nil {
			return out, err
		}
		if _, err := watcher.ready(ctx); err != nil {
			return out, err
		}
		cols, err := r.repeatN(ctx, mode.name, trials, func() ([]float64, error) {
			n, err := s.start(ctx, s.lab.Hosts[1], spec)
			if err != nil {
				return nil, err
			}
			rd, err := n.ready(ctx)
			if err != nil {
				return nil, err
			}
			byOld, err := watcher.waitFrom(ctx, 5*time.Second, 0, is("found", n.spec.NodeID))
			if err != nil {
				return nil, err
			}
			byNew, err := n.waitFrom(ctx, 5*time.Second, 0, is("found", watcher.spec.NodeID))
			if err != nil {
				return nil, err
			}
			if err := n.stop(); err != nil {
				return nil, err
			}
			return []float64{at(byOld.At).Sub(at(rd.At)).Seconds(), at(byNew.At).Sub(at(rd.At)).Seconds()}, nil
		}, func(v []float64) string {
			return fmt.Sprintf("found by the other host after %s, found it after %s", formatValue(v[0], UnitSeconds), formatValue(v[1], UnitSeconds))
		})
		if err != nil {
			return out, err
		}
		if err := watcher.stop(); err != nil {
			return out, err
		}
		note := fmt.Sprintf("%d trials, default timers", trials)
		if mode.broadcast {
			note += "; aim: under 50 ms"
		}
		out = append(out,
			Result{Name: "start -> Found on another host, " + mode.name, Unit: UnitSeconds, Stat: Summarize(cols[0]), Note: note},
			Result{Name: "start -> the new node finds the other, " + mode.name, Unit: UnitSeconds, Stat: Summarize(cols[1])},
		)
	}
	return out, nil
}

// runMeshForm: N nodes, one per host, told to start at once (SIGUSR1 to
// all), to every node linked with every other; default configuration
// (broadcast and mDNS, default timers).
func runMeshForm(ctx context.Context, r *runner) ([]Result, error) {
	sizes := pick(r, []int{2, 5, 10, 32}, []int{2, 5})
	s, err := newSession(ctx, r, slices.Max(sizes))
	if err != nil {
		return nil, err
	}
	defer s.close()
	var out []Result
	round := 0
	for _, size := range sizes {
		what := fmt.Sprintf("N=%d", size)
		cols, err := r.repeat(ctx, what, func() ([]float64, error) {
			round++
			d, err := formMesh(ctx, s, size, fmt.Sprintf("bench-mesh-%d", round))
			if err != nil {
				return nil, err
			}
			return []float64{d.Seconds()}, nil
		}, func(v []float64) string {
			return "full mesh after " + formatValue(v[0], UnitSeconds)
		})
		if err != nil {
			return out, fmt.Errorf("%s: %w", what, err)
		}
		links := size * (size - 1) / 2
		out = append(out, Result{Name: fmt.Sprintf("N=%d nodes to a full mesh (%d link%s)", size, links, plural(links)),
			Unit: UnitSeconds, Stat: Summarize(cols[0]), Note: "from the start signal to the last node's last PeerJoined"})
	}
	return out, nil
}

// formMesh starts size nodes of a new mesh, one in each of the first size
// hosts, and returns the time from telling them all to start to the last
// link reported joined by both its ends. The nodes are killed after.
func formMesh(ctx context.Context, s *nsSession, size int, meshName string) (time.Duration, error) {
	var nodes []*nsNode
	defer func() {
		for _, n := range nodes {
			n.proc.Kill()
		}
	}()
	for _, h := range s.lab.Hosts[:size] {
		n, err := s.spawn(h, nodeSpec{Role: "mesh", Mesh: meshName, Broadcast: true, MDNS: true, WaitStart: true})
		if err != nil {
			return 0, err
		}
		nodes = append(nodes, n)
	}
	for _, n := range nodes {
		if _, err := n.waitFrom(ctx, 30*time.Second, 0, func(l nodeLine) bool { return l.T == "armed" }); err != nil {
			return 0, err
		}
	}
	t0 := time.Now()
	for _, n := range nodes {
		if err := n.proc.Signal(syscall.SIGUSR1); err != nil {
			return 0, err
		}
	}
	var last time.Time
	for _, n := range nodes {
		for _, o := range nodes {
			if o == n {
				continue
			}
			l, err := n.waitFrom(ctx, 30*time.Second, 0, func(l nodeLine) bool {
				return (l.T == "joined" || l.T == "restarted") && l.ID == o.spec.NodeID
			})
			if err != nil {
				return 0, err
			}
			if t := at(l.At); t.After(last) {
				last = t
			}
		}
	}
	return last.Sub(t0), nil
}

// runLiveness: a peer killed with SIGKILL (its host's kernel closes the
// connection) and a peer cut off (its interface down: nothing more
// arrives), each seen as left by a node in another host. Links have a
// short Silence so that the second takes a second, not the default 3 s.
func runLiveness(ctx context.Context, r *runner) ([]Result, error) {
	const silence = time.Second
	s, err := newSession(ctx, r, 2)
	if err != nil {
		return nil, err
	}
	defer s.close()
	spec := nodeSpec{Role: "mesh", Mesh: "bench-live", Broadcast: true, MDNS: true,
		Silence: silence, PingInterval: 100 * time.Millisecond, FastRedial: true}
	watcher, err := s.start(ctx, s.lab.Hosts[0], spec)
	if err != nil {
		return nil, err
	}
	victimHost := s.lab.Hosts[1]
	// linked starts a victim and waits until the watcher has joined it.
	linked := func() (*nsNode, error) {
		m := watcher.mark()
		v, err := s.start(ctx, victimHost, spec)
		if err != nil {
			return nil, err
		}
		_, err = watcher.waitFrom(ctx, 15*time.Second, m, func(l nodeLine) bool {
			return (l.T == "joined" || l.T == "restarted") && l.ID == v.spec.NodeID
		})
		return v, err
	}
	var killReason string
	killed, err := r.repeat(ctx, "killed peer", func() ([]float64, error) {
		v, err := linked()
		if err != nil {
			return nil, err
		}
		m := watcher.mark()
		t0 := time.Now()
		if err := v.proc.Kill(); err != nil {
			return nil, err
		}
		l, err := watcher.waitFrom(ctx, silence+5*time.Second, m, is("left", v.spec.NodeID))
		if err != nil {
			return nil, err
		}
		killReason = l.Reason
		return []float64{at(l.At).Sub(t0).Seconds()}, nil
	}, func(v []float64) string { return "seen as left after " + formatValue(v[0], UnitSeconds) })
	if err != nil {
		return nil, err
	}
	var silentReason string
	silent, err := r.repeat(ctx, "silent peer", func() ([]float64, error) {
		v, err := linked()
		if err != nil {
			return nil, err
		}
		defer v.proc.Kill()
		m := watcher.mark()
		t0 := time.Now()
		if err := victimHost.LinkDown(); err != nil {
			return nil, err
		}
		// With resumable links (the default) the peer is resuming, not
		// left: its session waits out ResumeConfig.Window for the cable.
		// Noticing is what is timed.
		l, err := watcher.waitFrom(ctx, 2*silence+5*time.Second, m, func(l nodeLine) bool {
			return (l.T == "resuming" || l.T == "left") && l.ID == v.spec.NodeID
		})
		if err != nil {
			victimHost.LinkUp()
			return nil, err
		}
		silentReason = l.T + " (" + shortReason(l.Reason) + ")"
		v.proc.Kill()
		if err := victimHost.LinkUp(); err != nil {
			return nil, err
		}
		return []float64{at(l.At).Sub(t0).Seconds()}, nil
	}, func(v []float64) string { return "noticed after " + formatValue(v[0], UnitSeconds) })
	if err != nil {
		return nil, err
	}
	limit := silence.Seconds()
	return []Result{
		{Name: "killed peer (kill -9) seen as left", Unit: UnitSeconds, Stat: Summarize(killed[0]),
			Note: "its kernel closes the connection; left with: " + shortReason(killReason)},
		Result{Name: "silent peer (interface down) noticed", Unit: UnitSeconds, Stat: Summarize(silent[0]),
			Note: fmt.Sprintf("Silence %v, pings every %v; seen as %s", silence, spec.PingInterval, silentReason)}.
			withBaseline("the configured Silence", Stat{Median: limit, Min: limit, Max: limit, N: 1}),
	}, nil
}

// shortReason keeps the gist of a left event's error: the words of its
// last "mesh: " sentinel ("connection lost", "peer silent").
// shortReason is the gist of a node's error text, escaped for the
// terminal (it may quote a peer's words).
func shortReason(s string) string {
	if i := strings.LastIndex(s, "mesh: "); i >= 0 {
		s = s[i+len("mesh: "):]
	}
	if i := strings.IndexAny(s, ":("); i >= 0 {
		s = s[:i]
	}
	return safetext.Line(strings.TrimSpace(s))
}

func plural(n int) string {
	if n == 1 {
		return ""
	}
	return "s"
}
