package discovery

import (
	"bytes"
	"encoding/hex"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/meshkey"
)

func testRing(seed byte) meshkey.Keyring {
	var k meshkey.Key
	for i := range k {
		k[i] = seed + byte(i)
	}
	return meshkey.Keyring{Primary: k}
}

// goldenSealNonce is the seal nonce of the golden keyed beacon.
var goldenSealNonce = [sealNonceLen]byte{0xa0, 0xa1, 0xa2, 0xa3, 0xa4, 0xa5, 0xa6, 0xa7, 0xa8, 0xa9, 0xaa, 0xab}

func signedGolden(t testing.TB) ([]byte, *meshkey.Set) {
	keys := testRing(1).Derive("demo")
	b := goldenBeacon
	b.Seq, b.Nonce = 5, 0x0102030405060708
	p, err := b.appendSealed(nil, keys.Primary(), goldenSealNonce)
	if err != nil {
		t.Fatal(err)
	}
	return p, keys
}

func TestKeyedBeaconGolden(t *testing.T) {
	p, keys := signedGolden(t)
	// The clear header, as in SPEC.md section 10; then 64 bytes sealed
	// (51 fixed, 8 of names, 5 of padding) and the 16-byte tag.
	header := "4c4d5348" + "03" + keys.Primary().ID.String() + hex.EncodeToString(goldenSealNonce[:])
	if got := hex.EncodeToString(p[:sealHeaderLen]); got != header || len(p) != sealHeaderLen+64+BeaconMACLen {
		t.Fatalf("keyed beacon of %d bytes\n%s\nwant a header\n%s", len(p), got, header)
	}
	// Nothing but the key id is in the clear: not the mesh, the name, the
	// ids or the port.
	for _, secret := range [][]byte{[]byte("demo"), []byte("n1"), goldenBeacon.ID[:8], goldenBeacon.Instance[:8], {0x1f, 0x0a}} {
		if bytes.Contains(p, secret) {
			t.Errorf("keyed beacon shows %x in the clear", secret)
		}
	}
	// The plaintext, opened by hand.
	pt, err := sealKey(keys.Primary()).Open(nil, goldenSealNonce[:], p[sealHeaderLen:], p[:sealHeaderLen])
	if err != nil {
		t.Fatal(err)
	}
	plain := "01" + "00112233445566778899aabbccddeeff" + "0f1e2d3c4b5a69788796a5b4c3d2e1f0" +
		"0000000000000005" + "0102030405060708" + // sequence, query nonce
		"1f0a" + "04" + "64656d6f" + "02" + "6e31" + "0000000000"
	if got := hex.EncodeToString(pt); got != plain {
		t.Fatalf("plaintext\n%s\nwant\n%s", got, plain)
	}
	b, err := ParseSignedBeacon(p, keys)
	if err != nil {
		t.Fatal(err)
	}
	g := goldenBeacon
	g.Seq, g.Nonce, g.KeyID = 5, 0x0102030405060708, keys.Primary().ID
	if b != g {
		t.Fatalf("parsed %+v, want %+v", b, g)
	}
	if _, err := ParseBeacon(p); err == nil {
		t.Fatal("ParseBeacon took a keyed beacon")
	}
	if _, err := ParseSignedBeacon(p, testRing(2).Derive("demo")); !errors.Is(err, ErrBeaconKey) {
		t.Fatalf("another key: %v", err)
	}
}

// TestKeyedBeaconTamper: every byte flipped, every truncation and an
// extension are refused.
func TestKeyedBeaconTamper(t *testing.T) {
	p, keys := signedGolden(t)
	for i := range p {
		for _, x := range []byte{0x01, 0x80, 0xff} {
			q := bytes.Clone(p)
			q[i] ^= x
			if _, err := ParseSignedBeacon(q, keys); err == nil {
				t.Fatalf("byte %d ^ %#x accepted", i, x)
			}
		}
	}
	for n := range len(p) {
		if _, err := ParseSignedBeacon(p[:n], keys); err == nil {
			t.Fatalf("truncated to %d accepted", n)
		}
	}
	if _, err := ParseSignedBeacon(append(bytes.Clone(p), 0), keys); err == nil {
		t.Fatal("extended beacon accepted")
	}
	if _, err := ParseSignedBeacon(nil, nil); err == nil {
		t.Fatal("empty accepted")
	}
}

func TestReplayGuard(t *testing.T) {
	g := newReplayGuard(2)
	a, i1, i2 := uuid.New(), uuid.New(), uuid.New()
	steps := []struct {
		inst uuid.UUID
		seq  uint64
		want bool
	}{
		{i1, 5, true},
		{i1, 5, false}, // the same
		{i1, 4, false}, // older
		{i1, 6, true},
		{i2, 1, true},  // a restart
		{i1, 7, false}, // a retired instance
		{i2, 2, true},
	}
	for n, s := range steps {
		if got := g.fresh(a, s.inst, s.seq, false); got != s.want {
			t.Fatalf("step %d: fresh = %v, want %v", n, got, s.want)
		}
	}
	if !g.fresh(a, i2, 2, true) || g.fresh(a, i2, 1, true) {
		t.Fatal("mDNS rule: the same sequence again is fine, an older one is not")
	}
	for range 10 {
		g.fresh(uuid.New(), uuid.New(), 1, false)
	}
	if g.len() != 2 {
		t.Fatalf("guard holds %d nodes, want 2", g.len())
	}
}

// startKeyed starts a loopback Discoverer on port with ring, closed at the
// test's end, and returns it with its events.
func startKeyed(t *testing.T, port int, ring meshkey.Keyring) (*Discoverer, *events) {
	t.Helper()
	cfg := loopbackConfig(t, port)
	cfg.Keyring = ring
	ev := newEvents()
	cfg.OnEvent = ev.on
	d, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { d.Close() })
	return d, ev
}

