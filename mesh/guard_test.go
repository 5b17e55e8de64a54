package mesh

import (
	"fmt"
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestDialGate: addresses heard of but never proved are dialled once per
// sighting, and within the node's claim dial rate, however many there are;
// a proved address always may be.
func TestDialGate(t *testing.T) {
	nn := nodeNet{beaconPort: freeUDPPort(t)}
	n := startNodes(t, nn, 1, nil)[0]
	p := &peer{id: uuid.New(), wake: make(chan struct{}, 1)}
	start := time.Now()
	allowed := 0
	for i := range 1000 {
		if n.dialAllowed(p, fmt.Sprintf("10.77.1.%d:%d", i%250, 1000+i)) {
			allowed++
		}
	}
	most := claimDialBurst + int(time.Since(start).Seconds()*claimDialRate) + 1
	if allowed < claimDialBurst || allowed > most {
		t.Errorf("1000 unproved addresses: %d dials allowed, want %d to %d", allowed, claimDialBurst, most)
	}
	// One address, again and again, with no new sighting: never again.
	addr := "10.77.1.1:7000"
	n.guard.mu.Lock()
	n.guard.tokens = claimDialBurst
	n.guard.mu.Unlock()
	if !n.dialAllowed(p, addr) {
		t.Fatal("a new address refused with tokens left")
	}
	for range 10 {
		if n.dialAllowed(p, addr) {
			t.Fatal("an unproved address dialled again without a new sighting")
		}
	}
	n.guard.proven(addr)
	for range 10 {
		if !n.dialAllowed(p, addr) {
			t.Fatal("a proved address refused")
		}
	}
	if st := n.Guard(); st.DialsRefused < 10 || st.Dials < uint64(allowed)+11 {
		t.Errorf("guard counters %+v", st)
	}
}
