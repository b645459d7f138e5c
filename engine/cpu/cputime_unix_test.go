//go:build unix

package cpu

import (
	"syscall"
	"time"
)

// processCPUTime is the user+system CPU time this process has used, so that
// benchmarks can report the work per operation independently of other
// processes competing for the cores.
func processCPUTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}
