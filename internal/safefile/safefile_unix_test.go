//go:build unix

package safefile

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/remask/remask/internal/safefile/safefiletest"
)

func TestOpenRegularRefusesSpecialFiles(t *testing.T) {
	fifo, dir := safefiletest.FIFO(t, "m.safetensors")
	for _, c := range []struct{ path, want string }{
		{fifo, "named pipe"},
		{"/dev/zero", "character device"},
		{dir, "directory"},
	} {
		var err error
		safefiletest.Within(t, 5*time.Second, "OpenRegular("+c.path+")", func() { _, _, err = OpenRegular(c.path) })
		if !errors.Is(err, ErrNotRegular) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("OpenRegular(%s) = %v; want ErrNotRegular naming %q", c.path, err, c.want)
		}
	}
	if _, err := ReadFile("/dev/zero", 1<<20); !errors.Is(err, ErrNotRegular) {
		t.Errorf("ReadFile(/dev/zero) = %v; want ErrNotRegular", err)
	}
}
