//go:build linux

package netlab

import (
	"context"
	"os"
)

// The entry points for tests. They take a TB, not a testing.TB, so that
// this package does not import testing: lanmesh bench builds labs with
// Build and Host.Start, and the shipped binary must not link the testing
// package (CI checks it).

// TB is the part of testing.TB that the lab uses; *testing.T and
// *testing.B satisfy it.
type TB interface {
	Helper()
	Logf(format string, args ...any)
	Skipf(format string, args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// New builds a lab of n hosts and registers its removal with t.Cleanup.
// It skips the test when Available says no, and fails it if the lab
// cannot be built (removing what was made).
func New(t TB, n int) *Lab {
	t.Helper()
	if err := Available(); err != nil {
		t.Skipf("skipping multi-host test: %v", err)
	}
	l, err := build(context.Background(), n, t.Logf)
	if l != nil {
		l.t = t
		t.Cleanup(func() { l.Close() })
	}
	if err != nil {
		t.Fatalf("netlab: build: %v", err)
	}
	return l
}

// AddLAN joins every host to a new LAN: a bridge namespace of its own, an
// interface eth<k> in each host with address 10.<77+k>.x.<i>/24 (the same
// host number as on the first LAN), and no route beyond the subnet. It
// fails the test if the LAN cannot be built; Cleanup removes it. It is for
// labs made by New; others use NewLAN.
func (l *Lab) AddLAN() *LAN {
	l.t.Helper()
	lan, err := l.NewLAN()
	if err != nil {
		l.t.Fatalf("netlab: %v", err)
	}
	return lan
}

// HelperEnv names the environment variable that tells a re-executed test
// binary which role to play.
const HelperEnv = "LANMESH_NETLAB_HELPER"

// HelperRole returns the role this process was started for by StartHelper,
// or "" in an ordinary test run. The test binary's TestHelperProcess
// switches on it:
//
//	func TestHelperProcess(t *testing.T) {
//		switch netlab.HelperRole() {
//		case "":
//			return // an ordinary run
//		case "node":
//			runNode() // print lines on stdout; exit when told
//		}
//	}
func HelperRole() string { return os.Getenv(HelperEnv) }

// StartHelper runs this test binary in the host with the given role and
// extra environment ("K=V"), running only TestHelperProcess. The child's
// stdout lines are read by Next and WaitLine. The child is killed if the
// test process dies, and killed and reaped by t.Cleanup.
func (h *Host) StartHelper(t TB, role string, env ...string) *Proc {
	t.Helper()
	env = append([]string{HelperEnv + "=" + role}, env...)
	p, err := h.Start(os.Args[0], []string{"-test.run=^TestHelperProcess$", "-test.count=1"}, env...)
	if err != nil {
		t.Fatalf("netlab: helper %s: %v", role, err)
	}
	t.Cleanup(func() { p.Kill() })
	return p
}
