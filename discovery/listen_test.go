package discovery

import (
	"context"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/meshkey"
)

// TestListenerHearsEveryMeshWithoutJoining: a Listener hears the beacons
// of two meshes, keyed and not, verifies the keyed ones it holds the key
// of, hears its own echo, and no node finds it.
func TestListenerHearsEveryMeshWithoutJoining(t *testing.T) {
	port := freeUDPPort(t)
	var nodes []*Discoverer
	var evs []*events
	for i, c := range []struct {
		mesh string
		ring meshkey.Keyring
	}{{"one", meshkey.Keyring{}}, {"two", testRing(1)}, {"two", testRing(2)}} {
		cfg := loopbackConfig(t, port)
		cfg.Mesh, cfg.Keyring, cfg.Name = c.mesh, c.ring, []string{"a", "b", "c"}[i]
		ev := newEvents()
		cfg.OnEvent = ev.on
		d, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close() })
		nodes, evs = append(nodes, d), append(evs, ev)
	}
	l, err := NewListener(port, testRing(1))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	var mu sync.Mutex
	heard := map[uuid.UUID]Heard{}
	echoes := 0
	done := make(chan error, 1)
	go func() {
		done <- l.Run(ctx, func(h Heard) {
			mu.Lock()
			defer mu.Unlock()
			heard[h.ID] = h
			if len(heard) == 3 && echoes > 0 {
				cancel()
			}
		}, func(netip.AddrPort) {
			mu.Lock()
			defer mu.Unlock()
			echoes++
		})
	}()
	if err := l.SendEcho([]netip.AddrPort{netip.AddrPortFrom(netip.MustParseAddr("127.255.255.255"), uint16(port))}); err != nil {
		t.Fatal(err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	defer mu.Unlock()
	a, b, c := heard[nodes[0].Self().ID], heard[nodes[1].Self().ID], heard[nodes[2].Self().ID]
	switch {
	case echoes == 0:
		t.Error("the echo did not come back")
	case a.Mesh != "one" || a.Keyed || a.Name != "a" || a.Addr().Port() != 7000:
		t.Errorf("a: %+v", a)
	case b.Mesh != "two" || !b.Keyed || !b.Verified:
		t.Errorf("b (our key): %+v", b)
	case c.Mesh != "two" || !c.Keyed || c.Verified || c.Name != "c":
		t.Errorf("c (another key): %+v", c)
	}
	for i, ev := range evs {
		select {
		case e := <-ev.ch:
			if e.Peer.Name != "b" && e.Peer.Name != "c" && e.Peer.Name != "a" {
				t.Errorf("node %d found a stranger: %+v", i, e)
			}
		default:
		}
	}
}

// FuzzParseKeyedClaim: reading a keyed beacon's claims without its key
// never panics, and what it accepts is a valid beacon.
func FuzzParseKeyedClaim(f *testing.F) {
	b := Beacon{ID: uuid.New(), Instance: uuid.New(), Port: 7000, Mesh: "m", Name: "n", Seq: 1}
	ring := testRing(1)
	p, err := b.AppendSigned(nil, ring.Derive("m").Primary())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(p)
	f.Add(p[:keyedMinLen])
	f.Add([]byte("LMSH\x02"))
	f.Fuzz(func(t *testing.T, p []byte) {
		b, err := parseKeyedClaim(p)
		if err == nil && b.validate() != nil {
			t.Fatalf("accepted an invalid beacon %+v", b)
		}
	})
}
