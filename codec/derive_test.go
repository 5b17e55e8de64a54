package codec_test

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"math"
	"reflect"
	"strings"
	"testing"

	"github.com/lanmesh/lanmesh/codec"
)

// Shapes of message a game writer registers, none with code of its own.
type (
	pos struct{ X, Y float32 }

	vec3  struct{ X, Y, Z float64 }
	color [3]uint8

	inner struct {
		ID    uint16
		Alive bool
	}
	Embedded struct{ Tick uint32 }

	// every kind the derived form carries, in an order that makes offsets
	// and padding interesting
	everything struct {
		B     bool
		I8    int8
		I16   int16
		I32   int32
		I64   int64
		U8    uint8
		U16   uint16
		U32   uint32
		U64   uint64
		I     int
		U     uint
		F32   float32
		F64   float64
		C64   complex64
		C128  complex128
		Name  string
		Raw   []byte
		Hash  [4]byte
		Grid  [2][3]int16
		Pair  [2]inner
		Tags  [2]string
		Inner inner
		Embedded
		Color  color
		Stamp  stamp
		hidden int    // not exported: not carried
		Skip   string `lanmesh:"-"`
		Skip2  int    `json:"-"`
	}

	// stamp has a hand-written form, which wins inside a derived one.
	stamp struct{ ms uint32 }
)

func (s stamp) AppendBinary(b []byte) ([]byte, error) {
	return binary.BigEndian.AppendUint32(b, s.ms), nil
}

func (s *stamp) UnmarshalBinary(b []byte) error {
	if len(b) != 4 {
		return fmt.Errorf("stamp: %d bytes", len(b))
	}
	s.ms = binary.BigEndian.Uint32(b)
	return nil
}

func derive[T any](t testing.TB) *codec.BinaryForm {
	t.Helper()
	f, err := codec.DeriveBinary(reflect.TypeFor[T]())
	if err != nil {
		t.Fatal(err)
	}
	return f
}

func sampleEverything() everything {
	return everything{
		B: true, I8: -2, I16: -300, I32: -70000, I64: math.MinInt64, U8: 250, U16: 65000, U32: 4e9,
		U64: math.MaxUint64, I: -5, U: 7, F32: 1.5, F64: -0.25, C64: complex(1, -1), C128: complex(2.5, 3),
		Name: "alice", Raw: []byte{9, 8, 7}, Hash: [4]byte{1, 2, 3, 4},
		Grid: [2][3]int16{{1, -2, 3}, {-4, 5, -6}}, Pair: [2]inner{{1, true}, {2, false}},
		Tags: [2]string{"", "red"}, Inner: inner{ID: 77, Alive: true}, Embedded: Embedded{Tick: 99},
		Color: color{255, 128, 0}, Stamp: stamp{ms: 123456},
	}
}

func TestDeriveRoundTrips(t *testing.T) {
	check := func(name string, f *codec.BinaryForm, in, out any) {
		t.Helper()
		b, err := f.Append(nil, in)
		if err != nil {
			t.Fatalf("%s: append: %v", name, err)
		}
		if err := f.Unmarshal(b, out); err != nil {
			t.Fatalf("%s: unmarshal %x: %v", name, b, err)
		}
		got := reflect.ValueOf(out).Elem().Interface()
		want := reflect.ValueOf(in)
		if want.Kind() == reflect.Pointer {
			want = want.Elem()
		}
		if !reflect.DeepEqual(got, want.Interface()) {
			t.Fatalf("%s: round trip\n got %+v\nwant %+v", name, got, want.Interface())
		}
		again, _ := f.Append(nil, out)
		if !bytes.Equal(again, b) {
			t.Fatalf("%s: second append differs", name)
		}
	}
	p := pos{X: 1.25, Y: -3}
	check("pos by pointer", derive[pos](t), &p, new(pos))
	check("pos by value", derive[pos](t), p, new(pos))
	check("vec3", derive[vec3](t), &vec3{math.Inf(1), math.SmallestNonzeroFloat64, -0}, new(vec3))
	e := sampleEverything()
	want := e
	want.hidden, want.Skip, want.Skip2 = 0, "", 0
	e.hidden, e.Skip, e.Skip2 = 5, "not sent", 6
	var out everything
	f := derive[everything](t)
	b, err := f.Append(nil, &e)
	if err != nil {
		t.Fatal(err)
	}
	if err := f.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, want) {
		t.Fatalf("everything:\n got %+v\nwant %+v", out, want)
	}
	check("zero everything", f, &everything{}, new(everything))
	check("long strings", f, &everything{Name: strings.Repeat("n", 80), Raw: bytes.Repeat([]byte{1}, 40)}, new(everything))
	// NaN keeps its bits.
	nan := pos{X: float32(math.NaN())}
	b, _ = derive[pos](t).Append(nil, &nan)
	var back pos
	derive[pos](t).Unmarshal(b, &back)
	if math.Float32bits(back.X) != math.Float32bits(nan.X) {
		t.Fatal("NaN bits changed")
	}
	if f.Fixed() || !derive[pos](t).Fixed() || derive[pos](t).Size() != 8 {
		t.Fatalf("Fixed/Size: %v %v %d", f.Fixed(), derive[pos](t).Fixed(), derive[pos](t).Size())
	}
	if derive[pos](t) != derive[pos](t) {
		t.Fatal("a type derived twice")
	}
}

