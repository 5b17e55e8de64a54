package hub

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/lanmesh/lanmesh/hub/internal/wire"
	"github.com/lanmesh/lanmesh/mesh"
	"github.com/lanmesh/lanmesh/meshkey"
	"github.com/lanmesh/lanmesh/safetext"
)

// Options configure a Bridge (Join).
type Options struct {
	// URL is the hub to dial: nats://host:port, or several separated by
	// commas (a cluster, tried in turn). Required.
	URL string
	// Site names this node's LAN site; every node of one LAN MUST use the
	// same name, and nodes of other LANs another (peers of the same site are
	// reached over the LAN only, never through the hub). Default: the IPv4
	// network (as "10.1.2.0/24") of the first interface that is up, not
	// loopback and has an IPv4 address, since a site is as far as broadcast
	// reaches; failing that, the host part of the node's name (up to the
	// first dot).
	Site string
	// User and Password, Token, NKeySeedFile or CredsFile are the NATS
	// credentials, passed to nats.go as they are.
	User, Password, Token, NKeySeedFile, CredsFile string
	// Heartbeat is how often a bridge tells its site it lives and the
	// site's gateway publishes the site's roster. Default 500 ms. A member
	// silent for 3 heartbeats is out of its site (and a gateway that is
	// loses the role to the next, and the other sites report it left); a
	// remote peer no roster has listed for 6 heartbeats is reported left.
	// Shorter is quicker, and costs one small message per node and per
	// site per heartbeat.
	Heartbeat time.Duration
	// Dial, if set, opens the connections to the hub, the first and every
	// reconnection, instead of a plain TCP dial (a source address, a proxy,
	// a network namespace).
	Dial func(network, address string) (net.Conn, error)
	// Logger receives the bridge's log; nil: silent.
	Logger *slog.Logger
}

// dialFunc is Options.Dial as nats.go's CustomDialer.
type dialFunc func(network, address string) (net.Conn, error)

func (f dialFunc) Dial(network, address string) (net.Conn, error) { return f(network, address) }

// DefaultHeartbeat is Options.Heartbeat's default.
const DefaultHeartbeat = 500 * time.Millisecond

// Bounds on what the hub's claims may cost a node.
const (
	// MaxRemotePeers bounds the peers of other sites a node keeps.
	MaxRemotePeers = 1024
	// MaxPeersPerSite bounds those of one site, and the members a node
	// keeps of its own site.
	MaxPeersPerSite = wire.MaxRosterSize
	// MaxSites bounds the other sites a node keeps peers of.
	MaxSites = 64
)

// Errors a PeerLeft of a remote peer carries (with mesh.ErrRelayDetached
// when the bridge or the node closes).
var (
	// ErrExpired: the gateway of the peer's site left it out of its roster
	// (it heard nothing from it for 3 heartbeats; or, for a dead gateway,
	// its successor did), or no roster listed the
	// peer, and no message came from it, for 6 heartbeats (its node, its
	// site's gateway or its connection to the hub died, or this node's).
	ErrExpired = errors.New("hub: peer no longer heard of through the hub")
	// ErrLeft: the peer's bridge said goodbye (its node or bridge closed).
	ErrLeft = errors.New("hub: peer left the hub")
)

// Stats are a bridge's counters since Join, and its state now.
type Stats struct {
	// Published counts envelopes published (messages, heartbeats, rosters).
	Published uint64
	// Received counts envelopes taken from the hub.
	Received uint64
	// Delivered counts messages, requests and replies handed to the node.
	Delivered uint64
	// SealedDrop counts envelopes dropped because they did not open: a
	// forgery, another mesh key, unsealed under a key, sealed without one.
	SealedDrop uint64
	// ReplayDrop counts envelopes dropped as replays or duplicates.
	ReplayDrop uint64
	// BadDrop counts envelopes dropped as malformed, over a limit, or not
	// taken by the node (a frame it cannot decode).
	BadDrop uint64
	// QueueDrop counts envelopes NATS dropped because the bridge's queue was
	// full (the node's program does not keep up).
	QueueDrop uint64
	// Refused counts remote peers not taken past MaxRemotePeers,
	// MaxPeersPerSite or MaxSites.
	Refused uint64
	// SendErrors counts messages the node handed on that could not be
	// published.
	SendErrors uint64
	// Reconnects counts reconnections to the hub.
	Reconnects uint64
	// RemotePeers is how many peers of other sites the node knows now.
	RemotePeers int
	// Members is how many bridged nodes of its own site it hears now,
	// itself included.
	Members int
	// Gateway is whether the node is its site's gateway now.
	Gateway bool
	// Connected is whether the connection to the hub is up now.
	Connected bool
}

