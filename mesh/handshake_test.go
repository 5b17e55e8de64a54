package mesh

import (
	"bytes"
	"context"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
)

var goldenHello = hello{
	NodeID:     uuid.MustParse("00112233-4455-6677-8899-aabbccddeeff"),
	InstanceID: uuid.MustParse("ffeeddcc-bbaa-9988-7766-554433221100"),
	Name:       "ann",
	Mesh:       "game",
	Codec:      "binary",
	ListenPort: 7000,
}

// The bytes of SPEC.md's example (section 6), field by field.
const goldenHelloHex = "4c4e4d48" + "01" + "01" + "0036" + // magic, version, kind, length 54
	"00112233445566778899aabbccddeeff" + // node id
	"ffeeddccbbaa99887766554433221100" + // instance id
	"1b58" + "00" + "00" + // port 7000, suite none, flags
	"03616e6e" + "0467616d65" + "0662696e617279" + // "ann", "game", "binary"
	"0000" // no suite data

func TestHelloGolden(t *testing.T) {
	b, err := goldenHello.appendFrame(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(b); got != goldenHelloHex {
		t.Fatalf("hello\n got %s\nwant %s", got, goldenHelloHex)
	}
	h, err := parseHello(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(h, goldenHello) {
		t.Fatalf("parsed %+v", h)
	}
	withSuite := goldenHello
	withSuite.Suite, withSuite.SuiteData = 7, []byte{1, 2, 3}
	b, _ = withSuite.appendFrame(nil)
	if h, err := parseHello(b); err != nil || !reflect.DeepEqual(h, withSuite) {
		t.Fatalf("with a suite: %+v, %v", h, err)
	}
}

// brokenHellos are frames ParseHello must refuse, each with its flaw.
func brokenHellos() map[string][]byte {
	good, _ := goldenHello.appendFrame(nil)
	edit := func(f func(b []byte) []byte) []byte { return f(bytes.Clone(good)) }
	return map[string][]byte{
		"empty":         nil,
		"short header":  good[:5],
		"magic":         edit(func(b []byte) []byte { b[0] = 'X'; return b }),
		"version":       edit(func(b []byte) []byte { b[4] = 2; return b }),
		"kind":          edit(func(b []byte) []byte { b[5] = kindAccept; return b }),
		"length long":   edit(func(b []byte) []byte { b[7]++; return b }),
		"length short":  edit(func(b []byte) []byte { b[7]--; return b }),
		"body huge":     edit(func(b []byte) []byte { b[6] = 0xff; return b }),
		"truncated":     good[:len(good)-1],
		"trailing":      append(edit(func(b []byte) []byte { b[7]++; return b }), 0),
		"nil node":      edit(func(b []byte) []byte { copy(b[8:24], make([]byte, 16)); return b }),
		"nil instance":  edit(func(b []byte) []byte { copy(b[24:40], make([]byte, 16)); return b }),
		"flags":         edit(func(b []byte) []byte { b[43] = 1; return b }),
		"name overruns": edit(func(b []byte) []byte { b[44] = 200; return b }),
		"name utf8":     edit(func(b []byte) []byte { b[45] = 0xff; return b }),
		"empty mesh": func() []byte {
			h := goldenHello
			h.Mesh = ""
			b, _ := h.appendFrame(nil)
			return b
		}(),
		"suite length": edit(func(b []byte) []byte { b[len(b)-1] = 1; return b }),
		"suite data without a suite": edit(func(b []byte) []byte {
			b[7]++
			b[len(b)-1] = 1
			return append(b, 0xaa)
		}),
	}
}

func TestParseHelloRejects(t *testing.T) {
	for name, b := range brokenHellos() {
		if h, err := parseHello(b); err == nil {
			t.Errorf("%s: parsed %+v", name, h)
		} else if !errors.Is(err, ErrHandshake) && !errors.Is(err, ErrVersion) {
			t.Errorf("%s: %v is neither ErrHandshake nor ErrVersion", name, err)
		}
	}
	long := goldenHello
	long.Name = strings.Repeat("x", 256)
	if _, err := long.appendFrame(nil); err == nil {
		t.Error("a 256-byte name was encoded")
	}
}

func FuzzParseHello(f *testing.F) {
	good, _ := goldenHello.appendFrame(nil)
	f.Add(good)
	keyedGood, _ := goldenKeyedHello().appendFrame(nil) // suite 1, the resume offer
	f.Add(keyedGood)
	for _, b := range brokenHellos() {
		f.Add(b)
	}
	f.Add(appendReject(nil, rejectMesh, "no"))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, err := parseHello(b)
		if err != nil {
			return
		}
		again, err := h.appendFrame(nil)
		if err != nil {
			t.Fatalf("parsed %+v but cannot append it: %v", h, err)
		}
		if !bytes.Equal(again, b) {
			t.Fatalf("round trip\n got % x\nwant % x", again, b)
		}
	})
}

