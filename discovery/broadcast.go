package discovery

import (
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/lanmesh/lanmesh/internal/udpshare"
)

// packetConn is the beacon socket. It knows bytes and addresses only; the
// beacon format lives above it.
type packetConn struct {
	conn *net.UDPConn
}

// listenShared binds 0.0.0.0:port (a socket bound to one address does not
// hear broadcasts) with the port shared, so that several nodes on one host
// all hear every beacon.
func listenShared(port int) (*packetConn, error) {
	conn, err := udpshare.Listen(port)
	if err != nil {
		return nil, err
	}
	return &packetConn{conn: conn}, nil
}

// readFrom returns the next datagram; a datagram longer than buf is
// truncated, which the beacon parser then rejects.
func (c *packetConn) readFrom(buf []byte) (int, netip.AddrPort, error) {
	n, from, err := c.conn.ReadFromUDPAddrPort(buf)
	return n, netip.AddrPortFrom(from.Addr().Unmap(), from.Port()), err
}

// writeTo sends p to each destination and returns the first error with
// the failing address; it goes on with the others so that one unreachable
// network does not silence the rest.
func (c *packetConn) writeTo(p []byte, dsts []netip.AddrPort) error {
	var first error
	for _, d := range dsts {
		if _, err := c.conn.WriteToUDPAddrPort(p, d); err != nil && first == nil {
			first = fmt.Errorf("send to %v: %w", d, err)
		}
	}
	return first
}

func (c *packetConn) close() error { return c.conn.Close() }

func isClosedErr(err error) bool { return errors.Is(err, net.ErrClosed) }
