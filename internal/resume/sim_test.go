package resume

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"testing"
)

// The simulation drives two ends of a peer pair through random sends,
// deliveries, acknowledgements, cuts (what was in flight is partly
// delivered, partly lost, partly delivered late on the dead link), resumes,
// window expiries and restarts, the way the mesh will: journals, trackers,
// resume messages through their bytes, Agree, the resend in pieces. At the
// end it heals the link and checks the model: in each direction, every
// message the sender's journal accepted was delivered exactly once, in
// order, or reported lost with its exact range, and a loss for the budget
// is exact (none of those messages was delivered).

type simItem struct {
	ack   bool
	n     uint64
	frame []byte
}

type simEnd struct {
	name     string
	pair     Pair
	sess     *Session
	j        *Journal // sess.Journal
	t        *Tracker // sess.Tracker
	stream   *Stream
	resend   uint64 // next sequence to resend; streaming once it reaches j.Next()
	msg      uint64 // the program's message counter
	seqMsg   map[uint64]uint64
	accepted []uint64
	lost     map[uint64]LossReason // by message
	got      []uint64              // messages delivered from the peer
	dead     map[uint64]bool       // messages of a previous instance of this end
}

func (e *simEnd) streaming() bool { return e.resend == e.j.Next() }

type sim struct {
	t       *testing.T
	rng     *rand.Rand
	ends    [2]*simEnd
	q       [2][]simItem // q[i]: from ends[i] to the other, on the live link
	ghost   [2][]simItem // in flight on the dead link, arriving late
	ghosts  [2]*Stream   // the dead link's streams (of the receivers)
	up      bool
	healing bool // no more failures
	events  map[string]int
}

func newSimEnd(t *testing.T, rng *rand.Rand, name string, node, inst ID) *simEnd {
	cfg := JournalConfig{MaxFrames: 4 + rng.IntN(300), MaxBytes: 256 + rng.IntN(16<<10), Overflow: Overflow(rng.IntN(2))}
	sess, err := NewSession(cfg, TrackerConfig{AckFrames: 1 + rng.IntN(64), AckBytes: 64 + rng.IntN(4096)})
	if err != nil {
		t.Fatal(err)
	}
	return &simEnd{name: name, pair: Pair{LocalNode: node, LocalInstance: inst}, sess: sess, j: sess.Journal, t: sess.Tracker,
		seqMsg: map[uint64]uint64{}, lost: map[uint64]LossReason{}, dead: map[uint64]bool{}}
}

func (s *sim) peer(i int) *simEnd { return s.ends[1-i] }

func (s *sim) send(i int) {
	e := s.ends[i]
	if !e.sess.Active() && !s.up {
		return // no session and no link: the mesh says ErrPeerGone
	}
	e.msg++
	live := s.up && e.streaming() // decided before Append moves Next
	seq, err := e.j.Append(frameOf(e.msg, 8+s.rng.IntN(40)))
	if err != nil {
		if !errors.Is(err, ErrFull) && !errors.Is(err, ErrTooLarge) {
			s.t.Fatalf("%s: Append: %v", e.name, err)
		}
		e.msg-- // refused: the program was told, nothing was accepted
		s.events["refused"]++
		return
	}
	e.seqMsg[seq] = e.msg
	e.accepted = append(e.accepted, e.msg)
	if live {
		e.resend = e.j.Next()
		f := append([]byte(nil), e.j.Frame(seq)...) // the link's own copy
		if len(f) == 0 {
			f = frameOf(e.msg, 8) // kept nowhere: sent, but a resume cannot resend it
		}
		s.q[i] = append(s.q[i], simItem{frame: f})
	}
}

// pumpResend moves a piece of a resend onto the link, pinning what is left.
func (s *sim) pumpResend(i int) {
	e := s.ends[i]
	if !s.up || e.streaming() {
		return
	}
	k := 1 + s.rng.IntN(8)
	for ; k > 0 && e.resend < e.j.Next(); k-- {
		f := e.j.Frame(e.resend)
		if f == nil {
			s.t.Fatalf("%s: frame %d to resend is gone (from %d, pin %d)", e.name, e.resend, e.j.From(), e.j.pin)
		}
		s.q[i] = append(s.q[i], simItem{frame: append([]byte(nil), f...)})
		e.resend++
	}
	if e.streaming() {
		e.j.Pin(0)
	} else {
		e.j.Pin(e.resend)
	}
}

func (s *sim) ack(i int) {
	if n, ok := s.ends[i].t.TakeAck(); ok && s.up {
		s.q[i] = append(s.q[i], simItem{ack: true, n: n})
	}
}

// arrive delivers the first item in flight from ends[i].
func (s *sim) arrive(i int) {
	if len(s.q[i]) == 0 {
		return
	}
	it := s.q[i][0]
	s.q[i] = s.q[i][1:]
	s.receive(1-i, it, s.peer(i).stream)
}

