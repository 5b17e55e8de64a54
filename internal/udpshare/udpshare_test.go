package udpshare

import (
	"net"
	"testing"
	"time"
)

// Two sockets share a port and both hear a datagram sent to the loopback
// broadcast address, the stand-in for a LAN broadcast on one machine.
func TestTwoListenersHearOneBroadcast(t *testing.T) {
	a, err := Listen(0)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	port := a.LocalAddr().(*net.UDPAddr).Port
	b, err := Listen(port)
	if err != nil {
		t.Fatalf("second listener on %d: %v", port, err)
	}
	defer b.Close()
	s, err := ListenSender()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.WriteToUDP([]byte("hello"), &net.UDPAddr{IP: net.IPv4(127, 255, 255, 255), Port: port}); err != nil {
		t.Fatal(err)
	}
	for _, c := range []*net.UDPConn{a, b} {
		c.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 16)
		n, from, err := c.ReadFromUDP(buf)
		if err != nil || string(buf[:n]) != "hello" {
			t.Fatalf("got %q, %v", buf[:n], err)
		}
		if from.Port != s.LocalAddr().(*net.UDPAddr).Port {
			t.Errorf("source port %d, sender's %d", from.Port, s.LocalAddr().(*net.UDPAddr).Port)
		}
	}
}
