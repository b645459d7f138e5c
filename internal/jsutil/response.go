package jsutil

import (
	"io"
	"net/http"
	"sync"
)

// ResponseWriter is the http.ResponseWriter and http.Flusher of the fetch
// bridges (wasm/bridge_js.go, wasm/worker/bridge_js.go): the body goes into
// a pipe that the JavaScript side drains, and Ready is closed once the
// status and headers are final (the first body byte, a flush, or
// MarkReady when the handler returns). Written bytes are never buffered.
type ResponseWriter struct {
	Status int // http.StatusOK unless the handler wrote another first
	Pipe   *io.PipeWriter
	Ready  chan struct{}

	header http.Header
	wrote  bool
	once   sync.Once
}

// NewResponseWriter returns a ResponseWriter whose body goes into pw.
func NewResponseWriter(pw *io.PipeWriter) *ResponseWriter {
	return &ResponseWriter{Status: http.StatusOK, Pipe: pw, Ready: make(chan struct{}), header: http.Header{}}
}

// Header implements http.ResponseWriter.
func (w *ResponseWriter) Header() http.Header { return w.header }

// WriteHeader implements http.ResponseWriter; only the first status counts.
func (w *ResponseWriter) WriteHeader(status int) {
	if !w.wrote {
		w.Status = status
		w.wrote = true
	}
}

// Write implements http.ResponseWriter: it makes the status final and
// blocks until the reader has taken p (or the pipe is closed).
func (w *ResponseWriter) Write(p []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	w.MarkReady()
	return w.Pipe.Write(p)
}

// Flush sends the status and headers now.
func (w *ResponseWriter) Flush() {
	w.WriteHeader(http.StatusOK)
	w.MarkReady()
}

// MarkReady closes Ready (once).
func (w *ResponseWriter) MarkReady() { w.once.Do(func() { close(w.Ready) }) }
