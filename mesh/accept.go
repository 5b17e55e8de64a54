package mesh

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lanmesh/lanmesh/internal/ratelimit"
)

// AcceptConfig bounds what incoming connections and the links they become
// may cost, so that a host on the LAN cannot exhaust a Node's or a
// Listener's memory, sockets or peer table by opening connections. Every
// bound is counted when it bites (NodeStats, Listener.Refused).
//
// The handshake and rate bounds serve a Node, a Listener and a Node's
// cable_car links alike; NewIDsPerSource and ConfirmAfter concern a Node's
// peer table only, and Backlog a Listener only. The partial-frame bounds
// apply to every link of a Node or a Listener; a Dial's link has only
// PartialFrameFree and PartialFrameTimeout (and the codec's frame limit).
type AcceptConfig struct {
	// MaxHandshakes bounds the incoming handshakes in progress at once
	// (for cable_car, links that have not yet sent a whole message). When
	// all are taken, a new connection evicts the oldest one in progress
	// (it is closed and counted as evicted), so that silent connections
	// from any number of addresses cannot shut out a newcomer whose
	// handshake completes promptly. Default 64. More holds more silent
	// connections (a goroutine and a socket each) before eviction starts;
	// fewer evicts slow honest handshakes sooner under a flood.
	MaxHandshakes int
	// PerSourceHandshakes bounds the handshakes in progress from one
	// source address; a connection past it is closed at once, before any
	// handshake work, and counted as refused (it evicts nobody). Default
	// 16, a quarter of MaxHandshakes. Larger lets one host connect many
	// nodes at once; smaller lets one host hold less.
	PerSourceHandshakes int
	// ConnRate is how many incoming connections per second one source
	// address may open, with bursts of twice as many; past it they are
	// closed at once and counted as refused. The table of sources is
	// bounded (4096, least recently seen forgotten). 0 turns the limit
	// off. Default 20.
	ConnRate float64
	// NewIDsPerSource bounds, in a Node, the node ids linked at once from
	// one source address by incoming unkeyed links younger than
	// ConfirmAfter: a handshake past it with another id is refused (the
	// link closed with "too many new node ids from one address") and
	// counted. Connections from this host itself (the source address is
	// the one they arrived at) and from the memory network are exempt:
	// several nodes on one machine are normal. Default 4. Larger lets more
	// nodes of one other host join at once (the rest join on a later
	// redial); smaller makes made-up ids cost more addresses.
	NewIDsPerSource int
	// ConfirmAfter is how long an incoming unkeyed link must stay up before
	// its node id stops counting against NewIDsPerSource. Default 10 s.
	ConfirmAfter time.Duration
	// Backlog bounds, in a Listener, the links that finished their
	// handshake and wait for Accept. A link that finishes while it is full
	// is closed with the reason "listener backlog full" and counted in
	// Refused: a server that does not call Accept holds at most Backlog
	// links. Default 64.
	Backlog int
	// PartialFrameFree is how many bytes of an incomplete frame a link may
	// buffer without limit of time or budget. Above it, the frame must be
	// completed within PartialFrameTimeout and its bytes are charged to
	// PartialFrameBudget. Default 64 KiB; binary frames (at most 254
	// bytes) never reach it. Larger lets more links hold mid-sized frames
	// unbounded in time (up to MaxPeers times this much).
	PartialFrameFree int
	// PartialFrameTimeout is how long a frame larger than PartialFrameFree
	// may take to arrive, counted from when the link had buffered more
	// than PartialFrameFree of it; past it the link closes (ErrProtocol),
	// even if bytes keep coming: the silence check alone would let a peer
	// dribble forever. Default 10 s: a 1 MiB msgpack or JSON frame then
	// needs about 1 Mbit/s. Longer suits slow links; shorter frees memory
	// held by a peer that dribbles sooner.
	PartialFrameTimeout time.Duration
	// PartialFrameBudget bounds the bytes of frames larger than
	// PartialFrameFree that links of one Node (or one Listener) hold
	// incomplete, all together. A link whose frame would take the total
	// past it is closed (ErrProtocol), so that links each holding a nearly
	// complete large frame pin at most this much (a decoder's buffer
	// doubles as it grows, so the memory behind it is at most about twice
	// as much). A link's charge is given back once its large frames stop
	// (its next small frame, or a ping). Default 64 MiB: 64 links receiving
	// 1 MiB frames at once. Larger suits many peers sending large frames at
	// once; smaller bounds a flood tighter.
	PartialFrameBudget int64
}