// counters are the Stats counted as things happen.
type counters struct {
	published, received, delivered, sealedDrop, replayDrop, badDrop,
	refused, sendErrors, reconnects atomic.Uint64
}

// Bridge joins a node's mesh to the hub. See the package documentation.
type Bridge struct {
	n       *mesh.Node
	port    *mesh.RelayPort
	nc      *nats.Conn
	log     *slog.Logger
	site    string
	name    string
	hb      time.Duration
	session uuid.UUID
	start   int64
	seq     atomic.Uint64

	subjRoster, subjMembers, subjSelf string
	subs                              []*nats.Subscription

	dataCh  chan *nats.Msg // the node's own subject
	presCh  chan *nats.Msg // the roster and the site's subject
	notify  chan struct{}  // presence changed: the applier reconciles
	publish chan struct{}  // publish presence now (a reconnect, a change)
	done    chan struct{}
	wg      sync.WaitGroup
	replay  wire.ReplayTable
	c       counters

	// keyMu guards the hub keys derived from the node's current mesh keys.
	keyMu   sync.Mutex
	keysFor *meshkey.Set
	keys    []wire.Key

	// mu guards the presence state below, shared by the presence loop and
	// the applier.
	mu        sync.Mutex
	members   map[uuid.UUID]*member      // of this site, itself not included
	view      map[uuid.UUID]*remote      // peers of other sites, as heard
	told      int                        // remote peers the node was told of
	listers   map[[2]uuid.UUID]time.Time // gateways (id, session): their last roster
	gateway   bool
	connected bool
	warned    map[string]bool // warnings given once

	closeOnce sync.Once
}

// member is a bridged node of this site, as its heartbeats say.
type member struct {
	session uuid.UUID
	name    string
	seen    time.Time
}

// remote is a peer of another site, as rosters and its messages say.
type remote struct {
	mesh.RemotePeer
	seen time.Time
	// lister is the gateway (id and session) whose roster last listed the
	// peer: when a later roster of that gateway leaves it out, or a
	// successor's after that gateway fell silent, the peer was dropped
	// from its site (silent for 3 heartbeats), and this node drops it at
	// once, unless the peer spoke to it since.
	lister [2]uuid.UUID
	spoke  time.Time // when its last message to this node came
	bye    bool      // it said goodbye (for this session)
	byeAt  time.Time // when it first did
	final  bool      // its goodbye came on this node's subject: nothing follows
}

