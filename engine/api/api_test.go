package api

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"reflect"
	"strings"
	"sync"
	"testing"
	"time"
)

func TestHealth(t *testing.T) {
	_, ts := newTestServer(t, func(c *Config) { c.MaxTokens = 500 })
	resp, data := do(t, ts, http.MethodGet, "/v1/health", "")
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("status %d: %s", resp.StatusCode, data)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		t.Errorf("Content-Type %q", ct)
	}
	var h health
	if err := json.Unmarshal(data, &h); err != nil {
		t.Fatal(err)
	}
	if h.Status != "ok" || h.Backend != "cpu" || h.Models != 4 || h.Loaded != 0 || h.DefaultModel != "lm" {
		t.Errorf("health = %+v", h)
	}
	if h.Limits.MaxTokens != 500 || h.Limits.MaxQueue != DefaultMaxQueue || h.Limits.MaxBodyBytes != DefaultMaxBodyBytes || !h.Limits.Loading {
		t.Errorf("limits = %+v", h.Limits)
	}
	if h.Queue.Running || h.Queue.Waiting != 0 {
		t.Errorf("queue = %+v", h.Queue)
	}
}

func TestModelsList(t *testing.T) {
	_, ts := newTestServer(t, func(c *Config) {
		c.Models = append(c.Models, ModelSource{ID: "missing", Source: goldenPath("nope.safetensors")})
	})
	list := func() modelList {
		resp, data := do(t, ts, http.MethodGet, "/v1/models", "")
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("status %d: %s", resp.StatusCode, data)
		}
		var l modelList
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields()
		if err := dec.Decode(&l); err != nil {
			t.Fatal(err)
		}
		return l
	}
	l := list()
	if l.DefaultModel != "lm" || l.DefaultJudge != "judge" {
		t.Errorf("defaults %q %q", l.DefaultModel, l.DefaultJudge)
	}
	var ids []string
	for _, m := range l.Models {
		ids = append(ids, m.ID)
	}
	if got := strings.Join(ids, ","); got != "lm,judge,cls,d7,missing" {
		t.Fatalf("ids %s", got)
	}
	lm := l.Models[0]
	if lm.Kind != "language_model" || lm.NLayer != 2 || lm.NHead != 4 || lm.NEmbd != 32 || lm.BlockSize != 32 || lm.VocabSize != 67 ||
		lm.Heads == nil || !lm.Heads.Critic || !lm.Heads.Sampler || lm.SamplerNeighbors != "embeddings" || lm.DType != "F32" ||
		lm.Loaded || lm.Source != goldenPath("lm_rope_bidir_bias.safetensors") || lm.Bytes == 0 || lm.Parameters == 0 {
		t.Errorf("lm = %+v", lm)
	}
	if j := l.Models[1]; j.Kind != "sequence_scorer" || j.Heads != nil || j.SamplerNeighbors != "" {
		t.Errorf("judge = %+v", j)
	}
	if c := l.Models[2]; c.Kind != "token_classifier" || c.NumTokenClasses != 2 {
		t.Errorf("cls = %+v", c)
	}
	if d := l.Models[3]; d.DType != "BF16" || d.SamplerNeighbors != "zeros" {
		t.Errorf("d7 = %+v", d)
	}
	if m := l.Models[4]; m.Error == "" || m.Kind != "" || m.Loaded {
		t.Errorf("missing = %+v", m)
	}

	// A generation loads the model and the default judge.
	resp, data := post(t, ts, "/v1/generate", `{"num_samples":1,"sequence_length":8,"iterations":2,"seed":3}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("generate: %d %s", resp.StatusCode, data)
	}
	l2 := list()
	for i, m := range l2.Models {
		want := m.ID == "lm" || m.ID == "judge"
		if m.Loaded != want {
			t.Errorf("%s: loaded = %v, want %v", m.ID, m.Loaded, want)
		}
		if i < 4 {
			// Loading does not change what the header said.
			before := l.Models[i]
			before.Loaded = m.Loaded
			if !reflect.DeepEqual(m, before) {
				t.Errorf("%s: listing changed after load:\n%+v\n%+v", m.ID, before, m)
			}
		}
	}
}

func TestRouting(t *testing.T) {
	_, ts := newTestServer(t, nil)
	cases := []struct {
		method, path string
		status       int
		code, allow  string
	}{
		{http.MethodGet, "/v1/generate", 405, "method_not_allowed", "POST"},
		{http.MethodPut, "/v1/models", 405, "method_not_allowed", "GET, POST"},
		{http.MethodPost, "/v1/health", 405, "method_not_allowed", "GET"},
		{http.MethodDelete, "/v1/health", 405, "method_not_allowed", "GET"},
		{http.MethodGet, "/v1/nothing", 404, "not_found", ""},
		{http.MethodGet, "/", 404, "not_found", ""},
	}
	for _, tc := range cases {
		resp, data := do(t, ts, tc.method, tc.path, "")
		if resp.StatusCode != tc.status {
			t.Errorf("%s %s: status %d, want %d", tc.method, tc.path, resp.StatusCode, tc.status)
			continue
		}
		e := errorOf(t, data)
		if e.Code != tc.code || e.Message == "" {
			t.Errorf("%s %s: error %+v", tc.method, tc.path, e)
		}
		if got := resp.Header.Get("Allow"); got != tc.allow {
			t.Errorf("%s %s: Allow %q, want %q", tc.method, tc.path, got, tc.allow)
		}
	}
}

// syncBuffer is a bytes.Buffer safe for the server's goroutines.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

func TestLogOneLinePerRequest(t *testing.T) {
	var logs syncBuffer
	clock := time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC)
	var mu sync.Mutex
	now := func() time.Time {
		mu.Lock()
		defer mu.Unlock()
		clock = clock.Add(250 * time.Millisecond) // each reading advances the fake clock
		return clock
	}
	_, ts := newTestServer(t, func(c *Config) {
		c.Logger = slog.New(slog.NewTextHandler(&logs, nil))
		c.Now = now
	})
	do(t, ts, http.MethodGet, "/v1/health", "")
	post(t, ts, "/v1/generate", `{"bogus":1}`)
	lines := strings.Split(strings.TrimSpace(logs.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("%d log lines, want 2:\n%s", len(lines), logs.String())
	}
	for i, want := range []string{"method=GET path=/v1/health status=200 duration=250ms", "method=POST path=/v1/generate status=400 duration=250ms"} {
		if !strings.Contains(lines[i], want) {
			t.Errorf("log line %q lacks %q", lines[i], want)
		}
	}
}

func TestLogRequestsRecordsCancelledAs499(t *testing.T) {
	var logs syncBuffer
	h := LogRequests(slog.New(slog.NewTextHandler(&logs, nil)), nil, http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	ctx, cancel := contextWithCancel()
	cancel()
	req := httptest.NewRequest(http.MethodPost, "/v1/generate", nil).WithContext(ctx)
	h.ServeHTTP(httptest.NewRecorder(), req)
	if !strings.Contains(logs.String(), "status=499") {
		t.Errorf("log %q lacks status=499", logs.String())
	}
}