// TestLoopbackKeyed: keyed nodes find each other; a node with another key
// and an unkeyed node are ignored, and counted.
func TestLoopbackKeyed(t *testing.T) {
	before := countResources()
	port := freeUDPPort(t)
	a, evA := startKeyed(t, port, testRing(1))
	b, _ := startKeyed(t, port, testRing(1))
	other, _ := startKeyed(t, port, testRing(2))
	plain, _ := startKeyed(t, port, meshkey.Keyring{})
	evA.waitFor(t, 2*time.Second, "a keyed peer", func(ev Event) bool { return ev.Kind == Found && ev.Peer.ID == b.Self().ID })
	waitFor(t, 2*time.Second, "counts", func() bool {
		return a.Stats().WrongKey > 0 && a.Stats().Unkeyed > 0 && plain.Stats().Unkeyed > 0
	})
	for _, p := range a.Peers() {
		if p.ID == other.Self().ID || p.ID == plain.Self().ID {
			t.Fatalf("a found %v, which has another key or none", p.ID)
		}
	}
	if len(plain.Peers()) != 0 {
		t.Fatalf("the unkeyed node found %v", plain.Peers())
	}
	for _, d := range []*Discoverer{a, b, other, plain} {
		d.Close()
	}
	checkNoLeak(t, before)
}

// TestLoopbackBeaconReplay plays recorded beacons again: the same one, an
// older one and one of a retired instance are dropped; after the receiver
// restarts, a replay is believed once (and causes at most one dial, which
// the handshake refuses).
func TestLoopbackBeaconReplay(t *testing.T) {
	port := freeUDPPort(t)
	ring := testRing(1)
	keys := ring.Derive("loop")
	fake := Beacon{ID: uuid.New(), Instance: uuid.New(), Port: 9, Mesh: "loop", Name: "recorded"}
	sign := func(b Beacon, seq uint64) []byte {
		b.Seq = seq
		p, err := b.AppendSigned(nil, keys.Primary())
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: port})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	d, ev := startKeyed(t, port, ring)
	old := fake
	old.Instance = uuid.New()
	send := func(p []byte) {
		if _, err := c.Write(p); err != nil {
			t.Fatal(err)
		}
	}
	send(sign(old, 3))
	ev.waitFor(t, 2*time.Second, "the first instance", func(e Event) bool { return e.Kind == Found && e.Peer.ID == fake.ID })
	send(sign(fake, 10))
	ev.waitFor(t, 2*time.Second, "the restart", func(e Event) bool { return e.Kind == Restarted && e.Peer.Instance == fake.Instance })
	for _, p := range [][]byte{sign(fake, 10), sign(fake, 9), sign(old, 4)} {
		send(p)
	}
	waitFor(t, 2*time.Second, "three replays counted", func() bool { return d.Stats().Replayed == 3 })
	if p := d.Peers(); len(p) != 1 || p[0].Instance != fake.Instance {
		t.Fatalf("peers %+v", p)
	}
	// The receiver restarts and forgets: one replay is believed once.
	d.Close()
	d2, ev2 := startKeyed(t, port, ring)
	send(sign(fake, 10))
	send(sign(fake, 10))
	ev2.waitFor(t, 2*time.Second, "the replay after a restart", func(e Event) bool { return e.Kind == Found && e.Peer.ID == fake.ID })
	waitFor(t, 2*time.Second, "the second replay dropped", func() bool { return d2.Stats().Replayed == 1 })
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func FuzzParseSignedBeacon(f *testing.F) {
	p, keys := signedGolden(f)
	f.Add(p)
	f.Add(p[:40])
	long := goldenBeacon
	long.Seq, long.Name, long.Mesh = 1, strings.Repeat("n", MaxNameLen), strings.Repeat("m", MaxMeshLen)
	if q, err := long.appendSealed(nil, keys.Primary(), goldenSealNonce); err == nil {
		f.Add(q)
	}
	f.Fuzz(func(t *testing.T, p []byte) {
		b, err := ParseSignedBeacon(p, keys)
		if err != nil {
			return
		}
		var nonce [sealNonceLen]byte
		copy(nonce[:], p[13:sealHeaderLen])
		q, err := b.appendSealed(nil, keys.Primary(), nonce)
		if err != nil || !bytes.Equal(p, q) {
			t.Fatalf("a beacon that parsed does not seal back: %v", err)
		}
	})
}

// FuzzSealedPlaintext seals arbitrary plaintexts (what a holder of the key
// could send): the parser must reject or round-trip each, never panic.
func FuzzSealedPlaintext(f *testing.F) {
	keys := testRing(1).Derive("demo")
	f.Add(make([]byte, 64))
	f.Add(bytes.Repeat([]byte{0xff}, 128))
	f.Fuzz(func(t *testing.T, pt []byte) {
		if len(pt) > 6*sealPad {
			return
		}
		hdr := append([]byte(beaconMagic), KeyedBeaconVersion)
		id := keys.Primary().ID
		hdr = append(hdr, id[:]...)
		hdr = append(hdr, goldenSealNonce[:]...)
		p := sealKey(keys.Primary()).Seal(bytes.Clone(hdr), goldenSealNonce[:], pt, hdr)
		b, err := ParseSignedBeacon(p, keys)
		if err != nil {
			return
		}
		q, err := b.appendSealed(nil, keys.Primary(), goldenSealNonce)
		if err != nil || !bytes.Equal(p, q) {
			t.Fatalf("a sealed plaintext that parsed does not seal back: %v", err)
		}
	})
}
