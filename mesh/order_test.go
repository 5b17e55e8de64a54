package mesh

import (
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
)

// orderCheck follows one node's stream and checks that each peer's
// PeerJoined comes before its first message and its PeerLeft after its
// last. It is fed from one goroutine at a time, as each form delivers.
type orderCheck struct {
	mu     sync.Mutex
	joined map[uuid.UUID]bool
	left   map[uuid.UUID]bool
	msgs   map[uuid.UUID]int
	bad    []string
}

func newOrderCheck() *orderCheck {
	return &orderCheck{joined: map[uuid.UUID]bool{}, left: map[uuid.UUID]bool{}, msgs: map[uuid.UUID]int{}}
}

func (c *orderCheck) event(ev PeerEvent) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch ev.Kind {
	case PeerJoined, PeerRestarted:
		c.joined[ev.Peer.ID], c.left[ev.Peer.ID] = true, false
	case PeerLeft:
		c.left[ev.Peer.ID] = true
	}
}

func (c *orderCheck) message(m Message) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case !c.joined[m.From]:
		c.bad = append(c.bad, "a message from "+m.FromName+" before its PeerJoined")
	case c.left[m.From]:
		c.bad = append(c.bad, "a message from "+m.FromName+" after its PeerLeft")
	}
	c.msgs[m.From]++
}

func (c *orderCheck) item(m Message) {
	if ev, ok := m.Msg.(*PeerEvent); ok {
		c.event(*ev)
		return
	}
	c.message(m)
}

func (c *orderCheck) count(id uuid.UUID) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.msgs[id]
}

func (c *orderCheck) hasLeft(id uuid.UUID) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.left[id]
}

func (c *orderCheck) check(t *testing.T) {
	t.Helper()
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.bad) > 0 {
		t.Fatalf("%d out of order, the first: %s", len(c.bad), c.bad[0])
	}
}

// orderRun starts a receiving node (adjusted by cfg) and a sender that
// dials it and sends at once, as fast as it can, then leaves: the sender's
// first messages race its PeerJoined, its last ones its PeerLeft. It
// returns the receiver, the sender's id, and how many the sender sent.
func orderRun(t *testing.T, adjust func(c *NodeConfig)) (*Node, uuid.UUID, int) {
	t.Helper()
	leaktest.Check(t)
	mem := NewMemNetwork()
	nodes := startNodes(t, nodeNet{name: "mem", mem: mem}, 2, func(i int, c *NodeConfig) {
		c.Net.Peers = nil
		c.Link.AutoFlush = true
		if i == 0 && adjust != nil {
			adjust(c)
		}
		if i == 1 {
			c.Net.Peers = []string{"node0:1"}
		}
	})
	rx, tx := nodes[0], nodes[1]
	sent := 0
	deadline := time.Now().Add(5 * time.Second)
	for sent < 200 && time.Now().Before(deadline) {
		if err := tx.Send(rx.ID(), &Msg32{Seq: uint64(sent)}); err == nil {
			sent++
		} else if !errors.Is(err, ErrNoPeer) && !errors.Is(err, ErrBackpressure) {
			t.Fatal(err)
		}
	}
	if sent == 0 {
		t.Fatal("the sender never linked")
	}
	tx.Xfer()
	tx.CloseReason("done")
	return rx, tx.ID(), sent
}

func TestOrderPump(t *testing.T) {
	rx, from, sent := orderRun(t, nil)
	c := newOrderCheck()
	deadline := time.Now().Add(10 * time.Second)
	for !c.hasLeft(from) { // a game loop: Get until false, once per frame
		if time.Now().After(deadline) {
			t.Fatalf("no PeerLeft; %d of %d messages", c.count(from), sent)
		}
		for m, ok := rx.Get(); ok; m, ok = rx.Get() {
			c.item(m)
		}
		time.Sleep(time.Millisecond) // the frame
	}
	c.check(t)
	if got := c.count(from); got != sent {
		t.Fatalf("got %d of %d messages before PeerLeft", got, sent)
	}
}

func TestOrderReceive(t *testing.T) {
	rx, from, sent := orderRun(t, nil)
	c := newOrderCheck()
	ctx := testCtx(t, 10*time.Second)
	for !c.hasLeft(from) {
		m, err := rx.Receive(ctx)
		if err != nil {
			t.Fatalf("%v; %d of %d messages", err, c.count(from), sent)
		}
		c.item(m)
	}
	c.check(t)
	if got := c.count(from); got != sent {
		t.Fatalf("got %d of %d messages before PeerLeft", got, sent)
	}
}

