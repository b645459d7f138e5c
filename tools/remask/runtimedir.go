package main

import (
	"os"
	"path/filepath"
	"sync"
)

// Probing for a WebGPU adapter loads the Vulkan drivers, and Mesa's window
// system code then tries to reach a Wayland compositor through
// $XDG_RUNTIME_DIR. Where that variable is unset (a server, a container, an
// SSH session without a login manager) libwayland prints
// "error: XDG_RUNTIME_DIR is invalid or not set in the environment." on
// stderr, although nothing is wrong: remask draws nothing on a screen.
// ensureRuntimeDir gives the process a private, empty runtime folder instead
// (mode 0700, as the XDG spec asks); the compositor is then simply not found,
// silently. removeRuntimeDir deletes that folder when the program ends.

var runtimeDir struct {
	sync.Mutex
	made string // the folder ensureRuntimeDir created, "" if none
}

// ensureRuntimeDir sets XDG_RUNTIME_DIR to a new private folder when it is
// unset or does not name a folder; a valid setting is left alone.
func ensureRuntimeDir() {
	runtimeDir.Lock()
	defer runtimeDir.Unlock()
	if runtimeDir.made != "" {
		return
	}
	if d := os.Getenv("XDG_RUNTIME_DIR"); d != "" && filepath.IsAbs(d) {
		if st, err := os.Stat(d); err == nil && st.IsDir() {
			return
		}
	}
	d, err := os.MkdirTemp("", "remask-runtime-*") // created with mode 0700
	if err != nil {
		return // the only cost is Mesa's message
	}
	if abs, err := filepath.Abs(d); err == nil {
		d = abs
	}
	if err := os.Setenv("XDG_RUNTIME_DIR", d); err != nil {
		os.Remove(d)
		return
	}
	runtimeDir.made = d
}

// removeRuntimeDir deletes the folder ensureRuntimeDir made. The variable
// keeps its value: a later probe finds no compositor there, without a message.
func removeRuntimeDir() {
	runtimeDir.Lock()
	defer runtimeDir.Unlock()
	if runtimeDir.made != "" {
		os.RemoveAll(runtimeDir.made)
		runtimeDir.made = ""
	}
}
