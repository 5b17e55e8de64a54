// Package codec turns messages into framed bytes on a stream and back.
//
// The smallest use, with the registry of package message:
//
//	c := codec.NewBinary(message.Default)
//	buf, _ := c.AppendFrame(nil, &message.Identify{Username: "alice", Hostname: "box"})
//	msg, _, _ := c.NewDecoder(bytes.NewReader(buf)).Decode() // *message.Identify
//
// It knows nothing of sockets or goroutines: an encoder appends frames to a
// []byte, a decoder reads them from any io.Reader, however the bytes arrive
// (one at a time, or many frames per read).
//
// Three codecs share one interface (SPEC.md sections 2-5 give the bytes):
//
//   - Binary: compact frames [length][code][payload], at most 254 bytes
//     written, 2..255 read; the bytes of cable_car's byte messages. No
//     allocation on encode; one (the message) on decode.
//   - MsgPack: [uint32 length][msgpack ["Name", {fields}]], up to 4 GiB - 1,
//     1 MiB by default.
//   - JSON: one line ["Name",{fields}]\n per message, 1 MiB by default; the
//     bytes of cable_car's JSON messages.
//
// Decoders treat input as hostile: they never panic, never loop without
// input, and never hold more than their maximum frame, whatever a length
// prefix or a msgpack header claims. Their errors say whether the stream
// can go on (Recoverable).
package codec
