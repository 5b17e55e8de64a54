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
	"time"

	"github.com/google/uuid"

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
}

// cable_car's ports and interval.
const (
	CableCarBeaconPort = 8222
	CableCarPort       = 8223
	cableCarBeacon     = "BROADCAST"
	cableCarDialTime   = 2 * time.Second // cable_car's tcp_connect_timeout
)

// DefaultCableCarConfig returns cable_car's own ports and interval, off.
func DefaultCableCarConfig() CableCarConfig {
	return CableCarConfig{
		Listen:     fmt.Sprintf(":%d", CableCarPort),
		PeerPort:   CableCarPort,
		BeaconPort: CableCarBeaconPort,
		Interval:   time.Second,
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

	// localMu guards the host's addresses, re-read at most once a second
	// rather than for every datagram heard.
	localMu sync.Mutex
	local   []netip.Addr
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
	c := &cableCar{n: n, cfg: cfg, link: lc, byIP: map[netip.Addr]*link{}, dests: cfg.Destinations}
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
	n.wg.Add(3)
	go c.acceptLoop()
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
		if !c.want(ip) {
			continue
		}
		c.n.wg.Add(1)
		go c.dial(ip)
	}
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
	if err != nil {
		c.n.log.Debug("mesh: cable_car dial", "ip", ip, "err", err)
		c.release(ip, nil)
		return
	}
	c.attach(conn, ip)
}

func (c *cableCar) acceptLoop() {
	defer c.n.wg.Done()
	for {
		conn, err := c.ln.Accept()
		if err != nil {
			if c.n.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		ap, err := netip.ParseAddrPort(conn.RemoteAddr().String())
		if err != nil || !c.want(ap.Addr().Unmap()) {
			// cable_car keeps the first connection per address; so do we.
			conn.Close()
			continue
		}
		c.attach(conn, ap.Addr().Unmap())
	}
}

// attach makes conn the link to the cable_car program at ip.
func (c *cableCar) attach(conn net.Conn, ip netip.Addr) {
	id := cableCarID(ip)
	remote := hello{NodeID: id, InstanceID: id, Name: "cablecar@" + ip.String(),
		Mesh: c.n.link.Mesh, Codec: c.link.Codec}
	l, err := c.n.attachQuiet(conn, c.link, remote)
	if err != nil {
		c.n.log.Debug("mesh: cable_car link refused", "ip", ip, "err", err)
		c.release(ip, nil)
		return
	}
	c.mu.Lock()
	c.byIP[ip] = l
	c.mu.Unlock()
	c.n.wg.Add(1)
	go func() {
		defer c.n.wg.Done()
		<-l.Done()
		c.release(ip, l)
	}()
}

// isLocal reports whether ip is an address of this host.
func (c *cableCar) isLocal(ip netip.Addr) bool {
	if ip.IsLoopback() {
		return true
	}
	c.localMu.Lock()
	defer c.localMu.Unlock()
	if time.Since(c.localAt) > time.Second {
		c.local, c.localAt = c.local[:0], time.Now()
		if addrs, err := net.InterfaceAddrs(); err == nil {
			for _, a := range addrs {
				if p, err := netip.ParsePrefix(a.String()); err == nil {
					c.local = append(c.local, p.Addr().Unmap())
				}
			}
		}
	}
	return slices.Contains(c.local, ip)
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
	l, err := newLink(conn, cfg, local, remote, sink, true, nil)
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
