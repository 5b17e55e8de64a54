package ratelimit

import (
	"net/netip"
	"testing"
	"time"
)

func TestBucket(t *testing.T) {
	l := New(10, 3, 100)
	a := netip.MustParseAddr("10.0.0.1")
	now := time.Unix(1000, 0)
	for i := range 3 {
		if !l.Allow(a, now) {
			t.Fatalf("burst token %d refused", i)
		}
	}
	if l.Allow(a, now) {
		t.Fatal("a fourth token at once")
	}
	if !l.Allow(netip.MustParseAddr("10.0.0.2"), now) {
		t.Fatal("another address shares the bucket")
	}
	now = now.Add(100 * time.Millisecond) // one token at 10/s
	if !l.Allow(a, now) || l.Allow(a, now) {
		t.Fatal("refill is not one token per 100 ms")
	}
	// A clock that steps back refills nothing and breaks nothing.
	if l.Allow(a, now.Add(-time.Hour)) {
		t.Fatal("a clock step back gave a token")
	}
}

func TestBounded(t *testing.T) {
	l := New(1, 1, 16)
	now := time.Unix(0, 0)
	for i := range 1000 {
		l.Allow(netip.AddrFrom4([4]byte{10, 0, byte(i >> 8), byte(i)}), now)
	}
	if l.Len() != 16 {
		t.Fatalf("table holds %d, want 16", l.Len())
	}
	var none *Limiter
	if !none.Allow(netip.Addr{}, now) || New(0, 1, 1) != nil {
		t.Fatal("a nil limiter limits")
	}
}
