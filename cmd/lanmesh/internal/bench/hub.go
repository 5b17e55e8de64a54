package bench

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/lanmesh/lanmesh/hub"
	"github.com/lanmesh/lanmesh/mesh"
)

// The hub part measures what crossing sites through a hub costs, in one
// run on loopback: an embedded hub (127.0.0.1, any port) and in-process
// nodes with discovery off, in two sites. Site A has two nodes linked
// directly (the LAN link); site B one. Three round trips of a 32-byte
// message are timed alike: A to B by Node.Request through the hub, A to
// A over the direct link, and plain NATS request/reply between two
// connections of the same server (what the hub adds nothing to). Then
// presence: a new node starts in site B and joins the hub; the time until
// site A's node sees it join.

const (
	hubSiteA = "bench-a"
	hubSiteB = "bench-b"
	// natsEchoSubject is the plain-NATS baseline's subject.
	natsEchoSubject = "lanmesh.bench.echo"
	// hubWait bounds each wait of the part: a request, a join.
	hubWait = 10 * time.Second
)

const natsRTTName = "plain NATS request/reply, same server"

func runHub(ctx context.Context, r *runner) ([]Result, error) {
	return hubResults(ctx, r, pick(r, 5000, 500), pick(r, 10, 4))
}

// hubBench is the part's set-up: the hub, the nodes and the plain NATS
// connections.
type hubBench struct {
	srv    *hub.Server
	a1, a2 *mesh.Node // site A, linked to each other
	b1     *mesh.Node // site B
	joined chan uuid.UUID
	mod    configMod  // the nodes' configuration change (a mesh key)
	nc     *nats.Conn // the baseline's requester
}

