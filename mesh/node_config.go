package mesh

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/discovery"
	"github.com/lanmesh/lanmesh/meshkey"
	"github.com/lanmesh/lanmesh/message"
)

// NodeConfig configures a Node. Start from DefaultNodeConfig, set Mesh (so
// that your program has a mesh of its own) and what else you need, and let
// NewNode call Validate. It is copied on use.
//
// The top level holds the node's identity and the choices every program
// makes; the sub-structs hold the tunables, each knob in one place, with
// defaults that suit a LAN.
type NodeConfig struct {
	// NodeID names this node in the mesh. Default: a random id made by
	// DefaultNodeConfig. Keep the same id across restarts (store it) if
	// peers should recognise the node; the nil UUID is invalid.
	NodeID uuid.UUID
	// Name is the node's name for people (at most 255 bytes of UTF-8).
	// Default: the host name.
	Name string
	// Mesh names the mesh; peers with another name are refused (1 to 255
	// bytes of UTF-8; at most 64 with discovery on, which its beacons
	// carry). Default "lanmesh". Give each game or program its own.
	Mesh string
	// Codec is "binary", "msgpack" or "json"; every node of the mesh must
	// agree. Default "binary": the fastest and cable_car-compatible, but
	// frames hold at most 254 bytes and every registered type needs a
	// binary form (Validate checks).
	Codec string
	// Registry resolves message types. Default (nil): message.Default.
	Registry *message.Registry
	// Keyring holds the mesh key (see Config.Keyring and package meshkey).
	// Default: none. Discovery signs and checks beacons with it too.
	Keyring meshkey.Keyring
	// Logger receives the node's log, its links' and discovery's; nil
	// discards it.
	Logger *slog.Logger

	// OnPeer and OnMessage, if either is set, are called by the node's one
	// dispatcher goroutine, never with a lock held, for each peer event and
	// each message in the order the node received them: a peer's
	// PeerJoined before any of its messages, its PeerLeft after the last.
	// What has no callback set stays for Get and Receive, in the same
	// order: set both, or take the rest, since once Limits.ReceiveQueue
	// wait there the stream stops, callbacks included. They may call any
	// method of the node, Close included (see CloseReason); they should
	// return promptly, since what comes after waits for them, and past
	// Limits.ReceiveQueue the peers are slowed.
	OnPeer    func(PeerEvent)
	OnMessage func(Message)
	// Responder, if set, answers requests on a goroutine of its own: those
	// it has a rule for never reach Get. See Responder.
	Responder *Responder

	// Net says where the node listens and whom it dials.
	Net NetConfig
	// Link holds the tunables of every link.
	Link LinkConfig
	// Discovery says how peers are found.
	Discovery DiscoveryConfig
	// Limits bounds what the node holds and accepts.
	Limits Limits
	// CableCar, when Enabled, makes the node also speak to Python cable_car
	// programs on the LAN (see CableCarConfig). Default off.
	CableCar CableCarConfig
	// Lane is the UDP lane beside every link, for the Sequenced and
	// Unreliable delivery kinds (see Delivery). Default on.
	Lane LaneConfig
	// Resume keeps reliable messages across a cut: see ResumeConfig.
	Resume ResumeConfig
}

// ResumeConfig says how a node keeps what it sent to each peer so that a
// link that ends while both programs run can be resumed by the next one,
// with nothing lost and nothing doubled (SPEC.md section 12). Zero fields
// take their defaults.
type ResumeConfig struct {
	// Disabled turns resumable links off. On (the default), the node
	// offers them in its handshakes (unkeyed and keyed alike), and a link to a peer that offers them
	// too resumes: a link that ends while both programs run loses nothing
	// (SPEC.md section 12). Off, a link that ends loses what was in flight
	// on it, reported only as PeerLeft; nodes without resume link with
	// nodes that have it, with the older guarantee. On a keyed mesh a link
	// resumes a session only with the secret of the session's first keyed
	// handshake, which other holders of the mesh key do not have.
	Disabled bool
	// Window is how long a peer whose link ended without a Bye is kept
	// (PeerResuming): Sends to it are kept and the node redials it. If no
	// link resumes the session within it, the peer has left, and what it
	// never acknowledged is reported lost. Default 30 s. Longer carries
	// longer cuts; a host that vanished is reported left only after it,
	// and its journal holds memory (at most the budget) meanwhile.
	Window time.Duration
	// MaxFrames and MaxBytes are the resend budget per peer: the most
	// messages, and bytes of them, kept until the peer acknowledges them.
	// Defaults 32768 and 4 MiB (more than 100 s of 300 messages a second).
	// The memory is taken as traffic needs it, up to MaxBytes per peer.
	MaxFrames, MaxBytes int
	// RefuseWhenFull: at the budget, Send fails with ErrBackpressure
	// (nothing is ever lost to the budget) instead of dropping the oldest
	// unacknowledged messages from the journal (the default: Send never
	// fails for the budget; a dropped message is lost only if a resume
	// needs it, and then it is reported with its exact range).
	RefuseWhenFull bool
}

