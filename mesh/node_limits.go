package mesh

import (
	"fmt"
	"net"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/lanmesh/lanmesh/discovery"
	"github.com/lanmesh/lanmesh/meshkey"
)

// NodeStats are a node's counters of what it refused or dropped, for
// operators and tests.
type NodeStats struct {
	// RefusedConns counts incoming connections closed before any handshake
	// work: over their source's ConnRate, or past PerSourceHandshakes
	// (see AcceptConfig).
	RefusedConns uint64
	// EvictedHandshakes counts incoming handshakes in progress (and
	// cable_car links that had not yet sent a whole message) closed to
	// make room for a new connection when all MaxHandshakes were taken.
	EvictedHandshakes uint64
	// FailedHandshakes counts handshakes, incoming and outgoing, that
	// failed: garbage, timeouts, wrong or missing keys, mismatches,
	// evictions.
	FailedHandshakes uint64
	// RefusedPeers counts links closed because MaxPeers were linked.
	RefusedPeers uint64
	// EvictedPeers counts links closed to let in a newcomer from an
	// address that held fewer links while MaxPeers were linked.
	EvictedPeers uint64
	// KeyClosed counts links closed because SetKeyring removed their key.
	KeyClosed uint64
	// RefusedIDs counts incoming links closed because their source address
	// already had NewIDsPerSource young links with other node ids.
	RefusedIDs uint64
	// PartialFrameStalled counts links closed because a frame larger than
	// PartialFrameFree did not arrive within PartialFrameTimeout;
	// PartialFrameOverBudget those closed because the links' partial
	// frames would have passed PartialFrameBudget.
	PartialFrameStalled, PartialFrameOverBudget uint64
	// PartialFrameBytes is what the links buffer now for frames larger
	// than PartialFrameFree, charged to PartialFrameBudget.
	PartialFrameBytes int64
	// MessagesLost counts reliable messages this node sent that are lost
	// for good (each also named by a PeerEvent's Lost); MessagesLostIn
	// those of its peers' that it will never receive (PeerEvent.LostIn).
	MessagesLost, MessagesLostIn uint64
	// Resumes counts links that resumed a session after a cut.
	Resumes uint64
	// CableCar holds the counters of cable_car compatibility (zero when it
	// is off).
	CableCar CableCarStats
	// Discovery holds discovery's counters (zero without discovery).
	Discovery discovery.Stats
}

type nodeCounters struct {
	failedHandshakes, refusedPeers, evictedPeers, refusedIDs, keyClosed atomic.Uint64
	lost, lostIn, resumes                                               atomic.Uint64
}

// Stats returns the node's counters.
func (n *Node) Stats() NodeStats {
	st := NodeStats{
		RefusedConns:           n.acc.refused.Load(),
		EvictedHandshakes:      n.acc.evicted.Load(),
		FailedHandshakes:       n.counters.failedHandshakes.Load(),
		RefusedPeers:           n.counters.refusedPeers.Load(),
		EvictedPeers:           n.counters.evictedPeers.Load(),
		RefusedIDs:             n.counters.refusedIDs.Load(),
		KeyClosed:              n.counters.keyClosed.Load(),
		PartialFrameStalled:    n.budget.stalled.Load(),
		PartialFrameOverBudget: n.budget.refused.Load(),
		PartialFrameBytes:      n.budget.used.Load(),
		MessagesLost:           n.counters.lost.Load(),
		MessagesLostIn:         n.counters.lostIn.Load(),
		Resumes:                n.counters.resumes.Load(),
	}
	n.mu.Lock()
	d, cc := n.disc, n.cc
	n.mu.Unlock()
	if d != nil {
		st.Discovery = d.Stats()
	}
	if cc != nil {
		st.CableCar = cc.stats()
	}
	return st
}

// reasonEvicted is the Bye reason of a link closed for a newcomer.
const reasonEvicted = "evicted: too many peers from one address"

// linkSource is the address a link's peer connects from.
func linkSource(l *link) netip.Addr { return sourceAddr(l.RemoteAddr()) }

// evictable reports whether p's link may be closed for a newcomer: not
// keyed (a key proves membership), not a configured peer, not from this
// host.
func evictable(p *peer) bool {
	return p.link != nil && p.link.Err() == nil && !p.link.keyed && !p.static && !sameHost(p.link.conn)
}

