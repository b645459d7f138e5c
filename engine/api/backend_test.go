package api

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/remask/remask/engine"
	"github.com/remask/remask/engine/model"
)

// flakyBackend wraps the CPU backend: Load fails for models named in
// refuse, and every Net's Encode fails from its failAt-th call on (0 = never).
type flakyBackend struct {
	engine.Backend
	refuse string
	failAt int
}

func (b flakyBackend) Load(ctx context.Context, m *model.Model) (engine.Net, error) {
	if b.refuse != "" && strings.Contains(m.Path, b.refuse) {
		return nil, errors.New("out of device memory")
	}
	n, err := b.Backend.Load(ctx, m)
	return &flakyNet{Net: n, failAt: b.failAt}, err
}

type flakyNet struct {
	engine.Net
	failAt, calls int
}

func (n *flakyNet) Encode(ctx context.Context, tokens []int32, B, T int) (engine.Hidden, error) {
	n.calls++
	if n.failAt > 0 && n.calls >= n.failAt {
		return nil, errors.New("device lost")
	}
	return n.Net.Encode(ctx, tokens, B, T)
}

func TestGenerationErrorEndsTheStream(t *testing.T) {
	_, ts := newTestServer(t, func(c *Config) { c.Backend = flakyBackend{Backend: c.Backend, failAt: 3} })
	resp, data := post(t, ts, "/v1/generate", `{`+small+`,"seed":1,"stream":true,"judge":"none"}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d", resp.StatusCode)
	}
	evs := parseNDJSON(t, data)
	var names []string
	for _, ev := range evs {
		names = append(names, ev.name())
	}
	// The sampler-head path encodes more than once per iteration, so the
	// failure comes within the first iterations.
	got := strings.Join(names, " ")
	if !strings.HasPrefix(got, "start iteration") || !strings.HasSuffix(got, " error") || strings.Contains(got, "done") {
		t.Fatalf("events %q", got)
	}
	e := evs[len(evs)-1]["error"].(map[string]any)
	if e["code"] != "generation_failed" || !strings.Contains(e["message"].(string), "device lost") {
		t.Errorf("error event %v", e)
	}
	// Without streaming the same failure is a 500 with the message.
	resp, data = post(t, ts, "/v1/generate", `{`+small+`,"seed":1,"judge":"none"}`)
	if e := errorOf(t, data); resp.StatusCode != 500 || e.Code != "generation_failed" || !strings.Contains(e.Message, "device lost") {
		t.Errorf("%d %+v", resp.StatusCode, e)
	}
}

func TestBackendLoadFailure(t *testing.T) {
	_, ts := newTestServer(t, func(c *Config) { c.Backend = flakyBackend{Backend: c.Backend, refuse: "judge_cls"} })
	resp, data := post(t, ts, "/v1/generate", `{`+small+`,"seed":1}`)
	if e := errorOf(t, data); resp.StatusCode != 500 || e.Code != "backend_load_failed" || !strings.Contains(e.Message, `model "judge"`) || !strings.Contains(e.Message, "out of device memory") {
		t.Errorf("%d %+v", resp.StatusCode, e)
	}
	// The file was read already, so nothing was streamed: a plain 500.
	resp, data = post(t, ts, "/v1/models", `{"id":"judge"}`)
	if e := errorOf(t, data); resp.StatusCode != 500 || e.Code != "backend_load_failed" {
		t.Errorf("load: %d %+v", resp.StatusCode, e)
	}
	// A first read streams progress, and the failure is the last event.
	resp, data = post(t, ts, "/v1/models", `{"path":"`+goldenPath("judge_cls.safetensors")+`","id":"judge_again"}`)
	evs := parseNDJSON(t, data)
	if last := evs[len(evs)-1]; resp.StatusCode != 200 || evs[0].name() != "progress" || last.name() != "error" || last["error"].(map[string]any)["code"] != "backend_load_failed" {
		t.Errorf("load: %d %v", resp.StatusCode, evs)
	}
	if resp, data := post(t, ts, "/v1/generate", `{`+small+`,"judge":"judge_again"}`); resp.StatusCode != 404 {
		t.Errorf("the id that failed on the backend stayed in the library: %d %s", resp.StatusCode, data)
	}
	// Without the judge the same server generates.
	if resp, data := post(t, ts, "/v1/generate", `{`+small+`,"seed":1,"judge":"none"}`); resp.StatusCode != 200 {
		t.Errorf("%d %s", resp.StatusCode, data)
	}
}

// plainWriter is a ResponseWriter that cannot flush, like some wasm glue.
type plainWriter struct {
	h      http.Header
	status int
	body   strings.Builder
}

func (w *plainWriter) Header() http.Header         { return w.h }
func (w *plainWriter) WriteHeader(s int)           { w.status = s }
func (w *plainWriter) Write(p []byte) (int, error) { return w.body.Write(p) }

func TestStreamingWithoutFlusher(t *testing.T) {
	s := New(testConfig())
	w := &plainWriter{h: http.Header{}}
	req := httptest.NewRequest(http.MethodPost, "/v1/generate", strings.NewReader(`{`+small+`,"seed":1,"stream":true}`))
	s.ServeHTTP(w, req)
	evs := parseNDJSON(t, []byte(w.body.String()))
	if w.status != 200 || len(evs) != 6 || evs[5].name() != "done" {
		t.Errorf("status %d, events %v", w.status, evs)
	}
}
