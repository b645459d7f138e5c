//go:build js && wasm

package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"syscall/js"

	"github.com/remask/remask/internal/jsutil"
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
	v, err := jsutil.Await(ctx, l.host.Call("openModel", source))
	if err != nil {
		var je *jsutil.Error
		if errors.As(err, &je) && je.Value.Type() == js.TypeObject && je.Value.Get("notFound").Truthy() {
			return nil, 0, fmt.Errorf("%s (%w)", je.Msg, fs.ErrNotExist)
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
		chunk, err := jsutil.Await(r.ctx, r.src.Call("read"))
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
