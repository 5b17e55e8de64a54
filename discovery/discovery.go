package discovery

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/internal/ifaddr"
	"github.com/lanmesh/lanmesh/meshkey"
)

// startupQueries are the offsets, after the first query sent by New, at
// which a starting node repeats its query beacon, in case the first was
// lost (links that just came up drop packets for a while).
var startupQueries = []time.Duration{100 * time.Millisecond, 300 * time.Millisecond, 700 * time.Millisecond}

// answerGap spaces broadcast answers to queries: when many nodes start at
// once, one answer covers every query heard in the gap.
const answerGap = 10 * time.Millisecond

// Each asker (a node instance) gets one answer per Interval, and all askers
// together answersPerInterval (bursts of twice as many): a flood of queries
// under any number of forged ids makes a node answer a bounded number of
// times.
const answersPerInterval = 8

// maxUnicastAnswers bounds the unicast answers to queries per Interval, from
// all sources together; each source gets at most one per Interval.
const maxUnicastAnswers = 16

// Stats are counters of things dropped or refused, for operators and tests.
type Stats struct {
	Rejected      uint64 // datagrams on the beacon port that were not valid beacons
	Ignored       uint64 // valid beacons from other meshes or unbelieved sources
	DroppedPeers  uint64 // new nodes refused because the table held MaxPeers
	DroppedEvents uint64 // events dropped because MaxQueuedEvents were waiting
	SendErrors    uint64 // beacons the kernel refused to send
	RateLimited   uint64 // datagrams dropped unread: their source was over BeaconRate
	// Keyed meshes:
	WrongKey uint64 // keyed beacons under a key id this node does not hold, or with a bad MAC
	Replayed uint64 // keyed beacons that verified but were replays (an old sequence number or instance)
	Unkeyed  uint64 // beacons ignored for want of a key: unkeyed ones heard by a keyed node, or keyed ones by an unkeyed node
	// Hostile hosts:
	Disputed          uint64 // claims (a new instance, a leaving) about a node that Config.Contest said has a live link: ignored
	Implausible       uint64 // beacons and mDNS answers from, or naming, an address this node would not dial (another subnet, loopback, broadcast)
	QueriesUnanswered uint64 // queries not answered: their asker (or all askers together) already had its answers this Interval
}

// Discoverer finds the other nodes of a mesh and keeps the peer table.
// Create it with New; it runs until Close. Its methods are safe for
// concurrent use.
type Discoverer struct {
	cfg  Config
	log  *slog.Logger
	self Beacon

	conn *packetConn // nil when neither broadcast nor seeds are on
	mdns *mdnsAgent  // nil when mDNS is off

	ctx       context.Context // canceled by Close; bounds mDNS browses
	cancel    context.CancelFunc
	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup
	kick      chan struct{} // asks sendLoop for a deferred broadcast answer
	// ifaceChanged: an interface or address may have changed (watch_iface.go)
	ifaceChanged chan struct{}

	// mu guards the table, the interface snapshot derived from the system
	// and the answer pacing; events are queued under it so that their
	// order is the table's order.
	mu            sync.Mutex
	tbl           *table
	ifs           []ifaddr.Interface
	prefixes      []netip.Prefix
	dests         []netip.AddrPort
	seeds         []netip.AddrPort
	lastAnswer    time.Time
	answerPending bool
	warned        map[string]bool

	// qmu guards the events waiting for the dispatcher.
	qmu   sync.Mutex
	queue []Event
	qsig  chan struct{}

	rejected, ignored, droppedEvents, sendErrors atomic.Uint64
	rateLimited, wrongKey, replayed, unkeyed     atomic.Uint64
	disputed, implausible, unanswered            atomic.Uint64

	// keys is the keyring derived for the mesh (nil: unkeyed).
	keys        atomic.Pointer[meshkey.Set]
	seq         atomic.Uint64 // of the keyed beacons this instance sends
	beaconLimit *sourceLimiter
	// answerLimit allows one unicast answer per source per Interval, and
	// maxUnicastAnswers in all: a query never turns this node into a
	// reflector aimed at a spoofed source. askerLimit allows one answer
	// per asking instance per Interval, answersPerInterval in all.
	answerLimit, askerLimit *sourceLimiter
	// loopback: the node runs discovery on loopback (a loopback interface
	// or destination was chosen), so loopback sources are believed.
	loopback bool
	// replay and replayMDNS are the replay state of beacons and of mDNS
	// records (whose sequence numbers are their own); guarded by mu.
	replay, replayMDNS *replayGuard
}

