package mesh

import (
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/lanmesh/lanmesh/discovery"
)

// NodeConfig configures a Node. Start from DefaultNodeConfig, set what you
// need (at least Link.Mesh, so that your program has a mesh of its own), and
// let NewNode call Validate. It is copied on use.
type NodeConfig struct {
	// Link configures every link of the node: its identity (NodeID, Name),
	// the mesh name, the codec, the registry, the transport and the
	// liveness and buffer settings. Link.ListenPort is filled by NewNode.
	Link Config
	// Listen lists the addresses links are accepted on. Default [":0"]: every
	// interface, a free port (the one discovery advertises). Several
	// addresses may be given, as tinyproto's server allowed; the first one's
	// port is advertised. Use "127.0.0.1:0" to keep a node on loopback.
	Listen []string
	// Discovery configures how peers are found: broadcast beacons, mDNS and
	// seeds. Its Mesh, NodeID, InstanceID, Name and Port are set from Link
	// and the listener. Default: discovery.DefaultConfig(), which broadcasts
	// on every interface; restrict Interfaces (or set Destinations) on
	// machines with VPNs or container bridges.
	Discovery discovery.Config
	// NoDiscovery turns discovery off: the node links only with Peers and
	// with what Connect is given. Default false.
	NoDiscovery bool
	// Peers are addresses ("host:port", or a memory-network name) of nodes to
	// link with whether or not discovery finds them; they are redialled
	// while unreachable. Default: none.
	Peers []string

	// DialGrace is how long the node with the higher id waits for the lower
	// one to dial before it dials itself. Only one of two nodes normally
	// dials, so two links rarely race; the grace still lets a node that
	// cannot be heard be reached. Default 300 ms.
	DialGrace time.Duration
	// RedialMin and RedialMax bound the backoff between attempts to reach a
	// peer that discovery still sees: it doubles from RedialMin up to
	// RedialMax, with ±50% jitter so that nodes do not retry in step.
	// Defaults 100 ms and 5 s.
	RedialMin, RedialMax time.Duration

	// ReceiveQueueLimit is how many received messages, from all peers
	// together, wait for Get before the links stop reading (which stops the
	// peers: their Sends report ErrBackpressure). Default 16384.
	ReceiveQueueLimit int
	// MaxQueuedEvents bounds the peer events waiting for PollEvent; the
	// oldest are dropped past it (and counted). OnPeer sees every event.
	// Default 1024.
	MaxQueuedEvents int
	// TrafficLogSize is how many records the traffic log keeps, once
	// started. Default 1024.
	TrafficLogSize int

	// OnPeer, if set, is called for every peer event in order, on one
	// goroutine owned by the node, never with a lock held. It may call any
	// method of the node but Close; it should return promptly, since later
	// events wait for it.
	OnPeer func(PeerEvent)
	// OnMessage, if set, receives every message instead of Get and Receive,
	// in order, on one goroutine owned by the node. While it runs, messages
	// queue up (and past ReceiveQueueLimit the peers are slowed).
	OnMessage func(Message)
	// Responder, if set, answers requests on a goroutine of its own: those
	// it has a rule for never reach Get. See Responder.
	Responder *Responder

	// MaxHandshakes bounds the incoming handshakes in progress at once; one
	// source address may hold at most a quarter of them (at least one). A
	// connection past either bound is closed at once, before any handshake
	// work, and counted (NodeStats.RefusedConns); a silent one holds its
	// slot for at most Link.HandshakeTimeout. Default 64.
	MaxHandshakes int
	// ConnRate is how many incoming connections per second one source
	// address may open (with bursts of twice as many); past it they are
	// closed at once and counted. 0 turns the limit off. Default 20.
	ConnRate float64
	// MaxPeers bounds the peers linked at once; a new peer past it is
	// refused (its link closed with the reason "too many peers") and
	// counted. Default 256.
	MaxPeers int

	// CableCar, when Enabled, makes the node also speak to Python cable_car
	// programs on the LAN (see CableCarConfig). Default off.
	CableCar CableCarConfig

	// Logger receives the node's log; nil discards it. Link.Logger, if nil,
	// is set to it.
	Logger *slog.Logger
}

// Defaults of NodeConfig.
const (
	DefaultDialGrace         = 300 * time.Millisecond
	DefaultRedialMin         = 100 * time.Millisecond
	DefaultRedialMax         = 5 * time.Second
	DefaultNodeReceiveQueue  = 16384
	DefaultMaxQueuedEvents   = 1024
	DefaultTrafficLogSize    = 1024
	DefaultMaxHandshakes     = 64
	DefaultConnRate          = 20
	DefaultMaxPeers          = 256
	defaultNodeListenAddress = ":0"
)

