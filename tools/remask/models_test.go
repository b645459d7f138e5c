package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestModelsListsTheGoldens(t *testing.T) {
	var out, errb bytes.Buffer
	c := testCLI(&out, &errb)
	if code := c.report("models", modelsCommand(context.Background(), c, []string{"--models", golden})); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	lines := strings.Split(strings.TrimRight(out.String(), "\n"), "\n")
	if len(lines) != 7 || !strings.HasPrefix(strings.TrimSpace(lines[0]), "ID") {
		t.Fatalf("table:\n%s", out.String())
	}
	wants := map[string][]string{
		"classifier":           {"token_classifier", "2 classes", "F32"},
		"judge_cls":            {"sequence_scorer", "F32"},
		"lm_d7_bf16":           {"language_model", "critic,sampler(zeros)", "BF16", "68"},
		"lm_rope_bidir_bias":   {"language_model", "critic,sampler(embeddings)", "137.7 KiB"},
		"lm_nopos_f16":         {"language_model", "F16"},
		"lm_abs_causal_nobias": {"language_model", "critic"},
	}
	for id, parts := range wants {
		found := false
		for _, l := range lines[1:] {
			if strings.HasPrefix(strings.TrimSpace(l), id+" ") {
				found = true
				for _, p := range parts {
					if !strings.Contains(l, p) {
						t.Errorf("%s row %q lacks %q", id, l, p)
					}
				}
			}
		}
		if !found {
			t.Errorf("no row for %s:\n%s", id, out.String())
		}
	}
	if !strings.Contains(errb.String(), "Searched: "+golden+" (--models, 6 models); models (./models, not found)") {
		t.Errorf("stderr %q", errb.String())
	}
}

func TestModelsJSONAndSearchOrder(t *testing.T) {
	// Two folders in $REMASK_MODELS: the second holds a copy of a golden
	// under the same id (shadowed), a new one, and a broken file.
	extra := t.TempDir()
	data, err := os.ReadFile(goldenPath("judge_cls.safetensors"))
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{
		"judge_cls.safetensors": data,
		"judge2.safetensors":    data,
		"broken.safetensors":    []byte("not a model"),
		"notes.txt":             []byte("ignored"),
	} {
		if err := os.WriteFile(filepath.Join(extra, name), content, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	var out, errb bytes.Buffer
	c := testCLI(&out, &errb)
	c.getenv = func(k string) string {
		if k == "REMASK_MODELS" {
			return golden + string(os.PathListSeparator) + extra + string(os.PathListSeparator) + golden
		}
		return ""
	}
	if code := c.report("models", modelsCommand(context.Background(), c, []string{"--json"})); code != exitOK {
		t.Fatalf("exit %d: %s", code, errb.String())
	}
	var res struct {
		Models []struct {
			ID         string `json:"id"`
			Kind       string `json:"kind"`
			Source     string `json:"source"`
			Error      string `json:"error"`
			ShadowedBy string `json:"shadowed_by"`
			Bytes      int64  `json:"bytes"`
			NLayer     int    `json:"n_layer"`
		} `json:"models"`
		Searched []libraryDir `json:"searched"`
	}
	dec := json.NewDecoder(&out)
	if err := dec.Decode(&res); err != nil {
		t.Fatal(err)
	}
	if len(res.Searched) != 3 || res.Searched[0].Path != golden || res.Searched[1].Path != extra || res.Searched[2].Origin != "./models" || res.Searched[2].Exists {
		t.Errorf("searched %+v (the repeated folder must appear once)", res.Searched)
	}
	byID := map[string][]int{}
	for i, m := range res.Models {
		byID[m.ID] = append(byID[m.ID], i)
	}
	if len(res.Models) != 9 {
		t.Fatalf("%d models: %+v", len(res.Models), res.Models)
	}
	if j := byID["judge_cls"]; len(j) != 2 || res.Models[j[0]].ShadowedBy != "" || res.Models[j[1]].ShadowedBy != goldenPath("judge_cls.safetensors") {
		t.Errorf("judge_cls entries %v", j)
	}
	if b := res.Models[byID["broken"][0]]; b.Error == "" || b.Kind != "" {
		t.Errorf("broken %+v", b)
	}
	if j2 := res.Models[byID["judge2"][0]]; j2.Kind != "sequence_scorer" || j2.NLayer != 2 || j2.Bytes != int64(len(data)) {
		t.Errorf("judge2 %+v", j2)
	}
	// The library that serve builds leaves the shadowed copy out.
	found, _ := scanLibrary(libraryDirs("", c.getenv, c.executable))
	sources, skipped := librarySources(found)
	if len(sources) != 8 || len(skipped) != 1 || !strings.Contains(skipped[0], `id "judge_cls" is already`) {
		t.Errorf("sources %v skipped %v", sources, skipped)
	}
}

func TestModelsFlagErrors(t *testing.T) {
	var errb bytes.Buffer
	code := run(context.Background(), []string{"models", "--models", "/does/not/exist"}, strings.NewReader(""), io.Discard, &errb)
	if code != exitUsage || !strings.Contains(errb.String(), "--models: /does/not/exist is not a folder") {
		t.Errorf("exit %d: %s", code, errb.String())
	}
	errb.Reset()
	var out bytes.Buffer
	c := testCLI(&out, &errb)
	if code := c.report("models", modelsCommand(context.Background(), c, nil)); code != exitOK ||
		out.Len() != 0 || !strings.Contains(errb.String(), "No models found") {
		t.Errorf("no models: exit %d, stdout %q, stderr %q", code, out.String(), errb.String())
	}
}
