// Package mesh links the nodes of a mesh and delivers their messages. The
// smallest use is a Node: it finds every peer of its mesh on the LAN
// (package discovery), links to each of them directly, and is pumped once
// per frame of a game loop:
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
// Messages are Go structs registered with package message; the codec
// (package codec) turns them into bytes. A node keeps exactly one link per
// pair of nodes (SPEC.md section 8), redials a peer that is still seen when
// its link drops (with capped, jittered backoff), and reports a peer that
// stops answering as left after twice LinkConfig.Silence (see Liveness).
// Send and SendTo reach one peer by id or by name, Request waits for a
// reply, a Responder answers requests by rules, and Traffic records what
// goes in and out.
// NodeConfig.CableCar makes the node also link with cable_car programs,
// which have no handshake (SPEC.md section 9).
// Node.AttachRelay lets a relay bring in peers beyond the LAN (package hub
// joins LAN sites through NATS): peers like the others, with PeerInfo.Site
// set, reached through the relay; a LAN peer is always reached directly.
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
// # Order and delivery
//
// Get (like Receive, and the OnPeer and OnMessage callbacks, which run one
// at a time on one goroutine of the node) returns peer events and messages
// in one stream, in the order they happened: a peer's PeerJoined comes
// before its first message and its PeerLeft after its last. Nothing waiting
// there is ever dropped: past Limits.ReceiveQueue the links stop reading
// (the peers' Sends report ErrBackpressure), and past Limits.Events the
// node links no new peer until the program takes some.
//
// Beneath the Node and the Messenger, the package owns the transports that
// carry bytes (TCP, and an in-memory network for tests and prototypes), the
// one accept loop that bounds what incoming connections may cost
// (AcceptConfig), the handshake that opens a link, and the link that
// frames, batches, pings and closes.
//
// # Goroutines
//
// A link runs a reader goroutine (decodes frames, answers pings, fills the
// receive queue) and a writer goroutine (writes each batch in one write,
// sends pings, carries out the close). Send only appends to a buffer; Xfer
// (Flush) hands the buffer to the writer, or on Unix writes a small one
// itself with a single non-blocking write, which never waits. A Messenger
// on which Handle was called adds a dispatch goroutine that runs the handlers; a Node adds one
// that runs OnPeer and OnMessage. The accept loop runs one goroutine per
// listening address and one per handshake in progress, within
// AcceptConfig's bounds. Close joins every goroutine it started.
//
// # Liveness
//
// Every LinkConfig.PingInterval the writer sends a Ping carrying its clock; the
// peer echoes it in a Pong, and the reader folds the round trip into a
// smoothed RTT (Stats). Any bytes at all prove the peer alive. After
// LinkConfig.Silence with none the peer is suspected: the link pings it at once
// and waits one more Silence, so that a cut shorter than Silence, which TCP
// recovers on a retransmission timer backed off to seconds, does not end
// the link; after that second Silence with nothing the link closes with
// ErrSilence. A peer that hangs up without a Bye (its process killed) is
// noticed at once, from the connection's end (ErrConnLost).
//
// # Link replacement and redial
//
// A link that ends is reported as PeerLeft, and the node redials a peer it
// still sees no sooner than the backoff (Net.RedialMin, ±50%), however
// often discovery mentions the peer meanwhile. A peer that redials while
// this side still counts the old link live (it took the link for dead
// first) replaces it only once the old link fails a probe (half of
// Silence); the replacement is then reported on this side too, as PeerLeft
// (ErrLinkReplaced) then PeerJoined, and requests waiting on that peer fail
// at once. So every link that ends is seen as a PeerLeft on both sides.
//
// # What a nil from Send promises
//
// A nil from Send (and Broadcast, Request, Reply) means: delivered unless
// you are told otherwise. Between two nodes with resumable links (the
// default, keyed meshes or not; NodeConfig.Resume), the message was numbered and kept for the peer until
// it acknowledges it; it reaches that peer instance's program exactly once,
// in order, across cuts of any length up to ResumeConfig.Window while both
// programs run (a link that ends is redialled, and the next one resends
// exactly what the peer did not deliver). If it is lost for good (the peer
// restarted or left, the window passed, the resend budget overflowed), an
// event says so in the stream, naming the peer, the count and the sequence
// range (PeerEvent.Lost on PeerLeft, PeerRestarted or PeerResumed; see
// Node.Sequence), and Stats counts it (MessagesLost). No Lost, nothing lost.
//
// With a peer that does not resume (ResumeConfig.Disabled on either node,
// or an older lanmesh), the message is delivered once and in
// order unless the link ends first: then a PeerLeft (or PeerRestarted)
// follows in the stream, and what was queued on that link since the trouble
// began may be lost, unnamed. A Request whose peer leaves fails at once with
// ErrPeerGone and the reason.
//
// # Handshake
//
// Before any message, each side of a new connection sends a Hello (its node
// and instance ids, listen port, node name, mesh and codec), reads the
// other's, checks it, and answers Accept or Reject; the link is up when each
// side has sent and received an Accept. A side that refuses sends a Reject
// with a code and a reason and closes; the other side reports that reason
// (CloseError.Remote) under the code's sentinel (ErrMeshMismatch,
// ErrCodecMismatch, ErrVersion, ...). The format does not depend on the
// codec. The exchange is bounded by LinkConfig.HandshakeTimeout. SPEC.md section
// 6 gives every byte.
//
// # Keyed links
//
// With a mesh key (the Keyring of Config or NodeConfig, package meshkey) the handshake is Noise
// NNpsk0_25519_ChaChaPoly_SHA256 instead, with roles: the dialler sends a
// clear preamble naming the key by id and its Hello encrypted under the
// key; the acceptor, if it holds a key of that id, answers with its own
// Hello, encrypted; the dialler's first record confirms the key, and the
// acceptor counts the link only once it opens. From then on each direction
// carries encrypted records of at most 16 KiB of plaintext, one per write of
// the link. A node without the key, with no key, or with another key is
// refused with ErrKeyRequired, ErrUnkeyedPeer or ErrWrongKey, and a keyed
// node never falls back to an unkeyed link. With resumable links (on
// unless NodeConfig.Resume.Disabled), each Hello carries the resume offer in its
// suite data, and a later link resumes a session only if it proves the
// secret of the session's first keyed handshake, which other holders of the
// mesh key do not have. SPEC.md section 10 gives every byte, section 12 the
// resume.
//
// # After the handshake
//
// The conn carries frames of the agreed codec (see package codec), both
// ways, with no other framing. Ping (0xE0), Pong (0xE1) and Bye (0xE2) are
// ordinary messages of the control range, consumed by the link and never
// returned by Get. A graceful close is: the sender writes what it had
// queued, then a Bye with a reason, then half-closes (TCP FIN); the
// receiver writes what it had queued, and both close. Frames of a type this
// node does not know are skipped and counted (Stats.Dropped): a newer peer
// may know more types. A frame that does not decode as its type, or that
// breaks the framing (a bad length, over the codec's limit), ends the link
// with ErrProtocol and a Bye saying why.
package mesh
