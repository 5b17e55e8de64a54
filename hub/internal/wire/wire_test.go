package wire

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

func testHeader() Header {
	return Header{
		Kind:    KindRequest,
		Sender:  uuid.MustParse("00112233-4455-6677-8899-aabbccddeeff"),
		Session: uuid.MustParse("ffeeddcc-bbaa-9988-7766-554433221100"),
		Start:   0x0102030405060708,
		Seq:     42,
	}
}

// TestHeaderGolden pins the header's bytes (SPEC.md section 13).
func TestHeaderGolden(t *testing.T) {
	h := testHeader()
	got := hex.EncodeToString(h.Append(nil))
	want := "01" + "02" + "00" + "00" + "0000000000000000" +
		"00112233445566778899aabbccddeeff" + "ffeeddccbbaa99887766554433221100" +
		"0102030405060708" + "000000000000002a"
	if got != want {
		t.Fatalf("header\n got %s\nwant %s", got, want)
	}
	if len(h.Append(nil)) != HeaderSize {
		t.Fatalf("header is %d bytes", len(h.Append(nil)))
	}
	p, err := ParseHeader(h.Append(nil))
	if err != nil || p != h {
		t.Fatalf("parse: %+v %v", p, err)
	}
}

func testKeys(t *testing.T) []Key {
	k, err := meshkey.Generate(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return DeriveKeys(meshkey.Keyring{Primary: k}.Derive("m"))
}

func TestSealOpen(t *testing.T) {
	keys := testKeys(t)
	body := []byte("the body")
	for _, tc := range []struct {
		Name string
		keys []Key
	}{{"unkeyed", nil}, {"keyed", keys}} {
		t.Run(tc.Name, func(t *testing.T) {
			env := Seal(nil, testHeader(), "subj", body, tc.keys)
			h, got, err := Open(env, "subj", tc.keys)
			if err != nil || !bytes.Equal(got, body) || h.Sealed != (tc.keys != nil) {
				t.Fatalf("open: %q %+v %v", got, h, err)
			}
			if tc.keys == nil {
				return
			}
			if bytes.Contains(env, body) {
				t.Fatal("body in the clear")
			}
			if _, _, err := Open(env, "other", tc.keys); !errors.Is(err, ErrOpen) {
				t.Fatalf("another subject: %v", err)
			}
			for i := range env {
				bad := bytes.Clone(env)
				bad[i] ^= 1
				if _, _, err := Open(bad, "subj", tc.keys); err == nil {
					t.Fatalf("a flipped bit at %d opened", i)
				}
			}
			if _, _, err := Open(env, "subj", nil); !errors.Is(err, ErrSealed) {
				t.Fatalf("sealed, no key: %v", err)
			}
			if _, _, err := Open(Seal(nil, testHeader(), "subj", body, nil), "subj", keys); !errors.Is(err, ErrUnsealed) {
				t.Fatalf("unsealed under a key: %v", err)
			}
			if _, _, err := Open(env, "subj", testKeys(t)); !errors.Is(err, ErrKeyID) {
				t.Fatalf("another key: %v", err)
			}
		})
	}
}

func TestParseHeaderRejects(t *testing.T) {
	th := testHeader()
	good := th.Append(nil)
	for _, tc := range []struct {
		Name string
		b    []byte
		want error
	}{
		{"short", good[:HeaderSize-1], ErrShort},
		{"version", append([]byte{2}, good[1:]...), ErrVersion},
		{"kind", append([]byte{1, 99}, good[2:]...), ErrKind},
		{"flags", append([]byte{1, 2, 4}, good[3:]...), ErrBody},
		{"reserved", append([]byte{1, 2, 0, 1}, good[4:]...), ErrBody},
		{"large", make([]byte, MaxEnvelope+1), ErrTooLarge},
	} {
		if _, err := ParseHeader(tc.b); !errors.Is(err, tc.want) {
			t.Errorf("%s: %v, want %v", tc.Name, err, tc.want)
		}
	}
	noSeq := testHeader()
	noSeq.Seq = 0
	if _, err := ParseHeader(noSeq.Append(nil)); !errors.Is(err, ErrBody) {
		t.Errorf("seq 0: %v", err)
	}
}

func TestBodies(t *testing.T) {
	d := DataBody{ReqID: 7, Site: "site", Name: "näme", Frame: []byte{3, 0x11, 'h', 'i'}}
	got, err := ParseData(d.Append(nil))
	if err != nil || got.ReqID != 7 || got.Site != "site" || got.Name != "näme" || !bytes.Equal(got.Frame, d.Frame) {
		t.Fatalf("data: %+v %v", got, err)
	}
	if _, err := ParseData(DataBody{Name: "x"}.appendTo()); err == nil {
		t.Fatal("data without a site parsed")
	}
	m := MemberBody{Site: "s", Name: "n"}
	if got, err := ParseMember(m.Append(nil)); err != nil || got != m {
		t.Fatalf("member: %+v %v", got, err)
	}
	if _, err := ParseMember(append(m.Append(nil), 0)); err == nil {
		t.Fatal("member with trailing bytes parsed")
	}
	r := RosterBody{Site: "s", Entries: []RosterEntry{{ID: uuid.New(), Session: uuid.New(), Name: "one"}, {ID: uuid.New(), Session: uuid.New(), Name: ""}}}
	gr, err := ParseRoster(r.Append(nil))
	if err != nil || gr.Site != "s" || len(gr.Entries) != 2 || gr.Entries[0] != r.Entries[0] || gr.Entries[1] != r.Entries[1] {
		t.Fatalf("roster: %+v %v", gr, err)
	}
	// A long name is cut at a rune boundary, to 255 bytes at most.
	long := strings.Repeat("é", 200)
	got2, err := ParseData((&DataBody{Site: "s", Name: long}).Append(nil))
	if err != nil || len(got2.Name) > MaxText || !strings.HasPrefix(long, got2.Name) {
		t.Fatalf("long name: %d bytes, %v", len(got2.Name), err)
	}
	// Bad UTF-8, a count over the bound, a short entry, a nil id.
	bad := [][]byte{
		{1, 0xff, 0, 0},
		append(AppendText(nil, "s"), 0x01, 0x01),
		append(AppendText(nil, "s"), 0, 1, 1, 2, 3),
		append(append(AppendText(nil, "s"), 0, 1), make([]byte, 33)...),
	}
	for i, b := range bad {
		if _, err := ParseRoster(b); err == nil {
			t.Errorf("bad roster %d parsed", i)
		}
	}
}

// appendTo is append for a value, for the tests.
func (d DataBody) appendTo() []byte { return d.Append(nil) }

func TestWindow(t *testing.T) {
	var w Window
	s1, s2 := uuid.New(), uuid.New()
	for _, tc := range []struct {
		Session uuid.UUID
		Start   int64
		Seq     uint64
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
		{s2, 20, 1000 - WindowBits + 1, true},
		{s2, 20, 1000 - WindowBits, false},
	} {
		if got := w.Accept(tc.Session, tc.Start, tc.Seq); got != tc.want {
			t.Fatalf("accept(%v, %d, %d) = %v, want %v", tc.Session == s1, tc.Start, tc.Seq, got, tc.want)
		}
	}
}

func TestReplayTableBounded(t *testing.T) {
	var rt ReplayTable
	s := uuid.New()
	for i := range MaxWindows + 10 {
		rt.Accept(uuid.New(), ClassData, s, int64(i), 1)
	}
	if len(rt.byKey) > MaxWindows {
		t.Fatalf("%d windows", len(rt.byKey))
	}
}

// FuzzOpen: no input makes open or the body parsers panic, and what opens
// unkeyed parses back to the same header.
func FuzzOpen(f *testing.F) {
	f.Add(Seal(nil, testHeader(), "s", (&DataBody{Site: "a", Name: "b", Frame: []byte{1}}).Append(nil), nil))
	f.Add(Seal(nil, testHeader(), "s", (&RosterBody{Site: "a", Entries: []RosterEntry{{ID: uuid.New()}}}).Append(nil), nil))
	f.Add(Seal(nil, testHeader(), "s", (&MemberBody{Site: "a", Name: "b"}).Append(nil), nil))
	f.Fuzz(func(t *testing.T, b []byte) {
		h, body, err := Open(b, "s", nil)
		if err != nil {
			return
		}
		if !bytes.Equal(h.Append(nil), b[:HeaderSize]) {
			t.Fatalf("header does not round-trip")
		}
		if r, err := ParseRoster(body); err == nil {
			r2, err := ParseRoster(r.Append(nil))
			if err != nil || len(r2.Entries) != len(r.Entries) {
				t.Fatalf("roster does not round-trip: %v", err)
			}
		}
		if d, err := ParseData(body); err == nil {
			d2, err := ParseData(d.Append(nil))
			if err != nil || d2.Site != d.Site || d2.Name != d.Name || !bytes.Equal(d2.Frame, d.Frame) {
				t.Fatalf("data does not round-trip: %v", err)
			}
		}
		ParseMember(body)
	})
}

// FuzzOpenKeyed: sealed input that is not the sender's never opens.
func FuzzOpenKeyed(f *testing.F) {
	k := meshkey.Key{1}
	keys := DeriveKeys(meshkey.Keyring{Primary: k}.Derive("m"))
	f.Add(Seal(nil, testHeader(), "s", []byte("body"), keys))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, body, err := Open(b, "s", keys); err == nil && !bytes.Equal(body, []byte("body")) {
			t.Fatalf("a forged envelope opened: %q", body)
		}
	})
}
