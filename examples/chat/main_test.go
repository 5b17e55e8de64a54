package main

import (
	"testing"

	"github.com/lanmesh/lanmesh/codec"
	"github.com/lanmesh/lanmesh/message"
)

// TestChatLineFrame pins ChatLine's binary frame, which "lanmesh chat"
// shares: code 0x30, then the text.
func TestChatLineFrame(t *testing.T) {
	c, err := codec.New("binary", message.Default)
	if err != nil {
		t.Fatal(err)
	}
	frame, err := c.AppendFrame(nil, &ChatLine{Text: "hi"})
	if err != nil || string(frame) != "\x04\x30hi" {
		t.Fatalf("% x, %v", frame, err)
	}
	var back ChatLine
	if err := back.UnmarshalBinary(frame[2:]); err != nil || back.Text != "hi" {
		t.Fatalf("%+v, %v", back, err)
	}
}
