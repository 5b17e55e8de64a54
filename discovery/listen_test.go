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
	l, err := NewListener(port, testRing(1), "two")
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
	// c's beacons are sealed under another key: heard only as an opaque
	// node, its key id and address.
	a, b := heard[nodes[0].Self().ID], heard[nodes[1].Self().ID]
	c := heard[OpaqueID(netip.MustParseAddr("127.0.0.1"), testRing(2).Derive("two").Primary().ID)]
	switch {
	case echoes == 0:
		t.Error("the echo did not come back")
	case a.Mesh != "one" || a.Keyed || a.Name != "a" || a.Addr().Port() != 7000:
		t.Errorf("a: %+v", a)
	case b.Mesh != "two" || !b.Keyed || !b.Verified:
		t.Errorf("b (our key): %+v", b)
	case !c.Keyed || c.Verified || c.Mesh != "" || c.Name != "" || c.Port != 0 || c.KeyID != testRing(2).Derive("two").Primary().ID:
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

// FuzzKeyedHeader: reading a sealed beacon's clear header, and opening it
// with a key of another mesh, never panics, and what opens is valid.
func FuzzKeyedHeader(f *testing.F) {
	b := Beacon{ID: uuid.New(), Instance: uuid.New(), Port: 7000, Mesh: "m", Name: "n", Seq: 1}
	ring := testRing(1)
	p, err := b.AppendSigned(nil, ring.Derive("m").Primary())
	if err != nil {
		f.Fatal(err)
	}
	f.Add(p)
	f.Add(p[:sealMinLen])
	f.Add([]byte("LMSH\x03"))
	o := newKeyOpener(ring, []string{"m", "other"})
	f.Fuzz(func(t *testing.T, p []byte) {
		keyedHeader(p)
		if h, ok := o.open(p); ok && h.Verified && h.validate() != nil {
			t.Fatalf("opened an invalid beacon %+v", h.Beacon)
		}
	})
}
