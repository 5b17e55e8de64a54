package discovery

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/meshkey"
)

// Via says how a peer was heard. It is a bit mask: a peer heard by
// broadcast and by mDNS has both bits.
type Via uint8

const (
	ViaBroadcast Via = 1 << iota // a UDP beacon heard on a broadcast destination
	ViaMDNS                      // an answer to an mDNS browse
	ViaSeed                      // a UDP beacon from a configured seed address
)

func (v Via) String() string {
	var parts []string
	for _, x := range []struct {
		bit  Via
		name string
	}{{ViaBroadcast, "broadcast"}, {ViaMDNS, "mdns"}, {ViaSeed, "seed"}} {
		if v&x.bit != 0 {
			parts = append(parts, x.name)
		}
	}
	if len(parts) == 0 {
		return "none"
	}
	return strings.Join(parts, "+")
}

// priority ranks sources for the choice of a peer's address: a beacon's
// source address was certainly routable from here, an mDNS A record is only
// what the peer believes its address to be.
func (v Via) priority() int {
	switch {
	case v&(ViaBroadcast|ViaSeed) != 0:
		return 2
	case v&ViaMDNS != 0:
		return 1
	}
	return 0
}

// Peer is one node of the mesh as this node sees it.
type Peer struct {
	ID       uuid.UUID      // the node's stable id
	Instance uuid.UUID      // changes when the node's program restarts
	Name     string         // the node's human-readable name
	Mesh     string         // always the Discoverer's own mesh name
	Addr     netip.AddrPort // where the node accepts TCP links, reachable from here
	Via      Via            // the sources that heard it within LostAfter
	LastSeen time.Time      // the last sign of it from any source
	KeyID    meshkey.ID     // keyed meshes: the id of the key its last beacon was signed with
}

// EventKind says what happened to a peer.
type EventKind uint8

const (
	// Found: a node not in the table appeared.
	Found EventKind = iota + 1
	// Lost: the node left (Reason LostLeaving) or was not heard from for
	// LostAfter (Reason LostTimeout). It is no longer in the table.
	Lost
	// Restarted: a node appeared with the id of a known (or recently lost)
	// node but a new instance id. Anything held about the old instance,
	// such as a link, is stale; the peer is present now.
	Restarted
	// Updated: the node's address, port or name changed.
	Updated
)

func (k EventKind) String() string {
	switch k {
	case Found:
		return "found"
	case Lost:
		return "lost"
	case Restarted:
		return "restarted"
	case Updated:
		return "updated"
	}
	return "unknown"
}

// LostReason says why a peer was lost.
type LostReason uint8

const (
	LostNone    LostReason = iota // the event is not a Lost
	LostLeaving                   // the peer sent a leaving beacon
	LostTimeout                   // no sign of the peer for LostAfter
)

func (r LostReason) String() string {
	switch r {
	case LostLeaving:
		return "leaving"
	case LostTimeout:
		return "timeout"
	}
	return "none"
}

// Event is one change in the peer table.
type Event struct {
	Kind   EventKind
	Peer   Peer       // the peer's state after the change (for Lost: its last state)
	Prev   Peer       // for Updated and Restarted: the state before; zero otherwise
	Reason LostReason // for Lost only
}

// String describes the event for logs, e.g.
// "lost 00112233 (n1) at 10.0.0.1:7946 via broadcast: timeout".
func (e Event) String() string {
	s := fmt.Sprintf("%v %.8s (%s) at %v via %v", e.Kind, e.Peer.ID.String(), e.Peer.Name, e.Peer.Addr, e.Peer.Via)
	if e.Kind == Lost {
		s += ": " + e.Reason.String()
	}
	return s
}

// clock lets tests drive the table's notion of time.
type clock interface{ Now() time.Time }

type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

// sighting is one sign of life of a node, from any source.
type sighting struct {
	ID       uuid.UUID
	Instance uuid.UUID
	Name     string
	Mesh     string
	Addr     netip.AddrPort
	Via      Via // exactly one bit
	Leaving  bool
	KeyID    meshkey.ID
	NoName   bool // the source does not carry the name (keyed mDNS): Name is not news
}

// entry is a peer in the table with the bookkeeping behind it.
type entry struct {
	Peer
	seen     [3]time.Time // last sighting per source, indexed by viaIndex
	addrVia  Via          // the source that gave Peer.Addr
	addrSeen time.Time    // when Peer.Addr was last confirmed
	retired  []uuid.UUID  // earlier instances, so that late packets from them are ignored
}

