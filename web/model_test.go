package web

import (
	"testing"
	"time"

	"github.com/google/uuid"
)

// TestTracker: joins, restarts (a new instance) and leaves become events
// in order, with the reason; rates come from counters over a second; a new
// link's counters start the rate again.
func TestTracker(t *testing.T) {
	tr := newTracker()
	t0 := time.Unix(1000, 0)
	a, b := uuid.New(), uuid.New()
	ia, ib := uuid.New(), uuid.New()
	gone := func(id uuid.UUID) string { return "reason of " + id.String()[:4] }
	peer := func(id, inst uuid.UUID, name, state string, msgs, bytes uint64) peerSample {
		return peerSample{ID: id, Instance: inst, Name: name, State: state, MsgsIn: msgs, BytesIn: bytes}
	}
	if !tr.observe(t0, nil, gone) {
		t.Error("the first sample is news")
	}
	if !tr.observe(t0, []peerSample{peer(a, ia, "a", "linked", 0, 0), peer(b, ib, "b", "seen", 0, 0)}, gone) {
		t.Error("a join is news")
	}
	if tr.observe(t0.Add(500*time.Millisecond), []peerSample{peer(a, ia, "a", "linked", 10, 100), peer(b, ib, "b", "seen", 0, 0)}, gone) {
		t.Error("counters are not news")
	}
	tr.observe(t0.Add(time.Second), []peerSample{peer(a, ia, "a", "linked", 20, 300), peer(b, ib, "b", "linked", 0, 0)}, gone)
	v := tr.views(true)
	if len(v) != 2 || v[0].Name != "a" || v[0].MsgsPerSec != 20 || v[0].BytesPerSec != 300 || !v[0].Keyed || v[0].LastHeard != t0.Add(time.Second).UnixMilli() {
		t.Errorf("views: %+v", v)
	}
	ia2 := uuid.New()
	tr.observe(t0.Add(2*time.Second), []peerSample{peer(a, ia2, "a", "linked", 1, 10), peer(b, ib, "b", "dialling", 0, 0)}, gone)
	tr.observe(t0.Add(3*time.Second), []peerSample{peer(a, ia2, "a", "linked", 5, 50)}, gone)
	if v := tr.views(false); len(v) != 1 || v[0].MsgsPerSec != 4 {
		t.Errorf("after a restart: %+v", v)
	}
	tr.observe(t0.Add(4*time.Second), nil, gone)
	want := []struct{ kind, name, reason string }{
		{"joined", "a", ""}, {"joined", "b", ""}, {"restarted", "a", ""}, {"left", "b", "reason of " + b.String()[:4]},
		{"left", "a", "reason of " + a.String()[:4]},
	}
	ev := tr.lastEvents(maxEvents, 0)
	if len(ev) != len(want) {
		t.Fatalf("events: %+v", ev)
	}
	for i, w := range want {
		if e := ev[i]; e.Kind != w.kind || e.Name != w.name || e.Reason != w.reason || e.Seq != uint64(i+1) {
			t.Errorf("event %d: %+v, want %+v", i, e, w)
		}
	}
	if ev := tr.lastEvents(2, 0); len(ev) != 2 || ev[0].Seq != 4 {
		t.Errorf("last 2: %+v", ev)
	}
	if ev := tr.lastEvents(maxEvents, 4); len(ev) != 1 || ev[0].Seq != 5 {
		t.Errorf("after 4: %+v", ev)
	}
	for range maxEvents + 10 {
		tr.event(t0, "joined", peerSample{}, "")
	}
	if len(tr.events) != maxEvents {
		t.Errorf("%d events held", len(tr.events))
	}
}