// Defaults of AcceptConfig.
const (
	defaultMaxHandshakes       = 64
	defaultPerSourceHandshakes = defaultMaxHandshakes / 4
	defaultConnRate            = 20
	defaultNewIDsPerSource     = 4
	defaultConfirmAfter        = 10 * time.Second
	defaultBacklog             = 64
	defaultPartialFrameFree    = 64 << 10
	defaultPartialFrameTimeout = 10 * time.Second
	defaultPartialFrameBudget  = 64 << 20
)

// DefaultAcceptConfig returns the default bounds.
func DefaultAcceptConfig() AcceptConfig {
	return AcceptConfig{
		MaxHandshakes:       defaultMaxHandshakes,
		PerSourceHandshakes: defaultPerSourceHandshakes,
		ConnRate:            defaultConnRate,
		NewIDsPerSource:     defaultNewIDsPerSource,
		ConfirmAfter:        defaultConfirmAfter,
		Backlog:             defaultBacklog,
		PartialFrameFree:    defaultPartialFrameFree,
		PartialFrameTimeout: defaultPartialFrameTimeout,
		PartialFrameBudget:  defaultPartialFrameBudget,
	}
}

func (c *AcceptConfig) validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: Accept: "+format+" (start from DefaultAcceptConfig)", append([]any{ErrConfig}, args...)...)
	}
	switch {
	case c.MaxHandshakes <= 0:
		return bad("MaxHandshakes must be positive")
	case c.PerSourceHandshakes <= 0:
		return bad("PerSourceHandshakes must be positive")
	case c.ConnRate < 0:
		return bad("ConnRate is negative")
	case c.NewIDsPerSource <= 0:
		return bad("NewIDsPerSource must be positive")
	case c.ConfirmAfter < 0:
		return bad("ConfirmAfter is negative")
	case c.Backlog <= 0:
		return bad("Backlog must be positive")
	case c.PartialFrameFree <= 0:
		return bad("PartialFrameFree must be positive")
	case c.PartialFrameTimeout <= 0:
		return bad("PartialFrameTimeout must be positive")
	case c.PartialFrameBudget < int64(c.PartialFrameFree):
		return bad("PartialFrameBudget %d is under PartialFrameFree %d", c.PartialFrameBudget, c.PartialFrameFree)
	}
	return nil
}

// maxRateSources bounds the source addresses ConnRate remembers.
const maxRateSources = 4096

// acceptor is the one accept loop of a Node, a Listener and a Node's
// cable_car listener: accept with backoff on errors, the per-source rate
// limit, the handshake slots. What a connection becomes is the owner's
// handler.
type acceptor struct {
	cfg   AcceptConfig
	log   *slog.Logger
	ctx   context.Context // ends the loops
	wg    *sync.WaitGroup // the owner's: Close waits for the loops and handlers
	rate  *ratelimit.Limiter
	slots hsSlots

	refused atomic.Uint64 // closed unhandshaken: rate or per-source slots
	evicted atomic.Uint64 // handshakes in progress closed for a newcomer
}

func newAcceptor(ctx context.Context, wg *sync.WaitGroup, cfg AcceptConfig, log *slog.Logger) *acceptor {
	a := &acceptor{cfg: cfg, log: log, ctx: ctx, wg: wg,
		rate: ratelimit.New(cfg.ConnRate, int(2*cfg.ConnRate)+1, maxRateSources)}
	a.slots.init(cfg.MaxHandshakes, cfg.PerSourceHandshakes)
	return a
}

// serve accepts on ln, on a goroutine of the owner's wait group, until ln
// closes or ctx ends. Each connection that passes the rate limit and gets
// a handshake slot goes to handle on a goroutine of its own; handle owns
// conn and must release s once the connection has proved itself (its
// handshake finished) or failed. Evicting s calls s's evict function,
// which by default closes conn.
func (a *acceptor) serve(ln net.Listener, handle func(conn net.Conn, s *slot)) {
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		delay := time.Duration(0)
		for {
			conn, err := ln.Accept()
			if err != nil {
				if a.ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
					return
				}
				// Out of file descriptors and the like: back off, bounded,
				// so that the loop does not spin while the cause lasts.
				delay = min(max(2*delay, 5*time.Millisecond), time.Second)
				a.log.Warn("mesh: accept failed", "addr", ln.Addr(), "err", err, "retry", delay)
				t := time.NewTimer(delay)
				select {
				case <-t.C:
					continue
				case <-a.ctx.Done():
					t.Stop()
					return
				}
			}
			delay = 0
			s := a.admit(conn)
			if s == nil {
				continue
			}
			a.wg.Add(1)
			go func() {
				defer a.wg.Done()
				handle(conn, s)
			}()
		}
	}()
}

