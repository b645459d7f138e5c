package main

import (
	"encoding/json"
	"os"
	"path/filepath"
	"testing"

	"github.com/remask/remask/engine/api"
)

func copyFile(t *testing.T, from, to string) {
	t.Helper()
	b, err := os.ReadFile(from)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(to, b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// The manifest names the default, light and remasking models by their
// library ids, and lists every file with its size and parameter count.
func TestManifestIDsAndSizes(t *testing.T) {
	root := t.TempDir()
	dir := filepath.Join(root, "models")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	golden := filepath.Join("..", "..", "testdata", "golden")
	files := map[string]string{
		api.LightModelID:      "lm_rope_bidir_bias.safetensors",
		api.DefaultRemaskerID: "classifier.safetensors",
		api.DefaultJudgeID:    "judge_cls.safetensors",
	}
	var args []string
	for id, src := range files {
		dst := filepath.Join(dir, id+".safetensors")
		copyFile(t, filepath.Join(golden, src), dst)
		args = append(args, dst)
	}
	wasm := filepath.Join(root, "remask.wasm")
	if err := os.WriteFile(wasm, []byte("not really wasm"), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(root, "manifest.json")
	if err := run(out, wasm, args); err != nil {
		t.Fatal(err)
	}
	var m manifest
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m.DefaultModel != api.DefaultModelID || m.LightModel != api.LightModelID ||
		m.RemaskingModel != api.DefaultRemaskerID || m.DefaultJudge != api.DefaultJudgeID {
		t.Errorf("ids: default %q light %q remasking %q judge %q", m.DefaultModel, m.LightModel, m.RemaskingModel, m.DefaultJudge)
	}
	if len(m.Models) != len(files) {
		t.Fatalf("%d models, want %d", len(m.Models), len(files))
	}
	for _, e := range m.Models {
		st, err := os.Stat(filepath.Join(root, e.File))
		if err != nil {
			t.Fatal(err)
		}
		if e.Bytes != st.Size() || e.Parameters <= 0 {
			t.Errorf("%s: bytes %d (file %d), parameters %d", e.ID, e.Bytes, st.Size(), e.Parameters)
		}
		if e.ID == api.DefaultRemaskerID && e.Kind != "token_classifier" {
			t.Errorf("%s: kind %q", e.ID, e.Kind)
		}
	}
}

func TestCardSummary(t *testing.T) {
	card := "# Shakespeare small (remask)\n\nThe small model for phones,\nCPU backends. It has 4 layers.\n\n## Training\n\n- x\n"
	title, summary := cardSummary(card)
	if title != "Shakespeare small (remask)" || summary != "The small model for phones, CPU backends." {
		t.Errorf("got %q, %q", title, summary)
	}
	if title, summary := cardSummary(""); title != "" || summary != "" {
		t.Errorf("empty card: %q, %q", title, summary)
	}
}