func TestOrderCallbacks(t *testing.T) {
	c := newOrderCheck()
	var dispatcher sync.Mutex // held by whoever runs a callback: never two at once
	rx, from, sent := orderRun(t, func(cfg *NodeConfig) {
		cfg.OnPeer = func(ev PeerEvent) {
			if !dispatcher.TryLock() {
				t.Error("OnPeer runs beside another callback")
				return
			}
			defer dispatcher.Unlock()
			c.event(ev)
		}
		cfg.OnMessage = func(m Message) {
			if !dispatcher.TryLock() {
				t.Error("OnMessage runs beside another callback")
				return
			}
			defer dispatcher.Unlock()
			c.message(m)
		}
	})
	waitUntil(t, 10*time.Second, "the sender's PeerLeft", func() bool { return c.hasLeft(from) })
	c.check(t)
	if got := c.count(from); got != sent {
		t.Fatalf("got %d of %d messages before PeerLeft", got, sent)
	}
	if _, ok := rx.Get(); ok {
		t.Fatal("Get returned an item the callbacks took")
	}
}

// TestOrderOnPeerWithGet: with OnPeer alone, messages stay for Get, and a
// peer's OnPeer(PeerJoined) has returned before Get returns its first
// message.
func TestOrderOnPeerWithGet(t *testing.T) {
	c := newOrderCheck()
	rx, from, sent := orderRun(t, func(cfg *NodeConfig) {
		cfg.OnPeer = c.event
	})
	ctx := testCtx(t, 10*time.Second)
	for c.count(from) < sent {
		m, err := rx.Receive(ctx)
		if err != nil {
			t.Fatalf("%v; %d of %d messages", err, c.count(from), sent)
		}
		if _, ok := m.Msg.(*PeerEvent); ok {
			t.Fatal("Get returned a peer event OnPeer took")
		}
		c.mu.Lock()
		if !c.joined[m.From] {
			c.bad = append(c.bad, "a message before OnPeer saw PeerJoined")
		}
		c.msgs[m.From]++
		c.mu.Unlock()
	}
	c.check(t)
}

// TestCloseFromCallbacks: Close called from inside OnPeer or OnMessage
// closes the node without deadlock; it returns with the node closed, and
// the dispatcher ends once the callback returns.
func TestCloseFromCallbacks(t *testing.T) {
	for _, where := range []string{"OnPeer", "OnMessage"} {
		t.Run(where, func(t *testing.T) {
			leaktest.Check(t)
			closed := make(chan error, 1)
			var n *Node
			var once sync.Once
			closeNow := func() {
				once.Do(func() {
					closed <- n.CloseReason("closed from " + where)
				})
			}
			ready := make(chan struct{})
			nodes := startNodes(t, nodeNet{name: "mem", mem: NewMemNetwork()}, 2, func(i int, c *NodeConfig) {
				c.Net.Peers = nil
				if i == 1 {
					c.Net.Peers = []string{"node0:1"}
					return
				}
				if where == "OnPeer" {
					c.OnPeer = func(ev PeerEvent) {
						<-ready
						closeNow()
					}
				} else {
					c.OnMessage = func(m Message) {
						<-ready
						closeNow()
					}
				}
			})
			n = nodes[0]
			close(ready)
			peer := nodes[1]
			if where == "OnMessage" {
				waitUntil(t, 5*time.Second, "a link", func() bool { return len(linkedPeers(peer)) == 1 })
				if err := peer.Send(n.ID(), &Msg32{}); err != nil {
					t.Fatal(err)
				}
				peer.Xfer()
			}
			select {
			case err := <-closed:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(10 * time.Second):
				t.Fatalf("Close from %s did not return", where)
			}
			if err := n.Xfer(); !errors.Is(err, ErrNodeClosed) {
				t.Fatalf("Xfer after Close = %v", err)
			}
			// The dispatcher ends on its own once the callback returned.
			select {
			case <-n.outDone:
			case <-time.After(5 * time.Second):
				t.Fatal("the dispatcher did not end")
			}
			// The peer saw the reason.
			ctx := testCtx(t, 5*time.Second)
			for {
				ev, err := nextEvent(ctx, peer)
				if err != nil {
					t.Fatal(err)
				}
				if ev.Kind == PeerLeft {
					var ce *CloseError
					if !errors.As(ev.Err, &ce) || ce.Reason != "closed from "+where {
						t.Fatalf("the peer saw %v", ev.Err)
					}
					break
				}
			}
		})
	}
}

