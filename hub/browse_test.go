package hub

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/nats-io/nats.go"

	"github.com/lanmesh/lanmesh/hub/internal/wire"
	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
	"github.com/lanmesh/lanmesh/meshkey"
)

// recordingDial dials TCP and keeps every byte written to the hub.
type recordingDial struct {
	mu  sync.Mutex
	out bytes.Buffer
}

func (d *recordingDial) dial(network, addr string) (net.Conn, error) {
	c, err := net.Dial(network, addr)
	if err != nil {
		return nil, err
	}
	return &recordingConn{Conn: c, d: d}, nil
}

func (d *recordingDial) written() string {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.out.String()
}

type recordingConn struct {
	net.Conn
	d *recordingDial
}

func (c *recordingConn) Write(p []byte) (int, error) {
	c.d.mu.Lock()
	c.d.out.Write(p)
	c.d.mu.Unlock()
	return c.Conn.Write(p)
}

// listing spells peers as "name@site" (sealed: "+"), sorted as Browse
// sorts them.
func listing(peers []SitePeer) string {
	var s []string
	for _, p := range peers {
		x := p.Name + "@" + p.Site
		if p.Sealed {
			x += "+"
		}
		s = append(s, x)
	}
	return strings.Join(s, ",")
}

// TestBrowse: Browse lists the nodes of both sites, keyed and unkeyed,
// publishing nothing on the hub; under a key only the right key opens the
// rosters, and what does not open is counted.
func TestBrowse(t *testing.T) {
	key, other := meshkey.Keyring{Primary: meshkey.Key{7}}, meshkey.Keyring{Primary: meshkey.Key{8}}
	for _, tc := range []struct {
		name   string
		kr     meshkey.Keyring
		sealed string
	}{{"unkeyed", meshkey.Keyring{}, ""}, {"keyed", key, "+"}} {
		t.Run(tc.name, func(t *testing.T) {
			leaktest.Check(t)
			srv := startServer(t, ServerOptions{})
			s := twoSites(t, srv.URL(), tc.kr)
			waitLinked(t, 10*time.Second, s.full())

			var rec recordingDial
			got, err := Browse(context.Background(), BrowseOptions{URL: srv.URL(), Meshes: map[string]meshkey.Keyring{"hubtest": tc.kr},
				Wait: 5 * testHB, Dial: rec.dial})
			if err != nil {
				t.Fatal(err)
			}
			want := strings.ReplaceAll("a1@A+,a2@A+,b1@B+,b2@B+", "+", tc.sealed)
			if l := listing(got.Peers); l != want {
				t.Fatalf("Browse: %s, want %s", l, want)
			}
			if got.SealedDrop != 0 || got.BadDrop != 0 || got.Refused != 0 {
				t.Fatalf("Browse dropped: %+v", got)
			}
			for _, p := range got.Peers {
				if p.Mesh != "hubtest" || p.ID == uuid.Nil || p.Instance == uuid.Nil {
					t.Fatalf("Browse: %+v", p)
				}
			}
			// Nothing published: the client wrote subscriptions and pings.
			for _, line := range strings.Split(rec.written(), "\r\n") {
				if strings.HasPrefix(line, "PUB ") || strings.HasPrefix(line, "HPUB ") {
					t.Fatalf("Browse published: %q", line)
				}
			}
			if !strings.Contains(rec.written(), "SUB "+wire.SubjectRoster("hubtest")) {
				t.Fatalf("Browse did not subscribe to the roster: %q", rec.written())
			}
			// The sites did not see it.
			for _, w := range s.all() {
				if n := len(w.Peers()); n != 3 {
					t.Fatalf("%s sees %d peers", w.Name(), n)
				}
			}

			// The wrong key, or none under a key (or one without): nothing
			// listed, every roster counted.
			wrong := other
			if !tc.kr.Keyed() {
				wrong = key
			}
			for _, kr := range []meshkey.Keyring{wrong, {}} {
				if kr.Keyed() == tc.kr.Keyed() && kr.Primary == tc.kr.Primary {
					continue
				}
				got, err := Browse(context.Background(), BrowseOptions{URL: srv.URL(), Meshes: map[string]meshkey.Keyring{"hubtest": kr}, Wait: 3 * testHB})
				if err != nil {
					t.Fatal(err)
				}
				if len(got.Peers) != 0 || got.SealedDrop == 0 {
					t.Fatalf("Browse with key %v: %s, %d sealed drops", kr.Keyed(), listing(got.Peers), got.SealedDrop)
				}
			}
		})
	}
}

// TestBrowseUnreachable: no hub at the address: an error at once.
func TestBrowseUnreachable(t *testing.T) {
	leaktest.Check(t)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, err = Browse(context.Background(), BrowseOptions{URL: "nats://" + addr, Wait: time.Second})
	if err == nil || !strings.Contains(err.Error(), addr) {
		t.Fatalf("Browse of no hub: %v", err)
	}
}

// TestBrowseCancel: the context's end ends Browse with what it heard.
func TestBrowseCancel(t *testing.T) {
	leaktest.Check(t)
	srv := startServer(t, ServerOptions{})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	_, err := Browse(ctx, BrowseOptions{URL: srv.URL(), Wait: time.Minute})
	if err != context.DeadlineExceeded || time.Since(start) > 30*time.Second {
		t.Fatalf("Browse: %v after %v", err, time.Since(start))
	}
}

