//go:build linux

package netlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// namePrefix starts every namespace name made by this package; the next
// field is the pid of the process that made it, so that stale ones can be
// told from those of a run still going.
const namePrefix = "lmt"

// cmdTimeout bounds every ip(8) invocation.
const cmdTimeout = 10 * time.Second

var labSeq atomic.Uint32

// Lab is a LAN of network namespaces.
type Lab struct {
	t      TB // set by New; nil for a lab made by Build
	logf   func(format string, args ...any)
	close  sync.Once
	Name   string       // the namespace name prefix of this lab
	Bridge string       // the bridge's namespace
	Subnet netip.Prefix // the hosts' /24
	Gate   netip.Addr   // the bridge's address: the hosts' default route
	Hosts  []*Host
	// Extra are the LANs added by AddLAN, in order.
	Extra []*LAN

	mu    sync.Mutex // guards wires
	wires []*Wire
}

// LAN is a second (third, ...) network that joins every host of a lab
// through an interface of its own, without a default route: a machine
// with a VPN or a container bridge next to its LAN.
type LAN struct {
	Bridge string       // the bridge's namespace
	Subnet netip.Prefix // the hosts' /24 on this LAN
	Iface  string       // the hosts' interface on it: eth1, eth2, ...
}

// Host is one machine of the lab.
type Host struct {
	lab    *Lab
	Name   string     // a short name, h1..hN; also the host name in Command
	NS     string     // the network namespace
	Iface  string     // the host's interface, eth0
	Addr   netip.Addr // the host's address in Lab.Subnet
	brPort string     // the veth end in the bridge namespace
}

// Available reports why a lab cannot be built here, or nil.
func Available() error {
	if os.Geteuid() != 0 {
		return fmt.Errorf("netlab: needs root to create network namespaces")
	}
	for _, tool := range []string{"ip", "unshare", "sysctl"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("netlab: %s not found: %w", tool, err)
		}
	}
	return nil
}

// Build builds a lab of n hosts outside a test: for a program that measures
// (lanmesh bench). The caller must call Close on every path; if Build fails
// it has removed what it made. ctx ends the build early. Labs left behind by
// a process that died are removed by the next Build or New.
func Build(ctx context.Context, n int) (*Lab, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	l, err := build(ctx, n, func(string, ...any) {})
	if err != nil {
		if l != nil {
			l.Close()
		}
		return nil, fmt.Errorf("netlab: build: %w", err)
	}
	return l, nil
}

// build makes the lab; on error it returns the partial lab (for removal) with
// the error, or nil if nothing was made.
func build(ctx context.Context, n int, logf func(string, ...any)) (*Lab, error) {
	if n < 1 || n > 250 {
		return nil, fmt.Errorf("netlab: %d hosts; want 1..250", n)
	}
	removeStale(logf)
	seq := labSeq.Add(1)
	name := fmt.Sprintf("%s%d-%d", namePrefix, os.Getpid(), seq)
	third := byte(seq % 250)
	l := &Lab{
		logf:   logf,
		Name:   name,
		Bridge: name + "-br",
		Subnet: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, 77, third, 0}), 24),
		Gate:   netip.AddrFrom4([4]byte{10, 77, third, 254}),
	}
	return l, l.build(ctx, n)
}

// Close removes every namespace of the lab (and so its interfaces and the
// processes' network). It is idempotent; errors are logged (New) or
// returned, never stop the removal halfway.
func (l *Lab) Close() error {
	var err error
	l.close.Do(func() { err = l.remove() })
	return err
}

func (l *Lab) build(ctx context.Context, n int) error {
	br := l.Bridge
	steps := [][]string{
		{"netns", "add", br},
		{"-n", br, "link", "set", "lo", "up"},
		{"-n", br, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0", "stp_state", "0", "forward_delay", "0"},
		{"-n", br, "addr", "add", l.Gate.String() + "/24", "dev", "br0"},
		{"-n", br, "link", "set", "br0", "up"},
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			return err
		}
	}
	for i := 1; i <= n; i++ {
		if err := ctx.Err(); err != nil {
			return err
		}
		a := l.Subnet.Addr().As4()
		a[3] = byte(i)
		h := &Host{
			lab:    l,
			Name:   fmt.Sprintf("h%d", i),
			NS:     fmt.Sprintf("%s-h%d", l.Name, i),
			Iface:  "eth0",
			Addr:   netip.AddrFrom4(a),
			brPort: fmt.Sprintf("v%d", i),
		}
		l.Hosts = append(l.Hosts, h)
		if err := h.build(); err != nil {
			return fmt.Errorf("host %s: %w", h.Name, err)
		}
	}
	// Every link comes up in parallel; one settle serves them all.
	for _, h := range l.Hosts {
		if err := h.waitLinkReady(); err != nil {
			return fmt.Errorf("host %s: %w", h.Name, err)
		}
	}
	time.Sleep(settle)
	return nil
}

