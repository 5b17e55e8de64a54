package mesh

import (
	"fmt"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"

	"github.com/lanmesh/lanmesh/discovery"
	"github.com/lanmesh/lanmesh/meshkey"
)

// maxRateSources bounds the source addresses ConnRate remembers.
const maxRateSources = 4096

// NodeStats are a node's counters of what it refused or dropped, for
// operators and tests.
type NodeStats struct {
	// RefusedConns counts incoming connections closed before any handshake
	// work: over their source's ConnRate, or past MaxHandshakes.
	RefusedConns uint64
	// FailedHandshakes counts handshakes, incoming and outgoing, that
	// failed: garbage, timeouts, wrong or missing keys, mismatches.
	FailedHandshakes uint64
	// RefusedPeers counts links closed because MaxPeers were linked.
	RefusedPeers uint64
	// KeyClosed counts links closed because SetKeyring removed their key.
	KeyClosed uint64
	// Discovery holds discovery's counters (zero without discovery).
	Discovery discovery.Stats
}

type nodeCounters struct {
	refusedConns, failedHandshakes, refusedPeers, keyClosed atomic.Uint64
}

// Stats returns the node's counters.
func (n *Node) Stats() NodeStats {
	st := NodeStats{
		RefusedConns:     n.counters.refusedConns.Load(),
		FailedHandshakes: n.counters.failedHandshakes.Load(),
		RefusedPeers:     n.counters.refusedPeers.Load(),
		KeyClosed:        n.counters.keyClosed.Load(),
	}
	n.mu.Lock()
	d := n.disc
	n.mu.Unlock()
	if d != nil {
		st.Discovery = d.Stats()
	}
	return st
}

// hsSlots bounds the incoming handshakes in progress: in all, and per
// source address (a quarter of all, at least one), so that one host's
// silent connections cannot take every slot.
type hsSlots struct {
	// mu guards the counts.
	mu        sync.Mutex
	total     int
	max       int
	perSource int
	bySource  map[netip.Addr]int
}

func (s *hsSlots) init(limit int) {
	s.max = limit
	s.perSource = max(1, limit/4)
	s.bySource = make(map[netip.Addr]int)
}

func (s *hsSlots) acquire(src netip.Addr) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.total >= s.max || s.bySource[src] >= s.perSource {
		return false
	}
	s.total++
	s.bySource[src]++
	return true
}

func (s *hsSlots) release(src netip.Addr) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.total--
	if s.bySource[src]--; s.bySource[src] <= 0 {
		delete(s.bySource, src)
	}
}

// sourceAddr is the IP a connection comes from; the zero Addr for
// transports without one (the memory network), which then share limits.
func sourceAddr(a net.Addr) netip.Addr {
	if ta, ok := a.(*net.TCPAddr); ok {
		if ip, ok := netip.AddrFromSlice(ta.IP); ok {
			return ip.Unmap()
		}
	}
	return netip.Addr{}
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