// Join connects node n to the hub at opts.URL and attaches the bridge to
// it: peers of other sites appear in n.Peers (PeerInfo.Site set), and
// messages to them go through the hub. It returns once the first
// connection is up. Close the bridge when done, before or after the node.
func Join(n *mesh.Node, opts Options) (*Bridge, error) {
	if opts.URL == "" {
		return nil, errors.New("hub: Options.URL is required (nats://host:4222)")
	}
	if opts.Heartbeat == 0 {
		opts.Heartbeat = DefaultHeartbeat
	}
	if opts.Heartbeat < 10*time.Millisecond {
		return nil, fmt.Errorf("hub: Heartbeat %v is under 10ms", opts.Heartbeat)
	}
	if opts.Site == "" {
		opts.Site = DefaultSite(n.Name())
	}
	if len(opts.Site) > wire.MaxText {
		return nil, fmt.Errorf("hub: Site is longer than %d bytes", wire.MaxText)
	}
	b := &Bridge{
		n: n, log: opts.Logger, site: opts.Site, name: n.Name(), hb: opts.Heartbeat,
		session: uuid.New(), start: time.Now().UnixNano(),
		dataCh: make(chan *nats.Msg, 1024), presCh: make(chan *nats.Msg, 256),
		notify: make(chan struct{}, 1), publish: make(chan struct{}, 1), done: make(chan struct{}),
		members: map[uuid.UUID]*member{}, view: map[uuid.UUID]*remote{}, warned: map[string]bool{},
		listers: map[[2]uuid.UUID]time.Time{},
	}
	if b.log == nil {
		b.log = slog.New(slog.DiscardHandler)
	}
	nopts := []nats.Option{
		nats.Name("lanmesh " + b.name),
		nats.NoEcho(),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250 * time.Millisecond),
		nats.ReconnectJitter(100*time.Millisecond, time.Second),
		nats.PingInterval(2 * time.Second),
		nats.MaxPingsOutstanding(2),
		nats.Timeout(2 * time.Second),
		nats.NoCallbacksAfterClientClose(),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			b.setConnected(false)
			b.log.Warn("hub: disconnected from the hub; reconnecting", "err", err)
		}),
		nats.ReconnectHandler(func(*nats.Conn) {
			b.c.reconnects.Add(1)
			b.setConnected(true)
			b.log.Info("hub: reconnected to the hub")
			signal(b.publish)
		}),
	}
	nopts = append(nopts, loginOptions(opts.User, opts.Password, opts.Token, opts.CredsFile, opts.Dial)...)
	if opts.NKeySeedFile != "" {
		o, err := nats.NkeyOptionFromSeed(opts.NKeySeedFile)
		if err != nil {
			return nil, fmt.Errorf("hub: NKeySeedFile: %w", err)
		}
		nopts = append(nopts, o)
	}
	nc, err := nats.Connect(opts.URL, nopts...)
	if err != nil {
		return nil, fmt.Errorf("hub: connecting to %s: %w", redact(opts.URL), err)
	}
	b.nc = nc
	b.connected = true
	port, err := n.AttachRelay(relay{b})
	if err != nil {
		nc.Close()
		return nil, err
	}
	b.port = port
	b.subjRoster = wire.SubjectRoster(port.Mesh())
	b.subjMembers = wire.SubjectSite(port.Mesh(), b.site)
	b.subjSelf = wire.SubjectNode(port.Mesh(), n.ID())
	for _, s := range []struct {
		subj string
		ch   chan *nats.Msg
	}{{b.subjSelf, b.dataCh}, {b.subjRoster, b.presCh}, {b.subjMembers, b.presCh}} {
		// A full channel is NATS's slow consumer: it drops and counts.
		sub, err := nc.ChanSubscribe(s.subj, s.ch)
		if err != nil {
			port.Detach()
			nc.Close()
			return nil, fmt.Errorf("hub: subscribing: %w", err)
		}
		b.subs = append(b.subs, sub)
	}
	if err := nc.FlushTimeout(2 * time.Second); err != nil {
		port.Detach()
		nc.Close()
		return nil, fmt.Errorf("hub: subscribing: %w", err)
	}
	b.wg.Add(2)
	go b.presenceLoop()
	go b.applyLoop()
	b.log.Info("hub: joined", "url", safetext.Line(redact(opts.URL)), "site", safetext.Line(b.site))
	return b, nil
}

// DefaultSite is the site a node named name is in when Options.Site is
// empty: see Options.Site.
func DefaultSite(name string) string {
	ifs, err := net.Interfaces()
	if err == nil {
		for _, ifc := range ifs {
			if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
				continue
			}
			addrs, err := ifc.Addrs()
			if err != nil {
				continue
			}
			for _, a := range addrs {
				if ipn, ok := a.(*net.IPNet); ok && ipn.IP.To4() != nil {
					return (&net.IPNet{IP: ipn.IP.Mask(ipn.Mask), Mask: ipn.Mask}).String()
				}
			}
		}
	}
	if host, _, _ := strings.Cut(name, "."); host != "" {
		return host
	}
	return "site"
}

// redact removes the credentials from a list of URLs, for errors and logs.
func redact(urls string) string {
	parts := strings.Split(urls, ",")
	for i, p := range parts {
		// A user name alone may be a token: hide all of it.
		if u, err := url.Parse(strings.TrimSpace(p)); err == nil && u.User != nil {
			u.User = url.User("xxxxx")
			parts[i] = u.String()
		}
	}
	return strings.Join(parts, ",")
}

func signal(ch chan struct{}) {
	select {
	case ch <- struct{}{}:
	default:
	}
}

func (b *Bridge) setConnected(up bool) {
	b.mu.Lock()
	b.connected = up
	b.mu.Unlock()
}

// Site returns the name of this node's site.
func (b *Bridge) Site() string { return b.site }

// Gateway reports whether this node is its site's gateway now: the bridged
// node of the site with the lowest id among those heard, which publishes
// the site's roster.
func (b *Bridge) Gateway() bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.gateway
}

// Stats returns the bridge's counters and state.
func (b *Bridge) Stats() Stats {
	s := Stats{
		Published: b.c.published.Load(), Received: b.c.received.Load(), Delivered: b.c.delivered.Load(),
		SealedDrop: b.c.sealedDrop.Load(), ReplayDrop: b.c.replayDrop.Load(), BadDrop: b.c.badDrop.Load(),
		Refused: b.c.refused.Load(), SendErrors: b.c.sendErrors.Load(), Reconnects: b.c.reconnects.Load(),
	}
	for _, sub := range b.subs {
		if d, err := sub.Dropped(); err == nil {
			s.QueueDrop += uint64(d)
		}
	}
	b.mu.Lock()
	s.RemotePeers, s.Gateway, s.Connected = b.told, b.gateway, b.connected
	s.Members = 1 + b.liveMembersLocked(time.Now())
	b.mu.Unlock()
	return s
}

