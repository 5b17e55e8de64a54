package mesh

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/internal/ifaddr"
	"github.com/lanmesh/lanmesh/internal/ratelimit"
	"github.com/lanmesh/lanmesh/internal/udpshare"
)

// CableCarConfig makes a node also speak to Python cable_car programs, whose
// wire is this: each broadcasts the ASCII bytes "BROADCAST" to UDP port 8222
// every second; one that hears it from address A connects by TCP to A:8223;
// each listens on TCP 8223; on a connection there is no handshake, only
// frames of the binary codec (cable_car's byte transport) or of the JSON
// codec (its json transport). cable_car keys peers by IP address.
//
// With it on, a node does all of that too, and each cable_car program it
// links with becomes a peer whose id is derived from its IP address and
// whose name is "cablecar@IP". Such links carry no control frames (cable_car
// would not know them): no pings, so a silent cable_car peer is noticed only
// when its connection fails, and no Bye on close.
//
// Two lanmesh nodes in compatibility mode find each other by lanmesh's own
// discovery: a "BROADCAST" or a connection from the address of a peer
// already known to discovery is ignored, so that they link once.
//
// A "BROADCAST" is a claim anyone can make from any source address, so the
// node dials only what is plausible and at a bounded rate: a source on the
// subnet of one of the host's up interfaces (loopback only with
// AllowLoopback), at most BroadcastRate datagrams a second from one source
// and BroadcastTotal from all, at most cableCarMaxDials dials at once, and
// one dial per source per cableCarRedial. cable_car links count against
// MaxPeers, come in through the node's accept loop (Link.Accept: rate,
// handshake slots, partial frames), and an incoming one holds a handshake
// slot (evictable under a flood) until it sends its first whole message.
// A link that sends no whole message within IdleTimeout is closed.
type CableCarConfig struct {
	// Enabled turns compatibility on. Default false.
	Enabled bool
	// Listen is where cable_car programs connect. Default ":8223".
	Listen string
	// PeerPort is the TCP port dialled on a host heard broadcasting.
	// Default 8223.
	PeerPort int
	// BeaconPort is the UDP port of "BROADCAST". Default 8222, which
	// lanmesh's beacons share (both bind it shared).
	BeaconPort int
	// Destinations are where "BROADCAST" is sent. Default
	// 255.255.255.255:BeaconPort, as cable_car sends it. On one machine
	// without a LAN, use 127.255.255.255.
	Destinations []netip.AddrPort
	// Interval is the time between broadcasts. Default 1 s.
	Interval time.Duration
	// Codec of cable_car links: "binary" (the byte transport) or "json".
	// Default: the node's codec, which must then be one of these.
	Codec string
	// AllowLoopback lets the node link with cable_car programs at its own
	// addresses (cable_car's allow_loopback); its own broadcasts are always
	// ignored. Default false.
	AllowLoopback bool
	// BroadcastRate is how many "BROADCAST" datagrams a second one source
	// address may have heard (bursts of twice as many); the rest are
	// dropped and counted. Default 2 (cable_car sends one a second).
	BroadcastRate float64
	// BroadcastTotal is how many a second are heard from all sources
	// together, so that spoofed sources cannot make the node dial a
	// stranger per datagram; the rest are dropped and counted. Default 20.
	// Larger finds many cable_car programs that start at once sooner.
	BroadcastTotal float64
	// IdleTimeout closes a cable_car link that has sent no whole message
	// for this long since it opened. Links that have sent one are never
	// closed for silence: cable_car sends no pings, and its programs may
	// be quiet for long. Default 5 min. Shorter frees idle connections of
	// a flood sooner; a real program that connects and says nothing for
	// longer is dropped (and relinks on its next "BROADCAST").
	IdleTimeout time.Duration
}

// CableCarStats are the counters of cable_car compatibility.
type CableCarStats struct {
	// Heard counts "BROADCAST" datagrams from others.
	Heard uint64
	// RateDropped counts those dropped by BroadcastRate or BroadcastTotal.
	RateDropped uint64
	// Implausible counts those from a source the node will not dial: off
	// the subnets of its interfaces, loopback without AllowLoopback, or a
	// broadcast or network address.
	Implausible uint64
	// Dials counts connection attempts to cable_car programs;
	// DialFailures those that failed. DialsSkipped counts dials not made
	// because cableCarMaxDials were in progress or the source was dialled
	// lately.
	Dials, DialFailures, DialsSkipped uint64
	// IdleClosed counts links closed by IdleTimeout.
	IdleClosed uint64
}

