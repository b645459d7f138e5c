package jsutil

import (
	"io"
	"net/http"
	"testing"
)

func ready(w *ResponseWriter) bool {
	select {
	case <-w.Ready:
		return true
	default:
		return false
	}
}

func TestResponseWriter(t *testing.T) {
	pr, pw := io.Pipe()
	w := NewResponseWriter(pw)
	var _ http.Flusher = w
	if w.Status != http.StatusOK || ready(w) {
		t.Fatalf("new: status %d, ready %v; want 200, not ready", w.Status, ready(w))
	}
	w.Header().Set("Content-Type", "text/plain")
	w.WriteHeader(http.StatusTeapot)
	w.WriteHeader(http.StatusOK) // the first status counts
	if w.Status != http.StatusTeapot || ready(w) {
		t.Fatalf("after WriteHeader: status %d, ready %v; want 418, not ready", w.Status, ready(w))
	}
	go func() {
		w.Write([]byte("body"))
		pw.Close()
	}()
	got, err := io.ReadAll(pr)
	if err != nil || string(got) != "body" || !ready(w) || w.Status != http.StatusTeapot {
		t.Fatalf("body %q (%v), ready %v, status %d", got, err, ready(w), w.Status)
	}

	w2 := NewResponseWriter(pw)
	w2.Flush()
	w2.MarkReady() // twice: no panic
	if !ready(w2) || w2.Status != http.StatusOK {
		t.Fatalf("after Flush: ready %v, status %d", ready(w2), w2.Status)
	}
}
