package discovery

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lanmesh/lanmesh/internal/ifaddr"
)

// ifacePoll is how often interfaces are compared where the system gives no
// notice of their changes (and on Linux when netlink is refused): cheap,
// and well within the two seconds in which a node whose interface comes up
// should be found.
const ifacePoll = time.Second

// watchInterfaces starts the goroutines that signal d.ifaceChanged when an
// interface or address may have changed: netlink notices on Linux, a
// periodic comparison elsewhere. They end with Close.
func (d *Discoverer) watchInterfaces() {
	d.ifaceChanged = make(chan struct{}, 1)
	d.checkInterfaceNames()
	if d.watchNotices() {
		return
	}
	d.wg.Add(1)
	go d.pollInterfaces()
}

// pollInterfaces signals a change every time the list of interfaces
// differs from the one before.
func (d *Discoverer) pollInterfaces() {
	defer d.wg.Done()
	t := time.NewTicker(ifacePoll)
	defer t.Stop()
	prev, _ := ifaddr.List(d.cfg.Interfaces)
	for {
		select {
		case <-d.done:
			return
		case <-t.C:
		}
		now, err := ifaddr.List(d.cfg.Interfaces)
		if err != nil || sameInterfaces(prev, now) {
			continue
		}
		prev = now
		d.signalIfaceChange()
	}
}

func (d *Discoverer) signalIfaceChange() {
	select {
	case d.ifaceChanged <- struct{}{}:
	default:
	}
}

// interfacesChanged re-reads the interfaces after a notice and reports
// whether anything that discovery uses changed. mDNS servers follow at
// once, and a browse is asked for.
func (d *Discoverer) interfacesChanged() bool {
	d.mu.Lock()
	before := d.ifs
	d.mu.Unlock()
	d.refresh()
	d.mu.Lock()
	after := d.ifs
	d.mu.Unlock()
	if sameInterfaces(before, after) {
		return false
	}
	d.log.Info("discovery: interfaces changed; announcing again", "interfaces", describeInterfaces(after))
	if d.mdns != nil {
		d.mdns.sync(d.multicastInterfaces())
		d.mdns.started()
	}
	return true
}

func sameInterfaces(a, b []ifaddr.Interface) bool {
	return slices.EqualFunc(a, b, func(x, y ifaddr.Interface) bool {
		return x.Name == y.Name && x.Index == y.Index && x.Up == y.Up && x.Broadcast == y.Broadcast &&
			x.Multicast == y.Multicast && slices.Equal(x.Prefixes, y.Prefixes)
	})
}

func describeInterfaces(ifs []ifaddr.Interface) []string {
	var out []string
	for _, it := range ifs {
		if ifaddr.Unusable(it) != "" {
			continue
		}
		for _, p := range it.Prefixes {
			out = append(out, it.Name+" "+p.String())
		}
	}
	return out
}

// checkInterfaceNames warns, once per name, of a name in Interfaces that no
// interface has: discovery will use it if it appears, but a typo would
// otherwise find nothing, silently.
func (d *Discoverer) checkInterfaceNames() {
	if len(d.cfg.Interfaces) == 0 {
		return
	}
	all, err := ifaddr.List(nil)
	if err != nil {
		return
	}
	var have []string
	for _, it := range all {
		have = append(have, it.Name)
	}
	for _, name := range d.cfg.Interfaces {
		if !slices.Contains(have, name) {
			d.warnOnce("no iface "+name, fmt.Sprintf("discovery: this machine has no interface %q (it has %s); discovery will use it if it appears, and finds nobody on it until then",
				name, strings.Join(have, ", ")))
		}
	}
}
