package mesh

import (
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/discovery"
)

// LinkState says where a node stands with a peer.
type LinkState uint8

const (
	// StateSeen: discovery (or configuration) knows the peer; no link yet.
	StateSeen LinkState = iota
	// StateDialling: a dial or a wait before one is under way.
	StateDialling
	// StateLinked: a link is up and handshaken.
	StateLinked
	// StateResuming: the link ended but the peer is not known gone; Sends
	// to it are kept and the node redials (see PeerResuming).
	StateResuming
)

func (s LinkState) String() string {
	switch s {
	case StateSeen:
		return "seen"
	case StateDialling:
		return "dialling"
	case StateLinked:
		return "linked"
	case StateResuming:
		return "resuming"
	}
	return "unknown"
}

// PeerInfo describes a peer as this node sees it.
type PeerInfo struct {
	ID       uuid.UUID
	Instance uuid.UUID
	Name     string
	// Addr is where the peer accepts links ("" if unknown).
	Addr string
	// Via says how discovery heard the peer (zero if it did not).
	Via   discovery.Via
	State LinkState
	// Since is when the current link came up.
	Since time.Time
	// Link holds the link's counters and round-trip time (zero when not
	// linked).
	Link Stats
	// LocalAddr and RemoteAddr are the link's ends (nil when not linked).
	LocalAddr, RemoteAddr net.Addr
	// Err says why the last link to the peer ended (nil while linked, or
	// if it never was): a *CloseError with the peer's reason, ErrSilence,
	// and the like.
	Err error
	// Lane is the state of the link's UDP lane (zero when there is none).
	Lane LaneInfo
	// Site is, for a peer in another site reached through a relay (package
	// hub), the name of its site; "" for a LAN peer. See AttachRelay.
	Site string
	// Unacked is how many reliable messages sent to the peer it has not
	// yet acknowledged (0 without a resumable session): a program that
	// must know its last messages arrived waits for 0 before it stops.
	Unacked uint64
}

// PeerEventKind says what happened to a peer.
//
// With resumable links (the default; not with ResumeConfig.Disabled on either node): a link that ends without the peer leaving is seen as
// PeerResuming, and the link that replaces it as PeerResumed, on both
// sides (a side that had not yet noticed the end sees PeerResumed alone);
// nothing Send accepted is lost across it unless an event's Lost says so.
// A session that ends is seen as PeerLeft (a Bye, the resume window, a
// peer whose process ended) or PeerRestarted; PeerJoined only begins one.
//
// Without them (the default in this version, a keyed mesh, or a peer of an
// older version):
// every link that ends is seen, on each side, as a PeerLeft, and a new
// link after it as PeerJoined (or PeerRestarted, for a new instance of the
// peer): a peer that redials while this side still counts the old link
// live is reported left (ErrLinkReplaced) and joined again, never replaced
// in silence. The one exception is the one-link rule settling two links
// dialled from both ends at once: the link closed as a duplicate was never
// the only one, and its end is no event. A PeerLeft is where messages may
// have been lost (see "What a nil from Send promises" in the package doc);
// no PeerLeft means none were.
type PeerEventKind uint8

const (
	// PeerJoined: a link to the peer is up and handshaken.
	PeerJoined PeerEventKind = iota + 1
	// PeerLeft: the link to the peer ended; Err says why (a *CloseError:
	// the peer's own reason for a graceful leave, ErrSilence for a peer
	// that stopped answering, ErrConnLost for one that vanished).
	PeerLeft
	// PeerRestarted: the peer's program restarted (a new instance id) and is
	// linked again. What was sent to the old instance and not yet delivered
	// is lost (Lost names it, with a resumable session), and requests
	// waiting on it have failed (ErrPeerGone).
	PeerRestarted
	// PeerResuming: the link to the peer ended (Err says why) but the peer
	// is not known gone: messages sent to it are kept, within the resend
	// budget, and the node redials it for up to ResumeConfig.Window.
	PeerResuming
	// PeerResumed: a new link resumed the session: what the peer had not
	// received is sent again, once, in order. Lost and LostIn name what
	// could not be (the resend budget), if anything.
	PeerResumed
)

func (k PeerEventKind) String() string {
	switch k {
	case PeerJoined:
		return "joined"
	case PeerLeft:
		return "left"
	case PeerRestarted:
		return "restarted"
	case PeerResuming:
		return "resuming"
	case PeerResumed:
		return "resumed"
	}
	return "unknown"
}

