package mesh

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
)

// heldResponder answers Text requests with "yes: " and the request's text,
// each only once release is closed; got has each request as it comes.
func heldResponder(t *testing.T) (r *Responder, got chan string, release chan struct{}) {
	r = NewResponder()
	got, release = make(chan string, 4), make(chan struct{})
	err := r.Handle(&Text{}, func(m Message) (any, error) {
		s := m.Msg.(*Text).S
		got <- s
		select {
		case <-release:
		case <-time.After(20 * time.Second):
			return nil, errors.New("not released")
		}
		return &Text{S: "yes: " + s}, nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return r, got, release
}

type reqOutcome struct {
	reply any
	err   error
}

// request runs a.Request in the background.
func request(a *Node, to [16]byte, s string) <-chan reqOutcome {
	out := make(chan reqOutcome, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		reply, err := a.Request(ctx, to, &Text{S: s})
		out <- reqOutcome{reply, err}
	}()
	return out
}

func waitOutcome(t *testing.T, out <-chan reqOutcome) reqOutcome {
	t.Helper()
	select {
	case o := <-out:
		return o
	case <-time.After(15 * time.Second):
		t.Fatal("the request did not end within 15 s")
	}
	return reqOutcome{}
}

// untilResumed waits for tl's PeerResumed, failing on a PeerLeft.
func untilResumed(t *testing.T, tl *tally) PeerEvent {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		ev := tl.event(t, time.Until(deadline))
		switch ev.Kind {
		case PeerResumed:
			return ev
		case PeerLeft, PeerRestarted:
			t.Fatalf("%s: %v (%v) before PeerResumed", tl.n.Name(), ev.Kind, ev.Err)
		}
	}
}

// TestResumeRequestAnswered: a request whose link is cut before the reply
// is answered after the link resumes (the reply, sent into the cut link, is
// resent on the new one), not timed out.
func TestResumeRequestAnswered(t *testing.T) {
	leaktest.Check(t)
	r, got, release := heldResponder(t)
	a, _, ct, ta, tb := lossPairWith(t, nil, func(c *NodeConfig) { c.Responder = r }, nil)
	out := request(a, tb.n.ID(), "are you there")
	select {
	case s := <-got:
		if s != "are you there" {
			t.Fatalf("b got %q", s)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("b did not get the request")
	}
	ct.cut()
	if ev := ta.event(t, 5*time.Second); ev.Kind != PeerResuming {
		t.Fatalf("a: %v (%v) after the cut, want PeerResuming", ev.Kind, ev.Err)
	}
	select {
	case o := <-out:
		t.Fatalf("the request ended before b answered: %v %v", o.reply, o.err)
	default:
	}
	close(release) // b answers into the cut link
	if ev := untilResumed(t, ta); ev.Lost != nil || ev.LostIn != nil {
		t.Fatalf("a: resumed with losses %v %v", ev.Lost, ev.LostIn)
	}
	o := waitOutcome(t, out)
	if o.err != nil {
		t.Fatalf("request: %v", o.err)
	}
	if txt, ok := o.reply.(*Text); !ok || txt.S != "yes: are you there" {
		t.Fatalf("reply %#v", o.reply)
	}
	if st := a.Stats(); st.Resumes == 0 || st.MessagesLost != 0 || st.MessagesLostIn != 0 {
		t.Fatalf("a: resumes %d, lost %d, lost in %d", st.Resumes, st.MessagesLost, st.MessagesLostIn)
	}
}

// TestResumeRequestLost: a request that the resend budget dropped during a
// cut fails at resume with ErrLost, naming the request's sequences and the
// lost range, long before its context ends.
func TestResumeRequestLost(t *testing.T) {
	leaktest.Check(t)
	const budget = 20
	a, _, ct, ta, tb := lossPairWith(t, func(c *NodeConfig) { c.Resume.MaxFrames = budget }, nil, nil)
	bID := tb.n.ID()
	ct.cut()
	out := request(a, bID, "lost") // sequences 101 (marker) and 102
	waitUntil(t, 5*time.Second, "the request to be numbered", func() bool { return a.Sequence(bID) == 102 })
	const k = 50 // 103-152: the budget keeps 133-152
	for i := range uint64(k) {
		if err := a.Send(bID, &Msg32{Seq: 100 + i, Sender: 1}); err != nil {
			t.Fatal(err)
		}
		a.Xfer()
	}
	ev := lossEvent(t, ta, PeerResumed)
	if l := ev.Lost; l == nil || l.First != 101 || l.Last != 102+k-budget {
		t.Fatalf("a: lost %+v, want 101-%d", l, 102+k-budget)
	}
	o := waitOutcome(t, out)
	want := fmt.Sprintf("mesh: request to %s lost: resend budget exceeded (the request is messages 101-102, of 101-%d lost)", tb.n.Name(), 102+k-budget)
	if o.err == nil || o.err.Error() != want {
		t.Fatalf("request: %v %v, want the error %q", o.reply, o.err, want)
	}
	var l *Loss
	if !errors.Is(o.err, ErrLost) || !errors.As(o.err, &l) || l.First != 101 || l.Last != 102+k-budget || l.Peer != bID {
		t.Fatalf("request's error %v: matches ErrLost %v, loss %+v", o.err, errors.Is(o.err, ErrLost), l)
	}
}

// TestResumeRequestReplyLost: the peer received a request, and its reply
// was among what its resend budget dropped during a cut: the request fails
// at resume with ErrLost, naming the request and the peer's lost range.
func TestResumeRequestReplyLost(t *testing.T) {
	leaktest.Check(t)
	const budget = 20
	r, got, release := heldResponder(t)
	a, _, ct, ta, tb := lossPairWith(t, nil, func(c *NodeConfig) {
		c.Resume.MaxFrames = budget
		c.Responder = r
	}, nil)
	b, bID := tb.n, tb.n.ID()
	out := request(a, bID, "lost reply") // a's sequences 101 and 102
	select {
	case <-got:
	case <-time.After(5 * time.Second):
		t.Fatal("b did not get the request")
	}
	waitUntil(t, 5*time.Second, "b to acknowledge the request", func() bool {
		p, err := a.Peer(bID)
		return err == nil && p.Unacked == 0 && a.Sequence(bID) == 102
	})
	ct.cut()
	close(release) // b's sequences 1 (the marker) and 2 (the reply)
	waitUntil(t, 5*time.Second, "b to reply", func() bool { return b.Sequence(a.ID()) == 2 })
	const k = 50 // b's 3-52: its budget keeps 33-52
	for i := range uint64(k) {
		if err := b.Send(a.ID(), &Msg32{Seq: i, Sender: 2}); err != nil {
			t.Fatal(err)
		}
		b.Xfer()
	}
	ev := lossEvent(t, ta, PeerResumed)
	if li := ev.LostIn; li == nil || li.First != 1 || li.Last != 2+k-budget {
		t.Fatalf("a: lost in %+v, want 1-%d", li, 2+k-budget)
	}
	o := waitOutcome(t, out)
	want := fmt.Sprintf("mesh: reply from %s lost: resend budget exceeded (it received the request, messages 101-102, and lost its messages 1-%d to this node)", b.Name(), 2+k-budget)
	if o.err == nil || o.err.Error() != want {
		t.Fatalf("request: %v %v, want the error %q", o.reply, o.err, want)
	}
	var l *Loss
	if !errors.Is(o.err, ErrLost) || !errors.As(o.err, &l) || l.First != 1 || l.Last != 2+k-budget {
		t.Fatalf("request's error %v: loss %+v", o.err, l)
	}
}
