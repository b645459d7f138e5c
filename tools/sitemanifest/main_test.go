package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestManifestReadsHeadersStrictly: the manifest reads each model's header
// with model.ReadHeader (issue 12 item 3: a case-variant N_LAYER must be
// refused as by a load) and records the file's size and sha256.
func TestManifestReadsHeadersStrictly(t *testing.T) {
	data, err := os.ReadFile(filepath.Join("..", "..", "testdata", "golden", "lm_rope_bidir_bias.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	wasm := filepath.Join(dir, "remask.wasm")
	os.WriteFile(wasm, []byte("wasm"), 0o644)
	good := filepath.Join(dir, "models", "good.safetensors")
	bad := filepath.Join(dir, "models", "bad.safetensors")
	os.MkdirAll(filepath.Dir(good), 0o755)
	os.WriteFile(good, data, 0o644)
	os.WriteFile(bad, bytes.Replace(data, []byte(`\"n_layer\"`), []byte(`\"N_LAYER\"`), 1), 0o644)
	out := filepath.Join(dir, "manifest.json")
	if err := run(out, wasm, []string{good}); err != nil {
		t.Fatal(err)
	}
	var m manifest
	b, _ := os.ReadFile(out)
	if err := json.Unmarshal(b, &m); err != nil || len(m.Models) != 1 {
		t.Fatalf("manifest %s: %v", b, err)
	}
	e := m.Models[0]
	if e.Kind != "language_model" || e.Bytes != int64(len(data)) || len(e.SHA256) != 64 || e.File != "models/good.safetensors" {
		t.Errorf("entry %+v", e)
	}
	if sum, _, _ := hashFile(good); sum != e.SHA256 {
		t.Errorf("sha256 %s, want %s", e.SHA256, sum)
	}
	err = run(out, wasm, []string{bad})
	if err == nil || !strings.Contains(err.Error(), `unknown field "N_LAYER"`) {
		t.Errorf("N_LAYER: %v, want the unknown-field error", err)
	}
}