// The layout is SPEC.md (section 2, derived payloads)'s example, byte for byte.
func TestDeriveGolden(t *testing.T) {
	e := sampleEverything()
	b, err := derive[everything](t).Append(nil, &e)
	if err != nil {
		t.Fatal(err)
	}
	want := strings.Join([]string{
		"01",                               // B
		"fe",                               // I8 -2
		"fed4",                             // I16 -300
		"fffeee90",                         // I32 -70000
		"8000000000000000",                 // I64 min
		"fa",                               // U8 250
		"fde8",                             // U16 65000
		"ee6b2800",                         // U32 4e9
		"ffffffffffffffff",                 // U64 max
		"fffffffffffffffb",                 // I -5, 8 bytes
		"0000000000000007",                 // U 7, 8 bytes
		"3fc00000",                         // F32 1.5
		"bfd0000000000000",                 // F64 -0.25
		"3f800000bf800000",                 // C64 1-1i
		"40040000000000004008000000000000", // C128 2.5+3i
		"05616c696365",                     // Name "alice"
		"03090807",                         // Raw
		"01020304",                         // Hash
		"0001fffe0003fffc0005fffa",         // Grid
		"000101" + "000200",                // Pair
		"00" + "03726564",                  // Tags "", "red"
		"004d01",                           // Inner {77, true}
		"00000063",                         // Embedded.Tick 99
		"ff8000",                           // Color
		"040001e240",                       // Stamp: hand-written, length-prefixed
	}, "")
	if got := hex.EncodeToString(b); got != want {
		t.Fatalf("bytes\n got %s\nwant %s", got, want)
	}
	if p, _ := derive[pos](t).Append(nil, &pos{X: 1, Y: -2}); hex.EncodeToString(p) != "3f800000c0000000" {
		t.Fatalf("pos: %x", p)
	}
}

func TestDeriveRefuses(t *testing.T) {
	type withMap struct{ Name map[string]int }
	type withPtr struct{ Next *withPtr }
	type withIface struct{ V any }
	type withInts struct{ List []int }
	type withChan struct{ C chan int }
	type nested struct{ Inner struct{ M map[int]int } }
	type tooBig struct{ Data [253]byte }
	type tooBigArray struct{ Pts [40]vec3 }
	type withFunc struct{ F func() }
	for _, tt := range []struct {
		t    reflect.Type
		want string
	}{
		{reflect.TypeFor[withMap](), "withMap.Name is a map: give withMap AppendBinary/UnmarshalBinary, or use the msgpack codec"},
		{reflect.TypeFor[withPtr](), "withPtr.Next is a pointer"},
		{reflect.TypeFor[withIface](), "withIface.V is an interface"},
		{reflect.TypeFor[withInts](), "withInts.List is a slice of int"},
		{reflect.TypeFor[withChan](), "withChan.C is a chan"},
		{reflect.TypeFor[withFunc](), "withFunc.F is a func"},
		{reflect.TypeFor[nested](), "nested.Inner.M is a map"},
		{reflect.TypeFor[tooBig](), "needs at least 253 bytes, a binary frame holds 252"},
		{reflect.TypeFor[tooBigArray](), "tooBigArray.Pts is an array of 40 elements of 24 bytes"},
		{reflect.TypeFor[int](), "int is not a struct type"},
	} {
		_, err := codec.DeriveBinary(tt.t)
		if !errors.Is(err, codec.ErrNoBinaryForm) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("%v: %v, want ErrNoBinaryForm saying %q", tt.t, err, tt.want)
		}
	}
}

