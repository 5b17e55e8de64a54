package lane

import (
	"bytes"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"strings"
	"testing"
)

func newPair(t testing.TB, keyed bool, cfg Config) (*Sender, *Receiver, *capture) {
	t.Helper()
	a, b := pair(t, keyed)
	c := &capture{}
	s, err := NewSender(cfg, a, c.send)
	if err != nil {
		t.Fatal(err)
	}
	return s, NewReceiver(b), c
}

func forBoth(t *testing.T, f func(t *testing.T, keyed bool)) {
	for _, keyed := range []bool{false, true} {
		t.Run(fmt.Sprintf("keyed=%v", keyed), func(t *testing.T) { f(t, keyed) })
	}
}

func TestRoundTrip(t *testing.T) {
	forBoth(t, func(t *testing.T, keyed bool) {
		s, r, c := newPair(t, keyed, testConfig())
		var want []Message
		for ch := byte(0); ch < 3; ch++ {
			p := []byte{'s', ch}
			if err := s.Enqueue(Sequenced, ch, p); err != nil {
				t.Fatal(err)
			}
			// A message's seq is its datagram's counter: 0, the first.
			want = append(want, Message{Kind: Sequenced, Channel: ch, Seq: 0, Payload: p})
		}
		for i := 0; i < 3; i++ {
			p := []byte{'u', byte(i)}
			s.Enqueue(Unreliable, 7, p)
			want = append(want, Message{Kind: Unreliable, Channel: 7, Seq: 0, Payload: p})
		}
		if err := s.Flush(); err != nil {
			t.Fatal(err)
		}
		d := c.take()
		if len(d) != 1 {
			t.Fatalf("%d datagrams, want 1", len(d))
		}
		if h, _, _ := ParseHeader(d[0]); h.Sealed() != keyed || h.Token != tokB || h.Counter != 0 {
			t.Fatalf("header %+v", h)
		}
		got := openAll(t, r, d)
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Fatalf("got  %v\nwant %v", got, want)
		}
		st := r.Stats()
		if st.RecvDatagrams != 1 || st.DeliveredMessages != 6 {
			t.Fatalf("stats %+v", st)
		}
		// Nothing queued: Flush sends nothing.
		if err := s.Flush(); err != nil || len(c.dgrams) != 0 {
			t.Fatalf("empty flush sent %d datagrams, %v", len(c.dgrams), err)
		}
	})
}

// The sealed form is deterministic (the nonce is the counter), so it has
// golden bytes too; the key derivation example of SPEC.md section 11.8 uses them.
func TestSealedGolden(t *testing.T) {
	a, b := pair(t, true)
	i2r, r2i, err := DeriveKeys(testSecret, tokA, tokB)
	if err != nil {
		t.Fatal(err)
	}
	if a.SendKey != i2r || a.RecvKey != r2i || b.SendKey != r2i || b.RecvKey != i2r || i2r == r2i {
		t.Fatal("direction keys do not cross over")
	}
	c := &capture{}
	s, _ := NewSender(testConfig(), a, c.send)
	s.Enqueue(Sequenced, 1, []byte{0x04, 0x07, 0xAA, 0xBB})
	s.Flush()
	got := hex.EncodeToString(c.dgrams[0])
	if got[:36] != "0201"+"b1b2b3b4b5b6b7b8"+"0000000000000000" {
		t.Fatalf("clear header %s", got[:36])
	}
	if len(c.dgrams[0]) != HeaderSize+ItemSize(4)+TagSize {
		t.Fatalf("sealed datagram of %d bytes", len(c.dgrams[0]))
	}
	if hex.EncodeToString(i2r[:]) != goldenI2R || hex.EncodeToString(r2i[:]) != goldenR2I || got != goldenSealed {
		t.Fatalf("golden bytes changed:\ni2r %x\nr2i %x\nsealed %s", i2r, r2i, got)
	}
}