// FuzzHandshake plays an arbitrary byte stream as the peer of a handshake:
// it must end, with an error or a Hello, and never hang or panic.
func FuzzHandshake(f *testing.F) {
	good, _ := goldenHello.appendFrame(nil)
	f.Add(append(bytes.Clone(good), appendAccept(nil)...))
	f.Add(append(bytes.Clone(good), appendReject(nil, rejectOther, "banned")...))
	f.Add(good)
	keyedGood, _ := goldenKeyedHello().appendFrame(nil) // a keyed Hello, refused for its suite
	f.Add(append(keyedGood, appendAccept(nil)...))
	f.Add([]byte("GET / HTTP/1.1\r\n\r\n"))
	for _, b := range brokenHellos() {
		f.Add(b)
	}
	cfg := DefaultConfig()
	cfg.Mesh, cfg.Codec = goldenHello.Mesh, goldenHello.Codec
	cfg.Link.HandshakeTimeout = time.Second
	f.Fuzz(func(t *testing.T, b []byte) {
		local, peer := memPipe("local", "peer")
		defer local.Close()
		go func() {
			peer.Write(b)
			peer.CloseWrite()
			io.Copy(io.Discard, peer)
			peer.Close()
		}()
		h, err := handshakeUnkeyed(context.Background(), local, cfg.hello(), cfg)
		if err == nil && (h.Mesh != cfg.Mesh || h.Codec != cfg.Codec) {
			t.Fatalf("accepted %+v", h)
		}
		// A Reject may itself say "timed out" (Remote is then true): only a
		// timeout of this side's own clock means the hang-up was missed.
		var ce *CloseError
		if err != nil && errors.Is(err, ErrHandshakeTimeout) && !(errors.As(err, &ce) && ce.Remote) {
			t.Fatalf("a peer that hung up was taken for a silent one: %v", err)
		}
	})
}

// handshakePair runs Handshake on both ends of a fresh conn over tc with the
// given configs and returns both results.
func handshakePair(t *testing.T, tc transportCase, ca, cb Config) (errA, errB error) {
	t.Helper()
	tr, addr := tc.new()
	c1, c2 := connPair(t, tr, addr)
	errc := make(chan error, 1)
	go func() {
		_, err := handshakeUnkeyed(context.Background(), c1, ca.hello(), ca)
		errc <- err
	}()
	_, errB = handshakeUnkeyed(context.Background(), c2, cb.hello(), cb)
	return <-errc, errB
}

func TestHandshakeMismatch(t *testing.T) {
	eachTransport(t, func(t *testing.T, tc transportCase) {
		leaktest.Check(t)
		ca, cb := testConfig(t), testConfig(t)
		cb.Mesh = "elsewhere"
		errA, errB := handshakePair(t, tc, ca, cb)
		for _, err := range []error{errA, errB} {
			ce := wantClose(t, err, ErrMeshMismatch, false)
			if !strings.Contains(ce.Reason, `"elsewhere"`) {
				t.Errorf("reason %q", ce.Reason)
			}
		}
		cb = testConfig(t)
		cb.Codec = "json"
		errA, errB = handshakePair(t, tc, ca, cb)
		for _, err := range []error{errA, errB} {
			ce := wantClose(t, err, ErrCodecMismatch, false)
			if !strings.Contains(ce.Reason, `"json"`) {
				t.Errorf("reason %q", ce.Reason)
			}
		}
		if errA, errB := handshakePair(t, tc, ca, testConfig(t)); errA != nil || errB != nil {
			t.Fatalf("matching configs: %v, %v", errA, errB)
		}
	})
}

// rawHandshake starts a Handshake on the far end of raw and returns where
// its result will arrive.
func rawHandshake(t *testing.T, tc transportCase, cfg Config) (raw net.Conn, result chan error) {
	tr, addr := tc.new()
	raw, c := connPair(t, tr, addr)
	result = make(chan error, 1)
	go func() {
		_, err := handshakeUnkeyed(context.Background(), c, cfg.hello(), cfg)
		result <- err
	}()
	return raw, result
}

