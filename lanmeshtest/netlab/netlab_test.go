//go:build linux

package netlab

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
)

// The test entry points take *testing.T and *testing.B.
var (
	_ TB = (*testing.T)(nil)
	_ TB = (*testing.B)(nil)
)

// TestHelperProcess is the child side of the helper tests.
func TestHelperProcess(t *testing.T) {
	switch HelperRole() {
	case "":
		return
	case "udp-listen":
		// Print every datagram heard on port 9999 until killed.
		c, err := net.ListenUDP("udp4", &net.UDPAddr{Port: 9999})
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		host, _ := os.Hostname()
		fmt.Printf("ready %s\n", host)
		buf := make([]byte, 512)
		for {
			n, from, err := c.ReadFromUDP(buf)
			if err != nil {
				os.Exit(1)
			}
			fmt.Printf("got %s from %s\n", buf[:n], from.IP)
		}
	case "udp-broadcast":
		// Broadcast a few datagrams (a link may drop the first), then exit.
		c, err := net.ListenUDP("udp4", nil)
		if err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
		for range 5 {
			if _, err := c.WriteToUDP([]byte(os.Getenv("PAYLOAD")), &net.UDPAddr{IP: net.IPv4bcast, Port: 9999}); err != nil {
				fmt.Fprintln(os.Stderr, err)
				os.Exit(1)
			}
			time.Sleep(20 * time.Millisecond)
		}
		fmt.Println("sent")
		os.Exit(0)
	}
}

func namespaces(t *testing.T) string {
	t.Helper()
	out, err := ipOut("netns", "list")
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func TestLabBuildsAndRemoves(t *testing.T) {
	if err := Available(); err != nil {
		t.Skip(err)
	}
	// A namespace left by a run whose process is gone (pid 0 never is).
	stale := namePrefix + "0-1-h1"
	if err := ipCmd("netns", "add", stale); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = ipCmd("netns", "del", stale) })

	var names []string
	t.Run("lab", func(t *testing.T) {
		lab := New(t, 3)
		if strings.Contains(namespaces(t), stale) {
			t.Error("stale namespace not removed")
		}
		if len(lab.Hosts) != 3 {
			t.Fatalf("%d hosts", len(lab.Hosts))
		}
		names = append(names, lab.Bridge)
		for i, h := range lab.Hosts {
			names = append(names, h.NS)
			if !lab.Subnet.Contains(h.Addr) || h.Addr == lab.Gate {
				t.Errorf("host %d address %v not in %v", i, h.Addr, lab.Subnet)
			}
			if !operUp(h.NS, h.Iface) {
				t.Errorf("%s: %s not up", h.Name, h.Iface)
			}
			out, err := ipOut("-n", h.NS, "route", "show", "default")
			if err != nil || !strings.Contains(out, lab.Gate.String()) {
				t.Errorf("%s: default route %q, %v", h.Name, out, err)
			}
		}
		lan := lab.AddLAN()
		names = append(names, lan.Bridge)
		if lan.Iface != "eth1" || lab.Hosts[1].AddrOn(lan).String() != strings.Replace(lab.Hosts[1].Addr.String(), "10.77.", "10.78.", 1) {
			t.Fatalf("second LAN %+v, host 2 at %v", lan, lab.Hosts[1].AddrOn(lan))
		}
		for _, h := range lab.Hosts {
			out, err := ipOut("-n", h.NS, "-br", "addr", "show", "dev", lan.Iface)
			if err != nil || !strings.Contains(out, h.AddrOn(lan).String()+"/24") || !strings.Contains(out, "UP") {
				t.Errorf("%s: %s is %q, %v", h.Name, lan.Iface, out, err)
			}
		}
		if ns := namespaces(t); !strings.Contains(ns, lab.Hosts[2].NS) {
			t.Fatalf("namespaces %q lack %s", ns, lab.Hosts[2].NS)
		}
	})
	ns := namespaces(t)
	for _, n := range names {
		if strings.Contains(ns, n) {
			t.Errorf("namespace %s left after the test", n)
		}
	}
}