// Checked against Python (hmac, cryptography's ChaCha20Poly1305), then
// frozen: a change is a format change.
const (
	goldenI2R    = "603d0881a292a6c4b16022290bf4960b3e19e0e0ab40b3fd05460e1d204bd20a"
	goldenR2I    = "5f8999d7590604de9248e3bc6fee46c01696660ec35e5813d4ee145281ffe4d9"
	goldenSealed = "0201b1b2b3b4b5b6b7b80000000000000000" +
		"bf583443b65fcc9543ab4704bf235e9164804d467c53c7"
)

func TestSequencedKeepsNewest(t *testing.T) {
	s, r, c := newPair(t, false, testConfig())
	for i := 0; i < 10; i++ {
		s.Enqueue(Sequenced, 0, []byte{byte(i)})
		s.Enqueue(Sequenced, 1, []byte{byte(100 + i)})
	}
	if seq, unrel := s.Queued(); seq != 2 || unrel != 0 {
		t.Fatalf("queued %d sequenced, %d unreliable; want 2, 0", seq, unrel)
	}
	s.Flush()
	got := openAll(t, r, c.take())
	if len(got) != 2 || got[0].Payload[0] != 9 || got[0].Seq != 0 || got[1].Payload[0] != 109 {
		t.Fatalf("got %v, want only the newest of each channel", got)
	}
	if st := s.Stats(); st.Superseded != 18 || st.SentMessages != 2 {
		t.Fatalf("stats %+v", st)
	}
}

func TestUnreliableQueueBound(t *testing.T) {
	cfg := testConfig()
	cfg.UnreliableQueue = 4
	s, r, c := newPair(t, false, cfg)
	for i := 0; i < 6; i++ {
		err := s.Enqueue(Unreliable, 0, []byte{byte(i)})
		if (i < 4) != (err == nil) || (err != nil && !errors.Is(err, ErrQueueFull)) {
			t.Fatalf("enqueue %d: %v", i, err)
		}
	}
	s.Flush()
	if got := openAll(t, r, c.take()); len(got) != 4 || got[3].Payload[0] != 3 {
		t.Fatalf("got %v", got)
	}
	if st := s.Stats(); st.DropQueueFull != 2 {
		t.Fatalf("DropQueueFull %d, want 2", st.DropQueueFull)
	}
	// The ring wraps cleanly after a flush.
	for round := 0; round < 3; round++ {
		for i := 0; i < 3; i++ {
			if err := s.Enqueue(Unreliable, 0, []byte{byte(10*round + i)}); err != nil {
				t.Fatal(err)
			}
		}
		s.Flush()
		got := openAll(t, r, c.take())
		if len(got) != 3 || got[0].Payload[0] != byte(10*round) || got[2].Payload[0] != byte(10*round+2) {
			t.Fatalf("round %d: got %v", round, got)
		}
	}
}

func TestTooLargeAtEnqueue(t *testing.T) {
	forBoth(t, func(t *testing.T, keyed bool) {
		s, r, c := newPair(t, keyed, testConfig())
		max := s.MaxPayload()
		wantMax := DefaultMTU - HeaderSize - 4 // kind, channel, a 2-byte length
		if keyed {
			wantMax -= TagSize
		}
		if max != wantMax {
			t.Fatalf("MaxPayload %d, want %d", max, wantMax)
		}
		if err := s.Enqueue(Sequenced, 0, make([]byte, max+1)); !errors.Is(err, ErrTooLarge) {
			t.Fatalf("enqueue of %d bytes: %v, want ErrTooLarge", max+1, err)
		}
		if err := s.Enqueue(Unreliable, 0, make([]byte, max)); err != nil {
			t.Fatal(err)
		}
		s.Flush()
		d := c.take()
		if len(d) != 1 || len(d[0]) != DefaultMTU {
			t.Fatalf("a full datagram: %d datagrams, first %d bytes; want 1 of %d", len(d), len(d[0]), DefaultMTU)
		}
		openAll(t, r, d)
		if st := s.Stats(); st.RefusedLarge != 1 {
			t.Fatalf("RefusedLarge %d", st.RefusedLarge)
		}
		if err := s.Enqueue(Ping, 0, nil); err == nil {
			t.Fatal("Enqueue accepted a ping")
		}
	})
}

