package mesh

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"reflect"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/codec"
	"github.com/lanmesh/lanmesh/lane"
	"github.com/lanmesh/lanmesh/message"
)

// Delivery is how a message travels to a peer: a delivery kind, each a
// guarantee.
//
//   - Reliable: the link's TCP stream. Ordered, no loss while the link
//     lives. Send and Broadcast send this way.
//   - Sequenced: over the link's UDP lane. A message older than the newest
//     already delivered on its channel is dropped; none is delivered twice;
//     any may be lost (the lane never retransmits). The sender keeps only
//     the newest message per channel and peer queued, on the lane and on
//     the TCP fallback alike. For positions and state.
//   - Unreliable: over the lane. Messages may be lost or come out of order;
//     none is delivered twice; at most Lane.UnreliableQueue wait per peer
//     for the next Xfer (more are refused with ErrBackpressure). For events
//     where only speed matters.
//
// Each kind has 256 channels per peer. SendKind and BroadcastKind use the
// message type's code as the channel, so each type's newest wins on its
// own; SendChannel and BroadcastChannel take the channel from the caller
// (one per game object, say: each object's newest wins). A channel holds
// whatever is sent on it: keep to one type per channel, and do not mix the
// two ways of choosing on one type's codes.
//
// While a peer's lane is not up (being agreed, or UDP blocked: see
// PeerInfo.Lane) its sequenced and unreliable messages go over the link's
// stream, still with the rules above (one newest per channel queued, never
// an older after a newer). A peer that agreed no lane (an older lanmesh,
// cable_car, a node with Lane.Off) gets every kind Reliable. Lanes are a
// Node's: a Messenger's direct link has none. A remote peer (through a
// relay: AttachRelay) gets every kind as a relayed message (see Relayed).
//
// With the binary codec, the values of a lane datagram's messages of one
// type that holds no pointers (numbers, bools, arrays and structs of them)
// are allocated together, up to 1 KiB of them (each message still has a
// value of its own): a value the program keeps holds that 1 KiB alive. A
// program that keeps many of them for long can copy the values.
type Delivery uint8

const (
	// Reliable: the link's TCP stream; ordered, no loss while the link lives.
	Reliable Delivery = iota
	// Sequenced: over UDP; older than the newest delivered on its channel
	// is dropped; never duplicated; may be lost.
	Sequenced
	// Unreliable: over UDP; may be lost or reordered; never duplicated.
	Unreliable
)

func (d Delivery) String() string {
	switch d {
	case Reliable:
		return "reliable"
	case Sequenced:
		return "sequenced"
	case Unreliable:
		return "unreliable"
	case Relayed:
		return "relayed"
	}
	return fmt.Sprintf("delivery(%d)", uint8(d))
}

// ErrTooLargeForLane: a sequenced or unreliable message's frame does not fit
// one lane datagram (at the default MTU, 1178 bytes, 1162 keyed). It is
// never split: send it Reliable.
var ErrTooLargeForLane = errors.New("mesh: message too large for one lane datagram")

// LaneConfig says whether a node runs the UDP lane beside its links, and
// the lane's limits.
type LaneConfig struct {
	// Off: no lane; every kind goes Reliable. Default on (when the node
	// listens on TCP: the lane's UDP socket is bound to the first listen
	// address, on the same port when it is free, else on any port).
	Off bool
	// Config holds the lane's MTU, queue and liveness thresholds; the zero
	// value means lane.DefaultConfig().
	Config lane.Config
}

func (c LaneConfig) config() lane.Config {
	if c.Config == (lane.Config{}) {
		return lane.DefaultConfig()
	}
	return c.Config
}

// LaneInfo is what a peer's lane says of itself (PeerInfo.Lane).
type LaneInfo struct {
	// State is "" when the link has no lane (the peer offered none, or it
	// is not agreed yet), else "probing", "up" or "blocked" (UDP does not
	// get through: the lane's messages go over the link's stream).
	State string
	// Health has the lane's round trips (its pings are its own, beside the
	// link's) and since when it is in State.
	Health lane.Health
	// Stats counts what the lane sent, received and dropped, by reason:
	// spoofed, replayed and stale-session datagrams among them.
	Stats lane.Stats
	// Dropped counts lane messages the node dropped on receipt: the
	// receive queue was full, or the frame did not decode, or it was a
	// control message.
	Dropped uint64
	// Stale counts sequenced messages dropped on receipt for being older
	// than their channel's newest (beside Stats.DropStale, which counts
	// those the lane itself saw first).
	Stale uint64
}

