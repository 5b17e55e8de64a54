package mesh

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"net"
	"strings"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/flynn/noise"
	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/codec"
	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
)

// rawKeyed is the far end of a keyed Messenger driven by hand: it ran a
// real keyed handshake as the initiator and now writes whatever records a
// test crafts.
type rawKeyed struct {
	conn net.Conn
	s    session // the raw side's keys
	m    *Messenger
}

func newRawKeyed(t testing.TB, tc transportCase, cfg Config) *rawKeyed {
	t.Helper()
	tr, addr := tc.new()
	client, server := connPair(t, tr, addr)
	rawCfg := cfg
	rawCfg.NodeID = uuid.New()
	keys := cfg.Keyring.Derive(cfg.Mesh)
	type result struct {
		s   session
		err error
	}
	rc := make(chan result, 1)
	go func() {
		s, err := handshake(context.Background(), client, rawCfg.hello(), rawCfg, hsOptions{initiator: true, keys: keys})
		rc <- result{s, err}
	}()
	sb, err := handshake(context.Background(), server, cfg.hello(), cfg, hsOptions{keys: keys})
	if err != nil {
		t.Fatal(err)
	}
	ra := <-rc
	if ra.err != nil {
		t.Fatal(ra.err)
	}
	m, err := newMessenger(server, cfg, cfg.hello(), sb)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		client.Close()
		m.Close()
	})
	return &rawKeyed{conn: client, s: ra.s, m: m}
}

// frames encodes Msg32s with sequence numbers from..to-1.
func frames(from, to int) []byte {
	c := codec.NewBinary(testRegistry)
	var b []byte
	for i := from; i < to; i++ {
		b, _ = c.AppendFrame(b, &Msg32{Seq: uint64(i)})
	}
	return b
}

// drain receives until the link ends and returns the sequence numbers
// received and the link's error.
func drain(t *testing.T, m *Messenger) ([]uint64, error) {
	t.Helper()
	ctx := testCtx(t, 10*time.Second)
	var got []uint64
	for {
		msg, err := m.Receive(ctx)
		if err != nil {
			if ctx.Err() != nil {
				t.Fatal("link still open")
			}
			return got, err
		}
		got = append(got, msg.Msg.(*Msg32).Seq)
	}
}

