package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/lanmesh/lanmesh/codec"
	"github.com/lanmesh/lanmesh/discovery"
	"github.com/lanmesh/lanmesh/hub"
	"github.com/lanmesh/lanmesh/mesh"
	"github.com/lanmesh/lanmesh/meshkey"
)

// nodeFlags are the flags every command that joins a mesh shares. Their
// defaults work on a LAN with no set-up.
type nodeFlags struct {
	mesh        string
	name        string
	codec       string
	port        int
	beaconPort  int
	ifaces      listFlag
	noBroadcast bool
	noMDNS      bool
	peers       listFlag
	cablecar    bool
	loopback    bool
	interval    time.Duration
	verbose     bool
	key         string
	keyFile     string
	hub         hubFlags
}

// listFlag is a flag that may be given several times, each time with one
// value or a comma-separated list.
type listFlag []string

func (l *listFlag) String() string { return strings.Join(*l, ",") }

func (l *listFlag) Set(s string) error {
	for v := range strings.SplitSeq(s, ",") {
		if v = strings.TrimSpace(v); v != "" {
			*l = append(*l, v)
		}
	}
	return nil
}

func addNodeFlags(fs *flag.FlagSet) *nodeFlags {
	f := &nodeFlags{}
	host, _ := os.Hostname()
	fs.StringVar(&f.mesh, "mesh", mesh.DefaultMesh, "`name` of the mesh to join; nodes of other meshes are invisible")
	fs.StringVar(&f.name, "name", host, "this node's `name` for people")
	fs.StringVar(&f.codec, "codec", mesh.DefaultCodec, "message `codec`: "+strings.Join(codec.Names(), ", ")+"; every node of a mesh must agree")
	fs.IntVar(&f.port, "port", 0, "TCP `port` to accept links on (0: any free port)")
	fs.IntVar(&f.beaconPort, "beacon-port", discovery.DefaultBeaconPort, "UDP `port` of discovery beacons, shared by the whole LAN")
	fs.Var(&f.ifaces, "iface", "discover only on these `interfaces` (comma-separated or repeated; default every suitable one)")
	fs.BoolVar(&f.noBroadcast, "no-broadcast", false, "do not send or hear UDP broadcast beacons")
	fs.BoolVar(&f.noMDNS, "no-mdns", false, "do not publish or browse mDNS")
	fs.Var(&f.peers, "peer", "link with the node at `host:port` whether or not it is discovered (repeatable)")
	fs.BoolVar(&f.cablecar, "cablecar", false, "also speak to Python cable_car programs (TCP port 8223, \"BROADCAST\" beacons)")
	fs.BoolVar(&f.loopback, "loopback", false, "stay on this machine: listen on 127.0.0.1, discover on lo via 127.255.255.255, no mDNS")
	fs.DurationVar(&f.interval, "interval", discovery.DefaultInterval, "time between discovery beacons; a peer is lost after 3 of them")
	fs.BoolVar(&f.verbose, "verbose", false, "log what the node does (on stderr), not only warnings")
	fs.StringVar(&f.key, "key", "", "the mesh `key` (from lanmesh keygen): authenticate beacons and encrypt links (default: $"+meshkey.EnvVar+")")
	fs.StringVar(&f.keyFile, "key-file", "", "read the mesh key from `file` (one key a line: the first is used, the rest accepted)")
	f.hub.register(fs)
	return f
}

