package discovery

import (
	"errors"
	"os"

	"golang.org/x/sys/unix"
)

// watchNotices subscribes to the kernel's notices of links and addresses
// (rtnetlink) and signals a change for each; it reports false when the
// kernel refuses, and the caller polls instead. The socket is read through
// the runtime's poller, so closing it at Close ends the read.
func (d *Discoverer) watchNotices() bool {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, unix.NETLINK_ROUTE)
	if err != nil {
		d.log.Debug("discovery: netlink unavailable; polling interfaces", "err", err)
		return false
	}
	sa := &unix.SockaddrNetlink{Family: unix.AF_NETLINK,
		Groups: unix.RTMGRP_LINK | unix.RTMGRP_IPV4_IFADDR | unix.RTMGRP_IPV6_IFADDR}
	if err := unix.Bind(fd, sa); err != nil {
		unix.Close(fd)
		d.log.Debug("discovery: netlink bind; polling interfaces", "err", err)
		return false
	}
	f := os.NewFile(uintptr(fd), "rtnetlink")
	d.wg.Add(2)
	go func() {
		defer d.wg.Done()
		<-d.done
		f.Close()
	}()
	go func() {
		defer d.wg.Done()
		buf := make([]byte, 1<<16)
		for {
			// ENOBUFS: notices were lost, which is a change too; any other
			// error is the close.
			if _, err := f.Read(buf); err != nil && !errors.Is(err, unix.ENOBUFS) {
				return
			}
			d.signalIfaceChange()
		}
	}()
	return true
}