type cableCarCounters struct {
	heard, rateDropped, implausible, dials, dialFailures, dialsSkipped, idleClosed atomic.Uint64
}

// cable_car's ports and interval.
const (
	CableCarBeaconPort = 8222
	CableCarPort       = 8223
	cableCarBeacon     = "BROADCAST"
	cableCarDialTime   = 2 * time.Second // cable_car's tcp_connect_timeout

	// cableCarMaxDials bounds the dials in progress at once.
	cableCarMaxDials = 16
	// cableCarRedial is how often one source may be dialled: a program
	// that is there links at the first dial, so more dials of an address
	// that does not answer only serve a reflection attack.
	cableCarRedial = 10 * time.Second
)

// DefaultCableCarConfig returns cable_car's own ports and interval, off.
func DefaultCableCarConfig() CableCarConfig {
	return CableCarConfig{
		Listen:     fmt.Sprintf(":%d", CableCarPort),
		PeerPort:   CableCarPort,
		BeaconPort: CableCarBeaconPort,
		Interval:   time.Second,

		BroadcastRate:  2,
		BroadcastTotal: 20,
		IdleTimeout:    5 * time.Minute,
	}
}

func (c *CableCarConfig) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: CableCar: "+format, append([]any{ErrConfig}, args...)...)
	}
	switch {
	case c.Listen == "":
		return bad("Listen is empty")
	case c.PeerPort <= 0 || c.PeerPort > 65535 || c.BeaconPort <= 0 || c.BeaconPort > 65535:
		return bad("ports %d and %d out of range", c.PeerPort, c.BeaconPort)
	case c.Interval <= 0:
		return bad("Interval must be positive")
	case c.Codec != "" && c.Codec != "binary" && c.Codec != "json":
		return bad("Codec %q: cable_car speaks binary or json", c.Codec)
	case c.BroadcastRate <= 0 || c.BroadcastTotal <= 0:
		return bad("BroadcastRate and BroadcastTotal must be positive (start from DefaultCableCarConfig)")
	case c.IdleTimeout <= 0:
		return bad("IdleTimeout must be positive (start from DefaultCableCarConfig)")
	}
	for _, d := range c.Destinations {
		if !d.IsValid() || !d.Addr().Unmap().Is4() {
			return bad("destination %v is not an IPv4 address and port", d)
		}
	}
	return nil
}

// cableCarNS is the namespace of the ids derived from cable_car peers' IPs.
var cableCarNS = uuid.MustParse("6c616e6d-6573-4863-a162-6c6563617221")

// cableCarID is the node id given to the cable_car program at ip.
func cableCarID(ip netip.Addr) uuid.UUID { return uuid.NewSHA1(cableCarNS, []byte(ip.String())) }

type cableCar struct {
	n     *Node
	cfg   CableCarConfig
	link  Config // the node's link config, with cable_car's codec
	ln    net.Listener
	udp   *net.UDPConn // hears "BROADCAST" on the shared port
	send  *net.UDPConn // sends it, from a port of its own
	dests []netip.AddrPort

	// mu guards byIP: the links (or dials in progress: nil) by address.
	mu   sync.Mutex
	byIP map[netip.Addr]*link

	perSource *ratelimit.Limiter // "BROADCAST"s heard, per source
	total     *ratelimit.Limiter // and from all sources, under one key
	redial    *ratelimit.Limiter // dials per source
	dialing   atomic.Int32
	counters  cableCarCounters

	// localMu guards the host's addresses and subnets, re-read at most
	// once a second rather than for every datagram heard.
	localMu sync.Mutex
	local   []netip.Addr
	ifs     []ifaddr.Interface
	localAt time.Time
}