// admitLocked decides whether l, a new link to p (nil: unknown so far) on
// conn, may join the table: it returns "" to admit it, or the reason to
// close it with. It applies NewIDsPerSource and MaxPeers, evicting a link
// from the address that holds the most when the table is full and that
// address holds at least two more than the newcomer's. n.mu is held.
func (n *Node) admitLocked(p *peer, l *link, conn net.Conn, initiator bool) string {
	if p != nil && p.link != nil {
		return "" // a second link to a linked peer: no new peer
	}
	acc := n.link.Link.Accept
	src := sourceAddr(conn.RemoteAddr())
	now := time.Now()
	if !initiator && !l.keyed && !sameHost(conn) {
		young := 0
		for _, q := range n.peers {
			if q.link != nil && !q.link.keyed && !q.link.sink.(*nodeSink).initiator &&
				linkSource(q.link) == src && now.Sub(q.joined) < acc.ConfirmAfter {
				young++
			}
		}
		if young >= acc.NewIDsPerSource {
			n.counters.refusedIDs.Add(1)
			n.log.Debug("mesh: peer refused: too many new node ids from its address", "peer", l.Remote().NodeID,
				"addr", src, "max", acc.NewIDsPerSource)
			return "too many new node ids from one address"
		}
	}
	all := n.links.Load().all
	if len(all) < n.cfg.Limits.MaxPeers {
		return ""
	}
	// Full. Evict for the newcomer only from an address that holds at
	// least two links more than the newcomer's will: each eviction evens
	// the table out, and two addresses never take turns evicting.
	count := make(map[netip.Addr]int, len(all))
	for _, q := range all {
		count[linkSource(q)]++
	}
	var victim *peer
	for _, q := range n.peers {
		if !evictable(q) {
			continue
		}
		qs := linkSource(q.link)
		if count[qs] < count[src]+2 {
			continue
		}
		if victim == nil || count[qs] > count[linkSource(victim.link)] ||
			count[qs] == count[linkSource(victim.link)] && q.joined.After(victim.joined) {
			victim = q
		}
	}
	if victim == nil {
		n.counters.refusedPeers.Add(1)
		n.log.Warn("mesh: peer refused: MaxPeers linked already", "peer", l.Remote().NodeID, "max", n.cfg.Limits.MaxPeers)
		return "too many peers"
	}
	n.counters.evictedPeers.Add(1)
	gone := victim.link
	n.log.Warn("mesh: peer evicted for a newcomer: MaxPeers linked, most of them from one address",
		"evicted", victim.id, "from", linkSource(gone), "newcomer", l.Remote().NodeID, "max", n.cfg.Limits.MaxPeers)
	// Begun here, so that the next newcomer picks another victim.
	gone.shutdown(closeErr(ErrClosed, false, reasonEvicted), closeLocal)
	n.wg.Add(1)
	go func() {
		defer n.wg.Done()
		gone.CloseReason(reasonEvicted)
	}()
	return ""
}

// SetKeyring replaces the node's mesh keys while it runs: new links use the
// new ring at once, and discovery signs and checks beacons with it. Links
// whose handshake used a key that kr no longer holds are closed with the
// reason "mesh key removed". A running node cannot become keyed or unkeyed:
// kr must have a key exactly when the node's Config had one.
//
// To change a mesh's key without a gap: give every node the new key as an
// accepted one, then make it primary everywhere, then remove the old one.
func (n *Node) SetKeyring(kr meshkey.Keyring) error {
	if err := kr.Validate(); err != nil {
		return fmt.Errorf("%w: %v", ErrConfig, err)
	}
	if kr.Keyed() != n.cfg.Keyring.Keyed() {
		return fmt.Errorf("%w: a running node cannot become keyed or unkeyed", ErrConfig)
	}
	kr = kr.Clone()
	set := kr.Derive(n.link.Mesh)
	n.mu.Lock()
	if n.closed {
		n.mu.Unlock()
		return ErrNodeClosed
	}
	n.keys.Store(set)
	d := n.disc
	var stale []*link
	for _, p := range n.peers {
		if p.link == nil {
			continue
		}
		if id, keyed := p.link.KeyID(); keyed {
			if _, ok := set.Lookup(id); !ok {
				stale = append(stale, p.link)
			}
		}
	}
	for _, l := range stale {
		n.counters.keyClosed.Add(1)
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			l.CloseReason("mesh key removed")
		}()
	}
	n.mu.Unlock()
	if d != nil {
		if err := d.SetKeyring(kr); err != nil {
			return err
		}
	}
	return nil
}
