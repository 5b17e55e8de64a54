package mesh

import (
	"context"
	"net"
)

// TCPTransport is the Transport over TCP. Its zero value is ready to use.
type TCPTransport struct {
	// Dialer makes outgoing connections; its zero value is fine. Go's TCP
	// conns have Nagle's algorithm off already, which links need: they batch
	// their own writes.
	Dialer net.Dialer
	// ListenConfig makes listeners; its zero value is fine.
	ListenConfig net.ListenConfig
}

// TCP is the default Transport.
var TCP Transport = &TCPTransport{}

var _ Transport = (*TCPTransport)(nil)

// Listen listens on the TCP address addr ("host:port").
func (t *TCPTransport) Listen(addr string) (net.Listener, error) {
	return t.ListenConfig.Listen(context.Background(), "tcp", addr)
}

// Dial connects to the TCP address addr.
func (t *TCPTransport) Dial(ctx context.Context, addr string) (net.Conn, error) {
	return t.Dialer.DialContext(ctx, "tcp", addr)
}
