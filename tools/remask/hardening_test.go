package main

// Tests of issue 11's CLI hardening: panics, sizes, outputs, special files,
// terminal escapes.

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
)

// TestPanicIsInternalError: an unexpected panic in a command is a short
// "internal error" with exit code 3 (not Go's trace and exit code 2, the
// usage-error code); REMASK_DEBUG=1 adds the stack.
func TestPanicIsInternalError(t *testing.T) {
	boom := command{name: "boom", run: func(context.Context, *cli, []string) error {
		var m map[string]int
		m["x"] = 1 // a nil-map write: a real runtime panic
		return nil
	}}
	for _, debug := range []bool{false, true} {
		var out, errb bytes.Buffer
		c := &cli{stdout: &out, stderr: &errb, getenv: func(k string) string {
			if debug && k == "REMASK_DEBUG" {
				return "1"
			}
			return ""
		}, executable: os.Executable}
		code := c.runCommand(context.Background(), boom, nil)
		if code != exitInternal || exitInternal == exitUsage || exitInternal == exitFailure {
			t.Fatalf("exit %d, want %d (distinct from usage %d)", code, exitInternal, exitUsage)
		}
		msg := errb.String()
		if !strings.HasPrefix(msg, "remask boom: internal error: assignment to entry in nil map\n") {
			t.Errorf("message:\n%s", msg)
		}
		hasStack := strings.Contains(msg, "goroutine ") && strings.Contains(msg, "runtime/debug.Stack")
		if hasStack != debug {
			t.Errorf("REMASK_DEBUG=%v: stack printed = %v:\n%s", debug, hasStack, msg)
		}
		if !debug && !strings.Contains(msg, "This is a bug in remask") {
			t.Errorf("no hint to report the bug:\n%s", msg)
		}
	}
}
