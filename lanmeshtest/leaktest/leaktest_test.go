package leaktest

import (
	"fmt"
	"strings"
	"testing"
)

// recorder stands in for a test: it keeps the cleanups and the errors
// that Check registers and reports, so that a leak can be seen without
// failing the real test.
type recorder struct {
	testing.TB
	cleanups []func()
	errs     []string
}

func (r *recorder) Helper()                   {}
func (r *recorder) Cleanup(f func())          { r.cleanups = append(r.cleanups, f) }
func (r *recorder) Errorf(f string, a ...any) { r.errs = append(r.errs, fmt.Sprintf(f, a...)) }

func (r *recorder) end() {
	for i := len(r.cleanups) - 1; i >= 0; i-- {
		r.cleanups[i]()
	}
}

func TestNoLeak(t *testing.T) {
	r := &recorder{TB: t}
	Check(r)
	done := make(chan struct{})
	go func() { close(done) }()
	<-done
	r.end()
	if len(r.errs) != 0 {
		t.Fatalf("a goroutine that ended was reported: %v", r.errs)
	}
}

func TestLeakReported(t *testing.T) {
	r := &recorder{TB: t}
	Check(r)
	release := make(chan struct{})
	defer close(release)
	go leakyWorker(release)
	r.end() // waits its 5 s for the worker, in vain
	if len(r.errs) != 1 || !strings.Contains(r.errs[0], "leakyWorker") {
		t.Fatalf("want one report naming leakyWorker, got %q", r.errs)
	}
}

func leakyWorker(release chan struct{}) { <-release }
