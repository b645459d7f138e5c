//go:build unix

package safefile

import (
	"errors"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

func TestOpenRegularRefusesSpecialFiles(t *testing.T) {
	dir := t.TempDir()
	fifo := filepath.Join(dir, "m.safetensors")
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ path, want string }{
		{fifo, "named pipe"},
		{"/dev/zero", "character device"},
		{dir, "directory"},
	} {
		done := make(chan error, 1)
		go func() { _, _, err := OpenRegular(c.path); done <- err }()
		select {
		case err := <-done:
			if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), c.want) {
				t.Errorf("OpenRegular(%s) = %v; want ErrNotRegular naming %q", c.path, err, c.want)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("OpenRegular(%s) hung", c.path)
		}
	}
	if _, err := ReadFile("/dev/zero", 1<<20); !errors.Is(err, ErrNotRegular) {
		t.Errorf("ReadFile(/dev/zero) = %v; want ErrNotRegular", err)
	}
}
