package lane

import (
	"bytes"
	"encoding/hex"
	"errors"
	"reflect"
	"testing"
)

func goldenDatagram() *Datagram {
	return &Datagram{
		Header: Header{Token: tokB, Counter: 0x0102030405060708},
		Messages: []Message{
			// A message's Seq is its datagram's counter, low 32 bits.
			{Kind: Sequenced, Channel: 3, Seq: 0x05060708, Payload: []byte{0x04, 0x07, 0xAA, 0xBB}},
			{Kind: Unreliable, Channel: 0, Seq: 0x05060708, Payload: []byte{}},
			{Kind: Ping, Seq: 9, Payload: []byte{}},
			{Kind: Pong, Seq: 8, Payload: []byte{0, 0, 0x03, 0xE8}},
			{Kind: Ack, Seq: 7, Payload: []byte{0, 0, 0, 0xFA, 0, 0, 0x04, 0}},
		},
	}
}

// The golden bytes are the example of SPEC.md section 11.8, byte for byte.
const goldenHex = "02" + "00" + "b1b2b3b4b5b6b7b8" + "0102030405060708" +
	"01" + "03" + "04" + "0407aabb" +
	"02" + "00" + "00" +
	"03" + "00000009" +
	"04" + "00000008" + "000003e8" +
	"05" + "00000007" + "000000fa" + "00000400"

func TestDatagramGolden(t *testing.T) {
	b, err := goldenDatagram().AppendBinary(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(b); got != goldenHex {
		t.Fatalf("bytes\n got %s\nwant %s", got, goldenHex)
	}
	var d Datagram
	if err := ParseDatagram(b, &d); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(&d, goldenDatagram()) {
		t.Fatalf("parsed %+v\nwant %+v", d, goldenDatagram())
	}
	if tok, ok := PeekToken(b); !ok || tok != tokB {
		t.Fatalf("PeekToken = %x, %v", tok, ok)
	}
}

func TestDatagramEveryTruncation(t *testing.T) {
	b, _ := goldenDatagram().AppendBinary(nil)
	// Cutting at an item boundary leaves a shorter, valid datagram.
	boundaries := map[int]bool{HeaderSize + 7: true, HeaderSize + 10: true, HeaderSize + 15: true, HeaderSize + 24: true}
	for n := 0; n < len(b); n++ {
		var d Datagram
		err := ParseDatagram(b[:n], &d)
		switch {
		case boundaries[n]:
			if err != nil {
				t.Errorf("cut at item boundary %d: %v", n, err)
			}
		case n == HeaderSize:
			if !errors.Is(err, ErrMalformed) {
				t.Errorf("header only: %v, want ErrMalformed (no items)", err)
			}
		case !errors.Is(err, ErrTruncated):
			t.Errorf("cut at %d of %d: %v, want ErrTruncated", n, len(b), err)
		}
	}
}

func TestDatagramBadInput(t *testing.T) {
	good, _ := goldenDatagram().AppendBinary(nil)
	edit := func(f func(b []byte)) []byte {
		b := bytes.Clone(good)
		f(b)
		return b
	}
	item := HeaderSize // the first item
	withItem := func(item ...byte) []byte {
		return append(bytes.Clone(good[:HeaderSize]), item...)
	}
	tests := []struct {
		name string
		b    []byte
		want error
	}{
		{"version 0", edit(func(b []byte) { b[0] = 0 }), ErrVersion},
		{"version 1", edit(func(b []byte) { b[0] = 1 }), ErrVersion},
		{"unknown flag", edit(func(b []byte) { b[1] = 0x02 }), ErrMalformed},
		{"sealed flag", edit(func(b []byte) { b[1] = FlagSealed }), ErrMode},
		{"item kind 0", edit(func(b []byte) { b[item] = 0 }), ErrMalformed},
		{"item kind 6", edit(func(b []byte) { b[item] = 6 }), ErrMalformed},
		{"length past the end", edit(func(b []byte) { b[item+2] = 0x7F }), ErrTruncated},
		{"length ends past the end", withItem(1, 0, 0x80), ErrTruncated},
		{"length not minimal", withItem(1, 0, 0x84, 0x00, 1, 2, 3, 4), ErrMalformed},
		{"length over 65535", withItem(1, 0, 0x80, 0x80, 0x04), ErrMalformed},
		{"length of 11 bytes", withItem(1, 0, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x80, 0x01), ErrMalformed},
		{"a message header cut", withItem(2, 0), ErrTruncated},
		{"ping cut", withItem(3, 0, 0, 0), ErrTruncated},
		{"ack cut", good[:len(good)-1], ErrTruncated},
		{"header only", good[:HeaderSize], ErrMalformed},
		{"empty", nil, ErrTruncated},
	}
	for _, tt := range tests {
		var d Datagram
		if err := ParseDatagram(tt.b, &d); !errors.Is(err, tt.want) {
			t.Errorf("%s: %v, want %v", tt.name, err, tt.want)
		}
	}
}

func TestAppendRefuses(t *testing.T) {
	for _, d := range []*Datagram{
		{},
		{Header: Header{Flags: FlagSealed}, Messages: []Message{{Kind: Unreliable}}},
		{Header: Header{Flags: 0x80}, Messages: []Message{{Kind: Unreliable}}},
		{Messages: []Message{{Kind: 7}}},
		{Messages: []Message{{Kind: Ping, Channel: 1}}},
		{Messages: []Message{{Kind: Pong}}},
		{Messages: []Message{{Kind: Ack, Payload: make([]byte, 4)}}},
		{Messages: []Message{{Kind: Ack, Channel: 2, Payload: make([]byte, 8)}}},
		{Messages: []Message{{Kind: Unreliable, Payload: make([]byte, 0x10000)}}},
	} {
		dst := []byte{1, 2}
		out, err := d.AppendBinary(dst)
		if err == nil || len(out) != 2 {
			t.Errorf("%+v: appended %d bytes, err %v; want a refusal that writes nothing", d.Header, len(out)-2, err)
		}
	}
}
