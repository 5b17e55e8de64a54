package bench

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/lanmesh/lanmesh/lanmeshtest/leaktest"
	"github.com/lanmesh/lanmesh/lanmeshtest/netlab"
)

// TestLanePartQuick runs the lane part as CI does (--quick) and checks its
// figures are there and sane, and that its namespaces and goroutines are
// gone after. It asserts no speed: the machine may be loaded.
func TestLanePartQuick(t *testing.T) {
	if err := netlab.Available(); err != nil {
		t.Skip(err)
	}
	leaktest.Check(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	rep, err := Run(ctx, Options{Quick: true, Only: []string{"lane"}})
	if err != nil {
		if rep != nil {
			for _, p := range rep.Parts {
				t.Logf("part %s: %s", p.Name, p.Error)
			}
		}
		t.Fatal(err)
	}
	p := rep.Parts[0]
	if p.Skipped != "" || p.Error != "" {
		t.Fatalf("part: %+v", p)
	}
	// (a): three conditions of three figures; (b): one wire of five; (c): one.
	if len(p.Results) != 3*3+5+1 {
		t.Fatalf("%d results: %+v", len(p.Results), p.Results)
	}
	for _, r := range p.Results {
		if r.Baseline == nil || r.Median <= 0 || r.Baseline.Median <= 0 {
			t.Errorf("%s: %+v", r.Name, r)
		}
		if r.Unit == UnitSeconds && (r.Median > 30 || r.Baseline.Median > 30) {
			t.Errorf("%s: ages beyond the run: %+v", r.Name, r)
		}
	}
	if !strings.Contains(p.Results[len(p.Results)-1].Name, "throughput") && p.Results[len(p.Results)-1].Unit != UnitMsgsPerSec {
		t.Errorf("last figure %+v", p.Results[len(p.Results)-1])
	}
	if ns := ourNamespaces(t); ns != "" {
		t.Fatalf("namespaces left: %s", ns)
	}
}
