//go:build !unix

package safefile

import "os"

// openNonblock is a plain open where O_NONBLOCK does not exist (js/wasm,
// Windows); OpenRegular's Stat before it refuses special files.
func openNonblock(path string) (*os.File, error) { return os.Open(path) }
