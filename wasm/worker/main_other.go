//go:build !(js && wasm)

package main

import (
	"fmt"
	"os"
	"path"
)

// Natively there is nothing to serve: the Worker is built with
// GOOS=js GOARCH=wasm (./build.sh worker). `go run ./wasm/worker assets`
// prints the model files of the Worker's library (one name of models/ a
// line), which ./build.sh worker copies into the static assets.
func main() {
	if len(os.Args) == 2 && os.Args[1] == "assets" {
		for _, m := range workerModels {
			fmt.Println(path.Base(m.Source))
		}
		return
	}
	fmt.Fprintln(os.Stderr, "wasm/worker is remask's Cloudflare Worker: build it with ./build.sh worker (GOOS=js GOARCH=wasm) and run it under workerd or wrangler (docs/edge.md); `go run ./wasm/worker assets` lists the model files it serves")
	os.Exit(2)
}
