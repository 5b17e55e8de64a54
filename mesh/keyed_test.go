package mesh

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
	"github.com/lanmesh/lanmesh/meshkey"
)

// testKey returns a fixed key, distinct for each seed.
func testKey(seed byte) meshkey.Key {
	var k meshkey.Key
	for i := range k {
		k[i] = seed + byte(i)
	}
	return k
}

func keyed(cfg Config, primary meshkey.Key, accepted ...meshkey.Key) Config {
	cfg.Keyring = meshkey.Keyring{Primary: primary, Accepted: accepted}
	return cfg
}

func TestKeyedLink(t *testing.T) {
	eachTransport(t, func(t *testing.T, tc transportCase) {
		leaktest.Check(t)
		cfg := keyed(testConfig(t), testKey(1))
		a, b := pair(t, tc, cfg, cfg)
		id, ok := a.l.KeyID()
		if want := testKey(1).Derive("test").ID; !ok || id != want {
			t.Fatalf("KeyID = %s, %v; want %s", id, ok, want)
		}
		if a.l.Local().Suite != suiteNoise || a.l.Remote().Suite != suiteNoise {
			t.Fatal("hellos do not name the noise suite")
		}
		const n = 5000
		go func() {
			for i := range n {
				sendRetryT(a, &Msg32{Seq: uint64(i)})
				if i%37 == 0 {
					a.Xfer()
				}
			}
			a.Xfer()
		}()
		receiveN(t, b, n, 10*time.Second)
		// Both ways, and a message larger than one record.
		big := strings.Repeat("x", 40000)
		cfgJSON := cfg
		cfgJSON.Codec = "msgpack"
		c, d := pair(t, tc, cfgJSON, cfgJSON)
		if err := d.Send(&Text{S: big}); err != nil {
			t.Fatal(err)
		}
		d.Xfer()
		msg, err := c.Receive(testCtx(t, 5*time.Second))
		if err != nil || msg.Msg.(*Text).S != big {
			t.Fatalf("big message: %v", err)
		}
		if st := c.Stats(); st.BytesIn < 40000 || st.BytesIn > 40000+40000/1000+200 {
			t.Fatalf("BytesIn %d for a 40000-byte message", st.BytesIn)
		}
	})
}

// sendRetryT sends, waiting out backpressure.
func sendRetryT(m *Messenger, msg any) error {
	for {
		err := m.Send(msg)
		if !errors.Is(err, ErrBackpressure) {
			return err
		}
		m.Xfer()
		time.Sleep(100 * time.Microsecond)
	}
}

// hsPair runs a handshake between an initiator with cfgA and a responder
// with cfgB over a fresh connection of tc, and returns both outcomes.
func hsPair(t *testing.T, tc transportCase, cfgA, cfgB Config) (sa, sb session, errA, errB error) {
	t.Helper()
	tr, addr := tc.new()
	ca, cb := connPair(t, tr, addr)
	done := make(chan struct{})
	go func() {
		defer close(done)
		sb, errB = handshake(context.Background(), cb, cfgB.hello(), cfgB, hsOptions{keys: cfgB.Keyring.Derive(cfgB.Mesh)})
		if errB != nil {
			cb.Close()
		}
	}()
	sa, errA = handshake(context.Background(), ca, cfgA.hello(), cfgA, hsOptions{initiator: true, keys: cfgA.Keyring.Derive(cfgA.Mesh)})
	if errA != nil {
		ca.Close()
	}
	<-done
	return sa, sb, errA, errB
}

func TestKeyedRefusals(t *testing.T) {
	k1, k2 := testKey(1), testKey(2)
	eachTransport(t, func(t *testing.T, tc transportCase) {
		base := testConfig(t)
		other := base
		other.Mesh = "other"
		for _, c := range []struct {
			name       string
			a, b       Config
			wantA      error
			remoteA    bool
			wantB      error
			mentionsID bool
		}{
			{"keyed to unkeyed", keyed(base, k1), base, ErrUnkeyedPeer, false, ErrKeyRequired, false},
			{"unkeyed to keyed", base, keyed(base, k1), ErrKeyRequired, true, ErrUnkeyedPeer, false},
			{"wrong key", keyed(base, k1), keyed(base, k2), ErrWrongKey, true, ErrWrongKey, true},
			{"same key, other mesh", keyed(other, k1), keyed(base, k1), ErrWrongKey, true, ErrWrongKey, true},
		} {
			t.Run(c.name, func(t *testing.T) {
				_, _, errA, errB := hsPair(t, tc, c.a, c.b)
				ce := wantClose(t, errA, c.wantA, c.remoteA)
				if c.wantA == ErrKeyRequired && !strings.Contains(errA.Error(), "peer requires a mesh key") {
					t.Errorf("initiator's error %q does not say the peer requires a key", errA)
				}
				var cb *CloseError
				if !errors.As(errB, &cb) || !errors.Is(errB, c.wantB) {
					t.Fatalf("responder: %v, want %v", errB, c.wantB)
				}
				if c.mentionsID {
					id := c.a.Keyring.Primary.Derive(c.a.Mesh).ID.String()
					if !strings.Contains(ce.Reason, id) || !strings.Contains(cb.Reason, id) {
						t.Errorf("errors do not name key id %s: %q / %q", id, ce.Reason, cb.Reason)
					}
				}
			})
		}
		t.Run("accepted key", func(t *testing.T) {
			sa, sb, errA, errB := hsPair(t, tc, keyed(base, k2), keyed(base, k1, k2))
			if errA != nil || errB != nil {
				t.Fatalf("%v / %v", errA, errB)
			}
			if want := k2.Derive("test").ID; sa.keyID != want || sb.keyID != want {
				t.Fatalf("key ids %s %s, want %s", sa.keyID, sb.keyID, want)
			}
		})
	})
}

// TestKeyedDialListen checks the public API end to end: Dial to a keyed
// Listener with another key fails with ErrWrongKey, and the unkeyed
// handshake refuses keyed configs.
func TestKeyedDialListen(t *testing.T) {
	leaktest.Check(t)
	cfg := keyed(testConfig(t), testKey(1))
	ln, err := Listen(cfg, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	_, err = Dial(testCtx(t, 5*time.Second), keyed(testConfig(t), testKey(3)), ln.Addr().String())
	wantClose(t, err, ErrWrongKey, true)
	if _, err := handshakeUnkeyed(context.Background(), nil, cfg.hello(), cfg); !errors.Is(err, ErrConfig) {
		t.Fatalf("Handshake with a key: %v", err)
	}
}

var _ = bytes.Equal
var _ = io.EOF
var _ net.Conn
