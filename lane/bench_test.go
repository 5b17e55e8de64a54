package lane

import (
	"fmt"
	"net/netip"
	"testing"
	"time"
)

// BenchmarkEnqueueFlush: one tick of a game, 40 objects' 24-byte positions
// (26-byte binary frames) on sequenced channels, packed (two datagrams) and
// sent.
func BenchmarkEnqueueFlush(b *testing.B) {
	for _, keyed := range []bool{false, true} {
		b.Run(fmt.Sprintf("keyed=%v", keyed), func(b *testing.B) {
			sa, _ := pair(b, keyed)
			n := 0
			s, _ := NewSender(testConfig(), sa, func(p []byte) error { n += len(p); return nil })
			payload := make([]byte, 26)
			b.ReportAllocs()
			for b.Loop() {
				for ch := byte(0); ch < 40; ch++ {
					s.Enqueue(Sequenced, ch, payload)
				}
				s.Flush()
			}
			if n == 0 {
				b.Fatal("nothing sent")
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*40), "ns/msg")
		})
	}
}

// BenchmarkReceive: opening one datagram of 30 positions (34 bytes an item:
// 30 fill 1038 bytes of 1200).
func BenchmarkReceive(b *testing.B) {
	for _, keyed := range []bool{false, true} {
		b.Run(fmt.Sprintf("keyed=%v", keyed), func(b *testing.B) {
			sa, sb := pair(b, keyed)
			var dgrams [][]byte
			c := &capture{}
			s, _ := NewSender(testConfig(), sa, c.send)
			payload := make([]byte, 26)
			for i := 0; i < 4096; i++ {
				for ch := byte(0); ch < 30; ch++ {
					s.Enqueue(Sequenced, ch, payload)
				}
				s.Flush()
			}
			dgrams = c.take()
			buf := make([]byte, 0, DefaultMTU)
			out := make([]Message, 0, 64)
			b.SetBytes(int64(len(dgrams[0])))
			b.ReportAllocs()
			i := 0
			var r *Lane
			for b.Loop() {
				if i%len(dgrams) == 0 {
					r, _ = New(testConfig(), sb, func([]byte) error { return nil })
				}
				buf = append(buf[:0], dgrams[i%len(dgrams)]...)
				i++
				var err error
				if out, err = r.Receive(buf, netip.AddrPort{}, testNow, out[:0]); err != nil || len(out) != 30 {
					b.Fatal(err, len(out))
				}
			}
		})
	}
}

// BenchmarkLaneRoundTrip: a tick through two joined lanes, sender to
// receiver in memory: 30 positions enqueued, flushed, opened, delivered.
func BenchmarkLaneRoundTrip(b *testing.B) {
	for _, keyed := range []bool{false, true} {
		b.Run(fmt.Sprintf("keyed=%v", keyed), func(b *testing.B) {
			a, peer, _, gotB, now := joined(b, keyed)
			payload := make([]byte, 26)
			b.ReportAllocs()
			for b.Loop() {
				for ch := byte(0); ch < 30; ch++ {
					a.Enqueue(Sequenced, ch, payload)
				}
				*now = now.Add(time.Millisecond)
				a.Flush(*now)
				if len(*gotB) != 30 {
					b.Fatal(len(*gotB))
				}
				peer.Flush(*now) // its pongs keep a's lane up
			}
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N*30), "ns/msg")
		})
	}
}
