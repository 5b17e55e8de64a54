package hub

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/lanmesh/lanmesh/hub/internal/wire"
	"github.com/lanmesh/lanmesh/mesh"
	"github.com/lanmesh/lanmesh/meshkey"
)

// BrowseOptions configure Browse.
type BrowseOptions struct {
	// URL is the hub: nats://host:port, or several separated by commas.
	// Required.
	URL string
	// User and Password, Token, NKeySeedFile or CredsFile are the NATS
	// credentials, as in Options.
	User, Password, Token, NKeySeedFile, CredsFile string
	// Meshes names the meshes to list, each with its key (the zero Keyring:
	// unkeyed). As on the LAN, a key is tried only for the mesh it is given
	// for: under a key, rosters that do not open (a forgery, another key,
	// unsealed) are dropped and counted; without one, sealed rosters are.
	// Default: mesh.DefaultMesh, unkeyed.
	Meshes map[string]meshkey.Keyring
	// Wait is how long to listen. Gateways publish their site's roster
	// once a heartbeat (DefaultHeartbeat), so the default, 3 heartbeats,
	// hears every live site at least twice.
	Wait time.Duration
	// Dial, if set, opens the connection to the hub instead of a plain TCP
	// dial, as in Options.
	Dial func(network, address string) (net.Conn, error)
	// Logger receives Browse's log; nil: silent.
	Logger *slog.Logger
}

// SitePeer is a node of a site as the hub's rosters claim it.
type SitePeer struct {
	ID       uuid.UUID
	Instance uuid.UUID // the session of its bridge
	Name     string    // as claimed: escape it (safetext) before showing it
	Site     string    // as claimed: escape it too
	Mesh     string
	// Sealed is whether the roster that listed it was sealed and opened
	// under the mesh's key (so a node with the key wrote it); otherwise
	// anyone who can publish on the hub could have.
	Sealed bool
}

// Browsed is what Browse heard.
type Browsed struct {
	// Peers are the nodes listed, sorted by mesh, site, name and id; at
	// most MaxRemotePeers, of at most MaxSites sites, MaxPeersPerSite each.
	Peers []SitePeer
	// SealedDrop counts rosters dropped because they did not open: under a
	// key a forgery, another key or an unsealed one; without, a sealed one.
	SealedDrop uint64
	// BadDrop counts envelopes dropped as malformed or replayed.
	BadDrop uint64
	// Refused counts peers not taken past the bounds.
	Refused uint64
}

// Browse lists the nodes the hub's rosters name, without joining: it
// subscribes to the roster subject of each mesh of opts.Meshes for
// opts.Wait (or until ctx ends) and publishes nothing, so no node sees it
// (no heartbeat, no roster; the sites know nothing of it). It lists the
// bridged nodes of every site, this machine's LAN included. What a roster
// says is a claim: see BrowseOptions.Meshes and Browsed. When ctx ends
// first, Browse returns what it heard with ctx's error. Its connection is
// closed, and its goroutines (and nats.go's) ended, when it returns.
func Browse(ctx context.Context, opts BrowseOptions) (Browsed, error) {
	if opts.URL == "" {
		return Browsed{}, errors.New("hub: BrowseOptions.URL is required (nats://host:4222)")
	}
	if opts.Wait == 0 {
		opts.Wait = 3 * DefaultHeartbeat
	}
	if opts.Wait < 0 {
		return Browsed{}, fmt.Errorf("hub: Wait %v is negative", opts.Wait)
	}
	if len(opts.Meshes) == 0 {
		opts.Meshes = map[string]meshkey.Keyring{mesh.DefaultMesh: {}}
	}
	nopts := []nats.Option{
		nats.Name("lanmesh browse"),
		nats.NoReconnect(),
		nats.Timeout(2 * time.Second),
		nats.NoCallbacksAfterClientClose(),
	}
	nopts = append(nopts, loginOptions(opts.User, opts.Password, opts.Token, opts.CredsFile, opts.Dial)...)
	if opts.NKeySeedFile != "" {
		o, err := nats.NkeyOptionFromSeed(opts.NKeySeedFile)
		if err != nil {
			return Browsed{}, fmt.Errorf("hub: NKeySeedFile: %w", err)
		}
		nopts = append(nopts, o)
	}
	nc, err := nats.Connect(opts.URL, nopts...)
	if err != nil {
		return Browsed{}, fmt.Errorf("hub: connecting to %s: %w", redact(opts.URL), err)
	}
	defer nc.Close()

	br := newBrowser(opts.Logger)
	ch := make(chan *nats.Msg, 256)
	for name, kr := range opts.Meshes {
		subj := wire.SubjectRoster(name)
		var keys []wire.Key
		if kr.Keyed() {
			keys = wire.DeriveKeys(kr.Derive(name))
		}
		br.meshes[subj] = browseMesh{name: name, keys: keys}
		// A full channel is NATS's slow consumer: it drops and counts.
		sub, err := nc.ChanSubscribe(subj, ch)
		if err != nil {
			return Browsed{}, fmt.Errorf("hub: subscribing: %w", err)
		}
		defer sub.Unsubscribe()
	}
	if err := nc.FlushTimeout(2 * time.Second); err != nil {
		return Browsed{}, fmt.Errorf("hub: subscribing: %w", err)
	}
	t := time.NewTimer(opts.Wait)
	defer t.Stop()
	for {
		select {
		case m := <-ch:
			br.take(m, time.Now())
		case <-t.C:
			return br.result(), nil
		case <-ctx.Done():
			return br.result(), ctx.Err()
		}
	}
}

