package discovery

import (
	"log/slog"
	"net/netip"
	"testing"

	"github.com/google/uuid"
)

func TestEventQueueCoalescesAndBounds(t *testing.T) {
	d := &Discoverer{log: slog.New(slog.DiscardHandler), qsig: make(chan struct{}, 1)}
	d.cfg.OnEvent = func(Event) {}
	d.cfg.MaxQueuedEvents = 3
	pa := Peer{ID: peerA, Instance: inst1, Addr: addr1}
	pb := Peer{ID: peerB, Instance: inst1, Addr: addr1}
	upd := func(p Peer, port uint16) Event {
		next := p
		next.Addr = netip.AddrPortFrom(p.Addr.Addr(), port)
		return Event{Kind: Updated, Peer: next, Prev: p}
	}
	d.emitLocked([]Event{{Kind: Found, Peer: pa}})
	for port := range uint16(5) {
		d.emitLocked([]Event{upd(pa, 8000+port)})
	}
	d.emitLocked([]Event{{Kind: Found, Peer: pb}, upd(pa, 9000)})
	if len(d.queue) != 3 {
		t.Fatalf("queue %v, want Found a, one Updated a, Found b", kinds(d.queue))
	}
	if u := d.queue[1]; u.Kind != Updated || u.Peer.Addr.Port() != 9000 || u.Prev.Addr != addr1 {
		t.Fatalf("folded Updated %+v, want the newest address and the oldest Prev", u)
	}
	// Full: a new peer's Found is dropped and counted, not blocked on.
	d.emitLocked([]Event{{Kind: Found, Peer: Peer{ID: uuid.New(), Instance: inst1}}})
	if len(d.queue) != 3 || d.droppedEvents.Load() != 1 {
		t.Fatalf("queue %d events, %d dropped; want 3 and 1", len(d.queue), d.droppedEvents.Load())
	}
	// An Updated of another instance is not folded into the old one.
	d.queue = d.queue[:1]
	restarted := pa
	restarted.Instance = inst2
	d.emitLocked([]Event{{Kind: Restarted, Peer: restarted, Prev: pa}, upd(restarted, 7001)})
	if got := kinds(d.queue); len(got) != 3 || got[2] != Updated {
		t.Fatalf("queue %v, want Found, Restarted, Updated", got)
	}
}
