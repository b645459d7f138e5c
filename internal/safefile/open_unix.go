//go:build unix

package safefile

import (
	"os"
	"syscall"
)

// openNonblock opens read-only with O_NONBLOCK, so that opening a FIFO does
// not wait for a writer; regular files ignore the flag.
func openNonblock(path string) (*os.File, error) {
	return os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
}