// loginOptions are the nats.go options of the credentials and dialer that
// Options and BrowseOptions share (the nkey seed, which can fail, aside).
func loginOptions(user, password, token, creds string, dial func(string, string) (net.Conn, error)) []nats.Option {
	var o []nats.Option
	if user != "" || password != "" {
		o = append(o, nats.UserInfo(user, password))
	}
	if token != "" {
		o = append(o, nats.Token(token))
	}
	if creds != "" {
		o = append(o, nats.UserCredentials(creds))
	}
	if dial != nil {
		o = append(o, nats.SetCustomDialer(dialFunc(dial)))
	}
	return o
}

// browseMesh is a mesh Browse listens to, by its roster subject.
type browseMesh struct {
	name string
	keys []wire.Key
}

// browseKey names a peer: ids are per mesh.
type browseKey struct {
	mesh string
	id   uuid.UUID
}

// browsed is a peer as the latest roster that listed it says.
type browsed struct {
	SitePeer
	lister [2]uuid.UUID // the gateway (id, session) of that roster
}

// browser keeps what the rosters say, within the bounds. One goroutine
// (Browse's) uses it.
type browser struct {
	log    *slog.Logger
	meshes map[string]browseMesh // by roster subject
	peers  map[browseKey]*browsed
	replay wire.ReplayTable
	warned map[string]bool
	out    Browsed
}

func newBrowser(log *slog.Logger) *browser {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &browser{log: log, meshes: map[string]browseMesh{}, peers: map[browseKey]*browsed{}, warned: map[string]bool{}}
}

// take takes one envelope from a roster subject: a roster replaces what
// its gateway listed before; a goodbye removes the node that says it.
func (br *browser) take(m *nats.Msg, now time.Time) {
	bm, ok := br.meshes[m.Subject]
	if !ok {
		br.out.BadDrop++
		return
	}
	h, body, err := wire.Open(m.Data, m.Subject, bm.keys)
	switch {
	case errors.Is(err, wire.ErrUnsealed), errors.Is(err, wire.ErrSealed), errors.Is(err, wire.ErrKeyID), errors.Is(err, wire.ErrOpen):
		br.out.SealedDrop++
		if !br.warned[bm.name] {
			br.warned[bm.name] = true
			br.log.Warn("hub: dropping rosters that do not open under the mesh key given", "mesh", bm.name, "err", err)
		}
		return
	case err != nil:
		br.out.BadDrop++
		return
	case !br.replay.Accept(h.Sender, wire.ClassPresence, h.Session, h.Start, h.Seq):
		br.out.BadDrop++
		return
	}
	switch h.Kind {
	case wire.KindBye:
		k := browseKey{bm.name, h.Sender}
		if p := br.peers[k]; p != nil && p.Instance == h.Session {
			delete(br.peers, k)
		}
	case wire.KindRoster:
		r, err := wire.ParseRoster(body)
		if err != nil {
			br.out.BadDrop++
			return
		}
		lister := [2]uuid.UUID{h.Sender, h.Session}
		listed := make(map[uuid.UUID]bool, len(r.Entries))
		for _, e := range r.Entries {
			k := browseKey{bm.name, e.ID}
			p := br.peers[k]
			if p == nil {
				if !br.room(bm.name, r.Site) {
					br.out.Refused++
					continue
				}
				p = &browsed{}
				br.peers[k] = p
			}
			p.SitePeer = SitePeer{ID: e.ID, Instance: e.Session, Name: e.Name, Site: r.Site, Mesh: bm.name, Sealed: h.Sealed}
			p.lister, listed[e.ID] = lister, true
		}
		// What this gateway listed before and no longer does, its site
		// dropped (a node silent for 3 heartbeats).
		for k, p := range br.peers {
			if p.lister == lister && !listed[k.id] {
				delete(br.peers, k)
			}
		}
	default:
		br.out.BadDrop++
	}
}

// room reports whether a new peer of site (of mesh) fits the bounds.
func (br *browser) room(meshName, site string) bool {
	if len(br.peers) >= MaxRemotePeers {
		return false
	}
	inSite := 0
	sites := map[[2]string]bool{}
	for k, p := range br.peers {
		sites[[2]string{k.mesh, p.Site}] = true
		if k.mesh == meshName && p.Site == site {
			inSite++
		}
	}
	return inSite < MaxPeersPerSite && (sites[[2]string{meshName, site}] || len(sites) < MaxSites)
}

// result is the peers heard, sorted.
func (br *browser) result() Browsed {
	out := br.out
	out.Peers = make([]SitePeer, 0, len(br.peers))
	for _, p := range br.peers {
		out.Peers = append(out.Peers, p.SitePeer)
	}
	slices.SortFunc(out.Peers, func(a, b SitePeer) int {
		for _, c := range [][2]string{{a.Mesh, b.Mesh}, {a.Site, b.Site}, {a.Name, b.Name}} {
			if d := strings.Compare(c[0], c[1]); d != 0 {
				return d
			}
		}
		return strings.Compare(a.ID.String(), b.ID.String())
	})
	return out
}
