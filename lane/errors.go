package lane

import "errors"

// Errors a caller can test for with errors.Is. Parse and Open wrap them with
// the detail (offsets, sizes, kinds) an operator needs; the Receiver counts
// each dropped datagram under its reason in Stats.
var (
	// ErrTruncated: a datagram ends inside its header, an item header or an
	// item's payload.
	ErrTruncated = errors.New("lane: truncated datagram")
	// ErrVersion: the datagram's version byte is not Version.
	ErrVersion = errors.New("lane: unknown datagram version")
	// ErrMalformed: the bytes are the right length but break a rule of the
	// format (an unknown flag or item kind, a control item with a channel or
	// the wrong payload size, no items at all).
	ErrMalformed = errors.New("lane: malformed datagram")
	// ErrSession: the datagram names another session (a stale link, a
	// spoofer), or comes from an address that is not the peer's.
	ErrSession = errors.New("lane: datagram of another session")
	// ErrMode: a sealed datagram on an unkeyed lane or a clear one on a keyed
	// lane.
	ErrMode = errors.New("lane: datagram sealed differently from the lane")
	// ErrAuth: a sealed datagram did not open (forged, changed, or under
	// another key).
	ErrAuth = errors.New("lane: datagram failed to open")
	// ErrReplay: the datagram's counter was seen already (a replay, a
	// duplicate).
	ErrReplay = errors.New("lane: replayed datagram")
	// ErrTooOld: the datagram's counter is behind the replay window.
	ErrTooOld = errors.New("lane: datagram too old")
	// ErrTooLarge: a message cannot fit one datagram of the lane's MTU.
	ErrTooLarge = errors.New("lane: message too large for one datagram")
	// ErrQueueFull: the unreliable queue is full; the message was dropped.
	ErrQueueFull = errors.New("lane: unreliable queue full")
	// ErrCounterExhausted: the sending counter reached its end; the lane
	// must be agreed again (never in practice: 2^64 datagrams).
	ErrCounterExhausted = errors.New("lane: packet counter exhausted")
	// ErrConfig: a Config or Session field is out of range.
	ErrConfig = errors.New("lane: invalid configuration")
)