// DefaultNodeConfig returns a NodeConfig with every default filled in and a
// new random node id.
func DefaultNodeConfig() NodeConfig {
	return NodeConfig{
		Link:              DefaultConfig(),
		Listen:            []string{defaultNodeListenAddress},
		Discovery:         discovery.DefaultConfig(),
		DialGrace:         DefaultDialGrace,
		RedialMin:         DefaultRedialMin,
		RedialMax:         DefaultRedialMax,
		ReceiveQueueLimit: DefaultNodeReceiveQueue,
		MaxQueuedEvents:   DefaultMaxQueuedEvents,
		TrafficLogSize:    DefaultTrafficLogSize,
		MaxHandshakes:     DefaultMaxHandshakes,
		ConnRate:          DefaultConnRate,
		MaxPeers:          DefaultMaxPeers,
		CableCar:          DefaultCableCarConfig(),
	}
}

// Validate reports the first bad field, wrapping ErrConfig.
func (c *NodeConfig) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)
	}
	if err := c.Link.Validate(); err != nil {
		return err
	}
	switch {
	case len(c.Listen) == 0 && !c.CableCar.Enabled:
		return bad("Listen is empty: a node must accept links")
	case c.DialGrace < 0:
		return bad("DialGrace is negative")
	case c.RedialMin <= 0 || c.RedialMax < c.RedialMin:
		return bad("want 0 < RedialMin <= RedialMax, have %v and %v", c.RedialMin, c.RedialMax)
	case c.ReceiveQueueLimit <= 0:
		return bad("ReceiveQueueLimit must be positive")
	case c.MaxQueuedEvents <= 0:
		return bad("MaxQueuedEvents must be positive")
	case c.TrafficLogSize <= 0:
		return bad("TrafficLogSize must be positive")
	case c.MaxHandshakes <= 0:
		return bad("MaxHandshakes must be positive")
	case c.ConnRate < 0:
		return bad("ConnRate is negative")
	case c.MaxPeers <= 0:
		return bad("MaxPeers must be positive")
	}
	if c.CableCar.Enabled {
		if err := c.CableCar.validate(); err != nil {
			return err
		}
		if cc := c.cableCarCodec(); cc != "binary" && cc != "json" {
			return bad("CableCar: the node's codec is %q; set CableCar.Codec to binary or json", cc)
		}
	}
	if !c.NoDiscovery {
		// What NewNode gives discovery, with a stand-in for the port the
		// listener will have.
		dc := c.discoveryConfig(c.Link, 1)
		if err := dc.Validate(); err != nil {
			return fmt.Errorf("%w: Discovery: %w", ErrConfig, err)
		}
	}
	return nil
}

// cableCarCodec is the codec of cable_car links.
func (c *NodeConfig) cableCarCodec() string {
	if c.CableCar.Codec != "" {
		return c.CableCar.Codec
	}
	return c.Link.Codec
}

// discoveryConfig is the configuration NewNode gives discovery: the
// tunables of c.Discovery, and the node's identity.
func (c *NodeConfig) discoveryConfig(link Config, port int) discovery.Config {
	dc := c.Discovery
	dc.Mesh = link.Mesh
	dc.NodeID = link.NodeID
	dc.InstanceID = link.InstanceID
	dc.Name = link.Name
	dc.Port = port
	dc.Keyring = link.Keyring
	if dc.Logger == nil {
		dc.Logger = c.Logger
	}
	return dc
}

// UseLoopback keeps the node on this machine: it listens on 127.0.0.1 only,
// discovery uses the loopback interface with beacons to 127.255.255.255 on
// beaconPort and no mDNS (see discovery.Config.UseLoopback), and cable_car
// compatibility, if enabled, stays on loopback too. For trying several
// nodes on one machine, demos and tests: nothing leaves the machine.
func (c *NodeConfig) UseLoopback(beaconPort int) {
	c.Listen = []string{"127.0.0.1:0"}
	c.Discovery.UseLoopback(beaconPort)
	c.CableCar.Listen = fmt.Sprintf("127.0.0.1:%d", CableCarPort)
	c.CableCar.Destinations = []netip.AddrPort{netip.AddrPortFrom(discovery.LoopbackBroadcast, CableCarBeaconPort)}
	c.CableCar.AllowLoopback = true
}
