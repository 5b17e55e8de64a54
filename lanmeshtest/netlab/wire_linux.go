//go:build linux

package netlab

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Impairment is what a Wire does to the frames it carries, in each
// direction on its own. The zero value carries every frame at once.
type Impairment struct {
	// Delay is added to every frame, one way.
	Delay time.Duration
	// Jitter varies each frame's delay uniformly within ±Jitter. Frames are
	// never reordered: a frame waits for the one before it.
	Jitter time.Duration
	// Loss is the share of frames dropped, 0 to 1.
	Loss float64
	// Burst, when above 1, drops in runs of Burst frames in a row (a poor
	// Wi-Fi link); the share dropped stays Loss.
	Burst int
	// Rate is the bits per second the wire carries; 0 is unlimited. Frames
	// wait their turn (serialisation), and past QueueBytes waiting they are
	// dropped, as a router's queue would.
	Rate int
	// QueueBytes bounds what waits for Rate. Default 64 KiB.
	QueueBytes int
}

// WireStats counts a Wire's frames, both directions together.
type WireStats struct {
	Passed  uint64 // frames delivered
	Lost    uint64 // frames dropped by Loss
	Overrun uint64 // frames dropped because the queue was full (Rate)
}

// Wire is a point-to-point link between two hosts that delays, drops and
// rate-limits frames in user space (the kernel's netem is not available
// everywhere): two TAP devices, one in each host, joined by a copy loop in
// this process. Each end has an address in a /24 of its own, so traffic
// between A.Addr and B.Addr on the wire's subnet crosses it, while the
// hosts' other interfaces stay as they were. The copy loop runs in this
// process: the wire works while it lives and is gone with it.
type Wire struct {
	A, B         *Host
	IfaceA       string     // the device in A
	IfaceB       string     // the device in B
	AddrA, AddrB netip.Addr // the ends' addresses
	Subnet       netip.Prefix

	ns   string // the namespace the devices were made in
	imp  atomic.Pointer[Impairment]
	fa   *os.File
	fb   *os.File
	wg   sync.WaitGroup
	once sync.Once

	passed, lost, overrun atomic.Uint64
}

// wireQueue bounds frames in flight in one direction; past it frames are
// dropped (and counted as an overrun).
const wireQueue = 8192

var wireSeq atomic.Uint32

// NewWire joins hosts a and b with a Wire impaired by imp. The lab's Close
// removes it; Wire.Close removes it sooner.
func (l *Lab) NewWire(a, b *Host, imp Impairment) (*Wire, error) {
	k := wireSeq.Add(1)
	third := l.Subnet.Addr().As4()[2]
	second := byte(120 + k%100)
	w := &Wire{
		A: a, B: b,
		IfaceA: fmt.Sprintf("wire%da", k),
		IfaceB: fmt.Sprintf("wire%db", k),
		AddrA:  netip.AddrFrom4([4]byte{10, second, third, 1}),
		AddrB:  netip.AddrFrom4([4]byte{10, second, third, 2}),
		Subnet: netip.PrefixFrom(netip.AddrFrom4([4]byte{10, second, third, 0}), 24),
		ns:     fmt.Sprintf("%s-w%d", l.Name, k),
	}
	w.Set(imp)
	l.mu.Lock()
	l.wires = append(l.wires, w)
	l.mu.Unlock()
	if err := w.build(); err != nil {
		w.Close()
		return nil, fmt.Errorf("netlab: wire %s-%s: %w", a.Name, b.Name, err)
	}
	return w, nil
}

// Set changes the impairment; frames already in flight keep theirs.
func (w *Wire) Set(imp Impairment) {
	if imp.QueueBytes <= 0 {
		imp.QueueBytes = 64 << 10
	}
	w.imp.Store(&imp)
}

// Stats returns the wire's counters.
func (w *Wire) Stats() WireStats {
	return WireStats{Passed: w.passed.Load(), Lost: w.lost.Load(), Overrun: w.overrun.Load()}
}