func (h *Host) build() error {
	br, ns := h.lab.Bridge, h.NS
	if err := ipCmd("netns", "add", ns); err != nil {
		return err
	}
	// Before the interface exists, so that its own settings inherit the
	// defaults: no duplicate address detection (an IPv6 link-local address
	// is otherwise unusable for 1-2 s) and no reverse-path filter.
	if err := nsExec(ns, "sysctl", "-q", "-w",
		"net.ipv6.conf.all.accept_dad=0", "net.ipv6.conf.default.accept_dad=0",
		"net.ipv4.conf.all.rp_filter=0", "net.ipv4.conf.default.rp_filter=0"); err != nil {
		return err
	}
	steps := [][]string{
		{"-n", ns, "link", "set", "lo", "up"},
		// Both ends are created inside the lab's namespaces, never in the
		// machine's own.
		{"-n", br, "link", "add", h.brPort, "type", "veth", "peer", "name", h.Iface, "netns", ns},
		{"-n", br, "link", "set", h.brPort, "master", "br0"},
		{"-n", br, "link", "set", h.brPort, "up"},
		{"-n", ns, "addr", "add", h.Addr.String() + "/24", "dev", h.Iface},
		{"-n", ns, "link", "set", h.Iface, "multicast", "on"},
		{"-n", ns, "link", "set", h.Iface, "up"},
		// Without a default route, 255.255.255.255 and 224.0.0.251 are
		// unreachable (ENETUNREACH).
		{"-n", ns, "route", "replace", "default", "via", h.lab.Gate.String()},
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			return err
		}
	}
	return nil
}

// waitReady waits, bounded, until both ends of the host's link report UP
// and the bridge port forwards, then a short settle: packets sent just
// after link-up have been seen lost.
func (h *Host) waitReady() error {
	if err := h.waitLinkReady(); err != nil {
		return err
	}
	time.Sleep(settle)
	return nil
}

// waitLinkReady is waitReady without the settle.
func (h *Host) waitLinkReady() error {
	deadline := time.Now().Add(5 * time.Second)
	for {
		hostUp := operUp(h.NS, h.Iface)
		brUp := operUp(h.lab.Bridge, h.brPort)
		fwd := bridgeForwarding(h.lab.Bridge, h.brPort)
		if hostUp && brUp && fwd {
			break
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("link not ready after 5s (host up %v, bridge port up %v, forwarding %v)", hostUp, brUp, fwd)
		}
		time.Sleep(20 * time.Millisecond)
	}
	return nil
}

// settle follows link readiness; see waitReady.
const settle = 200 * time.Millisecond

func operUp(ns, dev string) bool {
	out, err := ipOut("-n", ns, "-br", "link", "show", "dev", dev)
	if err != nil {
		return false
	}
	f := strings.Fields(out)
	return len(f) >= 2 && f[1] == "UP"
}

func bridgeForwarding(ns, dev string) bool {
	out, err := run("bridge", "-n", ns, "link", "show", "dev", dev)
	if err != nil {
		// Without bridge(8), operstate has to do.
		return true
	}
	return strings.Contains(out, "state forwarding")
}

// NewLAN is AddLAN returning its error; Close removes the LAN.
func (l *Lab) NewLAN() (*LAN, error) {
	k := len(l.Extra) + 1
	third := l.Subnet.Addr().As4()[2]
	lan := &LAN{
		Bridge: fmt.Sprintf("%s-br%d", l.Name, k+1),
		Subnet: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, byte(77 + k), third, 0}), 24),
		Iface:  fmt.Sprintf("eth%d", k),
	}
	l.Extra = append(l.Extra, lan)
	if err := l.buildLAN(lan); err != nil {
		return nil, fmt.Errorf("add LAN %d: %w", k, err)
	}
	return lan, nil
}

