package mesh

import (
	"errors"
	"strings"
	"time"

	"github.com/lanmesh/lanmesh/codec"
)

// unknownNoter is a Sink that wants to hear of the frames a link skipped
// because their type is not registered here: the Node's, for its traffic
// log, so that a tool such as lanmesh watch shows an application's own
// messages by code or name and size.
type unknownNoter interface {
	noteUnknown(l *link, size int, err error)
}

// UnknownTypePrefix starts the Record.Type of a message whose type is not
// registered on this node: "unknown code 0x42" (binary codec) or
// `unknown name "Move"` (msgpack, JSON).
const UnknownTypePrefix = "unknown "

func (s *nodeSink) noteUnknown(l *link, size int, err error) {
	s.n.traffic.noteUnknown(l, size, err)
}

// noteUnknown records a skipped frame if the log is on.
func (t *TrafficLog) noteUnknown(l *link, size int, err error) {
	if !t.on.Load() {
		return
	}
	what := "type"
	if s := err.Error(); errors.Is(err, codec.ErrUnknownType) {
		if i := strings.LastIndex(s, ": "); i >= 0 {
			what = s[i+2:]
		}
	}
	t.add(Record{Time: time.Now(), Dir: In, Peer: l.Remote().NodeID, PeerName: l.Remote().Name,
		Type: UnknownTypePrefix + what, Size: size})
}

// add appends a record to the ring and gives it to the watchers.
func (t *TrafficLog) add(r Record) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ring[t.next] = r
	t.next = (t.next + 1) % len(t.ring)
	t.count = min(t.count+1, len(t.ring))
	t.total++
	for _, c := range t.subs {
		select {
		case c <- r:
		default:
		}
	}
}