// TestEventsBounded: past Limits.Events waiting, the node waits rather
// than drops: a peer that joins while the program takes nothing is linked
// (and reported) only once the program takes the events before it.
func TestEventsBounded(t *testing.T) {
	mem := NewMemNetwork()
	nodes := startNodes(t, nodeNet{name: "mem", mem: mem}, 3, func(i int, c *NodeConfig) {
		c.Net.Peers = nil
		c.Limits.Events = 1
	})
	rx := nodes[0]
	ctx := testCtx(t, 10*time.Second)
	if _, err := nodes[1].Connect(ctx, rx.Addrs()[0].String()); err != nil {
		t.Fatal(err)
	}
	waitUntil(t, 5*time.Second, "the first event", func() bool { return rx.evGate.count.Load() == 1 })
	// The second peer's link waits for room: not attached yet.
	second := make(chan error, 1)
	go func() {
		_, err := nodes[2].Connect(ctx, rx.Addrs()[0].String())
		second <- err
	}()
	waitUntil(t, 5*time.Second, "the second link at the gate", func() bool {
		rx.evGate.mu.Lock()
		defer rx.evGate.mu.Unlock()
		return rx.inbox.len() == 1
	})
	if got := len(linkedPeers(rx)); got != 1 {
		t.Fatalf("%d peers linked past the event bound", got)
	}
	// Taking the first event lets the second peer in.
	if ev, err := nextEvent(ctx, rx); err != nil || ev.Kind != PeerJoined {
		t.Fatalf("first event %v, %v", ev, err)
	}
	if ev, err := nextEvent(ctx, rx); err != nil || ev.Kind != PeerJoined {
		t.Fatalf("second event %v, %v", ev, err)
	}
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	// Close lifts the bound: every PeerLeft arrives, none is dropped.
	rx.Close()
	left := 0
	for {
		ev, err := nextEvent(ctx, rx)
		if errors.Is(err, ErrNodeClosed) {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if ev.Kind == PeerLeft {
			left++
		}
	}
	if left != 2 {
		t.Fatalf("%d PeerLeft after Close, want 2", left)
	}
}

// TestNewNodeFailsWithCallbacks: a node that cannot start returns its
// error, its dispatcher joined (not left waiting).
func TestNewNodeFailsWithCallbacks(t *testing.T) {
	leaktest.Check(t)
	mem := NewMemNetwork()
	held, err := mem.Listen("taken:1")
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	cfg := DefaultNodeConfig()
	setTestConfig(&cfg, t)
	cfg.Link.Transport = mem
	cfg.Net.Listen = []string{"taken:1"}
	cfg.Discovery.Off = true
	cfg.OnPeer = func(PeerEvent) {}
	if n, err := NewNode(cfg); err == nil {
		n.Close()
		t.Fatal("NewNode listened on a taken address")
	}
}

// TestCloseTwiceWithCallback: a Close from a callback while the program's
// own Close waits for the dispatcher does not deadlock.
func TestCloseTwiceWithCallback(t *testing.T) {
	leaktest.Check(t)
	var n *Node
	entered := make(chan struct{})
	proceed := make(chan struct{})
	var once sync.Once
	nodes := startNodes(t, nodeNet{name: "mem", mem: NewMemNetwork()}, 2, func(i int, c *NodeConfig) {
		c.Net.Peers = nil
		if i == 1 {
			c.Net.Peers = []string{"node0:1"}
			return
		}
		c.OnPeer = func(ev PeerEvent) {
			if ev.Kind != PeerLeft {
				return
			}
			once.Do(func() { close(entered) })
			<-proceed
			n.Close() // the program's Close is under way
		}
	})
	n = nodes[0]
	waitUntil(t, 5*time.Second, "a link", func() bool { return len(linkedPeers(n)) == 1 })
	done := make(chan struct{})
	go func() {
		n.Close()
		close(done)
	}()
	<-entered
	close(proceed)
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("Close from a callback during Close deadlocked")
	}
}
