//go:build linux

package main

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/lanmesh/lanmesh/internal/udpshare"
	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
)

// fakeCPUMon plays cable_car's examples/cpu_mon.py on loopback, at
// 127.0.0.2 so that the monitor (at 127.0.0.1) can tell it from itself: it
// hears "BROADCAST" on the shared UDP port, sends its own, and takes the
// monitor's connection on its TCP port.
type fakeCPUMon struct {
	udp  *net.UDPConn // hears the monitor's "BROADCAST"
	send *net.UDPConn // from 127.0.0.2, with SO_BROADCAST
	ln   *net.TCPListener
}

func newFakeCPUMon(t *testing.T, beaconPort int) *fakeCPUMon {
	t.Helper()
	udp, err := udpshare.Listen(beaconPort)
	if err != nil {
		t.Fatal(err)
	}
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_BROADCAST, 1) })
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", "127.0.0.2:0")
	if err != nil {
		udp.Close()
		t.Skipf("no 127.0.0.2 to play cpu_mon.py from: %v", err)
	}
	ln, err := net.ListenTCP("tcp4", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Fatal(err)
	}
	f := &fakeCPUMon{udp: udp, send: pc.(*net.UDPConn), ln: ln}
	t.Cleanup(func() { udp.Close(); f.send.Close(); ln.Close() })
	return f
}

// TestCableCarMode runs the monitor with -cablecar on loopback against a
// fake cpu_mon.py: the monitor broadcasts "BROADCAST" on cable_car's UDP
// port, dials the fake when it hears it, sends it only MsgStats lines of
// cpu_mon.py's shape, and shows the fake's figures (golden lines) marked
// as cable_car's.
func TestCableCarMode(t *testing.T) {
	leaktest.Check(t)
	ccBeacon := freeUDPPort(t)
	f := newFakeCPUMon(t, ccBeacon)
	ccPort := f.ln.Addr().(*net.TCPAddr).Port

	ctx, cancel := context.WithCancel(context.Background())
	out, errOut := &syncBuffer{}, &syncBuffer{}
	done := make(chan int, 1)
	go func() {
		done <- run(ctx, []string{"-loopback", "-beacon-port", fmt.Sprint(freeUDPPort(t)), "-mesh", "cpumon-cc-test",
			"-cablecar", "-cablecar-port", fmt.Sprint(ccPort), "-cablecar-beacon-port", fmt.Sprint(ccBeacon),
			"-interval", "100ms", "-plain", "-name", "gobox"}, out, errOut)
	}()
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case code := <-done:
				if code != 0 {
					t.Errorf("exit %d: %s", code, errOut.String())
				}
			case <-time.After(10 * time.Second):
				t.Errorf("the monitor did not stop: %s", errOut.String())
			}
		})
	}
	t.Cleanup(stop)

	// The monitor's own "BROADCAST", on cable_car's UDP port.
	f.udp.SetReadDeadline(time.Now().Add(10 * time.Second))
	buf := make([]byte, 64)
	for {
		n, from, err := f.udp.ReadFromUDPAddrPort(buf)
		if err != nil {
			t.Fatalf("no BROADCAST from the monitor: %v", err)
		}
		if string(buf[:n]) == "BROADCAST" && from.Addr().String() == "127.0.0.1" {
			break
		}
	}

	// cpu_mon.py's "BROADCAST", until the monitor dials.
	accepted := make(chan *net.TCPConn, 1)
	go func() {
		f.ln.SetDeadline(time.Now().Add(10 * time.Second))
		c, err := f.ln.AcceptTCP()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()
	beacon := &net.UDPAddr{IP: net.IPv4(127, 255, 255, 255), Port: ccBeacon}
	var conn *net.TCPConn
	for i := 0; conn == nil; i++ {
		if _, err := f.send.WriteToUDP([]byte("BROADCAST"), beacon); err != nil {
			t.Fatal(err)
		}
		select {
		case c, ok := <-accepted:
			if !ok {
				t.Fatalf("the monitor never dialled; stderr: %s", errOut.String())
			}
			conn = c
		case <-time.After(200 * time.Millisecond):
			if i > 50 {
				t.Fatal("the monitor never dialled")
			}
		}
	}
	defer conn.Close()

	// What the monitor sends: MsgStats lines of cpu_mon.py's shape, with
	// nothing else (cpu_mon.py would die of KeyError on any other type).
	lines := make(chan []byte, 64)
	go readLines(bufio.NewReader(conn), lines)
	for range 3 {
		select {
		case line := <-lines:
			checkPyKeys(t, line)
			if !strings.Contains(string(line), `"host":"gobox"`) {
				t.Errorf("line %q", line)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no MsgStats from the monitor")
		}
	}

	// What cpu_mon.py sends shows in the table, marked "~".
	for _, line := range goldenLines(t, "cpu_mon.golden")[:1] {
		if _, err := conn.Write([]byte(line)); err != nil {
			t.Fatal(err)
		}
	}
	waitTable(t, out, "gobox", "pybox")
	row := regexp.MustCompile(`\npybox ~ +12\.5% +0\.50 0\.25 0\.12 +41\.2% +7\.7 GiB +0\.0% +2\.0 GiB +47°C\n`)
	if tbl := lastTableText(out.String()); !row.MatchString(tbl) {
		t.Errorf("pybox's row:\n%s", tbl)
	}

	// The monitor stops: the link ends.
	stop()
	deadline := time.After(5 * time.Second)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				return
			}
			checkPyKeys(t, line)
		case <-deadline:
			t.Fatal("the link outlived the monitor")
		}
	}
}
