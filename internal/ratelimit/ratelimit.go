// Package ratelimit keeps a token bucket per source address, in a table of
// bounded size, so that a flood from many addresses costs bounded memory.
package ratelimit

import (
	"container/list"
	"net/netip"
	"sync"
	"time"
)

// Limiter allows each address Rate events per second, with bursts of
// Burst. It remembers at most Max addresses; past that the least recently
// seen one is forgotten (and starts again with a full bucket). A nil
// *Limiter allows everything. Safe for concurrent use.
type Limiter struct {
	rate  float64
	burst float64
	max   int

	// mu guards the table.
	mu    sync.Mutex
	byKey map[netip.Addr]*list.Element
	lru   list.List // of *bucket, most recent first
}

type bucket struct {
	key    netip.Addr
	tokens float64
	last   time.Time
}

// New returns a Limiter; rate <= 0 gives nil, which allows everything.
func New(rate float64, burst, max int) *Limiter {
	if rate <= 0 {
		return nil
	}
	return &Limiter{rate: rate, burst: float64(max1(burst)), max: max1(max), byKey: make(map[netip.Addr]*list.Element)}
}

func max1(n int) int { return max(n, 1) }

// Allow takes a token from a's bucket, reporting whether there was one.
func (l *Limiter) Allow(a netip.Addr, now time.Time) bool {
	if l == nil {
		return true
	}
	a = a.Unmap()
	l.mu.Lock()
	defer l.mu.Unlock()
	var b *bucket
	if e, ok := l.byKey[a]; ok {
		l.lru.MoveToFront(e)
		b = e.Value.(*bucket)
		if d := now.Sub(b.last); d > 0 {
			b.tokens = min(l.burst, b.tokens+d.Seconds()*l.rate)
			b.last = now
		}
	} else {
		if l.lru.Len() >= l.max {
			old := l.lru.Back()
			delete(l.byKey, old.Value.(*bucket).key)
			l.lru.Remove(old)
		}
		b = &bucket{key: a, tokens: l.burst, last: now}
		l.byKey[a] = l.lru.PushFront(b)
	}
	if b.tokens < 1 {
		return false
	}
	b.tokens--
	return true
}

// Len returns how many addresses the table holds.
func (l *Limiter) Len() int {
	if l == nil {
		return 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.lru.Len()
}
