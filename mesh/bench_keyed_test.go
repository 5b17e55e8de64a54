package mesh

import (
	"context"
	"testing"

	"github.com/google/uuid"
)

// The keyed benchmarks sit beside the unkeyed ones (bench_test.go):
//
//	go test -run '^$' -bench 'Throughput32|RTT32|Handshake|WrongKey' -benchtime 2s -count 3 ./mesh/

func keyedBenchConfig(b *testing.B) Config { return keyed(benchConfig(b), testKey(1)) }

func BenchmarkThroughput32Keyed(b *testing.B) {
	b.Run("unkeyed", func(b *testing.B) { benchThroughput(b, tcpCase, benchConfig(b)) })
	b.Run("keyed", func(b *testing.B) { benchThroughput(b, tcpCase, keyedBenchConfig(b)) })
}

func BenchmarkRTT32Keyed(b *testing.B) {
	b.Run("unkeyed", func(b *testing.B) { benchRTT(b, benchConfig(b)) })
	b.Run("keyed", func(b *testing.B) { benchRTT(b, keyedBenchConfig(b)) })
}

// BenchmarkHandshake runs whole handshakes, both sides, over the memory
// network: the CPU cost of opening a link, without the kernel.
func BenchmarkHandshake(b *testing.B) {
	for _, c := range []struct {
		name string
		cfg  Config
	}{{"unkeyed", benchConfig(b)}, {"keyed", keyedBenchConfig(b)}} {
		b.Run(c.name, func(b *testing.B) {
			keys := c.cfg.Keyring.Derive(c.cfg.Mesh)
			peer := c.cfg
			peer.NodeID = uuid.New()
			mem := NewMemNetwork()
			ln, err := mem.Listen("h:1")
			if err != nil {
				b.Fatal(err)
			}
			defer ln.Close()
			b.ReportAllocs()
			for range b.N {
				x, err := mem.Dial(context.Background(), "h:1")
				if err != nil {
					b.Fatal(err)
				}
				y, err := ln.Accept()
				if err != nil {
					b.Fatal(err)
				}
				errc := make(chan error, 1)
				go func() {
					_, err := handshake(context.Background(), y, peer.hello(), peer, hsOptions{keys: keys})
					errc <- err
				}()
				_, err = handshake(context.Background(), x, c.cfg.hello(), c.cfg, hsOptions{initiator: true, keys: keys})
				if err != nil || <-errc != nil {
					b.Fatal(err)
				}
				x.Close()
				y.Close()
			}
		})
	}
}

// BenchmarkWrongKeyReject measures what a responder spends on a first
// message under a key it does not hold: the preamble names a key id it
// knows (the worst case: an unknown id is refused sooner), but message 1
// was made with another PSK, so its payload fails to open. No
// Diffie-Hellman is computed.
func BenchmarkWrongKeyReject(b *testing.B) {
	good := keyedBenchConfig(b)
	keys := good.Keyring.Derive(good.Mesh)
	// Message 1 made under another PSK, with the responder's key id.
	wrong := keyed(benchConfig(b), testKey(9)).Keyring.Derive(good.Mesh).Primary()
	id := keys.Primary().ID
	pre := appendPreamble(nil, suiteNoise, id)
	hs, err := newNoise(hsOptions{}, true, wrong.PSK, pre, good.Mesh)
	if err != nil {
		b.Fatal(err)
	}
	hello, _ := good.hello().appendFrame(nil)
	msg1, _, _, err := hs.WriteMessage(nil, hello)
	if err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.ResetTimer()
	for range b.N {
		d, ok := keys.Lookup(id)
		if !ok {
			b.Fatal("id not found")
		}
		r, err := newNoise(hsOptions{}, false, d.PSK, pre, good.Mesh)
		if err != nil {
			b.Fatal(err)
		}
		if _, _, _, err := r.ReadMessage(nil, msg1); err == nil {
			b.Fatal("a wrong key opened")
		}
	}
}

// BenchmarkSeal compares a 32-byte frame sealed alone with 64 frames sealed
// as one record.
func BenchmarkSeal(b *testing.B) {
	var key [32]byte
	for _, n := range []int{1, 64} {
		b.Run(map[int]string{1: "1frame", 64: "64frames"}[n], func(b *testing.B) {
			c := newRecordCipher(key, 0)
			plain := frames(0, n)
			buf := make([]byte, 0, 4096)
			b.SetBytes(int64(len(plain)))
			b.ReportAllocs()
			for range b.N {
				buf, _ = c.seal(buf[:0], plain)
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*n), "ns/frame")
		})
	}
}
