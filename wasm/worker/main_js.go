//go:build js && wasm

package main

// worker.mjs sets, before it runs this program:
//
//	globalThis.context = {binding: {}}   // syumai/workers' runtime context
//	globalThis.remaskEdge = {
//	    openModel(source) -> Promise<{size, read(), cancel()}>,  // static assets
//	    allowOrigins: "https://a.example,https://b.example",    // $ALLOW_ORIGINS
//	    tick() -> Promise,  // resolves in the next macrotask (setTimeout 0)
//	}
//
// and this program sets binding.serve(request, body), binding.maxBodyBytes
// and binding.memory() (the Go heap, for the logs), then signals readiness
// with workers.Ready() and serves for the life of the isolate.

import (
	"log/slog"
	"os"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall/js"

	"github.com/syumai/workers"

	"github.com/remask/remask/engine/api"
	"github.com/remask/remask/engine/cpu"
	"github.com/remask/remask/internal/jsutil"
)

func main() {
	host := js.Global().Get("remaskEdge")
	binding := js.Global().Get("context").Get("binding")
	if !host.Truthy() || !binding.Truthy() {
		slog.Error("remask worker: globalThis.remaskEdge and globalThis.context.binding must be set by worker.mjs")
		os.Exit(2)
	}
	debug.SetMemoryLimit(goMemoryLimit)

	logger := slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cfg := workerConfig(assetLoader{host: host})
	cfg.Backend = cpu.New(1) // one thread: a Worker has no others
	cfg.Logger = logger
	srv := api.New(cfg)

	var origins []string
	if o := host.Get("allowOrigins"); o.Type() == js.TypeString {
		for _, s := range strings.Split(o.String(), ",") {
			if s = strings.TrimSpace(s); s != "" {
				origins = append(origins, s)
			}
		}
	}
	// The Host check guards servers on a private network against DNS
	// rebinding; a Worker answers on its public names only, so every Host
	// is its own. Origins: the Worker's own, loopback pages (a local copy
	// of the site) and $ALLOW_ORIGINS.
	h := api.Guard(api.Policy{AllowOrigins: origins, AllowHosts: []string{"*"}, Log: logger}, srv)

	tick := func() js.Value { return host.Call("tick") }
	binding.Set("maxBodyBytes", cfg.MaxBodyBytes)
	binding.Set("serve", js.FuncOf(func(_ js.Value, args []js.Value) any {
		if len(args) != 2 {
			return js.Global().Get("Promise").Call("reject", jsutil.Errorf("serve takes a Request and its body, got %d arguments", len(args)))
		}
		return serve(h, tick, args[0], args[1])
	}))
	binding.Set("memory", js.FuncOf(func(js.Value, []js.Value) any {
		var ms runtime.MemStats
		runtime.ReadMemStats(&ms)
		return map[string]any{"heap_alloc": float64(ms.HeapAlloc), "heap_sys": float64(ms.HeapSys), "sys": float64(ms.Sys)}
	}))
	workers.Ready()
	select {} // serve for the life of the isolate
}