// Defaults of ResumeConfig.
const (
	defaultResumeWindow    = 30 * time.Second
	defaultResumeMaxFrames = 32768
	defaultResumeMaxBytes  = 4 << 20
)

// withDefaults fills in zero fields.
func (c ResumeConfig) withDefaults() ResumeConfig {
	if c.Window == 0 {
		c.Window = defaultResumeWindow
	}
	if c.MaxFrames == 0 {
		c.MaxFrames = defaultResumeMaxFrames
	}
	if c.MaxBytes == 0 {
		c.MaxBytes = defaultResumeMaxBytes
	}
	return c
}

// NetConfig says where a node listens and whom it dials.
type NetConfig struct {
	// Listen lists the addresses links are accepted on. Default [":0"]: every
	// interface, a free port (the one discovery advertises). Several
	// addresses may be given; the first one's port is advertised. Use
	// "127.0.0.1:0" to keep a node on loopback.
	Listen []string
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
	// RedialMax, with ±50% jitter so that nodes do not retry in step. The
	// first dial after a link ends waits RedialMin ±50% (50-150 ms by
	// default), so that the peer has time to notice the end too; news of
	// the peer (a beacon) never cuts a wait short. Defaults 100 ms and 5 s.
	// Shorter relinks sooner after a cut; longer spares a peer that
	// refuses or cannot be reached.
	RedialMin, RedialMax time.Duration
}

// Limits bounds what a node holds and accepts.
type Limits struct {
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
	// ReceiveQueue is how many received messages, from all peers together,
	// wait for the program (Get, Receive, OnMessage) before the links stop
	// reading, which stops the peers: their Sends report ErrBackpressure.
	// Peer events waiting among them take room too. Default 16384.
	ReceiveQueue int
	// Events bounds the peer events waiting for the program among the
	// messages. Past it the node waits, never drops: it links no new peer
	// and reports no departure until the program takes some (a departed
	// peer's Send already fails with ErrPeerGone). Close lifts the bound, so
	// every PeerLeft of the links it closes is delivered. Default 1024.
	Events int
	// TrafficLog is how many records the traffic log keeps, once started.
	// Default 1024.
	TrafficLog int
}

// Defaults of NodeConfig.
const (
	defaultDialGrace         = 300 * time.Millisecond
	defaultRedialMin         = 100 * time.Millisecond
	defaultRedialMax         = 5 * time.Second
	defaultNodeReceiveQueue  = 16384
	defaultMaxEvents         = 1024
	defaultTrafficLogSize    = 1024
	defaultMaxPeers          = 256
	defaultNodeListenAddress = ":0"
)

// DefaultNodeConfig returns a NodeConfig with every default filled in and a
// new random node id.
func DefaultNodeConfig() NodeConfig {
	return NodeConfig{
		NodeID: uuid.New(),
		Name:   hostName(),
		Mesh:   DefaultMesh,
		Codec:  DefaultCodec,
		Net: NetConfig{
			Listen:    []string{defaultNodeListenAddress},
			DialGrace: defaultDialGrace,
			RedialMin: defaultRedialMin,
			RedialMax: defaultRedialMax,
		},
		Link:      DefaultLinkConfig(),
		Discovery: DefaultDiscoveryConfig(),
		Limits: Limits{
			MaxPeers:     defaultMaxPeers,
			ReceiveQueue: defaultNodeReceiveQueue,
			Events:       defaultMaxEvents,
			TrafficLog:   defaultTrafficLogSize,
		},
		CableCar: DefaultCableCarConfig(),
		Resume: ResumeConfig{
			Window:    defaultResumeWindow,
			MaxFrames: defaultResumeMaxFrames,
			MaxBytes:  defaultResumeMaxBytes,
		},
	}
}