// readFrames reads handshake frames from raw until it has n or fails.
func readFrames(t *testing.T, raw net.Conn, n int) (kinds []byte, bodies [][]byte) {
	t.Helper()
	raw.SetReadDeadline(time.Now().Add(5 * time.Second))
	for range n {
		hdr := make([]byte, handshakeHeader)
		if _, err := io.ReadFull(raw, hdr); err != nil {
			t.Fatalf("frame %d: %v", len(kinds), err)
		}
		kind, size, err := parseHeader(hdr)
		if err != nil {
			t.Fatal(err)
		}
		body := make([]byte, size)
		io.ReadFull(raw, body)
		kinds, bodies = append(kinds, kind), append(bodies, body)
	}
	return kinds, bodies
}

func wait(t *testing.T, c chan error) error {
	t.Helper()
	select {
	case err := <-c:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("handshake did not end")
		return nil
	}
}

func TestHandshakeGarbage(t *testing.T) {
	eachTransport(t, func(t *testing.T, tc transportCase) {
		leaktest.Check(t)
		raw, result := rawHandshake(t, tc, testConfig(t))
		raw.Write([]byte("SSH-2.0-OpenSSH_9.6\r\n"))
		ce := wantClose(t, wait(t, result), ErrHandshake, false)
		if !strings.Contains(ce.Reason, "magic") {
			t.Errorf("reason %q", ce.Reason)
		}
		// The garbage's sender is told, in a Reject after our Hello.
		kinds, bodies := readFrames(t, raw, 2)
		if kinds[0] != kindHello || kinds[1] != kindReject {
			t.Fatalf("frames %v", kinds)
		}
		if code, reason, err := parseReject(bodies[1]); err != nil || code != rejectMalformed || reason != ce.Reason {
			t.Errorf("reject %d %q %v", code, reason, err)
		}
	})
}

func TestHandshakeVersion(t *testing.T) {
	eachTransport(t, func(t *testing.T, tc transportCase) {
		leaktest.Check(t)
		raw, result := rawHandshake(t, tc, testConfig(t))
		b, _ := goldenHello.appendFrame(nil)
		b[4] = 9
		raw.Write(b)
		wantClose(t, wait(t, result), ErrVersion, false)
		_, bodies := readFrames(t, raw, 2)
		if code, _, _ := parseReject(bodies[1]); code != rejectVersion {
			t.Errorf("reject code %d", code)
		}
	})
}

func TestHandshakeRemoteReject(t *testing.T) {
	eachTransport(t, func(t *testing.T, tc transportCase) {
		leaktest.Check(t)
		cfg := testConfig(t)
		raw, result := rawHandshake(t, tc, cfg)
		peer := cfg.hello()
		peer.NodeID = uuid.New()
		b, _ := peer.appendFrame(nil)
		raw.Write(appendReject(b, rejectOther, "you are banned"))
		ce := wantClose(t, wait(t, result), ErrRejected, true)
		if ce.Reason != "you are banned" {
			t.Errorf("reason %q", ce.Reason)
		}
		// A reject code from a later version reads as ErrRejected too.
		raw, result = rawHandshake(t, tc, cfg)
		raw.Write(appendReject(b, 200, "new reason"))
		wantClose(t, wait(t, result), ErrRejected, true)
	})
}

func TestHandshakeTimeout(t *testing.T) {
	eachTransport(t, func(t *testing.T, tc transportCase) {
		leaktest.Check(t)
		cfg := testConfig(t)
		cfg.Link.HandshakeTimeout = 100 * time.Millisecond
		raw, result := rawHandshake(t, tc, cfg)
		b, _ := goldenHello.appendFrame(nil)
		raw.Write(b[:20]) // then nothing
		ce := wantClose(t, wait(t, result), ErrHandshakeTimeout, false)
		var ne net.Error
		if !errors.As(ce, &ne) || !ne.Timeout() {
			t.Errorf("%v is not a net.Error timeout", ce)
		}
		kinds, bodies := readFrames(t, raw, 2)
		if code, _, _ := parseReject(bodies[1]); kinds[1] != kindReject || code != rejectTimeout {
			t.Errorf("frames %v, reject code %d", kinds, code)
		}
	})
}

func TestHandshakeContext(t *testing.T) {
	leaktest.Check(t)
	cfg := testConfig(t)
	_, c := connPair(t, NewMemNetwork(), "x:0")
	ctx, cancel := context.WithCancel(context.Background())
	time.AfterFunc(20*time.Millisecond, cancel)
	if _, err := handshakeUnkeyed(ctx, c, cfg.hello(), cfg); !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want context.Canceled", err)
	}
}
