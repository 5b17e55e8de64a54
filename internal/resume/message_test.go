package resume

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
)

func hexBytes(t testing.TB, s string) []byte {
	t.Helper()
	b, err := hex.DecodeString(strings.Join(strings.Fields(s), ""))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func mustID(t testing.TB, s string) ID { return ID(hexBytes(t, s)) }

// goldenPair: node 00112233-..., instance ffeedd..., linked to node
// 10203040-..., instance 0f1e2d3c-...
func goldenPair(t testing.TB) Pair {
	return Pair{
		LocalNode:      mustID(t, "00112233445566778899aabbccddeeff"),
		LocalInstance:  mustID(t, "ffeeddccbbaa99887766554433221100"),
		RemoteNode:     mustID(t, "102030405060708090a0b0c0d0e0f000"),
		RemoteInstance: mustID(t, "0f1e2d3c4b5a69788796a5b4c3d2e1f0"),
	}
}

func (p Pair) flip() Pair {
	return Pair{LocalNode: p.RemoteNode, LocalInstance: p.RemoteInstance, RemoteNode: p.LocalNode, RemoteInstance: p.LocalInstance}
}

func goldenSecret(t testing.TB) Secret {
	var i2r, r2i [32]byte
	for i := range i2r {
		i2r[i], r2i[i] = byte(i), byte(0x80+i)
	}
	return KeyedSecret(goldenPair(t), i2r, r2i)
}

func goldenBinding() Binding { return KeyedBinding(bytes.Repeat([]byte{0x5a}, 32)) }

func goldenMessage(t testing.TB) Message {
	sec := goldenSecret(t)
	m := Message{Session: sec.ID(), Delivered: 1040, From: 1633, BudgetFrames: 32768, BudgetBytes: 4 << 20}
	m.Seal(&sec, goldenBinding(), goldenPair(t))
	return m
}

// The bytes of SPEC.md section 12's example.
const goldenHex = `
01 00
54 e8 c9 aa c3 ca 78 da
00 00 00 00 00 00 04 10
00 00 00 00 00 00 00 00
00 00 00 00 00 00 06 61
00 00 80 00
00 40 00 00
`

func TestMessageGolden(t *testing.T) {
	m := goldenMessage(t)
	b, err := m.AppendBinary([]byte{0xAA})
	if err != nil {
		t.Fatal(err)
	}
	if b[0] != 0xAA || len(b) != 1+MessageSize {
		t.Fatalf("AppendBinary did not append: %d bytes", len(b))
	}
	b = b[1:]
	want := hexBytes(t, goldenHex)
	if !bytes.Equal(b[:signedSize], want) {
		t.Fatalf("bytes\n% x\nwant\n% x", b[:signedSize], want)
	}
	if got := hex.EncodeToString(b[signedSize:]); got != goldenMAC {
		t.Fatalf("mac %s, want %s", got, goldenMAC)
	}
	p, err := ParseMessage(b)
	if err != nil || p != m {
		t.Fatalf("round trip: %+v %v", p, err)
	}
	sec := goldenSecret(t)
	if err := p.Verify(&sec, goldenBinding(), goldenPair(t).flip()); err != nil {
		t.Fatalf("the peer's Verify: %v", err)
	}
	fresh := NewFresh(DefaultJournalConfig(), 1)
	fb, err := fresh.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := hexBytes(t, "01 01 0000000000000000 0000000000000000 0000000000000000 0000000000000001 00008000 00400000"+strings.Repeat("00", 16)); !bytes.Equal(fb, want) {
		t.Fatalf("fresh % x", fb)
	}
}

// goldenMAC was computed independently (Python's hmac and hashlib, from
// the derivations of SPEC.md section 12), not by this package.
const goldenMAC = "c3593fb245cfb513811169689572a70b"

// A resume is accepted only under the session's secret, on the
// connection it was made for, in the direction it was made for.
func TestMessageAuthentication(t *testing.T) {
	sec := goldenSecret(t)
	pair := goldenPair(t)
	m := goldenMessage(t)
	if err := m.Verify(&sec, goldenBinding(), pair.flip()); err != nil {
		t.Fatal(err)
	}
	other := sec
	other[0] ^= 1
	otherBinding := goldenBinding()
	otherBinding[31] ^= 1
	restarted := pair
	restarted.LocalInstance[0] ^= 1
	cases := []struct {
		name string
		sec  *Secret
		b    Binding
		p    Pair
		edit func(*Message)
	}{
		{"wrong secret", &other, goldenBinding(), pair.flip(), nil},
		{"replayed on another connection", &sec, otherBinding, pair.flip(), nil},
		{"reflected to its sender", &sec, goldenBinding(), pair, nil},
		{"another instance of the sender", &sec, goldenBinding(), restarted.flip(), nil},
		{"delivered changed", &sec, goldenBinding(), pair.flip(), func(m *Message) { m.Delivered++ }},
		{"from changed", &sec, goldenBinding(), pair.flip(), func(m *Message) { m.From-- }},
		{"skipped changed", &sec, goldenBinding(), pair.flip(), func(m *Message) { m.Skipped = 1000 }},
		{"budget changed", &sec, goldenBinding(), pair.flip(), func(m *Message) { m.BudgetFrames++ }},
		{"mac changed", &sec, goldenBinding(), pair.flip(), func(m *Message) { m.MAC[15] ^= 1 }},
		{"made fresh", &sec, goldenBinding(), pair.flip(), func(m *Message) { m.Flags = FlagFresh }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := goldenMessage(t)
			if c.edit != nil {
				c.edit(&m)
			}
			if err := m.Verify(c.sec, c.b, c.p); !errors.Is(err, ErrAuth) {
				t.Fatalf("Verify: %v", err)
			}
		})
	}
}

