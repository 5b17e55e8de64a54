package lane

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"net/netip"
	"testing"
)

// A lossy, reordering, duplicating network between a sender and a receiver,
// over many ticks: sequenced never delivers an older message after a newer
// one on its channel, nothing is delivered twice, every payload is the one
// its sequence number was sent with, and what gets through is what the
// network let through.
func TestLossReorderSimulation(t *testing.T) {
	for _, keyed := range []bool{false, true} {
		for _, seed := range []uint64{1, 2, 3} {
			simulate(t, keyed, seed)
		}
	}
}

func simulate(t *testing.T, keyed bool, seed uint64) {
	rng := rand.New(rand.NewPCG(seed, 99))
	type inFlight struct {
		due int
		b   []byte
	}
	var net []inFlight
	sentIn := map[uint32]uint64{} // id -> the counter of the datagram that carried it
	s, r, _ := newPair(t, keyed, testConfig())
	s.send = func(b []byte) error {
		if !keyed {
			var d Datagram
			if err := ParseDatagram(b, &d); err != nil {
				t.Fatal(err)
			}
			for _, m := range d.Messages {
				if m.Kind == Sequenced || m.Kind == Unreliable {
					sentIn[binary.BigEndian.Uint32(m.Payload)] = d.Counter
				}
			}
		}
		if rng.IntN(100) < 10 { // 10% lost
			return nil
		}
		copies := 1
		if rng.IntN(100) < 5 { // 5% duplicated by the network
			copies = 2
		}
		for i := 0; i < copies; i++ {
			net = append(net, inFlight{due: rng.IntN(8), b: bytes.Clone(b)}) // up to 8 ticks late: reordered
		}
		return nil
	}
	const channels, ticks = 4, 3000
	newest := map[byte]uint32{}
	seenNewest := map[byte]bool{}
	delivered := map[uint32]bool{} // the id each payload carries
	id := 0
	var replays [][]byte
	var out []Message
	gotSeq, gotUnrel := 0, 0
	for tick := 0; tick < ticks; tick++ {
		for ch := byte(0); ch < channels; ch++ {
			// Sometimes several updates a tick: only the newest goes out.
			for k := 0; k <= rng.IntN(3); k++ {
				var p [8]byte
				binary.BigEndian.PutUint32(p[:], uint32(id))
				id++
				p[4] = ch
				if err := s.Enqueue(Sequenced, ch, p[:]); err != nil {
					t.Fatal(err)
				}
			}
		}
		var p [8]byte
		binary.BigEndian.PutUint32(p[:], uint32(id))
		id++
		s.Enqueue(Unreliable, 9, p[:])
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		// Deliver what is due, in a shuffled order.
		rng.Shuffle(len(net), func(i, j int) { net[i], net[j] = net[j], net[i] })
		keep := net[:0]
		for _, f := range net {
			if f.due > 0 {
				f.due--
				keep = append(keep, f)
				continue
			}
			if rng.IntN(100) < 3 {
				replays = append(replays, bytes.Clone(f.b))
			}
			var err error
			out, err = r.Open(f.b, netip.AddrPort{}, out[:0])
			if err != nil && err != ErrReplay {
				t.Fatalf("open: %v", err)
			}
			for _, m := range out {
				key := binary.BigEndian.Uint32(m.Payload)
				if c, ok := sentIn[key]; !keyed && (!ok || uint32(c) != m.Seq) {
					t.Fatalf("message %d: seq %d, sent in datagram %d (%v)", key, m.Seq, c, ok)
				}
				if delivered[key] {
					t.Fatalf("%v channel %d message %d delivered twice", m.Kind, m.Channel, key)
				}
				delivered[key] = true
				if m.Kind == Sequenced {
					if seenNewest[m.Channel] && !SeqNewer(m.Seq, newest[m.Channel]) {
						t.Fatalf("channel %d: seq %d delivered after %d", m.Channel, m.Seq, newest[m.Channel])
					}
					newest[m.Channel], seenNewest[m.Channel] = m.Seq, true
					gotSeq++
				} else {
					gotUnrel++
				}
			}
		}
		net = keep
		// An attacker replays captured datagrams now and then.
		if len(replays) > 0 && rng.IntN(10) == 0 {
			b := replays[rng.IntN(len(replays))]
			if _, err := r.Open(bytes.Clone(b), netip.AddrPort{}, out[:0]); err == nil {
				t.Fatal("a replayed datagram was accepted")
			}
		}
	}
	st := r.Stats()
	// About 90% of datagrams arrive; each carries every channel's newest,
	// but reordering by up to 8 ticks makes many of those stale on arrival.
	if gotUnrel < ticks*8/10 || gotSeq < channels*ticks/3 || st.DropReplay == 0 || st.DropStale == 0 {
		t.Fatalf("keyed=%v seed %d: %d sequenced, %d unreliable delivered; stats %+v", keyed, seed, gotSeq, gotUnrel, st)
	}
}