// PeerEvent is a change in the node's peers.
type PeerEvent struct {
	Kind PeerEventKind
	Peer PeerInfo
	Err  error // for PeerLeft and PeerResuming
	// Lost names the reliable messages this node sent to the peer that
	// are lost for good (nil: none), on PeerLeft, PeerRestarted and
	// PeerResumed. LostIn names the peer's messages this node will never
	// receive (it told so on resuming), on PeerResumed.
	Lost, LostIn *Loss
}

func (n *Node) infoLocked(p *peer) PeerInfo {
	info := PeerInfo{ID: p.id, Instance: p.instance, Name: p.name, Addr: p.addr, Via: p.via}
	switch {
	case p.link != nil:
		info.State = StateLinked
		info.Since = p.joined
		info.Link = p.link.Stats()
		info.LocalAddr, info.RemoteAddr = p.link.LocalAddr(), p.link.RemoteAddr()
		info.Lane = laneInfo(p.link)
	case p.resuming:
		info.State = StateResuming
	case p.dialing:
		info.State = StateDialling
	}
	info.Unacked = n.unackedLocked(p.id)
	if p.link == nil {
		info.Err = p.lastErr
	}
	return info
}

// Peers returns every peer the node knows (linked, being dialled, or only
// seen), sorted by name, then id.
func (n *Node) Peers() []PeerInfo {
	n.mu.Lock()
	out := make([]PeerInfo, 0, len(n.peers))
	for _, p := range n.peers {
		out = append(out, n.infoLocked(p))
	}
	out = n.remoteInfosLocked(out) // relay.go
	n.mu.Unlock()
	slices.SortFunc(out, func(a, b PeerInfo) int {
		if a.Name != b.Name {
			if a.Name < b.Name {
				return -1
			}
			return 1
		}
		return slices.Compare(a.ID[:], b.ID[:])
	})
	return out
}

// Peer returns what the node knows of the peer with id, or ErrNoPeer (or
// ErrPeerGone, with the reason, for a peer that left).
func (n *Node) Peer(id uuid.UUID) (PeerInfo, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if p := n.peers[id]; p != nil {
		return n.infoLocked(p), nil
	}
	if rp := n.remoteLocked(id); rp != nil {
		return n.relay.port.info(rp), nil
	}
	return PeerInfo{}, n.goneErrLocked(id)
}

// A hostile LAN. Unkeyed, a beacon, an mDNS record or a Hello is anyone's
// word: it may claim that a linked peer restarted or left, or name an
// address for the node to dial. The guard below makes such words cheap to
// ignore: a claim against a peer with a live link is checked against that
// link (a probe it must answer) and ignored while it answers; an address is
// dialled only once per sighting until it proves to be a node of the mesh,
// a few times in all, and within a dial rate for the whole node; and only
// so many diallers run at once.
const (
	// maxClaimDials is how many failed dials an address that has not proved
	// itself (no handshake with a node there yet) may cost.
	maxClaimDials = 3
	// maxAddrRecords bounds the addresses the guard remembers; addrForget
	// is how long it remembers one that failed.
	maxAddrRecords = 4096
	addrForget     = 10 * time.Minute
	// claimDialRate and claimDialBurst bound the dials per second, for the
	// whole node, to addresses that have not proved themselves.
	claimDialRate  = 20
	claimDialBurst = 40
	// maxDiallers bounds the diallers running at once; peers beyond it wait
	// for one to end (a peer that dials this node links all the same).
	maxDiallers = 128
)

// GuardStats counts what a node refused to believe or to do on a peer's
// word alone.
type GuardStats struct {
	// ClaimsRefuted counts claims that a linked peer restarted or left (a
	// beacon, an mDNS record, a second Hello with its id) that its live
	// link refuted by answering a probe.
	ClaimsRefuted uint64
	// ClaimsUpheld counts such claims whose link failed the probe and was
	// closed: the peer had restarted (or was gone).
	ClaimsUpheld uint64
	// HellosRefused counts links closed at once because they carried the
	// id of a peer whose live link answered the probe.
	HellosRefused uint64
	// Dials counts dials the node made to peers that discovery reported.
	Dials uint64
	// DialsRefused counts dials not made: an address that failed
	// maxClaimDials times without proving itself, no new sighting since its
	// last failure, or over the node's dial rate.
	DialsRefused uint64
	// DiallersWaiting is how many peers wait for a dialler now.
	DiallersWaiting int
}

// Guard returns the counters of the node's guard against a hostile LAN.
func (n *Node) Guard() GuardStats {
	g := &n.guard
	st := GuardStats{
		ClaimsRefuted: g.refuted.Load(),
		ClaimsUpheld:  g.upheld.Load(),
		HellosRefused: g.hellosRefused.Load(),
		Dials:         g.dials.Load(),
		DialsRefused:  g.dialsRefused.Load(),
	}
	n.mu.Lock()
	for _, p := range n.peers {
		if p.wanted() && p.link == nil && !p.dialing && p.addr != "" {
			st.DiallersWaiting++
		}
	}
	n.mu.Unlock()
	return st
}