func TestParseMessageRefuses(t *testing.T) {
	good, _ := goldenMessage(t).AppendBinary(nil)
	fresh := NewFresh(DefaultJournalConfig(), 1)
	freshBytes, _ := fresh.AppendBinary(nil)
	edit := func(b []byte, f func([]byte)) []byte {
		c := bytes.Clone(b)
		f(c)
		return c
	}
	cases := []struct {
		name string
		b    []byte
		want error
	}{
		{"empty", nil, ErrMalformed},
		{"short", good[:MessageSize-1], ErrMalformed},
		{"long", append(bytes.Clone(good), 0), ErrMalformed},
		{"version 0", edit(good, func(b []byte) { b[0] = 0 }), ErrVersion},
		{"version 2", edit(good, func(b []byte) { b[0] = 2 }), ErrVersion},
		{"unknown flag", edit(good, func(b []byte) { b[1] = 0x02 }), ErrMalformed},
		{"resume without session", edit(good, func(b []byte) { clear(b[2:10]) }), ErrMalformed},
		{"resume from 0", edit(good, func(b []byte) { clear(b[26:34]) }), ErrMalformed},
		{"skipped past delivered", edit(good, func(b []byte) { b[24] = 5 }), ErrMalformed},
		{"zero frame budget", edit(good, func(b []byte) { clear(b[34:38]) }), ErrMalformed},
		{"zero byte budget", edit(good, func(b []byte) { clear(b[38:42]) }), ErrMalformed},
		{"fresh with session", edit(freshBytes, func(b []byte) { b[2] = 1 }), ErrMalformed},
		{"fresh with delivered", edit(freshBytes, func(b []byte) { b[17] = 1 }), ErrMalformed},
		{"fresh with skipped", edit(freshBytes, func(b []byte) { b[25] = 1 }), ErrMalformed},
		{"fresh from 0", edit(freshBytes, func(b []byte) { b[33] = 0 }), ErrMalformed},
		{"fresh with mac", edit(freshBytes, func(b []byte) { b[57] = 1 }), ErrMalformed},
	}
	for _, c := range cases {
		if _, err := ParseMessage(c.b); !errors.Is(err, c.want) {
			t.Errorf("%s: %v, want %v", c.name, err, c.want)
		}
	}
	if _, err := ParseMessage(freshBytes); err != nil {
		t.Fatalf("fresh: %v", err)
	}
	bad := Message{Flags: 0x80, From: 1, BudgetFrames: 1, BudgetBytes: 1}
	if _, err := bad.AppendBinary(nil); !errors.Is(err, ErrMalformed) {
		t.Fatalf("AppendBinary of a bad message: %v", err)
	}
}

