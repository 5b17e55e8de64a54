package lane_test

import (
	"fmt"
	"net/netip"

	"github.com/lanmesh/lanmesh/lane"
)

// A Sender and a Receiver, the two halves of a lane, joined in memory. The
// link's handshake would have exchanged the tokens (and, keyed, given the
// secret). A Lane adds the pings that say whether UDP gets through.
func Example() {
	ta, _ := lane.NewToken()
	tb, _ := lane.NewToken()
	sa, _ := lane.NewSession(ta, tb, true, nil)
	sb, _ := lane.NewSession(tb, ta, false, nil)

	var wire [][]byte
	a, _ := lane.NewSender(lane.DefaultConfig(), sa, func(b []byte) error {
		wire = append(wire, append([]byte(nil), b...))
		return nil
	})
	b := lane.NewReceiver(sb)

	// Three position updates in one tick: only the newest is sent.
	for x := 1; x <= 3; x++ {
		a.Enqueue(lane.Sequenced, 0, []byte(fmt.Sprintf("x=%d", x)))
	}
	a.Enqueue(lane.Unreliable, 0, []byte("bang"))
	a.Flush()

	var msgs []lane.Message
	for _, d := range wire {
		msgs, _ = b.Open(d, netip.AddrPort{}, msgs)
	}
	for _, m := range msgs {
		fmt.Printf("%v channel %d seq %d: %s\n", m.Kind, m.Channel, m.Seq, m.Payload)
	}
	fmt.Println(len(wire), "datagram")
	// Output:
	// sequenced channel 0 seq 0: x=3
	// unreliable channel 0 seq 0: bang
	// 1 datagram
}