func TestRecordTampering(t *testing.T) {
	type recs = [][]byte
	seal := func(r *rawKeyed, plains ...[]byte) recs {
		var out recs
		for _, p := range plains {
			b, err := r.s.send.sealOne(nil, p)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, b)
		}
		return out
	}
	flip := func(b []byte, i int) []byte {
		b = bytes.Clone(b)
		if i < 0 {
			i += len(b)
		}
		b[i] ^= 0x01
		return b
	}
	half := frames(10, 11)
	cases := []struct {
		name string
		wire func(r *rawKeyed) []byte // what the raw end sends after frames 0..9 in record 0
		lost bool                     // the stream ends in a record: ErrConnLost, not ErrProtocol
		// either: a changed length may end the stream inside a record or make
		// the record fail; either way nothing of it is delivered.
		either bool
	}{
		{"length high byte", func(r *rawKeyed) []byte { return flip(seal(r, frames(10, 20))[0], 0) }, false, true},
		{"length low byte", func(r *rawKeyed) []byte { return flip(seal(r, frames(10, 20))[0], 1) }, false, true},
		{"body", func(r *rawKeyed) []byte { return flip(seal(r, frames(10, 20))[0], 7) }, false, false},
		{"tag", func(r *rawKeyed) []byte { return flip(seal(r, frames(10, 20))[0], -1) }, false, false},
		{"short length", func(r *rawKeyed) []byte { return []byte{0, 16} }, false, false},
		{"reordered", func(r *rawKeyed) []byte {
			rs := seal(r, frames(10, 20), frames(20, 30))
			return append(rs[1], rs[0]...)
		}, false, false},
		{"dropped", func(r *rawKeyed) []byte { return seal(r, frames(10, 20), frames(20, 30))[1] }, false, false},
		{"reflected", func(r *rawKeyed) []byte {
			// Record 1 as the node itself would seal it, in its own direction.
			refl := &recordCipher{aead: r.s.recv.aead, n: 1}
			b, _ := refl.sealOne(nil, frames(10, 20))
			return b
		}, false, false},
		{"frame split, second half tampered", func(r *rawKeyed) []byte {
			rs := seal(r, half[:10], append(half[10:], frames(11, 20)...))
			return append(rs[0], flip(rs[1], 4)...)
		}, false, false},
		{"cut", func(r *rawKeyed) []byte {
			b := seal(r, frames(10, 20))[0]
			return b[:len(b)/2]
		}, true, false},
	}
	eachTransport(t, func(t *testing.T, tc transportCase) {
		for _, c := range cases {
			t.Run(c.name, func(t *testing.T) {
				leaktest.Check(t)
				r := newRawKeyed(t, tc, keyed(testConfig(t), testKey(1)))
				first := seal(r, frames(0, 10))[0]
				if _, err := r.conn.Write(append(first, c.wire(r)...)); err != nil {
					t.Fatal(err)
				}
				r.conn.(closeWriter).CloseWrite()
				got, err := drain(t, r.m)
				if len(got) != 10 || got[9] != 9 {
					t.Fatalf("received %v, want exactly 0..9", got)
				}
				if c.either && errors.Is(err, ErrConnLost) {
					return
				}
				if c.lost {
					wantClose(t, err, ErrConnLost, true)
				} else {
					ce := wantClose(t, err, ErrProtocol, false)
					if !strings.Contains(ce.Reason, "record failed to open") {
						t.Fatalf("reason %q", ce.Reason)
					}
				}
			})
		}
	})
	t.Run("duplicated", func(t *testing.T) {
		r := newRawKeyed(t, tcpCase, keyed(testConfig(t), testKey(1)))
		first := seal(r, frames(0, 10))[0]
		r.conn.Write(append(bytes.Clone(first), first...))
		r.conn.(closeWriter).CloseWrite()
		got, err := drain(t, r.m)
		if len(got) != 10 {
			t.Fatalf("received %v", got)
		}
		wantClose(t, err, ErrProtocol, false)
	})
}

// TestRecordMatchesNoise proves the record layer's AEAD use equal to
// flynn/noise's CipherState: the same key and counter give the same bytes.
func TestRecordMatchesNoise(t *testing.T) {
	var key [32]byte
	copy(key[:], "0123456789abcdef0123456789abcdef")
	cs := noise.UnsafeNewCipherState(noiseSuite, key, 0)
	rc := newRecordCipher(key, 0)
	for i, plain := range [][]byte{nil, []byte("x"), frames(0, 64), bytes.Repeat([]byte{7}, maxRecordPlain)} {
		got, err := rc.sealOne(nil, plain)
		if err != nil {
			t.Fatal(err)
		}
		want, err := cs.Encrypt(nil, got[:recordHeader], plain)
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.Equal(got[recordHeader:], want) {
			t.Fatalf("record %d differs from noise's ChaChaPoly", i)
		}
	}
	// And the other way: noise seals, the record layer opens.
	oc := newRecordCipher(key, 4)
	hdr := []byte{0, 16 + 3}
	ct, _ := cs.Encrypt(nil, hdr, []byte("abc"))
	if p, err := oc.open(hdr, ct); err != nil || string(p) != "abc" {
		t.Fatalf("open = %q, %v", p, err)
	}
	// seal cuts large plaintexts into records of at most 16 KiB.
	b, _ := newRecordCipher(key, 0).seal(nil, make([]byte, 2*maxRecordPlain+1))
	if len(b) != 2*maxRecordPlain+1+3*(recordHeader+recordTag) {
		t.Fatalf("sealed %d bytes", len(b))
	}
}

func TestRecordNoAllocs(t *testing.T) {
	var key [32]byte
	c := newRecordCipher(key, 0)
	o := newRecordCipher(key, 0)
	plain := frames(0, 64)
	buf := make([]byte, 0, 4096)
	allocs := testing.AllocsPerRun(100, func() {
		b, _ := c.seal(buf[:0], plain)
		if _, err := o.open(b[:2], b[2:]); err != nil {
			t.Fatal(err)
		}
	})
	if allocs != 0 {
		t.Fatalf("%v allocations per record", allocs)
	}
}