// nodeLane is a node's one UDP socket for the lanes of all its links.
type nodeLane struct {
	conn *net.UDPConn // owned by ep; tests write on it to play the peer
	ep   *lane.Endpoint
	cfg  lane.Config
	port uint16
}

// startLane binds the node's lane socket beside its first TCP listener.
func (n *Node) startLane() error {
	if n.cfg.Lane.Off || len(n.lns) == 0 {
		return nil
	}
	ta, ok := n.lns[0].Addr().(*net.TCPAddr)
	if !ok {
		return nil // another transport: no lane
	}
	cfg := n.cfg.Lane.config()
	port := ta.Port
	if port == n.cfg.Discovery.BeaconPort || port == 5353 {
		port = 0 // never take discovery's UDP port from it
	}
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: ta.IP, Port: port, Zone: ta.Zone})
	if err != nil {
		conn, err = net.ListenUDP("udp", &net.UDPAddr{IP: ta.IP, Zone: ta.Zone})
	}
	if err != nil {
		return fmt.Errorf("mesh: lane socket beside %s: %w", ta, err)
	}
	ep := lane.NewEndpoint(conn)
	n.lane = &nodeLane{conn: conn, ep: ep, cfg: cfg, port: ep.Port()}
	n.wg.Add(1)
	go n.laneKeeper()
	return nil
}

// laneKeeper flushes the lanes of a program that does not pump (it takes
// messages with Receive and never calls Xfer), so that its pings and the
// pongs it owes still go out and its peers' lanes stay up. A lane that Xfer
// flushed lately is left alone: a game's ticks decide when its datagrams
// leave.
func (n *Node) laneKeeper() {
	defer n.wg.Done()
	every := n.lane.cfg.PingInterval / 2
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-n.ctx.Done():
			return
		case now := <-t.C:
			for _, l := range n.links.Load().all {
				if ll := laneOf(l); ll != nil && now.UnixNano()-ll.flushed.Load() > int64(every) {
					ll.flush(l, now)
				}
			}
		}
	}
}

// LanePort returns the UDP port of the node's lane socket, 0 without one.
// Peers' firewalls must let UDP to it through for the lane to be up.
func (n *Node) LanePort() uint16 {
	if n.lane == nil {
		return 0
	}
	return n.lane.port
}

// LaneStats returns the counters of the node's lane socket: datagrams that
// named no lane of this node (a spoofer's, a closed link's), read errors.
func (n *Node) LaneStats() lane.EndpointStats {
	if n.lane == nil {
		return lane.EndpointStats{}
	}
	return n.lane.ep.Stats()
}

// linkLane is the lane of one link: this side's token and secret from the
// start, the lane itself once the peer has offered one.
type linkLane struct {
	n         *Node
	local     lane.Token
	secret    []byte
	initiator bool
	keyed     bool
	max       int // the largest frame a datagram carries

	ln      atomic.Pointer[lane.Lane] // nil until the peer's offer
	offered bool                      // the peer's offer came; the link's reader alone
	dropped atomic.Uint64
	stale   atomic.Uint64
	flushed atomic.Int64 // unix ns of the last flush

	// recvMu guards the newest sequence number delivered per sequenced
	// channel, by either path (see newer).
	recvMu sync.Mutex
	gone   bool // the link has ended: deliver nothing more
	seen   [4]uint64
	newest [256]uint32
	one    [1]Message // the link's reader alone
	recvT  typeCache  // deliver's

	// mu guards the sending side of ln (Enqueue, Flush, Drain) and the
	// fields below.
	mu      sync.Mutex
	buf     []byte
	tag     message.LaneTag
	state   lane.State
	warned  bool
	markPtr *byte // where the last fallback batch sat in the link's pending buffer
	markLen int
	dec     frameDecoder // the endpoint's reader alone
	batch   []Message    // the endpoint's reader alone
	sendT   typeCache
}

// typeCache remembers the registered type of the last Go type looked up: a
// game sends and receives one type after another, and a registry look-up
// (a map keyed by reflect.Type) costs more than the rest of a message's
// bookkeeping. A registered type never changes, so the entry never goes
// stale. Not safe for concurrent use: each user holds its own lock.
type typeCache struct {
	rt reflect.Type
	t  *codec.Type
}

