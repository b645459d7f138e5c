//go:build js && wasm

package main

// The bridge between worker.mjs and net/http. workerd ties I/O objects
// (request and response streams) to the request that made them, and one Go
// instance serves every request of the isolate, so Go may run while the
// isolate is handling another request. Go therefore touches no stream: the
// JavaScript side reads the request body (capped) and hands Go the bytes,
// and builds the Response's ReadableStream itself, whose pull asks Go for
// the next chunk through a promise (workerd runs a promise's continuation
// in the request that made it, whoever resolves it).
//
// wasm/bridge_js.go (the page's worker) does the same conversion with Go
// driving the streams, which is fine in a browser; syumai/workers' own
// handleRequest is written for one Go instance per request (docs/edge.md).

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"os"
	"sync"
	"syscall/js"
	"time"

	"github.com/remask/remask/internal/jsutil"
)

// serve handles serve(request, body): request is the fetch Request (its
// method, url, headers and signal are read), body a Uint8Array or null. It
// returns a promise of {status, headers: [[name, value]...], read(),
// cancel()}: read() is a promise of the next Uint8Array of the body, or
// null at its end; cancel() ends the request (the client went away). The
// promise resolves once the handler has written its status.
func serve(h http.Handler, tick func() js.Value, jreq, jbody js.Value) js.Value {
	// The abort listener is added here, synchronously, in the request's own
	// turn of the event loop.
	ctx, cancel := jsutil.SignalContext(jreq.Get("signal"))
	var body []byte
	if jbody.Truthy() {
		body = make([]byte, jbody.Get("byteLength").Int())
		js.CopyBytesToGo(body, jbody)
	}
	method := jreq.Get("method").String()
	req, err := http.NewRequestWithContext(ctx, method, jreq.Get("url").String(), bytes.NewReader(body))
	if err != nil {
		cancel()
		return js.Global().Get("Promise").Call("reject", jsutil.Errorf("%v", err))
	}
	req.RemoteAddr = "worker"
	jsutil.AddHeaders(req.Header, jreq.Get("headers"))
	if cf := jreq.Get("headers").Call("get", "cf-connecting-ip"); cf.Type() == js.TypeString {
		req.RemoteAddr = cf.String()
	}

	pr, pw := io.Pipe()
	w := &responseWriter{ResponseWriter: jsutil.NewResponseWriter(pw), ctx: ctx, tick: tick}
	return jsutil.Promise(func() (any, error) {
		go func() {
			defer func() {
				w.MarkReady()
				w.stopTimer()
				pw.Close()
			}()
			h.ServeHTTP(w, req)
		}()
		<-w.Ready
		return head(w, pr, cancel), nil
	})
}

// head is the object serve's promise resolves to.
func head(w *responseWriter, pr *io.PipeReader, cancel context.CancelFunc) js.Value {
	headers := js.Global().Get("Array").New()
	for k, vs := range w.Header() {
		for _, v := range vs {
			headers.Call("push", js.ValueOf([]any{k, v}))
		}
	}
	o := js.Global().Get("Object").New()
	o.Set("status", w.Status)
	o.Set("headers", headers)
	if w.Status == http.StatusNoContent || w.Status == http.StatusNotModified {
		pr.Close()
		cancel()
		o.Set("nobody", true)
		return o
	}
	var read, cancelFn js.Func
	var once sync.Once
	release := func() {
		once.Do(func() {
			cancel()
			read.Release()
			cancelFn.Release()
		})
	}
	buf := make([]byte, 64<<10)
	read = js.FuncOf(func(js.Value, []js.Value) any {
		return jsutil.Promise(func() (any, error) {
			n, err := pr.Read(buf)
			if n > 0 {
				u8 := js.Global().Get("Uint8Array").New(n)
				js.CopyBytesToJS(u8, buf[:n])
				return u8, nil
			}
			if err == io.EOF {
				release()
				return nil, nil
			}
			if err != nil {
				release()
				return nil, err
			}
			return js.Global().Get("Uint8Array").New(0), nil
		})
	})
	cancelFn = js.FuncOf(func(js.Value, []js.Value) any {
		pr.CloseWithError(errClientGone)
		release()
		return nil
	})
	o.Set("read", read)
	o.Set("cancel", cancelFn)
	return o
}

// errClientGone ends a handler's writes after the client went away.
var errClientGone = errors.New("the client went away")

// responseWriter is jsutil.ResponseWriter (an http.ResponseWriter and
// http.Flusher whose body goes into a pipe that read() drains) that yields
// to the event loop after each write and sets write deadlines.
type responseWriter struct {
	*jsutil.ResponseWriter
	ctx  context.Context
	tick func() js.Value // a promise that resolves in the next macrotask

	mu    sync.Mutex
	timer *time.Timer
}

func (w *responseWriter) Write(p []byte) (int, error) {
	n, err := w.ResponseWriter.Write(p)
	if err == nil && w.tick != nil {
		// Go returns to the event loop only when every goroutine waits, so a
		// generation would compute its next iteration before the isolate
		// could see that the client went away. Waiting for one macrotask
		// here lets the abort (or the stream's cancel) in first.
		jsutil.Await(w.ctx, w.tick())
	}
	return n, err
}

// SetWriteDeadline (used through http.ResponseController) ends the body
// with os.ErrDeadlineExceeded when a write is still blocked at t: a client
// that stops reading cannot hold the isolate's one generation.
func (w *responseWriter) SetWriteDeadline(t time.Time) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timer != nil {
		w.timer.Stop()
		w.timer = nil
	}
	if !t.IsZero() {
		w.timer = time.AfterFunc(time.Until(t), func() { w.Pipe.CloseWithError(os.ErrDeadlineExceeded) })
	}
	return nil
}

func (w *responseWriter) stopTimer() { w.SetWriteDeadline(time.Time{}) }
