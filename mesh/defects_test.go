package mesh

import (
	"context"
	"testing"
	"time"
)

// TestNodeInboxTwoLinks: two peers fill a small inbox (ReceiveQueueLimit 4)
// with 6 messages each; the program, draining Get, receives all 12.
func TestNodeInboxTwoLinks(t *testing.T) {
	nodes := startNodes(t, nodeNet{name: "mem", mem: NewMemNetwork()}, 3, func(i int, c *NodeConfig) {
		c.ReceiveQueueLimit = 4
	})
	fullMesh(t, nodes)
	dst := nodes[0]
	for _, src := range nodes[1:] {
		for i := range 6 {
			if err := src.Send(dst.ID(), &Msg32{Seq: uint64(i)}); err != nil {
				t.Fatal(err)
			}
		}
		src.Xfer()
	}
	// Both links have handed their 6 to the inbox, which holds 4: the other
	// 8 wait in two blocked pushes. Only now does the program drain.
	waitUntil(t, 5*time.Second, "both links blocked on the full inbox", func() bool {
		in := uint64(0)
		for _, p := range linkedPeers(dst) {
			in += p.Link.MsgsIn
		}
		return in == 12 && dst.inbox.len() == 4
	})
	got := 0
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for got < 12 {
		m, err := dst.Receive(ctx)
		if err != nil {
			t.Fatalf("received %d of 12 messages: %v", got, err)
		}
		if _, ok := m.Msg.(*Msg32); ok {
			got++
		}
	}
}
