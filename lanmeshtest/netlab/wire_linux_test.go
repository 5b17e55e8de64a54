//go:build linux

package netlab

import (
	"io"
	"net"
	"net/netip"
	"os/exec"
	"testing"
	"time"
)

// pair opens a TCP connection from a to b across the wire.
func wirePair(t *testing.T, w *Wire) (client, server net.Conn) {
	t.Helper()
	var ln net.Listener
	if err := w.B.Do(func() (err error) {
		ln, err = net.Listen("tcp", netip.AddrPortFrom(w.AddrB, 0).String())
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	if err := w.A.Do(func() (err error) {
		client, err = net.DialTimeout("tcp", ln.Addr().String(), 5*time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// TestWireDelay checks that a round trip across a wire takes at least twice
// its one-way delay, and that the hosts' LAN stays undelayed beside it.
func TestWireDelay(t *testing.T) {
	lab := New(t, 2)
	w, err := lab.NewWire(lab.Hosts[0], lab.Hosts[1], Impairment{Delay: 5 * time.Millisecond, Jitter: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	c, s := wirePair(t, w)
	go io.Copy(s, s) // echo
	buf := make([]byte, 1)
	minRTT := time.Hour
	for range 10 {
		start := time.Now()
		if _, err := c.Write([]byte{1}); err != nil {
			t.Fatal(err)
		}
		if _, err := io.ReadFull(c, buf); err != nil {
			t.Fatal(err)
		}
		minRTT = min(minRTT, time.Since(start))
	}
	// Jitter is ±1 ms each way around 5 ms: never under 8 ms.
	if minRTT < 8*time.Millisecond {
		t.Errorf("fastest round trip %v across a wire with 5 ms each way", minRTT)
	}
	if st := w.Stats(); st.Passed < 20 {
		t.Errorf("stats %+v: want at least the 20 echo frames", st)
	}
	t.Logf("round trip across the wire: min %v", minRTT)
}

// TestWireLossAndRate sends datagrams across a lossy wire, then a
// rate-limited one, and checks that the counters account for what did not
// arrive.
func TestWireLossAndRate(t *testing.T) {
	lab := New(t, 2)
	w, err := lab.NewWire(lab.Hosts[0], lab.Hosts[1], Impairment{})
	if err != nil {
		t.Fatal(err)
	}
	var rx, tx *net.UDPConn
	if err := w.B.Do(func() (err error) {
		rx, err = net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(w.AddrB, 0)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	rx.SetReadBuffer(4 << 20)
	if err := w.A.Do(func() (err error) {
		tx, err = net.DialUDP("udp4", nil, rx.LocalAddr().(*net.UDPAddr))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer tx.Close()

	// count sends n datagrams of size bytes (pausing each 50, and reading
	// as they come, so that nothing but the wire drops them) and counts
	// what arrives.
	count := func(n, size int) int {
		got := make(chan int)
		go func() {
			c := 0
			buf := make([]byte, 2048)
			for {
				rx.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
				if _, err := rx.Read(buf); err != nil {
					got <- c
					return
				}
				c++
			}
		}()
		msg := make([]byte, size)
		for i := range n {
			if _, err := tx.Write(msg); err != nil {
				t.Error(err)
				break
			}
			if i%50 == 49 {
				time.Sleep(time.Millisecond)
			}
		}
		return <-got
	}
	if got := count(200, 100); got != 200 {
		t.Fatalf("a clean wire delivered %d of 200", got)
	}

	w.Set(Impairment{Loss: 0.2, Burst: 4})
	before := w.Stats()
	got := count(2000, 100)
	lost := w.Stats().Lost - before.Lost
	if got == 2000 || lost == 0 || uint64(got)+lost < 2000 {
		t.Errorf("20%% loss: %d of 2000 arrived, %d frames counted lost", got, lost)
	}
	t.Logf("20%% loss in bursts of 4: %d of 2000 arrived", got)

	w.Set(Impairment{Rate: 1_000_000, QueueBytes: 16 << 10})
	before = w.Stats()
	got = count(500, 1000) // 4 Mbit offered in about 10 ms
	over := w.Stats().Overrun - before.Overrun
	// A few frames may be dropped before the wire sees them (the TAP
	// device's own queue, on a loaded machine: CI saw 18 + 480 of 500).
	if got == 500 || over == 0 || uint64(got)+over < 490 {
		t.Errorf("1 Mbit/s: %d of 500 arrived, %d frames counted as overrun", got, over)
	}
	t.Logf("1 Mbit/s with a 16 KiB queue: %d of 500 arrived", got)

	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if lowerUp(w.A.NS, w.IfaceA) {
		t.Errorf("%s still up after Close", w.IfaceA)
	}
}

// TestDropPercent checks the nftables loss rule: installed, then removed.
func TestDropPercent(t *testing.T) {
	if _, err := exec.LookPath("nft"); err != nil {
		t.Skip("skipping: nft (nftables) is not installed")
	}
	lab := New(t, 2)
	h := lab.Hosts[0]
	if err := h.DropPercent(100, 0); err != nil {
		t.Fatal(err)
	}
	var c *net.UDPConn
	if err := h.Do(func() (err error) {
		c, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(lab.Hosts[1].Addr, 9)))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("x")); err == nil {
		t.Errorf("a send through a 100%% drop rule succeeded")
	}
	if err := h.DropPercent(0, 0); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("x")); err != nil {
		t.Errorf("send after the rule was removed: %v", err)
	}
}
