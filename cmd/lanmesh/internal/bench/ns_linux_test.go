package bench

import (
	"context"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lanmesh/lanmesh/lanmeshtest/netlab"
)

// nsOptions runs the namespace nodes as this test binary (see TestMain).
func nsOptions(only ...string) Options {
	return Options{Quick: true, Reps: 1, Only: only, NodeExe: os.Args[0], NodeEnv: []string{testNodeEnv + "=1"}}
}

func ourNamespaces(t *testing.T) string {
	t.Helper()
	out, err := exec.Command("ip", "netns", "list").CombinedOutput()
	if err != nil {
		t.Fatal(err)
	}
	var ours []string
	for _, l := range strings.Split(string(out), "\n") {
		if strings.HasPrefix(l, "lmt"+strconv.Itoa(os.Getpid())+"-") {
			ours = append(ours, l)
		}
	}
	return strings.Join(ours, "\n")
}

// TestNamespaceParts runs the discovery and mesh parts with the smallest
// sizes, and checks that everything they built is gone after.
func TestNamespaceParts(t *testing.T) {
	if err := netlab.Available(); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, nsOptions("discovery", "mesh"))
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Parts) != 2 || len(rep.Parts[0].Results) != 4 || len(rep.Parts[1].Results) != 2 {
		t.Fatalf("parts %+v", rep.Parts)
	}
	for _, p := range rep.Parts {
		for _, r := range p.Results {
			if r.Median <= 0 || r.Median > 10 || r.Unit != UnitSeconds {
				t.Errorf("%s: %+v", p.Name, r)
			}
		}
	}
	if ns := ourNamespaces(t); ns != "" {
		t.Fatalf("namespaces left: %s", ns)
	}
}

// TestNamespaceCancelled ends a namespace part halfway: the nodes and the
// namespaces go all the same.
func TestNamespaceCancelled(t *testing.T) {
	if err := netlab.Available(); err != nil {
		t.Skip(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var progress strings.Builder
	opts := nsOptions("liveness")
	opts.Progress = writerFunc(func(b []byte) (int, error) {
		if strings.Contains(string(b), "killed peer: rep 1/1") {
			cancel() // in the middle of the part
		}
		return progress.Write(b)
	})
	_, err := Run(ctx, opts)
	if err != context.Canceled {
		t.Fatalf("err %v; progress:\n%s", err, progress.String())
	}
	if ns := ourNamespaces(t); ns != "" {
		t.Fatalf("namespaces left: %s", ns)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(b []byte) (int, error) { return f(b) }
