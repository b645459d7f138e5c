package main

import (
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remask/remask/engine/checkpoint"
)

func TestInspectModelFile(t *testing.T) {
	file := filepath.Join("..", "..", "testdata", "golden", "lm_d7_bf16.safetensors")
	code, out, stderr := runTool(t, runInspect, file)
	if code != exitOK {
		t.Fatalf("exit %d; stderr %q", code, stderr)
	}
	for _, want := range []string{
		"format      remask/1 model file\n",
		"kind        language_model\n",
		"sizes       n_layer 2, n_head 4, n_embd 32, block_size 32, vocab_size 68\n",
		"heads       lm (tied to wte), critic, sampler (neighbors zeros, min_neighbors_ratio 0.01)\n",
		"attention   bidirectional\n",
		"positions   rotary (base 10000)\n",
		"cls         id 67 is replaced by cls_embedding\n",
		"calibration critic calibration table (100 entries)\n",
		"vocabulary  char, 68 ids: 65 characters, then 3 special\n",
		"            67 [CLS] (cls)\n",
		"dtype       BF16\n",
		"card\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	// --json, flag after the operand.
	code, out, stderr = runTool(t, runInspect, file, "--json")
	if code != exitOK {
		t.Fatalf("exit %d; stderr %q", code, stderr)
	}
	var s checkpoint.Summary
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatalf("--json output is not a JSON summary: %v\n%s", err, out)
	}
	if s.Format != "remask/1" || s.VocabSize != 68 || s.Parameters <= 0 || s.Vocab == nil || len(s.Vocab.Special) != 3 || s.Source == nil {
		t.Errorf("summary %+v", s)
	}
	// Checkpoint-only flags on a model file.
	code, _, stderr = runTool(t, runInspect, file, "--meta", forkFixture("meta.pkl"))
	if code != exitFailure || !strings.Contains(stderr, "applies to checkpoints only") {
		t.Errorf("exit %d, stderr %q", code, stderr)
	}
}

func TestInspectCheckpoint(t *testing.T) {
	code, out, stderr := runTool(t, runInspect, forkFixture("d7_lora.pt"), "--calibration", forkFixture("calibration.json"))
	if code != exitOK {
		t.Fatalf("exit %d; stderr %q", code, stderr)
	}
	for _, want := range []string{
		"format      fork checkpoint (torch.save), [D7] family, iter_num 3000\n",
		"parameters  27,712\n",
		"calibration critic calibration table (100 entries)\n",
		"conversion\n",
		"merged LoRA into 8 matrices",
		`matched by file name`,
		"guidance weights",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "warnings\n") {
		t.Errorf("unexpected warnings:\n%s", out)
	}

	// JSON: the family, the warnings.
	code, out, _ = runTool(t, runInspect, "--json", forkFixture("sh_lm.pt"))
	if code != exitOK {
		t.Fatalf("exit %d", code)
	}
	var s checkpoint.Summary
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatal(err)
	}
	if s.Format != "fork-checkpoint" || s.ForkFamily != "sh" || s.SamplerNeighbors != "zeros" || len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], "sampler head untrained") {
		t.Errorf("summary %+v", s)
	}

	// A checkpoint that cannot be converted: what is known, the reason, exit 1.
	code, out, stderr = runTool(t, runInspect, forkFixture("sh_lm_abs_causal.pt"))
	if code != exitFailure || !strings.Contains(out, "positions   absolute\n") || !strings.Contains(out, "--meta") || !strings.Contains(stderr, "cannot be converted as it is") {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, out, stderr)
	}
	code, out, _ = runTool(t, runInspect, forkFixture("sh_lm_abs_causal.pt"), "--meta", forkFixture("meta.pkl"))
	if code != exitOK || !strings.Contains(out, "attention   causal\n") || !strings.Contains(out, "critic head half-trained") {
		t.Errorf("with --meta: exit %d\n%s", code, out)
	}
	code, out, _ = runTool(t, runInspect, "--json", forkFixture("bpe.pt"))
	s = checkpoint.Summary{}
	if err := json.Unmarshal([]byte(out), &s); err != nil {
		t.Fatal(err)
	}
	if code != exitFailure || !strings.Contains(s.Error, "BPE") || s.VocabSize != 50304 {
		t.Errorf("bpe: exit %d, summary %+v", code, s)
	}
}

func TestInspectErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{nil, exitUsage, "missing the file to work on: remask inspect FILE"},
		{[]string{"a", "b"}, exitUsage, `unexpected argument "b"`},
		{[]string{filepath.Join(t.TempDir(), "none.safetensors")}, exitFailure, "no such file"},
		{[]string{forkFixture("calibration.json")}, exitFailure, forkFixture("calibration.json")},
	} {
		code, _, stderr := runTool(t, runInspect, tc.args...)
		if code != tc.code || !strings.Contains(stderr, tc.want) {
			t.Errorf("%q: exit %d (want %d), stderr %q, want it to say %q", tc.args, code, tc.code, stderr, tc.want)
		}
	}
}
