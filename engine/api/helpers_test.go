package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remask/remask/engine/cpu"
)

// golden is the folder of the PyTorch-made fixtures (never edited by hand).
var golden = filepath.Join("..", "..", "testdata", "golden")

func goldenPath(name string) string { return filepath.Join(golden, name) }

// testConfig is a library of the tiny golden models: "lm" (language model
// with critic and sampler heads, the default), "judge" (the default judge),
// "cls" (a token classifier) and "d7" (a language model with another
// vocabulary size).
func testConfig() Config {
	return Config{
		Models: []ModelSource{
			{ID: "lm", Source: goldenPath("lm_rope_bidir_bias.safetensors")},
			{ID: "judge", Source: goldenPath("judge_cls.safetensors")},
			{ID: "cls", Source: goldenPath("classifier.safetensors")},
			{ID: "d7", Source: goldenPath("lm_d7_bf16.safetensors")},
		},
		DefaultModel: "lm",
		DefaultJudge: "judge",
		Backend:      cpu.New(1),
		ModelDirs:    []string{golden},
	}
}

// newTestServer starts a real HTTP server (loopback TCP) around New(cfg).
func newTestServer(t *testing.T, edit func(*Config)) (*Server, *httptest.Server) {
	t.Helper()
	cfg := testConfig()
	if edit != nil {
		edit(&cfg)
	}
	s := New(cfg)
	ts := httptest.NewServer(s)
	t.Cleanup(ts.Close)
	return s, ts
}

// post sends body to ts+path and returns the answer with its body read.
func post(t *testing.T, ts *httptest.Server, path, body string) (*http.Response, []byte) {
	t.Helper()
	return do(t, ts, http.MethodPost, path, body)
}

func do(t *testing.T, ts *httptest.Server, method, path, body string) (*http.Response, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, ts.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp, err := ts.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp, data
}

// event is any NDJSON line, decoded loosely.
type event map[string]any

func (e event) name() string { s, _ := e["event"].(string); return s }

// parseNDJSON splits a stream into events, failing on any line that is not
// one JSON object.
func parseNDJSON(t *testing.T, data []byte) []event {
	t.Helper()
	var out []event
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<20), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		var ev event
		if err := json.Unmarshal(line, &ev); err != nil {
			t.Fatalf("NDJSON line %q: %v", line, err)
		}
		out = append(out, ev)
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// streamEvents opens a streaming request and delivers its events one by one
// as they arrive, on a channel closed at the end of the stream.
func streamEvents(t *testing.T, ctx context.Context, ts *httptest.Server, path, body string) (<-chan event, *http.Response) {
	t.Helper()
	ch, resp, err := openStream(ctx, ts, path, body)
	if err != nil {
		t.Fatal(err)
	}
	return ch, resp
}

// doneOfBody decodes a non-streaming answer.
func decodeDone(t *testing.T, data []byte) doneEvent {
	t.Helper()
	var d doneEvent
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&d); err != nil {
		t.Fatalf("decoding done %s: %v", data, err)
	}
	return d
}

// errorOf decodes an error answer.
func errorOf(t *testing.T, data []byte) apiError {
	t.Helper()
	var b struct {
		Error *apiError `json:"error"`
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&b); err != nil || b.Error == nil {
		t.Fatalf("not an error body: %s (%v)", data, err)
	}
	if dec.More() {
		t.Fatalf("more than one JSON value in the error body: %s", data)
	}
	return *b.Error
}

// tokensOf returns the tokens of every sample of a done event.
func tokensOf(d doneEvent) [][]int32 {
	out := make([][]int32, len(d.Samples))
	for i, s := range d.Samples {
		out[i] = s.Tokens
	}
	return out
}

func jsonUnmarshal(data []byte, v any) error { return json.Unmarshal(data, v) }
