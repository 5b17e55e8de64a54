package main

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/lanmesh/lanmesh/codec"
	"github.com/lanmesh/lanmesh/message"
)

func runDemo(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := newFlags("demo", "Show lanmesh at work in this process, on loopback only, then exit.", stderr)
	if err := parse(fs, args); err != nil {
		return err
	}
	return demoCodecs(stdout)
}

// demoCodecs shows cable_car's messages in each of the three codecs, encoded
// and read back from a stream.
func demoCodecs(w io.Writer) error {
	msgs := []any{
		&message.Identify{Username: "alice", Hostname: "box"},
		message.Join{},
		message.Quit{},
	}
	fmt.Fprintln(w, "== codecs: cable_car's messages, encoded and decoded")
	for _, name := range codec.Names() {
		c, err := codec.New(name, message.Default)
		if err != nil {
			return err
		}
		var stream []byte
		for _, m := range msgs {
			before := len(stream)
			if stream, err = c.AppendFrame(stream, m); err != nil {
				return err
			}
			fmt.Fprintf(w, "%-8s %-10T %s\n", name, m, show(name, stream[before:]))
		}
		d := c.NewDecoder(bytes.NewReader(stream))
		for range msgs {
			m, size, err := d.Decode()
			if err != nil {
				return fmt.Errorf("decoding %s: %w", name, err)
			}
			fmt.Fprintf(w, "%-8s decoded %3d bytes -> %T %+v\n", name, size, m, m)
		}
	}
	return nil
}

func show(codecName string, frame []byte) string {
	if codecName == "json" {
		return fmt.Sprintf("%q", frame)
	}
	return fmt.Sprintf("% x", frame)
}
