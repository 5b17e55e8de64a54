package discovery

import (
	"bytes"
	"encoding/hex"
	"errors"
	"strings"
	"testing"

	"github.com/google/uuid"
)

var goldenBeacon = Beacon{
	Flags:    FlagQuery,
	ID:       uuid.MustParse("00112233-4455-6677-8899-aabbccddeeff"),
	Instance: uuid.MustParse("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0"),
	Port:     7946,
	Mesh:     "demo",
	Name:     "n1",
}

// goldenHex is goldenBeacon on the wire, field by field as in SPEC.md section 7.
const goldenHex = "4c4d5348" + // magic "LMSH"
	"01" + // version
	"01" + // flags: query
	"00112233445566778899aabbccddeeff" + // node id
	"0f1e2d3c4b5a69788796a5b4c3d2e1f0" + // instance id
	"1f0a" + // port 7946
	"04" + "64656d6f" + // mesh "demo"
	"02" + "6e31" // name "n1"

func TestBeaconGolden(t *testing.T) {
	want, _ := hex.DecodeString(goldenHex)
	got, err := goldenBeacon.AppendBinary([]byte("prefix"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got[len("prefix"):], want) || string(got[:6]) != "prefix" {
		t.Fatalf("AppendBinary =\n%x\nwant\n%x", got, want)
	}
	b, err := ParseBeacon(want)
	if err != nil {
		t.Fatal(err)
	}
	if b != goldenBeacon {
		t.Fatalf("ParseBeacon = %+v, want %+v", b, goldenBeacon)
	}
}

func TestBeaconMaxLen(t *testing.T) {
	b := goldenBeacon
	b.Mesh = strings.Repeat("m", MaxMeshLen)
	b.Name = strings.Repeat("é", MaxNameLen/2) // 254 bytes
	p, err := b.AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	if len(p) > MaxBeaconLen {
		t.Fatalf("largest beacon is %d bytes, over %d", len(p), MaxBeaconLen)
	}
	if got, err := ParseBeacon(p); err != nil || got != b {
		t.Fatalf("round trip of the largest beacon: %v", err)
	}
}

func TestParseBeaconRejects(t *testing.T) {
	good, _ := hex.DecodeString(goldenHex)
	mut := func(f func(p []byte) []byte) []byte {
		return f(bytes.Clone(good))
	}
	tests := []struct {
		name string
		p    []byte
		want error
	}{
		{"empty", nil, ErrBeaconMagic},
		{"dns packet", []byte{0x12, 0x34, 0x01, 0x00, 0x00, 0x01}, ErrBeaconMagic},
		{"magic only", []byte("LMSH"), ErrBeaconLength},
		{"wrong magic", mut(func(p []byte) []byte { p[0] = 'X'; return p }), ErrBeaconMagic},
		{"version 0", mut(func(p []byte) []byte { p[4] = 0; return p }), ErrBeaconVersion},
		{"version 2", mut(func(p []byte) []byte { p[4] = 2; return p }), ErrBeaconVersion},
		{"unknown flag", mut(func(p []byte) []byte { p[5] |= 0x80; return p }), ErrBeaconFlags},
		{"nil node id", mut(func(p []byte) []byte { clear(p[6:22]); return p }), ErrBeaconNodeID},
		{"nil instance", mut(func(p []byte) []byte { clear(p[22:38]); return p }), ErrBeaconInstance},
		{"zero port", mut(func(p []byte) []byte { p[38], p[39] = 0, 0; return p }), ErrBeaconPort},
		{"truncated", good[:len(good)-1], ErrBeaconLength},
		{"no name length", good[:len(good)-3], ErrBeaconLength},
		{"trailing byte", append(bytes.Clone(good), 0), ErrBeaconLength},
		{"mesh overruns", mut(func(p []byte) []byte { p[40] = 200; return p }), ErrBeaconLength},
		{"empty mesh", mut(func(p []byte) []byte { return append(append(p[:40:40], 0, 2), "n1"...) }), ErrBeaconLength},
		{"mesh too long", mut(func(p []byte) []byte {
			p = append(p[:40:40], MaxMeshLen+1)
			p = append(p, strings.Repeat("m", MaxMeshLen+1)...)
			return append(p, 0)
		}), ErrBeaconLength},
		{"bad utf8 name", mut(func(p []byte) []byte { p[len(p)-1] = 0xff; return p }), ErrBeaconUTF8},
		{"bad utf8 mesh", mut(func(p []byte) []byte { p[41] = 0xc3; return p }), ErrBeaconUTF8},
		{"oversized", append(bytes.Clone(good), make([]byte, MaxBeaconLen)...), ErrBeaconLength},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := ParseBeacon(tt.p)
			if !errors.Is(err, tt.want) {
				t.Fatalf("ParseBeacon: err %v, want %v", err, tt.want)
			}
		})
	}
}

func TestAppendBinaryRefusesInvalid(t *testing.T) {
	for _, b := range []Beacon{
		{},
		func() Beacon { b := goldenBeacon; b.Port = 0; return b }(),
		func() Beacon { b := goldenBeacon; b.Mesh = ""; return b }(),
		func() Beacon { b := goldenBeacon; b.Name = strings.Repeat("x", MaxNameLen+1); return b }(),
		func() Beacon { b := goldenBeacon; b.Flags = 0x40; return b }(),
	} {
		dst := []byte("keep")
		got, err := b.AppendBinary(dst)
		if err == nil || string(got) != "keep" {
			t.Errorf("AppendBinary(%+v) = %q, %v; want error and dst unchanged", b, got, err)
		}
	}
}

func FuzzParseBeacon(f *testing.F) {
	good, _ := hex.DecodeString(goldenHex)
	f.Add(good)
	leaving := goldenBeacon
	leaving.Flags = FlagLeaving
	lp, _ := leaving.AppendBinary(nil)
	f.Add(lp)
	f.Add(good[:20])
	f.Add(append(bytes.Clone(good), 1, 2, 3))
	f.Add([]byte("LMSH\x01"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, p []byte) {
		b, err := ParseBeacon(p)
		if err != nil {
			return
		}
		out, err := b.AppendBinary(nil)
		if err != nil {
			t.Fatalf("parsed beacon does not encode: %v", err)
		}
		if !bytes.Equal(out, p) {
			t.Fatalf("re-encoding differs:\n%x\n%x", out, p)
		}
		b2, err := ParseBeacon(out)
		if err != nil || b2 != b {
			t.Fatalf("second parse: %+v, %v; want %+v", b2, err, b)
		}
	})
}