func startCableCar(n *Node) (*cableCar, error) {
	cfg := n.cfg.CableCar
	lc := n.link
	if cfg.Codec != "" {
		lc.Codec = cfg.Codec
	}
	if lc.Codec != "binary" && lc.Codec != "json" {
		return nil, fmt.Errorf("%w: CableCar: the node's codec is %q; set CableCar.Codec to binary or json", ErrConfig, lc.Codec)
	}
	c := &cableCar{n: n, cfg: cfg, link: lc, byIP: map[netip.Addr]*link{}, dests: cfg.Destinations,
		perSource: ratelimit.New(cfg.BroadcastRate, int(2*cfg.BroadcastRate)+1, maxRateSources),
		total:     ratelimit.New(cfg.BroadcastTotal, int(2*cfg.BroadcastTotal)+1, 1),
		redial:    ratelimit.New(1/cableCarRedial.Seconds(), 1, maxRateSources)}
	if len(c.dests) == 0 {
		c.dests = []netip.AddrPort{netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), uint16(cfg.BeaconPort))}
	}
	var err error
	if c.ln, err = n.tr.Listen(cfg.Listen); err != nil {
		return nil, fmt.Errorf("mesh: cable_car listen on %s: %w", cfg.Listen, err)
	}
	if c.udp, err = udpshare.Listen(cfg.BeaconPort); err != nil {
		c.ln.Close()
		return nil, fmt.Errorf("mesh: cable_car beacon port %d: %w", cfg.BeaconPort, err)
	}
	if c.send, err = udpshare.ListenSender(); err != nil {
		c.ln.Close()
		c.udp.Close()
		return nil, fmt.Errorf("mesh: cable_car sender: %w", err)
	}
	n.acc.serve(c.ln, c.incoming)
	n.wg.Add(2)
	go c.listenLoop()
	go c.broadcastLoop()
	return c, nil
}

func (c *cableCar) close() {
	c.ln.Close()
	c.udp.Close()
	c.send.Close()
}

func (c *cableCar) broadcastLoop() {
	defer c.n.wg.Done()
	t := time.NewTimer(100 * time.Millisecond) // cable_car's first broadcast
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-c.n.ctx.Done():
			return
		}
		for _, d := range c.dests {
			if _, err := c.send.WriteToUDPAddrPort([]byte(cableCarBeacon), d); err != nil {
				c.n.log.Debug("mesh: cable_car broadcast", "to", d, "err", err)
			}
		}
		t.Reset(c.cfg.Interval)
	}
}

// listenLoop hears "BROADCAST" and dials its sender.
func (c *cableCar) listenLoop() {
	defer c.n.wg.Done()
	own := c.send.LocalAddr().(*net.UDPAddr).Port
	buf := make([]byte, 64)
	for {
		n, from, err := c.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			if c.n.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		ip := from.Addr().Unmap()
		if !bytes.Equal(buf[:n], []byte(cableCarBeacon)) || (int(from.Port()) == own && c.isLocal(ip)) {
			continue // not cable_car's, or our own
		}
		c.heard(ip)
	}
}

// heard takes a "BROADCAST" from ip and dials ip if that is plausible and
// within the bounds.
func (c *cableCar) heard(ip netip.Addr) {
	c.counters.heard.Add(1)
	now := time.Now()
	if !c.perSource.Allow(ip, now) || !c.total.Allow(netip.Addr{}, now) {
		c.counters.rateDropped.Add(1)
		return
	}
	if !c.plausible(ip) {
		c.counters.implausible.Add(1)
		c.n.log.Debug("mesh: cable_car BROADCAST from an implausible source ignored", "ip", ip)
		return
	}
	if !c.want(ip) {
		return
	}
	if c.dialing.Add(1) > cableCarMaxDials || !c.redial.Allow(ip, now) {
		c.dialing.Add(-1)
		c.counters.dialsSkipped.Add(1)
		c.release(ip, nil)
		return
	}
	c.counters.dials.Add(1)
	c.n.wg.Add(1)
	go c.dial(ip)
}

// plausible reports whether a cable_car program may be at ip: an IPv4
// host address (not a network or broadcast address) on the subnet of one
// of this host's up interfaces, loopback only with AllowLoopback. (The
// interface the datagram came in on is not known to a plain UDP socket:
// any of the host's subnets is accepted.)
func (c *cableCar) plausible(ip netip.Addr) bool {
	c.localMu.Lock()
	c.refreshLocked()
	ifs := c.ifs
	c.localMu.Unlock()
	return plausibleCableCar(ip, ifs, c.cfg.AllowLoopback)
}