// New validates cfg, binds the beacon socket, starts the mDNS service,
// sends the first query beacon and returns a running Discoverer.
// NodeID and InstanceID are chosen at random when nil.
func New(cfg Config) (*Discoverer, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Interfaces = slices.Clone(cfg.Interfaces)
	cfg.Destinations = slices.Clone(cfg.Destinations)
	cfg.Seeds = slices.Clone(cfg.Seeds)
	if cfg.NodeID == uuid.Nil {
		cfg.NodeID = uuid.New()
	}
	if cfg.InstanceID == uuid.Nil {
		cfg.InstanceID = uuid.New()
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	d := &Discoverer{
		cfg: cfg,
		log: log,
		self: Beacon{
			ID:       cfg.NodeID,
			Instance: cfg.InstanceID,
			Port:     uint16(cfg.Port),
			Mesh:     cfg.Mesh,
			Name:     cfg.Name,
		},
		ctx:    ctx,
		cancel: cancel,
		done:   make(chan struct{}),
		kick:   make(chan struct{}, 1),
		tbl:    newTable(cfg.Mesh, cfg.NodeID, cfg.LostAfter, cfg.MaxPeers, nil),
		warned: make(map[string]bool),
		qsig:   make(chan struct{}, 1),
	}
	d.keys.Store(cfg.Keyring.Derive(cfg.Mesh))
	d.beaconLimit = newSourceLimiter(cfg.BeaconRate, int(2*cfg.BeaconRate)+1, maxBeaconRate(cfg.BeaconRate))
	// A quarter more than one per Interval: a seed's queries come every
	// Interval with jitter, and each must be answered.
	perIv := 1.25 / cfg.Interval.Seconds()
	d.answerLimit = newSourceLimiter(perIv, 1, maxUnicastAnswers*perIv)
	d.askerLimit = newSourceLimiter(perIv, 1, answersPerInterval*perIv)
	d.replay = newReplayGuard(4 * cfg.MaxPeers)
	d.replayMDNS = newReplayGuard(4 * cfg.MaxPeers)
	d.refresh()
	if cfg.Broadcast || len(cfg.Seeds) > 0 {
		conn, err := listenShared(cfg.BeaconPort)
		if err != nil {
			cancel()
			return nil, fmt.Errorf("%w %d: %w", ErrListen, cfg.BeaconPort, err)
		}
		d.conn = conn
	}
	if cfg.MDNS {
		d.mdns = newMDNSAgent(d)
		d.mdns.sync(d.multicastInterfaces())
	}
	d.watchInterfaces()
	if cfg.OnEvent != nil {
		d.wg.Add(1)
		go d.dispatch()
	}
	if d.conn != nil {
		// The first query goes out before New returns: every node that
		// hears it answers at once, so peers are found in a round trip.
		d.sendQuery()
		d.wg.Add(2)
		go d.readLoop()
		go d.sendLoop()
	} else {
		d.wg.Add(1)
		go d.sweepLoop()
	}
	if d.mdns != nil {
		d.wg.Add(1)
		go d.mdns.loop()
	}
	return d, nil
}

// Self returns the beacon this node sends (without flags).
func (d *Discoverer) Self() Beacon { return d.self }

// Peers returns a snapshot of the peer table, sorted by node id.
func (d *Discoverer) Peers() []Peer {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.tbl.snapshot()
}

// Stats returns the drop counters.
func (d *Discoverer) Stats() Stats {
	d.mu.Lock()
	droppedPeers := d.tbl.dropped
	d.mu.Unlock()
	return Stats{
		Rejected:      d.rejected.Load(),
		Ignored:       d.ignored.Load(),
		DroppedPeers:  droppedPeers,
		DroppedEvents: d.droppedEvents.Load(),
		SendErrors:    d.sendErrors.Load(),
		RateLimited:   d.rateLimited.Load(),
		WrongKey:      d.wrongKey.Load(),
		Replayed:      d.replayed.Load(),
		Unkeyed:       d.unkeyed.Load(),

		Disputed:          d.disputed.Load(),
		Implausible:       d.implausible.Load(),
		QueriesUnanswered: d.unanswered.Load(),
	}
}

// maxBeaconRate is the ceiling on datagrams processed per second from all
// sources together: 64 sources' worth of BeaconRate, and at least 1000.
func maxBeaconRate(perSource float64) float64 { return max(64*perSource, 1000) }

// Seen returns when any source last heard of the node id, and false if the
// table does not hold it. A dialler uses it to dial an address that has not
// proved itself only once per sighting.
func (d *Discoverer) Seen(id uuid.UUID) (time.Time, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	e := d.tbl.peers[id]
	if e == nil {
		return time.Time{}, false
	}
	return e.LastSeen, true
}

// SetKeyring replaces the mesh keys: beacons sent from now on are signed
// with kr's primary key, and beacons are checked against all of kr. A
// running Discoverer cannot become keyed or unkeyed.
func (d *Discoverer) SetKeyring(kr meshkey.Keyring) error {
	if err := kr.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if kr.Keyed() != (d.keys.Load() != nil) {
		return fmt.Errorf("%w: a running Discoverer cannot become keyed or unkeyed", ErrConfig)
	}
	d.keys.Store(kr.Derive(d.cfg.Mesh))
	if d.mdns != nil {
		d.mdns.resign()
	}
	return nil
}

// Close sends a leaving beacon, stops every goroutine and closes every
// socket; it returns when all are gone, which can take up to MDNSTimeout
// while an mDNS browse finishes. Events still queued are dropped. Close is
// idempotent; it must not be called from OnEvent.
func (d *Discoverer) Close() error {
	d.closeOnce.Do(func() {
		if d.conn != nil {
			d.send(FlagLeaving, true)
		}
		close(d.done)
		d.cancel()
		if d.conn != nil {
			d.conn.close()
		}
		if d.mdns != nil {
			// Stop answering browses now; the loop may still be finishing
			// queries, and cannot start servers again.
			d.mdns.shutdown()
		}
		d.wg.Wait()
	})
	return nil
}

// refresh re-reads the interfaces and recomputes destinations and seeds.
func (d *Discoverer) refresh() {
	ifs, err := ifaddr.List(d.cfg.Interfaces)
	if err != nil {
		d.log.Warn("discovery: read interfaces", "err", err)
	}
	dests := beaconDestinations(&d.cfg, ifs)
	var seeds []netip.AddrPort
	for _, s := range d.cfg.Seeds {
		ua, err := net.ResolveUDPAddr("udp4", s)
		if err != nil {
			d.warnOnce("seed "+s, "discovery: resolve seed", "seed", s, "err", err)
			continue
		}
		ap := ua.AddrPort()
		seeds = append(seeds, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
	}
	loopback := false
	for _, a := range d.cfg.Destinations {
		loopback = loopback || a.Addr().IsLoopback()
	}
	var prefixes []netip.Prefix
	for _, it := range ifs {
		if it.Loopback {
			// Loopback sources are judged by d.loopback alone.
			loopback = loopback || len(d.cfg.Interfaces) > 0
			continue
		}
		if it.Up {
			prefixes = append(prefixes, it.Prefixes...)
		}
	}
	d.mu.Lock()
	d.ifs = ifs
	d.prefixes = prefixes
	d.loopback = loopback
	d.dests = dests
	d.seeds = seeds
	d.mu.Unlock()
}

// beaconDestinations says where broadcast beacons go: the caller's
// Destinations if any; otherwise the directed broadcast address of every
// up, broadcast-capable interface, plus 255.255.255.255 only when no
// interface restriction applies (the kernel sends it out of whichever
// interface routes it, which may not be one the caller chose).
func beaconDestinations(cfg *Config, ifs []ifaddr.Interface) []netip.AddrPort {
	if !cfg.Broadcast {
		return nil
	}
	if len(cfg.Destinations) > 0 {
		return slices.Clone(cfg.Destinations)
	}
	port := uint16(cfg.BeaconPort)
	var dests []netip.AddrPort
	for _, a := range ifaddr.BroadcastTargets(ifs) {
		dests = append(dests, netip.AddrPortFrom(a, port))
	}
	if len(cfg.Interfaces) == 0 {
		dests = append(dests, netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), port))
	}
	return dests
}

