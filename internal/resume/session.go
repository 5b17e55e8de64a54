package resume

import "errors"

// Session is one peer pair's resume state, which outlives its links: the
// journal of what this side sent, the tracker of what it delivered, and
// the session's secret. It puts the pieces together in the order the spec
// requires (fence before saying what was delivered, pin what was announced,
// verify before applying, begin again on both sides alike), so that the
// mesh only moves bytes.
//
// A Session is not safe for concurrent use, except its Tracker: the mesh
// guards it with the peer's send lock, the one Send takes for the Journal.
type Session struct {
	Journal *Journal
	Tracker *Tracker

	secret Secret
	has    bool // a session exists: the next Resume is not fresh
	// touched: frames may have passed between the two instances (a link
	// reached Accept, or sent at once); the next fresh Resume is not
	// FlagUntouched. It is never cleared: a session that ended may have
	// delivered frames.
	touched bool
}

// NewSession returns an empty session: its first link begins it.
func NewSession(jc JournalConfig, tc TrackerConfig) (*Session, error) {
	j, err := NewJournal(jc)
	if err != nil {
		return nil, err
	}
	t, err := NewTracker(tc)
	if err != nil {
		return nil, err
	}
	return &Session{Journal: j, Tracker: t}, nil
}

// Active reports whether the session has begun (and not ended).
func (s *Session) Active() bool { return s.has }

// Opening is one link's side of the resume exchange, from Open to Accept.
type Opening struct {
	// Own is this side's Resume message: the link's first frame.
	Own Message
	// Stream is what the link reads with (Accept may replace it).
	Stream *Stream
	// SendNow: this side may send sequenced frames at once, numbered from
	// 1, each as it is appended (a fresh side with nothing journaled; the
	// agreement cannot come out otherwise). Else it sends nothing
	// sequenced before Accept, then from Result.Start.
	SendNow bool

	pair          Pair
	binding       Binding
	secret        func() (Secret, error)
	began         bool // this link began the session, at Open
	accepted      bool // Accept succeeded
	touchedBefore bool // the session's touched before Open
}

// Open begins the exchange on a new link, of the connection bound by b,
// between p's ends; secret gives this link's secret (KeyedSecret or
// UnkeyedSecret), for when the link begins a session. Open fences every
// older link of the peer and makes this side's Resume: sealed, when a
// session exists, and then it pins the journal from what the Resume
// announces; fresh otherwise, and then the session begins with this link
// at once (on both sides, since the peer, reading a fresh Resume, begins it
// too): were the link to fail before the peer's Resume is read, the next
// link resumes it rather than resending what this one delivered.
//
// The link writes o.Own first; then, if o.SendNow, every frame as it is
// appended, else nothing sequenced until Accept. An error (the secret
// could not be made) fails the link.
func (s *Session) Open(p Pair, b Binding, secret func() (Secret, error)) (*Opening, error) {
	o := &Opening{pair: p, binding: b, secret: secret}
	if !s.has {
		sec, err := secret()
		if err != nil {
			return nil, err
		}
		s.Tracker.Reset()
		s.secret, s.has, o.began = sec, true, true
		o.Stream, _ = s.Tracker.Fence()
		o.Own = NewFresh(s.Journal.cfg, s.Journal.From())
		if !s.touched {
			o.Own.Flags |= FlagUntouched
		}
		o.SendNow = s.Journal.Next() == 1
		o.touchedBefore = s.touched
		if o.SendNow {
			s.touched = true
		}
		if !o.SendNow {
			s.Journal.Pin(o.Own.From) // frames journaled before any link
		}
		return o, nil
	}
	var delivered uint64
	o.Stream, delivered = s.Tracker.Fence()
	o.Own = Message{Session: s.secret.ID(), Delivered: delivered, Skipped: s.Tracker.Skipped(), From: s.Journal.From(),
		BudgetFrames: uint32(s.Journal.cfg.MaxFrames), BudgetBytes: uint32(s.Journal.cfg.MaxBytes)}
	o.Own.Seal(&s.secret, b, p)
	s.Journal.Pin(o.Own.From)
	return o, nil
}

// Result is what Accept decided for the link.
type Result struct {
	// Resumed: the session goes on; else a new one began with this link.
	Resumed bool
	// Renumbered: the journal began again at sequence 1 (the old session's
	// unacknowledged frames are in Lost), so a sequence this side gave
	// before Accept names nothing any more. A new session does not always
	// renumber: one this side began at Open (a fresh Resume) and one that
	// takes an untouched journal over (12.7) keep the journal's frames
	// with their numbers, and a later Loss names them so. Resumed and
	// Renumbered are never both true.
	Renumbered bool
	// Start is the sequence of this side's first frame to send on the link:
	// resend the journal from here (AppendFrames), pinning what is left
	// (Pin) until caught up (then Pin(0)).
	Start uint64
	// Lost: this side's frames that are lost for good (a resume that needed
	// frames the budget had dropped, or the old session's unacknowledged
	// frames when a new one began). LostIn: the peer's frames it could not
	// resend. Tell the program of both.
	Lost, LostIn *Loss
}

