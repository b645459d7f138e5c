// Command worker is remask's HTTP API (engine/api with the CPU backend) as a
// Cloudflare Worker: Go compiled to wasm (GOOS=js GOARCH=wasm), started once
// per isolate by worker.mjs through syumai/workers' runtime contract
// (globalThis.context.binding, workers.Ready()), with the shipped model read
// from the Worker's static assets. `./build.sh worker` builds the bundle;
// docs/edge.md has the limits, the measurements and how to deploy.
//
// This file holds the Worker's limits (no build tag, so that they are
// tested natively); main_js.go runs the server.
package main

import (
	"time"

	"github.com/remask/remask/engine/api"
)

// The Worker's library: the flagship model, served from the static assets
// (wrangler.toml [assets]). The judge is not in the Worker: the two widened
// to float32 need about 90 MB, and a Worker isolate has 128 MB in all
// (docs/edge.md, "Memory").
var workerModels = []api.ModelSource{{ID: api.DefaultModelID, Source: "/models/shakespeare.safetensors"}}

// Limits of a Worker isolate and of our requests (docs/edge.md pins them).
const (
	// isolateMemory is Cloudflare's memory limit per isolate.
	isolateMemory = 128 << 20
	// goMemoryLimit is the Go runtime's soft limit (debug.SetMemoryLimit):
	// the collector works harder as the heap nears it, so that wasm linear
	// memory (which never shrinks) stays under the isolate's limit: 87.8 MB
	// at most in the test run, 95.9 MB with 96 MiB (docs/edge.md).
	goMemoryLimit = 80 << 20
	// maxModelBytes: the largest model file the Worker reads; Cloudflare
	// serves static assets of at most 25 MiB.
	maxModelBytes = 25 << 20
	// maxModelMemory: the weights (float32) and activation buffers held.
	maxModelMemory = 64 << 20
	// maxRequestMemory: the activations of one generation (about 20 KB a
	// position for the flagship: 512 positions need 10.5 MB).
	maxRequestMemory = 12 << 20
	// maxTokens: num_samples x sequence_length.
	maxTokens = 512
	// maxIterations per request.
	maxIterations = 64
	// maxWork: num_samples x sequence_length x iterations, sized so that a
	// request ends well inside the CPU time a Worker may use per request
	// (wrangler.toml limits.cpu_ms; docs/edge.md has the measured rate).
	maxWork = 1024 * 8
	// maxQueue: requests one isolate lets wait for its one generation.
	maxQueue = 4
	// maxBodyBytes: request bodies are small JSON documents.
	maxBodyBytes = 64 << 10
	// maxRequestDuration: wall time, queue included.
	maxRequestDuration = 5 * time.Minute
)

// workerConfig is the api.Config of the Worker, given the Loader that reads
// the static assets.
func workerConfig(l api.Loader) api.Config {
	return api.Config{
		Models:             workerModels,
		DefaultModel:       api.DefaultModelID,
		DefaultJudge:       "none",
		Loader:             l,
		MaxTokens:          maxTokens,
		MaxIterations:      maxIterations,
		MaxQueue:           maxQueue,
		MaxBodyBytes:       maxBodyBytes,
		MaxModelBytes:      maxModelBytes,
		DisableLoading:     true, // only the library: no paths, no URLs
		MaxWork:            maxWork,
		MaxRequestMemory:   maxRequestMemory,
		MaxLoadedModels:    1,
		MaxModelMemory:     maxModelMemory,
		MaxRequestDuration: maxRequestDuration,
	}
}