// nodeConfig turns the flags into a node configuration. It does no I/O
// beyond keeping logOut for the logger; its errors are the user's (a bad
// flag or a combination that cannot work).
func nodeConfig(f *nodeFlags, logOut io.Writer) (mesh.NodeConfig, error) {
	cfg := mesh.DefaultNodeConfig()
	switch {
	case f.mesh == "":
		return cfg, errors.New("--mesh must not be empty")
	case !slices.Contains(codec.Names(), f.codec):
		return cfg, fmt.Errorf("--codec %q: want one of %s", f.codec, strings.Join(codec.Names(), ", "))
	case f.port < 0 || f.port > 65535:
		return cfg, fmt.Errorf("--port %d: want 0 to 65535", f.port)
	case f.beaconPort <= 0 || f.beaconPort > 65535:
		return cfg, fmt.Errorf("--beacon-port %d: want 1 to 65535", f.beaconPort)
	case f.interval <= 0:
		return cfg, fmt.Errorf("--interval %v: want a positive duration", f.interval)
	case f.cablecar && f.codec == "msgpack":
		return cfg, errors.New("--cablecar: cable_car speaks the binary or json codec, not msgpack")
	case f.loopback && len(f.ifaces) > 0:
		return cfg, errors.New("--loopback and --iface contradict each other")
	}
	for _, p := range f.peers {
		if err := checkPeerAddr(p); err != nil {
			return cfg, err
		}
	}
	cfg.Mesh = f.mesh
	cfg.Name = f.name
	cfg.Codec = f.codec
	cfg.Net.Listen = []string{fmt.Sprintf(":%d", f.port)}
	cfg.Net.Peers = slices.Clone(f.peers)

	d := &cfg.Discovery
	d.BeaconPort = f.beaconPort
	d.Interfaces = slices.Clone(f.ifaces)
	d.Broadcast = !f.noBroadcast
	d.MDNS = !f.noMDNS
	d.Interval = f.interval
	d.Jitter = f.interval / 10
	d.MDNSInterval = f.interval
	d.LostAfter = 3 * f.interval
	d.MDNSTimeout = min(d.MDNSTimeout, f.interval/2)
	cfg.Discovery.Off = f.noBroadcast && f.noMDNS

	cfg.CableCar.Enabled = f.cablecar
	if f.loopback {
		cfg.UseLoopback(f.beaconPort)
		cfg.Net.Listen = []string{fmt.Sprintf("127.0.0.1:%d", f.port)}
		if f.noBroadcast {
			cfg.Discovery.Off = true
		}
	}

	cfg.Logger = slog.New(newLineHandler(logOut, f.verbose))
	if err := cfg.Validate(); err != nil {
		return cfg, err
	}
	return cfg, nil
}

// checkPeerAddr fails for a --peer that is not host:port.
func checkPeerAddr(p string) error {
	host, port, err := net.SplitHostPort(p)
	if err != nil || host == "" {
		return fmt.Errorf("--peer %s: give host:port, such as %s:7000 (the port is the one the node prints when it starts, or its --port)", p, strings.TrimSuffix(p, ":"))
	}
	if n, err := strconv.Atoi(port); err != nil || n <= 0 || n > 65535 {
		return fmt.Errorf("--peer %s: the port %q is not a number from 1 to 65535", p, port)
	}
	return nil
}

// parseNode parses a mesh command's flags and builds its node
// configuration. A flag that does not parse is reported with the usage, a
// bad value in one line (both errUsage); a key that cannot be read is an
// ordinary error.
func parseNode(fs *flag.FlagSet, nf *nodeFlags, args []string, stderr io.Writer) (mesh.NodeConfig, error) {
	if err := parse(fs, args); err != nil {
		return mesh.NodeConfig{}, err
	}
	cfg, err := nodeConfig(nf, stderr)
	if err == nil {
		err = nf.hub.check()
	}
	if err == nil {
		err = checkInterfaces(nf.ifaces)
	}
	if err != nil {
		return cfg, usageError(fs, err)
	}
	if cfg.Keyring, err = keyFromFlags(nf.key, nf.keyFile, os.Getenv); err != nil {
		return cfg, usageError(fs, err)
	}
	if cfg.Discovery.Off && len(cfg.Net.Peers) == 0 {
		fmt.Fprintf(stderr, "%s: no discovery and no --peer: this node only accepts links; give the others --peer with its address\n", fs.Name())
	}
	return cfg, nil
}

// startNode starts a node and joins it to the hub that --hub names (the
// bridge is nil without --hub), turning the errors a user can act on into
// words that name the flag to change. Close the bridge (closeHub) before
// the node.
func startNode(cfg mesh.NodeConfig, nf *nodeFlags) (*mesh.Node, *hub.Bridge, error) {
	n, err := newNode(cfg, nf)
	if err != nil {
		return nil, nil, err
	}
	b, err := joinHub(n, &nf.hub, cfg.Logger)
	if err != nil {
		n.Close()
		return nil, nil, err
	}
	return n, b, nil
}

func newNode(cfg mesh.NodeConfig, nf *nodeFlags) (*mesh.Node, error) {
	n, err := mesh.NewNode(cfg)
	if err == nil {
		return n, nil
	}
	if errors.Is(err, syscall.EADDRINUSE) {
		if strings.Contains(err.Error(), "cable_car") {
			return nil, fmt.Errorf("port %d, cable_car's, is in use (--cablecar): %w", mesh.CableCarPort, err)
		}
		if nf.port != 0 {
			return nil, fmt.Errorf("port %d is in use (--port)", nf.port)
		}
	}
	if errors.Is(err, discovery.ErrListen) {
		return nil, plainListenError(err, nf.beaconPort)
	}
	return nil, errors.New(plainErr(err))
}
