package discovery

import (
	"hash/maphash"
	"net/netip"
	"sync"
	"time"
)

// sourceSlots is the size of sourceLimiter's table: a fixed number of
// token buckets, whatever the number of sources.
const sourceSlots = 1024

// sourceLimiter is a token bucket per source address in a table of fixed
// size, plus one bucket for all sources together. A table that remembers
// each address (and forgets the oldest when full) is no limit against
// spoofed sources: every new address starts with a full bucket. Here an
// address is hashed, with a seed chosen at random per process, to one of
// sourceSlots buckets that every address hashing there shares, so a flood
// from any number of addresses gets at most sourceSlots buckets' worth of
// tokens, and memory never grows. An honest source that shares a bucket
// with a flooding one loses datagrams with it: that is the price of a flood,
// and it is paid in beacons (which repeat), never in links. Safe for
// concurrent use. A nil *sourceLimiter allows everything.
type sourceLimiter struct {
	rate, burst float64
	seed        maphash.Seed

	// mu guards the buckets.
	mu    sync.Mutex
	slots [sourceSlots]tokenBucket
	total tokenBucket
	// totalRate and totalBurst are the shared bucket's figures.
	totalRate, totalBurst float64
}

type tokenBucket struct {
	tokens float64
	last   time.Time
}

// take refills b at rate up to burst, then takes a token if there is one.
func (b *tokenBucket) take(now time.Time, rate, burst float64) bool {
	if b.last.IsZero() {
		b.tokens, b.last = burst, now
	} else if d := now.Sub(b.last); d > 0 {
		b.tokens = min(burst, b.tokens+d.Seconds()*rate)
		b.last = now
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// newSourceLimiter allows each source rate datagrams a second (bursts of
// burst) and all sources together total a second (bursts of twice that);
// rate <= 0 gives nil, no limit.
func newSourceLimiter(rate float64, burst int, total float64) *sourceLimiter {
	if rate <= 0 {
		return nil
	}
	return &sourceLimiter{
		rate: rate, burst: float64(max(burst, 1)), seed: maphash.MakeSeed(),
		totalRate: total, totalBurst: 2 * total,
	}
}

// allow reports whether a datagram from a may be processed now.
func (l *sourceLimiter) allow(a netip.Addr, now time.Time) bool {
	raw := a.Unmap().As16()
	return l.allowKey(raw[:], now)
}

// allowKey is allow for a key other than an address (a node instance).
func (l *sourceLimiter) allowKey(key []byte, now time.Time) bool {
	if l == nil {
		return true
	}
	i := maphash.Bytes(l.seed, key) % sourceSlots
	l.mu.Lock()
	defer l.mu.Unlock()
	if !l.slots[i].take(now, l.rate, l.burst) {
		return false
	}
	return l.total.take(now, l.totalRate, l.totalBurst)
}
