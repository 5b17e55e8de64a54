package mesh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/discovery"
	"github.com/lanmesh/lanmesh/internal/resume"
	"github.com/lanmesh/lanmesh/meshkey"
)

// Node is one member of a mesh: it finds the other nodes, links to each of
// them directly (exactly one link per pair), keeps the links alive, redials
// those that drop while the peer is still seen, and lets the program talk
// to any peer through the same pump a Messenger has (Send, Xfer, Get).
//
// What a node receives, peer events and messages, comes in one stream, in
// order (see Get); the program takes it with Get, Receive or the callbacks.
// A program that never takes it slows its peers once Limits.ReceiveQueue
// wait, and links no new peer once Limits.Events wait: nothing is dropped.
//
// The goroutines a Node runs (accepting, dialling, one watcher per link, the
// dispatcher of the callbacks, discovery's) all end by Close, which joins
// them. Its methods are safe for concurrent use.
type Node struct {
	cfg   NodeConfig
	link  Config // the Config of its links, from cfg
	hello hello
	id    uuid.UUID
	log   *slog.Logger
	tr    Transport

	lns  []net.Listener
	disc *discovery.Discoverer
	cc   *cableCar
	lane *nodeLane // the UDP lane's socket (lane.go); nil: none

	// keys is the keyring derived for the mesh name (nil: unkeyed);
	// SetKeyring replaces it.
	keys     atomic.Pointer[meshkey.Set]
	acc      *acceptor    // the one accept loop: Listen, cable_car
	budget   *frameBudget // for the links' partial frames
	counters nodeCounters
	guard    guard // against a hostile LAN: node_peers.go

	ctx    context.Context // ends when Close begins: waits, dials, accepts
	cancel context.CancelFunc
	// hsCtx bounds handshakes; Close ends it only after a short grace, so
	// that a handshake the peer has already completed becomes a link that
	// is then closed with a Bye, not cut off.
	hsCtx    context.Context
	hsCancel context.CancelFunc
	wg       sync.WaitGroup

	// mu guards the peer table and everything about dialling.
	mu          sync.Mutex
	peers       map[uuid.UUID]*peer
	sessions    map[uuid.UUID]*peerSession // resumable sessions, by peer
	tombs       map[uuid.UUID]tomb         // peers that left recently, for Send's error
	relay       *relayState                // the attached relay's remote peers (relay.go)
	closed      bool
	closeReason string

	// links is the table Send reads without a lock: a copy made on every
	// change of mu's table.
	links atomic.Pointer[linkTable]

	// inbox is the stream of peer events and messages (node_events.go);
	// inboxDone is closed once Close has ended everything that adds to it.
	inbox     *queue[Message]
	inboxDone chan struct{}
	evGate    eventGate
	// out is what Get and Receive read: the inbox itself, or, with
	// callbacks, what the dispatcher hands on. outDone is closed once
	// nothing more will come to it.
	out        *queue[Message]
	outDone    chan struct{}
	inCallback atomic.Bool // the dispatcher is in OnPeer or OnMessage
	// takeMu guards the batch last taken from out.
	takeMu sync.Mutex
	taken  []Message
	next   int
	// receivers counts Receive calls waiting, which take must wake when it
	// leaves messages in its batch; a game loop's Get wakes nobody.
	receivers atomic.Int32

	traffic TrafficLog
	reqs    requests

	mismatch mismatchLog // tells of codec, mesh and key mismatches once per peer

	// closing is set by the first Close; closed is closed when it is done.
	closing  atomic.Bool
	closedCh chan struct{}
}

// linkTable maps peers to their current link; it is never changed once
// published.
type linkTable struct {
	byID map[uuid.UUID]*link
	all  []*link
	ids  []uuid.UUID // ids[i] is all[i]'s: linkTo scans a few faster than it hashes
	// resuming maps the peers whose link is down but whose session is
	// kept: Send journals for them.
	resuming map[uuid.UUID]*peerSession
}

// peer is one node known to this one, by discovery, by a configured address
// or by a link. Guarded by Node.mu.
type peer struct {
	id       uuid.UUID
	name     string
	instance uuid.UUID // of the current link, or the last seen
	addr     string    // where to dial it
	via      discovery.Via
	keyID    meshkey.ID // the key its beacons are signed with (keyed meshes)
	seen     bool       // discovery reports it present
	static   bool       // one of cfg.Peers resolved to it
	quiet    bool       // a cable_car peer: no handshake, no control frames
	link     *link
	// pending: links this node follows (its id is the higher) that wait,
	// beside link, for the peer to choose one (Node.chosen).
	pending []*link
	dialing bool
	// replacing: the peer closed our link as a duplicate, so it holds
	// another one, whose handshake has not finished here yet.
	replacing bool
	wake      chan struct{} // cuts a dialler's wait short
	attempts  int
	// notBefore: no dial before this (the backoff in force). It lives on
	// the peer, not in the dialler, so that no wake-up and no new dialler
	// cuts it short.
	notBefore time.Time
	joined    time.Time
	lastErr   error // why its last link ended
	// resuming: its last link ended without ending the session; the node
	// redials it until window fires (ResumeConfig.Window).
	resuming bool
	window   *time.Timer
	// announced: PeerResuming was pushed for the present resume, so
	// PeerResumed follows it (a link closed by the one-link rule resumes
	// in silence, as it ended).
	announced bool
}