// Flush packs as few datagrams as fit the MTU, none over it, and loses or
// reorders nothing.
func TestPacking(t *testing.T) {
	forBoth(t, func(t *testing.T, keyed bool) {
		cfg := testConfig()
		cfg.UnreliableQueue = 1000
		s, r, c := newPair(t, keyed, cfg)
		total := 0
		for i := 0; i < 500; i++ {
			p := bytes.Repeat([]byte{byte(i)}, i%61)
			s.Enqueue(Unreliable, byte(i%3), p)
			total += ItemSize(len(p))
		}
		s.Flush()
		d := c.take()
		perDatagram := cfg.MTU - HeaderSize
		if keyed {
			perDatagram -= TagSize
		}
		// Greedy packing: at most one datagram more than a perfect fill.
		if min := (total + perDatagram - 1) / perDatagram; len(d) > min+1 || len(d) < min {
			t.Fatalf("%d datagrams for %d bytes of items, want %d or %d", len(d), total, min, min+1)
		}
		for i, b := range d {
			if len(b) > cfg.MTU {
				t.Fatalf("datagram %d is %d bytes, MTU %d", i, len(b), cfg.MTU)
			}
		}
		got := openAll(t, r, d)
		if len(got) != 500 {
			t.Fatalf("%d messages, want 500", len(got))
		}
		for i, m := range got {
			if len(m.Payload) != i%61 || m.Channel != byte(i%3) || (len(m.Payload) > 0 && m.Payload[0] != byte(i)) {
				t.Fatalf("message %d: %v", i, m)
			}
		}
	})
}

func TestReceiverDrops(t *testing.T) {
	forBoth(t, func(t *testing.T, keyed bool) {
		s, r, c := newPair(t, keyed, testConfig())
		s.Enqueue(Unreliable, 0, []byte("hello"))
		s.Flush()
		good := c.take()[0]
		open := func(b []byte, from netip.AddrPort) error {
			_, err := r.Open(bytes.Clone(b), from, nil)
			return err
		}
		// Wrong session: another token.
		other := bytes.Clone(good)
		other[2] ^= 1
		if err := open(other, addrA); !errors.Is(err, ErrSession) {
			t.Fatalf("wrong token: %v", err)
		}
		// The other mode.
		flip := bytes.Clone(good)
		flip[1] ^= FlagSealed
		if err := open(flip, addrA); !errors.Is(err, ErrMode) {
			t.Fatalf("other mode: %v", err)
		}
		// Every truncation is dropped as malformed or, keyed, as forged.
		for n := 0; n < len(good); n++ {
			err := open(good[:n], addrA)
			if err == nil {
				t.Fatalf("truncated to %d accepted", n)
			}
		}
		if keyed {
			// A forged datagram: any bit flipped after the token fails.
			for i := 10; i < len(good); i++ {
				f := bytes.Clone(good)
				f[i] ^= 0x40
				if err := open(f, addrA); !errors.Is(err, ErrAuth) {
					t.Fatalf("bit flipped at %d: %v, want ErrAuth", i, err)
				}
			}
			// Under another key (another link's secret, same tokens).
			other, _ := NewSession(tokA, tokB, true, bytes.Repeat([]byte{1}, 32))
			c2 := &capture{}
			s2, _ := NewSender(testConfig(), other, c2.send)
			s2.Enqueue(Unreliable, 0, []byte("forged"))
			s2.Flush()
			if err := open(c2.dgrams[0], addrA); !errors.Is(err, ErrAuth) {
				t.Fatalf("wrong key: %v", err)
			}
		}
		if err := open(good, addrA); err != nil {
			t.Fatalf("the good datagram after the bad ones: %v", err)
		}
		if err := open(good, addrA); !errors.Is(err, ErrReplay) {
			t.Fatalf("replay: %v", err)
		}
		st := r.Stats()
		if st.DropSession != 1 || st.DropMode != 1 || st.DropReplay != 1 || st.DeliveredMessages != 1 ||
			(keyed && st.DropAuth == 0) || (!keyed && st.DropAuth != 0) {
			t.Fatalf("stats %+v", st)
		}
	})
}

