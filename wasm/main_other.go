//go:build !(js && wasm)

package main

import (
	"fmt"
	"os"
)

// main explains itself when the package is built for another platform.
func main() {
	fmt.Fprintln(os.Stderr, "wasm: this is the in-browser engine; build it with GOOS=js GOARCH=wasm (./build.sh build puts it in site/dist), see docs/browser.md")
	os.Exit(2)
}
