package mesh

import (
	"context"
	"fmt"
	"github.com/google/uuid"
	"io"
	"net"
	"time"
)

// ProbeResult is what Probe learnt of a node.
type ProbeResult struct {
	// Connect is how long the TCP connection took to open: about one
	// round trip.
	Connect time.Duration
	// HasHello says whether the node's own Hello was read: when hello was
	// asked for and the node is unkeyed (a keyed node says nothing before
	// the initiator's preamble). Then the fields below are what it said:
	// claims, to show a person, never proof.
	HasHello bool
	NodeID   uuid.UUID
	Instance uuid.UUID
	Name     string
	Mesh     string
	Codec    string
}

// probeReason is what a probed node is told as the probe hangs up.
const probeReason = "a probe: looking only"

// Probe opens a TCP connection to the node at addr and, with hello, reads
// the Hello an unkeyed node sends first; then it rejects the link and
// hangs up. The node sees a handshake that failed (logged at Debug), never
// a peer: Probe is for tools that look without joining. ctx bounds it.
// Errors are those of the dial (a refused connection is
// syscall.ECONNREFUSED) or of reading the Hello.
func Probe(ctx context.Context, addr string, hello bool) (ProbeResult, error) {
	var r ProbeResult
	start := time.Now()
	var d net.Dialer
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return r, err
	}
	defer conn.Close()
	r.Connect = time.Since(start)
	if !hello {
		return r, nil
	}
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()
	var buf [handshakeHeader + maxHandshakeBody]byte
	if _, err := io.ReadFull(conn, buf[:handshakeHeader]); err != nil {
		return r, fmt.Errorf("mesh: probe: no hello: %w", err)
	}
	kind, n, err := parseHeader(buf[:handshakeHeader])
	if err != nil {
		return r, err
	}
	if _, err := io.ReadFull(conn, buf[handshakeHeader:handshakeHeader+n]); err != nil {
		return r, fmt.Errorf("mesh: probe: no hello: %w", err)
	}
	if kind != kindHello {
		return r, fmt.Errorf("%w: frame kind %d, want hello", ErrHandshake, kind)
	}
	h, err := parseHelloBody(buf[handshakeHeader : handshakeHeader+n])
	if err != nil {
		return r, err
	}
	r.HasHello = true
	r.NodeID, r.Instance, r.Name, r.Mesh, r.Codec = h.NodeID, h.InstanceID, h.Name, h.Mesh, h.Codec
	var rb [handshakeHeader + 2 + maxString]byte
	conn.Write(appendReject(rb[:0], rejectOther, probeReason))
	return r, nil
}