func (c *typeCache) of(r *message.Registry, msg any) (*codec.Type, error) {
	rt := reflect.TypeOf(msg)
	if rt != nil && rt == c.rt {
		return c.t, nil
	}
	t, err := r.TypeOf(msg)
	if err == nil {
		c.rt, c.t = rt, t
	}
	return t, err
}

// newLinkLane returns the lane state of a link about to start, or nil when
// the node runs no lane.
func (n *Node) newLinkLane(s *session, initiator bool) *linkLane {
	if n.lane == nil {
		return nil
	}
	tok, err := lane.NewToken()
	if err != nil {
		n.log.Error("mesh: lane token", "err", err)
		return nil
	}
	ll := &linkLane{n: n, local: tok, initiator: initiator, keyed: s.keyed,
		max: n.lane.cfg.MaxPayload(s.keyed), buf: make([]byte, 0, 256)}
	if s.keyed {
		ll.secret = s.laneSecret
	}
	return ll
}

func laneOf(l *link) *linkLane {
	if s, ok := l.sink.(*nodeSink); ok {
		return s.lane
	}
	return nil
}

// offerLane queues this side's LaneOffer on a new link (before anything the
// program sends on it).
func (n *Node) offerLane(l *link) {
	ll := laneOf(l)
	if ll == nil {
		return
	}
	// A control frame, as the link's pings: not a message the program sent,
	// so not counted as one (Stats.MsgsOut).
	offer := &message.LaneOffer{Port: n.lane.port, Token: binary.BigEndian.Uint64(ll.local[:])}
	l.sendMu.Lock()
	if !l.closing {
		if b, err := l.codec.AppendFrame(l.pending, offer); err == nil {
			l.pending = b
		}
	}
	l.sendMu.Unlock()
	l.Flush()
}

// laneOffered opens the lane of l when the peer's LaneOffer comes, on the
// link's reader goroutine.
func (n *Node) laneOffered(l *link, ll *linkLane, m *message.LaneOffer) {
	if ll == nil {
		return // this node runs no lane: the peer's lane kinds come Reliable
	}
	if ll.offered {
		l.shutdown(closeErr(ErrProtocol, false, "a second lane offer"), closeBadInput)
		return
	}
	ll.offered = true
	var remote lane.Token
	binary.BigEndian.PutUint64(remote[:], m.Token)
	ra, err := netip.ParseAddrPort(l.RemoteAddr().String())
	if err != nil || m.Port == 0 || remote == (lane.Token{}) || remote == ll.local {
		n.log.Debug("mesh: lane offer unusable: no lane", "peer", l.Remote().Name, "port", m.Port)
		return
	}
	s, err := lane.NewSession(ll.local, remote, ll.initiator, ll.secret)
	if err != nil {
		n.log.Debug("mesh: lane session", "peer", l.Remote().Name, "err", err)
		return
	}
	s.Peer = netip.AddrPortFrom(ra.Addr().Unmap(), m.Port)
	ll.dec.init(l)
	ln, err := n.lane.ep.Open(n.lane.cfg, s, func(msgs []lane.Message) { ll.deliver(l, msgs) })
	if err != nil {
		n.log.Debug("mesh: lane open", "peer", l.Remote().Name, "err", err)
		return
	}
	ll.ln.Store(ln)
	if l.Err() != nil { // the link closed meanwhile: watch may have looked already
		n.lane.ep.Remove(ln)
	}
	n.log.Debug("mesh: lane agreed", "peer", l.Remote().Name, "udp", s.Peer, "keyed", s.Keyed)
}

// laneClosed takes the lane of a link that ended off the socket. Once it
// returns, nothing more of the lane reaches the stream: the link's
// PeerLeft, which follows, comes after its last message.
func (n *Node) laneClosed(l *link) {
	ll := laneOf(l)
	if ll == nil {
		return
	}
	if ln := ll.ln.Load(); ln != nil {
		n.lane.ep.Remove(ln)
	}
	ll.recvMu.Lock()
	ll.gone = true // a deliver under way sees it before queueing
	ll.recvMu.Unlock()
}

// closedCh is a closed channel: a push that must not wait.
var closedCh = func() chan struct{} { c := make(chan struct{}); close(c); return c }()

