//go:build windows

package udpshare

import (
	"syscall"

	"golang.org/x/sys/windows"
)

// control: Windows has no SO_REUSEPORT; its SO_REUSEADDR already lets
// sockets share a UDP port.
func control(network, address string, c syscall.RawConn) error {
	var serr error
	err := c.Control(func(fd uintptr) {
		for _, opt := range []int{windows.SO_REUSEADDR, windows.SO_BROADCAST} {
			if serr = windows.SetsockoptInt(windows.Handle(fd), windows.SOL_SOCKET, opt, 1); serr != nil {
				return
			}
		}
	})
	if err != nil {
		return err
	}
	return serr
}
