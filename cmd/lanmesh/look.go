package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/google/uuid"

	"github.com/lanmesh/lanmesh/codec"
	"github.com/lanmesh/lanmesh/discovery"
	"github.com/lanmesh/lanmesh/internal/ifaddr"
	"github.com/lanmesh/lanmesh/mesh"
	"github.com/lanmesh/lanmesh/meshkey"
)

// lookFlags are the flags of the commands that look at the LAN without
// joining it (doctor, browse, peers): they hear beacons and ask mDNS, and
// send nothing that makes them a peer.
type lookFlags struct {
	mesh       string
	codec      string
	beaconPort int
	ifaces     listFlag
	loopback   bool
	noMDNS     bool
	wait       time.Duration
	key        string
	keyFile    string
	json       bool
}

// parseLook parses the flags of a command that looks without joining
// (browse, doctor, peers) and reads the key they name.
// With hf, it also has --hub and its login flags (hubUsage says what
// --hub does).
func parseLook(name, summary string, wait time.Duration, args []string, std stdio, hf *hubFlags, hubUsage string) (*lookFlags, meshkey.Keyring, error) {
	fs := newFlags(name, summary, std.err)
	f := addLookFlags(fs, wait)
	if hf != nil {
		hf.registerLogin(fs, hubUsage)
	}
	if err := parse(fs, args); err != nil {
		return nil, meshkey.Keyring{}, err
	}
	if err := f.check(); err != nil {
		return nil, meshkey.Keyring{}, usageError(fs, err)
	}
	if hf != nil {
		if err := hf.check(); err != nil {
			return nil, meshkey.Keyring{}, usageError(fs, err)
		}
	}
	kr, err := keyFromFlags(f.key, f.keyFile, os.Getenv)
	if err != nil {
		return nil, meshkey.Keyring{}, usageError(fs, err)
	}
	return f, kr, nil
}

func addLookFlags(fs *flag.FlagSet, wait time.Duration) *lookFlags {
	f := &lookFlags{}
	fs.StringVar(&f.mesh, "mesh", mesh.DefaultMesh, "the mesh `name` a node here would join")
	fs.StringVar(&f.codec, "codec", mesh.DefaultCodec, "the `codec` a node here would speak: "+strings.Join(codec.Names(), ", "))
	fs.IntVar(&f.beaconPort, "beacon-port", discovery.DefaultBeaconPort, "UDP `port` of discovery beacons")
	fs.Var(&f.ifaces, "iface", "look only on these `interfaces` (comma-separated or repeated)")
	fs.BoolVar(&f.loopback, "loopback", false, "look on this machine only: beacons on lo, no mDNS")
	fs.BoolVar(&f.noMDNS, "no-mdns", false, "do not ask mDNS")
	fs.DurationVar(&f.wait, "wait", wait, "how long to listen; nodes beacon once a second")
	fs.StringVar(&f.key, "key", "", "the mesh `key` a node here would have (default: $"+meshkey.EnvVar+")")
	fs.StringVar(&f.keyFile, "key-file", "", "read the mesh key from `file`")
	fs.BoolVar(&f.json, "json", false, "print JSON")
	return f
}

// check validates the flags; its errors are usage errors.
func (f *lookFlags) check() error {
	switch {
	case f.mesh == "":
		return errors.New("--mesh must not be empty")
	case !slices.Contains(codec.Names(), f.codec):
		return fmt.Errorf("--codec %q: want one of %s", f.codec, strings.Join(codec.Names(), ", "))
	case f.beaconPort <= 0 || f.beaconPort > 65535:
		return fmt.Errorf("--beacon-port %d: want 1 to 65535", f.beaconPort)
	case f.wait <= 0:
		return fmt.Errorf("--wait %v: want a positive duration", f.wait)
	case f.loopback && len(f.ifaces) > 0:
		return errors.New("--loopback and --iface contradict each other")
	}
	return checkInterfaces(f.ifaces)
}

