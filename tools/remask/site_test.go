package main

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"
)

func TestSiteHandlerServesGzip(t *testing.T) {
	dir := t.TempDir()
	raw := bytes.Repeat([]byte("\x00asm wasm bytes "), 100)
	var gz bytes.Buffer
	zw := gzip.NewWriter(&gz)
	zw.Write(raw)
	zw.Close()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "remask.wasm"), raw, 0o644))
	must(os.WriteFile(filepath.Join(dir, "remask.wasm.gz"), gz.Bytes(), 0o644))
	must(os.WriteFile(filepath.Join(dir, "app.js"), []byte("let x = 1;\n"), 0o644))
	h := siteHandler(dir)
	get := func(path, accept string) *http.Response {
		req := httptest.NewRequest(http.MethodGet, path, nil)
		if accept != "" {
			req.Header.Set("Accept-Encoding", accept)
		}
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, req)
		return rec.Result()
	}

	resp := get("/remask.wasm", "gzip, deflate, br")
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "gzip" || resp.Header.Get("Content-Type") != "application/wasm" || !bytes.Equal(body, gz.Bytes()) {
		t.Errorf("gzip: status %d, encoding %q, type %q, %d bytes (want the %d-byte .gz)", resp.StatusCode,
			resp.Header.Get("Content-Encoding"), resp.Header.Get("Content-Type"), len(body), gz.Len())
	}
	for _, accept := range []string{"", "identity", "gzip;q=0"} {
		resp = get("/remask.wasm", accept)
		body, _ = io.ReadAll(resp.Body)
		if resp.Header.Get("Content-Encoding") != "" || !bytes.Equal(body, raw) {
			t.Errorf("Accept-Encoding %q: encoding %q, %d bytes, want the raw %d", accept, resp.Header.Get("Content-Encoding"), len(body), len(raw))
		}
	}
	resp = get("/app.js", "gzip")
	body, _ = io.ReadAll(resp.Body)
	if resp.Header.Get("Content-Encoding") != "" || string(body) != "let x = 1;\n" {
		t.Errorf("a file without .gz: encoding %q, body %q", resp.Header.Get("Content-Encoding"), body)
	}
	if resp = get("/../remask.wasm", "gzip"); resp.StatusCode != 200 || resp.Header.Get("Content-Encoding") != "gzip" {
		t.Errorf("a cleaned path: status %d", resp.StatusCode)
	}
}

// Defect 15: the site answered /models/ with a listing of the folder.
func TestSiteHandlerNeverListsFolders(t *testing.T) {
	dir := t.TempDir()
	must := func(err error) {
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.WriteFile(filepath.Join(dir, "index.html"), []byte("<h1>home</h1>"), 0o644))
	must(os.MkdirAll(filepath.Join(dir, "models"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "models", "shakespeare.safetensors"), []byte("weights"), 0o644))
	must(os.MkdirAll(filepath.Join(dir, "docs"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "docs", "index.html"), []byte("<h1>docs</h1>"), 0o644))
	h := siteHandler(dir)
	for _, tc := range []struct {
		path string
		code int
		body string
	}{
		{"/", 200, "<h1>home</h1>"},
		{"/models/", 404, ""},
		{"/models", 404, ""},
		{"/models/shakespeare.safetensors", 200, "weights"},
		{"/docs/", 200, "<h1>docs</h1>"},
	} {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, tc.path, nil))
		body := rec.Body.String()
		if rec.Code != tc.code || (tc.body != "" && body != tc.body) || bytes.Contains(rec.Body.Bytes(), []byte("shakespeare.safetensors")) && tc.path != "/models/shakespeare.safetensors" {
			t.Errorf("%s: %d %q, want %d %q", tc.path, rec.Code, body, tc.code, tc.body)
		}
	}
}
