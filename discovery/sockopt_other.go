//go:build !unix && !windows

package discovery

import "syscall"

// controlShared is a no-op where the platform offers no socket options;
// only one node per host can then bind the beacon port.
func controlShared(network, address string, c syscall.RawConn) error { return nil }
