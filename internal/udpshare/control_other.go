//go:build !unix && !windows

package udpshare

import "syscall"

// control does nothing where the platform offers no socket options: only
// one program per host can then bind the port.
func control(network, address string, c syscall.RawConn) error { return nil }