func (p *peer) wanted() bool { return p.seen || p.static || p.resuming }

// tomb is what is kept of a peer that left, so that Send can say so.
type tomb struct {
	name     string
	instance uuid.UUID // of the link that ended
	err      error
	at       time.Time
}

const maxTombs = 256

// NewNode starts a node: it listens, starts discovery and the dialling of
// cfg.Net.Peers, and returns. Peers appear as they are linked: a
// PeerJoined in the stream (Get, Receive, OnPeer), and in Peers.
func NewNode(cfg NodeConfig) (*Node, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg.Net.Listen = slices.Clone(cfg.Net.Listen)
	cfg.Net.Peers = slices.Clone(cfg.Net.Peers)
	cfg.Keyring = cfg.Keyring.Clone()
	cfg.Resume = cfg.Resume.withDefaults()
	ctx, cancel := context.WithCancel(context.Background())
	hsCtx, hsCancel := context.WithCancel(context.Background())
	lc := cfg.linkConfig()
	n := &Node{
		hsCtx:     hsCtx,
		hsCancel:  hsCancel,
		cfg:       cfg,
		link:      lc,
		id:        cfg.NodeID,
		log:       lc.logger(),
		tr:        cfg.Link.transport(),
		ctx:       ctx,
		cancel:    cancel,
		peers:     map[uuid.UUID]*peer{},
		sessions:  map[uuid.UUID]*peerSession{},
		tombs:     map[uuid.UUID]tomb{},
		inbox:     newQueue[Message](cfg.Limits.ReceiveQueue),
		inboxDone: make(chan struct{}),
		closedCh:  make(chan struct{}),
	}
	n.evGate.init(cfg.Limits.Events)
	n.out, n.outDone = n.inbox, n.inboxDone
	if cfg.OnPeer != nil || cfg.OnMessage != nil {
		n.out, n.outDone = newQueue[Message](cfg.Limits.ReceiveQueue), make(chan struct{})
	}
	n.keys.Store(cfg.Keyring.Derive(cfg.Mesh))
	n.acc = newAcceptor(ctx, &n.wg, cfg.Link.Accept, n.log)
	n.budget = newFrameBudget(cfg.Link.Accept.PartialFrameBudget)
	n.traffic.init(cfg.Limits.TrafficLog)
	n.reqs.init()
	n.links.Store(&linkTable{byID: map[uuid.UUID]*link{}})
	if n.out != n.inbox {
		go n.dispatch() // joined by Close through outDone
	}
	fail := func(err error) (*Node, error) {
		n.Close()
		return nil, err
	}
	for _, addr := range cfg.Net.Listen {
		ln, err := n.tr.Listen(addr)
		if err != nil {
			return fail(fmt.Errorf("mesh: listen on %s: %w", addr, err))
		}
		n.lns = append(n.lns, ln)
	}
	if err := n.startLane(); err != nil {
		return fail(err)
	}
	if n.link.listenPort == 0 && len(n.lns) > 0 {
		n.link.listenPort = portOf(n.lns[0].Addr())
	}
	n.hello = n.link.hello()

	if cfg.Responder != nil {
		cfg.Responder.start(n)
	}
	for _, ln := range n.lns {
		n.acc.serve(ln, n.handshakeIncoming)
	}
	for _, addr := range cfg.Net.Peers {
		n.wg.Add(1)
		go n.staticLoop(addr)
	}
	if cfg.CableCar.Enabled {
		cc, err := startCableCar(n)
		if err != nil {
			return fail(err)
		}
		n.cc = cc
	}
	if !cfg.Discovery.Off {
		dc := cfg.discoveryConfig(int(n.link.listenPort))
		dc.OnEvent = n.onDiscovery
		dc.Contest = n.contest
		d, err := discovery.New(dc)
		if err != nil {
			return fail(err)
		}
		n.mu.Lock()
		n.disc = d
		n.mu.Unlock()
	}
	n.log.Debug("mesh: node started", "id", n.id, "name", n.link.Name, "addrs", n.Addrs())
	return n, nil
}

func portOf(a net.Addr) uint16 {
	if ta, ok := a.(*net.TCPAddr); ok {
		return uint16(ta.Port)
	}
	_, p, err := net.SplitHostPort(a.String())
	if err != nil {
		return 0
	}
	port, _ := strconv.ParseUint(p, 10, 16)
	return uint16(port)
}

