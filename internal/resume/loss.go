package resume

import "fmt"

// LossReason says why messages were lost for good. The list is append-only.
type LossReason uint8

const (
	// LossBudget: the frames had been dropped from the sender's journal to
	// stay within its budget when a resume needed them.
	LossBudget LossReason = iota + 1
	// LossPeerRestarted: the peer's program restarted (a new instance id)
	// before it delivered them.
	LossPeerRestarted
	// LossWindowExpired: the link stayed down longer than the resume
	// window; the sender gave up on them.
	LossWindowExpired
	// LossPeerReset: the peer came back without the session (it had given
	// up on it, or never held it): nothing of it can be resumed.
	LossPeerReset
	// LossClosed: this side closed (or the peer left for good) before the
	// peer acknowledged them.
	LossClosed
)

func (r LossReason) String() string {
	switch r {
	case LossBudget:
		return "resend budget exceeded"
	case LossPeerRestarted:
		return "the peer restarted"
	case LossWindowExpired:
		return "resume window expired"
	case LossPeerReset:
		return "the peer ended the session"
	case LossClosed:
		return "closed before the peer acknowledged them"
	}
	return fmt.Sprintf("reason %d", uint8(r))
}

// Loss names messages lost for good: the sequences First to Last (both
// included) of one direction of one session. It carries no peer: the mesh
// adds that ("peer ann: messages 1041-1632 (592) lost: resend budget
// exceeded"). A *Loss is an error that matches ErrLost.
type Loss struct {
	First, Last uint64
	Reason      LossReason
}

// Count is how many messages were lost.
func (l *Loss) Count() uint64 { return l.Last - l.First + 1 }

func (l *Loss) Error() string {
	if l.First == l.Last {
		return fmt.Sprintf("message %d lost: %v", l.First, l.Reason)
	}
	return fmt.Sprintf("messages %d-%d (%d) lost: %v", l.First, l.Last, l.Count(), l.Reason)
}

// Is makes every *Loss match ErrLost.
func (l *Loss) Is(target error) bool { return target == ErrLost }

// lossOf returns the loss of first..last, or nil when the range is empty.
func lossOf(first, last uint64, r LossReason) *Loss {
	if first == 0 || last < first {
		return nil
	}
	return &Loss{First: first, Last: last, Reason: r}
}