// checkInterfaces fails for a name that is no interface of this machine,
// naming the ones there are.
func checkInterfaces(names []string) error {
	if len(names) == 0 {
		return nil
	}
	all, err := ifaddr.List(nil)
	if err != nil {
		return nil // the node will say so; nothing to check against
	}
	var have []string
	for _, it := range all {
		have = append(have, it.Name)
	}
	for _, n := range names {
		if !slices.Contains(have, n) {
			return fmt.Errorf("--iface %s: there is no such interface here; this machine has %s", n, strings.Join(have, ", "))
		}
	}
	return nil
}

// heardNode is a node heard on the LAN, from its beacons and mDNS answers,
// and what a probe of its TCP port learnt.
type heardNode struct {
	discovery.Heard
	Via     []string // broadcast, mdns
	Beacons int

	Probed   bool
	Connect  time.Duration
	ProbeErr error
	Codec    string // from its Hello; "" when not read (keyed, or unreachable)
}

// lanLook is what looking at the LAN found.
type lanLook struct {
	nodes map[uuid.UUID]*heardNode
	// Broadcast echo: where it went, how often it came back, what failed.
	echoDests []netip.AddrPort
	echoBack  int
	echoErr   error
	mdnsErr   error
}

// sorted returns the nodes by mesh, then name, then id.
func (lk *lanLook) sorted() []*heardNode {
	out := make([]*heardNode, 0, len(lk.nodes))
	for _, n := range lk.nodes {
		out = append(out, n)
	}
	sort.Slice(out, func(i, j int) bool {
		a, b := out[i], out[j]
		if a.Mesh != b.Mesh {
			return a.Mesh < b.Mesh
		}
		if a.Name != b.Name {
			return a.Name < b.Name
		}
		return a.ID.String() < b.ID.String()
	})
	return out
}

// maxHeard bounds the nodes remembered, against forged beacons.
const maxHeard = 4096

func (lk *lanLook) add(h discovery.Heard, via string) {
	n := lk.nodes[h.ID]
	if n == nil {
		if len(lk.nodes) >= maxHeard {
			return
		}
		n = &heardNode{Heard: h}
		lk.nodes[h.ID] = n
	}
	if via == "broadcast" {
		// A beacon is fresher than an mDNS record: it carries the key id
		// and the source address the node really sends from.
		n.Heard = h
		n.Beacons++
	}
	if !slices.Contains(n.Via, via) {
		n.Via = append(n.Via, via)
	}
}

// broadcastDests are where a node here would send its beacons.
func broadcastDests(f *lookFlags) []netip.AddrPort {
	port := uint16(f.beaconPort)
	if f.loopback {
		return []netip.AddrPort{netip.AddrPortFrom(netip.AddrFrom4([4]byte{127, 255, 255, 255}), port)}
	}
	ifs, _ := ifaddr.List(f.ifaces)
	var out []netip.AddrPort
	for _, a := range ifaddr.BroadcastTargets(ifs) {
		out = append(out, netip.AddrPortFrom(a, port))
	}
	if len(f.ifaces) == 0 {
		out = append(out, netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), port))
	}
	return out
}