// hubResults measures samples round trips of each way a rep, and the
// presence latency of trials new nodes a rep.
func hubResults(ctx context.Context, r *runner, samples, trials int) ([]Result, error) {
	var cl closers
	defer func() { cl.close() }()
	hb, err := startHubBench(ctx, &cl, nil)
	if err != nil {
		return nil, err
	}
	msg := &Bin32{}
	payload := make([]byte, 32)
	ways := []struct {
		name string
		once func(i int) error
	}{
		{"cross-site", func(i int) error {
			msg.Seq = uint64(i)
			rctx, cancel := context.WithTimeout(ctx, hubWait)
			defer cancel()
			_, err := hb.a1.Request(rctx, hb.b1.ID(), msg)
			return err
		}},
		{"LAN link", func(i int) error {
			msg.Seq = uint64(i)
			rctx, cancel := context.WithTimeout(ctx, hubWait)
			defer cancel()
			_, err := hb.a1.Request(rctx, hb.a2.ID(), msg)
			return err
		}},
		{"NATS", func(int) error {
			_, err := hb.nc.Request(natsEchoSubject, payload, hubWait)
			return err
		}},
	}
	buf := make([]time.Duration, samples)
	pcts := []struct {
		name string
		p    float64
	}{{"p50", 0.50}, {"p99", 0.99}}
	cols, err := r.repeat(ctx, "32 B round trip", func() ([]float64, error) {
		var v []float64
		for _, w := range ways {
			for i := range buf {
				t0 := time.Now()
				if err := w.once(i); err != nil {
					return nil, fmt.Errorf("%s: %w", w.name, err)
				}
				buf[i] = time.Since(t0)
			}
			slices.Sort(buf)
			for _, p := range pcts {
				v = append(v, Percentile(buf, p.p).Seconds())
			}
		}
		return v, nil
	}, func(v []float64) string {
		return fmt.Sprintf("p50: cross-site %s, LAN link %s, NATS %s", formatValue(v[0], UnitSeconds),
			formatValue(v[2], UnitSeconds), formatValue(v[4], UnitSeconds))
	})
	if err != nil {
		return nil, err
	}
	var out []Result
	np := len(pcts)
	for wi, name := range []string{"cross-site Request/Reply through the hub", "LAN link Request/Reply, same run"} {
		for pi, p := range pcts {
			res := Result{Name: fmt.Sprintf("32 B, %s, %s", name, p.name), Unit: UnitSeconds, Stat: Summarize(cols[wi*np+pi])}
			if wi == 0 && pi == 0 {
				res.Note = fmt.Sprintf("%d samples a rep; %s the LAN link", samples, timesOf(Summarize(cols[0]), Summarize(cols[np])))
			}
			out = append(out, res.withBaseline(natsRTTName, Summarize(cols[2*np+pi])))
		}
	}

	// The same cross-site round trip in a keyed mesh: every envelope
	// through the hub sealed and opened end to end.
	if mod := keyOption(); mod != nil {
		kb, err := startHubBench(ctx, &cl, mod)
		if err != nil {
			return out, fmt.Errorf("keyed: %w", err)
		}
		kcols, err := r.repeat(ctx, "32 B round trip, keyed", func() ([]float64, error) {
			for i := range buf {
				t0 := time.Now()
				msg.Seq = uint64(i)
				rctx, cancel := context.WithTimeout(ctx, hubWait)
				_, err := kb.a1.Request(rctx, kb.b1.ID(), msg)
				cancel()
				if err != nil {
					return nil, fmt.Errorf("cross-site, keyed: %w", err)
				}
				buf[i] = time.Since(t0)
			}
			slices.Sort(buf)
			var v []float64
			for _, p := range pcts {
				v = append(v, Percentile(buf, p.p).Seconds())
			}
			return v, nil
		}, func(v []float64) string { return "p50 " + formatValue(v[0], UnitSeconds) })
		if err != nil {
			return out, err
		}
		for pi, p := range pcts {
			res := Result{Name: fmt.Sprintf("32 B, cross-site Request/Reply through the hub, keyed mesh, %s", p.name),
				Unit: UnitSeconds, Stat: Summarize(kcols[pi])}
			if pi == 0 {
				res.Note = "sealed end to end; the baseline is the same run's plain NATS"
			}
			out = append(out, res.withBaseline(natsRTTName, Summarize(cols[2*np+pi])))
		}
	}

	n := 0
	pres, err := r.repeat(ctx, "presence", func() ([]float64, error) {
		d := make([]time.Duration, 0, trials)
		for range trials {
			n++
			t, err := hb.presence(ctx, n)
			if err != nil {
				return nil, err
			}
			d = append(d, t)
		}
		slices.Sort(d)
		return []float64{Percentile(d, 0.5).Seconds(), d[len(d)-1].Seconds()}, nil
	}, func(v []float64) string {
		return fmt.Sprintf("p50 %s, max %s", formatValue(v[0], UnitSeconds), formatValue(v[1], UnitSeconds))
	})
	if err != nil {
		return out, err
	}
	out = append(out,
		Result{Name: "presence: node starts in site B -> PeerJoined in site A, p50", Unit: UnitSeconds, Stat: Summarize(pres[0]),
			Note: fmt.Sprintf("%d trials a rep: NewNode, hub.Join, until the event", trials)},
		Result{Name: "presence, slowest trial", Unit: UnitSeconds, Stat: Summarize(pres[1])})
	return out, nil
}

// timesOf says how many times slower a is than b: "12.3×".
func timesOf(a, b Stat) string {
	if b.Median == 0 {
		return "? ×"
	}
	return fmt.Sprintf("%.1f×", a.Median/b.Median)
}

// hubNodeConfig is the configuration of a node of the part: the suite's
// in-process node (loopback, no discovery) whose stream the part reads.
func hubNodeConfig(name string, mod configMod) mesh.NodeConfig {
	return nodeConfig(name, "binary", mod)
}