func TestReceiverPeerAddress(t *testing.T) {
	a, b := pair(t, false)
	b.Peer = addrA
	c := &capture{}
	s, _ := NewSender(testConfig(), a, c.send)
	r := NewReceiver(b)
	s.Enqueue(Unreliable, 0, []byte("x"))
	s.Flush()
	d := c.take()[0]
	if _, err := r.Open(bytes.Clone(d), netip.MustParseAddrPort("127.0.0.2:4001"), nil); !errors.Is(err, ErrSession) {
		t.Fatalf("another address: %v", err)
	}
	if _, err := r.Open(bytes.Clone(d), netip.MustParseAddrPort("127.0.0.1:4009"), nil); !errors.Is(err, ErrSession) {
		t.Fatalf("another port: %v", err)
	}
	if _, err := r.Open(bytes.Clone(d), netip.MustParseAddrPort("[::ffff:127.0.0.1]:4001"), nil); err != nil {
		t.Fatalf("the peer's address, v4-mapped: %v", err)
	}
}

func TestTooOldDatagram(t *testing.T) {
	s, r, c := newPair(t, true, testConfig())
	s.Enqueue(Unreliable, 0, []byte("first"))
	s.Flush()
	first := c.take()[0]
	for i := 0; i < WindowSize; i++ {
		s.Enqueue(Unreliable, 0, []byte("x"))
		s.Flush()
	}
	openAll(t, r, c.take())
	if _, err := r.Open(first, netip.AddrPort{}, nil); !errors.Is(err, ErrTooOld) {
		t.Fatalf("a datagram %d behind: %v, want ErrTooOld", WindowSize, err)
	}
	if r.Stats().DropTooOld != 1 {
		t.Fatal("not counted")
	}
}

func TestSequencedStaleAndWrap(t *testing.T) {
	_, b := pair(t, false)
	r := NewReceiver(b)
	steps := []struct {
		seq  uint32
		want bool
	}{
		{0xFFFFFFF0, true}, {0xFFFFFFEF, false}, {0xFFFFFFF0, false}, {0xFFFFFFFF, true},
		{0, true}, // wrapped: newer
		{0xFFFFFFFE, false}, {5, true}, {3, false}, {5 + 1<<31 - 1, true},
		{5, false}, // exactly 2^31 behind: undefined in RFC 1982, dropped
	}
	for _, st := range steps {
		if got := r.Accept(4, st.seq); got != st.want {
			t.Fatalf("Accept(%#x) = %v, want %v", st.seq, got, st.want)
		}
	}
	// Channels are independent.
	if !r.Accept(5, 0) {
		t.Fatal("first message of another channel refused")
	}
	if r.Stats().DropStale != 5 {
		t.Fatalf("DropStale %d, want 5", r.Stats().DropStale)
	}
}

func TestDrain(t *testing.T) {
	s, r, c := newPair(t, false, testConfig())
	s.Enqueue(Sequenced, 0, []byte("old"))
	s.Enqueue(Sequenced, 0, []byte("new"))
	s.Enqueue(Sequenced, 1, []byte("one"))
	s.Enqueue(Unreliable, 0, []byte("u0"))
	s.Enqueue(Unreliable, 0, []byte("u1"))
	var got []string
	take := 2
	s.Drain(func(k Kind, ch byte, seq uint32, p []byte) bool {
		if take == 0 {
			return false
		}
		take--
		got = append(got, fmt.Sprintf("%v/%d/%d/%s", k, ch, seq, p))
		return true
	})
	// One counter value for the drain: 0; no datagram carries it.
	if fmt.Sprint(got) != "[sequenced/0/0/new sequenced/1/0/one]" {
		t.Fatalf("drained %v", got)
	}
	// What was refused stays queued and still goes out at Flush, in a
	// datagram numbered after the drain.
	s.Flush()
	if m := openAll(t, r, c.take()); len(m) != 2 || string(m[1].Payload) != "u1" || m[0].Seq != 1 {
		t.Fatalf("flushed %v", m)
	}
}