func (s *sim) receive(r int, it simItem, stream *Stream) {
	e := s.ends[r]
	if it.ack {
		if stream != e.peerStreamOf(s) {
			s.events["stale ack"]++
			return // an old link's ack: the resume superseded it
		}
		if err := e.j.Ack(it.n); err != nil {
			s.t.Fatalf("%s: Ack(%d): %v", e.name, it.n, err)
		}
		return
	}
	m := msgOf(s.t, it.frame)
	_, err := stream.Deliver(1, func(skip int) (int, int) {
		e.got = append(e.got, m)
		return 1, len(it.frame)
	})
	switch {
	case errors.Is(err, ErrStale):
		s.events["stale frame"]++
	case err != nil:
		s.t.Fatalf("%s: Deliver message %d: %v", e.name, m, err)
	}
	if e.t.AckDue() {
		s.ack(r)
	}
}

// peerStreamOf: acks arrive on the link whose stream the receiver of the
// acks reads; the live link is identified by the end's own stream.
func (e *simEnd) peerStreamOf(s *sim) *Stream { return e.stream }

func (s *sim) cut() {
	s.up = false
	s.events["cut"]++
	for i := range 2 {
		// Some of what was in flight arrives before the link is declared
		// dead, some is lost, some arrives late on the dead link.
		q := s.q[i]
		a := s.rng.IntN(len(q) + 1)
		for _, it := range q[:a] {
			s.receive(1-i, it, s.peer(i).stream)
		}
		rest := q[a:]
		b := s.rng.IntN(len(rest) + 1)
		s.ghost[i] = append(s.ghost[i], rest[:b]...)
		s.ghosts[1-i] = s.ends[1-i].stream
		s.q[i] = nil
		e := s.ends[i]
		e.sess.Detach() // nothing is being resent
		e.resend = 0
	}
}

func (s *sim) expire(i int) {
	e := s.ends[i]
	if !e.sess.Active() || s.up {
		return
	}
	s.events["expire"]++
	s.recordLoss(e, e.sess.End(LossWindowExpired))
	e.seqMsg = map[uint64]uint64{}
}

// restart: ends[i]'s program restarts with a new instance. The peer learns
// it from the new link's Hello: its journal loses what was unacknowledged.
func (s *sim) restart(i int) {
	if s.up {
		return
	}
	s.events["restart"]++
	old := s.ends[i]
	e := newSimEnd(s.t, s.rng, old.name, old.pair.LocalNode, ID{byte(s.rng.Uint32()), 1})
	e.msg = old.msg + 1000 // the new program's messages, told apart from the old one's
	for _, m := range old.accepted {
		e.dead[m] = true // nobody is left to tell about these
	}
	for m := range old.dead {
		e.dead[m] = true
	}
	e.got = old.got // the old program's deliveries stay counted
	e.accepted = old.accepted
	e.lost = old.lost
	s.ends[i] = e
	p := s.peer(i)
	s.recordLoss(p, p.sess.End(LossPeerRestarted))
	p.seqMsg = map[uint64]uint64{}
	s.ghost[i], s.ghost[1-i] = nil, nil
}

func (s *sim) recordLoss(e *simEnd, l *Loss) {
	if l == nil {
		return
	}
	for seq := l.First; seq <= l.Last; seq++ {
		m, ok := e.seqMsg[seq]
		if !ok {
			s.t.Fatalf("%s: loss %v names sequence %d, never sent", e.name, l, seq)
		}
		if _, dup := e.lost[m]; dup {
			s.t.Fatalf("%s: message %d reported lost twice", e.name, m)
		}
		e.lost[m] = l.Reason
	}
	s.events[fmt.Sprint("lost: ", l.Reason)] += int(l.Count())
}

