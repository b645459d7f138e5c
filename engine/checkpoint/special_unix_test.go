//go:build unix

package checkpoint

import (
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/remask/remask/internal/safefile"
)

// TestSpecialFiles: a FIFO, /dev/zero or a directory given as the
// checkpoint, the --meta or the --calibration file is refused at once with
// a clear error: never a hang, never a read without end (issue 11).
func TestSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "ckpt.pt")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
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
				done := make(chan error, 1)
				go func() { done <- tc.run() }()
				select {
				case err := <-done:
					if !errors.Is(err, safefile.ErrNotRegular) || !strings.Contains(err.Error(), path) {
						t.Fatalf("error %v, want ErrNotRegular naming %s", err, path)
					}
					t.Log(err)
				case <-time.After(10 * time.Second):
					t.Fatal("still reading after 10 s")
				}
			})
		}
	}
}