// tomb remembers a lost peer so that its return is reported as Restarted
// (new instance) and late packets of an instance that said goodbye are
// ignored.
type tomb struct {
	peer    Peer
	leaving bool
	at      time.Time
}

const (
	maxRetired = 4
	maxTombs   = 1024
)

func viaIndex(v Via) int {
	switch v {
	case ViaMDNS:
		return 1
	case ViaSeed:
		return 2
	}
	return 0
}

// table is the peer table: pure logic, no locks and no goroutines. The
// Discoverer serialises calls to it.
type table struct {
	mesh      string
	self      uuid.UUID
	lostAfter time.Duration
	maxPeers  int
	clock     clock
	// leaveHold is how long a leaving beacon keeps its instance out of the
	// table: long enough for packets already in flight to arrive, short
	// enough that a spoofed leaving beacon (unkeyed, anyone can send one)
	// cannot keep a live node out: its next beacons find it again.
	leaveHold time.Duration

	peers   map[uuid.UUID]*entry
	tombs   map[uuid.UUID]tomb
	dropped uint64 // sightings of new nodes refused because the table was full
}

func newTable(mesh string, self uuid.UUID, lostAfter time.Duration, maxPeers int, c clock) *table {
	if c == nil {
		c = systemClock{}
	}
	return &table{
		mesh:      mesh,
		self:      self,
		lostAfter: lostAfter,
		maxPeers:  maxPeers,
		clock:     c,
		leaveHold: lostAfter / 3,
		peers:     make(map[uuid.UUID]*entry),
		tombs:     make(map[uuid.UUID]tomb),
	}
}

// observe records a sighting and appends the resulting events to evs.
func (t *table) observe(s sighting, evs []Event) []Event {
	if s.Mesh != t.mesh || s.ID == t.self || s.ID == uuid.Nil {
		return evs
	}
	now := t.clock.Now()
	e := t.peers[s.ID]
	if e == nil {
		return t.observeNew(s, now, evs)
	}
	if s.Instance != e.Instance {
		if s.Leaving || slices.Contains(e.retired, s.Instance) {
			// A late packet of an instance that has since been replaced.
			return evs
		}
		prev := e.Peer
		retired := append(e.retired, e.Instance)
		if len(retired) > maxRetired {
			retired = retired[len(retired)-maxRetired:]
		}
		ne := t.newEntry(s, now)
		ne.retired = retired
		t.peers[s.ID] = ne
		return append(evs, Event{Kind: Restarted, Peer: ne.Peer, Prev: prev})
	}
	if s.Leaving {
		delete(t.peers, s.ID)
		t.bury(e.Peer, true, now)
		return append(evs, Event{Kind: Lost, Peer: e.Peer, Reason: LostLeaving})
	}
	prev := e.Peer
	e.seen[viaIndex(s.Via)] = now
	e.LastSeen = now
	e.KeyID = s.KeyID
	e.Via = t.viaNow(e, now)
	changed := false
	if s.Name != e.Name && !s.NoName {
		e.Name = s.Name
		changed = true
	}
	switch {
	case s.Addr == e.Addr:
		e.addrSeen = now
		if s.Via.priority() > e.addrVia.priority() {
			e.addrVia = s.Via
		}
	case t.switchAddr(e, s, now):
		e.Addr, e.addrVia, e.addrSeen = s.Addr, s.Via, now
		changed = true
	}
	if changed {
		return append(evs, Event{Kind: Updated, Peer: e.Peer, Prev: prev})
	}
	return evs
}

// switchAddr decides whether a sighting from another address replaces
// the peer's address. A node on two LANs shared with us sends from two
// addresses in turn; following each would report Updated at every beacon.
// So an address still heard (within half of LostAfter) is kept unless a
// better-ranked source names another; a worse-ranked source replaces it
// only once it has been quiet for LostAfter. A new port at the same IP is
// a real change and is taken at once.
func (t *table) switchAddr(e *entry, s sighting, now time.Time) bool {
	if s.Addr.Addr() == e.Addr.Addr() {
		return true
	}
	quiet := now.Sub(e.addrSeen)
	switch sp, cp := s.Via.priority(), e.addrVia.priority(); {
	case sp > cp:
		return true
	case sp == cp:
		return quiet >= t.lostAfter/2
	default:
		return quiet >= t.lostAfter
	}
}