// plausibleCableCar is plausible's rule, on an interface list.
func plausibleCableCar(ip netip.Addr, ifs []ifaddr.Interface, allowLoopback bool) bool {
	ip = ip.Unmap()
	if !ip.Is4() || ip.IsUnspecified() || ip.IsMulticast() || ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}) {
		return false
	}
	if ip.IsLoopback() && !allowLoopback {
		return false
	}
	for _, it := range ifs {
		if !it.Up || it.Loopback != ip.IsLoopback() {
			continue
		}
		for _, p := range it.Prefixes {
			if !p.Contains(ip) {
				continue
			}
			if bc, ok := ifaddr.DirectedBroadcast(p); ok && (ip == bc || ip == p.Masked().Addr()) && !ip.IsLoopback() {
				return false
			}
			return true
		}
	}
	return false
}

// want claims ip for a dial: no link or dial to it yet, not a lanmesh peer,
// not this host unless allowed.
func (c *cableCar) want(ip netip.Addr) bool {
	if (!c.cfg.AllowLoopback && c.isLocal(ip)) || c.n.knowsLanmeshAt(ip) {
		return false
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, busy := c.byIP[ip]; busy || c.n.ctx.Err() != nil {
		return false
	}
	c.byIP[ip] = nil
	return true
}

func (c *cableCar) release(ip netip.Addr, l *link) {
	c.mu.Lock()
	if c.byIP[ip] == l {
		delete(c.byIP, ip)
	}
	c.mu.Unlock()
}

func (c *cableCar) dial(ip netip.Addr) {
	defer c.n.wg.Done()
	ctx, cancel := context.WithTimeout(c.n.ctx, cableCarDialTime)
	defer cancel()
	conn, err := c.n.tr.Dial(ctx, netip.AddrPortFrom(ip, uint16(c.cfg.PeerPort)).String())
	c.dialing.Add(-1)
	if err != nil {
		c.counters.dialFailures.Add(1)
		c.n.log.Debug("mesh: cable_car dial", "ip", ip, "err", err)
		c.release(ip, nil)
		return
	}
	c.attach(conn, ip, nil)
}

// incoming takes a connection the node's accept loop let in on cable_car's
// port, holding slot until the link sends its first whole message.
func (c *cableCar) incoming(conn net.Conn, slot *slot) {
	ap, err := netip.ParseAddrPort(conn.RemoteAddr().String())
	ip := ap.Addr().Unmap()
	if err != nil || !c.want(ip) {
		// cable_car keeps the first connection per address; so do we.
		slot.release()
		conn.Close()
		return
	}
	c.attach(conn, ip, slot)
}

// attach makes conn the link to the cable_car program at ip. An incoming
// link holds its handshake slot until its first whole message.
func (c *cableCar) attach(conn net.Conn, ip netip.Addr, slot *slot) {
	id := cableCarID(ip)
	remote := hello{NodeID: id, InstanceID: id, Name: "cablecar@" + ip.String(),
		Mesh: c.n.link.Mesh, Codec: c.link.Codec}
	l, err := c.n.attachQuiet(conn, c.link, remote)
	if err != nil {
		if slot != nil {
			slot.release()
		}
		c.n.log.Debug("mesh: cable_car link refused", "ip", ip, "err", err)
		c.release(ip, nil)
		return
	}
	c.mu.Lock()
	c.byIP[ip] = l
	c.mu.Unlock()
	// Evicted on the accept loop's goroutine: end the link without waiting
	// to flush anything to a peer that has said nothing.
	evict := func() {
		l.shutdown(closeErr(ErrClosed, false, "evicted: too many connections in progress"), closeAbrupt)
	}
	if slot != nil && !slot.setEvict(evict) {
		evict()
	}
	c.n.wg.Add(1)
	go c.watch(l, ip, slot)
}

// watch waits for the first whole message of a cable_car link (giving back
// its handshake slot), closing it after IdleTimeout without one, and frees
// its address when it ends.
func (c *cableCar) watch(l *link, ip netip.Addr, slot *slot) {
	defer c.n.wg.Done()
	idle := time.NewTimer(c.cfg.IdleTimeout)
	defer idle.Stop()
	select {
	case <-l.meter.first:
	case <-idle.C:
		c.counters.idleClosed.Add(1)
		c.n.log.Debug("mesh: cable_car link closed: no message", "ip", ip, "after", c.cfg.IdleTimeout)
		l.CloseReason(fmt.Sprintf("no message for %v", c.cfg.IdleTimeout))
	case <-l.Done():
	}
	if slot != nil {
		slot.release()
	}
	<-l.Done()
	c.release(ip, l)
}

func (c *cableCar) stats() CableCarStats {
	k := &c.counters
	return CableCarStats{Heard: k.heard.Load(), RateDropped: k.rateDropped.Load(), Implausible: k.implausible.Load(),
		Dials: k.dials.Load(), DialFailures: k.dialFailures.Load(), DialsSkipped: k.dialsSkipped.Load(),
		IdleClosed: k.idleClosed.Load()}
}

// isLocal reports whether ip is an address of this host.
func (c *cableCar) isLocal(ip netip.Addr) bool {
	if ip.IsLoopback() {
		return true
	}
	c.localMu.Lock()
	defer c.localMu.Unlock()
	c.refreshLocked()
	return slices.Contains(c.local, ip)
}

// refreshLocked re-reads the host's addresses and interfaces if the last
// read is over a second old. c.localMu is held.
func (c *cableCar) refreshLocked() {
	if time.Since(c.localAt) <= time.Second {
		return
	}
	c.local, c.localAt = c.local[:0], time.Now()
	if addrs, err := net.InterfaceAddrs(); err == nil {
		for _, a := range addrs {
			if p, err := netip.ParsePrefix(a.String()); err == nil {
				c.local = append(c.local, p.Addr().Unmap())
			}
		}
	}
	if ifs, err := ifaddr.List(nil); err == nil {
		c.ifs = ifs
	}
}

// knowsLanmeshAt reports whether a lanmesh peer (not a cable_car one) is
// known at ip.
func (n *Node) knowsLanmeshAt(ip netip.Addr) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	for _, p := range n.peers {
		if p.quiet {
			continue
		}
		if ap, err := netip.ParseAddrPort(p.addr); err == nil && ap.Addr().Unmap() == ip {
			return true
		}
	}
	return false
}