func TestAck(t *testing.T) {
	b := AppendAck([]byte{9}, 0x0102030405060708)
	if !bytes.Equal(b, []byte{9, 1, 2, 3, 4, 5, 6, 7, 8}) {
		t.Fatalf("% x", b)
	}
	if n, err := ParseAck(b[1:]); n != 0x0102030405060708 || err != nil {
		t.Fatal(n, err)
	}
	for _, l := range []int{0, 7, 9} {
		if _, err := ParseAck(make([]byte, l)); !errors.Is(err, ErrMalformed) {
			t.Fatalf("ack of %d bytes: %v", l, err)
		}
	}
}

// Both ends derive the same secret, id and binding; another pair, another
// share or other keys give others.
func TestSecretsAgree(t *testing.T) {
	p := goldenPair(t)
	var i2r, r2i [32]byte
	i2r[0], r2i[0] = 1, 2
	a, b := KeyedSecret(p, i2r, r2i), KeyedSecret(p.flip(), i2r, r2i)
	if a != b || a.ID() != b.ID() {
		t.Fatal("the two ends of a keyed link derive different secrets")
	}
	if KeyedSecret(p, r2i, i2r) == a {
		t.Fatal("swapped split keys give the same secret")
	}
	q := p
	q.RemoteInstance[0] ^= 1
	if KeyedSecret(q, i2r, r2i) == a {
		t.Fatal("another instance gives the same secret")
	}

	privA, shareA, err := NewShare(bytes.NewReader(bytes.Repeat([]byte{1}, 32)))
	if err != nil {
		t.Fatal(err)
	}
	privB, shareB, err := NewShare(nil)
	if err != nil {
		t.Fatal(err)
	}
	sa, err := UnkeyedSecret(p, privA, shareB)
	if err != nil {
		t.Fatal(err)
	}
	sb, err := UnkeyedSecret(p.flip(), privB, shareA)
	if err != nil {
		t.Fatal(err)
	}
	if sa != sb {
		t.Fatal("the two ends of an unkeyed link derive different secrets")
	}
	if UnkeyedBinding(p, shareA, shareB) != UnkeyedBinding(p.flip(), shareB, shareA) {
		t.Fatal("the two ends derive different bindings")
	}
	if UnkeyedBinding(p, shareA, shareB) == UnkeyedBinding(p, shareB, shareA) {
		t.Fatal("the binding ignores which share is whose")
	}
	// A low-order point (all zeros) is refused.
	if _, err := UnkeyedSecret(p, privA, Share{}); !errors.Is(err, ErrMalformed) {
		t.Fatalf("zero share: %v", err)
	}
	if _, _, err := NewShare(bytes.NewReader(nil)); err == nil {
		t.Fatal("NewShare from an empty reader")
	}
	if KeyedBinding([]byte{1}) == KeyedBinding([]byte{2}) {
		t.Fatal("keyed bindings equal")
	}
}

