//go:build js && wasm

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"syscall/js"
)

// assetLoader is the api.Loader of the Worker: worker.mjs's
// openModel(source) fetches the file from the static assets (env.ASSETS)
// and answers {size, read(), cancel()}; read() is a promise of the next
// Uint8Array, or null at the end. Streams stay on the JavaScript side
// (bridge_js.go says why). A missing asset (404) wraps fs.ErrNotExist.
type assetLoader struct {
	host js.Value
}

// Open implements api.Loader.
func (l assetLoader) Open(ctx context.Context, source string) (io.ReadCloser, int64, error) {
	v, err := await(ctx, l.host.Call("openModel", source))
	if err != nil {
		var je *jsError
		if errors.As(err, &je) && je.v.Type() == js.TypeObject && je.v.Get("notFound").Truthy() {
			return nil, 0, fmt.Errorf("%s (%w)", je.msg, fs.ErrNotExist)
		}
		return nil, 0, err
	}
	size := int64(-1)
	if s := v.Get("size"); s.Type() == js.TypeNumber && s.Float() >= 0 {
		size = int64(s.Float())
	}
	return &assetReader{ctx: ctx, src: v}, size, nil
}

// assetReader reads the chunks that src.read() gives.
type assetReader struct {
	ctx  context.Context
	src  js.Value
	buf  []byte
	done bool
	err  error
}

func (r *assetReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		if r.err != nil {
			return 0, r.err
		}
		chunk, err := await(r.ctx, r.src.Call("read"))
		if err != nil {
			r.err = err
			r.Close()
			return 0, err
		}
		if chunk.IsNull() || chunk.IsUndefined() {
			r.done = true
			r.err = io.EOF
			return 0, io.EOF
		}
		r.buf = make([]byte, chunk.Get("byteLength").Int())
		js.CopyBytesToGo(r.buf, chunk)
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// Close cancels the asset's stream when it was not read to its end.
func (r *assetReader) Close() error {
	if !r.done {
		r.done = true
		r.src.Call("cancel")
	}
	return nil
}

// jsError is a rejected promise or a thrown JavaScript value.
type jsError struct {
	v   js.Value
	msg string
}

func (e *jsError) Error() string { return e.msg }

func newJSError(v js.Value) *jsError {
	msg := "rejected"
	switch {
	case v.Type() == js.TypeObject && v.Get("message").Type() == js.TypeString:
		msg = v.Get("message").String()
	case !v.IsUndefined() && !v.IsNull():
		msg = v.Call("toString").String()
	}
	return &jsError{v: v, msg: msg}
}

// await waits for a promise from a goroutine (never from inside a js.FuncOf
// callback, whose event loop turn settles the promise). A rejection becomes
// a *jsError; ctx ends the wait early.
func await(ctx context.Context, p js.Value) (js.Value, error) {
	type result struct {
		v   js.Value
		err error
	}
	ch := make(chan result, 1)
	arg0 := func(args []js.Value) js.Value {
		if len(args) == 0 {
			return js.Undefined()
		}
		return args[0]
	}
	then := js.FuncOf(func(_ js.Value, args []js.Value) any {
		ch <- result{v: arg0(args)}
		return nil
	})
	catch := js.FuncOf(func(_ js.Value, args []js.Value) any {
		ch <- result{err: newJSError(arg0(args))}
		return nil
	})
	p.Call("then", then, catch)
	select {
	case r := <-ch:
		then.Release()
		catch.Release()
		return r.v, r.err
	case <-ctx.Done():
		// The callbacks stay alive: the promise may still settle into ch
		// (buffered), and a released callback would throw then.
		return js.Undefined(), ctx.Err()
	}
}

// errorf makes a JavaScript Error for a message.
func errorf(format string, a ...any) js.Value {
	return js.Global().Get("Error").New(fmt.Sprintf(format, a...))
}