// detRand is a deterministic byte source for known answers.
type detRand struct{ n byte }

func (d *detRand) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = d.n
		d.n += 7
	}
	return len(p), nil
}

// transcript runs a keyed handshake with deterministic ephemeral keys and
// a fixed first record, and returns the hash of every byte each side sent.
func transcript(t *testing.T) string {
	cfg := keyed(testConfig(t), testKey(1))
	cfg.Name = "kat"
	cfg.NodeID = uuid.MustParse("00112233-4455-6677-8899-aabbccddeeff")
	cfg.instance = uuid.MustParse("ffeeddcc-bbaa-9988-7766-554433221100")
	keys := cfg.Keyring.Derive(cfg.Mesh)
	a, b := net.Pipe()
	defer a.Close()
	defer b.Close()
	ra, rb := &recorder{Conn: a}, &recorder{Conn: b}
	var wg sync.WaitGroup
	var sb session
	var errB error
	wg.Add(1)
	go func() {
		defer wg.Done()
		sb, errB = handshake(context.Background(), rb, cfg.hello(), cfg, hsOptions{keys: keys, rand: &detRand{n: 1}})
	}()
	sa, err := handshake(context.Background(), ra, cfg.hello(), cfg, hsOptions{initiator: true, keys: keys, rand: &detRand{n: 2}})
	if err != nil {
		t.Fatal(err)
	}
	wg.Wait()
	if errB != nil {
		t.Fatal(errB)
	}
	r1, _ := sa.send.sealOne(nil, frames(0, 1))
	r2, _ := sb.send.sealOne(nil, frames(1, 2))
	h := sha256.New()
	h.Write(ra.buf.Bytes())
	h.Write(r1)
	h.Write(rb.buf.Bytes())
	h.Write(r2)
	return hex.EncodeToString(h.Sum(nil))
}

type recorder struct {
	net.Conn
	buf bytes.Buffer
}

func (r *recorder) Write(p []byte) (int, error) {
	r.buf.Write(p)
	return r.Conn.Write(p)
}

// TestKeyedHandshakeKnownAnswer pins the keyed handshake's bytes with a
// deterministic random source, and shows that no clock enters them: the
// same bytes come out under a clock at 2000-01-01 (a synctest bubble's)
// and under the machine's.
func TestKeyedHandshakeKnownAnswer(t *testing.T) {
	const want = "37586516e3db9007921abee93a435a3a4d147af92f4dfa2f8adeea59876f7064"
	now := transcript(t)
	var then string
	synctest.Test(t, func(t *testing.T) {
		if time.Now().Year() != 2000 {
			t.Fatalf("bubble clock at %v", time.Now())
		}
		then = transcript(t)
	})
	if now != then {
		t.Fatalf("the handshake's bytes depend on the clock: %s vs %s", now, then)
	}
	if now != want {
		t.Fatalf("transcript hash %s, want %s", now, want)
	}
}

// FuzzRecordReader feeds arbitrary bytes to the record parser: it never
// panics, never returns plaintext of a record that did not open, and what
// it returns is exactly what was sealed.
func FuzzRecordReader(f *testing.F) {
	var key [32]byte
	c := newRecordCipher(key, 0)
	good, _ := c.seal(nil, frames(0, 3))
	more, _ := c.seal(nil, frames(3, 5))
	f.Add(good)
	f.Add(append(bytes.Clone(good), more...))
	f.Add([]byte{0, 16})
	f.Add([]byte{0xff, 0xff, 1, 2, 3})
	f.Fuzz(func(t *testing.T, p []byte) {
		rr := newRecordReader(bytes.NewReader(p), newRecordCipher(key, 0))
		var out []byte
		buf := make([]byte, 100)
		for range 10000 {
			n, err := rr.Read(buf)
			out = append(out, buf[:n]...)
			if err != nil {
				break
			}
		}
		// Whatever came out is a prefix of the frames sealed above.
		all := frames(0, 5)
		if len(out) > len(all) || !bytes.Equal(out, all[:len(out)]) {
			t.Fatalf("returned %d bytes that were never sealed", len(out))
		}
	})
}
