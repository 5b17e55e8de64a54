package hub

import (
	"bytes"
	"crypto/rand"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/lanmesh/lanmesh/hub/internal/wire"
	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
	"github.com/lanmesh/lanmesh/mesh"
	"github.com/lanmesh/lanmesh/meshkey"
)

// TestHubKeyed: under a mesh key, everything on the hub is sealed: a plain
// NATS subscriber sees no text and no name; forged, unsealed and replayed
// envelopes are dropped and counted; a node with another key sees no one.
func TestHubKeyed(t *testing.T) {
	leaktest.Check(t)
	srv := startServer(t, ServerOptions{})
	spy, err := nats.Connect(srv.URL())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(spy.Close)
	seen := make(chan *nats.Msg, 4096)
	if _, err := spy.ChanSubscribe("lanmesh.>", seen); err != nil {
		t.Fatal(err)
	}
	spy.Flush()

	key, err := meshkey.Generate(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	kr := meshkey.Keyring{Primary: key}
	s := twoSites(t, srv.URL(), kr)
	waitLinked(t, 10*time.Second, s.full())
	s.broadcastOnce(t, s.a2, "the secret plan")
	if got, err := request(s.b1, s.a1.ID(), 5*time.Second); err != nil || got != "pong from a1" {
		t.Fatalf("request: %q %v", got, err)
	}

	// What the spy saw: sealed envelopes only, none of which opens without
	// the key, and no text or name in the clear.
	var toB1 []byte
	k := 0
	for drained := false; !drained; {
		select {
		case m := <-seen:
			k++
			h, _, err := wire.Open(m.Data, m.Subject, nil)
			if err != wire.ErrSealed || !h.Sealed {
				t.Fatalf("an envelope on %s opened without the key (sealed %v): %v", m.Subject, h.Sealed, err)
			}
			// Names as the bodies carry them (a length byte first): two
			// bytes alone turn up in random ciphertext one run in twenty.
			for _, clear := range []string{"secret plan", "pong from", "\x02a1", "\x02b2"} {
				if bytes.Contains(m.Data[wire.HeaderSize:], []byte(clear)) {
					t.Fatalf("%q in the clear on %s", clear, m.Subject)
				}
			}
			if m.Subject == wire.SubjectNode("hubtest", s.b1.ID()) && h.Kind == wire.KindMessage {
				toB1 = m.Data
			}
		default:
			drained = true
		}
	}
	t.Logf("the spy saw %d envelopes, all sealed", k)
	if toB1 == nil {
		t.Fatal("the spy saw no message for b1")
	}

	// Replayed, forged and unsealed envelopes to b1: dropped and counted,
	// nothing delivered.
	before := s.bb1.Stats()
	s.b1.mu.Lock()
	msgsBefore := len(s.b1.msgs)
	s.b1.mu.Unlock()
	subj := wire.SubjectNode("hubtest", s.b1.ID())
	spy.Publish(subj, toB1) // a replay
	other, _ := meshkey.Generate(rand.Reader)
	forged := wire.DataBody{Site: "A", Name: "a1", Frame: mustFrame(t, "forged")}
	h := wire.Header{Kind: wire.KindMessage, Sender: s.a1.ID(), Session: uuid.New(), Start: time.Now().UnixNano(), Seq: 1}
	spy.Publish(subj, wire.Seal(nil, h, subj, forged.Append(nil), wire.DeriveKeys(meshkey.Keyring{Primary: other}.Derive("hubtest"))))
	spy.Publish(subj, wire.Seal(nil, h, subj, forged.Append(nil), nil)) // unsealed
	// Sealed with the right key for another subject, moved to b1's.
	subj2 := wire.SubjectNode("hubtest", s.b2.ID())
	h.Session = uuid.New()
	spy.Publish(subj, wire.Seal(nil, h, subj2, forged.Append(nil), wire.DeriveKeys(kr.Derive("hubtest"))))
	spy.Flush()
	waitFor(t, 5*time.Second, "b1 to drop what the spy sent", func() bool {
		st := s.bb1.Stats()
		return st.ReplayDrop == before.ReplayDrop+1 && st.SealedDrop == before.SealedDrop+3
	})
	s.broadcastOnce(t, s.a1, "after the forgeries")
	s.b1.mu.Lock()
	for _, m := range s.b1.msgs[msgsBefore:] {
		if txt := m.Msg.(*Text).S; txt != "after the forgeries" && txt != "after the forgeries-after" {
			t.Errorf("b1 took %q", txt)
		}
	}
	s.b1.mu.Unlock()

	// A node of another key, in a site of its own, sees no one and no one
	// sees it.
	c := testNode(t, mesh.NewMemNetwork(), "c1", nil, meshkey.Keyring{Primary: other})
	bc := join(t, c, srv.URL(), "C", testHB)
	waitFor(t, 5*time.Second, "c1 to drop the others' envelopes", func() bool { return bc.Stats().SealedDrop > 0 })
	if got := c.linked(); len(got) != 0 {
		t.Fatalf("c1 sees %v", got)
	}
	if got := s.a1.linked(); len(got) != 3 {
		t.Fatalf("a1 sees %v", got)
	}
}

func mustFrame(t *testing.T, s string) []byte {
	t.Helper()
	b, err := (&Text{S: s}).AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	// The binary codec's frame: length, code, payload.
	return append([]byte{byte(len(b) + 1), 0x11}, b...)
}
