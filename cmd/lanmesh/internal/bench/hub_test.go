package bench

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/lanmesh/lanmesh/hub"
	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
)

// TestNATSEchoPair: the plain NATS baseline answers on the embedded hub,
// and everything it opened is closed after.
func TestNATSEchoPair(t *testing.T) {
	leaktest.Check(t)
	srv, err := hub.StartServer(hub.ServerOptions{Listen: "127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	var cl closers
	defer func() { cl.close() }()
	nc, err := natsEchoPair(srv.URL(), &cl)
	if err != nil {
		t.Fatal(err)
	}
	for i := range 10 {
		m, err := nc.Request(natsEchoSubject, []byte{byte(i)}, 5*time.Second)
		if err != nil || !bytes.Equal(m.Data, []byte{byte(i)}) {
			t.Fatalf("request %d: %v", i, err)
		}
	}
}

// TestHubPart runs the hub part with tiny counts: every figure measured,
// beside its baseline, and nothing left running.
func TestHubPart(t *testing.T) {
	leaktest.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	var progress bytes.Buffer
	r := &runner{opts: Options{Quick: true}, reps: 1, progress: &progress, part: "hub"}
	res, err := hubResults(ctx, r, 50, 2)
	if err != nil {
		t.Fatal(err)
	}
	if len(res) != 8 {
		t.Fatalf("%d results: %+v", len(res), res)
	}
	for i, x := range res {
		if x.Median <= 0 || x.N != 1 || (i < 6) != (x.Baseline != nil && x.Baseline.Median > 0) {
			t.Errorf("result %+v", x)
		}
	}
	for _, want := range []string{"[hub] 32 B round trip: rep 1/1: p50: cross-site ", "[hub] 32 B round trip, keyed: rep 1/1: p50 ", "[hub] presence: rep 1/1: p50 "} {
		if !strings.Contains(progress.String(), want) {
			t.Errorf("no %q in the progress:\n%s", want, progress.String())
		}
	}
}
