package api

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"time"
)

// stream writes NDJSON events: one JSON object per line, flushed at once.
// Nothing is written before the first event, so a request that fails
// before it can still answer with an HTTP error status.
type stream struct {
	w       http.ResponseWriter
	rc      *http.ResponseController
	started bool
	err     error // the first write error (the client went away)
	// writeTimeout, when set, bounds each event's write: a client that
	// stops reading cannot hold the request (and the device) longer.
	writeTimeout time.Duration
}

func newStream(w http.ResponseWriter) *stream {
	return &stream{w: w, rc: http.NewResponseController(w)}
}

// send writes one event. After a write error it does nothing and returns
// that error.
func (s *stream) send(v any) error {
	if s.err != nil {
		return s.err
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf) // Encode ends the line
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		panic(fmt.Sprintf("api: encoding event %T: %v", v, err))
	}
	if !s.started {
		s.started = true
		h := s.w.Header()
		h.Set("Content-Type", "application/x-ndjson")
		h.Set("Cache-Control", "no-store")
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("X-Accel-Buffering", "no") // no proxy buffering
		s.w.WriteHeader(http.StatusOK)
	}
	if s.writeTimeout > 0 {
		s.rc.SetWriteDeadline(time.Now().Add(s.writeTimeout)) // unsupported writers: no deadline
	}
	if _, err := s.w.Write(buf.Bytes()); err != nil {
		s.err = err
		return err
	}
	// A writer that cannot flush (some wasm runtimes) still gets every
	// event, only later; that is not a failure.
	if err := s.rc.Flush(); err != nil && !errors.Is(err, http.ErrNotSupported) {
		s.err = err
		return err
	}
	return nil
}

// fail ends the request with e: an HTTP error when nothing was sent yet,
// else an error event as the last line.
func (s *stream) fail(e *apiError) {
	if !s.started {
		writeError(s.w, e)
		return
	}
	s.send(errorEvent{Event: "error", Error: e})
}

type errorEvent struct {
	Event string    `json:"event"`
	Error *apiError `json:"error"`
}
