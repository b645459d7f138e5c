//go:build !(js && wasm)

package main

import (
	"fmt"
	"os"
)

// Natively there is nothing to run: the Worker is built with
// GOOS=js GOARCH=wasm (./build.sh worker).
func main() {
	fmt.Fprintln(os.Stderr, "wasm/worker is remask's Cloudflare Worker: build it with ./build.sh worker (GOOS=js GOARCH=wasm) and run it under workerd or wrangler (docs/edge.md)")
	os.Exit(2)
}
