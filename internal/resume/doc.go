// Package resume keeps reliable messages across a cut: it numbers each
// reliable frame a node sends to a peer (per direction of the peer pair,
// not per TCP connection), keeps what the peer has not acknowledged within
// a budget, and, when a link to the same peer instance comes back, agrees
// with the peer where each direction stands, so that the sender sends
// again exactly what is missing and the receiver delivers each message
// once, in order. What cannot be resent is named exactly, as a Loss.
//
// It knows nothing of nodes, links or codecs: it moves sequence numbers
// and frame bytes. The mesh package plugs it in (INTEGRATION.md);
// SPEC.md section 12 has the bytes and the rules.
//
// The pieces, per peer session:
//
//   - a Journal (outbound): Append gives each frame its sequence and keeps
//     a copy; Ack trims; Resume and AppendFrames give back the frames a
//     resume needs; Reset ends the session with the Loss of what was
//     unacknowledged.
//   - a Tracker (inbound): the last sequence delivered; each link reads a
//     Stream of it; TakeAck and AckDue say when to acknowledge.
//   - the resume exchange: an Offer in each handshake, then a Message as
//     each side's first frame, sealed with the session's Secret and bound
//     to the connection (Binding); Agree decides.
//   - a Session, which holds the three and runs the exchange in the order
//     the spec requires.
//
// The smallest use, one side of a link after a handshake in which both
// sides offered resume (s is the peer's Session, which outlives links):
//
//	o, err := s.Open(pair, binding, secretOfThisLink) // fences older links of the peer
//	write(o.Own.AppendBinary(nil))      // the link's first frame
//	res, err := s.Accept(o, peerResume)
//	// err: close the link (protocol error). res.Lost, res.LostIn: tell the program.
//	buf, next, _ := s.Journal.AppendFrames(buf, res.Start, 64<<10) // resend, in pieces
//	s.Journal.Pin(next)                 // Pin(0) once next == s.Journal.Next()
//	// then: s.Journal.Append on every Send, o.Stream.Deliver on every batch read,
//	// s.Journal.Ack on every Ack, s.Tracker.TakeAck on every write.
package resume
