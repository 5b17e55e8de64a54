package mesh

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
)

// Direction says whether a message came in or went out.
type Direction uint8

const (
	In Direction = iota + 1
	Out
)

func (d Direction) String() string {
	if d == In {
		return "in"
	}
	return "out"
}

// Record is one message in the traffic log.
type Record struct {
	Time     time.Time
	Dir      Direction
	Peer     uuid.UUID
	PeerName string
	Type     string // the message's registered name
	Size     int    // bytes of its frame
}

// TrafficLog records the messages a node sends and receives while it is
// switched on: Start and Stop recording, Newest and All to read. It keeps the
// last Limits.TrafficLog records in a ring. It is off by default and costs one
// atomic load per message while off. Safe for concurrent use.
type TrafficLog struct {
	on atomic.Bool

	// mu guards the ring.
	mu    sync.Mutex
	ring  []Record
	next  int
	count int
	total uint64
	subs  []chan Record
}

func (t *TrafficLog) init(size int) {
	t.ring = make([]Record, size)
}

// Start starts recording.
func (t *TrafficLog) Start() { t.on.Store(true) }

// Stop stops recording; what was recorded stays.
func (t *TrafficLog) Stop() { t.on.Store(false) }

// Recording reports whether the log records.
func (t *TrafficLog) Recording() bool { return t.on.Load() }

// Newest returns the newest record, false if there is none.
func (t *TrafficLog) Newest() (Record, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.count == 0 {
		return Record{}, false
	}
	return t.ring[(t.next+len(t.ring)-1)%len(t.ring)], true
}

// All returns the records held, oldest first.
func (t *TrafficLog) All() []Record {
	t.mu.Lock()
	defer t.mu.Unlock()
	out := make([]Record, 0, t.count)
	start := (t.next - t.count + len(t.ring)) % len(t.ring)
	for i := range t.count {
		out = append(out, t.ring[(start+i)%len(t.ring)])
	}
	return out
}

// Total counts the records made since the node started, including those the
// ring no longer holds.
func (t *TrafficLog) Total() uint64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.total
}

// Clear drops every record held.
func (t *TrafficLog) Clear() {
	t.mu.Lock()
	defer t.mu.Unlock()
	clear(t.ring)
	t.next, t.count = 0, 0
}

// Watch returns a channel that receives each new record while recording,
// until cancel is called. A watcher that falls behind misses records (the
// channel holds buffer of them) rather than slowing the node.
func (t *TrafficLog) Watch(buffer int) (records <-chan Record, cancel func()) {
	ch := make(chan Record, max(buffer, 1))
	t.mu.Lock()
	t.subs = append(t.subs, ch)
	t.mu.Unlock()
	var once sync.Once
	return ch, func() {
		once.Do(func() {
			t.mu.Lock()
			for i, c := range t.subs {
				if c == ch {
					t.subs = append(t.subs[:i], t.subs[i+1:]...)
					break
				}
			}
			t.mu.Unlock()
		})
	}
}

// note records a message on l, whose frame was size bytes, if the log is
// on. The size is what the link's codec wrote or read: nothing is encoded
// again to measure it.
func (t *TrafficLog) note(l *link, dir Direction, msg any, size int) {
	if !t.on.Load() {
		return
	}
	r := Record{Time: time.Now(), Dir: dir, Peer: l.Remote().NodeID, PeerName: l.Remote().Name, Size: size}
	if ty, err := l.cfg.registry().TypeOf(msg); err == nil {
		r.Type = ty.Name
	}
	t.mu.Lock()
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
	t.mu.Unlock()
}

// Traffic returns the node's traffic log.
func (n *Node) Traffic() *TrafficLog { return &n.traffic }