func (w *Wire) build() error {
	if err := ipCmd("netns", "add", w.ns); err != nil {
		return err
	}
	var err error
	// The devices are made in the wire's own namespace, never in the
	// machine's, then moved into the hosts; the open descriptors follow.
	if err = inNetns(w.ns, func() error {
		if w.fa, err = openTap(w.IfaceA); err != nil {
			return err
		}
		w.fb, err = openTap(w.IfaceB)
		return err
	}); err != nil {
		return err
	}
	steps := [][]string{
		{"-n", w.ns, "link", "set", w.IfaceA, "netns", w.A.NS},
		{"-n", w.ns, "link", "set", w.IfaceB, "netns", w.B.NS},
		{"-n", w.A.NS, "addr", "add", w.AddrA.String() + "/24", "dev", w.IfaceA},
		{"-n", w.B.NS, "addr", "add", w.AddrB.String() + "/24", "dev", w.IfaceB},
		{"-n", w.A.NS, "link", "set", w.IfaceA, "multicast", "on", "up"},
		{"-n", w.B.NS, "link", "set", w.IfaceB, "multicast", "on", "up"},
	}
	for _, s := range steps {
		if err := ipCmd(s...); err != nil {
			return err
		}
	}
	w.wg.Add(2)
	go w.pump(w.fa, w.fb)
	go w.pump(w.fb, w.fa)
	deadline := time.Now().Add(5 * time.Second)
	for !(lowerUp(w.A.NS, w.IfaceA) && lowerUp(w.B.NS, w.IfaceB)) {
		if time.Now().After(deadline) {
			return errors.New("devices not up after 5s")
		}
		time.Sleep(20 * time.Millisecond)
	}
	time.Sleep(settle)
	return nil
}

// lowerUp reports a device with carrier: a TAP device's operstate stays
// UNKNOWN, so its flags are what tell.
func lowerUp(ns, dev string) bool {
	out, err := ipOut("-n", ns, "-br", "link", "show", "dev", dev)
	return err == nil && strings.Contains(out, "LOWER_UP")
}

// Close removes the wire: the devices go with their descriptors. It is
// idempotent.
func (w *Wire) Close() error {
	var err error
	w.once.Do(func() {
		for _, f := range []*os.File{w.fa, w.fb} {
			if f != nil {
				f.Close() // unblocks the pump's read
			}
		}
		w.wg.Wait()
		if e := ipCmd("netns", "del", w.ns); e != nil && !strings.Contains(e.Error(), "No such file") {
			err = e
		}
	})
	return err
}

type frame struct {
	b   []byte
	due time.Time
}

// pump carries frames from one device to the other: a reader that decides
// each frame's fate and due time, and a writer that holds it until then.
func (w *Wire) pump(from, to *os.File) {
	defer w.wg.Done()
	q := make(chan frame, wireQueue)
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTimer(time.Hour)
		defer t.Stop()
		for f := range q {
			if d := time.Until(f.due); d > 0 {
				t.Reset(d)
				<-t.C
			}
			if _, err := to.Write(f.b); err == nil {
				w.passed.Add(1)
			}
		}
	}()
	defer func() { close(q); <-done }()

	var (
		lastDue   time.Time
		txEnd     time.Time // when the wire is free again, under Rate
		burstLeft int
		buf       = make([]byte, 65536)
	)
	for {
		n, err := from.Read(buf)
		if err != nil {
			return
		}
		imp := w.imp.Load()
		now := time.Now()
		if burstLeft > 0 {
			burstLeft--
			w.lost.Add(1)
			continue
		}
		if imp.Loss > 0 {
			burst := max(imp.Burst, 1)
			if rand.Float64() < imp.Loss/float64(burst) {
				burstLeft = burst - 1
				w.lost.Add(1)
				continue
			}
		}
		send := now
		if imp.Rate > 0 {
			if txEnd.Before(now) {
				txEnd = now
			}
			waiting := int(txEnd.Sub(now).Seconds() * float64(imp.Rate) / 8)
			if waiting+n > imp.QueueBytes {
				w.overrun.Add(1)
				continue
			}
			txEnd = txEnd.Add(time.Duration(float64(n*8) / float64(imp.Rate) * float64(time.Second)))
			send = txEnd
		}
		delay := imp.Delay
		if imp.Jitter > 0 {
			delay += time.Duration(rand.Int64N(int64(2*imp.Jitter)+1)) - imp.Jitter
		}
		due := send.Add(max(delay, 0))
		if due.Before(lastDue) {
			due = lastDue
		}
		lastDue = due
		select {
		case q <- frame{b: append([]byte(nil), buf[:n]...), due: due}:
		default:
			w.overrun.Add(1)
		}
	}
}

