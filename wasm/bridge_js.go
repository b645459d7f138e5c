//go:build js && wasm

package main

// The bridge between the fetch API and net/http: a JavaScript Request goes
// in, an http.Handler serves it, a Response with a streamed body comes out.
//
// syumai/workers v0.32.0 has the same conversion (binding.handleRequest),
// but it is written for one Go instance per request, which is how its stock
// glue runs it: every response body that is read to its end closes the
// package's done channel (appCloser.Close calls close(doneCh)), so the
// second completed response of a long-lived instance panics with "close of
// closed channel" and the instance dies with the device and the weights.
// Its requests also never see the caller's AbortSignal, so an aborted
// fetch could not cancel a generation. This bridge keeps one instance for
// every request and ties each request's context to request.signal.

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"syscall/js"

	"github.com/remask/remask/internal/jsutil"
)

// serveJS handles one JavaScript Request with h and returns a promise of the
// Response. The promise resolves once the handler has written its status
// (its first body byte, a flush, or its return); the body then streams.
func serveJS(h http.Handler, jreq js.Value) js.Value {
	return jsutil.Promise(func() (any, error) {
		req, cancel, err := toRequest(jreq)
		if err != nil {
			return nil, err
		}
		pr, pw := io.Pipe()
		w := jsutil.NewResponseWriter(pw)
		go func() {
			defer func() {
				w.MarkReady()
				pw.Close()
			}()
			h.ServeHTTP(w, req)
		}()
		<-w.Ready
		return toResponse(w, pr, cancel), nil
	})
}

// toRequest converts a fetch Request. The body is read whole (API bodies are
// small: engine/api caps them at 1 MiB). The request's context ends when its
// signal aborts or when the response body is cancelled. The returned cancel
// ends it too, and removes and releases the abort listener: every path of
// serveJS calls it once the response is over, so requests that finish
// normally leave no listener (and no js.Func) behind.
func toRequest(jreq js.Value) (*http.Request, context.CancelFunc, error) {
	ctx, cancel := jsutil.SignalContext(jreq.Get("signal"))
	method := jreq.Get("method").String()
	var body []byte
	if method != http.MethodGet && method != http.MethodHead {
		ab, err := jsutil.Await(ctx, jreq.Call("arrayBuffer"))
		if err != nil {
			cancel()
			return nil, nil, err
		}
		u8 := js.Global().Get("Uint8Array").New(ab)
		body = make([]byte, u8.Get("byteLength").Int())
		js.CopyBytesToGo(body, u8)
	}
	req, err := http.NewRequestWithContext(ctx, method, jreq.Get("url").String(), bytes.NewReader(body))
	if err != nil {
		cancel()
		return nil, nil, err
	}
	req.RemoteAddr = "browser"
	jsutil.AddHeaders(req.Header, jreq.Get("headers"))
	return req, cancel, nil
}

// errClientGone ends a handler's writes after the page cancelled the body.
var errClientGone = errors.New("the page cancelled the response")

// toResponse makes the fetch Response: status, headers, and a ReadableStream
// that pulls from the pipe. Cancelling the stream cancels the request.
func toResponse(w *jsutil.ResponseWriter, pr *io.PipeReader, cancel context.CancelFunc) js.Value {
	headers := js.Global().Get("Headers").New()
	for k, vs := range w.Header() {
		for _, v := range vs {
			headers.Call("append", k, v)
		}
	}
	init := map[string]any{"status": w.Status, "statusText": http.StatusText(w.Status), "headers": headers}
	if w.Status == http.StatusNoContent || w.Status == http.StatusNotModified {
		pr.Close()
		cancel()
		return js.Global().Get("Response").New(js.Null(), init)
	}
	buf := make([]byte, 64<<10)
	var pull, cancelFn js.Func
	release := func() {
		cancel()
		pull.Release()
		cancelFn.Release()
	}
	pull = js.FuncOf(func(_ js.Value, args []js.Value) any {
		controller := args[0]
		return jsutil.Promise(func() (any, error) {
			n, err := pr.Read(buf)
			if n > 0 {
				u8 := js.Global().Get("Uint8Array").New(n)
				js.CopyBytesToJS(u8, buf[:n])
				controller.Call("enqueue", u8)
			}
			switch {
			case err == io.EOF:
				controller.Call("close")
				release()
			case err != nil:
				controller.Call("error", jsutil.Errorf("%v", err))
				release()
			}
			return nil, nil
		})
	})
	cancelFn = js.FuncOf(func(js.Value, []js.Value) any {
		pr.CloseWithError(errClientGone)
		release()
		return nil
	})
	stream := js.Global().Get("ReadableStream").New(map[string]any{"pull": pull, "cancel": cancelFn},
		map[string]any{"highWaterMark": 0})
	return js.Global().Get("Response").New(stream, init)
}