// rosterMsg is a roster envelope from gateway (id, session) at seq.
func rosterMsg(subj string, keys []wire.Key, id, session uuid.UUID, seq uint64, r wire.RosterBody) *nats.Msg {
	h := wire.Header{Kind: wire.KindRoster, Sender: id, Session: session, Start: 1, Seq: seq}
	return &nats.Msg{Subject: subj, Data: wire.Seal(nil, h, subj, r.Append(nil), keys)}
}

// TestBrowserClaims: the browser's handling of rosters as claims, without
// sockets: forged and unsealed rosters under a key are dropped and
// counted, replays dropped, a later roster replaces its gateway's, a
// goodbye removes its node, and sites are bounded.
func TestBrowserClaims(t *testing.T) {
	subj := wire.SubjectRoster("m")
	kr := meshkey.Keyring{Primary: meshkey.Key{1}}
	keys := wire.DeriveKeys(kr.Derive("m"))
	forged := wire.DeriveKeys(meshkey.Keyring{Primary: meshkey.Key{2}}.Derive("m"))
	br := newBrowser(nil)
	br.meshes[subj] = browseMesh{name: "m", keys: keys}
	gw, gs := uuid.New(), uuid.New()
	p2, p2s := uuid.New(), uuid.New()
	now := time.Now()
	two := wire.RosterBody{Site: "S", Entries: []wire.RosterEntry{{ID: gw, Session: gs, Name: "g"}, {ID: p2, Session: p2s, Name: "p\x1b[2J"}}}

	br.take(rosterMsg(subj, forged, gw, gs, 1, two), now)
	br.take(rosterMsg(subj, nil, gw, gs, 2, two), now)
	if r := br.result(); len(r.Peers) != 0 || r.SealedDrop != 2 {
		t.Fatalf("forged and unsealed: %+v", r)
	}
	m := rosterMsg(subj, keys, gw, gs, 3, two)
	br.take(m, now)
	br.take(m, now) // a replay
	if r := br.result(); listing(r.Peers) != "g@S+,p\x1b[2J@S+" || r.BadDrop != 1 {
		t.Fatalf("sealed roster: %q %+v", listing(r.Peers), r)
	}
	// The gateway's next roster leaves p2 out: it is gone.
	br.take(rosterMsg(subj, keys, gw, gs, 4, wire.RosterBody{Site: "S", Entries: two.Entries[:1]}), now)
	if r := br.result(); listing(r.Peers) != "g@S+" {
		t.Fatalf("after a shorter roster: %s", listing(r.Peers))
	}
	// A goodbye of another session removes nothing; the node's own does.
	bye := func(id, session uuid.UUID, start int64, seq uint64) *nats.Msg {
		h := wire.Header{Kind: wire.KindBye, Sender: id, Session: session, Start: start, Seq: seq}
		return &nats.Msg{Subject: subj, Data: wire.Seal(nil, h, subj, nil, keys)}
	}
	br.take(rosterMsg(subj, keys, gw, gs, 5, two), now)
	br.take(bye(p2, uuid.New(), 1, 1), now)
	if r := br.result(); len(r.Peers) != 2 {
		t.Fatalf("a goodbye of another session removed a peer: %s", listing(r.Peers))
	}
	br.take(bye(gw, gs, 1, 6), now)
	if r := br.result(); listing(r.Peers) != "p\x1b[2J@S+" {
		t.Fatalf("after the gateway's goodbye: %s", listing(r.Peers))
	}

	// Past MaxSites sites, new sites are refused and counted.
	for i := range MaxSites + 5 {
		r := wire.RosterBody{Site: fmt.Sprintf("site%d", i), Entries: []wire.RosterEntry{{ID: uuid.New(), Session: uuid.New(), Name: "x"}}}
		br.take(rosterMsg(subj, keys, uuid.New(), uuid.New(), 1, r), now)
	}
	r := br.result()
	sites := map[string]bool{}
	for _, p := range r.Peers {
		sites[p.Site] = true
	}
	if len(sites) != MaxSites || r.Refused != 6 {
		t.Fatalf("%d sites kept, %d refused", len(sites), r.Refused)
	}
}

// FuzzBrowserTake: whatever comes on a roster subject, keyed or not, the
// browser neither panics nor keeps more than its bounds, and lists only
// what a roster named.
func FuzzBrowserTake(f *testing.F) {
	subj := wire.SubjectRoster("m")
	keys := wire.DeriveKeys(meshkey.Keyring{Primary: meshkey.Key{1}}.Derive("m"))
	r := wire.RosterBody{Site: "S", Entries: []wire.RosterEntry{{ID: uuid.New(), Session: uuid.New(), Name: "n"}}}
	f.Add(rosterMsg(subj, nil, uuid.New(), uuid.New(), 1, r).Data, false)
	f.Add(rosterMsg(subj, keys, uuid.New(), uuid.New(), 1, r).Data, true)
	f.Add([]byte{}, false)
	f.Fuzz(func(t *testing.T, data []byte, keyed bool) {
		br := newBrowser(nil)
		bm := browseMesh{name: "m"}
		if keyed {
			bm.keys = keys
		}
		br.meshes[subj] = bm
		now := time.Now()
		br.take(&nats.Msg{Subject: subj, Data: data}, now)
		br.take(&nats.Msg{Subject: "other", Data: data}, now)
		got := br.result()
		if len(got.Peers) > wire.MaxRosterSize {
			t.Fatalf("%d peers from one envelope", len(got.Peers))
		}
		for _, p := range got.Peers {
			if p.Mesh != "m" || (keyed && !p.Sealed) {
				t.Fatalf("peer %+v", p)
			}
		}
	})
}