// multicastInterfaces returns the interfaces that mDNS runs on.
func (d *Discoverer) multicastInterfaces() []ifaddr.Interface {
	d.mu.Lock()
	defer d.mu.Unlock()
	var out []ifaddr.Interface
	for _, it := range d.ifs {
		if it.Up && it.Multicast && !it.Loopback && len(it.Prefixes) > 0 {
			out = append(out, it)
		}
	}
	return out
}

func (d *Discoverer) warnOnce(key, msg string, args ...any) {
	d.mu.Lock()
	seen := d.warned[key]
	d.warned[key] = true
	d.mu.Unlock()
	if !seen {
		d.log.Warn(msg, args...)
	}
}

// classify says which source a beacon from addr came through, and whether
// to believe it at all: only seeds and plausible addresses are believed,
// because a peer's address is what the node will dial.
func (d *Discoverer) classify(from netip.AddrPort) (Via, bool) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if slices.Contains(d.seeds, from) {
		return ViaSeed, true
	}
	if d.plausibleLocked(from.Addr()) {
		return ViaBroadcast, true
	}
	return 0, false
}

// believable applies classify's rule to an address learnt from mDNS.
func (d *Discoverer) believable(a netip.Addr) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.plausibleLocked(a)
}

// plausibleLocked says whether a is an address a node of this LAN can
// have: an IPv4 unicast address on the subnet of one of the interfaces
// discovery runs on (Config.Interfaces, or every interface), not the
// subnet's own or broadcast address; loopback only when discovery runs on
// loopback. A beacon is a claim, and this is the one part of it that costs
// a dial: an address from another subnet (or the node's own loopback) is
// never the address of a peer on this LAN. Seeds are checked by classify.
func (d *Discoverer) plausibleLocked(a netip.Addr) bool {
	a = a.Unmap()
	switch {
	case !a.Is4() || a.IsUnspecified() || a.IsMulticast() || a == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return false
	case a.IsLoopback():
		return d.loopback
	}
	for _, p := range d.prefixes {
		if !p.Contains(a) {
			continue
		}
		if bc, ok := ifaddr.DirectedBroadcast(p); ok && (a == bc || a == p.Masked().Addr()) {
			return false
		}
		return true
	}
	return false
}

