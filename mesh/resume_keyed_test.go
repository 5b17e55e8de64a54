package mesh

import (
	"context"
	"encoding/hex"
	"errors"
	"io"
	"net"
	"testing"
	"time"

	"github.com/lanmesh/lanmesh/internal/resume"
	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
	"github.com/lanmesh/lanmesh/meshkey"
)

// withKey gives a node config the mesh key of seed.
func withKey(seed byte) func(*NodeConfig) {
	return func(c *NodeConfig) { c.Keyring = meshkey.Keyring{Primary: testKey(seed)} }
}

// TestResumeKeyedFastRedial: TestResumeFastRedial on a keyed mesh: three
// cuts under traffic both ways, each resumed (PeerResuming, PeerResumed, no
// PeerLeft), with nothing lost, doubled or reordered.
func TestResumeKeyedFastRedial(t *testing.T) { resumeFastRedial(t, withKey(1)) }

// TestResumeKeyedForgedResume: TestResumeForgedResume on a keyed mesh, the
// impostor a member of it (it holds the mesh key and completes the keyed
// handshake with the peer's ids): a Resume it made, and one the real peer
// sent on an earlier link, both fail authentication; the session is kept.
func TestResumeKeyedForgedResume(t *testing.T) { resumeForged(t, withKey(1)) }

// TestResumeKeyedWithPeerWithout: a keyed node that offers resume and one
// that does not (Resume.Disabled, or an older lanmesh: the same bytes,
// no suite data) link as before and exchange messages, without resuming.
func TestResumeKeyedWithPeerWithout(t *testing.T) { resumeWithPeerWithout(t, withKey(1)) }

// TestResumeKeyedWrongKey: a node with another key cannot link, resume on
// or off, and says why.
func TestResumeKeyedWrongKey(t *testing.T) {
	leaktest.Check(t)
	nodes := startNodes(t, nodeNet{name: "mem", mem: NewMemNetwork()}, 2, func(i int, c *NodeConfig) {
		c.Net.Peers = nil
		withKey(byte(i + 1))(c)
	})
	_, err := nodes[0].Connect(testCtx(t, 5*time.Second), "node1:1")
	wantClose(t, err, ErrWrongKey, true)
	_, err = nodes[1].Connect(testCtx(t, 5*time.Second), "node0:1")
	wantClose(t, err, ErrWrongKey, true)
	for _, n := range nodes {
		if len(linkedPeers(n)) != 0 {
			t.Fatalf("%s is linked to a node with another key", n.Name())
		}
		n.mu.Lock()
		sessions := len(n.sessions)
		n.mu.Unlock()
		if sessions != 0 {
			t.Fatalf("%s keeps %d resume sessions for nodes it never linked", n.Name(), sessions)
		}
	}
}

// goldenKeyedHelloHex is SPEC.md section 6's example Hello under suite 1,
// with the resume offer of section 12.4 as its suite data.
const goldenKeyedHelloHex = "4c4e4d48" + "01" + "01" + "0039" + // magic, version, kind, length 57
	"00112233445566778899aabbccddeeff" + // node id
	"ffeeddccbbaa99887766554433221100" + // instance id
	"1b58" + "01" + "00" + // port 7000, suite 1, flags
	"03616e6e" + "0467616d65" + "0662696e617279" + // "ann", "game", "binary"
	"0003" + "010101" // suite data: the resume item, version 1

func goldenKeyedHello() hello {
	h := goldenHello
	h.Suite, h.SuiteData = suiteNoise, keyedOffer
	return h
}

