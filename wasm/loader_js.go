//go:build js && wasm

package main

import (
	"context"
	"fmt"
	"io"
	"io/fs"
	"syscall/js"

	"github.com/remask/remask/internal/jsutil"
)

// hostLoader is the api.Loader of the browser: it asks the worker's
// openModel(source) (wasm/js/engine-worker.js) for the file, which fetches it (or takes
// it from the Cache API, or from a file the user dropped on the page) and
// verifies it against the site's manifest, and reads the answer's
// ReadableStream. A source the host does not find (HTTP 404) wraps
// fs.ErrNotExist, which engine/api answers with 404 source_not_found.
type hostLoader struct {
	host js.Value
}

// Open implements api.Loader.
func (l hostLoader) Open(ctx context.Context, source string) (io.ReadCloser, int64, error) {
	v, err := jsutil.Await(ctx, l.host.Call("openModel", source))
	if err != nil {
		if je, ok := err.(*jsutil.Error); ok && je.Value.Type() == js.TypeObject && je.Value.Get("notFound").Truthy() {
			return nil, 0, fmt.Errorf("%s (%w)", je.Msg, fs.ErrNotExist)
		}
		return nil, 0, err
	}
	size := int64(-1)
	if s := v.Get("size"); s.Type() == js.TypeNumber && s.Float() >= 0 {
		size = int64(s.Float())
	}
	return &streamReader{ctx: ctx, r: v.Get("body").Call("getReader")}, size, nil
}

// streamReader reads a ReadableStream of Uint8Array chunks.
type streamReader struct {
	ctx  context.Context
	r    js.Value // ReadableStreamDefaultReader
	buf  []byte
	done bool
	err  error
}

func (s *streamReader) Read(p []byte) (int, error) {
	for len(s.buf) == 0 {
		if s.err != nil {
			return 0, s.err
		}
		res, err := jsutil.Await(s.ctx, s.r.Call("read"))
		if err != nil {
			s.err = err
			s.cancel()
			return 0, err
		}
		if res.Get("done").Bool() {
			s.done = true
			s.err = io.EOF
			return 0, io.EOF
		}
		chunk := res.Get("value")
		s.buf = make([]byte, chunk.Get("byteLength").Int())
		js.CopyBytesToGo(s.buf, chunk)
	}
	n := copy(p, s.buf)
	s.buf = s.buf[n:]
	return n, nil
}

func (s *streamReader) cancel() {
	if !s.done {
		s.done = true
		s.r.Call("cancel").Call("catch", js.FuncOf(func(js.Value, []js.Value) any { return nil }))
	}
}

// Close cancels the stream when it was not read to its end (engine/api reads
// only the header of a file to list it).
func (s *streamReader) Close() error {
	s.cancel()
	return nil
}