func (d *Discoverer) observe(s sighting) {
	if d.contested(s) {
		d.disputed.Add(1)
		d.log.Debug("discovery: claim disputed by a live link", "id", s.ID, "instance", s.Instance, "leaving", s.Leaving, "addr", s.Addr)
		return
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	d.emitLocked(d.tbl.observe(s, nil))
}

// emitLocked queues events for the dispatcher; d.mu is held so that the
// queue's order is the table's.
func (d *Discoverer) emitLocked(evs []Event) {
	for _, ev := range evs {
		d.log.Debug("discovery: event", "kind", ev.Kind, "peer", ev.Peer.ID, "addr", ev.Peer.Addr, "via", ev.Peer.Via, "reason", ev.Reason)
	}
	if d.cfg.OnEvent == nil || len(evs) == 0 {
		return
	}
	d.qmu.Lock()
	for _, ev := range evs {
		if ev.Kind == Updated && d.coalesceLocked(ev) {
			continue
		}
		if len(d.queue) >= d.cfg.MaxQueuedEvents {
			// Warn on the first drop and then now and again, not per event.
			if n := d.droppedEvents.Add(1); n == 1 || n%1000 == 0 {
				d.log.Warn("discovery: event queue full; events dropped (OnEvent too slow)", "dropped", n, "kind", ev.Kind, "peer", ev.Peer.ID)
			}
			continue
		}
		d.queue = append(d.queue, ev)
	}
	d.qmu.Unlock()
	select {
	case d.qsig <- struct{}{}:
	default:
	}
}

// coalesceLocked folds an Updated into an Updated of the same peer that
// is still waiting, keeping the older Prev, so that a peer whose address
// flaps cannot fill the queue. d.qmu is held.
func (d *Discoverer) coalesceLocked(ev Event) bool {
	for i := len(d.queue) - 1; i >= 0; i-- {
		q := &d.queue[i]
		if q.Peer.ID != ev.Peer.ID {
			continue
		}
		if q.Kind != Updated || q.Peer.Instance != ev.Peer.Instance {
			return false
		}
		q.Peer = ev.Peer
		return true
	}
	return false
}

// dispatch runs OnEvent for every queued event, in order, on its own
// goroutine so that a slow callback never stalls a socket.
func (d *Discoverer) dispatch() {
	defer d.wg.Done()
	for {
		d.qmu.Lock()
		evs := d.queue
		d.queue = nil
		d.qmu.Unlock()
		for _, ev := range evs {
			select {
			case <-d.done:
				return
			default:
			}
			d.cfg.OnEvent(ev)
		}
		if len(evs) > 0 {
			continue
		}
		select {
		case <-d.qsig:
		case <-d.done:
			return
		}
	}
}

// readLoop handles beacons until Close closes the socket.
func (d *Discoverer) readLoop() {
	defer d.wg.Done()
	buf := make([]byte, MaxBeaconLen+1) // one more, so that an oversized datagram is seen as such
	for {
		n, from, err := d.conn.readFrom(buf)
		if err != nil {
			select {
			case <-d.done:
				return
			default:
			}
			if isClosedErr(err) {
				return
			}
			d.log.Debug("discovery: read", "err", err)
			// A persistent error must not spin the CPU.
			select {
			case <-d.done:
				return
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		d.handlePacket(buf[:n], from)
	}
}

func (d *Discoverer) handlePacket(p []byte, from netip.AddrPort) {
	if !d.beaconLimit.allow(from.Addr(), time.Now()) {
		d.rateLimited.Add(1)
		return
	}
	b, ok := d.parse(p, from)
	if !ok {
		return
	}
	if b.ID == d.self.ID {
		if b.Instance != d.self.Instance {
			d.warnOnce("duplicate id", "discovery: another node uses this node's id", "id", b.ID, "from", from)
		}
		return
	}
	if b.Seq != 0 && !d.fresh(b, false) {
		d.replayed.Add(1)
		d.log.Debug("discovery: replayed beacon", "from", from, "id", b.ID, "seq", b.Seq)
		return
	}
	if b.Mesh != d.cfg.Mesh {
		d.ignored.Add(1)
		d.log.Debug("discovery: beacon of another mesh", "from", from, "mesh", b.Mesh)
		d.otherMesh(b, from)
		return
	}
	via, ok := d.classify(from)
	if !ok {
		d.implausible.Add(1)
		d.log.Debug("discovery: beacon from an address that is not on this LAN", "from", from)
		return
	}
	d.log.Debug("discovery: beacon", "from", from, "id", b.ID, "flags", b.Flags)
	if b.Flags&FlagQuery != 0 && b.Flags&FlagLeaving == 0 {
		d.answer(from, b.Instance, b.Nonce)
	}
	d.observe(sighting{
		ID:       b.ID,
		Instance: b.Instance,
		Name:     b.Name,
		Mesh:     b.Mesh,
		Addr:     netip.AddrPortFrom(from.Addr(), b.Port),
		Via:      via,
		Leaving:  b.Flags&FlagLeaving != 0,
		KeyID:    b.KeyID,
	})
}

// parse reads a datagram as a beacon of the kind this node speaks: keyed
// and verified when it has a key, unkeyed otherwise. Other programs use
// these ports, so what fails is logged at Debug only.
func (d *Discoverer) parse(p []byte, from netip.AddrPort) (Beacon, bool) {
	keys := d.keys.Load()
	v := beaconVersion(p)
	var b Beacon
	var err error
	switch {
	case keys != nil && v == BeaconVersion:
		d.unkeyed.Add(1)
		d.keyMismatch(p, from)
		return b, false
	case keys == nil && v == KeyedBeaconVersion:
		d.unkeyed.Add(1)
		d.keyMismatch(p, from)
		return b, false
	case keys != nil:
		b, err = ParseSignedBeacon(p, keys)
		if errors.Is(err, ErrBeaconKey) || errors.Is(err, ErrBeaconMAC) {
			d.wrongKey.Add(1)
			if errors.Is(err, ErrBeaconKey) {
				d.keyMismatch(p, from)
			}
			d.log.Debug("discovery: beacon does not verify", "from", from, "err", err)
			return b, false
		}
	default:
		b, err = ParseBeacon(p)
	}
	if err != nil {
		d.rejected.Add(1)
		d.log.Debug("discovery: not a beacon", "from", from, "len", len(p), "err", err)
		return b, false
	}
	return b, true
}

// fresh checks a verified keyed beacon, or with mdns an mDNS record,
// against the replay state.
func (d *Discoverer) fresh(b Beacon, mdns bool) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if mdns {
		return d.replayMDNS.fresh(b.ID, b.Instance, b.Seq, true)
	}
	return d.replay.fresh(b.ID, b.Instance, b.Seq, false)
}

// answer replies to a query: by unicast to the asker at once (the only
// way back on a network that carries no broadcast), and by broadcast,
// paced by answerGap, for nodes that share the asker's port on its host
// and so may miss the unicast.
//
// A node answers each asker (a node instance) once per Interval, and a
// source address by unicast once per Interval: the startup queries that
// follow a node's first are for a lost answer, and the next periodic beacon
// serves as well.
func (d *Discoverer) answer(to netip.AddrPort, asker uuid.UUID, nonce uint64) {
	now := time.Now()
	if !d.askerLimit.allowKey(asker[:], now) {
		d.unanswered.Add(1)
		return
	}
	if d.answerLimit.allow(to.Addr(), now) {
		d.sendTo(0, nonce, []netip.AddrPort{to})
	}
	d.mu.Lock()
	if d.answerPending {
		d.mu.Unlock()
		return
	}
	if now.Sub(d.lastAnswer) >= answerGap {
		d.lastAnswer = now
		d.mu.Unlock()
		d.send(0, false)
		return
	}
	d.answerPending = true
	d.mu.Unlock()
	select {
	case d.kick <- struct{}{}:
	default:
	}
}

// contested asks Config.Contest about a claim the sighting makes against a
// node: that it restarted (a new instance) or is leaving. True means a live
// link disputes it, and the sighting is dropped whole.
func (d *Discoverer) contested(s sighting) bool {
	if d.cfg.Contest == nil || s.ID == d.self.ID {
		return false
	}
	return d.cfg.Contest(s.ID, s.Instance, s.Leaving)
}

// sendQuery asks every node within reach to answer at once.
func (d *Discoverer) sendQuery() { d.send(FlagQuery, true) }

// send sends this node's beacon with flags to the broadcast destinations
// and, when toSeeds, to the seeds.
func (d *Discoverer) send(flags Flags, toSeeds bool) {
	d.mu.Lock()
	dsts := slices.Clone(d.dests)
	if toSeeds {
		dsts = append(dsts, d.seeds...)
	}
	d.mu.Unlock()
	d.sendTo(flags, queryNonce(flags), dsts)
}

// queryNonce is a fresh nonce for a query beacon, 0 for others.
func queryNonce(flags Flags) uint64 {
	if flags&FlagQuery == 0 {
		return 0
	}
	return rand.Uint64() | 1
}

// sendTo sends this node's beacon with flags, signed when keyed, with nonce
// (a query's own, or the one of the query it answers).
func (d *Discoverer) sendTo(flags Flags, nonce uint64, dsts []netip.AddrPort) {
	if len(dsts) == 0 {
		return
	}
	b := d.self
	b.Flags = flags
	var arr [MaxBeaconLen]byte
	var p []byte
	var err error
	if keys := d.keys.Load(); keys != nil {
		b.Seq, b.Nonce = d.seq.Add(1), nonce
		p, err = b.AppendSigned(arr[:0], keys.Primary())
	} else {
		p, err = b.AppendBinary(arr[:0])
	}
	if err != nil {
		// Validate guarantees a valid beacon; this is a bug.
		panic(fmt.Sprintf("discovery: own beacon invalid: %v", err))
	}
	if err := d.conn.writeTo(p, dsts); err != nil {
		d.sendErrors.Add(1)
		d.log.Debug("discovery: send", "err", err)
	}
}

func (d *Discoverer) nextInterval() time.Duration {
	iv := d.cfg.Interval
	if j := d.cfg.Jitter; j > 0 {
		iv += time.Duration(rand.Int64N(int64(2*j)+1)) - j
	}
	return iv
}

// sweep reports peers silent for LostAfter and returns when to sweep
// next: when the quietest peer is due, so that Lost comes on time rather
// than up to a polling period late, but not sooner than LostAfter/16: a
// sweep reads the whole table, and a flood of forged peers, each due at
// its own instant, must not make it run once per peer. With no peers it
// polls every LostAfter, which is never later than a new peer's due time.
func (d *Discoverer) sweep() time.Duration {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.emitLocked(d.tbl.expire(nil))
	next := d.tbl.nextExpiry()
	if next.IsZero() {
		return d.cfg.LostAfter
	}
	return max(time.Until(next), d.cfg.LostAfter/16, time.Millisecond)
}

// sendLoop sends periodic beacons, startup queries, seed queries and
// deferred answers, re-reads interfaces, and sweeps the table.
func (d *Discoverer) sendLoop() {
	defer d.wg.Done()
	si := 0
	startupT := time.NewTimer(startupQueries[0])
	defer startupT.Stop()
	beaconT := time.NewTimer(d.nextInterval())
	defer beaconT.Stop()
	refreshT := time.NewTicker(d.cfg.InterfaceRefresh)
	defer refreshT.Stop()
	sweepT := time.NewTimer(d.cfg.LostAfter)
	defer sweepT.Stop()
	answerT := time.NewTimer(time.Hour)
	answerT.Stop()
	defer answerT.Stop()
	for {
		select {
		case <-d.done:
			return
		case <-startupT.C:
			d.sendQuery()
			si++
			if si < len(startupQueries) {
				startupT.Reset(startupQueries[si] - startupQueries[si-1])
			}
		case <-beaconT.C:
			d.send(0, false)
			// Seeds get a query, so that they answer by unicast on
			// networks where our broadcasts do not reach them.
			d.mu.Lock()
			seeds := slices.Clone(d.seeds)
			d.mu.Unlock()
			d.sendTo(FlagQuery, queryNonce(FlagQuery), seeds)
			beaconT.Reset(d.nextInterval())
		case <-refreshT.C:
			d.signalIfaceChange() // re-reads them, and announces a change
		case <-d.ifaceChanged:
			// A new interface or address: announce at once, and again on
			// the startup schedule, as a starting node does.
			if d.interfacesChanged() {
				d.sendQuery()
				si = 0
				startupT.Reset(startupQueries[0])
			}
		case <-sweepT.C:
			sweepT.Reset(d.sweep())
		case <-d.kick:
			d.mu.Lock()
			wait := answerGap - time.Since(d.lastAnswer)
			d.mu.Unlock()
			answerT.Reset(max(wait, 0))
		case <-answerT.C:
			d.mu.Lock()
			d.lastAnswer = time.Now()
			d.answerPending = false
			d.mu.Unlock()
			d.send(0, false)
		}
	}
}

// sweepLoop is sendLoop's stand-in when only mDNS runs: it re-reads
// interfaces and sweeps the table.
func (d *Discoverer) sweepLoop() {
	defer d.wg.Done()
	refreshT := time.NewTicker(d.cfg.InterfaceRefresh)
	defer refreshT.Stop()
	sweepT := time.NewTimer(d.cfg.LostAfter)
	defer sweepT.Stop()
	for {
		select {
		case <-d.done:
			return
		case <-refreshT.C:
			d.signalIfaceChange() // re-reads them, and announces a change
		case <-d.ifaceChanged:
			d.interfacesChanged()
		case <-sweepT.C:
			sweepT.Reset(d.sweep())
		}
	}
}