func TestKeyedHelloGolden(t *testing.T) {
	b, err := goldenKeyedHello().appendFrame(nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := hex.EncodeToString(b); got != goldenKeyedHelloHex {
		t.Fatalf("keyed hello\n got %s\nwant %s", got, goldenKeyedHelloHex)
	}
	h, err := parseHello(b)
	if err != nil {
		t.Fatal(err)
	}
	o, found, err := resume.ParseOffer(h.SuiteData, true)
	if err != nil || !found || o.Version != 1 || o.HasShare {
		t.Fatalf("the offer: %+v, %v, %v", o, found, err)
	}
}

// keyedHS runs a keyed handshake between an initiator with cfgA and a
// responder with cfgB over a fresh connection of tc; resumeA and resumeB
// say whether each offers resume. The initiator's Hello carries suiteA as
// its suite data when it does not offer resume (nil: none).
func keyedHS(t *testing.T, tc transportCase, cfgA, cfgB Config, resumeA, resumeB bool, suiteA []byte) (sa, sb session, errA, errB error) {
	t.Helper()
	tr, addr := tc.new()
	ca, cb := connPair(t, tr, addr)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sb, errB = handshake(context.Background(), cb, cfgB.hello(), cfgB, hsOptions{keys: cfgB.Keyring.Derive(cfgB.Mesh), resume: resumeB})
		if errB != nil {
			cb.Close()
		}
	}()
	local := cfgA.hello()
	local.SuiteData = suiteA
	sa, errA = handshake(context.Background(), ca, local, cfgA, hsOptions{initiator: true, keys: cfgA.Keyring.Derive(cfgA.Mesh), resume: resumeA})
	if errA != nil {
		ca.Close()
	}
	<-done
	return sa, sb, errA, errB
}

// TestKeyedHandshakeResume: the keyed handshake's part of resume (SPEC.md
// sections 12.4 and 12.5). Both offer: both ends hold the same binding and
// the same session secret, and another connection has another binding.
// One offers: the link does not resume. A malformed offer is refused as a
// malformed Hello; an item of an unknown tag is skipped.
func TestKeyedHandshakeResume(t *testing.T) {
	eachTransport(t, func(t *testing.T, tc transportCase) {
		leaktest.Check(t)
		cfgA, cfgB := keyed(testConfig(t), testKey(1)), keyed(testConfig(t), testKey(1))
		cfgB.Name = "bob"
		pair := resume.Pair{LocalNode: resume.ID{1}, LocalInstance: resume.ID{2}, RemoteNode: resume.ID{3}, RemoteInstance: resume.ID{4}}
		flip := resume.Pair{LocalNode: pair.RemoteNode, LocalInstance: pair.RemoteInstance, RemoteNode: pair.LocalNode, RemoteInstance: pair.LocalInstance}

		sa, sb, errA, errB := keyedHS(t, tc, cfgA, cfgB, true, true, nil)
		if errA != nil || errB != nil {
			t.Fatalf("both offer: %v, %v", errA, errB)
		}
		if !sa.resume.ok || !sb.resume.ok || !sa.resume.keyed || !sb.resume.keyed {
			t.Fatalf("both offer: resume %+v / %+v", sa.resume.ok, sb.resume.ok)
		}
		bindA, secretA := sa.resume.material(pair)
		bindB, secretB := sb.resume.material(flip)
		ka, errA := secretA()
		kb, errB := secretB()
		if errA != nil || errB != nil || ka != kb || bindA != bindB {
			t.Fatalf("the ends disagree: binding %x / %x, secret equal %v (%v, %v)", bindA[:4], bindB[:4], ka == kb, errA, errB)
		}
		if want := resume.KeyedSecret(pair, sa.resume.i2r, sa.resume.r2i); ka != want || string(sa.laneSecret) != string(append(sa.resume.i2r[:], sa.resume.r2i[:]...)) {
			t.Fatal("the secret does not come from the Split's keys, initiator-to-responder first")
		}
		sc, _, errC, errD := keyedHS(t, tc, cfgA, cfgB, true, true, nil)
		if errC != nil || errD != nil {
			t.Fatalf("again: %v, %v", errC, errD)
		}
		if bindC, secretC := sc.resume.material(pair); bindC == bindA {
			t.Fatal("two connections have the same binding")
		} else if kc, _ := secretC(); kc == ka {
			t.Fatal("two connections give the same session secret")
		}

		for _, c := range []struct{ a, b bool }{{true, false}, {false, true}} {
			sa, sb, errA, errB := keyedHS(t, tc, cfgA, cfgB, c.a, c.b, nil)
			if errA != nil || errB != nil || sa.resume.ok || sb.resume.ok {
				t.Fatalf("offers %v/%v: %v, %v; resume %v/%v", c.a, c.b, errA, errB, sa.resume.ok, sb.resume.ok)
			}
		}

		// An unknown item, then the offer: the responder finds it.
		_, sb, errA, errB = keyedHS(t, tc, cfgA, cfgB, false, true, []byte{9, 2, 0xaa, 0xbb, 1, 1, 1})
		if errA != nil || errB != nil || !sb.resume.ok {
			t.Fatalf("an unknown item before the offer: %v, %v, resume %v", errA, errB, sb.resume.ok)
		}
		for name, data := range map[string][]byte{
			"a share on a keyed link": append([]byte{1, 33, 1}, make([]byte, 32)...),
			"version 0":               {1, 1, 0},
			"two offers":              {1, 1, 1, 1, 1, 1},
			"an item overruns":        {1, 2, 1},
		} {
			_, _, errA, errB := keyedHS(t, tc, cfgA, cfgB, false, true, data)
			wantClose(t, errA, ErrHandshake, true)
			if ce := wantClose(t, errB, ErrHandshake, false); ce.Reason == "" {
				t.Fatalf("%s: no reason", name)
			}
			// A responder that does not offer resume ignores suite data,
			// as before.
			if _, _, errA, errB := keyedHS(t, tc, cfgA, cfgB, false, false, data); errA != nil || errB != nil {
				t.Fatalf("%s, to a responder without resume: %v, %v", name, errA, errB)
			}
		}
	})
}