func (l *Lab) buildLAN(lan *LAN) error {
	br := lan.Bridge
	steps := [][]string{
		{"netns", "add", br},
		{"-n", br, "link", "set", "lo", "up"},
		{"-n", br, "link", "add", "br0", "type", "bridge", "mcast_snooping", "0", "stp_state", "0", "forward_delay", "0"},
		{"-n", br, "link", "set", "br0", "up"},
	}
	for i, h := range l.Hosts {
		port := fmt.Sprintf("v%d", i+1)
		steps = append(steps,
			[]string{"-n", br, "link", "add", port, "type", "veth", "peer", "name", lan.Iface, "netns", h.NS},
			[]string{"-n", br, "link", "set", port, "master", "br0"},
			[]string{"-n", br, "link", "set", port, "up"},
			[]string{"-n", h.NS, "addr", "add", h.AddrOn(lan).String() + "/24", "dev", lan.Iface},
			[]string{"-n", h.NS, "link", "set", lan.Iface, "multicast", "on"},
			[]string{"-n", h.NS, "link", "set", lan.Iface, "up"},
		)
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			return err
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for i, h := range l.Hosts {
		port := fmt.Sprintf("v%d", i+1)
		for !(operUp(h.NS, lan.Iface) && operUp(br, port) && bridgeForwarding(br, port)) {
			if time.Now().After(deadline) {
				return fmt.Errorf("host %s: %s not ready after 5s", h.Name, lan.Iface)
			}
			time.Sleep(20 * time.Millisecond)
		}
	}
	time.Sleep(settle)
	return nil
}

// AddrOn returns the host's address on an added LAN: the same host
// number as its address on the first LAN.
func (h *Host) AddrOn(lan *LAN) netip.Addr {
	a := lan.Subnet.Addr().As4()
	a[3] = h.Addr.As4()[3]
	return netip.AddrFrom4(a)
}

// LinkDown cuts the host off the LAN, as if its cable were pulled.
func (h *Host) LinkDown() error {
	return ipCmd("-n", h.NS, "link", "set", h.Iface, "down")
}

// LinkUp reconnects the host and restores its default route (which the
// kernel dropped with the link), waiting until the link is ready.
func (h *Host) LinkUp() error {
	if err := ipCmd("-n", h.NS, "link", "set", h.Iface, "up"); err != nil {
		return err
	}
	if err := ipCmd("-n", h.NS, "route", "replace", "default", "via", h.lab.Gate.String()); err != nil {
		return err
	}
	return h.waitReady()
}

// SetAddr moves the host to another address of the lab's subnet, as a new
// DHCP lease would: the new address is added before the old one goes, and
// the default route is restored. It updates h.Addr, so it must not run
// while another goroutine reads it.
func (h *Host) SetAddr(a netip.Addr) error {
	if !h.lab.Subnet.Contains(a) || a == h.lab.Gate {
		return fmt.Errorf("netlab: %v is not a host address of %v", a, h.lab.Subnet)
	}
	// Without promotion, removing the primary address removes the new,
	// secondary one with it.
	if err := nsExec(h.NS, "sysctl", "-q", "-w", "net.ipv4.conf."+h.Iface+".promote_secondaries=1"); err != nil {
		return err
	}
	steps := [][]string{
		{"-n", h.NS, "addr", "add", a.String() + "/24", "dev", h.Iface},
		{"-n", h.NS, "addr", "del", h.Addr.String() + "/24", "dev", h.Iface},
		{"-n", h.NS, "route", "replace", "default", "via", h.lab.Gate.String()},
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			return err
		}
	}
	h.Addr = a
	return nil
}

// Command returns a command that runs name inside the host: in its network
// namespace and in a UTS namespace of its own whose host name is h.Name.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	// unshare and sh exec in place, so the command's pid is the program's:
	// a test can kill -9 exactly the program.
	a := []string{"netns", "exec", h.NS, "unshare", "--uts", "--", "sh", "-c",
		`hostname "$0" && exec "$@"`, h.Name, name}
	return exec.CommandContext(ctx, "ip", append(a, args...)...)
}

// remove deletes the lab's namespaces; deleting a namespace deletes its
// interfaces. Errors are logged and returned, not fatal: cleanup must run to
// the end.
func (l *Lab) remove() error {
	var errs []error
	l.mu.Lock()
	wires := l.wires
	l.mu.Unlock()
	for _, w := range wires {
		if err := w.Close(); err != nil {
			errs = append(errs, err)
		}
	}
	for _, h := range l.Hosts {
		if err := ipCmd("netns", "del", h.NS); err != nil && !strings.Contains(err.Error(), "No such file") {
			l.logf("netlab: remove %s: %v", h.NS, err)
			errs = append(errs, err)
		}
	}
	bridges := []string{l.Bridge}
	for _, lan := range l.Extra {
		bridges = append(bridges, lan.Bridge)
	}
	for _, br := range bridges {
		if err := ipCmd("netns", "del", br); err != nil && !strings.Contains(err.Error(), "No such file") {
			l.logf("netlab: remove %s: %v", br, err)
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// removeStale deletes namespaces of this package whose creating process
// is gone: left behind by a run that crashed or was killed.
func removeStale(logf func(string, ...any)) {
	out, err := ipOut("netns", "list")
	if err != nil {
		return
	}
	for _, line := range strings.Split(out, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || !strings.HasPrefix(f[0], namePrefix) {
			continue
		}
		pidStr, _, ok := strings.Cut(strings.TrimPrefix(f[0], namePrefix), "-")
		pid, err := strconv.Atoi(pidStr)
		if !ok || err != nil {
			continue
		}
		if _, err := os.Stat("/proc/" + strconv.Itoa(pid)); err == nil {
			continue // its maker is still running
		}
		if err := ipCmd("netns", "del", f[0]); err == nil {
			logf("netlab: removed stale namespace %s", f[0])
		}
	}
}

func nsExec(ns string, args ...string) error {
	_, err := run("ip", append([]string{"netns", "exec", ns}, args...)...)
	return err
}

func ipCmd(args ...string) error {
	_, err := run("ip", args...)
	return err
}

func ipOut(args ...string) (string, error) { return run("ip", args...) }

func run(name string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	var out bytes.Buffer
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Stdout = &out
	cmd.Stderr = &out
	if err := cmd.Run(); err != nil {
		return out.String(), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), nil
}
