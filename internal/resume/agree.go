package resume

// Outcome is what the two resume messages of a link decide, the same on
// both ends (each computes it with its own message first).
type Outcome struct {
	// Resumed: both ends hold the same session and go on with it. Else the
	// session begins again with this link: both journals and trackers reset,
	// and each side reports what its journal loses with Reason.
	Resumed bool
	Reason  LossReason
	// SendFrom is the sequence of this side's first sequenced frame on the
	// link; RecvFrom the peer's.
	SendFrom, RecvFrom uint64
	// SendLoss: this side's frames the peer still needed but that this
	// side's journal had dropped, or that the peer skipped on an earlier
	// link (LossBudget); the journal's Resume returns the same less what it
	// reported already. RecvLoss: the peer's frames that it could not resend, which
	// this side will never deliver (the Stream's Start returns the same).
	SendLoss, RecvLoss *Loss
}

// Agree compares the resume message this side sent on a link with the one
// it received (parsed, and verified when not fresh). It resumes when
// neither is fresh and both name the same session; otherwise the session
// begins again.
func Agree(own, peer *Message) Outcome {
	if own.Fresh() || peer.Fresh() || own.Session != peer.Session {
		// A new session: a side that held an old one starts again at 1; a
		// fresh side starts where its message says (1, unless it had to
		// drop frames journaled before the session began).
		o := Outcome{Reason: LossPeerReset, SendFrom: 1, RecvFrom: 1}
		if own.Fresh() {
			o.SendFrom = own.From
			o.SendLoss = lossOf(1, own.From-1, LossBudget)
		}
		if peer.Fresh() {
			o.RecvFrom = peer.From
			o.RecvLoss = lossOf(1, peer.From-1, LossBudget)
		}
		return o
	}
	o := Outcome{Resumed: true}
	o.SendFrom = max(own.From, peer.Delivered+1)
	first := peer.Delivered + 1
	if peer.Skipped != 0 {
		first = peer.Skipped
	}
	o.SendLoss = lossOf(first, own.From-1, LossBudget)
	o.RecvFrom = max(peer.From, own.Delivered+1)
	o.RecvLoss = lossOf(own.Delivered+1, peer.From-1, LossBudget)
	return o
}