// admit applies the rate limit and takes a handshake slot for conn,
// evicting the oldest handshake in progress if all are taken. It returns
// nil after closing conn when conn is refused.
func (a *acceptor) admit(conn net.Conn) *slot {
	src := sourceAddr(conn.RemoteAddr())
	if !a.rate.Allow(src, time.Now()) {
		a.refuse(conn, "over its source's connection rate")
		return nil
	}
	s, victim := a.slots.acquire(src, func() { conn.Close() })
	if s == nil {
		a.refuse(conn, "too many handshakes in progress from its source")
		return nil
	}
	if victim != nil {
		a.evicted.Add(1)
		a.log.Debug("mesh: oldest handshake in progress evicted for a new connection", "remote", victim.src)
		victim.evictNow()
	}
	return s
}

func (a *acceptor) refuse(conn net.Conn, why string) {
	a.refused.Add(1)
	a.log.Debug("mesh: connection refused: "+why, "remote", conn.RemoteAddr())
	conn.Close()
}

// slot is one handshake in progress, held from accept until release.
type slot struct {
	set   *hsSlots
	src   netip.Addr
	evict func() // ends the connection; called without the set's lock
	gone  bool   // released or evicted; guarded by set.mu
}

// release gives the slot back; after an eviction it does nothing.
func (s *slot) release() { s.set.release(s) }

// evictNow runs what eviction does, read under the set's lock (setEvict may
// be changing it), called without it.
func (s *slot) evictNow() {
	s.set.mu.Lock()
	f := s.evict
	s.set.mu.Unlock()
	f()
}

// setEvict replaces what eviction does (a cable_car link closes its link
// rather than its conn). It reports false if the slot was evicted already.
func (s *slot) setEvict(f func()) bool {
	s.set.mu.Lock()
	defer s.set.mu.Unlock()
	s.evict = f
	return !s.gone
}

// hsSlots bounds the incoming handshakes in progress: in all, where the
// oldest is evicted for a newcomer, and per source address, where a
// newcomer is refused, so that one host's silent connections cannot take
// every slot nor churn the others out.
type hsSlots struct {
	// mu guards the fields below.
	mu        sync.Mutex
	max       int
	perSource int
	live      []*slot // oldest first
	bySource  map[netip.Addr]int
}

func (s *hsSlots) init(limit, perSource int) {
	s.max = limit
	s.perSource = perSource
	s.bySource = make(map[netip.Addr]int)
}

// acquire takes a slot for src, or returns nil when src holds its share.
// When every slot is taken the oldest is freed for it and returned as
// victim, for the caller to evict.
func (s *hsSlots) acquire(src netip.Addr, evict func()) (sl, victim *slot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.bySource[src] >= s.perSource {
		return nil, nil
	}
	if len(s.live) >= s.max {
		victim = s.live[0]
		s.removeLocked(victim)
	}
	sl = &slot{set: s, src: src, evict: evict}
	s.live = append(s.live, sl)
	s.bySource[src]++
	return sl, victim
}

func (s *hsSlots) release(sl *slot) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.removeLocked(sl)
}

func (s *hsSlots) removeLocked(sl *slot) {
	if sl.gone {
		return
	}
	sl.gone = true
	if i := slices.Index(s.live, sl); i >= 0 {
		s.live = slices.Delete(s.live, i, i+1)
	}
	if s.bySource[sl.src]--; s.bySource[sl.src] <= 0 {
		delete(s.bySource, sl.src)
	}
}

// inUse returns how many slots are held.
func (s *hsSlots) inUse() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.live)
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

// sameHost reports whether conn comes from this host itself (its source
// address is the one it arrived at), or has no IP source at all (the
// memory network): such connections are exempt from the limits on node
// ids per source, since several nodes on one machine are normal and a
// local program has easier ways to do harm.
func sameHost(conn net.Conn) bool {
	src := sourceAddr(conn.RemoteAddr())
	return !src.IsValid() || src == sourceAddr(conn.LocalAddr())
}
