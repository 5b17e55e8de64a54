//go:build !linux

package discovery

// watchNotices: no notices here; the interfaces are polled.
func (d *Discoverer) watchNotices() bool { return false }