// guard is the node's state against a hostile LAN. Its zero value is ready.
type guard struct {
	refuted, upheld, hellosRefused, dials, dialsRefused atomic.Uint64

	// mu guards everything below.
	mu       sync.Mutex
	probing  map[*link]bool         // links with a probe in flight
	addrs    map[string]*addrRecord // by dial address
	tokens   float64                // of the claim dial rate
	refilled time.Time
	// diallers counts the dialLoops running; guarded by Node.mu, not mu.
	diallers int
}

type addrRecord struct {
	fails    int
	proven   bool
	lastDial time.Time
	touched  time.Time
}

// record returns addr's record, making room for it. g.mu is held.
func (g *guard) record(addr string, now time.Time) *addrRecord {
	if g.addrs == nil {
		g.addrs = map[string]*addrRecord{}
	}
	r := g.addrs[addr]
	if r != nil && !r.proven && now.Sub(r.touched) > addrForget {
		r = nil
	}
	if r == nil {
		if len(g.addrs) >= maxAddrRecords {
			g.evict(now)
		}
		r = &addrRecord{}
		g.addrs[addr] = r
	}
	r.touched = now
	return r
}

// evict forgets what is stale, or else the least recently touched record.
func (g *guard) evict(now time.Time) {
	var oldest string
	var at time.Time
	for a, r := range g.addrs {
		if now.Sub(r.touched) > addrForget {
			delete(g.addrs, a)
			continue
		}
		if at.IsZero() || r.touched.Before(at) {
			oldest, at = a, r.touched
		}
	}
	if len(g.addrs) >= maxAddrRecords {
		delete(g.addrs, oldest)
	}
}

// proven records that a node of the mesh answers at addr (a handshake
// with it succeeded).
func (g *guard) proven(addr string) {
	if addr == "" {
		return
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.record(addr, time.Now())
	r.proven, r.fails = true, 0
}

// provenLink records the address a linked peer accepts links on: the
// dialled address, or the link's source address with the Hello's port.
func (g *guard) provenLink(l *link, dialAddr string) {
	if dialAddr != "" {
		g.proven(dialAddr)
		return
	}
	if port := l.Remote().ListenPort; port != 0 {
		if ap, err := netip.ParseAddrPort(l.RemoteAddr().String()); err == nil {
			g.proven(netip.AddrPortFrom(ap.Addr().Unmap(), port).String())
		}
	}
}

// dialFailed records a failed dial of addr.
func (g *guard) dialFailed(addr string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	r := g.record(addr, time.Now())
	if !r.proven {
		r.fails++
	}
}

// dialAllowed decides whether the dialler of p may dial addr now. An
// address that proved itself, or one the program configured, may always
// be dialled; any other only after a sighting of p newer than its last
// dial, at most maxClaimDials times without success, and within the
// node's claim dial rate. A refusal counts as a failed attempt, so that the
// dialler backs off rather than asks again at once. Called without n.mu.
func (n *Node) dialAllowed(p *peer, addr string) bool {
	n.mu.Lock()
	static, d := p.static, n.disc
	n.mu.Unlock()
	g := &n.guard
	now := time.Now()
	var seen time.Time
	if d != nil {
		seen, _ = d.Seen(p.id)
	}
	g.mu.Lock()
	r := g.record(addr, now)
	ok := true
	switch {
	case r.proven || static || d == nil:
	case r.fails >= maxClaimDials:
		ok = false
	case !r.lastDial.IsZero() && !seen.After(r.lastDial):
		ok = false
	default:
		// now was read before the lock: diallers that race here must not
		// move refilled back, or a stretch of time would refill twice.
		switch dt := now.Sub(g.refilled); {
		case g.refilled.IsZero():
			g.tokens, g.refilled = claimDialBurst, now
		case dt > 0:
			g.tokens = min(claimDialBurst, g.tokens+dt.Seconds()*claimDialRate)
			g.refilled = now
		}
		if g.tokens < 1 {
			ok = false
		} else {
			g.tokens--
		}
	}
	if ok {
		r.lastDial = now
	}
	g.mu.Unlock()
	if ok {
		g.dials.Add(1)
		return true
	}
	g.dialsRefused.Add(1)
	n.mu.Lock()
	p.attempts++
	n.mu.Unlock()
	return false
}

// takeDialSlotLocked reports whether a dialler may start for p: fewer
// than maxDiallers run. n.mu is held.
func (n *Node) takeDialSlotLocked() bool {
	if n.guard.diallers >= maxDiallers {
		return false
	}
	n.guard.diallers++
	return true
}

// freeDialSlotLocked ends a dialler's turn and starts a waiting peer's.
// n.mu is held.
func (n *Node) freeDialSlotLocked() {
	n.guard.diallers--
	if n.closed {
		return
	}
	for _, q := range n.peers {
		if n.guard.diallers >= maxDiallers {
			return
		}
		if q.wanted() && q.link == nil && !q.dialing && q.addr != "" {
			n.startDialLocked(q)
		}
	}
}

// contest is discovery's Config.Contest: a beacon or mDNS record claims
// that node id now runs instance (or, leaving, that instance leaves). While
// the node holds a live link to id that the claim would condemn, the claim
// is refused and the link probed; a link that fails the probe is closed,
// so that the claim's next repetition is believed. Runs on discovery's
// read loop: it never blocks.
func (n *Node) contest(id, instance uuid.UUID, leaving bool) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.peers[id]
	if n.closed || p == nil || p.link == nil {
		return false
	}
	l := p.link
	if cur := l.Remote().InstanceID; leaving != (instance == cur) {
		// A restart claim of the linked instance, or a goodbye of another:
		// nothing the link would lose.
		return false
	}
	n.probeLocked(l)
	return true
}