// openTap makes a TAP device named name in the calling thread's network
// namespace and returns its descriptor, non-blocking so that Close
// unblocks a read.
func openTap(name string) (*os.File, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_NONBLOCK|unix.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("open /dev/net/tun: %w", err)
	}
	var req [unix.IFNAMSIZ + 64]byte
	copy(req[:unix.IFNAMSIZ-1], name)
	*(*uint16)(unsafe.Pointer(&req[unix.IFNAMSIZ])) = unix.IFF_TAP | unix.IFF_NO_PI
	if _, _, errno := unix.Syscall(unix.SYS_IOCTL, uintptr(fd), uintptr(unix.TUNSETIFF), uintptr(unsafe.Pointer(&req[0]))); errno != 0 {
		unix.Close(fd)
		return nil, fmt.Errorf("TUNSETIFF %s: %w", name, errno)
	}
	return os.NewFile(uintptr(fd), name), nil
}

// inNetns runs fn on an OS thread switched into the named network
// namespace. Sockets and devices fn makes belong to that namespace and keep
// working after the thread switches back. If the thread cannot switch back
// it is discarded rather than returned to the scheduler.
func inNetns(ns string, fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		orig, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			errc <- err
			return
		}
		defer orig.Close()
		target, err := os.Open("/var/run/netns/" + ns)
		if err != nil {
			runtime.UnlockOSThread()
			errc <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			errc <- fmt.Errorf("setns %s: %w", ns, err)
			return
		}
		ferr := fn()
		if err := unix.Setns(int(orig.Fd()), unix.CLONE_NEWNET); err != nil {
			// Leave the thread locked: it ends with this goroutine.
			errc <- errors.Join(ferr, fmt.Errorf("setns back: %w", err))
			return
		}
		runtime.UnlockOSThread()
		errc <- ferr
	}()
	return <-errc
}

// Do runs fn inside the host's network namespace, on a thread of this
// process: sockets fn opens live in the host and keep working afterwards,
// so a test can talk from a host without starting a process there.
func (h *Host) Do(fn func() error) error { return inNetns(h.NS, fn) }

// Nft runs an nftables script (nft -f) inside the host: packet loss, a
// blocked port, a dropped protocol. The rules go with the host's namespace.
// See ../shared/NETLAB.md for examples; Available does not check for nft.
func (h *Host) Nft(script string) error {
	ctx, cancel := context.WithTimeout(context.Background(), cmdTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", h.NS, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(script)
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("netlab: nft in %s: %w: %s", h.Name, err, strings.TrimSpace(string(out)))
	}
	return nil
}

// DropPercent makes the host drop pct percent of what it sends (out) and of
// what it receives (in), at random, TCP included, through nftables. Calling
// it again replaces the rules; 0 and 0 removes them.
func (h *Host) DropPercent(out, in int) error {
	script := "table inet netlab_loss\ndelete table inet netlab_loss\n"
	if out > 0 || in > 0 {
		script += "table inet netlab_loss {\n"
		script += "  chain out { type filter hook output priority 0; policy accept;\n"
		if out > 0 {
			script += dropRule(out)
		}
		script += "  }\n  chain in { type filter hook input priority 0; policy accept;\n"
		if in > 0 {
			script += dropRule(in)
		}
		script += "  }\n}\n"
	}
	return h.Nft(script)
}

func dropRule(pct int) string {
	if pct >= 100 {
		return "    drop\n"
	}
	return fmt.Sprintf("    numgen random mod 100 < %d drop\n", pct)
}