// deliver takes the messages of one lane datagram, on the endpoint's reader
// goroutine: it decodes each frame and queues it for the program without
// waiting (a datagram path drops, and counts, what finds the queue full).
func (ll *linkLane) deliver(l *link, msgs []lane.Message) {
	n := ll.n
	remote := l.Remote()
	if !ll.recvMu.TryLock() {
		// The link's reader is queueing a sequenced message that came
		// over it; this datagram path must not wait: drop, and count.
		ll.dropped.Add(uint64(len(msgs)))
		return
	}
	defer ll.recvMu.Unlock()
	if ll.gone {
		return
	}
	defer ll.dec.release()
	traced := n.traffic.on.Load()
	for i, lm := range msgs {
		if lm.Kind == lane.Sequenced && !ll.newer(lm.Channel, lm.Seq) {
			continue
		}
		msg, t, err := ll.dec.decodeAt(msgs, i)
		if err != nil {
			ll.dropped.Add(1)
			continue
		}
		if t == nil {
			t, err = ll.recvT.of(n.link.registry(), msg)
		}
		if err != nil || message.IsControl(t.Code) {
			ll.dropped.Add(1) // the link's control messages never ride the lane
			continue
		}
		via := Sequenced
		if lm.Kind == lane.Unreliable {
			via = Unreliable
		}
		if traced {
			n.traffic.note(l, In, msg, len(lm.Payload))
		}
		ll.batch = append(ll.batch, Message{From: remote.NodeID, FromName: remote.Name, Msg: msg, link: l, Via: via})
	}
	if len(ll.batch) == 0 {
		return
	}
	if k := n.inbox.push(ll.batch, closedCh); k < len(ll.batch) {
		ll.dropped.Add(uint64(len(ll.batch) - k))
	}
	clear(ll.batch)
	ll.batch = ll.batch[:0]
	if n.inbox.len() > n.cfg.Limits.ReceiveQueue/2 {
		// The program falls behind: a reader that always has a datagram
		// to read never blocks, and a pump on its CPU would wait for the
		// scheduler's time slice (10 ms: more datagrams than the queue
		// holds). Yield it the CPU before the queue overflows; the
		// socket's buffer holds what comes meanwhile.
		runtime.Gosched()
	}
}

// frameDecoder decodes one frame at a time from lane payloads with the
// link's codec: the binary codec decodes the payload in place
// (codec.Binary.DecodeFrame); the others get one stream decoder, fed each
// payload whole, so that decoding costs the message value alone. A payload
// that is not exactly one frame gets an error (and a fresh stream decoder).
//
// With the binary codec, the values of a run of messages of one small type
// in a datagram are allocated together (codec.Type.NewArray, at most
// slabBytes a run): a datagram of 40 positions costs one allocation, not
// 40, on the reader that must keep up with the socket. A message the
// program keeps holds its run's array (at most slabBytes) alive.
type frameDecoder struct {
	l   *link
	bin *codec.Binary
	in  frameFeed
	dec codec.Decoder

	slabT *codec.Type // the type of the values in slab
	slab  []any       // zero values of slabT not yet decoded into, in buf
	buf   [slabMax]any
}

const (
	// slabBytes bounds a run's array: what one message the program keeps
	// may hold alive beyond its own value.
	slabBytes = 1024
	slabMax   = 64
)

// frameFeed hands the decoder the payload being decoded; it never says
// EOF (a short payload ends in the decoder's io.ErrNoProgress).
type frameFeed struct{ b []byte }

func (f *frameFeed) Read(p []byte) (int, error) {
	n := copy(p, f.b)
	f.b = f.b[n:]
	return n, nil
}

func (d *frameDecoder) init(l *link) {
	d.l = l
	d.bin, _ = l.codec.(*codec.Binary)
	d.dec = l.codec.NewDecoder(&d.in)
}