// Close leaves the hub: it says goodbye (other sites see this node leave at
// once; if it was the gateway, another node of the site takes over and the
// site's other peers stay), reports every remote peer left on the node
// (mesh.ErrRelayDetached), closes the connection, and returns once every
// goroutine of the bridge has ended. Idempotent.
func (b *Bridge) Close() error {
	b.closeOnce.Do(func() {
		close(b.done)
		b.port.Detach() // ends the applier's waits on the node
		b.wg.Wait()
		b.nc.Close()
	})
	return nil
}

// hubKeys returns the hub keys of the node's current mesh keys.
func (b *Bridge) hubKeys() []wire.Key {
	s := b.port.Keys()
	b.keyMu.Lock()
	defer b.keyMu.Unlock()
	if s != b.keysFor || (s != nil && b.keys == nil) {
		b.keysFor, b.keys = s, wire.DeriveKeys(s)
	}
	return b.keys
}

// envelope seals body as an envelope of kind for subject.
func (b *Bridge) envelope(k wire.Kind, subject string, body []byte) []byte {
	h := wire.Header{Kind: k, Sender: b.n.ID(), Session: b.session, Start: b.start, Seq: b.seq.Add(1)}
	return wire.Seal(make([]byte, 0, wire.HeaderSize+len(body)+wire.Overhead), h, subject, body, b.hubKeys())
}

func (b *Bridge) pub(subject string, env []byte) error {
	if len(env) > MaxEnvelope {
		return fmt.Errorf("hub: %w (%d bytes, at most %d)", wire.ErrTooLarge, len(env), MaxEnvelope)
	}
	if err := b.nc.Publish(subject, env); err != nil {
		return err
	}
	b.c.published.Add(1)
	return nil
}

// relay is the bridge as the node's mesh.Relay, kept off the Bridge's
// own methods.
type relay struct{ b *Bridge }

var _ mesh.Relay = relay{}

// RelaySend publishes f to the node subject of to. The node calls it on
// the program's goroutine.
func (r relay) RelaySend(to uuid.UUID, f mesh.RelayFrame) error { return r.b.send(to, f) }

func (b *Bridge) send(to uuid.UUID, f mesh.RelayFrame) error {
	k := wire.KindMessage
	switch f.Kind {
	case mesh.RelayRequest:
		k = wire.KindRequest
	case mesh.RelayReply:
		k = wire.KindReply
	case mesh.RelayRefuse:
		k = wire.KindRefuse
	}
	d := wire.DataBody{ReqID: f.ReqID, Site: b.site, Name: b.name, Frame: f.Body}
	subj := wire.SubjectNode(b.port.Mesh(), to)
	if err := b.pub(subj, b.envelope(k, subj, d.Append(nil))); err != nil {
		b.c.sendErrors.Add(1)
		return fmt.Errorf("hub: %w", err)
	}
	return nil
}

// warnOnce logs msg at Warn the first time key is seen.
func (b *Bridge) warnOnce(key, msg string, args ...any) {
	b.mu.Lock()
	first := !b.warned[key]
	b.warned[key] = true
	b.mu.Unlock()
	if first {
		b.log.Warn(msg, args...)
	}
}

// openEnvelope opens a NATS message, counting what it drops.
func (b *Bridge) openEnvelope(m *nats.Msg, c wire.Class) (wire.Header, []byte, bool) {
	b.c.received.Add(1)
	h, body, err := wire.Open(m.Data, m.Subject, b.hubKeys())
	switch {
	case errors.Is(err, wire.ErrUnsealed), errors.Is(err, wire.ErrSealed), errors.Is(err, wire.ErrKeyID), errors.Is(err, wire.ErrOpen):
		b.c.sealedDrop.Add(1)
		b.warnOnce("seal:"+err.Error(), "hub: dropping envelopes that do not open under this node's mesh key; every node of the mesh needs the same key (Keyring)", "err", err)
		return h, nil, false
	case err != nil:
		b.c.badDrop.Add(1)
		b.log.Debug("hub: bad envelope", "err", err)
		return h, nil, false
	case h.Sender == b.n.ID():
		return h, nil, false // our own, echoed (NoEcho makes it rare)
	case !b.replay.Accept(h.Sender, c, h.Session, h.Start, h.Seq):
		b.c.replayDrop.Add(1)
		return h, nil, false
	}
	return h, body, true
}
