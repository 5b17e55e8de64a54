// Package udpshare opens UDP sockets that several programs on one host can
// bind to the same port at once, each hearing every broadcast: what lanmesh's
// beacons and cable_car's "BROADCAST" both need.
package udpshare

import (
	"context"
	"fmt"
	"net"
)

// Listen binds 0.0.0.0:port (a socket bound to one address does not hear
// broadcasts) with the port shared and broadcasting allowed. Every program
// sharing the port must set the same options, which every caller of Listen
// does; a program that binds the port without them makes the others fail.
func Listen(port int) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: control}
	pc, err := lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf("0.0.0.0:%d", port))
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}

// ListenSender binds an ephemeral port with broadcasting allowed: a socket
// whose own datagrams can be told apart by their source port.
func ListenSender() (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: control}
	pc, err := lc.ListenPacket(context.Background(), "udp4", "0.0.0.0:0")
	if err != nil {
		return nil, err
	}
	return pc.(*net.UDPConn), nil
}
