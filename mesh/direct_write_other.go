//go:build !unix

package mesh

import "net"

// directWriter would make single non-blocking writes; see the Unix version.
// Elsewhere Flush always hands bytes to the writer goroutine.
type directWriter struct{}

func newDirectWriter(net.Conn) *directWriter { return nil }

func (*directWriter) write([]byte) (int, error) { return 0, nil }
