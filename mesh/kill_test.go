package mesh

import (
	"os"
	"os/exec"
	"testing"
	"time"

	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
)

// childAddrEnv carries the address a child test process dials.
const childAddrEnv = "LANMESH_TEST_CHILD_ADDR"

// TestChildPeer is not a test on its own: TestPeerProcessKilled runs the test
// binary again with only this test, as the peer process it then kills.
func TestChildPeer(t *testing.T) {
	addr := os.Getenv(childAddrEnv)
	if addr == "" {
		t.Skip("runs as the child of TestPeerProcessKilled")
	}
	m, err := Dial(testCtx(t, 10*time.Second), testConfig(t), addr)
	if err != nil {
		t.Fatal(err)
	}
	m.Send(&Msg32{Seq: 0})
	m.Xfer()
	// Wait to be killed; bounded, should the parent be gone.
	select {
	case <-m.Done():
	case <-time.After(30 * time.Second):
	}
}

// TestPeerProcessKilled kills a real peer process mid-link: its kernel closes
// the socket and the link notices at once, with no Bye and no silence.
func TestPeerProcessKilled(t *testing.T) {
	leaktest.Check(t)
	cfg := testConfig(t)
	cfg.Link.Silence = time.Minute // so that only the hang-up can end the link
	cfg.Link.PingInterval = time.Second
	ln, err := Listen(cfg, "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	child := exec.Command(os.Args[0], "-test.run=^TestChildPeer$")
	child.Env = append(os.Environ(), childAddrEnv+"="+ln.Addr().String())
	if err := child.Start(); err != nil {
		t.Fatal(err)
	}
	defer child.Wait()
	defer child.Process.Kill()
	m, err := ln.Accept(testCtx(t, 20*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	receiveN(t, m, 1, 10*time.Second)
	if err := child.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	wantClose(t, waitDone(t, m.l, 10*time.Second), ErrConnLost, true)
}