// attachQuiet adds a link with no handshake and no control frames (a
// cable_car peer) to the node's table. It replaces nothing: the caller
// keeps one such link per address.
func (n *Node) attachQuiet(conn net.Conn, cfg Config, remote hello) (*link, error) {
	local := n.hello
	local.Codec = cfg.Codec
	sink := &nodeSink{n: n, quiet: true, attached: make(chan struct{})}
	l, err := newLink(withBudget(conn, n.budget), cfg, local, remote, sink, true, nil)
	if err != nil {
		conn.Close()
		return nil, err
	}
	release := sync.OnceFunc(func() { close(sink.attached) })
	defer release()
	n.mu.Lock()
	if n.closed || n.peers[remote.NodeID] != nil && n.peers[remote.NodeID].link != nil {
		n.mu.Unlock()
		release()
		l.CloseReason(reasonDuplicate)
		return nil, ErrNodeClosed
	}
	p := n.peers[remote.NodeID]
	if why := n.admitLocked(p, l, conn, true); why != "" {
		n.mu.Unlock()
		release()
		l.CloseReason(why)
		return nil, fmt.Errorf("mesh: cable_car peer %s refused: %s", remote.Name, why)
	}
	if p == nil {
		p = &peer{id: remote.NodeID, wake: make(chan struct{}, 1)}
		n.peers[p.id] = p
	}
	p.quiet = true
	p.link = l
	p.name = remote.Name
	p.instance = remote.InstanceID
	p.addr = conn.RemoteAddr().String()
	p.joined = time.Now()
	delete(n.tombs, p.id)
	n.publishLocked()
	n.pushEventLocked(PeerEvent{Kind: PeerJoined, Peer: n.infoLocked(p)})
	n.wg.Add(1)
	go n.watch(p, l)
	n.mu.Unlock()
	return l, nil
}
