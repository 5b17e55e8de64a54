package mesh

import (
	"context"
	"errors"
	"fmt"
	"net"
	"regexp"
	"sync"
	"syscall"

	"github.com/lanmesh/lanmesh/safetext"
)

// mismatchLog tells, once per peer (or per address of a static peer), of
// a handshake that failed for a reason no retry can cure: another codec,
// mesh or key. The node keeps retrying with backoff (the peer may be
// restarted with the right settings), but says so only once, at Warn, in
// a sentence with the fix; the rest stay at Debug.
type mismatchLog struct {
	// mu guards told and fails.
	mu    sync.Mutex
	told  map[string]bool
	fails map[string]int // failed dials in a row that found no listener
}

// unreachableAfter is how many dials in a row must fail to connect at all
// before the node says that the peer, whose beacons keep coming, cannot be
// reached: one failure is a peer that just left; several, a firewall.
const unreachableAfter = 3

// maxMismatchTold bounds the peers remembered; beyond it a flood of
// forged peers is no longer told of.
const maxMismatchTold = 1024

// The reasons that handshake.go writes into its Rejects and errors.
var (
	codecReason = regexp.MustCompile(`^codec "(.*)", peer speaks "(.*)"$`)
	meshReason  = regexp.MustCompile(`^mesh "(.*)", peer is in mesh "(.*)"$`)
)

// note is called after a failed dial to the peer called name (empty if
// unknown) at addr, under key (the peer's id, or the address).
func (m *mismatchLog) note(n *Node, key, name, addr string, err error) {
	msg := mismatchSentence(n, name, addr, err)
	m.mu.Lock()
	if m.told == nil {
		m.told = make(map[string]bool)
		m.fails = make(map[string]int)
	}
	switch {
	case err == nil:
		delete(m.fails, key)
	case msg == "" && unreachable(err) && len(m.fails) < maxMismatchTold:
		m.fails[key]++
		if m.fails[key] == unreachableAfter {
			msg = unreachableSentence(name, addr, err)
		}
	}
	told := msg == "" || m.told[key] || len(m.told) >= maxMismatchTold
	if msg != "" {
		m.told[key] = true
	}
	m.mu.Unlock()
	if !told {
		n.log.Warn(msg, "addr", addr)
	}
}

// unreachable: the dial found nobody to talk to (refused, or no answer).
func unreachable(err error) bool {
	var ne net.Error
	return errors.Is(err, syscall.ECONNREFUSED) || errors.Is(err, syscall.EHOSTUNREACH) ||
		errors.Is(err, syscall.ENETUNREACH) || errors.Is(err, context.DeadlineExceeded) ||
		(errors.As(err, &ne) && ne.Timeout() && !errors.Is(err, ErrHandshakeTimeout))
}

func unreachableSentence(name, addr string, err error) string {
	who := addr
	if name != "" {
		who = safetext.Line(name) + " at " + addr
	}
	how := "does not answer"
	if errors.Is(err, syscall.ECONNREFUSED) {
		how = "refuses connections"
	}
	return fmt.Sprintf("heard %s, but its TCP port %s (%d tries): a firewall on it, or between, blocks TCP (allow its port there; a fixed --port makes that easy)",
		who, how, unreachableAfter)
}

// mismatchSentence says what keeps this node and the peer apart, in the
// user's words, or "" when the failure may pass by itself.
func mismatchSentence(n *Node, name, addr string, err error) string {
	var ce *CloseError
	if !errors.As(err, &ce) {
		return ""
	}
	who := addr
	if name != "" {
		who = safetext.Line(name) + " at " + addr
	}
	// ours and theirs from a reason: this side's words put ours first,
	// the peer's put theirs first.
	pair := func(re *regexp.Regexp) (ours, theirs string, ok bool) {
		m := re.FindStringSubmatch(ce.Reason)
		if m == nil {
			return "", "", false
		}
		if ce.Remote {
			return m[2], m[1], true
		}
		return m[1], m[2], true
	}
	switch {
	case errors.Is(err, ErrCodecMismatch):
		ours, theirs, ok := pair(codecReason)
		if !ok {
			return fmt.Sprintf("heard %s (mesh %s) speaking another codec than this node's %s: they will never link (give every node of the mesh the same codec)",
				who, safetext.Line(n.link.Mesh), n.link.Codec)
		}
		return fmt.Sprintf("heard %s (mesh %s) speaking %s; this node speaks %s: they will never link (give every node of the mesh the same codec)",
			who, safetext.Line(n.link.Mesh), safetext.Line(theirs), safetext.Line(ours))
	case errors.Is(err, ErrMeshMismatch):
		ours, theirs, ok := pair(meshReason)
		if !ok {
			theirs, ours = "another", n.link.Mesh
		}
		return fmt.Sprintf("%s is in mesh %s; this node is in mesh %s: they will never link (give both the same mesh name)",
			who, safetext.Line(theirs), safetext.Line(ours))
	case errors.Is(err, ErrKeyRequired):
		return fmt.Sprintf("%s (mesh %s) requires a mesh key; this node has none: they will never link (give this node the mesh's key)",
			who, safetext.Line(n.link.Mesh))
	case errors.Is(err, ErrUnkeyedPeer):
		return fmt.Sprintf("%s (mesh %s) has no mesh key; this node has one: they will never link (give both the same key, or neither)",
			who, safetext.Line(n.link.Mesh))
	case errors.Is(err, ErrWrongKey):
		return fmt.Sprintf("%s (mesh %s) holds another mesh key: they will never link (give every node the same key file)",
			who, safetext.Line(n.link.Mesh))
	}
	return ""
}