// ID returns the node's id.
func (n *Node) ID() uuid.UUID { return n.id }

// Name returns the node's name.
func (n *Node) Name() string { return n.link.Name }

// Addrs returns the addresses the node accepts links on.
func (n *Node) Addrs() []net.Addr {
	out := make([]net.Addr, len(n.lns))
	for i, ln := range n.lns {
		out[i] = ln.Addr()
	}
	return out
}

// Done is closed once the node is closed: Close (or CloseReason) has run to
// its end. For code that must stop with the node, such as a web view.
func (n *Node) Done() <-chan struct{} { return n.closedCh }

// Close leaves the mesh gracefully with the reason "node closed".
func (n *Node) Close() error { return n.CloseReason("node closed") }

// CloseReason leaves the mesh: it tells discovery (a leaving beacon), stops
// accepting and dialling, closes every link gracefully with reason (what is
// pending is sent first; peers see the reason), and returns once every
// goroutine of the node has ended. The PeerLeft events of the links it
// closes come last in the stream, after every message received before;
// Receive returns ErrNodeClosed once all are taken. Idempotent.
//
// With callbacks, Close waits for the dispatcher to deliver all of that,
// unless a callback is running when Close is called (Close may be called
// from OnPeer or OnMessage): then the node is closed when Close returns,
// and the dispatcher delivers what remains once that callback returns,
// then ends. A Close while another is under way waits for it to finish,
// unless a callback is running (it may be the one the first Close waits
// for): then it returns at once.
func (n *Node) CloseReason(reason string) error {
	if !n.closing.CompareAndSwap(false, true) {
		// Another Close is under way (or done): wait for it, unless a
		// callback runs, which that Close may be waiting for.
		if !n.inCallback.Load() {
			<-n.closedCh
		}
		return nil
	}
	defer close(n.closedCh)
	n.settle(min(n.link.Link.CloseTimeout/4, 500*time.Millisecond))
	n.mu.Lock()
	n.closed = true
	n.closeReason = reason
	d := n.disc
	var links []*link
	for _, p := range n.peers {
		if p.link != nil {
			links = append(links, p.link)
		}
		links = append(links, p.pending...)
		n.stopWindowLocked(p)
		if p.resuming && p.link == nil {
			// No link to close: its session ends here.
			p.resuming, p.announced = false, false
			loss := n.endSessionLocked(p, resume.LossClosed)
			n.pushEventLocked(PeerEvent{Kind: PeerLeft, Peer: n.infoLocked(p), Err: closeErr(ErrClosed, false, reason), Lost: loss})
		}
	}
	n.publishLocked()
	n.mu.Unlock()
	if d != nil {
		d.Close()
	}
	n.cancel()
	for _, ln := range n.lns {
		ln.Close()
	}
	if n.cc != nil {
		n.cc.close()
	}
	// No link is attached from now on (attach sees closed): close the
	// ones there are; their watchers, which n.wg joins, report them.
	var wg sync.WaitGroup
	for _, l := range links {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l.CloseReason(reason)
		}()
	}
	wg.Wait()
	// Handshakes in flight get a moment to finish (their links are then
	// closed with reason), then are cut off.
	grace := time.AfterFunc(min(n.link.Link.CloseTimeout, 250*time.Millisecond), n.hsCancel)
	n.wg.Wait()
	grace.Stop()
	n.hsCancel()
	if n.lane != nil {
		n.lane.ep.Close() // its reader adds lane messages to the stream
	}
	n.closeRelay()     // its remote peers' PeerLeft (relay.go)
	close(n.inboxDone) // nothing adds to the stream any more
	if n.out != n.inbox && !n.inCallback.Load() {
		<-n.outDone
	}
	n.reqs.failAll(ErrNodeClosed)
	n.log.Debug("mesh: node closed", "id", n.id)
	return nil
}

// handshakeIncoming handshakes a connection the accept loop let in (see
// AcceptConfig) and attaches it.
func (n *Node) handshakeIncoming(conn net.Conn, slot *slot) {
	s, err := handshake(n.hsCtx, conn, n.hello, n.link, hsOptions{keys: n.keys.Load(), resume: !n.cfg.Resume.Disabled})
	slot.release()
	if err != nil {
		n.counters.failedHandshakes.Add(1)
		n.log.Debug("mesh: inbound handshake failed", "remote", conn.RemoteAddr(), "err", err)
		conn.Close()
		return
	}
	n.attach(conn, s, false, "")
}

