package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"unicode/utf8"

	"github.com/google/uuid"

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
"/to NAME text" sends text to one node ("/to NAME#ID text" when two share
a name, as /who shows them), "/who" lists the nodes, "/help" the commands,
"/quit" leaves. Ends at the end of input (Ctrl-D) or on Ctrl-C.`

const chatHelp = `commands: /who lists the nodes; /to NAME text (or NAME#ID when names repeat) sends to one; /quit leaves; //text sends a line that starts with /`

func runChat(ctx context.Context, args []string, std stdio) error {
	fs := newFlags("chat", chatSummary, std.err)
	nf := addNodeFlags(fs)
	cfg, err := parseNode(fs, nf, args, std.err)
	if err != nil {
		return err
	}
	out := &lineWriter{w: std.out}
	cfg.Link.AutoFlush = true // a line goes out as soon as it is typed
	// The callbacks may run before NewNode returns: until then, names go
	// without the roster.
	var node atomic.Pointer[mesh.Node]
	label := func(p peerView) string {
		if n := node.Load(); n != nil {
			return labelOf(p, viewPeers(n))
		}
		return safetext.Line(p.Name)
	}
	// Comings and goings name the peer as /to does when names repeat:
	// name#id, so that two nodes of one name are told apart from the start.
	cfg.OnPeer = func(ev mesh.PeerEvent) {
		if hubClosing(ev) {
			return
		}
		p := viewOf(ev.Peer)
		full := safetext.Line(p.Name) + "#" + shortID(p.ID)
		if p.Site != "" {
			full += " (site " + quoted(p.Site) + ", through the hub)"
		}
		switch ev.Kind {
		case mesh.PeerJoined:
			out.printf("* %s joined", full)
		case mesh.PeerRestarted:
			out.printf("* %s restarted", full)
		case mesh.PeerLeft:
			out.printf("* %s left: %s", full, plainErr(ev.Err))
		}
	}
	cfg.OnMessage = func(m mesh.Message) {
		if c, ok := m.Msg.(*ChatLine); ok {
			out.printf("%s: %s", label(peerView{ID: m.From, Name: m.FromName}), safetext.Line(c.Text))
		}
	}
	n, br, err := startNode(cfg, nf)
	if err != nil {
		return err
	}
	node.Store(n)
	out.printf("* %s; type a line to send it to all, /help for the commands", describeNode(n, cfg))
	if br != nil {
		out.printf("* %s", describeHub(&nf.hub, br))
	}

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
			msg, quit := chatCommand(n, line)
			if msg != "" {
				out.printf("* %s", msg)
			}
			running = !quit
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
	closeHub(br)
	return n.CloseReason(reason)
}

// labelOf is how chat names a peer: its name, or name#id when another
// linked peer has the same name.
func labelOf(p peerView, all []peerView) string {
	name := safetext.Line(p.Name)
	for _, q := range all {
		if q.Linked && q.ID != p.ID && q.Name == p.Name {
			return name + "#" + shortID(p.ID)
		}
	}
	return name
}

// chatCommand acts on one typed line and returns what to tell the user
// ("" for nothing) and whether to leave.
func chatCommand(n *mesh.Node, line string) (string, bool) {
	line = strings.TrimRight(line, "\r")
	cmd, rest, _ := strings.Cut(line, " ")
	switch {
	case strings.TrimSpace(line) == "":
		return "", false
	case strings.HasPrefix(line, "//"):
		line = line[1:]
	case cmd == "/help" || cmd == "/?":
		return chatHelp, false
	case cmd == "/quit" || cmd == "/exit":
		return "", true
	case cmd == "/who":
		var names []string
		all := viewPeers(n)
		for _, p := range all {
			if p.Linked {
				label := labelOf(p, all)
				if p.Site != "" {
					label += " (site " + quoted(p.Site) + ")"
				}
				names = append(names, label)
			}
		}
		if len(names) == 0 {
			return "nobody else is here yet", false
		}
		return "here: " + strings.Join(names, ", "), false
	case cmd == "/to":
		target, text, ok := strings.Cut(rest, " ")
		if !ok || text == "" {
			return "usage: /to NAME text (NAME#ID when two share a name; /who shows them)", false
		}
		id, err := findPeer(viewPeers(n), target)
		if err != nil {
			return err.Error(), false
		}
		for _, part := range splitText(text) {
			if err := n.Send(id, &ChatLine{Text: part}); err != nil {
				return plainErr(err), false
			}
		}
		return "", false
	case strings.HasPrefix(cmd, "/"):
		return fmt.Sprintf("unknown command %s: /help lists them (//text sends a line that starts with /)", safetext.Line(cmd)), false
	}
	sent := 0
	for _, part := range splitText(line) {
		k, err := n.Broadcast(&ChatLine{Text: part})
		if err != nil {
			return plainErr(err), false
		}
		sent = k
	}
	if sent == 0 {
		return "nobody else is here yet: the line went nowhere", false
	}
	return "", false
}

// findPeer finds the linked peer that target names: NAME, NAME#ID (a
// prefix of the id) or an id prefix alone.
func findPeer(all []peerView, target string) (uuid.UUID, error) {
	name, idPrefix, hasID := strings.Cut(target, "#")
	var found []peerView
	for _, p := range all {
		if !p.Linked {
			continue
		}
		switch {
		case hasID && p.Name == name && strings.HasPrefix(p.ID.String(), idPrefix):
		case !hasID && p.Name == name:
		case !hasID && len(target) >= 4 && strings.HasPrefix(p.ID.String(), target):
		default:
			continue
		}
		found = append(found, p)
	}
	switch len(found) {
	case 0:
		return uuid.Nil, fmt.Errorf("no linked peer is called %q (/who lists them)", safetext.Line(target))
	case 1:
		return found[0].ID, nil
	}
	var labels []string
	for _, p := range found {
		labels = append(labels, labelOf(p, all))
	}
	return uuid.Nil, fmt.Errorf("%d peers are called %q: say which, as %s", len(found), safetext.Line(target), strings.Join(labels, " or "))
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
