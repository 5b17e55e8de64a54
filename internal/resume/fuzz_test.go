package resume

import (
	"bytes"
	"testing"
)

// FuzzParseMessage: any bytes either fail to parse or round-trip exactly,
// and a parsed message never verifies under a secret it was not sealed
// with.
func FuzzParseMessage(f *testing.F) {
	good, _ := goldenMessage(f).AppendBinary(nil)
	fresh, _ := NewFresh(DefaultJournalConfig(), 1).AppendBinary(nil)
	f.Add(good)
	f.Add(fresh)
	f.Add(good[:10])
	f.Add([]byte{})
	sec := goldenSecret(f)
	pair := goldenPair(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := ParseMessage(b)
		if err != nil {
			return
		}
		out, err := m.AppendBinary(nil)
		if err != nil || !bytes.Equal(out, b) {
			t.Fatalf("round trip: % x -> % x (%v)", b, out, err)
		}
		if !bytes.Equal(b, good) && m.Verify(&sec, goldenBinding(), pair.flip()) == nil {
			t.Fatalf("a message other than the sealed one verifies: % x", b)
		}
		// Agree with any parsed message is symmetric and in range.
		own, _ := ParseMessage(good)
		o := Agree(&own, &m)
		if o.SendFrom == 0 || o.RecvFrom == 0 {
			t.Fatalf("Agree starts at 0: %+v", o)
		}
	})
}

// FuzzParseOffer: any extension bytes parse or fail cleanly; a found offer
// re-encodes to an item that parses the same.
func FuzzParseOffer(f *testing.F) {
	f.Add(AppendOffer(nil, Offer{Version: 1, HasShare: true}), false)
	f.Add(AppendOffer([]byte{7, 1, 0}, Offer{Version: 1}), true)
	f.Add([]byte{1, 200}, true)
	f.Fuzz(func(t *testing.T, b []byte, keyed bool) {
		o, found, err := ParseOffer(b, keyed)
		if err != nil || !found {
			return
		}
		again, found2, err := ParseOffer(AppendOffer(nil, o), keyed)
		if err != nil || !found2 || again != o {
			t.Fatalf("re-encoded offer: %+v -> %+v (%v)", o, again, err)
		}
	})
}

func FuzzParseAck(f *testing.F) {
	f.Add(AppendAck(nil, 1041))
	f.Add([]byte{1})
	f.Fuzz(func(t *testing.T, b []byte) {
		n, err := ParseAck(b)
		if err != nil {
			return
		}
		if !bytes.Equal(AppendAck(nil, n), b) {
			t.Fatalf("round trip of % x", b)
		}
	})
}

// FuzzJournal drives a journal with ops decoded from the input (a peer's
// acknowledgements and resumes are network input) and checks its
// invariants: within budget, kept frames intact, errors rather than
// panics for acknowledgements out of range.
func FuzzJournal(f *testing.F) {
	f.Add([]byte{0, 10, 0, 20, 1, 1, 0, 200, 2, 3, 3, 0})
	f.Fuzz(func(t *testing.T, ops []byte) {
		ops = ops[:min(len(ops), 512)] // longer walks find nothing new, slower
		j := newJournal(t, 16, 512, Overflow(len(ops)%2))
		sent := map[uint64]uint64{}
		for i := 0; i+1 < len(ops); i += 2 {
			arg := uint64(ops[i+1])
			switch ops[i] % 4 {
			case 0:
				size := 8 + int(arg)%600
				if seq, err := j.Append(frameOf(arg, size)); err == nil {
					sent[seq] = arg
				}
			case 1:
				_ = j.Ack(arg)
			case 2:
				if start, loss, err := j.Resume(arg, 0); err == nil && loss != nil && loss.Last+1 != start {
					t.Fatalf("loss %v, start %d", loss, start)
				}
			case 3:
				j.Pin(arg)
			}
			if f, b := j.Kept(); f > 16 || b > 512 {
				t.Fatalf("over budget: %d frames, %d bytes", f, b)
			}
		}
		for seq := j.From(); seq < j.Next(); seq++ {
			if m := msgOf(t, j.Frame(seq)); m != sent[seq] {
				t.Fatalf("frame %d holds %d, want %d", seq, m, sent[seq])
			}
		}
	})
}