// dial connects to addr and handshakes. It returns the remote Hello once
// the link is attached (or refused as a duplicate).
// o's keyIndex and prefer choose the key of a keyed mesh.
func (n *Node) dial(ctx context.Context, addr string, o hsOptions) (hello, error) {
	ctx, cancel := context.WithTimeout(ctx, n.link.Link.HandshakeTimeout)
	defer cancel()
	stop := context.AfterFunc(n.hsCtx, cancel) // Close ends it too, after a grace
	defer stop()
	conn, err := n.tr.Dial(ctx, addr)
	if err != nil {
		return hello{}, fmt.Errorf("mesh: dial %s: %w", addr, err)
	}
	o.initiator, o.keys, o.resume = true, n.keys.Load(), !n.cfg.Resume.Disabled
	s, err := handshake(ctx, conn, n.hello, n.link, o)
	if err != nil {
		n.counters.failedHandshakes.Add(1)
		conn.Close()
		return hello{}, err
	}
	if s.remote.NodeID == n.id {
		conn.Close()
		return s.remote, errSelf
	}
	n.attach(conn, s, true, addr)
	return s.remote, nil
}

var errSelf = errors.New("mesh: dialled this node itself")

// maxPending is how many links of one peer may wait for its choice beside
// the live one (SPEC.md section 12.11).
const maxPending = 2

// reasonDuplicate is the Bye reason of a link closed by the one-link rule.
// The peer that reads it knows the sender holds another link to it, and
// waits for that one rather than reporting the peer gone.
const reasonDuplicate = "duplicate link"

// reasonReplaced is the Bye reason of a live link that a redial by the node
// that opened it replaced (see ErrLinkReplaced).
const reasonReplaced = "replaced by a new link"