// FuzzKeyedHello plays an arbitrary Hello, as the payload of the peer's
// Noise message, to the keyed handshake's check with a resume offer of its
// own: it must accept or refuse, never panic, and accept only a Hello of
// its mesh, codec and suite whose resume item, if any, is well formed.
func FuzzKeyedHello(f *testing.F) {
	good, _ := goldenKeyedHello().appendFrame(nil)
	f.Add(good)
	plain, _ := goldenHello.appendFrame(nil)
	f.Add(plain)
	for _, data := range [][]byte{nil, {9, 0, 1, 1, 1}, {1, 1, 0}, {1, 1, 1, 1, 1, 1}, {1, 2, 1}, append([]byte{1, 33, 1}, make([]byte, 32)...)} {
		h := goldenKeyedHello()
		h.SuiteData = data
		b, _ := h.appendFrame(nil)
		f.Add(b)
	}
	for _, b := range brokenHellos() {
		f.Add(b)
	}
	local := goldenKeyedHello()
	f.Fuzz(func(t *testing.T, b []byte) {
		h := &handshaker{conn: discardConn{}, ctx: context.Background(), log: testLogger()}
		remote, offered, err := h.checkHello(b, local, true)
		if err != nil {
			if !errors.Is(err, ErrHandshake) && !errors.Is(err, ErrVersion) && !errors.Is(err, ErrMeshMismatch) && !errors.Is(err, ErrCodecMismatch) {
				t.Fatalf("refused with %v", err)
			}
			return
		}
		if remote.Mesh != local.Mesh || remote.Codec != local.Codec || remote.Suite != suiteNoise {
			t.Fatalf("accepted %+v", remote)
		}
		if _, found, err := resume.ParseOffer(remote.SuiteData, true); err != nil || found != offered {
			t.Fatalf("accepted suite data % x: offered %v, %v", remote.SuiteData, offered, err)
		}
	})
}

// discardConn is a conn that takes every write and has nothing to read.
type discardConn struct{ net.Conn }

func (discardConn) Write(p []byte) (int, error) { return len(p), nil }
func (discardConn) Read([]byte) (int, error)    { return 0, io.EOF }
