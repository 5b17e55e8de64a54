// Command cpumon is a cpu monitor for a LAN, on lanmesh. Run it on every
// machine of a LAN: each shares its CPU, load, memory, swap and
// temperature every few seconds, and each shows a table of all of them,
// refreshed in place. A machine that leaves drops out of the table.
//
//	go run ./examples/cpumon                    # on each machine; q quits
//	go run ./examples/cpumon -interval 5s       # share less often
//	go run ./examples/cpumon -web 127.0.0.1:8280 # and a live page, with charts
//	go run ./examples/cpumon -cablecar          # also see cable_car's cpu_mon.py
//	go run ./examples/cpumon -plain             # print each table, for logs
//
// It is written as a loop at the sampling rate: sample, send, Xfer, drain
// Get (messages and peer events, in one ordered stream), draw. Nothing in it blocks on the network.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"os"
	"os/signal"
	"slices"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/gdamore/tcell/v2"
	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/discovery"
	"github.com/lanmesh/lanmesh/mesh"
	"github.com/lanmesh/lanmesh/safetext"
	"github.com/lanmesh/lanmesh/web"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := run(ctx, os.Args[1:], os.Stdout, os.Stderr)
	stop()
	os.Exit(code)
}

// run is the whole program, so that tests can run it in their process.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	fs := flag.NewFlagSet("cpumon", flag.ContinueOnError)
	fs.SetOutput(stderr)
	host, _ := os.Hostname()
	meshName := fs.String("mesh", "cpumon", "the mesh to join; every monitor of a LAN that should see the others uses the same")
	name := fs.String("name", host, "the name this machine goes by")
	interval := fs.Duration("interval", 2*time.Second, "time between samples")
	codecName := fs.String("codec", "binary", "codec: binary, msgpack or json; every monitor must agree")
	plain := fs.Bool("plain", false, "print each table below the last, with a separator, instead of redrawing in place")
	loopback := fs.Bool("loopback", false, "stay on this machine (for trying several monitors on one machine)")
	beaconPort := fs.Int("beacon-port", 8222, "UDP port of discovery beacons")
	webAddr := fs.String("web", "", "also serve a live page of the machines at this `address` (127.0.0.1:8280: this machine only)")
	cablecar := fs.Bool("cablecar", false, "also show, and be shown by, cable_car's Python cpu_mon.py (UDP 8226, TCP 8227)")
	ccPort := fs.Int("cablecar-port", cableCarPort, "TCP `port` of cable_car's cpu monitor")
	ccBeacon := fs.Int("cablecar-beacon-port", cableCarBeaconPort, "UDP `port` of cable_car's cpu monitor's \"BROADCAST\"")
	verbose := fs.Bool("v", false, "log the node's events on stderr")
	if err := fs.Parse(args); err != nil {
		if err == flag.ErrHelp {
			return 0
		}
		return 2
	}
	if *interval <= 0 || fs.NArg() > 0 {
		fmt.Fprintln(stderr, "cpumon: want a positive -interval and no arguments")
		return 2
	}

	cfg := mesh.DefaultNodeConfig()
	cfg.Mesh, cfg.Name, cfg.Codec = *meshName, truncate(*name, maxHost), *codecName
	cfg.Discovery.BeaconPort = *beaconPort
	if *loopback {
		cfg.UseLoopback(*beaconPort)
	}
	if *cablecar {
		cc := &cfg.CableCar
		cc.Enabled, cc.Codec, cc.Interval = true, "json", cableCarInterval*time.Second
		cc.PeerPort, cc.BeaconPort, cc.Listen = *ccPort, *ccBeacon, fmt.Sprintf(":%d", *ccPort)
		if *loopback {
			cc.Listen = fmt.Sprintf("127.0.0.1:%d", *ccPort)
			cc.Destinations = []netip.AddrPort{netip.AddrPortFrom(discovery.LoopbackBroadcast, uint16(*ccBeacon))}
		}
	}
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	cfg.Logger = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
	node, err := mesh.NewNode(cfg)
	if err != nil {
		fmt.Fprintln(stderr, "cpumon:", err)
		return 1
	}
	defer node.CloseReason("cpumon stopped")

	m := &monitor{node: node, name: cfg.Name, rows: map[uuid.UUID]Stats{}, py: map[uuid.UUID]bool{},
		peers: map[uuid.UUID]bool{}, out: stdout, plain: *plain}
	if *webAddr != "" {
		m.web, err = web.Serve(node, web.Options{Addr: *webAddr, Keyed: cfg.Keyring.Keyed(), Traffic: true, Logger: cfg.Logger})
		if err != nil {
			fmt.Fprintln(stderr, "cpumon:", err)
			return 1
		}
		defer m.web.Close()
		fmt.Fprintf(stderr, "cpumon: the page is at %s\n", m.web.URL())
	}
	if f, ok := stdout.(*os.File); ok && !*plain && isTerminal(f) {
		if err := m.screen(ctx, *interval); err != nil {
			fmt.Fprintln(stderr, "cpumon:", err)
			return 1
		}
		return 0
	}
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	for {
		m.tick(ctx)
		m.draw()
		select {
		case <-tick.C:
		case <-ctx.Done():
			return 0
		}
	}
}