// attach makes a handshaken conn a link of the node, deciding between it and
// a link the peer already has: exactly one link per pair of nodes stays.
func (n *Node) attach(conn net.Conn, s session, initiator bool, dialAddr string) {
	remote := s.remote
	if remote.NodeID == n.id {
		conn.Close()
		return
	}
	sink := &nodeSink{n: n, initiator: initiator, attached: make(chan struct{}), lane: n.newLinkLane(&s, initiator)}
	if s.resume.ok && !n.cfg.Resume.Disabled {
		ps, err := n.sessionFor(remote.NodeID)
		if err != nil {
			conn.Close()
			n.log.Error("mesh: starting a link", "err", err)
			return
		}
		s.lr = n.newLinkResume(ps, s.resume, remote, initiator)
		sink.st = &ps.sink
	}
	l, err := newLink(withBudget(conn, n.budget), n.link, n.hello, remote, sink, false, &s)
	if err != nil {
		conn.Close()
		n.log.Error("mesh: starting a link", "err", err)
		n.dropIdleSession(remote.NodeID)
		return
	}
	if l.rs != nil {
		defer n.dropIdleSession(remote.NodeID) // if the link was not taken
	}
	n.offerLane(l)
	release := sync.OnceFunc(func() { close(sink.attached) })
	defer release()
	if n.refuseClaim(l) {
		// Closed before release: nothing it carried is delivered.
		l.CloseReason(reasonDuplicate)
		return
	}
	n.guard.provenLink(l, dialAddr)
	// The link may make an event: wait, outside the lock, while too many
	// wait for the program.
	n.evGate.wait(n.ctx.Done())

	var ev *PeerEvent
	var replaced *CloseError // the live link the peer's redial replaced
	var loser *link
	loserReason := reasonDuplicate
	n.mu.Lock()
	if n.closed {
		reason := n.closeReason
		n.mu.Unlock()
		release()
		l.CloseReason(reason)
		return
	}
	p := n.peers[remote.NodeID]
	if t, ok := n.tombs[remote.NodeID]; ok && t.instance == remote.InstanceID && byeForGood(t.err) &&
		t.at.After(s.began) && (p == nil || p.link == nil && !p.resuming) {
		// A link of an instance that said goodbye while this handshake ran
		// (a duplicate, or a dial of a node that was closing): its end was
		// final. A link begun after a goodbye (a program that closed one
		// link and connects again) is not refused.
		n.mu.Unlock()
		release()
		l.CloseReason("peer left")
		return
	}
	if why := n.admitLocked(p, l, conn, initiator); why != "" {
		n.mu.Unlock()
		release()
		l.CloseReason(why)
		return
	}
	if p == nil {
		p = &peer{id: remote.NodeID, wake: make(chan struct{}, 1)}
		n.peers[remote.NodeID] = p
	}
	if dialAddr != "" && p.addr == "" {
		p.addr = dialAddr
	}
	if p.addr == "" && remote.ListenPort != 0 {
		// A peer that dialled us tells us where to dial back.
		if ap, err := netip.ParseAddrPort(conn.RemoteAddr().String()); err == nil {
			p.addr = netip.AddrPortFrom(ap.Addr(), remote.ListenPort).String()
		}
	}
	old := p.link
	switch {
	case old == nil:
		kind := PeerJoined
		if p.instance != uuid.Nil && p.instance != remote.InstanceID {
			kind = PeerRestarted
		}
		p.link = l
		switch {
		case l.rs != nil && p.resuming && kind != PeerRestarted:
			// The session goes on: PeerResumed comes once the peer's
			// Resume is read (Node.resumed), if PeerResuming came before.
			l.rs.quiet = !p.announced
		case !p.replacing || kind == PeerRestarted:
			ev = &PeerEvent{Kind: kind}
		}
		if kind == PeerRestarted && p.resuming {
			p.resuming, p.announced = false, false
			n.stopWindowLocked(p)
		}
		p.replacing = false
		signal(p.wake)
	case old.Remote().InstanceID != remote.InstanceID:
		// The peer restarted: the old link belongs to its previous life,
		// and so do the requests waiting on it: none will be answered.
		p.link, loser, loserReason = l, old, "peer restarted"
		ev = &PeerEvent{Kind: PeerRestarted}
		if l.rs != nil {
			// Its Sink must return before the session ends.
			old.shutdown(closeErr(ErrClosed, false, loserReason), closeLocal)
		}
		n.reqs.failPeer(p.id, p.name, closeErr(ErrConnLost, true, "peer restarted"))
	case l.rs != nil && old.rs != nil && l.rs.follow:
		// The peer has the lower id and chooses between the links of the
		// pair (SPEC.md section 12.11): this one waits beside the old one
		// until the peer's Resume comes on it (Node.chosen), or the peer
		// closes it as a duplicate. At most maxPending wait: the oldest
		// gives way (a peer chooses the newest it dialled or accepted).
		if len(p.pending) >= maxPending {
			loser, p.pending = p.pending[0], slices.Delete(p.pending, 0, 1)
		}
		p.pending = append(p.pending, l)
	case l.rs != nil && old.rs != nil:
		// This node has the lower id: its choice is the pair's. A redial by
		// the peer replaces the old link, and the new one resumes the
		// session it carried; anything else is a duplicate, and the old
		// link stays. Only a link whose Resume exchange is over is
		// replaced (a session the peer may not have begun is never
		// moved), and not a link of this node's own dialling within
		// HandshakeTimeout of the join (both ends dialled at once).
		if n.opener(l) != n.id && old.rs.exchanged() &&
			(n.opener(old) != n.id || time.Since(p.joined) >= n.link.Link.HandshakeTimeout) {
			p.link, loser, loserReason = l, old, reasonReplaced
		} else {
			loser = l
		}
	case n.keepNew(l, old):
		p.link, loser = l, old
		if l.rs != nil {
			l.rs.quiet = true // the one-link rule: no news
		}
		if n.opener(l) == n.opener(old) {
			// The node that opened both redialled: it took the old link
			// for dead, though this side still counted it live. What was
			// sent on it lately may be lost, so the replacement is news:
			// PeerLeft, then PeerJoined, as on the side that redialled.
			replaced = closeErr(ErrLinkReplaced, n.opener(l) != n.id, reasonReplaced)
			loserReason = reasonReplaced
			ev = &PeerEvent{Kind: PeerJoined}
		}
	default:
		loser = l
	}
	if p.link == l {
		if l.rs != nil && ev != nil && ev.Kind == PeerRestarted {
			// What the previous instance never acknowledged is lost.
			ev.Lost = n.endSessionLocked(p, resume.LossPeerRestarted)
		}
		if l.rs != nil {
			// Sends may come as soon as the table is published: they are
			// journaled until the link opens.
			s := l.rs.s
			s.mu.Lock()
			if err := s.ensure(); err == nil {
				s.open = true
			}
			s.mu.Unlock()
		}
		if replaced != nil {
			n.reqs.failPeer(p.id, p.name, replaced)
			n.pushEventLocked(PeerEvent{Kind: PeerLeft, Peer: n.infoLocked(p), Err: replaced})
		}
		p.instance = remote.InstanceID
		p.name = remote.Name
		p.attempts, p.notBefore = 0, time.Time{}
		p.joined, p.lastErr = time.Now(), nil
		delete(n.tombs, p.id)
		n.publishLocked()
		if ev != nil {
			ev.Peer = n.infoLocked(p)
			n.pushEventLocked(*ev)
		}
	}
	if n.log.Enabled(context.Background(), slog.LevelDebug) {
		what := "duplicate"
		switch {
		case p.link == l && old == nil:
			what = "linked"
		case p.link == l:
			what = "replaced " + old.conn.LocalAddr().String() + "-" + old.conn.RemoteAddr().String()
		case slices.Contains(p.pending, l):
			what = "pending"
		}
		n.log.Debug("mesh: link attached", "node", n.link.Name, "peer", remote.Name, "dialled", initiator,
			"conn", conn.LocalAddr().String()+"-"+conn.RemoteAddr().String(), "as", what)
	}
	if l.rs != nil && p.link == l {
		// Opened under the lock, so that Close finds it open (what Send
		// journaled goes out before its Bye). The loser's Sink must return
		// before the new link fences it: it is closing from here.
		if loser != nil {
			loser.shutdown(closeErr(ErrClosed, false, loserReason), closeLocal)
		}
		if err := l.rs.open(l); err != nil {
			l.shutdown(closeErr(ErrProtocol, false, "resume: "+err.Error()), closeBadInput)
		}
	}
	n.mu.Unlock()

	n.wg.Add(1)
	go n.watch(p, l)
	if loser != nil {
		// Gracefully: what was sent on it still arrives, and what arrives on
		// it is still delivered.
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			loser.CloseReason(loserReason)
		}()
	}
}

