// Package lane is the UDP game lane beside each link: datagrams that carry
// sequenced and unreliable messages between two peers, sealed when the mesh
// is keyed, with a replay window, a liveness check that says whether UDP
// gets through or the link's stream must carry them instead, and pacing: a
// Lane sends no faster than the path delivers (its peer acks what came),
// so that what cannot go waits in the sender, where a newer message of its
// channel replaces it, and never in a queue on the path.
//
// It knows nothing of nodes, links or codecs: it moves payloads (a codec's
// frames) for a session that the link handshake agreed (each side's token
// and, keyed, a secret; see NewSession). SPEC.md section 11 has the bytes.
//
// Delivery kinds, each a guarantee:
//
//   - Sequenced: a message older than the newest already delivered on its
//     channel is dropped; never duplicated. The sender keeps only the newest
//     message per channel queued. For positions and state.
//   - Unreliable: may be lost; never duplicated. For events where only speed
//     matters.
//
// The pieces: the datagram format (Header, Message, Datagram, ParseDatagram);
// a Sender and a Receiver per peer; a Lane, which joins the two with the
// liveness check (State: probing, up, blocked); and an Endpoint, one UDP
// socket whose reader hands each datagram to the lane its token names.
//
// The smallest use, one lane per link (the handshake gave both tokens, the
// peer's lane port and, keyed, the secret):
//
//	ep := lane.NewEndpoint(udpConn)     // one per node; ep.Port() goes in the handshake
//	s, _ := lane.NewSession(myToken, peerToken, initiator, secret)
//	s.Peer = netip.AddrPortFrom(peerIP, peerLanePort)
//	l, _ := ep.Open(lane.DefaultConfig(), s, deliver) // deliver runs on ep's reader
//	l.Enqueue(lane.Sequenced, 0, frame) // every tick, per object
//	l.Flush(time.Now())                 // once per tick: one datagram per MTU
//	if l.State() != lane.Up {           // probing or blocked: the link carries them
//		l.Drain(writeToLink)
//	}
package lane
