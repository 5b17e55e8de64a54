package lane

import (
	"net"
	"net/netip"
	"runtime"
	"testing"
	"time"
)

var testNow = time.Unix(1000, 0)

// joined returns two lanes whose send functions deliver straight to each
// other, already Up, and the slices their messages land in.
func joined(t testing.TB, keyed bool) (a, b *Lane, gotA, gotB *[]Message, now *time.Time) {
	sa, sb := pair(t, keyed)
	clock := testNow
	ga, gb := make([]Message, 0, 64), make([]Message, 0, 64)
	var err error
	a, err = New(testConfig(), sa, func(p []byte) error {
		gb, err = b.Receive(p, netip.AddrPort{}, clock, gb[:0])
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	b, err = New(testConfig(), sb, func(p []byte) error {
		ga, err = a.Receive(p, netip.AddrPort{}, clock, ga[:0])
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 3 && (a.State() != Up || b.State() != Up); i++ {
		clock = clock.Add(time.Millisecond)
		a.Flush(clock)
		b.Flush(clock)
	}
	if a.State() != Up || b.State() != Up {
		t.Fatalf("lanes %v, %v; want up", a.State(), b.State())
	}
	return a, b, &ga, &gb, &clock
}

// In steady state (after the first use of each channel and queue slot) a
// lane's hot path does not allocate: Enqueue, Flush (packing and sealing),
// and Receive.
func TestNoAllocs(t *testing.T) {
	forBoth(t, func(t *testing.T, keyed bool) {
		a, b, _, gotB, now := joined(t, keyed)
		payload := make([]byte, 26)
		round := func() {
			for ch := byte(0); ch < 30; ch++ {
				a.Enqueue(Sequenced, ch, payload)
			}
			a.Enqueue(Unreliable, 0, payload)
			*now = now.Add(100 * time.Millisecond) // pings and pongs too
			if err := a.Flush(*now); err != nil {
				t.Fatal(err)
			}
			if err := b.Flush(*now); err != nil {
				t.Fatal(err)
			}
			if len(*gotB) != 31 {
				t.Fatalf("b got %d messages, want 31", len(*gotB))
			}
		}
		round()
		if n := testing.AllocsPerRun(100, round); n != 0 {
			t.Fatalf("%v allocs a round of 31 messages, want 0", n)
		}
	})
}

// TestEndpointReadDoesNotAllocate: the endpoint's reader takes a datagram
// with no allocation (here one that names no lane, the path every datagram
// starts on).
func TestEndpointReadDoesNotAllocate(t *testing.T) {
	lo := net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0"))
	rc, err := net.ListenUDP("udp4", lo)
	if err != nil {
		t.Fatal(err)
	}
	ep := NewEndpoint(rc)
	t.Cleanup(func() { ep.Close() })
	sc, err := net.ListenUDP("udp4", lo)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sc.Close() })
	to := rc.LocalAddr().(*net.UDPAddr).AddrPort()
	d := &Datagram{Header: Header{Token: tokB}, Messages: []Message{{Kind: Unreliable, Payload: []byte{1}}}}
	b, _ := d.AppendBinary(nil)
	deadline := time.Now().Add(10 * time.Second)
	one := func() {
		want := ep.Stats().Unknown + 1
		if _, err := sc.WriteToUDPAddrPort(b, to); err != nil {
			t.Fatal(err)
		}
		for ep.Stats().Unknown < want {
			if time.Now().After(deadline) {
				t.Fatal("the endpoint did not read the datagrams")
			}
			runtime.Gosched()
		}
	}
	one()
	if n := testing.AllocsPerRun(200, one); n != 0 {
		t.Errorf("%v allocs a datagram read", n)
	}
}