// keepNew decides between two live links to one peer, the same way on both
// ends: the link opened by the node with the lower id stays. Two links
// opened by the same node mean it redialled: the newer one stays.
func (n *Node) keepNew(nl, old *link) bool {
	a, b := n.opener(nl), n.opener(old)
	if a == b {
		return true
	}
	return bytes.Compare(a[:], b[:]) < 0
}

// opener returns the id of the node that dialled l.
func (n *Node) opener(l *link) uuid.UUID {
	if l.sink.(*nodeSink).initiator {
		return n.id
	}
	return l.Remote().NodeID
}

// watch waits for a link to end, then takes it out of the table.
func (n *Node) watch(p *peer, l *link) {
	defer n.wg.Done()
	<-l.Done()
	n.laneClosed(l)
	n.evGate.wait(n.ctx.Done()) // its end may be an event
	n.mu.Lock()
	defer n.mu.Unlock()
	if p.link != l {
		if i := slices.Index(p.pending, l); i >= 0 {
			p.pending = slices.Delete(p.pending, i, i+1)
		}
		return // replaced, or never chosen: its end is no news
	}
	p.link = nil
	err := l.Err()
	if n.log.Enabled(context.Background(), slog.LevelDebug) {
		n.log.Debug("mesh: link ended", "node", n.link.Name, "peer", p.name,
			"conn", l.conn.LocalAddr().String()+"-"+l.conn.RemoteAddr().String(), "pending", len(p.pending), "err", err)
	}
	if l.rs != nil && !n.closed && !byeForGood(err) && n.sessionOpenLocked(p.id) {
		n.resumingLocked(p, err, l.sink.(*nodeSink).initiator)
		return
	}
	var loss *Loss
	if l.rs != nil {
		p.resuming, p.announced = false, false
		n.stopWindowLocked(p)
		loss = n.endSessionLocked(p, resume.LossClosed)
	}
	n.publishLocked()
	if !n.closed && peerKeepsAnother(p, err) {
		// The peer keeps another link to us: wait for it, bounded.
		p.replacing = true
		n.wg.Add(1)
		go n.awaitReplacement(p, err)
		return
	}
	n.leftLocked(p, err, loss)
}

// leftLocked records that the peer's link ended for good: an event, its
// requests failed, and a redial if the peer is still wanted.
func (n *Node) leftLocked(p *peer, err error, loss *Loss) {
	p.lastErr = err
	n.tombs[p.id] = tomb{name: p.name, instance: p.instance, err: err, at: time.Now()}
	n.trimTombsLocked()
	n.reqs.failPeer(p.id, p.name, err)
	n.pushEventLocked(PeerEvent{Kind: PeerLeft, Peer: n.infoLocked(p), Err: err, Lost: loss})
	// The first redial waits out the backoff (RedialMin, jittered), however
	// the dialler is woken: a peer that just dropped the link gets time to
	// notice it too.
	p.notBefore = time.Now().Add(backoff(p.attempts, n.cfg.Net.RedialMin, n.cfg.Net.RedialMax))
	switch {
	case n.closed:
	case p.wanted():
		n.startDialLocked(p)
	default:
		delete(n.peers, p.id)
		delete(n.sessions, p.id)
	}
}

// awaitReplacement waits for the link a peer kept when it closed ours as a
// duplicate; if none comes within HandshakeTimeout, the peer has left.
func (n *Node) awaitReplacement(p *peer, cause error) {
	defer n.wg.Done()
	deadline := time.Now().Add(n.link.Link.HandshakeTimeout)
	for {
		n.mu.Lock()
		if !p.replacing || p.link != nil {
			n.mu.Unlock()
			return
		}
		if n.closed || !time.Now().Before(deadline) {
			p.replacing = false
			n.leftLocked(p, cause, nil)
			n.mu.Unlock()
			return
		}
		n.mu.Unlock()
		// Any wake-up re-checks; the deadline stays where it was.
		t := time.NewTimer(time.Until(deadline))
		select {
		case <-p.wake:
		case <-t.C:
		case <-n.ctx.Done():
		}
		t.Stop()
		n.evGate.wait(n.ctx.Done()) // the next look may make an event
	}
}