// Accept applies the peer's Resume payload, read as the link's first
// frame. A payload that does not parse, a MAC that does not verify (the
// session is kept: a forgery or a replay does not end it), a peer that
// claims more than was sent, or a secret that cannot be made are errors:
// close the link with a protocol error.
func (s *Session) Accept(o *Opening, payload []byte) (Result, error) {
	peer, err := ParseMessage(payload)
	if err != nil {
		return Result{}, err
	}
	if !o.began && !peer.Fresh() && peer.Session == s.secret.ID() {
		if err := peer.Verify(&s.secret, o.binding, o.pair); err != nil {
			return Result{}, err
		}
	}
	out := Agree(&o.Own, &peer)
	var res Result
	delivered, skipped := peer.Delivered, peer.Skipped
	if !out.Resumed {
		if !o.began {
			// The session this side held ends; the new one is this link's.
			sec, err := o.secret()
			if err != nil {
				return Result{}, err
			}
			if peer.Flags&FlagUntouched != 0 && s.Journal.Acked() == 0 && s.Tracker.Delivered() == 0 {
				// Nothing of the old session reached either side: its
				// frames carry into the new one, numbered as they were.
			} else {
				res.Lost = s.Journal.Reset(out.Reason)
				res.Renumbered = true
			}
			s.Tracker.Reset()
			o.Stream, _ = s.Tracker.Fence()
			s.secret = sec
		}
		delivered, skipped = 0, 0
	}
	var start uint64
	if o.SendNow {
		// Every frame since Open went out on this link, after the fresh
		// Resume: none needs resending, and one the budget dropped from the
		// journal meanwhile is on its way, not lost.
		start = s.Journal.Next()
	} else {
		var lost *Loss
		start, lost, err = s.Journal.Resume(delivered, skipped)
		if err != nil {
			return Result{}, err
		}
		if lost != nil {
			res.Lost = lost
		}
	}
	gap, err := o.Stream.Start(out.RecvFrom)
	if err != nil {
		return Result{}, err
	}
	res.LostIn = gap
	s.Tracker.SetPeerBudget(peer.BudgetFrames, peer.BudgetBytes)
	o.accepted = true
	s.touched = true
	res.Resumed, res.Start = out.Resumed, start
	if start == s.Journal.Next() {
		s.Journal.Pin(0)
	} else {
		s.Journal.Pin(start)
	}
	return res, nil
}

// Detach is called when the link that carried the session ends: nothing
// is being resent any more, so the journal may drop for the budget again.
func (s *Session) Detach() { s.Journal.Pin(0) }

// End ends the session (the peer restarted, the window expired, a Bye,
// Close): the journal's unacknowledged frames are lost for reason, the
// tracker starts again, and the secret is forgotten. The next link begins
// a new session.
func (s *Session) End(reason LossReason) *Loss {
	loss := s.Journal.Reset(reason)
	s.Tracker.Reset()
	s.secret, s.has = Secret{}, false // touched stays: the peer may have delivered
	return loss
}

// IsProtocolError reports whether err from Accept, Journal.Ack or
// Stream.Deliver means the peer broke the protocol (close the link with
// mesh.ErrProtocol): every error but ErrStale (drop the frames: the link
// is being replaced).
func IsProtocolError(err error) bool {
	return err != nil && !errors.Is(err, ErrStale)
}

// Began reports whether this link's Open began the session (a fresh
// Resume).
func (o *Opening) Began() bool { return o.began }

// Unbegin takes back a session that the opening o began and that went no
// further on its link: the peer's Resume was never accepted there and no
// numbered frame was sent on it (o was not SendNow). The peer can have
// delivered nothing of it, so the next link may begin afresh: its Resume is
// fresh, and the journal's frames, numbered from 1, are resent after it.
// It reports whether it did (false: the session stands).
func (s *Session) Unbegin(o *Opening) bool {
	if !s.has || !o.began || o.SendNow || o.accepted {
		return false
	}
	s.secret, s.has = Secret{}, false
	s.Tracker.Reset()
	s.Journal.Pin(0)
	return true
}

// Hold makes a fresh opening that may send at once (SendNow) wait for the
// peer's Resume instead, as any other: for a link that may yet be given
// up for another (the one-link rule), so that Unbegin remains possible.
// Call it right after Open.
func (s *Session) Hold(o *Opening) {
	if !o.SendNow {
		return
	}
	o.SendNow = false
	s.touched = o.touchedBefore
	s.Journal.Pin(o.Own.From)
}

// ID returns the session's id (zero when there is none).
func (s *Session) ID() SessionID {
	if !s.has {
		return SessionID{}
	}
	return s.secret.ID()
}