func TestHelperBroadcastAndLinkDown(t *testing.T) {
	lab := New(t, 3)
	h1, h2, h3 := lab.Hosts[0], lab.Hosts[1], lab.Hosts[2]
	l2 := h2.StartHelper(t, "udp-listen")
	l3 := h3.StartHelper(t, "udp-listen")
	for _, p := range []*Proc{l2, l3} {
		line, err := p.Next(20 * time.Second)
		if err != nil {
			t.Fatalf("listener: %v: %s", err, p.Stderr())
		}
		// Each host has a host name of its own.
		if !strings.HasPrefix(line, "ready h") {
			t.Fatalf("listener said %q", line)
		}
	}
	send := func(payload string) {
		t.Helper()
		s := h1.StartHelper(t, "udp-broadcast", "PAYLOAD="+payload)
		if _, err := s.WaitLine(20*time.Second, func(l string) bool { return l == "sent" }); err != nil {
			t.Fatalf("sender: %v: %s", err, s.Stderr())
		}
		if err := s.Wait(5 * time.Second); err != nil {
			t.Fatalf("sender exit: %v", err)
		}
	}
	send("one")
	want := fmt.Sprintf("got one from %s", h1.Addr)
	for _, p := range []*Proc{l2, l3} {
		if _, err := p.WaitLine(2*time.Second, func(l string) bool { return l == want }); err != nil {
			t.Fatalf("broadcast not heard: %v", err)
		}
	}
	// h3 unplugged hears nothing; h2 still hears.
	if err := h3.LinkDown(); err != nil {
		t.Fatal(err)
	}
	send("two")
	if _, err := l2.WaitLine(2*time.Second, func(l string) bool { return strings.HasPrefix(l, "got two") }); err != nil {
		t.Fatalf("h2 missed the broadcast: %v", err)
	}
	if l, err := l3.WaitLine(300*time.Millisecond, func(l string) bool { return strings.HasPrefix(l, "got two") }); err == nil {
		t.Fatalf("h3 with its link down heard %q", l)
	}
	if err := h3.LinkUp(); err != nil {
		t.Fatal(err)
	}
	send("three")
	if _, err := l3.WaitLine(2*time.Second, func(l string) bool { return strings.HasPrefix(l, "got three") }); err != nil {
		t.Fatalf("h3 missed the broadcast after LinkUp: %v", err)
	}
	// Kill reaps the child.
	if err := l3.Kill(); err != nil {
		t.Fatal(err)
	}
	// Lines printed before the kill may still be buffered; then the
	// stream ends.
	for range 100 {
		_, err := l3.Next(time.Second)
		if errors.Is(err, ErrExited) {
			return
		}
		if err != nil {
			t.Fatalf("after Kill: %v, want ErrExited", err)
		}
	}
	t.Fatal("a killed helper still prints")
}

// TestBuildOutsideATest builds a lab the way a program does, runs a
// process in a host with Start, and checks that Close removes everything
// (and may be called twice).
func TestBuildOutsideATest(t *testing.T) {
	if err := Available(); err != nil {
		t.Skip(err)
	}
	lab, err := Build(context.Background(), 2)
	if err != nil {
		t.Fatal(err)
	}
	defer lab.Close()
	p, err := lab.Hosts[1].Start("hostname", nil)
	if err != nil {
		t.Fatal(err)
	}
	line, err := p.Next(10 * time.Second)
	if err != nil || line != "h2" {
		t.Fatalf("hostname in h2: %q, %v", line, err)
	}
	if err := p.Wait(5 * time.Second); err != nil {
		t.Fatal(err)
	}
	if err := lab.Close(); err != nil {
		t.Fatal(err)
	}
	if err := lab.Close(); err != nil {
		t.Fatal(err)
	}
	if ns := namespaces(t); strings.Contains(ns, lab.Name+"-") {
		t.Fatalf("namespaces left after Close: %q", ns)
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if lab, err := Build(ctx, 2); err == nil {
		lab.Close()
		t.Fatal("Build with an ended context succeeded")
	}
	if ns := namespaces(t); strings.Contains(ns, "lmt"+strconv.Itoa(os.Getpid())+"-") {
		t.Fatalf("namespaces left after a failed Build: %q", ns)
	}
}