func TestDeriveBadInput(t *testing.T) {
	f := derive[everything](t)
	e := sampleEverything()
	good, _ := f.Append(nil, &e)
	orig := sampleEverything()
	// Every truncation, and trailing bytes, are malformed and leave v as it was.
	for n := 0; n < len(good); n++ {
		v := sampleEverything()
		if err := f.Unmarshal(good[:n], &v); !errors.Is(err, codec.ErrMalformed) {
			t.Fatalf("cut to %d: %v", n, err)
		}
		if !reflect.DeepEqual(v, orig) {
			t.Fatalf("cut to %d changed the value", n)
		}
	}
	v := sampleEverything()
	if err := f.Unmarshal(append(bytes.Clone(good), 0), &v); !errors.Is(err, codec.ErrMalformed) {
		t.Fatalf("trailing byte: %v", err)
	}
	bad := bytes.Clone(good)
	bad[0] = 2 // B: a bool of 2
	if err := f.Unmarshal(bad, &v); !errors.Is(err, codec.ErrMalformed) {
		t.Fatalf("bool 2: %v", err)
	}
	bad = bytes.Clone(good)
	bad[len(bad)-5] = 3 // Stamp's length: its UnmarshalBinary refuses 3 bytes
	bad = bad[:len(bad)-1]
	if err := f.Unmarshal(bad, &v); !errors.Is(err, codec.ErrMalformed) || !reflect.DeepEqual(v, orig) {
		t.Fatalf("hand-written field refusing: %v", err)
	}
	// Fixed forms: wrong sizes.
	p := derive[pos](t)
	if err := p.Unmarshal(make([]byte, 7), new(pos)); !errors.Is(err, codec.ErrMalformed) {
		t.Fatalf("short pos: %v", err)
	}
	// Wrong targets.
	if err := p.Unmarshal(make([]byte, 8), pos{}); err == nil {
		t.Fatal("unmarshal into a value")
	}
	if err := p.Unmarshal(make([]byte, 8), (*pos)(nil)); err == nil {
		t.Fatal("unmarshal into nil")
	}
	if _, err := p.Append(nil, &vec3{}); err == nil {
		t.Fatal("append of another type")
	}
	// Too long to send: nothing appended.
	dst := []byte{0xAA}
	for _, e := range []everything{{Name: strings.Repeat("x", 256)}, {Raw: make([]byte, 256)}, {Name: strings.Repeat("x", 200), Raw: make([]byte, 200)}} {
		out, err := f.Append(dst, &e)
		if !errors.Is(err, codec.ErrFrameTooLarge) || len(out) != 1 {
			t.Fatalf("too long: %v, %d bytes", err, len(out))
		}
	}
}

func TestHandWritten(t *testing.T) {
	if !codec.HandWritten(reflect.TypeFor[stamp]()) || !codec.HandWritten(reflect.TypeFor[move]()) {
		t.Fatal("hand-written forms not seen")
	}
	if codec.HandWritten(reflect.TypeFor[pos]()) {
		t.Fatal("pos has no hand-written form")
	}
}

