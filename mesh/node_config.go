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
	// addresses may be given; the first one's
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

	// MaxPeers bounds the peers linked at once, cable_car ones included.
	// A new peer past it is refused (its link closed with the reason "too
	// many peers") and counted, unless one source address holds at least
	// two more links than the newcomer's would: then the youngest unkeyed
	// link from the address holding the most is closed for it ("evicted:
	// too many peers from one address") and counted, so that made-up node
	// ids from many addresses cannot shut out a newcomer. Keyed links,
	// static peers and links from this host itself are never evicted; for
	// a moment one link more than MaxPeers may be up. Default 256. The
	// other bounds on incoming connections are in Link.Accept.
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
	case c.MaxPeers <= 0:
		return bad("MaxPeers must be positive")
	}
	if c.CableCar.Enabled {
		if err := c.CableCar.validate(); err != nil {
			return err
		}
	}
	return nil
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