// A send function that fails loses that datagram's messages, counted; the
// other datagrams are still sent and the first error is returned. A counter
// at its end stops the sender rather than reuse a nonce.
func TestSendErrorsAndCounterEnd(t *testing.T) {
	a, _ := pair(t, true)
	calls := 0
	s, _ := NewSender(testConfig(), a, func([]byte) error {
		calls++
		if calls == 1 {
			return errors.New("no buffer space")
		}
		return nil
	})
	for i := 0; i < 60; i++ { // two datagrams' worth
		s.Enqueue(Unreliable, 0, make([]byte, 30))
	}
	if err := s.Flush(); err == nil || !strings.Contains(err.Error(), "no buffer space") {
		t.Fatalf("Flush = %v", err)
	}
	st := s.Stats()
	if calls != 2 || st.SendErrors != 1 || st.SentDatagrams != 1 || st.SentMessages == 0 || st.SentMessages == 60 {
		t.Fatalf("%d calls, stats %+v", calls, st)
	}
	s.counter = math.MaxUint64
	s.Enqueue(Unreliable, 0, []byte("x"))
	if err := s.Flush(); !errors.Is(err, ErrCounterExhausted) || calls != 2 {
		t.Fatalf("Flush at the counter's end = %v, %d calls", err, calls)
	}
}

// EnqueueScratch queues payloads built in Scratch's buffer without a copy:
// what was queued is what arrives, however the buffers go round (a
// superseded sequenced message's buffer and a sent unreliable one's are
// reused), a refused payload is not queued, and in steady state nothing
// allocates.
func TestEnqueueScratch(t *testing.T) {
	forBoth(t, func(t *testing.T, keyed bool) {
		cfg := testConfig()
		cfg.UnreliableQueue = 4
		s, r, c := newPair(t, keyed, cfg)
		put := func(k Kind, ch byte, text string) error {
			return s.EnqueueScratch(k, ch, append(s.Scratch(), text...))
		}
		round := func(i int) []string {
			for ch := byte(0); ch < 3; ch++ {
				put(Sequenced, ch, fmt.Sprintf("old %d/%d", i, ch))
				put(Sequenced, ch, fmt.Sprintf("s%d/%d", i, ch))
			}
			for u := 0; u < 4; u++ {
				if err := put(Unreliable, 9, fmt.Sprintf("u%d/%d", i, u)); err != nil {
					t.Fatal(err)
				}
			}
			if err := put(Unreliable, 9, "one too many"); !errors.Is(err, ErrQueueFull) {
				t.Fatalf("a fifth unreliable message: %v, want ErrQueueFull", err)
			}
			if err := put(Sequenced, 5, strings.Repeat("x", s.MaxPayload()+1)); !errors.Is(err, ErrTooLarge) {
				t.Fatalf("a payload over MaxPayload: %v, want ErrTooLarge", err)
			}
			if err := s.Flush(); err != nil {
				t.Fatal(err)
			}
			var got []string
			for _, m := range openAll(t, r, c.take()) {
				got = append(got, string(m.Payload))
			}
			return got
		}
		for i := range 5 {
			got := strings.Join(round(i), " ")
			want := fmt.Sprintf("s%d/0 s%d/1 s%d/2 u%d/0 u%d/1 u%d/2 u%d/3", i, i, i, i, i, i, i)
			if got != want {
				t.Fatalf("round %d: got %q, want %q", i, got, want)
			}
		}
		p := make([]byte, 26)
		s.send = func([]byte) error { return nil } // capture copies
		if n := testing.AllocsPerRun(100, func() {
			for ch := byte(0); ch < 3; ch++ {
				s.EnqueueScratch(Sequenced, ch, append(s.Scratch(), p...))
			}
			s.EnqueueScratch(Unreliable, 9, append(s.Scratch(), p...))
			s.Flush()
		}); n != 0 {
			t.Errorf("EnqueueScratch and Flush: %v allocs a round, want 0", n)
		}
	})
}
