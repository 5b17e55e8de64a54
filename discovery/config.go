package discovery

import (
	"fmt"
	"log/slog"
	"net/netip"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/meshkey"
)

// Defaults of DefaultConfig.
const (
	DefaultBeaconPort  = 8222
	DefaultMDNSService = "_lanmesh._tcp"
	DefaultInterval    = time.Second
)

// Config configures a Discoverer. Start from DefaultConfig, set Mesh and
// Port, and change what you need; Validate says what is wrong.
type Config struct {
	// Mesh is the name of the mesh; nodes of other meshes are invisible.
	// Required, 1..MaxMeshLen bytes of UTF-8.
	Mesh string
	// NodeID is the node's stable identity. Default (uuid.Nil): a random
	// id chosen by New; persist and pass one if peers should recognise the
	// node across restarts as Restarted rather than Found.
	NodeID uuid.UUID
	// InstanceID changes each time the program starts; peers report a new
	// one as Restarted. Default (uuid.Nil): random, which is almost always
	// what you want.
	InstanceID uuid.UUID
	// Name is a human-readable node name, 0..MaxNameLen bytes. Default:
	// empty (New does not guess, so that tests stay deterministic).
	Name string
	// Port is the TCP port that this node accepts links on, advertised to
	// peers. Required.
	Port int
	// BeaconPort is the UDP port of beacons, shared by every node of the
	// LAN and by every node on one host. Default 8222.
	BeaconPort int

	// Interfaces restricts discovery to the named interfaces. Empty means
	// every suitable interface. When set, beacons go only to the directed
	// broadcast addresses of these interfaces (never to 255.255.255.255,
	// which the kernel routes out of whichever interface it likes), mDNS
	// runs only on them, and beacons and mDNS answers are believed only
	// from addresses on their subnets (or from seeds). Use it on machines
	// with VPNs or container bridges. Whatever it holds, an address off
	// the subnets of the interfaces in use, or a loopback address (unless
	// discovery runs on loopback), is never believed: it is what the node
	// would dial.
	Interfaces []string
	// Destinations, when not empty, replaces the computed broadcast
	// destinations entirely, for example with 127.255.255.255:port to keep
	// discovery on the loopback interface. Default: empty.
	Destinations []netip.AddrPort

	// Broadcast enables UDP broadcast beacons: the fast path, found within
	// a round trip. Default true.
	Broadcast bool
	// MDNS enables the mDNS service and periodic browsing, which find
	// peers where broadcast does not pass and make the node visible to
	// avahi-browse and dns-sd. Default true.
	MDNS bool
	// MDNSService is the DNS-SD service type. Default "_lanmesh._tcp".
	MDNSService string
	// MDNSInterval is the time between mDNS browses. mDNS servers never
	// announce, so it bounds how late an mDNS-only peer is found and how
	// soon it can be declared lost. Default: Interval.
	MDNSInterval time.Duration
	// MDNSTimeout is how long each browse listens for answers; Close may
	// wait this long for a browse in flight. Default 300 ms.
	MDNSTimeout time.Duration
	// Seeds are host:port addresses of peers' beacon ports, for networks
	// that carry neither broadcast nor multicast. Each gets a unicast
	// query beacon every Interval and answers by unicast. Names are
	// resolved at every InterfaceRefresh, so prefer literal addresses.
	// Unicast to a port shared by several nodes on one host reaches only
	// one of them, so give each node that must be reached through seeds a
	// beacon port of its own. Default: none.
	Seeds []string

	// Interval is the time between beacons. Shorter finds lost peers
	// sooner at the cost of traffic (N nodes send N beacons per Interval).
	// Default 1 s.
	Interval time.Duration
	// Jitter spreads beacons uniformly over Interval±Jitter so that nodes
	// started together do not fall into step. Default Interval/10.
	Jitter time.Duration
	// LostAfter is how long a peer may stay silent before it is reported
	// Lost. Too short turns one lost beacon into a false Lost. Default
	// 3×Interval; it must exceed Interval+Jitter and, with MDNS, the
	// browse period MDNSInterval+MDNSTimeout.
	LostAfter time.Duration
	// InterfaceRefresh is how often the interface list is re-read, so that
	// an interface that comes up later is used. Default 5 s.
	InterfaceRefresh time.Duration
	// MaxPeers bounds the table so that a flood of forged beacons cannot
	// grow it without limit; new nodes beyond it are ignored and counted.
	// Default 1024.
	MaxPeers int
	// MaxQueuedEvents bounds the events waiting for OnEvent. Waiting
	// Updated events of one peer are folded into one, so only a callback
	// that stalls for long reaches the bound; events beyond it are dropped,
	// counted in Stats and logged at Warn. Peers stays exact. Default 4096.
	MaxQueuedEvents int

	// Keyring holds the mesh key (see package meshkey). Default: none.
	// With a key, beacons and mDNS records are signed (keyed beacons,
	// version 2), and only beacons that verify under a key of the ring,
	// and are not replays, are believed; unkeyed beacons are ignored. An
	// unkeyed node ignores keyed beacons and warns once that a peer
	// requires a mesh key. A beacon only ever causes a dial: the link's
	// handshake is the proof of membership.
	Keyring meshkey.Keyring
	// BeaconRate is how many datagrams per second one source address may
	// have processed (with bursts of twice as many), before any parsing or
	// MAC work; the rest are dropped and counted (Stats.RateLimited). The
	// sources share a fixed table of buckets (an address is hashed to one),
	// so spoofed sources cannot each get a fresh bucket, and all sources
	// together get at most 64 times BeaconRate (at least 1000) a second. 0
	// turns the limits off. Default 50: a node sends about one a second,
	// and a few more when others start.
	BeaconRate float64

	// Contest, if set, is asked about every claim that a beacon or an mDNS
	// record makes against a node: that node id now runs instance (a
	// restart, if the caller's link to it is of another instance) or, with
	// leaving, that instance is leaving. Unkeyed, anyone on the LAN can
	// make such a claim. Contest returns true when the caller holds a live
	// link to id that the claim would condemn; the sighting is then dropped
	// and counted (Stats.Disputed), and Contest should check the link
	// itself, without blocking (a probe the peer must answer), and close it
	// if it fails, so that the claim's next repetition (a restarted node
	// beacons every Interval) is believed. It runs on a socket read loop and
	// must return at once; it must not call the Discoverer while holding a
	// lock that OnEvent takes. Default: nil, every claim is believed.
	Contest func(id, instance uuid.UUID, leaving bool) bool
	// OnEvent, if set, receives every event in order, on one goroutine
	// owned by the Discoverer (never on a socket read loop, never with a
	// lock held). It may call Peers. It should return promptly: while it
	// runs, later events queue up. Close waits for a call in progress.
	OnEvent func(Event)
	// Logger receives Debug per packet and Warn on drops; nil discards.
	Logger *slog.Logger
}

