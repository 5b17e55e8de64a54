// Package mesh owns links and delivery: the transports that carry bytes
// (TCP, and an in-memory network for tests and prototypes), the handshake
// that opens a link, the Link that frames, batches, pings and closes, the
// Messenger, the pumped API a game loop drives over one link, and the Node,
// which finds every peer of its mesh (package discovery), links to each of
// them directly, and offers the same pump over all of them.
//
// # A node
//
//	cfg := mesh.DefaultNodeConfig()
//	cfg.Mesh = "mygame"
//	n, err := mesh.NewNode(cfg)
//	if err != nil { ... }
//	defer n.Close()
//	for running { // the game loop; nothing here blocks
//		n.Broadcast(&Move{X: 1, Y: 2})
//		n.Xfer()
//		for m, ok := n.Get(); ok; m, ok = n.Get() {
//			switch msg := m.Msg.(type) { // m.From is the sender's id
//			case *mesh.PeerEvent: // PeerJoined, PeerLeft (msg.Err says why), PeerRestarted
//			case *Move:
//			}
//		}
//	}
//
// A node keeps exactly one link per pair of nodes (SPEC.md section 8), redials
// a peer that is still seen when its link drops (with capped, jittered
// backoff), and reports a peer that stops answering as left after
// Config.Silence. Send and SendTo reach one peer by id or by name, Request
// waits for a reply, a Responder answers requests by rules, and Traffic
// records what goes in and out. NodeConfig.CableCar makes the node talk to
// Python cable_car programs too.
//
// # One link, to a known address
//
//	cfg := mesh.DefaultConfig()
//	cfg.Mesh = "mygame"
//	m, err := mesh.Dial(ctx, cfg, "192.168.1.20:7000")
//	...
//	for running { // the game loop; nothing here blocks
//		m.Send(&Move{X: 1, Y: 2})
//		if err := m.Xfer(); err != nil {
//			break // the link ended; err is a *mesh.CloseError saying why
//		}
//		for msg, ok := m.Get(); ok; msg, ok = m.Get() {
//			switch msg := msg.Msg.(type) {
//			case *Move: ...
//			}
//		}
//	}
//	m.Close()
//
// The other side calls Listen and Accept (or Serve with Handlers). Programs
// that are not game loops use Receive(ctx), or Handle with callbacks, and
// LinkConfig.AutoFlush.
//
// # Goroutines
//
// A link runs a reader goroutine (decodes frames, answers pings, fills the
// receive queue) and a writer goroutine (writes each batch in one write,
// sends pings, carries out the close). Send only appends to a buffer; Xfer
// (Flush) hands the buffer to the writer, or on Unix writes a small one
// itself with a single non-blocking write, which never waits. A Messenger on which Handle was
// called adds a dispatch goroutine that runs the handlers. A Listener runs
// one accept goroutine per address and one per handshake in progress. Close
// waits for all of them.
//
// # Liveness
//
// Every Config.PingInterval the writer sends a Ping carrying its clock; the
// peer echoes it in a Pong, and the reader folds the round trip into a
// smoothed RTT (Stats). Any bytes at all prove the peer alive; after
// Config.Silence with none the link closes with ErrSilence. A peer that
// hangs up without a Bye (its process killed) is noticed at once, from the
// connection's end (ErrConnLost).
//
// # Handshake
//
// Before any message, each side of a new connection sends a Hello, reads
// the other's, checks it, and answers Accept or Reject; the link is up when
// each side has sent and received an Accept. A side that refuses sends a
// Reject with a reason and closes; the other side reports that reason
// (CloseError.Remote). The format does not depend on the codec. All
// integers are big-endian.
//
// Every handshake frame starts with the same 8-byte header:
//
//	offset size field
//	0      4    magic "LNMH" (4c 4e 4d 48)
//	4      1    version, 1. A receiver that does not speak the version
//	            sends Reject (code 2) and closes. Magic and version keep
//	            their place in every later version.
//	5      1    kind: 1 Hello, 2 Reject, 3 Accept (append-only)
//	6      2    body length n, at most 1024; the body follows
//
// Hello body (kind 1):
//
//	offset size field
//	0      16   node id, a UUID; not the nil UUID
//	16     16   instance id, a UUID new each time the program starts; not nil
//	32     2    listen port the node accepts links on; 0 for none
//	34     1    key-exchange suite: 0 none, the only suite of version 1.
//	            Kept for authenticated links: both sides must offer the
//	            same suite, or the link is refused (Reject code 6).
//	35     1    flags, 0; a receiver refuses other bits
//	36     1+k  node name: length byte k, then k bytes of UTF-8
//	..     1+k  mesh name: length byte, UTF-8; 1 to 255 bytes
//	..     1+k  codec name: length byte, "binary", "msgpack" or "json"
//	..     2+k  suite data: 2-byte length k, then k bytes; k is 0 for suite 0
//
// No byte may follow the suite data. A Hello whose mesh or codec differs
// from the receiver's is refused (Reject codes 3, 4).
//
// Reject body (kind 2):
//
//	offset size field
//	0      1    code: 0 other, 1 malformed handshake, 2 version,
//	            3 mesh mismatch, 4 codec mismatch, 5 timeout, 6 suite
//	            (append-only; an unknown code reads as 0)
//	1      1+k  reason: length byte k, then k bytes of UTF-8 for a person
//
// Accept body (kind 3): empty.
//
// A golden Hello (node 00112233-4455-6677-8899-aabbccddeeff, instance
// ffeeddcc-bbaa-9988-7766-554433221100, name "ann", mesh "game", codec
// "binary", port 7000, no suite):
//
//	4c4e4d48 01 01 0036
//	00112233445566778899aabbccddeeff ffeeddccbbaa99887766554433221100
//	1b58 00 00 03 616e6e 04 67616d65 06 62696e617279 0000
//
// The whole exchange is bounded by Config.HandshakeTimeout; a side that
// times out sends Reject code 5 if it can.
//
// # Keyed links
//
// With a mesh key (Config.Keyring, package meshkey) the handshake is Noise
// NNpsk0_25519_ChaChaPoly_SHA256 instead, with roles: the dialler sends a
// clear Preamble frame (kind 4, body: suite 1, then the 8-byte key id) and
// Noise message 1 (kind 5) carrying its Hello frame encrypted; the
// acceptor, if it holds a key of that id, answers with message 2 (kind 5)
// carrying its Hello; the dialler then sends its first record, an Accept,
// which the acceptor must open before the link counts (key confirmation).
// The prologue is the Preamble frame and the mesh name. From then on each
// direction carries records: a 2-byte length (the AEAD's additional data),
// then ChaCha20-Poly1305 ciphertext and tag, at most 16 KiB of plaintext,
// one record per write of the link. Reject codes 7 (a key is required),
// 8 (the sender has no key) and 9 (wrong key) say what went wrong. SPEC.md
// section 10 gives every byte.
//
// # After the handshake
//
// The conn carries frames of the agreed codec (see package codec), both
// ways, with no other framing. Ping (0xE0), Pong (0xE1) and Bye (0xE2) are
// ordinary messages of the control range, consumed by the link and never
// returned by Get. A graceful close is: the sender writes what it had
// queued, then a Bye with a reason, then half-closes (TCP FIN); the
// receiver writes what it had queued, and both close. Frames of unknown
// types, or that do not decode as their type, are skipped and counted
// (Stats.Dropped); a frame that breaks the framing (a bad length, over the
// codec's limit) ends the link with ErrProtocol, and a Bye saying why.
package mesh
