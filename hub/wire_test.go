package hub

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/meshkey"
)

func testHeader() header {
	return header{
		kind:    kindRequest,
		sender:  uuid.MustParse("00112233-4455-6677-8899-aabbccddeeff"),
		session: uuid.MustParse("ffeeddcc-bbaa-9988-7766-554433221100"),
		start:   0x0102030405060708,
		seq:     42,
	}
}

// TestHeaderGolden pins the header's bytes (SPEC.md section 12).
func TestHeaderGolden(t *testing.T) {
	h := testHeader()
	got := hex.EncodeToString(h.append(nil))
	want := "01" + "02" + "00" + "00" + "0000000000000000" +
		"00112233445566778899aabbccddeeff" + "ffeeddccbbaa99887766554433221100" +
		"0102030405060708" + "000000000000002a"
	if got != want {
		t.Fatalf("header\n got %s\nwant %s", got, want)
	}
	if len(h.append(nil)) != headerSize {
		t.Fatalf("header is %d bytes", len(h.append(nil)))
	}
	p, err := parseHeader(h.append(nil))
	if err != nil || p != h {
		t.Fatalf("parse: %+v %v", p, err)
	}
}

func testKeys(t *testing.T) []sealKey {
	k, err := meshkey.Generate(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return deriveKeys(meshkey.Keyring{Primary: k}.Derive("m"))
}

func TestSealOpen(t *testing.T) {
	keys := testKeys(t)
	body := []byte("the body")
	for _, tc := range []struct {
		name string
		keys []sealKey
	}{{"unkeyed", nil}, {"keyed", keys}} {
		t.Run(tc.name, func(t *testing.T) {
			env := seal(nil, testHeader(), "subj", body, tc.keys)
			h, got, err := open(env, "subj", tc.keys)
			if err != nil || !bytes.Equal(got, body) || h.sealed != (tc.keys != nil) {
				t.Fatalf("open: %q %+v %v", got, h, err)
			}
			if tc.keys == nil {
				return
			}
			if bytes.Contains(env, body) {
				t.Fatal("body in the clear")
			}
			if _, _, err := open(env, "other", tc.keys); !errors.Is(err, errOpen) {
				t.Fatalf("another subject: %v", err)
			}
			for i := range env {
				bad := bytes.Clone(env)
				bad[i] ^= 1
				if _, _, err := open(bad, "subj", tc.keys); err == nil {
					t.Fatalf("a flipped bit at %d opened", i)
				}
			}
			if _, _, err := open(env, "subj", nil); !errors.Is(err, errSealed) {
				t.Fatalf("sealed, no key: %v", err)
			}
			if _, _, err := open(seal(nil, testHeader(), "subj", body, nil), "subj", keys); !errors.Is(err, errUnsealed) {
				t.Fatalf("unsealed under a key: %v", err)
			}
			if _, _, err := open(env, "subj", testKeys(t)); !errors.Is(err, errKeyID) {
				t.Fatalf("another key: %v", err)
			}
		})
	}
}

func TestParseHeaderRejects(t *testing.T) {
	th := testHeader()
	good := th.append(nil)
	for _, tc := range []struct {
		name string
		b    []byte
		want error
	}{
		{"short", good[:headerSize-1], errShort},
		{"version", append([]byte{2}, good[1:]...), errVersion},
		{"kind", append([]byte{1, 99}, good[2:]...), errKind},
		{"flags", append([]byte{1, 2, 4}, good[3:]...), errBody},
		{"reserved", append([]byte{1, 2, 0, 1}, good[4:]...), errBody},
		{"large", make([]byte, MaxEnvelope+1), errTooLarge},
	} {
		if _, err := parseHeader(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.name, err, tc.want)
		}
	}
	noSeq := testHeader()
	noSeq.seq = 0
	if _, err := parseHeader(noSeq.append(nil)); !errors.Is(err, errBody) {
		t.Errorf("seq 0: %v", err)
	}
}