// Validate reports the first bad field, wrapping ErrConfig. It checks all
// that NewNode will check, short of binding the ports.
func (c *NodeConfig) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)
	}
	if c.NodeID == uuid.Nil && c.Link == (LinkConfig{}) {
		return bad("the NodeConfig is empty: start from DefaultNodeConfig()")
	}
	if err := validateIdentity(c.NodeID, c.Name, c.Mesh, c.Codec, c.Keyring); err != nil {
		return err
	}
	if err := checkTypes(c.Codec, c.registry()); err != nil {
		return err
	}
	if err := c.Link.Validate(); err != nil {
		return err
	}
	switch {
	case len(c.Net.Listen) == 0 && !c.CableCar.Enabled:
		return bad("Net.Listen is empty: a node must accept links")
	case c.Net.DialGrace < 0:
		return bad("Net.DialGrace is negative")
	case c.Net.RedialMin <= 0 || c.Net.RedialMax < c.Net.RedialMin:
		return bad("want 0 < Net.RedialMin <= Net.RedialMax, have %v and %v", c.Net.RedialMin, c.Net.RedialMax)
	case c.Limits.ReceiveQueue <= 0:
		return bad("Limits.ReceiveQueue must be positive")
	case c.Limits.Events <= 0:
		return bad("Limits.Events must be positive")
	case c.Limits.TrafficLog <= 0:
		return bad("Limits.TrafficLog must be positive")
	case c.Limits.MaxPeers <= 0:
		return bad("Limits.MaxPeers must be positive")
	case c.Resume.Window < 0 || c.Resume.MaxFrames < 0 || c.Resume.MaxBytes < 0:
		return bad("Resume.Window, MaxFrames and MaxBytes must not be negative")
	case c.Resume.MaxFrames > 1<<32-1 || c.Resume.MaxBytes > 1<<32-1:
		return bad("Resume.MaxFrames and MaxBytes must be under 2^32")
	}
	if c.CableCar.Enabled {
		if err := c.CableCar.validate(); err != nil {
			return err
		}
		if cc := c.cableCarCodec(); cc != "binary" && cc != "json" {
			return bad("CableCar: the node's codec is %q; set CableCar.Codec to binary or json", cc)
		}
		if err := checkTypes(c.cableCarCodec(), c.registry()); err != nil {
			return fmt.Errorf("%w (for cable_car's links)", err)
		}
	}
	if !c.Discovery.Off {
		// What NewNode gives discovery, with a stand-in for the port the
		// listener will have.
		dc := c.discoveryConfig(1)
		if err := dc.Validate(); err != nil {
			return fmt.Errorf("%w: Discovery: %w", ErrConfig, err)
		}
	}
	return nil
}

func (c *NodeConfig) registry() *message.Registry {
	if c.Registry == nil {
		return message.Default
	}
	return c.Registry
}

// linkConfig is the Config of the node's links.
func (c *NodeConfig) linkConfig() Config {
	return Config{
		NodeID:            c.NodeID,
		Name:              c.Name,
		Mesh:              c.Mesh,
		Codec:             c.Codec,
		Registry:          c.Registry,
		Keyring:           c.Keyring,
		Logger:            c.Logger,
		ReceiveQueueLimit: c.Limits.ReceiveQueue,
		Link:              c.Link,
	}
}

// cableCarCodec is the codec of cable_car links.
func (c *NodeConfig) cableCarCodec() string {
	if c.CableCar.Codec != "" {
		return c.CableCar.Codec
	}
	return c.Codec
}

// discoveryConfig is the configuration NewNode gives discovery: the
// tunables of c.Discovery, and the node's identity.
func (c *NodeConfig) discoveryConfig(port int) discovery.Config {
	d := &c.Discovery
	dc := discovery.DefaultConfig()
	dc.Mesh = c.Mesh
	dc.NodeID = c.NodeID
	dc.InstanceID = processInstance
	dc.Name = c.Name
	dc.Port = port
	dc.Keyring = c.Keyring
	dc.Logger = c.Logger
	dc.BeaconPort = d.BeaconPort
	dc.Interfaces = slices.Clone(d.Interfaces)
	dc.Destinations = slices.Clone(d.Destinations)
	dc.Broadcast = d.Broadcast
	dc.MDNS = d.MDNS
	dc.MDNSService = d.MDNSService
	dc.MDNSInterval = d.MDNSInterval
	dc.MDNSTimeout = d.MDNSTimeout
	dc.Seeds = slices.Clone(d.Seeds)
	dc.Interval = d.Interval
	dc.Jitter = d.Jitter
	dc.LostAfter = d.LostAfter
	dc.InterfaceRefresh = d.InterfaceRefresh
	dc.MaxPeers = d.MaxSeen
	dc.BeaconRate = d.BeaconRate
	return dc
}