// DefaultConfig returns a Config with every default filled in; set Mesh
// and Port before use.
func DefaultConfig() Config {
	return Config{
		BeaconPort:       DefaultBeaconPort,
		Broadcast:        true,
		MDNS:             true,
		MDNSService:      DefaultMDNSService,
		MDNSInterval:     DefaultInterval,
		MDNSTimeout:      300 * time.Millisecond,
		Interval:         DefaultInterval,
		Jitter:           DefaultInterval / 10,
		LostAfter:        3 * DefaultInterval,
		InterfaceRefresh: 5 * time.Second,
		MaxPeers:         1024,
		MaxQueuedEvents:  4096,
		BeaconRate:       50,
	}
}

// Validate reports the first invalid field, wrapping ErrConfig.
func (c *Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: "+format, append([]any{ErrConfig}, args...)...)
	}
	switch {
	case c.Mesh == "" || len(c.Mesh) > MaxMeshLen || !utf8.ValidString(c.Mesh):
		return bad("Mesh must be 1..%d bytes of UTF-8", MaxMeshLen)
	case len(c.Name) > MaxNameLen || !utf8.ValidString(c.Name):
		return bad("Name must be at most %d bytes of UTF-8", MaxNameLen)
	case c.Port <= 0 || c.Port > 65535:
		return bad("Port %d out of range", c.Port)
	case c.BeaconPort <= 0 || c.BeaconPort > 65535:
		return bad("BeaconPort %d out of range", c.BeaconPort)
	case c.Interval <= 0:
		return bad("Interval must be positive")
	case c.Jitter < 0 || c.Jitter >= c.Interval:
		return bad("Jitter must be in [0, Interval)")
	case c.LostAfter <= c.Interval+c.Jitter:
		return bad("LostAfter %v must exceed Interval+Jitter", c.LostAfter)
	case c.InterfaceRefresh <= 0:
		return bad("InterfaceRefresh must be positive")
	case c.MaxPeers <= 0:
		return bad("MaxPeers must be positive")
	case c.MaxQueuedEvents <= 0:
		return bad("MaxQueuedEvents must be positive")
	case c.BeaconRate < 0:
		return bad("BeaconRate is negative")
	case c.Keyring.Validate() != nil:
		return bad("Keyring: %v", c.Keyring.Validate())
	case !c.Broadcast && !c.MDNS && len(c.Seeds) == 0:
		return bad("Broadcast, MDNS and Seeds are all off")
	}
	for _, d := range c.Destinations {
		if !d.IsValid() || !d.Addr().Unmap().Is4() || d.Port() == 0 {
			return bad("destination %v is not an IPv4 address with a port", d)
		}
	}
	if c.MDNS {
		switch {
		case c.MDNSService == "" || !strings.HasPrefix(c.MDNSService, "_") || strings.Count(c.MDNSService, ".") != 1:
			return bad("MDNSService %q is not of the form _name._tcp", c.MDNSService)
		case c.MDNSInterval <= 0 || c.MDNSTimeout <= 0:
			return bad("MDNSInterval and MDNSTimeout must be positive")
		case c.LostAfter <= c.MDNSInterval+c.MDNSTimeout:
			return bad("LostAfter %v must exceed MDNSInterval+MDNSTimeout", c.LostAfter)
		}
	}
	return nil
}