func TestOffer(t *testing.T) {
	share := Share{1, 2, 3}
	unkeyed := AppendOffer([]byte{9, 0}, Offer{Version: 1, Share: share, HasShare: true}) // an unknown empty item first
	o, ok, err := ParseOffer(unkeyed, false)
	if err != nil || !ok || o.Version != 1 || !o.HasShare || o.Share != share {
		t.Fatalf("unkeyed: %+v %v %v", o, ok, err)
	}
	if want := hexBytes(t, "09 00 01 21 01 010203"+strings.Repeat("00", 29)); !bytes.Equal(unkeyed, want) {
		t.Fatalf("unkeyed bytes % x", unkeyed)
	}
	keyed := AppendOffer(nil, Offer{Version: 1})
	if !bytes.Equal(keyed, []byte{1, 1, 1}) {
		t.Fatalf("keyed bytes % x", keyed)
	}
	if o, ok, err := ParseOffer(keyed, true); err != nil || !ok || o.Version != 1 || o.HasShare {
		t.Fatalf("keyed: %+v %v %v", o, ok, err)
	}
	if o, ok, err := ParseOffer([]byte{1, 1, 7}, true); err != nil || !ok || o.Version != 7 {
		t.Fatalf("a newer version: %+v %v %v", o, ok, err)
	}
	if _, ok, err := ParseOffer(nil, false); ok || err != nil {
		t.Fatal("an empty Accept body offers resume")
	}
	if _, ok, err := ParseOffer([]byte{5, 2, 0, 0}, true); ok || err != nil {
		t.Fatal("an unknown item offers resume")
	}
	for name, c := range map[string]struct {
		b     []byte
		keyed bool
	}{
		"overrun":          {[]byte{1, 5, 1}, true},
		"lone tag":         {[]byte{1}, true},
		"keyed with share": {unkeyed, true},
		"unkeyed no share": {keyed, false},
		"version 0":        {[]byte{1, 1, 0}, true},
		"twice":            {append(bytes.Clone(keyed), keyed...), true},
	} {
		if _, _, err := ParseOffer(c.b, c.keyed); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestAgree(t *testing.T) {
	id := SessionID{1}
	res := func(d, from uint64) *Message {
		return &Message{Session: id, Delivered: d, From: from, BudgetFrames: 1, BudgetBytes: 1}
	}
	fresh := NewFresh(DefaultJournalConfig(), 1)
	for _, c := range []struct {
		name      string
		own, peer *Message
		want      Outcome
	}{
		{"both fresh", &fresh, &fresh, Outcome{Reason: LossPeerReset, SendFrom: 1, RecvFrom: 1}},
		{"peer fresh", res(5, 3), &fresh, Outcome{Reason: LossPeerReset, SendFrom: 1, RecvFrom: 1}},
		{"own fresh", &fresh, res(5, 3), Outcome{Reason: LossPeerReset, SendFrom: 1, RecvFrom: 1}},
		{"other session", res(5, 3), &Message{Session: SessionID{2}, Delivered: 5, From: 3}, Outcome{Reason: LossPeerReset, SendFrom: 1, RecvFrom: 1}},
		{"resume", res(10, 7), res(6, 11), Outcome{Resumed: true, SendFrom: 7, RecvFrom: 11}},
		{"nothing kept", res(10, 21), res(20, 11), Outcome{Resumed: true, SendFrom: 21, RecvFrom: 11}},
		{"our budget loss", res(10, 1633), res(1040, 11), Outcome{Resumed: true, SendFrom: 1633, RecvFrom: 11,
			SendLoss: &Loss{First: 1041, Last: 1632, Reason: LossBudget}}},
		{"their budget loss", res(10, 7), res(6, 15), Outcome{Resumed: true, SendFrom: 7, RecvFrom: 15,
			RecvLoss: &Loss{First: 11, Last: 14, Reason: LossBudget}}},
	} {
		got := Agree(c.own, c.peer)
		if got.Resumed != c.want.Resumed || got.Reason != c.want.Reason || got.SendFrom != c.want.SendFrom ||
			got.RecvFrom != c.want.RecvFrom || !sameLoss(got.SendLoss, c.want.SendLoss) || !sameLoss(got.RecvLoss, c.want.RecvLoss) {
			t.Errorf("%s: %+v, want %+v", c.name, got, c.want)
		}
		// The peer decides the mirror image.
		back := Agree(c.peer, c.own)
		if back.Resumed != got.Resumed || back.SendFrom != got.RecvFrom || back.RecvFrom != got.SendFrom ||
			!sameLoss(back.SendLoss, got.RecvLoss) || !sameLoss(back.RecvLoss, got.SendLoss) {
			t.Errorf("%s: the peer decides %+v", c.name, back)
		}
	}
}

func sameLoss(a, b *Loss) bool {
	if a == nil || b == nil {
		return a == b
	}
	return *a == *b
}