// decodeAt decodes the payload of msgs[i], taking its value from the run's
// array when msgs[i] starts or continues a run of one small type. It
// returns the value's type when it knows it, else nil.
func (d *frameDecoder) decodeAt(msgs []lane.Message, i int) (any, *codec.Type, error) {
	frame := msgs[i].Payload
	if d.bin == nil || len(frame) < 2 {
		v, err := d.decode(frame)
		return v, nil, err
	}
	code := frame[1]
	if len(d.slab) == 0 || d.slabT.Code != code {
		t := d.bin.TypeOf(code)
		if t == nil || t.NewArray == nil || t.Empty || t.GoType.Size() == 0 {
			v, err := d.decode(frame)
			return v, nil, err
		}
		run := 0
		for _, m := range msgs[i:] {
			if len(m.Payload) < 2 || m.Payload[1] != code {
				break
			}
			run++
		}
		k := min(run, slabMax, slabBytes/int(t.GoType.Size()))
		if k < 2 {
			v, err := d.decode(frame)
			return v, t, err
		}
		d.release()
		d.slabT, d.slab = t, d.buf[:k]
		t.NewArray(d.slab)
	}
	v := d.slab[0]
	d.slab[0] = nil
	d.slab = d.slab[1:]
	if err := d.bin.DecodeFrameTo(frame, d.slabT, v); err != nil {
		return nil, nil, err
	}
	return v, d.slabT, nil
}

// release drops the values of the last run not decoded into (a datagram's
// stale sequenced messages, say), so that they hold no array alive.
func (d *frameDecoder) release() {
	clear(d.slab)
	d.slab = nil
}

func (d *frameDecoder) decode(frame []byte) (any, error) {
	if d.bin != nil {
		return d.bin.DecodeFrame(frame)
	}
	d.in.b = frame
	msg, size, err := d.dec.Decode()
	if err == nil && (size != len(frame) || len(d.in.b) != 0) {
		err = fmt.Errorf("%w: a lane payload of %d bytes holds a frame of %d", ErrProtocol, len(frame), size)
	}
	if err != nil {
		d.in.b = nil
		d.dec = d.l.codec.NewDecoder(&d.in)
	}
	return msg, err
}

// laneInfo is the lane part of a peer's info.
func laneInfo(l *link) LaneInfo {
	ll := laneOf(l)
	if ll == nil {
		return LaneInfo{}
	}
	ln := ll.ln.Load()
	if ln == nil {
		return LaneInfo{Dropped: ll.dropped.Load()}
	}
	h := ln.Health()
	return LaneInfo{State: h.State.String(), Health: h, Stats: ln.Stats(), Dropped: ll.dropped.Load(), Stale: ll.stale.Load()}
}

// SendKind is Send with a delivery kind: Reliable is Send; Sequenced and
// Unreliable queue msg for the peer's lane (see Delivery), to leave on the
// next Xfer in one datagram with everything else queued for that peer.
// Besides Send's errors it returns ErrTooLargeForLane for a message that
// cannot fit one datagram, and ErrBackpressure when the unreliable queue
// is full. It does not allocate for the binary codec.
func (n *Node) SendKind(id uuid.UUID, msg any, d Delivery) error {
	if d == Reliable {
		return n.Send(id, msg)
	}
	return n.sendChannel(id, msg, d, -1)
}

// SendChannel is SendKind on a channel of the caller's choice (see
// Delivery). A Reliable message has no channel: it is Send.
func (n *Node) SendChannel(id uuid.UUID, msg any, d Delivery, channel uint8) error {
	if d == Reliable {
		return n.Send(id, msg)
	}
	return n.sendChannel(id, msg, d, int(channel))
}

func (n *Node) sendChannel(id uuid.UUID, msg any, d Delivery, channel int) error {
	l, err := n.linkTo(id)
	if err != nil {
		if p, _, ok := n.remoteRoute(id, err); ok {
			return n.relayKind(p, id, msg, d) // a remote peer (relay.go)
		}
		return n.typeErr(msg, err)
	}
	if err := n.sendLane(l, msg, d, channel); err != nil {
		return n.sendErr(l, err)
	}
	return nil
}

// BroadcastKind is Broadcast with a delivery kind (see SendKind): it
// returns how many peers msg was queued for, and the errors of the others.
func (n *Node) BroadcastKind(msg any, d Delivery) (int, error) {
	if d == Reliable {
		return n.Broadcast(msg)
	}
	return n.broadcastChannel(msg, d, -1)
}

// BroadcastChannel is BroadcastKind on a channel of the caller's choice.
func (n *Node) BroadcastChannel(msg any, d Delivery, channel uint8) (int, error) {
	if d == Reliable {
		return n.Broadcast(msg)
	}
	return n.broadcastChannel(msg, d, int(channel))
}