func (t *table) observeNew(s sighting, now time.Time, evs []Event) []Event {
	tb, buried := t.tombs[s.ID]
	if s.Leaving {
		return evs
	}
	if buried && tb.leaving && tb.peer.Instance == s.Instance && now.Sub(tb.at) < t.leaveHold {
		// The node said goodbye; this is a packet that was already in
		// flight, not a return. Past leaveHold the goodbye is not believed
		// any more: a node that left sends nothing, so a beacon of its
		// instance means the goodbye was forged.
		return evs
	}
	if len(t.peers) >= t.maxPeers {
		t.dropped++
		return evs
	}
	e := t.newEntry(s, now)
	t.peers[s.ID] = e
	if buried {
		delete(t.tombs, s.ID)
		if tb.peer.Instance != s.Instance {
			e.retired = []uuid.UUID{tb.peer.Instance}
			return append(evs, Event{Kind: Restarted, Peer: e.Peer, Prev: tb.peer})
		}
	}
	return append(evs, Event{Kind: Found, Peer: e.Peer})
}

func (t *table) newEntry(s sighting, now time.Time) *entry {
	e := &entry{
		Peer: Peer{
			ID:       s.ID,
			Instance: s.Instance,
			Name:     s.Name,
			Mesh:     s.Mesh,
			Addr:     s.Addr,
			Via:      s.Via,
			LastSeen: now,
			KeyID:    s.KeyID,
		},
		addrVia:  s.Via,
		addrSeen: now,
	}
	e.seen[viaIndex(s.Via)] = now
	return e
}

func (t *table) fresh(e *entry, v Via, now time.Time) bool {
	if v == 0 {
		return false
	}
	at := e.seen[viaIndex(v)]
	return !at.IsZero() && now.Sub(at) < t.lostAfter
}

// expire removes peers not heard from for lostAfter, and sources of live
// peers that went quiet, appending Lost events to evs.
func (t *table) expire(evs []Event) []Event {
	now := t.clock.Now()
	var lost []Event
	for id, e := range t.peers {
		if now.Sub(e.LastSeen) >= t.lostAfter {
			delete(t.peers, id)
			t.bury(e.Peer, false, now)
			lost = append(lost, Event{Kind: Lost, Peer: e.Peer, Reason: LostTimeout})
			continue
		}
		e.Via = t.viaNow(e, now)
	}
	// A stable order makes logs and tests deterministic.
	slices.SortFunc(lost, func(a, b Event) int { return strings.Compare(a.Peer.ID.String(), b.Peer.ID.String()) })
	return append(evs, lost...)
}

func (t *table) bury(p Peer, leaving bool, now time.Time) {
	if len(t.tombs) >= maxTombs {
		// Forget the oldest quarter at once (a flood of forged peers that
		// expire together must not cost a scan per burial); a node that
		// has been gone that long comes back as Found rather than
		// Restarted.
		type aged struct {
			id uuid.UUID
			at time.Time
		}
		all := make([]aged, 0, len(t.tombs))
		for id, tb := range t.tombs {
			all = append(all, aged{id, tb.at})
		}
		slices.SortFunc(all, func(a, b aged) int { return a.at.Compare(b.at) })
		for _, x := range all[:len(all)/4+1] {
			delete(t.tombs, x.id)
		}
	}
	t.tombs[p.ID] = tomb{peer: p, leaving: leaving, at: now}
}

// viaNow returns the sources that heard the peer within LostAfter.
func (t *table) viaNow(e *entry, now time.Time) Via {
	var v Via
	for _, src := range []Via{ViaBroadcast, ViaMDNS, ViaSeed} {
		if t.fresh(e, src, now) {
			v |= src
		}
	}
	return v
}

// snapshot returns the peers sorted by id.
func (t *table) snapshot() []Peer {
	now := t.clock.Now()
	out := make([]Peer, 0, len(t.peers))
	for _, e := range t.peers {
		p := e.Peer
		p.Via = t.viaNow(e, now)
		out = append(out, p)
	}
	slices.SortFunc(out, func(a, b Peer) int { return strings.Compare(a.ID.String(), b.ID.String()) })
	return out
}

// nextExpiry returns when the earliest live peer would be lost, or the
// zero time when the table is empty.
func (t *table) nextExpiry() time.Time {
	var next time.Time
	for _, e := range t.peers {
		at := e.LastSeen.Add(t.lostAfter)
		if next.IsZero() || at.Before(next) {
			next = at
		}
	}
	return next
}
