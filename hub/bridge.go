package hub

import (
	"errors"
	"log/slog"
	"sync"

	"github.com/lanmesh/lanmesh/mesh"
)

// Options configure a Bridge (Join).
type Options struct {
	// URL is the hub to dial: nats://host:port, or several separated by
	// commas (a cluster, tried in turn). Required.
	URL string
	// Site names this node's LAN site; every node of one LAN MUST use the
	// same name, and nodes of other LANs another (peers of the same site are
	// reached over the LAN only, never through the hub). Default: the IPv4
	// network (as 10.1.2.0/24) of the first interface that is up, not
	// loopback and has an IPv4 address: a site is an IP subnet, as far as
	// broadcast reaches; failing that, the host part of the node's name.
	Site string
	// User and Password, Token, NKeySeedFile or CredsFile are the NATS
	// credentials, passed to nats.go as they are.
	User, Password, Token, NKeySeedFile, CredsFile string
	// Logger receives the bridge's log; nil: silent.
	Logger *slog.Logger
}

// Stats are a bridge's counters since Join.
type Stats struct {
	// Published counts envelopes published (messages, presence, members).
	Published uint64
	// Received counts envelopes taken from the hub.
	Received uint64
	// Delivered counts messages handed to the node.
	Delivered uint64
	// SealedDrop counts envelopes dropped because they did not open (a
	// forgery, another key, unsealed under a key, sealed without one).
	SealedDrop uint64
	// ReplayDrop counts envelopes dropped as replays or duplicates.
	ReplayDrop uint64
	// BadDrop counts envelopes dropped as malformed or over a limit.
	BadDrop uint64
	// QueueDrop counts envelopes dropped because the bridge's queue was
	// full (the node's program does not keep up).
	QueueDrop uint64
	// SendErrors counts messages the node handed on that could not be
	// published (the hub unreachable past the reconnect buffer).
	SendErrors uint64
	// RemotePeers is how many peers of other sites the node knows now.
	RemotePeers int
	// Gateway is whether the node is its site's gateway now.
	Gateway bool
	// Connected is whether the connection to the hub is up now.
	Connected bool
	// Reconnects counts reconnections to the hub.
	Reconnects uint64
}

// Bridge joins a node's mesh to the hub. See the package documentation.
type Bridge struct {
	mu     sync.Mutex
	stats  Stats
	closed bool
}

// Join connects node n to the hub at opts.URL and attaches the bridge to
// it: peers of other sites appear in n.Peers, and messages to them go
// through the hub. It returns once the first connection is up. Close the
// bridge before or after the node; Close joins every goroutine of it.
func Join(n *mesh.Node, opts Options) (*Bridge, error) {
	return nil, errors.New("hub: not implemented yet")
}

// Close leaves the hub: other sites see this node (and, if it was the
// gateway, no other peer) leave, its remote peers are reported left on n,
// and every goroutine of the bridge has ended when it returns. Idempotent.
func (b *Bridge) Close() error { return nil }

// Gateway reports whether this node is its site's gateway now: the one
// that publishes the site's roster.
func (b *Bridge) Gateway() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stats.Gateway
}

// Stats returns the bridge's counters.
func (b *Bridge) Stats() Stats {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.stats
}
