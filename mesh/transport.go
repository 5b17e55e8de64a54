package mesh

import (
	"context"
	"net"
)

// Transport makes the connections links run over. Links never dial or
// listen themselves: they take a net.Conn, so any Transport (TCP, the
// in-memory one, one of the program's own) carries the same protocol. A
// keyed link encrypts above the Transport, so every Transport carries it.
//
// A Transport's conns must honour SetReadDeadline and SetWriteDeadline (the
// link relies on them for liveness and backpressure) and should buffer
// writes the way a socket does: the handshake writes before it reads.
type Transport interface {
	// Listen listens on addr. An address with port 0 (":0",
	// "127.0.0.1:0") asks for any free one; the listener's Addr says which.
	Listen(addr string) (net.Listener, error)
	// Dial connects to addr, giving up when ctx ends.
	Dial(ctx context.Context, addr string) (net.Conn, error)
}

// closeWriter is a conn that can end its sending half alone, as TCP's
// shutdown(SHUT_WR) does; a graceful close uses it so that the peer reads
// everything we sent, then EOF, while we still read what it sends.
type closeWriter interface {
	CloseWrite() error
}