func isTerminal(f *os.File) bool {
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// monitor is the state of the loop: the last Stats of every machine.
type monitor struct {
	node  *mesh.Node
	name  string
	rows  map[uuid.UUID]Stats // by node id: two machines may share a name
	py    map[uuid.UUID]bool  // rows of cable_car's cpu_mon.py
	peers map[uuid.UUID]bool  // linked peers; true for cable_car ones
	web   *web.Server         // nil without -web
	out   io.Writer
	plain bool
	drawn bool
}

// tick is one turn of the loop.
func (m *monitor) tick(ctx context.Context) {
	own := sample(ctx, m.name)
	self := m.node.ID()
	m.rows[self] = own
	// Each peer in its own tongue: a cable_car program knows only MsgStats.
	py := toPy(own)
	send := func(id uuid.UUID, cc bool) {
		if cc {
			m.node.Send(id, py)
		} else {
			m.node.Send(id, &own)
		}
	}
	for id, cc := range m.peers {
		send(id, cc)
	}
	m.node.Xfer()
	// One stream, in order: a peer's PeerJoined comes before its messages
	// and its PeerLeft after its last one.
	for msg, ok := m.node.Get(); ok; msg, ok = m.node.Get() {
		switch v := msg.Msg.(type) {
		case *mesh.PeerEvent:
			switch v.Kind {
			case mesh.PeerJoined, mesh.PeerRestarted:
				cc := isCableCar(v.Peer)
				m.peers[v.Peer.ID] = cc
				send(v.Peer.ID, cc) // a newcomer sees this machine at once
			case mesh.PeerLeft:
				delete(m.peers, v.Peer.ID)
				delete(m.rows, v.Peer.ID)
				delete(m.py, v.Peer.ID)
				if m.web != nil {
					m.web.Forget(v.Peer.ID.String())
				}
			}
		case *Stats:
			m.rows[msg.From] = *v
		case *pyStats:
			m.rows[msg.From] = fromPy(v)
			m.py[msg.From] = true
		}
	}
	if m.web != nil {
		for id, s := range m.rows {
			m.web.Chart(id.String(), s.Host, figures(s)...)
		}
	}
}

// figures are a machine's figures for the page's charts.
func figures(s Stats) []web.Figure {
	f := []web.Figure{
		{Name: "cpu", Unit: "%", Max: 100, Value: float64(s.CPU)},
		{Name: "load 1", Value: float64(s.Load1)},
		{Name: "memory", Unit: "%", Max: 100, Value: float64(s.MemPercent)},
		{Name: "swap", Unit: "%", Max: 100, Value: float64(s.SwapPercent)},
	}
	if s.Temp > 0 {
		f = append(f, web.Figure{Name: "temp", Unit: "°C", Max: 100, Value: float64(s.Temp)})
	}
	return f
}

// table is the table and, unless plain, its legend, as lines of text.
func (m *monitor) table() []byte {
	var buf bytes.Buffer
	render(&buf, m.rows, m.py, m.node.ID(), time.Now())
	if !m.plain {
		buf.WriteString(legend)
	}
	return buf.Bytes()
}

// legend explains every mark of the table.
const legend = `
* this machine   ~ cable_car's Python cpu_mon.py   - not reported (no sensor)
CPU: busy share of all cores; LOAD: 1, 5, 15 minute load averages; MEM, SWAP: used share of TOTAL
`

// draw prints the table: in place (ANSI: cursor home, each line cleared to
// its end, the rest of the screen cleared), or below the last one (plain,
// for logs: the legend is printed once, before the first).
func (m *monitor) draw() {
	buf := m.table()
	if m.plain {
		// The legend once, first; then tables, each ended by "--".
		if !m.drawn {
			buf = append([]byte(strings.TrimPrefix(legend, "\n")+"--\n"), buf...)
			m.drawn = true
		}
		m.out.Write(append(buf, "--\n"...))
		return
	}
	var screen bytes.Buffer
	if !m.drawn {
		screen.WriteString("\x1b[2J")
		m.drawn = true
	}
	screen.WriteString("\x1b[H")
	for _, line := range bytes.SplitAfter(buf, []byte("\n")) {
		screen.Write(bytes.TrimSuffix(line, []byte("\n")))
		if len(line) > 0 {
			screen.WriteString("\x1b[K\n")
		}
	}
	screen.WriteString("\x1b[J")
	m.out.Write(screen.Bytes())
}

// screen runs the loop on a terminal until q, Esc or Ctrl-C (or ctx, for
// SIGTERM): the table on the terminal's alternate screen, which is given
// back as it was on every way out.
func (m *monitor) screen(ctx context.Context, interval time.Duration) error {
	s, err := tcell.NewScreen()
	if err != nil {
		return err
	}
	if err := s.Init(); err != nil {
		return err
	}
	defer s.Fini()
	return m.loop(ctx, s, interval)
}

// loop is screen's loop on an initialised screen (a simulated one in
// tests).
func (m *monitor) loop(ctx context.Context, s tcell.Screen, interval time.Duration) error {
	events := make(chan tcell.Event, 16)
	quit := make(chan struct{})
	done := make(chan struct{})
	go func() { defer close(done); s.ChannelEvents(events, quit) }()
	defer func() { close(quit); <-done }()
	tick := time.NewTicker(interval)
	defer tick.Stop()
	show := func() { paint(s, append(m.table(), "q quits\n"...)) }
	m.tick(ctx)
	show()
	for {
		select {
		case ev := <-events:
			switch ev := ev.(type) {
			case *tcell.EventKey:
				if ev.Key() == tcell.KeyEscape || ev.Key() == tcell.KeyCtrlC || ev.Rune() == 'q' || ev.Rune() == 'Q' {
					return nil
				}
			case *tcell.EventResize:
				s.Sync()
				show()
			}
		case <-tick.C:
			m.tick(ctx)
			show()
		case <-ctx.Done():
			return nil
		}
	}
}

// paint puts text on the screen, line by line, from the top left.
func paint(s tcell.Screen, text []byte) {
	s.Clear()
	bold := tcell.StyleDefault.Bold(true)
	for y, line := range strings.Split(strings.TrimRight(string(text), "\n"), "\n") {
		style := tcell.StyleDefault
		if y == 1 {
			style = bold
		}
		x := 0
		for _, r := range line {
			s.SetContent(x, y, r, nil, style)
			x++
		}
	}
	s.Show()
}

// render writes the table of rows, sorted by host name, this machine
// marked with a star and cable_car's machines with a tilde. Host names
// come from the network: they are made safe for a terminal.
func render(w io.Writer, rows map[uuid.UUID]Stats, py map[uuid.UUID]bool, self uuid.UUID, now time.Time) {
	ids := make([]uuid.UUID, 0, len(rows))
	for id := range rows {
		ids = append(ids, id)
	}
	slices.SortFunc(ids, func(a, b uuid.UUID) int {
		if ra, rb := rows[a].Host, rows[b].Host; ra != rb {
			if ra < rb {
				return -1
			}
			return 1
		}
		return slices.Compare(a[:], b[:])
	})
	fmt.Fprintf(w, "cpumon: %d machine(s) at %s\n", len(rows), now.Format("15:04:05"))
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tCPU\tLOAD 1/5/15\tMEM\tTOTAL\tSWAP\tTOTAL\tTEMP")
	for _, id := range ids {
		s := rows[id]
		host := safetext.Line(s.Host)
		switch {
		case id == self:
			host += " *"
		case py[id]:
			host += " ~"
		}
		temp := "-"
		if s.Temp > 0 {
			temp = fmt.Sprintf("%.0f°C", s.Temp)
		}
		fmt.Fprintf(tw, "%s\t%.1f%%\t%.2f %.2f %.2f\t%.1f%%\t%s\t%.1f%%\t%s\t%s\n",
			host, s.CPU, s.Load1, s.Load5, s.Load15, s.MemPercent, size(s.MemTotal), s.SwapPercent, size(s.SwapTotal), temp)
	}
	tw.Flush()
}

// size writes n bytes for people: 512 MiB, 15.6 GiB.
func size(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for v := n / unit; v >= unit; v /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
