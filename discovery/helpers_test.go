package discovery

import (
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"
)

// events collects a Discoverer's events for a test.
type events struct {
	ch chan Event
}

func newEvents() *events { return &events{ch: make(chan Event, 1024)} }

func (e *events) on(ev Event) {
	select {
	case e.ch <- ev:
	default:
		panic("test event buffer full")
	}
}

// waitFor returns the first event that matches, failing the test after
// timeout. Events that do not match are discarded.
func (e *events) waitFor(t testing.TB, timeout time.Duration, what string, match func(Event) bool) Event {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case ev := <-e.ch:
			if match(ev) {
				return ev
			}
		case <-deadline.C:
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
			return Event{}
		}
	}
}

// freeUDPPort returns a UDP port that was free on loopback a moment ago.
func freeUDPPort(t testing.TB) int {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	return c.LocalAddr().(*net.UDPAddr).Port
}

// resources counts goroutines and open sockets, to check that Close leaves
// nothing behind.
type resources struct{ goroutines, sockets int }

func countResources() resources {
	return resources{goroutines: runtime.NumGoroutine(), sockets: countSockets()}
}

func countSockets() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return 0 // not Linux: goroutines are still checked
	}
	n := 0
	for _, e := range ents {
		if l, err := os.Readlink("/proc/self/fd/" + e.Name()); err == nil && strings.HasPrefix(l, "socket:") {
			n++
		}
	}
	return n
}

// checkNoLeak waits, bounded, until goroutines and sockets are back to
// the counts taken before the test started its Discoverers.
func checkNoLeak(t testing.TB, before resources) {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	var now resources
	for time.Now().Before(deadline) {
		now = countResources()
		if now.goroutines <= before.goroutines && now.sockets <= before.sockets {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	buf := make([]byte, 1<<20)
	buf = buf[:runtime.Stack(buf, true)]
	t.Fatalf("leak after Close: goroutines %d (before %d), sockets %d (before %d)\n%s",
		now.goroutines, before.goroutines, now.sockets, before.sockets, buf)
}
