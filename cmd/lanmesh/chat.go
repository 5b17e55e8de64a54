package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"

	"github.com/lanmesh/lanmesh/codec"
	"github.com/lanmesh/lanmesh/mesh"
	"github.com/lanmesh/lanmesh/message"
	"github.com/lanmesh/lanmesh/safetext"
)

// ChatLine is a line of chat. Its code, name and binary form are those of
// examples/chat, so the two talk to each other. The sender is not in it:
// the receiver knows who sent it.
type ChatLine struct {
	Text string `json:"text" msgpack:"text"`
}

// chatLineCode is ChatLine's message code.
const chatLineCode = 0x30

// AppendBinary appends the text as it is.
func (c ChatLine) AppendBinary(b []byte) ([]byte, error) { return append(b, c.Text...), nil }

// UnmarshalBinary reads the text, which must be UTF-8.
func (c *ChatLine) UnmarshalBinary(p []byte) error {
	if !utf8.Valid(p) {
		return errors.New("ChatLine: not UTF-8")
	}
	c.Text = string(p)
	return nil
}

func init() { message.MustRegister[ChatLine](message.Default, chatLineCode, "ChatLine") }

const chatSummary = `Chat with every node of the mesh. Each line typed goes to all;
"/to NAME text" sends text to the node called NAME only, "/who" lists the
nodes. Ends at the end of input (Ctrl-D) or on Ctrl-C.`

func runChat(ctx context.Context, args []string, std stdio) error {
	fs := newFlags("chat", chatSummary, std.err)
	nf := addNodeFlags(fs)
	cfg, err := parseNode(fs, nf, args, std.err)
	if err != nil {
		return err
	}
	out := &lineWriter{w: std.out}
	cfg.Link.AutoFlush = true // a line goes out as soon as it is typed
	cfg.OnPeer = func(ev mesh.PeerEvent) {
		switch ev.Kind {
		case mesh.PeerJoined:
			out.printf("* %s joined", safetext.Line(ev.Peer.Name))
		case mesh.PeerRestarted:
			out.printf("* %s restarted", safetext.Line(ev.Peer.Name))
		case mesh.PeerLeft:
			out.printf("* %s left: %s", safetext.Line(ev.Peer.Name), oneLine(fmt.Sprint(ev.Err)))
		}
	}
	cfg.OnMessage = func(m mesh.Message) {
		if c, ok := m.Msg.(*ChatLine); ok {
			out.printf("%s: %s", safetext.Line(m.FromName), safetext.Line(c.Text))
		}
	}
	n, err := startNode(cfg, nf)
	if err != nil {
		return err
	}
	out.printf("* %s; type a line to send it to all, /to NAME text for one", describeNode(n, cfg))

	// Lines are read on a goroutine of their own, so that a signal ends
	// the chat even while the input is quiet. It ends at the end of input;
	// on a signal it is left blocked in its read, and the process exits.
	lines := make(chan string)
	inputDone := make(chan error, 1)
	go func() {
		sc := bufio.NewScanner(std.in)
		for sc.Scan() {
			select {
			case lines <- sc.Text():
			case <-ctx.Done():
				return
			}
		}
		inputDone <- sc.Err()
	}()
	reason := "chat ended"
	for running := true; running; {
		select {
		case line := <-lines:
			if msg := chatCommand(n, line); msg != "" {
				out.printf("* %s", msg)
			}
		case err := <-inputDone:
			if err != nil {
				out.printf("* reading input: %v", err)
			}
			running = false
		case <-ctx.Done():
			reason = "interrupted"
			running = false
		}
	}
	// What was typed last is still sent: Close flushes first.
	return n.CloseReason(reason)
}

// chatCommand acts on one typed line and returns what to tell the user
// ("" for nothing).
func chatCommand(n *mesh.Node, line string) string {
	line = strings.TrimRight(line, "\r")
	switch {
	case strings.TrimSpace(line) == "":
		return ""
	case line == "/who":
		var names []string
		for _, p := range n.Peers() {
			if p.State == mesh.StateLinked {
				names = append(names, safetext.Line(p.Name))
			}
		}
		if len(names) == 0 {
			return "nobody else is here yet"
		}
		return "here: " + strings.Join(names, ", ")
	case strings.HasPrefix(line, "/to "):
		name, text, ok := strings.Cut(strings.TrimPrefix(line, "/to "), " ")
		if !ok || text == "" {
			return "usage: /to NAME text"
		}
		for _, part := range splitText(text) {
			if err := n.SendTo(name, &ChatLine{Text: part}); err != nil {
				return safetext.Line(err.Error())
			}
		}
		return ""
	}
	sent := 0
	for _, part := range splitText(line) {
		k, err := n.Broadcast(&ChatLine{Text: part})
		if err != nil {
			return err.Error()
		}
		sent = k
	}
	if sent == 0 {
		return "nobody else is here yet: the line went nowhere"
	}
	return ""
}

// splitText cuts text into pieces that fit a binary frame, at rune
// boundaries.
func splitText(s string) []string {
	var parts []string
	for len(s) > codec.MaxBinaryPayload {
		cut := codec.MaxBinaryPayload
		for cut > 0 && !utf8.RuneStart(s[cut]) {
			cut--
		}
		parts = append(parts, s[:cut])
		s = s[cut:]
	}
	return append(parts, s)
}