func TestBodies(t *testing.T) {
	d := dataBody{reqID: 7, site: "site", name: "näme", frame: []byte{3, 0x11, 'h', 'i'}}
	got, err := parseData(d.append(nil))
	if err != nil || got.reqID != 7 || got.site != "site" || got.name != "näme" || !bytes.Equal(got.frame, d.frame) {
		t.Fatalf("data: %+v %v", got, err)
	}
	if _, err := parseData(dataBody{name: "x"}.appendTo()); err == nil {
		t.Fatal("data without a site parsed")
	}
	m := memberBody{site: "s", name: "n"}
	if got, err := parseMember(m.append(nil)); err != nil || got != m {
		t.Fatalf("member: %+v %v", got, err)
	}
	if _, err := parseMember(append(m.append(nil), 0)); err == nil {
		t.Fatal("member with trailing bytes parsed")
	}
	r := rosterBody{site: "s", entries: []rosterEntry{{id: uuid.New(), session: uuid.New(), name: "one"}, {id: uuid.New(), session: uuid.New(), name: ""}}}
	gr, err := parseRoster(r.append(nil))
	if err != nil || gr.site != "s" || len(gr.entries) != 2 || gr.entries[0] != r.entries[0] || gr.entries[1] != r.entries[1] {
		t.Fatalf("roster: %+v %v", gr, err)
	}
	// A long name is cut at a rune boundary, to 255 bytes at most.
	long := strings.Repeat("é", 200)
	got2, err := parseData((&dataBody{site: "s", name: long}).append(nil))
	if err != nil || len(got2.name) > maxText || !strings.HasPrefix(long, got2.name) {
		t.Fatalf("long name: %d bytes, %v", len(got2.name), err)
	}
	// Bad UTF-8, a count over the bound, a short entry, a nil id.
	bad := [][]byte{
		{1, 0xff, 0, 0},
		append(appendText(nil, "s"), 0x01, 0x01),
		append(appendText(nil, "s"), 0, 1, 1, 2, 3),
		append(append(appendText(nil, "s"), 0, 1), make([]byte, 33)...),
	}
	for i, b := range bad {
		if _, err := parseRoster(b); err == nil {
			t.Errorf("bad roster %d parsed", i)
		}
	}
}

// appendTo is append for a value, for the tests.
func (d dataBody) appendTo() []byte { return d.append(nil) }

func TestWindow(t *testing.T) {
	var w window
	s1, s2 := uuid.New(), uuid.New()
	for _, tc := range []struct {
		session uuid.UUID
		start   int64
		seq     uint64
		want    bool
	}{
		{s1, 10, 1, true},
		{s1, 10, 1, false}, // a duplicate
		{s1, 10, 3, true},
		{s1, 10, 2, true}, // late, in the window
		{s1, 10, 2, false},
		{s1, 10, 300, true},
		{s1, 10, 3, false},   // behind the window
		{s1, 10, 45, true},   // in it, never seen
		{s2, 5, 1, false},    // an older session
		{s2, 20, 1, true},    // a newer one replaces it
		{s1, 10, 301, false}, // and the old one is over
		{s2, 20, 1000, true},
		{s2, 20, 1000 - windowBits + 1, true},
		{s2, 20, 1000 - windowBits, false},
	} {
		if got := w.accept(tc.session, tc.start, tc.seq); got != tc.want {
			t.Fatalf("accept(%v, %d, %d) = %v, want %v", tc.session == s1, tc.start, tc.seq, got, tc.want)
		}
	}
}

func TestReplayTableBounded(t *testing.T) {
	var rt replayTable
	s := uuid.New()
	for i := range maxWindows + 10 {
		rt.accept(uuid.New(), classData, s, int64(i), 1)
	}
	if len(rt.byKey) > maxWindows {
		t.Fatalf("%d windows", len(rt.byKey))
	}
}

// FuzzOpen: no input makes open or the body parsers panic, and what opens
// unkeyed parses back to the same header.
func FuzzOpen(f *testing.F) {
	f.Add(seal(nil, testHeader(), "s", (&dataBody{site: "a", name: "b", frame: []byte{1}}).append(nil), nil))
	f.Add(seal(nil, testHeader(), "s", (&rosterBody{site: "a", entries: []rosterEntry{{id: uuid.New()}}}).append(nil), nil))
	f.Add(seal(nil, testHeader(), "s", (&memberBody{site: "a", name: "b"}).append(nil), nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, body, err := open(b, "s", nil)
		if err != nil {
			return
		}
		if !bytes.Equal(h.append(nil), b[:headerSize]) {
			t.Fatalf("header does not round-trip")
		}
		if r, err := parseRoster(body); err == nil {
			r2, err := parseRoster(r.append(nil))
			if err != nil || len(r2.entries) != len(r.entries) {
				t.Fatalf("roster does not round-trip: %v", err)
			}
		}
		if d, err := parseData(body); err == nil {
			d2, err := parseData(d.append(nil))
			if err != nil || d2.site != d.site || d2.name != d.name || !bytes.Equal(d2.frame, d.frame) {
				t.Fatalf("data does not round-trip: %v", err)
			}
		}
		parseMember(body)
	})
}

// FuzzOpenKeyed: sealed input that is not the sender's never opens.
func FuzzOpenKeyed(f *testing.F) {
	k := meshkey.Key{1}
	keys := deriveKeys(meshkey.Keyring{Primary: k}.Derive("m"))
	f.Add(seal(nil, testHeader(), "s", []byte("body"), keys))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, body, err := open(b, "s", keys); err == nil && !bytes.Equal(body, []byte("body")) {
			t.Fatalf("a forged envelope opened: %q", body)
		}
	})
}