// lookAround listens for f.wait to the beacons of every mesh and asks
// mDNS, sending at most an echo probe (with echo): nothing that makes it a
// peer. Then, with probe, it opens a TCP connection to each node heard (reading its Hello
// when unkeyed) and hangs up.
func lookAround(parent context.Context, f *lookFlags, kr meshkey.Keyring, echo, probe bool) (*lanLook, error) {
	lk := &lanLook{nodes: make(map[uuid.UUID]*heardNode)}
	l, err := discovery.NewListener(f.beaconPort, kr, f.mesh)
	if err != nil {
		return nil, plainListenError(err, f.beaconPort)
	}
	defer l.Close()
	ctx, cancel := context.WithTimeout(parent, f.wait)
	defer cancel()

	var mu sync.Mutex // guards lk until the listeners are done
	var wg sync.WaitGroup
	if !f.noMDNS && !f.loopback {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Answers come within a few hundred milliseconds; asking near
			// the end leaves time for the beacons to come first.
			heard, err := discovery.BrowseMDNS(ctx, discovery.DefaultMDNSService, f.ifaces, min(f.wait*3/4, 2*time.Second), kr, f.mesh)
			mu.Lock()
			defer mu.Unlock()
			if err != nil && ctx.Err() == nil {
				lk.mdnsErr = err
			}
			for _, h := range heard {
				lk.add(h, "mdns")
			}
		}()
	}
	// With --iface, a node believes only beacons from those interfaces'
	// networks; so does the look.
	var only []netip.Prefix
	if len(f.ifaces) > 0 {
		ifs, _ := ifaddr.List(f.ifaces)
		only = ifaddr.AllPrefixes(ifs)
	}
	if echo {
		lk.echoDests = broadcastDests(f)
		lk.echoErr = l.SendEcho(lk.echoDests)
	}
	err = l.Run(ctx, func(h discovery.Heard) {
		if h.Flags&discovery.FlagLeaving != 0 || (len(f.ifaces) > 0 && !ifaddr.OnLink(only, h.From.Addr())) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		lk.add(h, "broadcast")
	}, func(netip.AddrPort) {
		mu.Lock()
		lk.echoBack++
		mu.Unlock()
	})
	wg.Wait()
	if err != nil {
		return nil, err
	}
	if probe {
		probeAll(parent, lk)
	}
	return lk, ctxErr(parent)
}

// opaque reports a keyed node whose beacons no key here opens: only its
// source address and key id are known.
func (n *heardNode) opaque() bool { return n.Keyed && !n.Verified }

// where is the node's address as far as it is known: a sealed node's port
// is not.
func (n *heardNode) where() string {
	if n.opaque() {
		return n.From.Addr().String()
	}
	return n.Addr().String()
}

// probeTimeout bounds a probe; a node of the LAN answers in a millisecond.
const probeTimeout = time.Second

// probeAll probes every node heard, 16 at a time.
func probeAll(ctx context.Context, lk *lanLook) {
	sem := make(chan struct{}, 16)
	var wg sync.WaitGroup
	for _, n := range lk.nodes {
		if n.opaque() {
			continue // its port is sealed: nothing to dial
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			pctx, cancel := context.WithTimeout(ctx, probeTimeout)
			defer cancel()
			r, err := mesh.Probe(pctx, n.Addr().String(), !n.Keyed)
			n.Probed, n.Connect, n.ProbeErr = true, r.Connect, err
			if r.HasHello {
				n.Codec = r.Codec
			}
			if err != nil && r.Connect > 0 {
				// Connected, but no Hello: still reachable.
				n.ProbeErr = nil
			}
		}()
	}
	wg.Wait()
}

// refused and silent classify a probe's failure.
func refused(err error) bool { return errors.Is(err, syscall.ECONNREFUSED) }

func silent(err error) bool {
	var ne net.Error
	return errors.Is(err, context.DeadlineExceeded) || (errors.As(err, &ne) && ne.Timeout()) ||
		errors.Is(err, syscall.EHOSTUNREACH) || errors.Is(err, syscall.ENETUNREACH)
}

// plainListenError says in words why the beacon port cannot be bound.
func plainListenError(err error, port int) error {
	switch {
	case errors.Is(err, syscall.EADDRINUSE):
		return fmt.Errorf("UDP port %d is held by a program that does not share it; stop it, or use another --beacon-port on every node", port)
	case errors.Is(err, syscall.EACCES) || errors.Is(err, os.ErrPermission):
		return fmt.Errorf("not allowed to open UDP port %d here (a sandbox or firewall policy)", port)
	}
	return err
}