func (n *Node) trimTombsLocked() {
	for len(n.tombs) > maxTombs {
		var oldest uuid.UUID
		var at time.Time
		for id, t := range n.tombs {
			if at.IsZero() || t.at.Before(at) {
				oldest, at = id, t.at
			}
		}
		delete(n.tombs, oldest)
	}
}

// publishLocked publishes a new copy of the link table for Send.
func (n *Node) publishLocked() {
	t := &linkTable{byID: make(map[uuid.UUID]*link, len(n.peers))}
	for id, p := range n.peers {
		if p.link != nil {
			t.byID[id] = p.link
			t.all = append(t.all, p.link)
			t.ids = append(t.ids, id)
		} else if s := n.sessions[id]; p.resuming && s != nil {
			if t.resuming == nil {
				t.resuming = map[uuid.UUID]*peerSession{}
			}
			t.resuming[id] = s
		}
	}
	n.links.Store(t)
}

// onDiscovery takes discovery's events, on discovery's dispatcher goroutine.
func (n *Node) onDiscovery(ev discovery.Event) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.closed || ev.Peer.ID == n.id {
		return
	}
	p := n.peers[ev.Peer.ID]
	switch ev.Kind {
	case discovery.Found, discovery.Updated, discovery.Restarted:
		if p == nil {
			p = &peer{id: ev.Peer.ID, wake: make(chan struct{}, 1)}
			n.peers[p.id] = p
		}
		p.seen = true
		p.via = ev.Peer.Via
		p.keyID = ev.Peer.KeyID
		p.addr = ev.Peer.Addr.String()
		if p.name == "" {
			p.name = ev.Peer.Name
		}
		if _, keyed := n.keyedLink(p); ev.Kind == discovery.Restarted && p.link != nil && !keyed &&
			p.link.Remote().InstanceID != ev.Peer.Instance {
			// The link is to the previous life of the peer; it will fail
			// its silence check, but there is no need to wait for it. A
			// keyed link is kept: a beacon only ever causes a dial, and a
			// replayed one from an old instance must not cut a link.
			stale := p.link
			n.wg.Add(1)
			go func() {
				defer n.wg.Done()
				stale.CloseReason("peer restarted")
			}()
		}
		if p.link == nil {
			n.startDialLocked(p)
		}
		signal(p.wake)
	case discovery.Lost:
		if p == nil {
			return
		}
		p.seen = false
		if p.link == nil && !p.static && !p.resuming {
			delete(n.peers, p.id)
			delete(n.sessions, p.id)
			signal(p.wake)
		}
	}
}

func (n *Node) keyedLink(p *peer) (meshkey.ID, bool) {
	if p.link == nil {
		return meshkey.ID{}, false
	}
	return p.link.KeyID()
}

// startDialLocked starts the dialler of p unless one runs. The node with the
// lower id dials at once; the other waits DialGrace for it first. After a
// lost link or a failed attempt, the wait is the backoff (p.notBefore).
func (n *Node) startDialLocked(p *peer) {
	if p.dialing || n.closed || p.addr == "" || !n.takeDialSlotLocked() {
		return
	}
	p.dialing = true
	n.wg.Add(1)
	go n.dialLoop(p)
}

func (n *Node) dialLoop(p *peer) {
	defer n.wg.Done()
	lower := bytes.Compare(n.id[:], p.id[:]) < 0
	for {
		n.mu.Lock()
		if n.closed || p.link != nil || !p.wanted() || n.peers[p.id] != p {
			p.dialing = false
			n.freeDialSlotLocked()
			n.mu.Unlock()
			return
		}
		now := time.Now()
		if p.notBefore.IsZero() && p.attempts > 0 {
			p.notBefore = now.Add(backoff(p.attempts, n.cfg.Net.RedialMin, n.cfg.Net.RedialMax))
		}
		wait := p.notBefore.Sub(now)
		backingOff := !p.notBefore.IsZero()
		if !backingOff && !lower {
			wait = n.cfg.Net.DialGrace
		}
		n.mu.Unlock()
		if wait > 0 {
			t := time.NewTimer(wait)
			select {
			case <-t.C:
			case <-p.wake:
				t.Stop()
				// Woken by news of the peer: re-check, but keep the wait
				// if it was a backoff.
				if backingOff {
					continue
				}
			case <-n.ctx.Done():
				t.Stop()
				continue
			}
		}
		n.mu.Lock()
		p.notBefore = time.Time{} // waited out: the next is set by a failure
		addr := p.addr
		linked := p.link != nil
		o := hsOptions{initiator: true, prefer: p.keyID, hasPrefer: p.keyID != meshkey.ID{}, keyIndex: p.attempts}
		n.mu.Unlock()
		if linked || addr == "" || !n.dialAllowed(p, addr) {
			continue
		}
		_, err := n.dial(n.ctx, addr, o)
		n.mu.Lock()
		if err != nil {
			n.guard.dialFailed(addr)
			p.attempts++
			n.log.Debug("mesh: dial failed", "peer", p.id, "addr", addr, "attempt", p.attempts, "err", err)
			if p.resuming {
				n.redialFailedLocked(p, err)
			}
		}
		name := p.name
		n.mu.Unlock()
		n.mismatch.note(n, p.id.String(), name, addr, err)
	}
}

