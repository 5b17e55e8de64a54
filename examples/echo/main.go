// Command echo is an echo server and client on lanmesh: the server
// sends back every message it receives; the client, written as a game loop,
// sends a few messages, one per tick, and prints each echo with its
// round-trip time.
//
//	echo -listen 127.0.0.1:7000              # the server
//	echo -connect 127.0.0.1:7000 -n 5 hello  # the client
//	echo                                     # both, in one process
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"strings"
	"time"

	"github.com/lanmesh/lanmesh/mesh"
	"github.com/lanmesh/lanmesh/message"
)

// Echo is the message the two sides exchange.
type Echo struct {
	Seq  uint32 `json:"seq" msgpack:"seq"`
	Sent int64  `json:"sent" msgpack:"sent"` // the client's clock, in ns
	Text string `json:"text" msgpack:"text"`
}

// AppendBinary gives Echo its binary-codec form: seq, sent, then the text.
func (e Echo) AppendBinary(b []byte) ([]byte, error) {
	b = append(b, byte(e.Seq>>24), byte(e.Seq>>16), byte(e.Seq>>8), byte(e.Seq))
	for i := 56; i >= 0; i -= 8 {
		b = append(b, byte(e.Sent>>i))
	}
	return append(b, e.Text...), nil
}

// UnmarshalBinary reads what AppendBinary wrote.
func (e *Echo) UnmarshalBinary(p []byte) error {
	if len(p) < 12 {
		return errors.New("echo: short message")
	}
	e.Seq = uint32(p[0])<<24 | uint32(p[1])<<16 | uint32(p[2])<<8 | uint32(p[3])
	e.Sent = 0
	for _, c := range p[4:12] {
		e.Sent = e.Sent<<8 | int64(c)
	}
	e.Text = string(p[12:])
	return nil
}

func init() { message.MustRegister[Echo](message.Default, 0x20, "Echo") }

const defaultAddr = "127.0.0.1:7000"

func main() {
	listen := flag.String("listen", "", "run the server on `addr` (comma-separated for several)")
	connect := flag.String("connect", "", "run the client against the server at `addr`")
	n := flag.Int("n", 5, "messages the client sends")
	tick := flag.Duration("tick", 16*time.Millisecond, "the client's game-loop tick")
	meshName := flag.String("mesh", "echo", "mesh name; both sides must agree")
	codecName := flag.String("codec", "binary", "codec: binary, msgpack or json")
	verbose := flag.Bool("v", false, "log the links' events, not only warnings")
	flag.Parse()

	cfg := mesh.DefaultConfig()
	cfg.Mesh, cfg.Codec = *meshName, *codecName
	// Warnings by default, so the server says why it refused a link.
	level := slog.LevelWarn
	if *verbose {
		level = slog.LevelDebug
	}
	cfg.Logger = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: level}))
	text := strings.Join(flag.Args(), " ")
	if text == "" {
		text = "hello"
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()

	var err error
	switch {
	case *listen != "":
		err = serve(ctx, cfg, strings.Split(*listen, ","), func(a []net.Addr) { fmt.Println("echo server listening on", a) })
	case *connect != "":
		err = client(ctx, cfg, *connect, *n, *tick, text, os.Stdout)
	default:
		err = demo(ctx, cfg, *n, *tick, text)
	}
	if err != nil && !errors.Is(err, context.Canceled) {
		fmt.Fprintln(os.Stderr, "echo:", err)
		os.Exit(1)
	}
}

// serve runs the echo server until ctx ends. It uses the callback form:
// each message is sent straight back from the link's dispatch goroutine.
func serve(ctx context.Context, cfg mesh.Config, addrs []string, ready func([]net.Addr)) error {
	cfg.Link.AutoFlush = true // not a game loop: let Send flush
	ln, err := mesh.Listen(cfg, addrs...)
	if err != nil {
		return err
	}
	defer ln.Close()
	ready(ln.Addrs())
	return ln.Serve(ctx, mesh.Handlers{
		OnOpen: func(m *mesh.Messenger) {
			fmt.Printf("%s (%s) joined\n", m.Remote().Name, m.Remote().RemoteAddr)
		},
		OnMessage: func(m *mesh.Messenger, msg mesh.Message) {
			if err := m.Send(msg.Msg); err != nil {
				fmt.Printf("%s: %v\n", m.Remote().Name, err)
			}
		},
		OnClose: func(m *mesh.Messenger, err error) {
			fmt.Printf("%s left: %v\n", m.Remote().Name, err)
		},
	})
}

// client is a game loop: each tick it sends one message (until n are
// sent), calls Xfer, and takes every echo that has arrived with Get. It
// never blocks inside a tick.
func client(ctx context.Context, cfg mesh.Config, addr string, n int, tick time.Duration, text string, out io.Writer) error {
	dialCtx, cancel := context.WithTimeout(ctx, 5*time.Second)
	m, err := mesh.Dial(dialCtx, cfg, addr)
	cancel()
	if err != nil {
		return err
	}
	defer m.CloseReason("client done")
	fmt.Fprintf(out, "connected to %s (%s)\n", m.Remote().Name, addr)

	epoch := time.Now()
	ticker := time.NewTicker(tick)
	defer ticker.Stop()
	giveUp := time.After(time.Duration(n)*tick + 5*time.Second)
	sent, got := 0, 0
	for got < n {
		if sent < n {
			sent++
			e := &Echo{Seq: uint32(sent), Sent: int64(time.Since(epoch)), Text: text}
			if err := m.Send(e); err != nil {
				return err
			}
		}
		if err := m.Xfer(); err != nil {
			return err
		}
		for msg, ok := m.Get(); ok; msg, ok = m.Get() {
			if e, ok := msg.Msg.(*Echo); ok {
				got++
				rtt := time.Since(epoch) - time.Duration(e.Sent)
				// Measured in ticks: the echo waits for the next Get.
				fmt.Fprintf(out, "echo %d %q after %v\n", e.Seq, e.Text, rtt.Round(time.Microsecond))
			}
		}
		select {
		case <-ticker.C:
		case <-giveUp:
			return fmt.Errorf("echo: %d of %d echoes in time", got, n)
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	st := m.Stats()
	fmt.Fprintf(out, "%d echoes; %d bytes out, %d in", got, st.BytesOut, st.BytesIn)
	if st.RTTSamples > 0 {
		fmt.Fprintf(out, "; link RTT %v", st.RTT.Round(time.Microsecond))
	}
	fmt.Fprintln(out)
	return nil
}

// demo runs the server on 127.0.0.1 and the client against it.
func demo(ctx context.Context, cfg mesh.Config, n int, tick time.Duration, text string) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	ready := make(chan string, 1)
	served := make(chan error, 1)
	go func() {
		served <- serve(ctx, cfg, []string{defaultAddr}, func(a []net.Addr) { ready <- a[0].String() })
	}()
	select {
	case addr := <-ready:
		err := client(ctx, cfg, addr, n, tick, text, os.Stdout)
		cancel()
		<-served
		return err
	case err := <-served:
		return err
	}
}
