//go:build unix

package main

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/remask/remask/internal/safefile/safefiletest"
)

// TestSpecialFilesRefused: every reader of a user-given path refuses a FIFO
// and a device at once, with exit 2 and a message naming the flag (issue 11,
// defect 10: inspect /dev/zero read until "fatal error: out of memory"; a
// FIFO hung inspect and `remask models`).
func TestSpecialFilesRefused(t *testing.T) {
	fifo, dir := safefiletest.FIFO(t, "f.safetensors")
	ckpt := filepath.Join("..", "..", "testdata", "fork", "sh_lm.pt")
	out := filepath.Join(dir, "out.safetensors")
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"inspect", "/dev/zero"}, "/dev/zero is a character device, not a regular file"},
		{[]string{"inspect", fifo}, fifo + " is a named pipe (FIFO), not a regular file"},
		{[]string{"inspect", ckpt, "--meta", fifo}, "--meta: " + fifo + " is a named pipe"},
		{[]string{"convert", "/dev/zero", "-o", out}, "/dev/zero is a character device"},
		{[]string{"convert", fifo, "-o", out}, "is a named pipe"},
		{[]string{"convert", ckpt, "-o", out, "--meta", "/dev/zero"}, "--meta: /dev/zero is a character device"},
		{[]string{"convert", ckpt, "-o", out, "--calibration", fifo}, "--calibration: " + fifo + " is a named pipe"},
		{[]string{"convert", ckpt, "-o", out, "--card", "/dev/zero"}, "--card: /dev/zero is a character device"},
		{[]string{"sample", "--model", fifo}, "--model: " + fifo + " is a named pipe"},
		{[]string{"sample", "--model", lmFull, "--judge", "/dev/zero"}, "--judge: /dev/zero is a character device"},
		{[]string{"score", "--model", lmFull, "--text-file", fifo, "--sequence-length", "8", "--num-samples", "1"}, "--text-file: " + fifo + " is a named pipe"},
	}
	for _, tc := range cases {
		var code int
		var errOut string
		safefiletest.Within(t, 20*time.Second, strings.Join(tc.args, " ")+" (blocked on the FIFO?)", func() {
			code, _, errOut = runCLI(t, "", tc.args...)
		})
		if code != exitUsage || !strings.Contains(errOut, tc.want) {
			t.Errorf("%v: exit %d, stderr:\n%s\nwant exit 2 and %q", tc.args, code, errOut, tc.want)
		}
	}
	// `remask models` lists the FIFO as unreadable and goes on.
	copyFile(t, lmFull, filepath.Join(dir, "m.safetensors"))
	var code int
	var stdout string
	safefiletest.Within(t, 20*time.Second, "remask models (blocked on the FIFO?)", func() {
		code, stdout, _ = runCLI(t, "", "models", "--models", dir)
	})
	if code != exitOK || !strings.Contains(stdout, "f: "+fifo+" is a named pipe (FIFO), not a regular file") ||
		!strings.Contains(stdout, "m   language_model") {
		t.Errorf("models: exit %d\n%s", code, stdout)
	}
}
