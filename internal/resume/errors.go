package resume

import "errors"

// Errors a caller can test for with errors.Is. The functions that return
// them wrap them with the numbers an operator needs (sequences, sizes). The
// mesh package maps them to its own at the boundary: the protocol errors
// (ErrAckAhead, ErrAckBehind, ErrGap, ErrMalformed, ErrVersion, ErrAuth)
// close the link with mesh.ErrProtocol.
var (
	// ErrConfig: a JournalConfig or TrackerConfig field is out of range.
	ErrConfig = errors.New("resume: invalid configuration")
	// ErrFull: the journal is at its budget and may not drop what it holds
	// (the Refuse policy, or frames pinned for a resend in progress).
	// Nothing was journaled and no sequence was used: the sender's program
	// is told at once, as with a full send buffer, and may try again.
	ErrFull = errors.New("resume: resend budget full")
	// ErrTooLarge: under the Refuse policy, a frame larger than the whole
	// byte budget.
	ErrTooLarge = errors.New("resume: frame larger than the resend budget")
	// ErrEmptyFrame: a frame of no bytes (a codec frame has at least one).
	ErrEmptyFrame = errors.New("resume: empty frame")
	// ErrAckAhead: the peer acknowledged or claims to have delivered a
	// sequence this side never sent.
	ErrAckAhead = errors.New("resume: acknowledgement of a sequence never sent")
	// ErrAckBehind: the peer's resume says it delivered less than it had
	// already acknowledged.
	ErrAckBehind = errors.New("resume: resume behind an earlier acknowledgement")
	// ErrEvicted: frames asked for are no longer in the journal.
	ErrEvicted = errors.New("resume: frames no longer in the journal")
	// ErrGap: a link's frames skip sequences the receiver never delivered:
	// the peer is broken or hostile.
	ErrGap = errors.New("resume: gap in the sequence")
	// ErrStale: frames of a link that a newer link of the same peer has
	// fenced off; they are dropped, and resent on the newer link.
	ErrStale = errors.New("resume: frames of a replaced link")
	// ErrNotStarted: sequenced frames on a link before its resume exchange
	// finished.
	ErrNotStarted = errors.New("resume: sequenced frame before the resume exchange")
	// ErrMalformed: resume bytes that break a rule of the format.
	ErrMalformed = errors.New("resume: malformed message")
	// ErrVersion: a resume version this package does not speak.
	ErrVersion = errors.New("resume: unknown version")
	// ErrAuth: a resume whose MAC does not verify (a forgery, a replay from
	// another connection, another session's secret).
	ErrAuth = errors.New("resume: message failed authentication")
	// ErrLost: matches every *Loss.
	ErrLost = errors.New("resume: messages lost")
)