// resume brings a new link up: both ends open (fence, their Resume),
// late frames of the dead link reach the fenced streams, each end accepts
// the other's Resume (through its bytes), and sets up its resend.
func (s *sim) resume() {
	s.up = true
	s.events["link"]++
	var i2r, r2i, cb [32]byte
	for k := range i2r {
		i2r[k], r2i[k], cb[k] = byte(s.rng.Uint32()), byte(s.rng.Uint32()), byte(s.rng.Uint32())
	}
	binding := KeyedBinding(cb[:])
	var open [2]*Opening
	for i, e := range s.ends {
		p := s.peer(i)
		e.pair.RemoteNode, e.pair.RemoteInstance = p.pair.LocalNode, p.pair.LocalInstance
		o, err := e.sess.Open(e.pair, binding, func() (Secret, error) { return KeyedSecret(e.pair, i2r, r2i), nil })
		if err != nil {
			s.t.Fatal(err)
		}
		open[i] = o
		e.stream = o.Stream
	}
	for i := range 2 {
		for _, it := range s.ghost[i] {
			if !it.ack && s.ghosts[1-i] != nil {
				s.receive(1-i, it, s.ghosts[1-i])
			}
		}
		s.ghost[i] = nil
	}
	// Usually both ends read the other's Resume; sometimes the new link
	// fails first, after one end read it, or neither.
	applied := [2]bool{true, true}
	if !s.healing && s.rng.IntN(8) == 0 {
		applied = [2]bool{s.rng.IntN(2) == 0, s.rng.IntN(2) == 0}
	}
	for i, e := range s.ends {
		if !applied[i] {
			continue
		}
		payload, err := open[1-i].Own.AppendBinary(nil)
		if err != nil {
			s.t.Fatal(err)
		}
		res, err := e.sess.Accept(open[i], payload)
		if err != nil {
			s.t.Fatalf("%s: Accept: %v", e.name, err)
		}
		s.recordLoss(e, res.Lost) // numbered in the old session, if it ended
		if res.Resumed {
			s.events["resumed"]++
		} else {
			s.events["reset"]++
		}
		if res.Renumbered {
			e.seqMsg = map[uint64]uint64{} // else the new session keeps the journal's numbers
		}
		e.stream = open[i].Stream
		e.resend = res.Start
	}
	s.ghosts = [2]*Stream{}
	if !applied[0] || !applied[1] {
		s.events["exchange failed"]++
		s.up = false
		for _, e := range s.ends {
			e.sess.Detach()
			e.resend = 0
		}
	}
}

func (s *sim) step() {
	i := s.rng.IntN(2)
	switch r := s.rng.IntN(100); {
	case r < 40:
		s.send(i)
	case r < 70:
		if s.up {
			s.arrive(i)
		}
	case r < 80:
		s.pumpResend(i)
	case r < 88:
		s.ack(i) // with a ping, or riding on a write
	case r < 92:
		if s.up {
			s.cut()
		}
	case r < 97:
		if !s.up {
			s.resume()
		}
	case r < 98:
		s.expire(i)
	default:
		if s.rng.IntN(4) == 0 {
			s.restart(i)
		}
	}
}

// heal brings the link up and runs it until everything is delivered and
// acknowledged.
func (s *sim) heal() {
	s.healing = true
	if !s.up {
		s.resume()
	}
	for range 1 << 20 {
		idle := true
		for i := range 2 {
			if !s.ends[i].streaming() {
				s.pumpResend(i)
				idle = false
			}
			if len(s.q[i]) > 0 {
				s.arrive(i)
				idle = false
			}
			if _, ok := s.ends[i].t.TakeAck(); ok {
				s.ends[i].t.ackSent.Store(0) // put it back: take it as a link would
				s.ack(i)
				idle = false
			}
		}
		if idle {
			return
		}
	}
	s.t.Fatal("the healed link never settled")
}

func (s *sim) check() {
	for i, e := range s.ends {
		r := s.peer(i)
		var last uint64
		seen := map[uint64]bool{}
		for _, m := range r.got {
			if m <= last && !e.dead[m] {
				s.t.Fatalf("%s delivered message %d of %s after %d", r.name, m, e.name, last)
			}
			if seen[m] {
				s.t.Fatalf("%s delivered message %d of %s twice", r.name, m, e.name)
			}
			seen[m], last = true, m
		}
		for _, m := range e.accepted {
			reason, lost := e.lost[m]
			switch {
			case e.dead[m]:
			case lost && seen[m] && reason == LossBudget:
				s.t.Fatalf("%s: message %d reported lost for the budget, yet delivered", e.name, m)
			case !lost && !seen[m]:
				s.t.Fatalf("%s: message %d neither delivered nor reported lost", e.name, m)
			}
		}
		if len(e.lost) == 0 && len(r.got) != countLive(e) {
			s.t.Fatalf("%s: %d delivered of %d accepted", e.name, len(r.got), countLive(e))
		}
	}
}

func countLive(e *simEnd) int {
	n := 0
	for _, m := range e.accepted {
		if !e.dead[m] {
			n++
		}
	}
	return n
}

func TestSimulationCutsAndResumes(t *testing.T) {
	seeds := 100
	if testing.Short() {
		seeds = 30
	}
	total := map[string]int{}
	for seed := range uint64(seeds) {
		rng := rand.New(rand.NewPCG(seed, 12))
		s := &sim{t: t, rng: rng, events: map[string]int{}}
		s.ends[0] = newSimEnd(t, rng, "A", ID{1}, ID{1, 1})
		s.ends[1] = newSimEnd(t, rng, "B", ID{2}, ID{2, 1})
		s.resume()
		for range 3000 {
			s.step()
		}
		s.heal()
		s.check()
		for k, v := range s.events {
			total[k] += v
		}
	}
	t.Logf("events over %d runs: %v", seeds, total)
	for _, k := range []string{"cut", "resumed", "reset", "stale frame", "lost: resend budget exceeded", "restart", "expire", "exchange failed"} {
		if total[k] == 0 {
			t.Errorf("the simulation never saw %q", k)
		}
	}
}
