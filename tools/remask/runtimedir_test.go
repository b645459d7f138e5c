package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestNoRuntimeDirMessage runs the GPU probe in a child process with
// XDG_RUNTIME_DIR unset and checks that its stderr (the C libraries write to
// file descriptor 2 directly) carries no "XDG_RUNTIME_DIR is invalid" line,
// and that the private folder made for the probe is gone afterwards.
func TestNoRuntimeDirMessage(t *testing.T) {
	if os.Getenv("REMASK_RUNTIMEDIR_CHILD") == "1" {
		be, note, err := newBackend(context.Background(), "auto", 1)
		fmt.Printf("backend %v note %q err %v\n", be != nil, note, err)
		made := os.Getenv("XDG_RUNTIME_DIR")
		removeRuntimeDir()
		_, statErr := os.Stat(made)
		fmt.Printf("runtime dir %q removed %v\n", made, os.IsNotExist(statErr))
		return
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestNoRuntimeDirMessage$", "-test.count=1")
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "XDG_RUNTIME_DIR=") {
			env = append(env, kv)
		}
	}
	cmd.Env = append(env, "REMASK_RUNTIMEDIR_CHILD=1")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("child: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
	}
	if strings.Contains(errb.String(), "XDG_RUNTIME_DIR") || strings.Contains(out.String(), "is invalid or not set") {
		t.Errorf("the GPU probe printed Mesa's runtime-dir message:\n%s", errb.String())
	}
	if !strings.Contains(out.String(), "removed true") {
		t.Errorf("the private runtime folder was not removed:\n%s", out.String())
	}
	t.Logf("child:\n%s", out.String())
}
