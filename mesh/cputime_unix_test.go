//go:build unix

package mesh

import (
	"syscall"
	"time"
)

// cpuTime returns the CPU time (user and system) the process has used: a
// benchmark's cost per operation on a machine other programs share, where
// its wall time is mostly their load.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if syscall.Getrusage(syscall.RUSAGE_SELF, &ru) != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
