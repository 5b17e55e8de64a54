// Command chat is the smallest lanmesh program worth running: start it on
// a few machines of a LAN and every line typed on one appears on all the
// others. It finds the others by itself (broadcast and mDNS), links with
// each directly, and says who joins and who leaves.
//
//	go run ./examples/chat -name ann
//
// It speaks the same ChatLine as "lanmesh chat", in the same mesh, so the
// two talk to each other.
package main

import (
	"bufio"
	"context"
	"flag"
	"fmt"
	"os"
	"os/signal"
	"syscall"

	"github.com/lanmesh/lanmesh/mesh"
	"github.com/lanmesh/lanmesh/message"
	"github.com/lanmesh/lanmesh/safetext"
)

// ChatLine is one line of chat. Who sent it comes with every message.
type ChatLine struct {
	Text string `json:"text" msgpack:"text"`
}

// AppendBinary and UnmarshalBinary give ChatLine its binary-codec form: the
// text as it is.
func (c ChatLine) AppendBinary(b []byte) ([]byte, error) { return append(b, c.Text...), nil }

func (c *ChatLine) UnmarshalBinary(p []byte) error { c.Text = string(p); return nil }

func init() { message.MustRegister[ChatLine](message.Default, 0x30, "ChatLine") }

func main() {
	meshName := flag.String("mesh", "lanmesh", "the mesh to join")
	name := flag.String("name", "", "your name (default: the host name)")
	flag.Parse()

	cfg := mesh.DefaultNodeConfig()
	cfg.Mesh = *meshName
	if *name != "" {
		cfg.Name = *name
	}
	cfg.Link.AutoFlush = true // not a game loop: each line goes out at once
	cfg.OnPeer = func(ev mesh.PeerEvent) {
		if ev.Kind == mesh.PeerLeft {
			fmt.Printf("* %s left: %s\n", safetext.Line(ev.Peer.Name), safetext.Line(fmt.Sprint(ev.Err)))
		} else {
			fmt.Printf("* %s %s\n", safetext.Line(ev.Peer.Name), ev.Kind)
		}
	}
	cfg.OnMessage = func(m mesh.Message) {
		if c, ok := m.Msg.(*ChatLine); ok {
			fmt.Printf("%s: %s\n", safetext.Line(m.FromName), safetext.Line(c.Text))
		}
	}
	node, err := mesh.NewNode(cfg)
	if err != nil {
		fmt.Fprintln(os.Stderr, "chat:", err)
		os.Exit(1)
	}
	fmt.Printf("* you are %s; type a line to send it to everyone\n", node.Name())

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				node.CloseReason(node.Name() + " is done") // peers see why
				return
			}
			if _, err := node.Broadcast(&ChatLine{Text: line}); err != nil {
				fmt.Fprintln(os.Stderr, "chat:", err)
			}
		case <-ctx.Done():
			node.CloseReason(node.Name() + " was interrupted")
			return
		}
	}
}
