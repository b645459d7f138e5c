// Package jsutil holds the syscall/js helpers that the browser build
// (wasm/), the Cloudflare Worker build (wasm/worker/) and the browser half
// of engine/gpu share: awaiting a promise from a goroutine, returning a
// goroutine's result as a promise, JavaScript errors, and an AbortSignal
// tied to a context. Its code builds only for GOOS=js GOARCH=wasm.
//
// js.Func release rule (docs/browser.md): a callback handed to a promise is
// released only after the promise has settled; calling a released callback
// logs "call to released function".
package jsutil
