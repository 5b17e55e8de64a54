// Command cpumon is cable_car's cpu monitor on lanmesh. Run it on every
// machine of a LAN: each shares its CPU, load, memory, swap and
// temperature every few seconds, and each shows a table of all of them,
// refreshed in place. A machine that leaves drops out of the table.
//
//	go run ./examples/cpumon                 # on each machine
//	go run ./examples/cpumon -interval 5s    # share less often
//	go run ./examples/cpumon -plain          # print each table, for logs
//
// It is written as a loop at the sampling rate: sample, Broadcast, Xfer,
// drain Get (messages and peer events), draw. Nothing in it blocks on the network.
package main

import (
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"slices"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/mesh"
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

	m := monitor{node: node, rows: map[uuid.UUID]Stats{}, out: stdout, plain: *plain}
	tick := time.NewTicker(*interval)
	defer tick.Stop()
	for {
		m.tick(ctx, cfg.Name)
		select {
		case <-tick.C:
		case <-ctx.Done():
			return 0
		}
	}
}

// monitor is the state of the loop: the last Stats of every machine.
type monitor struct {
	node  *mesh.Node
	rows  map[uuid.UUID]Stats // by node id: two machines may share a name
	out   io.Writer
	plain bool
	drawn bool
}

// tick is one turn of the loop.
func (m *monitor) tick(ctx context.Context, name string) {
	own := sample(ctx, name)
	m.rows[m.node.ID()] = own
	m.node.Broadcast(&own) // to every linked peer; none yet is fine
	m.node.Xfer()
	for msg, ok := m.node.Get(); ok; msg, ok = m.node.Get() {
		switch v := msg.Msg.(type) {
		case *Stats:
			m.rows[msg.From] = *v
		case *mesh.PeerEvent:
			switch v.Kind {
			case mesh.PeerJoined, mesh.PeerRestarted:
				// A newcomer sees this machine at once, not an interval later.
				m.node.Send(v.Peer.ID, &own)
			case mesh.PeerLeft:
				delete(m.rows, v.Peer.ID)
			}
		}
	}
	m.node.Xfer()
	m.draw()
}

// draw prints the table: in place (ANSI: cursor home, each line cleared to
// its end, the rest of the screen cleared), or below the last one.
func (m *monitor) draw() {
	var buf bytes.Buffer
	render(&buf, m.rows, m.node.ID(), time.Now())
	if m.plain {
		buf.WriteString("--\n")
		m.out.Write(buf.Bytes())
		return
	}
	var screen bytes.Buffer
	if !m.drawn {
		screen.WriteString("\x1b[2J")
		m.drawn = true
	}
	screen.WriteString("\x1b[H")
	for _, line := range bytes.SplitAfter(buf.Bytes(), []byte("\n")) {
		screen.Write(bytes.TrimSuffix(line, []byte("\n")))
		if len(line) > 0 {
			screen.WriteString("\x1b[K\n")
		}
	}
	screen.WriteString("\x1b[J")
	m.out.Write(screen.Bytes())
}

// render writes the table of rows, sorted by host name, this machine
// marked with a star.
func render(w io.Writer, rows map[uuid.UUID]Stats, self uuid.UUID, now time.Time) {
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
		host := s.Host
		if id == self {
			host += " *"
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
