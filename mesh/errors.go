package mesh

import (
	"errors"
	"net"
)

// Errors a caller can test for with errors.Is. A link that ends reports a
// *CloseError that wraps one of them and carries the reason in words; every
// such error also matches ErrClosed. The timeouts among them (ErrSilence,
// ErrHandshakeTimeout, ErrWriteTimeout) satisfy net.Error with Timeout() true.
var (
	// ErrClosed: the link is closed. Every error that ends a link matches it,
	// whatever its cause; Send on a closed link returns it.
	ErrClosed = errors.New("mesh: link closed")
	// ErrBackpressure: Send found the link's outgoing buffer at its limit
	// (Config.SendBufferLimit). Nothing of the message was queued; try again
	// after the next Xfer, or send less.
	ErrBackpressure = errors.New("mesh: send buffer full")
	// ErrHandshake: the peer sent something other than a lanmesh handshake
	// (garbage, a bad length, a malformed field).
	ErrHandshake = errors.New("mesh: bad handshake")
	// ErrVersion: the peer speaks a protocol version this package does not.
	ErrVersion = errors.New("mesh: unsupported protocol version")
	// ErrMeshMismatch: the peer belongs to another mesh.
	ErrMeshMismatch = errors.New("mesh: peer is in another mesh")
	// ErrCodecMismatch: the peer speaks another codec.
	ErrCodecMismatch = errors.New("mesh: peer speaks another codec")
	// ErrRejected: the peer refused the link for a reason this version has no
	// sentinel for; the CloseError's Reason says which.
	ErrRejected = errors.New("mesh: link rejected by peer")
	// ErrHandshakeTimeout: no complete handshake within
	// Config.HandshakeTimeout.
	ErrHandshakeTimeout error = &timeoutError{"mesh: handshake timed out"}
	// ErrSilence: nothing came from the peer for twice Config.Silence (a
	// ping sent after the first went unanswered); it is gone.
	ErrSilence error = &timeoutError{"mesh: peer silent"}
	// ErrWriteTimeout: the peer did not take our bytes within
	// Config.WriteTimeout.
	ErrWriteTimeout error = &timeoutError{"mesh: write timed out"}
	// ErrPeerBye: the peer closed the link gracefully; the CloseError's
	// Reason is the one its Bye gave.
	ErrPeerBye = errors.New("mesh: peer closed the link")
	// ErrLinkReplaced: the node that opened a link dialled a new one while
	// this side still counted the old one live (it took the old one for
	// dead: a cut, a silence). The old link is closed and the peer reported
	// left (PeerLeft with this error) and joined again; what was sent on the
	// old link since the trouble began may not have arrived.
	ErrLinkReplaced = errors.New("mesh: link replaced by the peer's new link")
	// ErrConnLost: the connection ended without a Bye (the peer process died,
	// the cable was pulled, a reset).
	ErrConnLost = errors.New("mesh: connection lost")
	// ErrProtocol: the peer sent bytes that cannot be trusted (bad framing,
	// over the codec's limit, a malformed frame, a record that did not open).
	ErrProtocol = errors.New("mesh: protocol error")
	// ErrKeyRequired: the peer has a mesh key and this node none; give the
	// node the mesh's key (Config.Keyring).
	ErrKeyRequired = errors.New("mesh: peer requires a mesh key")
	// ErrUnkeyedPeer: this node has a mesh key and the peer none. A keyed
	// node never falls back to an unkeyed link.
	ErrUnkeyedPeer = errors.New("mesh: peer has no mesh key")
	// ErrWrongKey: the peer uses a mesh key this node does not hold (or the
	// same key for another mesh name), or the keyed handshake failed; the
	// reason names the key id.
	ErrWrongKey = errors.New("mesh: peer uses another mesh key")
	// ErrListenerClosed: Accept on a closed Listener.
	ErrListenerClosed = errors.New("mesh: listener closed")
	// ErrConfig: Config.Validate found a bad field; the message names it.
	ErrConfig = errors.New("mesh: invalid config")

	// Errors of a Node, beside those of its links.

	// ErrNodeClosed: the node is closed.
	ErrNodeClosed = errors.New("mesh: node closed")
	// ErrNoPeer: no linked peer has that id or name.
	ErrNoPeer = errors.New("mesh: no such peer")
	// ErrPeerGone: the peer was linked but has left; the error says why.
	ErrPeerGone = errors.New("mesh: peer left")
	// ErrLost: reliable messages that Send had accepted are lost for good
	// (a *Loss says to whom, which and why; see PeerEvent.Lost).
	ErrLost = errors.New("mesh: messages lost")
	// ErrAmbiguousName: several linked peers have that name; send by id.
	ErrAmbiguousName = errors.New("mesh: several peers have that name")
	// ErrRefused: the peer answered a request with a refusal; the error
	// carries its reason.
	ErrRefused = errors.New("mesh: request refused")
	// ErrFrozen: a rule was changed on a frozen Responder.
	ErrFrozen = errors.New("mesh: responder rules are frozen")
)

// timeoutError is a sentinel that is also a net.Error reporting a timeout.
type timeoutError struct{ msg string }

func (e *timeoutError) Error() string   { return e.msg }
func (e *timeoutError) Timeout() bool   { return true }
func (e *timeoutError) Temporary() bool { return true }

var _ net.Error = (*timeoutError)(nil)

// CloseError says why a link ended, or why a handshake failed: Err is the
// sentinel (ErrPeerBye, ErrSilence, ErrMeshMismatch, ...), Reason the words of
// whichever side decided, and Remote tells which side that was. It matches
// ErrClosed as well as Err, and it is a net.Error whose Timeout reports
// whether Err is a timeout.
type CloseError struct {
	// Reason is the cause in words: the peer's Bye or Reject reason when
	// Remote is true, ours otherwise.
	Reason string
	// Remote is true when the peer ended the link (a Bye or a Reject), false
	// when this side did (Close, a timeout, bad input).
	Remote bool
	// Err is the sentinel for the cause.
	Err error
}

var _ net.Error = (*CloseError)(nil)

func (e *CloseError) Error() string {
	msg := e.Err.Error()
	switch {
	case e.Reason == "" || e.Reason == msg:
		return msg
	case e.Remote:
		return msg + " (the peer's reason: " + e.Reason + ")"
	}
	return msg + ": " + e.Reason
}

// Unwrap returns the sentinel.
func (e *CloseError) Unwrap() error { return e.Err }

// Is makes every CloseError match ErrClosed.
func (e *CloseError) Is(target error) bool { return target == ErrClosed }

// Timeout reports whether the cause was a timeout.
func (e *CloseError) Timeout() bool {
	var ne net.Error
	return errors.As(e.Err, &ne) && ne.Timeout()
}

// Temporary reports the same as Timeout; net.Error requires it.
func (e *CloseError) Temporary() bool { return e.Timeout() }

func closeErr(sentinel error, remote bool, reason string) *CloseError {
	return &CloseError{Reason: reason, Remote: remote, Err: sentinel}
}