func (n *Node) broadcastChannel(msg any, d Delivery, channel int) (int, error) {
	t := n.links.Load()
	if len(t.all) == 0 && !n.hasRemote() {
		return 0, n.typeErr(msg, nil)
	}
	sent := 0
	var errs []error
	for _, l := range t.all {
		if err := n.sendLane(l, msg, d, channel); err != nil {
			if errors.Is(err, ErrTooLargeForLane) {
				return sent, err
			}
			errs = append(errs, fmt.Errorf("%s: %w", l.Remote().Name, err))
			continue
		}
		sent++
	}
	k, rerrs := n.relayBroadcastKind(t, msg, d) // remote peers (relay.go)
	return sent + k, errors.Join(append(errs, rerrs...)...)
}

// sendLane queues msg for l's lane on channel (-1: the type's code), or for
// the link itself when it has none.
func (n *Node) sendLane(l *link, msg any, d Delivery, channel int) error {
	if d != Sequenced && d != Unreliable {
		return fmt.Errorf("mesh: unknown delivery kind %d", d)
	}
	ll := laneOf(l)
	if ll == nil {
		size, err := l.send(msg)
		if err == nil {
			n.traffic.note(l, Out, msg, size)
		}
		return err
	}
	if err := l.Err(); err != nil {
		return err
	}
	ll.mu.Lock()
	defer ll.mu.Unlock()
	t, err := ll.sendT.of(n.link.registry(), msg)
	if err != nil {
		return err
	}
	// With a lane, the frame is encoded straight into a buffer of its
	// queue's (no copy at Enqueue); without, into ll.buf for the link.
	ln := ll.ln.Load()
	buf := ll.buf[:0]
	if ln != nil {
		buf = ln.Scratch()
	}
	if bc, ok := l.codec.(*codec.Binary); ok {
		buf, err = bc.AppendFrameOf(buf, t, msg) // t is msg's: no second look-up
	} else {
		buf, err = l.codec.AppendFrame(buf, msg)
	}
	if ln == nil {
		ll.buf = buf[:0]
	}
	if err != nil {
		return err
	}
	if len(buf) > ll.max {
		return fmt.Errorf("%w: %s is %d bytes, a datagram carries %d", ErrTooLargeForLane, t.Name, len(buf), ll.max)
	}
	if ln == nil {
		// No lane (yet): the link carries it, as Reliable.
		if err := l.sendFrame(buf); err != nil {
			return err
		}
		n.traffic.note(l, Out, msg, len(buf))
		return nil
	}
	kind := lane.Sequenced
	if d == Unreliable {
		kind = lane.Unreliable
	}
	ch := t.Code
	if channel >= 0 {
		ch = byte(channel)
	}
	if err := ln.EnqueueScratch(kind, ch, buf); err != nil {
		if errors.Is(err, lane.ErrQueueFull) {
			return fmt.Errorf("%w: %w", ErrBackpressure, err)
		}
		if errors.Is(err, lane.ErrTooLarge) {
			return fmt.Errorf("%w: %w", ErrTooLargeForLane, err)
		}
		return err
	}
	n.traffic.note(l, Out, msg, len(buf))
	return nil
}

// flushLanes sends what each lane has queued (one datagram per peer for a
// tick's small messages), or, while a lane is not up, hands each channel's
// newest to the link's stream. Xfer calls it.
func (n *Node) flushLanes(all []*link) {
	if n.lane == nil {
		return
	}
	var now time.Time
	for _, l := range all {
		ll := laneOf(l)
		if ll == nil {
			continue
		}
		ln := ll.ln.Load()
		if ln == nil {
			continue
		}
		if now.IsZero() {
			now = time.Now()
		}
		ll.flush(l, now)
	}
}

// flush sends what l's lane has queued, or hands it to the link while the
// lane is not up.
func (ll *linkLane) flush(l *link, now time.Time) {
	ln := ll.ln.Load()
	if ln == nil {
		return
	}
	ll.mu.Lock()
	defer ll.mu.Unlock()
	ll.flushed.Store(now.UnixNano())
	_ = ln.Flush(now) // a failed datagram is counted (Stats.SendErrors) and lost, as any
	st := ln.State()
	if st != lane.Up {
		ll.drain(l, ln)
	}
	ll.noteState(l, st)
}