// startHubBench starts the hub, the three nodes and their echoes, and the
// plain NATS pair; everything is closed by cl.
func startHubBench(ctx context.Context, cl *closers, mod configMod) (*hubBench, error) {
	hb := &hubBench{joined: make(chan uuid.UUID, 64), mod: mod}
	var err error
	if hb.srv, err = hub.StartServer(hub.ServerOptions{Listen: "127.0.0.1:0"}); err != nil {
		return nil, fmt.Errorf("starting the hub: %w", err)
	}
	cl.add(func() { hb.srv.Close() })

	start := func(name string) (*mesh.Node, error) {
		n, err := mesh.NewNode(hubNodeConfig(name, mod))
		if err != nil {
			return nil, err
		}
		cl.addNode(n)
		return n, nil
	}
	if hb.a1, err = start("bench-a1"); err != nil {
		return nil, err
	}
	if hb.a2, err = start("bench-a2"); err != nil {
		return nil, err
	}
	if hb.b1, err = start("bench-b1"); err != nil {
		return nil, err
	}
	if err := linkNodes(ctx, hb.a1, hb.a2); err != nil {
		return nil, err
	}
	// The echoes (and a1's watcher of joins) read the streams until the
	// nodes close.
	var wg sync.WaitGroup
	loopCtx, stop := context.WithCancel(ctx)
	cl.add(func() { stop(); wg.Wait() })
	for _, n := range []*mesh.Node{hb.a1, hb.a2, hb.b1} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			hb.serve(loopCtx, n)
		}()
	}
	for _, j := range []struct {
		n    *mesh.Node
		site string
	}{{hb.a1, hubSiteA}, {hb.a2, hubSiteA}, {hb.b1, hubSiteB}} {
		b, err := hub.Join(j.n, hub.Options{URL: hb.srv.URL(), Site: j.site})
		if err != nil {
			return nil, fmt.Errorf("%s joining the hub: %w", j.n.Name(), err)
		}
		cl.add(func() { b.Close() })
	}
	wctx, cancel := context.WithTimeout(ctx, hubWait)
	defer cancel()
	if err := waitLinked(wctx, hb.a1, hb.b1.ID()); err != nil {
		return nil, fmt.Errorf("site A never saw site B through the hub: %w", err)
	}
	if err := waitLinked(wctx, hb.b1, hb.a1.ID()); err != nil {
		return nil, fmt.Errorf("site B never saw site A through the hub: %w", err)
	}

	if hb.nc, err = natsEchoPair(hb.srv.URL(), cl); err != nil {
		return nil, fmt.Errorf("plain NATS: %w", err)
	}
	return hb, nil
}

// natsEchoPair connects twice to the NATS server at url: an echo that
// answers every request on natsEchoSubject with its data, and the
// requester it returns. cl closes both.
func natsEchoPair(url string, cl *closers) (*nats.Conn, error) {
	echo, err := nats.Connect(url, nats.Name("lanmesh-bench-echo"))
	if err != nil {
		return nil, err
	}
	cl.add(echo.Close)
	if _, err := echo.Subscribe(natsEchoSubject, func(m *nats.Msg) { m.Respond(m.Data) }); err != nil {
		return nil, err
	}
	// The subscription is known to the server once Flush returns.
	if err := echo.Flush(); err != nil {
		return nil, err
	}
	nc, err := nats.Connect(url, nats.Name("lanmesh-bench-requester"))
	if err != nil {
		return nil, err
	}
	cl.add(nc.Close)
	return nc, nil
}

// serve answers n's requests with their own message and, on a1, passes on
// the ids of the peers that join.
func (hb *hubBench) serve(ctx context.Context, n *mesh.Node) {
	for {
		m, err := n.Receive(ctx)
		if err != nil {
			return
		}
		if ev, ok := m.Msg.(*mesh.PeerEvent); ok {
			if n == hb.a1 && ev.Kind == mesh.PeerJoined {
				select {
				case hb.joined <- ev.Peer.ID:
				default: // nobody waits for this one
				}
			}
			continue
		}
		if m.IsRequest() {
			n.Reply(m, m.Msg)
		}
	}
}

// presence starts a node in site B, joins it to the hub, and returns the
// time from its start until a1 sees it join; the node leaves after.
func (hb *hubBench) presence(ctx context.Context, i int) (time.Duration, error) {
	t0 := time.Now()
	n, err := mesh.NewNode(hubNodeConfig(fmt.Sprintf("bench-b-new%d", i), hb.mod))
	if err != nil {
		return 0, err
	}
	defer n.Close()
	b, err := hub.Join(n, hub.Options{URL: hb.srv.URL(), Site: hubSiteB})
	if err != nil {
		return 0, fmt.Errorf("joining the hub: %w", err)
	}
	defer b.Close()
	deadline := time.After(hubWait)
	for {
		select {
		case id := <-hb.joined:
			if id == n.ID() {
				return time.Since(t0), nil
			}
		case <-deadline:
			return 0, fmt.Errorf("site A did not see a new node of site B join within %v", hubWait)
		case <-ctx.Done():
			return 0, ctx.Err()
		}
	}
}