// refuseClaim is asked by attach about a new link l: does it carry the id
// of a peer whose link is live and answers? Only two links of one instance,
// opened from opposite ends within HandshakeTimeout, are left to the
// one-link rule (both ends dialled at once, and both must choose the same
// link); a peer that opens a second link, or claims a new instance, while
// its first link still answers is not the peer.
// Called without n.mu, on the new link's handshake goroutine: it may wait
// for the probe.
func (n *Node) refuseClaim(l *link) bool {
	outbound := func(l *link) bool { return l.sink.(*nodeSink).initiator }
	n.mu.Lock()
	p := n.peers[l.Remote().NodeID]
	var old *link
	if p != nil && p.link != nil && p.link != l {
		old = p.link
		if outbound(old) != outbound(l) && old.Remote().InstanceID == l.Remote().InstanceID &&
			time.Since(p.joined) < n.link.Link.HandshakeTimeout {
			old = nil
		}
	}
	n.mu.Unlock()
	if old == nil {
		return false
	}
	if n.probe(old) {
		n.guard.refuted.Add(1)
		n.guard.hellosRefused.Add(1)
		n.log.Warn("mesh: refused a Hello with the id of a linked peer that still answers", "peer", old.Remote().NodeID, "remote", l.RemoteAddr())
		return true
	}
	n.guard.upheld.Add(1)
	return false
}

// probeLocked starts a probe of l unless one is in flight; a link that
// fails it is closed. n.mu is held.
func (n *Node) probeLocked(l *link) {
	g := &n.guard
	g.mu.Lock()
	if g.probing == nil {
		g.probing = map[*link]bool{}
	}
	busy := g.probing[l]
	g.probing[l] = true
	g.mu.Unlock()
	if busy {
		return
	}
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		ok := n.probe(l)
		g.mu.Lock()
		delete(g.probing, l)
		g.mu.Unlock()
		if ok {
			g.refuted.Add(1)
			return
		}
		g.upheld.Add(1)
		n.log.Debug("mesh: a linked peer failed a probe after a claim that it restarted or left", "peer", l.Remote().NodeID)
		l.CloseReason("peer restarted")
	}()
}

// probe pings l and reports whether anything arrives on it within half of
// Silence: a peer that still runs the link answers a ping (and sends its own
// every PingInterval). A peer that restarted fails at once: its host resets
// the old connection when the ping reaches it. The wait is long because a
// false verdict costs an honest link, and only a peer that cannot be
// reached at all makes the probe wait it out.
func (n *Node) probe(l *link) bool {
	before := l.stats.bytesIn.Load()
	l.queuePing()
	signal(l.flushReq)
	wait := max(n.link.Link.PingInterval, n.link.Link.Silence/2)
	deadline := time.NewTimer(wait)
	defer deadline.Stop()
	tick := time.NewTicker(max(wait/64, time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-tick.C:
			if l.stats.bytesIn.Load() > before {
				return true
			}
		case <-l.Done():
			return false
		case <-deadline.C:
			return l.stats.bytesIn.Load() > before
		case <-n.ctx.Done():
			return true // closing: no verdict, and nothing to replace
		}
	}
}
