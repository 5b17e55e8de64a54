//go:build unix

package mesh

import (
	"net"
	"syscall"
)

// directWriter makes single write attempts that never wait. Go's sockets
// are non-blocking underneath: RawConn.Write with a function that returns
// true makes exactly one write(2), without the wait for writability that
// conn.Write adds when the socket is full. Not safe for concurrent use.
type directWriter struct {
	rc  syscall.RawConn
	fn  func(fd uintptr) bool // w.attempt, bound once so that calls do not allocate
	buf []byte
	n   int
	err error
}

// newDirectWriter returns the direct writer of a TCP conn, or nil.
func newDirectWriter(conn net.Conn) *directWriter {
	tc, ok := conn.(*net.TCPConn)
	if !ok {
		return nil
	}
	rc, err := tc.SyscallConn()
	if err != nil {
		return nil
	}
	w := &directWriter{rc: rc}
	w.fn = w.attempt
	return w
}

func (w *directWriter) attempt(fd uintptr) bool {
	w.n, w.err = syscall.Write(int(fd), w.buf)
	return true
}

// write writes what the socket takes of b at once (maybe nothing), and
// returns an error only when the conn is broken.
func (w *directWriter) write(b []byte) (int, error) {
	w.buf = b
	err := w.rc.Write(w.fn)
	w.buf = nil
	switch {
	case err != nil:
		return 0, err
	case w.err == syscall.EAGAIN || w.err == syscall.EINTR:
		return 0, nil
	case w.err != nil:
		return 0, w.err
	}
	return w.n, nil
}
