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

// TestSampleSizeFlagsNeverPanic: sizes whose product overflows, exceeds the
// token cap or exceeds --max-memory are usage errors naming the flags and
// the limit (issue 11, defect 4: the first panicked in makeslice, the
// second passed the check and died of "fatal error: out of memory").
func TestSampleSizeFlagsNeverPanic(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want []string
	}{
		{[]string{"--num-samples", "9223372036854775807", "--sequence-length", "32"},
			[]string{"--num-samples: --num-samples x --sequence-length = 9223372036854775807 x 32 is more than the 268435456 tokens"}},
		{[]string{"--num-samples", "262144", "--sequence-length", "32", "--max-memory", "1G"},
			[]string{"--num-samples x --sequence-length = 262144 x 32 needs about 17.4 GiB of memory, more than the memory budget of 1.0 GiB (--max-memory)", "at most 15033 samples of this length fit"}},
		{[]string{"--max-memory", "-1"}, []string{`--max-memory: "-1" is not a size`}},
		{[]string{"--max-memory", "1000000T"}, []string{"--max-memory: 1000000T is more than this machine's"}},
	} {
		argv := append([]string{"sample", "--model", lmFull, "--backend", "cpu", "--seed", "1", "--iterations", "1", "--no-progress"}, tc.args...)
		code, _, errOut := runCLI(t, "", argv...)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want %d; stderr:\n%s", tc.args, code, exitUsage, errOut)
		}
		for _, w := range tc.want {
			if !strings.Contains(errOut, w) {
				t.Errorf("%v: stderr does not contain %q:\n%s", tc.args, w, errOut)
			}
		}
	}
}