// DiscoveryConfig says how a node finds its peers: broadcast beacons, mDNS
// and seeds (see package discovery, whose Config these fields fill; the
// node supplies its identity, port and key itself). Start from
// DefaultDiscoveryConfig, which broadcasts on every interface; restrict
// Interfaces (or set Destinations) on machines with VPNs or container
// bridges, or call UseLoopback.
type DiscoveryConfig struct {
	// Off turns discovery off: the node links only with Net.Peers and with
	// what Connect is given. Default false.
	Off bool
	// BeaconPort is the UDP port of beacons, shared by every node of the
	// LAN and every node on one host. Default 8222, the port of cable_car's
	// "BROADCAST" too (CableCar.BeaconPort, a port of another protocol).
	BeaconPort int
	// Interfaces restricts discovery to the named interfaces. Empty means
	// every suitable interface (see discovery.Config.Interfaces).
	Interfaces []string
	// Destinations, when not empty, replaces the computed broadcast
	// destinations, for example with 127.255.255.255:port to keep
	// discovery on loopback. Default: empty.
	Destinations []netip.AddrPort
	// Broadcast enables UDP broadcast beacons. Default true.
	Broadcast bool
	// MDNS enables the mDNS service and browsing. Default true.
	MDNS bool
	// MDNSService is the DNS-SD service type. Default "_lanmesh._tcp".
	MDNSService string
	// MDNSInterval is the time between mDNS browses, MDNSTimeout how long
	// each listens. Defaults 1 s and 300 ms.
	MDNSInterval, MDNSTimeout time.Duration
	// Seeds are host:port addresses of peers' beacon ports, for networks
	// that carry neither broadcast nor multicast. Default: none.
	Seeds []string
	// Interval is the time between beacons, Jitter their spread. Defaults
	// 1 s and 100 ms.
	Interval, Jitter time.Duration
	// LostAfter is how long a peer may stay silent before it is reported
	// lost. Default 3 s.
	LostAfter time.Duration
	// InterfaceRefresh is how often the interface list is re-read.
	// Default 5 s.
	InterfaceRefresh time.Duration
	// MaxSeen bounds the peers discovery keeps track of (linked or not),
	// so that forged beacons cannot grow its table without limit. Default
	// 1024.
	MaxSeen int
	// BeaconRate is how many datagrams per second one source address may
	// have processed (bursts of twice as many); 0 turns the limit off.
	// Default 50.
	BeaconRate float64
}

// DefaultDiscoveryConfig returns discovery's defaults.
func DefaultDiscoveryConfig() DiscoveryConfig {
	dc := discovery.DefaultConfig()
	return DiscoveryConfig{
		BeaconPort:       dc.BeaconPort,
		Broadcast:        dc.Broadcast,
		MDNS:             dc.MDNS,
		MDNSService:      dc.MDNSService,
		MDNSInterval:     dc.MDNSInterval,
		MDNSTimeout:      dc.MDNSTimeout,
		Interval:         dc.Interval,
		Jitter:           dc.Jitter,
		LostAfter:        dc.LostAfter,
		InterfaceRefresh: dc.InterfaceRefresh,
		MaxSeen:          dc.MaxPeers,
		BeaconRate:       dc.BeaconRate,
	}
}

// UseLoopback keeps discovery on this machine: the loopback interface,
// beacons to 127.255.255.255 on beaconPort, no mDNS (see
// discovery.Config.UseLoopback).
func (d *DiscoveryConfig) UseLoopback(beaconPort int) {
	dc := discovery.Config{}
	dc.UseLoopback(beaconPort)
	d.BeaconPort = dc.BeaconPort
	d.Interfaces = dc.Interfaces
	d.Destinations = dc.Destinations
	d.MDNS = dc.MDNS
}

// UseLoopback keeps the node on this machine: it listens on 127.0.0.1 only,
// discovery uses the loopback interface with beacons to 127.255.255.255 on
// beaconPort and no mDNS (see discovery.Config.UseLoopback), and cable_car
// compatibility, if enabled, stays on loopback too. For trying several
// nodes on one machine, demos and tests: nothing leaves the machine.
func (c *NodeConfig) UseLoopback(beaconPort int) {
	c.Net.Listen = []string{"127.0.0.1:0"}
	c.Discovery.UseLoopback(beaconPort)
	c.CableCar.Listen = fmt.Sprintf("127.0.0.1:%d", CableCarPort)
	c.CableCar.Destinations = []netip.AddrPort{netip.AddrPortFrom(discovery.LoopbackBroadcast, CableCarBeaconPort)}
	c.CableCar.AllowLoopback = true
}
