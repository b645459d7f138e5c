//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package main

import "os"

// fileTermSize: on other systems (js/wasm, Windows, ...) stderr is never
// taken for a terminal, so the live view is on only with --live on.
func fileTermSize(f *os.File) (cols, rows int, ok bool) { return 0, 0, false }
