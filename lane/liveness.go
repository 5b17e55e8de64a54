package lane

import (
	"fmt"
	"math"
	"time"
)

// State is what the lane's pings say of UDP to the peer.
type State int32

const (
	// Probing: no pong yet. Messages SHOULD go over the link's stream until
	// the lane is Up; pings go out at once, so on a working LAN this lasts
	// one round trip.
	Probing State = iota
	// Up: pongs come back; sequenced and unreliable messages go over UDP.
	Up
	// Blocked: Config.BlockedPings pings went unanswered for
	// Config.BlockedAfter; messages fall back to the link's stream. Pings go
	// on, and the first pong makes the lane Up again.
	Blocked
)

func (s State) String() string {
	switch s {
	case Probing:
		return "probing"
	case Up:
		return "up"
	case Blocked:
		return "blocked"
	}
	return fmt.Sprintf("state(%d)", int32(s))
}

// Health is a snapshot of the lane's liveness.
type Health struct {
	State State
	// Since is when the lane entered State.
	Since time.Time
	// RTT is the last round trip a ping measured, SRTT its smoothed value
	// (7/8 old + 1/8 new, as TCP's), MinRTT the smallest seen. Zero before
	// the first pong.
	RTT, SRTT, MinRTT time.Duration
	// LastPong is when the last pong came; zero before the first.
	LastPong time.Time
	// Unanswered counts pings sent since the last pong.
	Unanswered int
}

const pingsInFlight = 16

// liveness is the lane's ping state machine. Time comes from its caller, so
// tests drive it without sleeping. Not safe for concurrent use; Lane guards
// it.
type liveness struct {
	cfg      Config
	started  time.Time
	lastPing time.Time
	nextID   uint32
	inflight [pingsInFlight]struct {
		id uint32
		at time.Time
	}
	h Health

	// A pong owed to the peer: the newest ping's id and when it came.
	owe   bool
	oweID uint32
	oweAt time.Time
}

func newLiveness(cfg Config) liveness { return liveness{cfg: cfg, nextID: 1} }

// tick is called at every Flush: it says whether a ping is due (and records
// it as sent), and moves the state to Blocked when pings go unanswered.
func (l *liveness) tick(now time.Time) (id uint32, ping bool) {
	if l.started.IsZero() {
		l.started, l.h.Since = now, now
	}
	if l.lastPing.IsZero() || now.Sub(l.lastPing) >= l.cfg.PingInterval {
		id = l.nextID
		l.nextID++
		if l.nextID == 0 {
			l.nextID = 1
		}
		slot := &l.inflight[id%pingsInFlight]
		slot.id, slot.at = id, now
		l.lastPing = now
		l.h.Unanswered++
		ping = true
	}
	quiet := l.h.LastPong
	if quiet.IsZero() {
		quiet = l.started
	}
	if l.h.State != Blocked && l.h.Unanswered >= l.cfg.BlockedPings && now.Sub(quiet) >= l.cfg.BlockedAfter {
		l.h.State, l.h.Since = Blocked, now
	}
	return id, ping
}

// pong takes a pong for ping id that the peer held for held before sending.
// It reports false for a pong of no ping in flight.
func (l *liveness) pong(id uint32, held time.Duration, now time.Time) bool {
	slot := &l.inflight[id%pingsInFlight]
	if id == 0 || slot.id != id {
		return false
	}
	rtt := max(now.Sub(slot.at)-held, 0)
	slot.id = 0
	l.h.RTT = rtt
	if l.h.SRTT == 0 {
		l.h.SRTT, l.h.MinRTT = rtt, rtt
	} else {
		l.h.SRTT = (7*l.h.SRTT + rtt) / 8
		l.h.MinRTT = min(l.h.MinRTT, rtt)
	}
	l.h.LastPong = now
	l.h.Unanswered = 0
	if l.h.State != Up {
		l.h.State, l.h.Since = Up, now
	}
	return true
}

// ping records a ping from the peer; the next Flush answers the newest.
func (l *liveness) ping(id uint32, now time.Time) {
	l.owe, l.oweID, l.oweAt = true, id, now
}

// takePong returns the pong owed, if any, and how long it was held in
// microseconds.
func (l *liveness) takePong(now time.Time) (id uint32, heldMicros uint32, ok bool) {
	if !l.owe {
		return 0, 0, false
	}
	l.owe = false
	us := max(now.Sub(l.oweAt).Microseconds(), 0)
	return l.oweID, uint32(min(us, math.MaxUint32)), true
}