func TestDeriveAllocs(t *testing.T) {
	if testing.Short() {
		t.Skip("allocation counts are checked without -short")
	}
	p := pos{X: 1, Y: 2}
	var boxed any = p // a value, boxed once, as a caller holding an any would
	e := sampleEverything()
	fp, fe := derive[pos](t), derive[everything](t)
	buf := make([]byte, 0, 256)
	for _, c := range []struct {
		name string
		max  float64
		f    func()
	}{
		{"append pos pointer", 0, func() { buf, _ = fp.Append(buf[:0], &p) }},
		{"append pos value", 0, func() { buf, _ = fp.Append(buf[:0], boxed) }},
		{"append everything", 0, func() { buf, _ = fe.Append(buf[:0], &e) }},
	} {
		if n := testing.AllocsPerRun(200, c.f); n > c.max {
			t.Errorf("%s: %v allocs, want %v", c.name, n, c.max)
		}
	}
	pb, _ := fp.Append(nil, &p)
	var out pos
	if n := testing.AllocsPerRun(200, func() { fp.Unmarshal(pb, &out) }); n != 0 {
		t.Errorf("unmarshal pos: %v allocs, want 0", n)
	}
	// Strings and byte slices share one block. (The hand-written Stamp
	// field's check adds its own scratch value, so it is left out here.)
	type named struct {
		ID   uint32
		Name string
		Team string
		Raw  []byte
	}
	fn := derive[named](t)
	nb, _ := fn.Append(nil, &named{1, "bob", "red", []byte{1}})
	var nout named
	if n := testing.AllocsPerRun(200, func() { fn.Unmarshal(nb, &nout) }); n != 1 {
		t.Errorf("unmarshal named: %v allocs, want 1", n)
	}
	// And through a fresh message, as the codec's decoder would: the
	// message itself, plus its strings' block.
	if n := testing.AllocsPerRun(200, func() { fp.Unmarshal(pb, new(pos)) }); n > 1 {
		t.Errorf("decode a new pos: %v allocs, want at most 1", n)
	}
}

// FuzzDerived: decoding any bytes never panics; what decodes re-encodes to
// the same bytes (the layout has one encoding), and decodes again equal.
func FuzzDerived(f *testing.F) {
	fe := derive[everything](f)
	e := sampleEverything()
	b, _ := fe.Append(nil, &e)
	f.Add(b)
	z, _ := fe.Append(nil, &everything{})
	f.Add(z)
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		var v everything
		if err := fe.Unmarshal(data, &v); err != nil {
			if !errors.Is(err, codec.ErrMalformed) {
				t.Fatalf("error %v does not wrap ErrMalformed", err)
			}
			return
		}
		again, err := fe.Append(nil, &v)
		if err != nil {
			t.Fatalf("decoded but does not encode: %v", err)
		}
		if !bytes.Equal(again, data) {
			t.Fatalf("re-encoded\n%x\nfrom\n%x", again, data)
		}
		// Compared as bytes: a NaN is not DeepEqual to itself.
		var w everything
		if err := fe.Unmarshal(again, &w); err != nil {
			t.Fatalf("second decode: %v", err)
		}
		if third, _ := fe.Append(nil, &w); !bytes.Equal(third, again) {
			t.Fatalf("second decode gave another value")
		}
	})
}

// A game's position: derived, beside the same message written by hand
// (move, in helpers_test.go, is the hand-written one).
type derivedMove struct {
	Player uint8
	X, Y   int16
	Seq    uint32
	Pad    [21]byte
}

func BenchmarkDerived(b *testing.B) {
	fd := derive[derivedMove](b)
	dm := &derivedMove{Player: 1, X: 100, Y: -100, Seq: 42}
	hm := &move{Player: 1, X: 100, Y: -100, Seq: 42}
	buf := make([]byte, 0, 256)
	b.Run("append/derived", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf, _ = fd.Append(buf[:0], dm)
		}
	})
	b.Run("append/hand", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			buf, _ = hm.AppendBinary(buf[:0])
		}
	})
	payload, _ := fd.Append(nil, dm)
	b.Run("unmarshal/derived", func(b *testing.B) {
		b.ReportAllocs()
		var out derivedMove
		for b.Loop() {
			fd.Unmarshal(payload, &out)
		}
	})
	b.Run("unmarshal/hand", func(b *testing.B) {
		b.ReportAllocs()
		var out move
		for b.Loop() {
			out.UnmarshalBinary(payload)
		}
	})
	type chatMsg struct {
		From, Text string
	}
	fc := derive[chatMsg](b)
	cm := &chatMsg{From: "alice", Text: "hello there, how goes the game?"}
	cp, _ := fc.Append(nil, cm)
	b.Run("unmarshal-strings/derived", func(b *testing.B) {
		b.ReportAllocs()
		var out chatMsg
		for b.Loop() {
			fc.Unmarshal(cp, &out)
		}
	})
	hc := &chat{From: "alice", Text: "hello there, how goes the game?"}
	hp, _ := hc.AppendBinary(nil)
	b.Run("unmarshal-strings/hand", func(b *testing.B) {
		b.ReportAllocs()
		var out chat
		for b.Loop() {
			out.UnmarshalBinary(hp)
		}
	})
}
