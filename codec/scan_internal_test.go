package codec

import (
	"bytes"
	"testing"

	"github.com/vmihailenco/msgpack/v5"
)

// FuzzScanMsgPack checks the scanner against the msgpack library: whatever
// the scanner accepts, the library must be able to skip exactly.
func FuzzScanMsgPack(f *testing.F) {
	for _, v := range []any{nil, 1, -1, 1 << 40, "s", []byte{1, 2}, []any{1, "a", map[string]any{"k": []int{1}}}, 1.5, float32(2), true} {
		b, _ := msgpack.Marshal(v)
		f.Add(b)
	}
	f.Add([]byte{0xc7, 0x01, 0x05, 0x00})
	f.Add([]byte{0xd8, 0x01, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0})
	f.Fuzz(func(t *testing.T, body []byte) {
		if err := scanMsgPack(body, DefaultMaxDepth); err != nil {
			return
		}
		r := bytes.NewReader(body)
		d := msgpack.NewDecoder(r)
		if err := d.Skip(); err != nil {
			t.Fatalf("scanner accepted %x, library failed: %v", body, err)
		}
		if r.Len() != 0 {
			t.Fatalf("scanner accepted %x, library left %d bytes", body, r.Len())
		}
	})
}

func TestScanMsgPackDepth(t *testing.T) {
	body := append(bytes.Repeat([]byte{0x91}, 10), 0xc0)
	if err := scanMsgPack(body, 10); err != nil {
		t.Fatalf("depth 10 at limit 10: %v", err)
	}
	if err := scanMsgPack(body, 9); err == nil {
		t.Fatal("depth 10 at limit 9: accepted")
	}
	if err := scanMsgPack(append(bytes.Repeat([]byte{0x91}, 200), 0xc0), 100); err == nil {
		t.Fatal("depth 200 at limit 100: accepted")
	}
}
