package api

import (
	"log/slog"
	"net/http"
	"time"
)

// LogRequests wraps next so that every request logs one line when it ends:
// method, path, status, duration and bytes written. A request whose client
// went away before an answer was written logs status 499. now is the clock
// (nil = time.Now). remask serve uses it for the static site too.
func LogRequests(log *slog.Logger, now func() time.Time, next http.Handler) http.Handler {
	if now == nil {
		now = time.Now
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := now()
		rec := &statusRecorder{ResponseWriter: w}
		next.ServeHTTP(rec, r)
		status := rec.status
		if status == 0 {
			status = http.StatusOK
			if r.Context().Err() != nil && rec.bytes == 0 {
				status = 499 // client closed the request
			}
		}
		log.Info("request", "method", r.Method, "path", r.URL.Path, "status", status,
			"duration", now().Sub(start).Round(time.Microsecond), "bytes", rec.bytes)
	})
}

// statusRecorder remembers the status and counts the bytes; Unwrap lets
// http.ResponseController reach the real writer's Flush.
type statusRecorder struct {
	http.ResponseWriter
	status int
	bytes  int64
}

func (s *statusRecorder) WriteHeader(code int) {
	if s.status == 0 {
		s.status = code
	}
	s.ResponseWriter.WriteHeader(code)
}

func (s *statusRecorder) Write(p []byte) (int, error) {
	if s.status == 0 {
		s.status = http.StatusOK
	}
	n, err := s.ResponseWriter.Write(p)
	s.bytes += int64(n)
	return n, err
}

func (s *statusRecorder) Unwrap() http.ResponseWriter { return s.ResponseWriter }

// Flush implements http.Flusher for handlers that test for it directly.
func (s *statusRecorder) Flush() {
	http.NewResponseController(s.ResponseWriter).Flush()
}
