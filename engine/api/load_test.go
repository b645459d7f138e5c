package api

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/remask/remask/engine/model"
)

// loadEvents posts a load request and checks the NDJSON framing.
func loadEvents(t *testing.T, ts *httptest.Server, body string) []event {
	t.Helper()
	resp, data := post(t, ts, "/v1/models", body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("load %s: status %d: %s", body, resp.StatusCode, data)
	}
	if ct := resp.Header.Get("Content-Type"); ct != "application/x-ndjson" {
		t.Errorf("Content-Type %q", ct)
	}
	return parseNDJSON(t, data)
}

func TestLoadModelByPath(t *testing.T) {
	_, ts := newTestServer(t, nil)
	path := goldenPath("lm_nopos_f16.safetensors")
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	evs := loadEvents(t, ts, `{"path":"`+path+`"}`)
	if len(evs) < 3 {
		t.Fatalf("events %v", evs)
	}
	first, lastProgress := evs[0], evs[len(evs)-2]
	total := float64(st.Size())
	if first.name() != "progress" || first["bytes"] != 0.0 || first["total"] != total {
		t.Errorf("first event %v", first)
	}
	if lastProgress.name() != "progress" || lastProgress["bytes"] != total {
		t.Errorf("last progress %v", lastProgress)
	}
	loaded := evs[len(evs)-1]
	if loaded.name() != "loaded" {
		t.Fatalf("last event %v", loaded)
	}
	m := loaded["model"].(map[string]any)
	abs, err := filepath.Abs(path)
	if err != nil {
		t.Fatal(err)
	}
	if m["id"] != "lm_nopos_f16" || m["dtype"] != "F16" || m["loaded"] != true || m["kind"] != "language_model" || m["bytes"] != total || m["source"] != abs {
		t.Errorf("loaded model %v", m)
	}
	// It is in the library now, loaded, and generates.
	_, data := do(t, ts, http.MethodGet, "/v1/models", "")
	var l modelList
	if err := jsonUnmarshal(data, &l); err != nil {
		t.Fatal(err)
	}
	if n := len(l.Models); n != 5 || l.Models[4].ID != "lm_nopos_f16" || !l.Models[4].Loaded {
		t.Errorf("library after load: %+v", l.Models)
	}
	resp, data := post(t, ts, "/v1/generate", `{`+small+`,"seed":1,"model":"lm_nopos_f16"}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("generate with the loaded model: %d %s", resp.StatusCode, data)
	}
	if d := decodeDone(t, data); d.Model != "lm_nopos_f16" || d.Strategy != "self" {
		t.Errorf("done %+v", d)
	}
	// Loading the same file under the same id again is a no-op that answers loaded.
	evs = loadEvents(t, ts, `{"path":"`+path+`","id":"lm_nopos_f16"}`)
	if evs[len(evs)-1].name() != "loaded" {
		t.Errorf("reload: %v", evs)
	}
	// A library id alone loads that model.
	evs = loadEvents(t, ts, `{"id":"cls"}`)
	if last := evs[len(evs)-1]; last.name() != "loaded" || last["model"].(map[string]any)["kind"] != "token_classifier" {
		t.Errorf("load by id: %v", evs)
	}
}

func TestLoadModelByURL(t *testing.T) {
	files := httptest.NewServer(http.FileServer(http.Dir(golden)))
	defer files.Close()
	// The file server is on loopback: allowed by AllowPrivateURLs only
	// (TestURLLoadsRefusePrivateAddresses).
	_, ts := newTestServer(t, func(c *Config) { c.AllowPrivateURLs = true })
	url := files.URL + "/judge_cls.safetensors?v=1"
	evs := loadEvents(t, ts, `{"url":"`+url+`","id":"judge2"}`)
	last := evs[len(evs)-1]
	if last.name() != "loaded" || last["model"].(map[string]any)["id"] != "judge2" || last["model"].(map[string]any)["kind"] != "sequence_scorer" {
		t.Fatalf("events %v", evs)
	}
	if evs[0].name() != "progress" || evs[0]["total"] == nil {
		t.Errorf("first event %v", evs[0])
	}
	resp, data := post(t, ts, "/v1/generate", `{`+small+`,"seed":1,"judge":"judge2"}`)
	if resp.StatusCode != http.StatusOK || decodeDone(t, data).Judge != "judge2" {
		t.Errorf("generate with the downloaded judge: %d %s", resp.StatusCode, data)
	}
	// A URL that does not exist is a 404 before any event.
	resp, data = post(t, ts, "/v1/models", `{"url":"`+files.URL+`/nope.safetensors"}`)
	if e := errorOf(t, data); resp.StatusCode != 404 || e.Code != "source_not_found" || e.Field != "url" {
		t.Errorf("missing URL: %d %+v", resp.StatusCode, e)
	}
}

func TestLoadModelErrors(t *testing.T) {
	tmp := t.TempDir()
	_, ts := newTestServer(t, func(c *Config) { c.ModelDirs = append(c.ModelDirs, tmp) })
	cases := []struct {
		name, body string
		status     int
		code       string
		field      string
		msg        string
	}{
		{"no source", `{}`, 400, "invalid_option", "path", `give "path"`},
		{"both", `{"path":"a","url":"http://x/a"}`, 400, "invalid_option", "url", "not both"},
		{"bad url", `{"url":"ftp://x/a.safetensors"}`, 400, "invalid_option", "url", "http://"},
		{"url as path", `{"path":"https://x/a.safetensors"}`, 400, "invalid_option", "path", "send it as"},
		{"bad id", `{"path":"x.safetensors","id":"a b"}`, 400, "invalid_option", "id", "letters, digits"},
		{"reserved id", `{"path":"x.safetensors","id":"none"}`, 400, "invalid_option", "id", "reserved"},
		{"unknown id", `{"id":"gpt"}`, 404, "unknown_model", "id", "known ids: lm"},
		{"taken id", `{"path":"` + goldenPath("lm_nopos_f16.safetensors") + `","id":"lm"}`, 409, "id_taken", "id", "already"},
		{"missing file", `{"path":"` + goldenPath("nope.safetensors") + `"}`, 404, "source_not_found", "path", "nope.safetensors"},
		{"a folder", `{"path":"` + golden + `","id":"dir"}`, 422, "load_failed", "path", "is a folder"},
		{"unknown field", `{"path":"x","force":true}`, 400, "unknown_field", "force", "allowed fields: id, path, url"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			resp, data := post(t, ts, "/v1/models", tc.body)
			if resp.StatusCode != tc.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, tc.status, data)
			}
			e := errorOf(t, data)
			if e.Code != tc.code || e.Field != tc.field || !strings.Contains(e.Message, tc.msg) {
				t.Errorf("error %+v, want %s %s %q", e, tc.code, tc.field, tc.msg)
			}
		})
	}

	// A file that is not a model: the read starts (progress), then an
	// error event ends the stream, and the id is not kept.
	bad := filepath.Join(tmp, "bad.safetensors")
	if err := os.WriteFile(bad, []byte("this is not a model file at all"), 0o644); err != nil {
		t.Fatal(err)
	}
	evs := loadEvents(t, ts, `{"path":"`+bad+`"}`)
	last := evs[len(evs)-1]
	if evs[0].name() != "progress" || last.name() != "error" {
		t.Fatalf("events %v", evs)
	}
	if e := last["error"].(map[string]any); e["code"] != "invalid_model" || !strings.Contains(e["message"].(string), "bad.safetensors") {
		t.Errorf("error event %v", e)
	}
	resp, data := post(t, ts, "/v1/generate", `{`+small+`,"model":"bad"}`)
	if resp.StatusCode != 404 {
		t.Errorf("the failed id stayed in the library: %d %s", resp.StatusCode, data)
	}
}

func TestLoadingDisabled(t *testing.T) {
	_, ts := newTestServer(t, func(c *Config) { c.DisableLoading = true })
	resp, data := post(t, ts, "/v1/models", `{"path":"`+goldenPath("lm_nopos_f16.safetensors")+`"}`)
	if e := errorOf(t, data); resp.StatusCode != 403 || e.Code != "loading_disabled" {
		t.Errorf("%d %+v", resp.StatusCode, e)
	}
	evs := loadEvents(t, ts, `{"id":"lm"}`) // library ids still load
	if evs[len(evs)-1].name() != "loaded" {
		t.Errorf("events %v", evs)
	}
}

// A library model whose file is broken answers the generation with an
// error naming the model, before anything is streamed.
func TestGenerateWithBrokenLibraryModel(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "bad.safetensors")
	if err := os.WriteFile(bad, []byte("12345678"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, ts := newTestServer(t, func(c *Config) {
		c.Models = append(c.Models, ModelSource{ID: "bad", Source: bad})
	})
	resp, data := post(t, ts, "/v1/generate", `{`+small+`,"model":"bad","stream":true}`)
	e := errorOf(t, data)
	if resp.StatusCode != 422 || e.Code != "invalid_model" || e.Field != "model" || !strings.Contains(e.Message, `model "bad" could not be read`) {
		t.Errorf("%d %+v", resp.StatusCode, e)
	}
}

// memLoader serves sources from memory, to check the Loader seam.
type memLoader map[string][]byte

func (m memLoader) Open(ctx context.Context, source string) (io.ReadCloser, int64, error) {
	data, ok := m[source]
	if !ok {
		return nil, 0, &fs.PathError{Op: "open", Path: source, Err: fs.ErrNotExist}
	}
	return io.NopCloser(strings.NewReader(string(data))), -1, nil // size unknown, like a chunked download
}

func TestCustomLoaderAndReadInfo(t *testing.T) {
	names := []string{"lm_rope_bidir_bias", "judge_cls", "classifier", "lm_d7_bf16", "lm_nopos_f16", "lm_abs_causal_nobias"}
	mem := memLoader{}
	for _, n := range names {
		data, err := os.ReadFile(goldenPath(n + ".safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		mem["mem://"+n] = data
	}
	for _, n := range names {
		// The header alone says what the whole file says.
		head, err := ReadInfo(context.Background(), SourceLoader{}, goldenPath(n+".safetensors"))
		if err != nil {
			t.Fatalf("%s: %v", n, err)
		}
		m, err := model.Load(goldenPath(n + ".safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		full := InfoOf(m)
		full.Loaded, full.Bytes = false, head.Bytes
		if !reflect.DeepEqual(head, full) {
			t.Errorf("%s: header info\n%+v\nfull info\n%+v", n, head, full)
		}
	}
	// Truncated and foreign files say so.
	if _, _, err := readHeader("x", strings.NewReader("abc"), 3); !errors.Is(err, model.ErrTruncated) {
		t.Errorf("3-byte file: %v", err)
	}
	data := mem["mem://judge_cls"]
	if _, _, err := readHeader("x", strings.NewReader(string(data[:100])), -1); !errors.Is(err, model.ErrTruncated) {
		t.Errorf("cut header: %v", err)
	}

	s := New(Config{
		Models:       []ModelSource{{ID: "lm", Source: "mem://lm_rope_bidir_bias"}, {ID: "gone", Source: "mem://gone"}},
		DefaultModel: "lm",
		Backend:      testConfig().Backend,
		Loader:       mem,
	})
	ts := httptest.NewServer(s)
	defer ts.Close()
	resp, body := post(t, ts, "/v1/generate", `{`+small+`,"seed":4}`)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("%d %s", resp.StatusCode, body)
	}
	// The same generation from the file gives the same samples.
	_, ts2 := newTestServer(t, nil)
	_, body2 := post(t, ts2, "/v1/generate", `{`+small+`,"seed":4,"judge":"none"}`)
	if !reflect.DeepEqual(tokensOf(decodeDone(t, body)), tokensOf(decodeDone(t, body2))) {
		t.Error("the in-memory loader gave other samples than the file")
	}
	// A library entry whose source is gone: listed with the reason, and a
	// load by id is a 404 naming the source.
	_, data = do(t, ts, http.MethodGet, "/v1/models", "")
	var l modelList
	if err := jsonUnmarshal(data, &l); err != nil {
		t.Fatal(err)
	}
	if len(l.Models) != 2 || !l.Models[0].Loaded || l.Models[0].DType != "F32" || l.Models[1].Error == "" {
		t.Errorf("listing %+v", l.Models)
	}
	resp, body = post(t, ts, "/v1/models", `{"id":"gone"}`)
	if e := errorOf(t, body); resp.StatusCode != 404 || e.Code != "source_not_found" || !strings.Contains(e.Message, "mem://gone") {
		t.Errorf("%d %+v", resp.StatusCode, e)
	}
}