// staticLoop keeps a link to a configured address: it dials it, and dials
// again with backoff whenever the link to the node found there ends.
func (n *Node) staticLoop(addr string) {
	defer n.wg.Done()
	attempts := 0
	var known uuid.UUID // the node last found at addr
	for {
		if n.ctx.Err() != nil {
			return
		}
		if known != uuid.Nil {
			// Once found, the peer is static and its own dialler (dialLoop)
			// redials it: a second dial from here would make a second link
			// that replaces the first. Wait while that dialler runs or a
			// link is up; dial from here only when neither (the peer was
			// forgotten, or another node took the address).
			done, dialing := n.peerBusy(known)
			if done != nil || dialing {
				if done != nil {
					select {
					case <-done:
					case <-n.ctx.Done():
						return
					}
				}
				if !n.sleep(backoff(0, n.cfg.Net.RedialMin, n.cfg.Net.RedialMax)) {
					return
				}
				continue
			}
		}
		// A static peer's key is unknown: each attempt tries the next key
		// of the ring, the primary first.
		remote, err := n.dial(n.ctx, addr, hsOptions{keyIndex: attempts})
		switch {
		case errors.Is(err, errSelf):
			n.log.Debug("mesh: static peer is this node", "addr", addr)
			return
		case err != nil:
			attempts++
			n.log.Debug("mesh: static peer unreachable", "addr", addr, "attempt", attempts, "err", err)
			n.mismatch.note(n, addr, "", addr, err)
		default:
			attempts = 0
			known = remote.NodeID
			n.mu.Lock()
			p := n.peers[remote.NodeID]
			var done <-chan struct{}
			if p != nil {
				p.static = true
				if p.link != nil {
					done = p.link.Done()
				}
			}
			n.mu.Unlock()
			if done != nil {
				select {
				case <-done:
				case <-n.ctx.Done():
					return
				}
			}
		}
		if !n.sleep(backoff(attempts, n.cfg.Net.RedialMin, n.cfg.Net.RedialMax)) {
			return
		}
	}
}

// peerBusy returns the Done of the live link to id (nil if none), and
// whether its dialler runs.
func (n *Node) peerBusy(id uuid.UUID) (<-chan struct{}, bool) {
	n.mu.Lock()
	defer n.mu.Unlock()
	p := n.peers[id]
	switch {
	case p == nil:
		return nil, false
	case p.link != nil:
		return p.link.Done(), p.dialing
	}
	return nil, p.dialing
}

// sleep waits d, or until the node closes (false).
func (n *Node) sleep(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-n.ctx.Done():
		return false
	}
}

// Connect links to the node at addr now, whether or not discovery has found
// it, and returns its Hello. ctx bounds the dial and the handshake.
func (n *Node) Connect(ctx context.Context, addr string) (PeerInfo, error) {
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return PeerInfo{}, ErrNodeClosed
	}
	n.wg.Add(1) // Close waits for a Connect in progress
	n.mu.Unlock()
	defer n.wg.Done()
	// Try each key of the ring, the primary first, while the peer says
	// it holds another.
	var remote hello
	var err error
	for i := range max(1, len(n.keys.Load().IDs())) {
		remote, err = n.dial(ctx, addr, hsOptions{keyIndex: i})
		if !errors.Is(err, ErrWrongKey) {
			break
		}
	}
	if err != nil {
		return PeerInfo{}, err
	}
	return n.Peer(remote.NodeID)
}

// settle waits, at most d, until no link waits for its peer's choice
// (SPEC.md section 12.11): what Send queued for the peer then goes out on
// the link the pair kept, before the Bye, rather than being reported lost
// with a link the peer dropped as a duplicate.
func (n *Node) settle(d time.Duration) {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		n.mu.Lock()
		waiting := false
		for _, p := range n.peers {
			if len(p.pending) > 0 || p.link != nil && p.link.rs != nil && p.link.rs.follow && !p.link.rs.exchanged() {
				waiting = true
				break
			}
		}
		n.mu.Unlock()
		if !waiting {
			return
		}
		time.Sleep(2 * time.Millisecond)
	}
}
