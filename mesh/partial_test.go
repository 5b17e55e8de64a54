package mesh

import (
	"encoding/binary"
	"net"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
)

// rawLinkFrom handshakes with the node at addr from src and returns the
// conn, for a test to write what it likes.
func rawLinkFrom(t *testing.T, cfg Config, addr string, src net.IP) net.Conn {
	t.Helper()
	conn, err := fromTransport(src).Dial(testCtx(t, 5*time.Second), addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	cfg.NodeID = DefaultConfig().NodeID
	if _, err := handshake(testCtx(t, 5*time.Second), conn, cfg.hello(), cfg, hsOptions{initiator: true}); err != nil {
		t.Fatal(err)
	}
	return conn
}

// msgpackHeader4 is a msgpack frame's header claiming n body bytes.
func msgpackHeader4(n int) []byte { return binary.BigEndian.AppendUint32(nil, uint32(n)) }

func heapInUse() uint64 {
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	return ms.HeapAlloc
}

// 40 links each holding a nearly complete 1 MiB msgpack frame pin at most
// PartialFrameBudget: the links past it are closed. (Before the budget,
// every one of them held its megabyte, and more: its buffer.)
func TestPartialFramesWithinBudget(t *testing.T) {
	leaktest.Check(t)
	const budget = 8 << 20
	const links = 40
	v := victimNode(t, func(c *NodeConfig) {
		c.Codec = "msgpack"
		c.Link.Accept.PartialFrameBudget = budget
		c.Link.Accept.PartialFrameTimeout = time.Minute
		c.Link.Silence = time.Minute // the raw peers answer no pings
		c.Link.PingInterval = 10 * time.Second
	})
	cfg := testConfig(t)
	cfg.Codec = "msgpack"
	before := heapInUse()
	body := make([]byte, 1<<20-1) // one frame's bytes, shared by every writer
	var wg sync.WaitGroup
	for i := range links {
		conn := rawLinkFrom(t, cfg, v.Addrs()[0].String(), loopbackSource(17, 1+i))
		wg.Go(func() {
			conn.SetWriteDeadline(time.Now().Add(20 * time.Second))
			if _, err := conn.Write(msgpackHeader4(1 << 20)); err == nil {
				conn.Write(body) // fails once the node closes the link
			}
		})
	}
	// Each link ends either closed over the budget or holding its whole
	// partial frame: the header and all but one byte of the body.
	const full = 4 + 1<<20 - 1
	waitUntil(t, 20*time.Second, "every link closed or holding its frame", func() bool {
		st := v.Stats()
		held := len(linkedPeers(v))
		return st.PartialFrameOverBudget+uint64(held) == links && st.PartialFrameBytes == int64(held)*full
	})
	peak := v.budget.peak.Load()
	after := heapInUse()
	st := v.Stats()
	held := len(linkedPeers(v))
	t.Logf("%d links with a 1 MiB partial frame: %d held (%d bytes charged), %d closed over the budget of %d; peak charged %d; heap %d -> %d (+%.1f MiB)",
		links, held, st.PartialFrameBytes, st.PartialFrameOverBudget, budget, peak, before, after, float64(int64(after)-int64(before))/(1<<20))
	if peak > budget || st.PartialFrameBytes > budget {
		t.Errorf("charged %d at peak, %d now: over the budget %d", peak, st.PartialFrameBytes, budget)
	}
	if held > budget/full || held == 0 {
		t.Errorf("%d links hold a frame; at most %d fit", held, budget/full)
	}
	// The heap holds the budget and the links' own small buffers, not 40
	// MiB of frames.
	if grown := int64(after) - int64(before); grown > budget+8<<20 {
		t.Errorf("the heap grew by %d bytes, over the budget %d and 8 MiB for the links", grown, budget)
	}
	v.Close() // ends the writers still blocked on links that hold
	wg.Wait()
}

// A frame above PartialFrameFree that keeps arriving, but too slowly to be
// whole within PartialFrameTimeout, closes its link; the silence check
// alone would never fire, since bytes keep coming.
func TestPartialFrameStalls(t *testing.T) {
	leaktest.Check(t)
	v := victimNode(t, func(c *NodeConfig) {
		c.Codec = "msgpack"
		c.Link.Accept.PartialFrameTimeout = 500 * time.Millisecond
	})
	cfg := testConfig(t)
	cfg.Codec = "msgpack"
	conn := rawLinkFrom(t, cfg, v.Addrs()[0].String(), loopbackSource(18, 1))
	if _, err := conn.Write(append(msgpackHeader4(200<<10), make([]byte, 100<<10)...)); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		// One byte every 50 ms, far inside Silence, for at most 10 s.
		for range 200 {
			if _, err := conn.Write([]byte{0}); err != nil {
				return
			}
			time.Sleep(50 * time.Millisecond)
		}
	}()
	waitUntil(t, 10*time.Second, "the stalled frame's link closed", func() bool { return v.Stats().PartialFrameStalled == 1 })
	waitUntil(t, 10*time.Second, "the link gone", func() bool { return len(linkedPeers(v)) == 0 })
	conn.Close()
	<-done
	if st := v.Stats(); st.PartialFrameBytes != 0 || st.PartialFrameOverBudget != 0 {
		t.Errorf("after the close: %d bytes charged, %d over budget", st.PartialFrameBytes, st.PartialFrameOverBudget)
	}
}

// A large frame that arrives whole is delivered, and its buffer is given
// back to the budget once the link's decoder holds nothing.
func TestPartialFrameBufferGivenBack(t *testing.T) {
	leaktest.Check(t)
	v := victimNode(t, func(c *NodeConfig) { c.Codec = "msgpack" })
	cfg := testConfig(t)
	cfg.Codec = "msgpack"
	cfg.Link.Transport = fromTransport(loopbackSource(19, 1))
	m, err := Dial(testCtx(t, 5*time.Second), cfg, v.Addrs()[0].String())
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	big := strings.Repeat("x", 300<<10)
	for range 3 {
		if err := m.Send(&Text{S: big}); err != nil {
			t.Fatal(err)
		}
		m.Xfer()
		got := recv(t, v)
		if s, ok := got.Msg.(*Text); !ok || len(s.S) != len(big) {
			t.Fatalf("got %T", got.Msg)
		}
		waitUntil(t, 5*time.Second, "the buffer given back", func() bool { return v.Stats().PartialFrameBytes == 0 })
	}
	if peak := v.budget.peak.Load(); peak == 0 || peak > 1<<20 {
		t.Errorf("peak charged %d, want above 0 and at most 1 MiB for a 300 KiB frame", peak)
	}
}