// drain hands the newest message of each channel to the link while the
// lane is not up, when the link's queue holds none of the last batch
// handed to it (so the link never queues more than one per channel and
// peer). ll.mu is held.
func (ll *linkLane) drain(l *link, ln *lane.Lane) {
	if !l.writeMu.TryLock() {
		return // a write is under way: what was handed last may be in it
	}
	l.writeMu.Unlock()
	l.sendMu.Lock()
	if l.closing || (len(l.pending) > 0 && bufID(l.pending) == ll.markPtr && len(l.pending) >= ll.markLen) {
		l.sendMu.Unlock()
		return
	}
	limit := l.cfg.Link.SendBufferLimit / 2
	handed := 0
	ln.Drain(func(kind lane.Kind, channel byte, seq uint32, payload []byte) bool {
		if len(l.pending)+len(payload)+16 > limit {
			return false
		}
		ll.tag = message.LaneTag{Kind: uint8(kind), Channel: channel, Seq: seq}
		buf, err := l.codec.AppendFrame(l.pending, &ll.tag)
		if err != nil {
			return false
		}
		l.pending = append(buf, payload...)
		handed++
		return true
	})
	if handed > 0 {
		ll.markPtr, ll.markLen = bufID(l.pending), len(l.pending)
	}
	l.sendMu.Unlock()
	if handed > 0 {
		l.stats.msgsOut.Add(uint64(handed))
	}
}

// bufID names the array under b, so that drain can tell whether the
// link's pending buffer is still the one it appended to.
func bufID(b []byte) *byte {
	if cap(b) == 0 {
		return nil
	}
	return &b[:1][0]
}

// noteState logs a lane's change to blocked once per link, at Warn, with
// the fix; later changes at Debug. ll.mu is held.
func (ll *linkLane) noteState(l *link, st lane.State) {
	if st == ll.state {
		return
	}
	old := ll.state
	ll.state = st
	n := ll.n
	switch {
	case st == lane.Blocked && !ll.warned:
		ll.warned = true
		n.log.Warn("mesh: UDP to the peer's lane does not get through: its sequenced and unreliable messages go over the TCP link (slower when packets are lost); allow UDP to port "+
			fmt.Sprint(n.lane.port)+" here and to the peer's lane port",
			"peer", l.Remote().Name, "addr", l.RemoteAddr())
	case st == lane.Up && old == lane.Blocked:
		n.log.Info("mesh: the peer's lane is back on UDP", "peer", l.Remote().Name)
	default:
		n.log.Debug("mesh: lane state", "peer", l.Remote().Name, "from", old, "to", st)
	}
}

// laneVia is the delivery kind a LaneTag gives the message after it.
func laneVia(tag message.LaneTag) Delivery {
	switch lane.Kind(tag.Kind) {
	case lane.Sequenced:
		return Sequenced
	case lane.Unreliable:
		return Unreliable
	}
	return Reliable
}

// newer applies the sequenced rule at the moment of queueing for the
// program, whichever way a message came: the lane's own check runs on the
// lane socket's reader and the link's on the link's, so only a check under
// one lock, together with the push, keeps an older message from being
// queued after a newer one. ll.recvMu is held.
func (ll *linkLane) newer(channel byte, seq uint32) bool {
	w, bit := channel/64, uint64(1)<<(channel%64)
	if ll.seen[w]&bit != 0 && !lane.SeqNewer(seq, ll.newest[channel]) {
		ll.stale.Add(1)
		return false
	}
	ll.seen[w] |= bit
	ll.newest[channel] = seq
	return true
}

// pushSequenced queues a sequenced message that came over the link after
// a LaneTag, unless it is older than its channel's newest. It reports
// false when stop closed before the program's queue took it.
func (ll *linkLane) pushSequenced(n *Node, m Message, tag message.LaneTag, stop <-chan struct{}) bool {
	if ln := ll.ln.Load(); ln != nil && !ln.AcceptFallback(tag.Channel, tag.Seq) {
		ll.stale.Add(1)
		return true
	}
	ll.recvMu.Lock()
	defer ll.recvMu.Unlock()
	if !ll.newer(tag.Channel, tag.Seq) {
		return true
	}
	ll.one[0] = m
	k := n.inbox.push(ll.one[:], stop)
	ll.one[0] = Message{}
	return k == 1
}

// laneSecret is the keyed lane's secret (SPEC.md 11.2): the handshake's two
// record keys, the initiator-to-responder one first. The lane derives its
// own keys from it and both tokens (lane.NewSession), so they are never
// those of the records, nor of another link.
func laneSecret(i2r, r2i [32]byte) []byte {
	return append(append(make([]byte, 0, 64), i2r[:]...), r2i[:]...)
}
