// Package leaktest checks that a test leaves no goroutine behind: every
// goroutine a test starts must have ended by the time its cleanups have run.
//
//	func TestClose(t *testing.T) {
//		leaktest.Check(t) // first, before anything registers a cleanup
//		n, err := mesh.NewNode(cfg)
//		...
//		n.Close()
//	} // fails here, with their stacks, if any goroutine of n is left
//
// Goroutines that were running before Check, and those of the runtime and
// the testing package, are not counted.
package leaktest

import (
	"bytes"
	"runtime"
	"strings"
	"testing"
	"time"
)

// Check records the goroutines running now and, when the test ends (after
// cleanups registered later, which run first), waits up to 5 s for every
// goroutine started since to end. It reports the stacks of those that remain.
// Call it first in a test, before anything registers a cleanup that closes.
func Check(t testing.TB) {
	t.Helper()
	before := goroutines()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		var leaked []string
		for {
			leaked = leaked[:0]
			for id, stack := range goroutines() {
				if _, ok := before[id]; !ok && !ignorable(stack) {
					leaked = append(leaked, stack)
				}
			}
			if len(leaked) == 0 {
				return
			}
			if time.Now().After(deadline) {
				break
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Errorf("leaktest: %d goroutine(s) outlived the test:\n\n%s", len(leaked), strings.Join(leaked, "\n\n"))
	})
}

// goroutines returns the stack of every goroutine, keyed by its header id.
func goroutines() map[string]string {
	buf := make([]byte, 1<<20)
	for {
		n := runtime.Stack(buf, true)
		if n < len(buf) {
			buf = buf[:n]
			break
		}
		buf = make([]byte, 2*len(buf))
	}
	out := map[string]string{}
	for _, g := range bytes.Split(buf, []byte("\n\n")) {
		s := string(g)
		id, _, ok := strings.Cut(strings.TrimPrefix(s, "goroutine "), " ")
		if ok {
			out[id] = s
		}
	}
	return out
}

// ignorable matches goroutines that belong to the runtime or the test
// framework rather than to the code under test.
func ignorable(stack string) bool {
	for _, s := range []string{
		"testing.(*T).Run(", "testing.tRunner(", "testing.runTests(", "testing.(*M).",
		"runtime.goexit", "os/signal.signal_recv", "runtime.ensureSigM",
		"leaktest.goroutines(",
	} {
		if strings.Contains(stack, s) && !strings.Contains(stack, "lanmesh/lanmesh/") {
			return true
		}
	}
	return strings.Contains(stack, "leaktest.goroutines(")
}
