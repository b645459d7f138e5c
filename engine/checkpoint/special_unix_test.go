//go:build unix

package checkpoint

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/remask/remask/internal/safefile"
	"github.com/remask/remask/internal/safefile/safefiletest"
)

// TestSpecialFiles: a FIFO, /dev/zero or a directory given as the
// checkpoint, the --meta or the --calibration file is refused at once with
// a clear error: never a hang, never a read without end (issue 11).
func TestSpecialFiles(t *testing.T) {
	fifo, dir := safefiletest.FIFO(t, "ckpt.pt")
	for _, path := range []string{fifo, "/dev/zero", dir} {
		for _, tc := range []struct {
			name string
			run  func() error
		}{
			{"Open", func() error { _, err := Open(path); return err }},
			{"InspectFile", func() error { _, err := InspectFile(path, Options{}); return err }},
			{"ReadMeta", func() error { _, err := ReadMeta(path); return err }},
			{"calibration", func() error {
				_, err := open(t, "d7_lora").Plan(Options{CalibrationPath: path})
				return err
			}},
		} {
			t.Run(tc.name+" "+path, func(t *testing.T) {
				var err error
				safefiletest.Within(t, 10*time.Second, "reading", func() { err = tc.run() })
				if !errors.Is(err, safefile.ErrNotRegular) || !strings.Contains(err.Error(), path) {
					t.Fatalf("error %v, want ErrNotRegular naming %s", err, path)
				}
				t.Log(err)
			})
		}
	}
}
