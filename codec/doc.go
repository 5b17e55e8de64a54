// Package codec turns messages into framed bytes on a stream and back. It
// knows nothing of sockets or goroutines: an encoder appends frames to a
// []byte, a decoder reads them from any io.Reader, however the bytes arrive
// (one at a time, or many frames per read).
//
// Three codecs share one interface (see SPEC.md at the repository root for the
// bytes):
//
//   - Binary: cable_car's compact frames [length][code][payload], at most 254
//     bytes written, 2..255 read. No allocation on encode; one (the message)
//     on decode.
//   - MsgPack: [uint32 length][msgpack ["Name", {fields}]], up to 4 GiB - 1,
//     1 MiB by default.
//   - JSON: cable_car's lines ["Name",{fields}]\n, 1 MiB by default.
//
// Decoders treat input as hostile: they never panic, never loop without
// input, and never hold more than their maximum frame, whatever a length
// prefix or a msgpack header claims.
//
// The smallest use, with the registry of package message:
//
//	c := codec.NewBinary(message.Default)
//	buf, _ := c.AppendFrame(nil, &message.Identify{Username: "alice", Hostname: "box"})
//	msg, _, _ := c.NewDecoder(bytes.NewReader(buf)).Decode() // *message.Identify
package codec
