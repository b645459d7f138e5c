//go:build js && wasm

package main

// The worker (site/worker.js) sets, before it runs this program:
//
//	globalThis.context = {binding: {}}   // syumai/workers' runtime context
//	globalThis.remaskHost = {
//	    backend: "auto" | "gpu" | "cpu",  // which backend to open
//	    limits: "adapter" | "default",    // optional: gpu.Options.Limits
//	    models: [{id, source}, ...],      // the library (sources: URLs relative to the site)
//	    openModel(source) -> Promise<{body: ReadableStream, size: number}>,
//	}
//
// and this program sets binding.serve(request) -> Promise<Response> and
// binding.engine (what runs: backend, adapter, the reason for a CPU
// fallback, the default sizes), then signals readiness with workers.Ready().

import (
	"context"
	"errors"
	"log/slog"
	"os"
	"syscall/js"

	"github.com/syumai/workers"

	"github.com/remask/remask/engine"
	"github.com/remask/remask/engine/api"
	"github.com/remask/remask/engine/cpu"
	"github.com/remask/remask/engine/gpu"
	"github.com/remask/remask/internal/jsutil"
)

func main() {
	host := js.Global().Get("remaskHost")
	binding := js.Global().Get("context").Get("binding")
	if !host.Truthy() || !binding.Truthy() {
		slog.Error("remask wasm: globalThis.remaskHost and globalThis.context.binding must be set by the worker (site/worker.js)")
		os.Exit(2)
	}
	want := "auto"
	if b := host.Get("backend"); b.Type() == js.TypeString {
		want = b.String()
	}
	var gopts gpu.Options
	if l := host.Get("limits"); l.Type() == js.TypeString {
		gopts.Limits = l.String()
	}
	be, info := openBackend(want, gopts)

	var sources []api.ModelSource
	if ms := host.Get("models"); ms.Truthy() {
		for i := 0; i < ms.Length(); i++ {
			sources = append(sources, api.ModelSource{ID: ms.Index(i).Get("id").String(), Source: ms.Index(i).Get("source").String()})
		}
	}
	sizes, kind := CPUSizes, "cpu"
	maxTokens := 4096 // one thread: bigger requests would run for many minutes
	if info["webgpu"] == true {
		sizes, kind, maxTokens = GPUSizes, "gpu", api.DefaultMaxTokens
	}
	for k, v := range browserInfo(kind, maxTokens) {
		info[k] = v
	}

	srv := api.New(api.Config{
		Models:    sources,
		Backend:   be,
		Loader:    hostLoader{host: host},
		MaxTokens: maxTokens,
		Logger:    slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})),
	})
	h := withBrowserDefaults(srv, sizes, api.DefaultMaxBodyBytes)

	// info holds nested maps and structs (the presets): through JSON.
	binding.Set("engine", js.Global().Get("JSON").Call("parse", string(mustJSON(info))))
	binding.Set("serve", js.FuncOf(func(_ js.Value, args []js.Value) any {
		if len(args) != 1 {
			return js.Global().Get("Promise").Call("reject", jsutil.Errorf("serve takes one Request, got %d arguments", len(args)))
		}
		return serveJS(h, args[0])
	}))
	workers.Ready()
	select {} // serve for the life of the worker
}

// openBackend opens WebGPU unless the page asked for the CPU; without an
// adapter (or with one whose limits are too small) it falls back to the CPU
// backend and says why. auto also leaves a software adapter (SwiftShader,
// llvmpipe, WARP) for the CPU engine, which is faster on the same cores;
// "gpu" takes any adapter.
func openBackend(want string, gopts gpu.Options) (engine.Backend, map[string]any) {
	info := map[string]any{"requested": want}
	if want != "cpu" {
		g, err := gpu.New(context.Background(), gopts)
		if err == nil {
			ai := g.Info()
			if want == "auto" && softwareAdapter(ai.Name) {
				g.Close()
				info["gpu_problem"] = "software"
				info["adapter"] = ai.Name
				info["gpu_error"] = "the WebGPU adapter " + ai.Name + " emulates a GPU on the CPU"
				c := cpu.New(1)
				info["backend"] = c.Name()
				info["webgpu"] = false
				return c, info
			}
			info["backend"] = g.Name()
			info["webgpu"] = true
			info["adapter"] = ai.Name
			return g, info
		}
		info["gpu_error"] = err.Error()
		switch {
		case errors.Is(err, gpu.ErrNoAdapter):
			info["gpu_problem"] = "no_adapter"
		default:
			var le *gpu.LimitError
			if errors.As(err, &le) {
				info["gpu_problem"] = "limits"
			} else {
				info["gpu_problem"] = "device"
			}
		}
	}
	c := cpu.New(1)
	info["backend"] = c.Name()
	info["webgpu"] = false
	return c, info
}
