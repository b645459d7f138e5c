//go:build unix

// Package safefiletest holds what the special-file tests share (issue 11's
// FIFO, /dev/zero and directory refusals in internal/safefile,
// engine/checkpoint, engine/api and the remask CLI): a named pipe to give
// as input, and a wait that fails the test when the code under test hangs
// on it instead of refusing it.
package safefiletest

import (
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// FIFO makes a named pipe called name in a new temporary folder and returns
// its path and the folder.
func FIFO(t testing.TB, name string) (fifo, dir string) {
	t.Helper()
	dir = t.TempDir()
	fifo = filepath.Join(dir, name)
	if err := syscall.Mkfifo(fifo, 0o644); err != nil {
		t.Fatal(err)
	}
	return fifo, dir
}

// Within runs f in a goroutine and returns once it has; when f is still
// running after d, the test fails at once with "what: still running after
// d" (a read blocked on a FIFO or one without end on a device).
func Within(t testing.TB, d time.Duration, what string, f func()) {
	t.Helper()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	select {
	case <-done:
	case <-time.After(d):
		t.Fatalf("%s: still running after %v", what, d)
	}
}
