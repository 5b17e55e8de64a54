package main

import (
	"flag"
	"io"
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lanmesh/lanmesh/mesh"
)

// flagsConfig parses args as a mesh command's flags and builds the config.
func flagsConfig(t *testing.T, args ...string) (mesh.NodeConfig, error) {
	t.Helper()
	fs := flag.NewFlagSet("test", flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	nf := addNodeFlags(fs)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("parse %v: %v", args, err)
	}
	return nodeConfig(nf, io.Discard)
}

func TestNodeConfigDefaults(t *testing.T) {
	cfg, err := flagsConfig(t)
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Discovery
	switch {
	case cfg.Mesh != "lanmesh" || cfg.Codec != "binary" || cfg.Name == "":
		t.Errorf("identity: %q %q %q", cfg.Mesh, cfg.Codec, cfg.Name)
	case !slices.Equal(cfg.Net.Listen, []string{":0"}):
		t.Errorf("listen %v: want every interface, any port", cfg.Net.Listen)
	case d.BeaconPort != 8222 || !d.Broadcast || !d.MDNS || len(d.Interfaces) > 0 || len(d.Destinations) > 0:
		t.Errorf("discovery is not the LAN default: %+v", d)
	case d.Interval != time.Second || d.LostAfter != 3*time.Second:
		t.Errorf("timers %v %v", d.Interval, d.LostAfter)
	case cfg.Discovery.Off || cfg.CableCar.Enabled || len(cfg.Net.Peers) > 0:
		t.Errorf("extras on: %+v", cfg)
	case cfg.Logger == nil:
		t.Error("no logger: warnings would be lost")
	}
}

func TestNodeConfigFlags(t *testing.T) {
	cfg, err := flagsConfig(t, "--mesh", "game", "--name", "ann", "--codec", "json", "--port", "7000",
		"--beacon-port", "9000", "--iface", "eth0,wlan0", "--iface", "eth2", "--no-mdns",
		"--peer", "10.0.0.2:7000", "--peer", "10.0.0.3:7000", "--cablecar", "--interval", "200ms")
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Discovery
	switch {
	case cfg.Mesh != "game" || cfg.Name != "ann" || cfg.Codec != "json":
		t.Errorf("identity: %+v", cfg.Link)
	case !slices.Equal(cfg.Net.Listen, []string{":7000"}):
		t.Errorf("listen %v", cfg.Net.Listen)
	case d.BeaconPort != 9000 || !slices.Equal(d.Interfaces, []string{"eth0", "wlan0", "eth2"}) || d.MDNS || !d.Broadcast:
		t.Errorf("discovery %+v", d)
	case !slices.Equal(cfg.Net.Peers, []string{"10.0.0.2:7000", "10.0.0.3:7000"}):
		t.Errorf("peers %v", cfg.Net.Peers)
	case !cfg.CableCar.Enabled || cfg.CableCar.Listen != ":8223":
		t.Errorf("cable_car %+v", cfg.CableCar)
	case d.Interval != 200*time.Millisecond || d.LostAfter != 600*time.Millisecond:
		t.Errorf("timers %v %v", d.Interval, d.LostAfter)
	}
}

// TestNodeConfigLoopback: --loopback must keep every packet on lo.
func TestNodeConfigLoopback(t *testing.T) {
	cfg, err := flagsConfig(t, "--loopback", "--beacon-port", "9100", "--cablecar")
	if err != nil {
		t.Fatal(err)
	}
	d := cfg.Discovery
	want := []netip.AddrPort{netip.MustParseAddrPort("127.255.255.255:9100")}
	switch {
	case !slices.Equal(cfg.Net.Listen, []string{"127.0.0.1:0"}):
		t.Errorf("listen %v", cfg.Net.Listen)
	case !slices.Equal(d.Interfaces, []string{"lo"}) || !slices.Equal(d.Destinations, want) || d.MDNS:
		t.Errorf("discovery leaves loopback: %+v", d)
	case cfg.CableCar.Listen != "127.0.0.1:8223" ||
		!slices.Equal(cfg.CableCar.Destinations, []netip.AddrPort{netip.MustParseAddrPort("127.255.255.255:8222")}):
		t.Errorf("cable_car leaves loopback: %+v", cfg.CableCar)
	}
	cfg, err = flagsConfig(t, "--loopback", "--no-broadcast", "--peer", "127.0.0.1:7000")
	if err != nil || !cfg.Discovery.Off {
		t.Errorf("loopback with seeds only: %v, discovery on: %v", err, !cfg.Discovery.Off)
	}
}

func TestNodeConfigErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--codec", "xml"}, `--codec "xml"`},
		{[]string{"--mesh", ""}, "--mesh"},
		{[]string{"--port", "70000"}, "--port 70000"},
		{[]string{"--beacon-port", "0"}, "--beacon-port 0"},
		{[]string{"--interval", "0s"}, "--interval"},
		{[]string{"--cablecar", "--codec", "msgpack"}, "msgpack"},
		{[]string{"--peer", "nohost"}, "give host:port"},
		{[]string{"--peer", "nohost:http"}, "not a number"},
		{[]string{"--loopback", "--iface", "eth0"}, "contradict"},
		{[]string{"--name", strings.Repeat("x", 300)}, "Name"},
	} {
		if _, err := flagsConfig(t, tc.args...); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%v: %v, want an error about %s", tc.args, err, tc.want)
		}
	}
	cfg, err := flagsConfig(t, "--no-broadcast", "--no-mdns", "--peer", "10.0.0.2:7000")
	if err != nil || !cfg.Discovery.Off {
		t.Errorf("seeds only: %v, NoDiscovery %v", err, cfg.Discovery.Off)
	}
	// A node that only accepts links, which the others name with --peer.
	if cfg, err := flagsConfig(t, "--no-broadcast", "--no-mdns"); err != nil || !cfg.Discovery.Off {
		t.Errorf("listen only: %v, NoDiscovery %v", err, cfg.Discovery.Off)
	}
}

// TestBadFlagExits: a flag that does not parse is reported with the usage,
// a bad value in one line with where the flags are; both exit 2, at start.
func TestBadFlagExits(t *testing.T) {
	code, _, errOut := runCmd(t, "run", "--bogus")
	if code != 2 || !strings.Contains(errOut, "bogus") || !strings.Contains(errOut, "Usage: lanmesh run") {
		t.Errorf("exit %d: %s", code, errOut)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"run", "--codec", "xml"}, `--codec "xml"`},
		{[]string{"run", "--iface", "wlan9"}, "--iface wlan9: there is no such interface here; this machine has lo"},
		{[]string{"chat", "--peer", "nohost"}, "--peer nohost: give host:port"},
		{[]string{"doctor", "--iface", "wlan9"}, "no such interface"},
		{[]string{"peers", "--wait", "0s"}, "--wait"},
	} {
		code, _, errOut := runCmd(t, tc.args...)
		if code != 2 || !strings.Contains(errOut, tc.want) || strings.Contains(errOut, "Usage:") ||
			!strings.Contains(errOut, "--help\" for the flags") {
			t.Errorf("%v: exit %d: %s", tc.args, code, errOut)
		}
	}
}
