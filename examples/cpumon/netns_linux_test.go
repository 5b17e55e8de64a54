//go:build linux

package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"os"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lanmesh/lanmesh/lanmeshtest/netlab"
)

// TestHelperProcess is the child side of TestCableCarNamespaces: this
// monitor ("cpumon", its flags in CPUMON_ARGS) or a fake cpu_mon.py
// ("cpu_mon.py"), each in a host of its own.
func TestHelperProcess(t *testing.T) {
	switch netlab.HelperRole() {
	case "cpumon":
		ctx, stop := signal.NotifyContext(context.Background(), syscall.SIGTERM, os.Interrupt)
		code := run(ctx, strings.Fields(os.Getenv("CPUMON_ARGS")), os.Stdout, os.Stderr)
		stop()
		os.Exit(code)
	case "cpu_mon.py":
		os.Exit(fakePython(os.Getenv("PY_ADDR"), os.Getenv("PY_LINE")))
	}
}

// fakePython does on the wire what cable_car's cpu_mon.py does, with its
// ports and the real broadcast address: "BROADCAST" to 255.255.255.255:8226
// (every 500 ms rather than 3 s, to be quick), a dial to TCP 8227 of every
// other host heard, a listener on TCP 8227, and on each connection its
// MsgStats line every 250 ms. Like cpu_mon.py it serves every connection
// it accepts, and dials only hosts it has no connection with. It prints
// "open" when it serves a connection, "got LINE" for each line it reads and
// "closed" when a connection ends, until SIGTERM.
func fakePython(own, line string) int {
	fail := func(err error) int { fmt.Fprintln(os.Stderr, "cpu_mon.py:", err); return 1 }
	udp, err := net.ListenUDP("udp4", &net.UDPAddr{Port: cableCarBeaconPort})
	if err != nil {
		return fail(err)
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1) })
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", ":0")
	if err != nil {
		return fail(err)
	}
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{Port: cableCarPort})
	if err != nil {
		return fail(err)
	}
	var (
		out  sync.Mutex // guards stdout and linked
		seen = map[string]bool{}
	)
	say := func(s string) { out.Lock(); fmt.Println(s); out.Unlock() }
	serve := func(c net.Conn) {
		defer c.Close()
		say("open")
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			t := time.NewTicker(250 * time.Millisecond)
			defer t.Stop()
			for {
				if _, err := c.Write([]byte(line)); err != nil {
					return
				}
				select {
				case <-t.C:
				case <-stop:
					return
				}
			}
		}()
		r := bufio.NewReader(c)
		for {
			l, err := r.ReadString('\n')
			if err != nil {
				say("closed")
				return
			}
			say("got " + strings.TrimSuffix(l, "\n"))
		}
	}
	claim := func(ip string) bool {
		out.Lock()
		defer out.Unlock()
		if seen[ip] || ip == own {
			return false
		}
		seen[ip] = true
		return true
	}

	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			ip, _, _ := net.SplitHostPort(c.RemoteAddr().String())
			claim(ip)
			go serve(c)
		}
	}()
	go func() {
		buf := make([]byte, 64)
		for {
			n, from, err := udp.ReadFromUDP(buf)
			if err != nil {
				return
			}
			if ip := from.IP.String(); string(buf[:n]) == "BROADCAST" && claim(ip) {
				c, err := net.DialTimeout("tcp4", net.JoinHostPort(ip, fmt.Sprint(cableCarPort)), 2*time.Second)
				if err == nil {
					go serve(c)
				}
			}
		}
	}()
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, syscall.SIGTERM)
	say("ready")
	t := time.NewTicker(500 * time.Millisecond)
	defer t.Stop()
	for deadline := time.After(5 * time.Minute); ; {
		pc.WriteTo([]byte("BROADCAST"), &net.UDPAddr{IP: net.IPv4bcast, Port: cableCarBeaconPort})
		select {
		case <-t.C:
		case <-sigs:
			return 0
		case <-deadline: // a test never runs this long
			return 1
		}
	}
}

// TestCableCarNamespaces: the monitor with -cablecar and a fake cpu_mon.py
// on two hosts of a LAN in network namespaces, with cable_car's ports and
// the real broadcast address: each shows the other's figures, and the fake
// sees the link end when the monitor stops.
func TestCableCarNamespaces(t *testing.T) {
	lab := netlab.New(t, 2)
	mon, py := lab.Hosts[0], lab.Hosts[1]
	golden := goldenLines(t, "cpu_mon.golden")[0]
	p := py.StartHelper(t, "cpu_mon.py", "PY_ADDR="+py.Addr.String(), "PY_LINE="+golden)
	if _, err := p.WaitLine(10*time.Second, func(l string) bool { return l == "ready" }); err != nil {
		t.Fatal(err)
	}
	m := mon.StartHelper(t, "cpumon", "CPUMON_ARGS=-cablecar -plain -interval 200ms -name "+mon.Name+" -mesh nscc")
	// Every line the fake reads must be a MsgStats (cpu_mon.py dies of
	// any other); count the connections it serves.
	opens, closes, got := 0, 0, false
	next := func(timeout time.Duration) {
		t.Helper()
		l, err := p.Next(timeout)
		if err != nil {
			t.Fatalf("cpu_mon.py: %v (connections: %d opened, %d closed, a line: %v)", err, opens, closes, got)
		}
		switch {
		case l == "open":
			opens++
		case l == "closed":
			closes++
		case strings.HasPrefix(l, "got "):
			checkPyKeys(t, []byte(strings.TrimPrefix(l, "got ")+"\n"))
			if !strings.Contains(l, `"host":"`+mon.Name+`"`) {
				t.Errorf("cpu_mon.py got %s", l)
			}
			got = true
		}
	}
	for !got {
		next(20 * time.Second)
	}
	if _, err := m.WaitLine(20*time.Second, func(l string) bool { return strings.HasPrefix(l, "pybox ~") && strings.Contains(l, "12.5%") }); err != nil {
		t.Fatalf("the monitor never showed pybox: %v", err)
	}
	if err := m.Stop(10 * time.Second); err != nil {
		t.Errorf("the monitor's exit: %v", err)
	}
	// Each connection ends with the monitor.
	for closes < opens {
		next(10 * time.Second)
	}
}
