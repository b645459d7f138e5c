package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"
)

// The sample tests run the small golden models (2 layers, n_embd 32,
// block_size 32; vocabulary: Shakespeare's 65 characters + [MASK]=65,
// [PAD]=66) with small settings, so that each run takes milliseconds.
var (
	lmFull   = goldenPath("lm_rope_bidir_bias.safetensors") // critic + sampler heads
	lmNoHead = goldenPath("lm_nopos_f16.safetensors")       // no critic, no sampler
	judge    = goldenPath("judge_cls.safetensors")
	clsModel = goldenPath("classifier.safetensors")
)

const maskID = 65

// small are settings that keep a generation tiny.
var small = []string{"--num-samples", "2", "--sequence-length", "24", "--iterations", "4"}

func args(extra ...string) []string { return append(append([]string{"sample"}, small...), extra...) }

func TestSampleFlagErrors(t *testing.T) {
	cases := []struct {
		name string
		args []string
		want []string // all in stderr
	}{
		{"temperature zero", args("--temperature", "0"), []string{"--temperature: 0 is out of range", "> 0"}},
		{"top-p above one", args("--top-p", "1.5"), []string{"--top-p: 1.5 is out of range", "(0, 1]"}},
		{"start-ratio negative", args("--start-ratio", "-0.1"), []string{"--start-ratio: -0.1 is out of range", "[0, 1]"}},
		{"end-ratio above one", args("--end-ratio", "2"), []string{"--end-ratio: 2 is out of range", "[0, 1]"}},
		{"num-samples zero", args("--num-samples", "0"), []string{"--num-samples: 0 is out of range", "at least 1"}},
		{"iterations zero", args("--iterations", "0"), []string{"--iterations: 0 is out of range"}},
		{"bad method", args("--method", "autoregressive"), []string{"--method:", "diffusion, multinomial"}},
		{"bad schedule", args("--schedule-mode", "cosine"), []string{"--schedule-mode:", "ratio, threshold"}},
		{"bad placement", args("--seed-placement", "middle"), []string{"--seed-placement:", "prefix, random"}},
		{"bad remasking", args("--remasking", "magic"), []string{"--remasking:", "auto, critic, calibrated, self, random, model"}},
		{"bad metric", args("--quality-metric", "bleu"), []string{"--quality-metric:", "auto, judge, node, self, none"}},
		{"bad neighbours", args("--sampler-neighbors", "left"), []string{"--sampler-neighbors:", "zeros, embeddings"}},
		{"bad unknown-chars", args("--unknown-chars", "keep"), []string{"--unknown-chars:", "error, drop"}},
		{"masking ratio not a number", args("--masking-ratios", "0.9,x,0.1"), []string{"--masking-ratios: item 2 (\"x\") is not a number", "[0, 1]"}},
		{"masking ratio out of range", args("--masking-ratios", "0.9,1.5"), []string{"--masking-ratios:", "(1.5) is out of range", "[0, 1]"}},
		{"masking ratios empty", args("--masking-ratios", ",,"), []string{"--masking-ratios:", "holds no ratio"}},
		{"seed below -1", args("--seed", "-2"), []string{"--seed: -2 is out of range", "-1 for a random seed", "9223372036854775807"}},
		{"unknown compat", args("--compat", "wave-cap,fast-mode"), []string{`--compat: unknown compat switch "fast-mode"`, "wave-cap, global-bootstrap, critic-on-input, mask-pad-only, judge-keep-last, all"}},
		{"bad backend", args("--backend", "tpu"), []string{`--backend: "tpu" is not a backend`, "auto, cpu, gpu"}},
		{"negative threads", args("--threads", "-3"), []string{"--threads: -3 is out of range"}},
		{"template with seed text", args("--template", "ab__", "--seed-text", "x"), []string{"--template: cannot be combined with --seed-text"}},
		{"template without placeholder", args("--template", "abc"), []string{"--template: contains no placeholder"}},
		{"remasking model without file", args("--remasking", "model"), []string{"--remasking: model needs a token classifier", "--remasking-model FILE"}},
		{"save into missing folder", args("--model", lmFull, "--save", filepath.Join(t.TempDir(), "no", "such", "x.json")), []string{"--save: cannot write", "does not exist"}},

		// Errors that need the model.
		{"sequence-length above block_size", args("--model", lmFull, "--sequence-length", "33"), []string{"--sequence-length: 33 is out of range", "block_size is 32", "[1, 32]"}},
		{"seed text longer than the sequence", args("--model", lmFull, "--sequence-length", "8", "--seed-text", "To be or not to be"), []string{"--seed-text: is 18 characters long but the sequence is 8"}},
		{"unknown characters in the seed text", args("--model", lmFull, "--seed-text", "To be~or #not"), []string{"--seed-text: characters not in the model's vocabulary", `"#", "~"`, `set --unknown-chars to "drop" to leave them out`}},
		{"critic remasking without critic head", args("--model", lmNoHead, "--remasking", "critic"), []string{"--remasking:", "needs a critic head", "lm_nopos_f16.safetensors has none"}},
		{"node metric without critic head", args("--model", lmNoHead, "--quality-metric", "node"), []string{"--quality-metric: node needs a critic head"}},
		{"judge metric without judge", args("--model", lmFull, "--quality-metric", "judge"), []string{"--quality-metric: judge needs a judge model (--judge FILE)"}},
		{"template longer than block_size", []string{"sample", "--model", lmFull, "--template", strings.Repeat("a_", 17)}, []string{"--template: is 34 characters long", "block_size is 32"}},
		{"template and sequence length disagree", args("--model", lmFull, "--template", "ab__", "--sequence-length", "24"), []string{"--sequence-length: is 24 but the template is 4 characters long"}},
		{"missing model file", args("--model", filepath.Join(t.TempDir(), "none.safetensors")), []string{"--model:", "none.safetensors does not exist"}},
		{"judge that is a language model", args("--model", lmFull, "--judge", lmNoHead), []string{"--judge:", "is a language model (for --model)", "takes kind sequence_scorer"}},
		{"model that is a judge", args("--model", judge), []string{"--model:", "is a judge (for --judge)", "takes kind language_model"}},
		{"remasking model that is a judge", args("--model", lmFull, "--remasking", "model", "--remasking-model", judge), []string{"--remasking-model:", "takes kind token_classifier"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			code, out, errOut := runCLI(t, "", tc.args...)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitUsage, errOut)
			}
			if out != "" {
				t.Errorf("stdout is not empty: %q", out)
			}
			for _, w := range tc.want {
				if !strings.Contains(errOut, w) {
					t.Errorf("stderr lacks %q:\n%s", w, errOut)
				}
			}
		})
	}
}

// sampleJSON is the --json object.
type sampleJSON struct {
	Samples []struct {
		Text           string   `json:"text"`
		Tokens         []int32  `json:"tokens"`
		JudgeScore     *float64 `json:"judge_score"`
		SelfConfidence *float64 `json:"self_confidence"`
		Critic         *struct {
			Mean, P10, P50, P90 *float64
		} `json:"critic"`
	} `json:"samples"`
	Timings         map[string]float64 `json:"timings"`
	Seconds         float64            `json:"seconds"`
	TokensPerSecond float64            `json:"tokens_per_second"`
	Backend         string             `json:"backend"`
	Seed            uint64             `json:"seed"`
	Strategy        string             `json:"strategy"`
	Metric          string             `json:"metric"`
	Options         map[string]any     `json:"options"`
}

// decodeOne decodes stdout as exactly one JSON object and nothing else.
func decodeOne(t *testing.T, stdout string, v any) map[string]json.RawMessage {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(stdout))
	var raw map[string]json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		t.Fatalf("stdout is not a JSON object: %v\n%s", err, stdout)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		t.Fatalf("stdout holds more than one JSON value (next: %v, err %v)", extra, err)
	}
	if err := json.Unmarshal([]byte(stdout), v); err != nil {
		t.Fatalf("decoding stdout: %v", err)
	}
	return raw
}

func TestSampleJSON(t *testing.T) {
	gen := func(seed string) (sampleJSON, map[string]json.RawMessage, string) {
		code, out, errOut := runCLI(t, "", args("--model", lmFull, "--seed", seed, "--json")...)
		if code != exitOK {
			t.Fatalf("exit %d; stderr:\n%s", code, errOut)
		}
		var res sampleJSON
		raw := decodeOne(t, out, &res)
		return res, raw, errOut
	}
	a, raw, errOut := gen("7")
	for _, key := range []string{"samples", "timings", "seconds", "tokens_per_second", "backend", "seed", "options"} {
		if _, ok := raw[key]; !ok {
			t.Errorf("JSON lacks %q", key)
		}
	}
	if strings.Contains(errOut, "Iteration ") {
		t.Errorf("--json printed progress lines on stderr:\n%s", errOut)
	}
	if len(a.Samples) != 2 {
		t.Fatalf("%d samples, want 2", len(a.Samples))
	}
	for i, s := range a.Samples {
		if len(s.Tokens) != 24 {
			t.Errorf("sample %d: %d tokens, want 24", i, len(s.Tokens))
		}
		for _, id := range s.Tokens {
			if id < 0 || id >= 65 {
				t.Errorf("sample %d: token %d is not an ordinary character (the default excludes specials)", i, id)
			}
		}
		if n := len([]rune(s.Text)); n != 24 {
			t.Errorf("sample %d: text %q has %d characters, want 24", i, s.Text, n)
		}
		// The model has a critic and no judge is loaded: metric auto = node.
		if s.Critic == nil || s.Critic.P50 == nil {
			t.Errorf("sample %d: no critic statistics", i)
		}
	}
	if a.Backend != "cpu" || a.Seed != 7 || a.Metric != "node" || a.Strategy != "critic" {
		t.Errorf("backend %q seed %d metric %q strategy %q; want cpu, 7, node, critic", a.Backend, a.Seed, a.Metric, a.Strategy)
	}
	if a.Options["num_samples"] != 2.0 || a.Options["sequence_length"] != 24.0 || a.Options["iterations"] != 4.0 || a.Options["model"] != lmFull {
		t.Errorf("options do not echo the flags: %v", a.Options)
	}
	if a.Seconds <= 0 || a.TokensPerSecond <= 0 {
		t.Errorf("seconds %v, tokens/s %v; want > 0", a.Seconds, a.TokensPerSecond)
	}
	for _, stage := range []string{"forward", "sampling", "remasking", "metrics"} {
		if _, ok := a.Timings[stage]; !ok {
			t.Errorf("timings lack %q: %v", stage, a.Timings)
		}
	}

	b, _, _ := gen("7")
	if a.Samples[0].Text != b.Samples[0].Text || a.Samples[1].Text != b.Samples[1].Text {
		t.Errorf("the same --seed gave different texts:\n%q %q\n%q %q", a.Samples[0].Text, a.Samples[1].Text, b.Samples[0].Text, b.Samples[1].Text)
	}
	c, _, _ := gen("8")
	if a.Samples[0].Text == c.Samples[0].Text && a.Samples[1].Text == c.Samples[1].Text {
		t.Errorf("--seed 7 and --seed 8 gave the same texts %q", a.Samples[0].Text)
	}
}

func TestSampleRandomSeedIsPrintedAndReported(t *testing.T) {
	code, out, errOut := runCLI(t, "", args("--model", lmFull, "--json")...)
	if code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	var res sampleJSON
	decodeOne(t, out, &res)
	want := "Seed: " + jsonNumber(res.Seed) + " (random; pass --seed " + jsonNumber(res.Seed) + " to repeat)"
	if !strings.Contains(errOut, want) {
		t.Errorf("stderr lacks %q:\n%s", want, errOut)
	}
	if res.Seed >= 1<<63 {
		t.Errorf("seed %d is not 63-bit", res.Seed)
	}
}

func jsonNumber(v uint64) string {
	b, _ := json.Marshal(v)
	return string(b)
}

func TestSampleUnknownCharsDrop(t *testing.T) {
	code, out, errOut := runCLI(t, "", args("--model", lmFull, "--seed", "1", "--json", "--seed-placement", "prefix",
		"--seed-text", "To be~or #not", "--unknown-chars", "drop")...)
	if code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	if !strings.Contains(errOut, "warning: dropped") {
		t.Errorf("no warning about the dropped characters:\n%s", errOut)
	}
	var res sampleJSON
	decodeOne(t, out, &res)
	for i, s := range res.Samples {
		if !strings.HasPrefix(s.Text, "To beor not") {
			t.Errorf("sample %d %q does not start with the seed text less the unknown characters", i, s.Text)
		}
	}
}

func TestSampleTemplateKeepsFixedCharacters(t *testing.T) {
	tmpl := "To be, ____ not __ be: ___"
	code, out, errOut := runCLI(t, "", "sample", "--model", lmFull, "--num-samples", "2", "--iterations", "3",
		"--seed", "3", "--json", "--template", tmpl)
	if code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	var res sampleJSON
	decodeOne(t, out, &res)
	for i, s := range res.Samples {
		got := []rune(s.Text)
		if len(got) != len(tmpl) {
			t.Fatalf("sample %d %q: %d characters, want %d", i, s.Text, len(got), len(tmpl))
		}
		for k, r := range tmpl {
			if r != '_' && got[k] != r {
				t.Errorf("sample %d %q: position %d is %q, the template has %q", i, s.Text, k, got[k], r)
			}
		}
	}
}

func TestSampleTextOutput(t *testing.T) {
	code, out, errOut := runCLI(t, "", args("--model", lmFull, "--seed", "5")...)
	if code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	for i := 1; i <= 4; i++ {
		if want := "Iteration " + string(rune('0'+i)) + "/4: "; !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	for _, want := range []string{"Starting diffusion generation:", "  - Samples: 2", "  - Length: 24", "  - Backend: cpu (auto: ", "  Sample: "} {
		if !strings.Contains(errOut, want) {
			t.Errorf("stderr lacks %q:\n%s", want, errOut)
		}
	}
	for _, want := range []string{"RESULTS", "SAMPLE 1/2", "SAMPLE 2/2", "Critic prob stats: mean=", "PERFORMANCE SUMMARY", "Backend: cpu", "Throughput: ", "tokens/s (tokens: 48)"} {
		if !strings.Contains(out, want) {
			t.Errorf("stdout lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "Iteration ") {
		t.Errorf("progress lines went to stdout:\n%s", out)
	}
}

func TestSampleNoProgress(t *testing.T) {
	code, out, errOut := runCLI(t, "", args("--model", lmFull, "--seed", "5", "--no-progress")...)
	if code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	for _, bad := range []string{"Iteration ", "Starting ", "Sample: "} {
		if strings.Contains(errOut+out, bad) {
			t.Errorf("--no-progress printed %q; stderr:\n%s\nstdout:\n%s", bad, errOut, out)
		}
	}
	if !strings.Contains(out, "SAMPLE 2/2") || !strings.Contains(out, "PERFORMANCE SUMMARY") {
		t.Errorf("--no-progress lost the results:\n%s", out)
	}
}

func TestSampleVerbose(t *testing.T) {
	code, _, errOut := runCLI(t, "", args("--model", lmFull, "--seed", "5", "--verbose")...)
	if code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	for _, want := range []string{"  Iter 1: ", "  Iter 4: ", "model details: bidirectional attention, rotary positions", "sampler head: neighbors embeddings"} {
		if !strings.Contains(errOut, want) {
			t.Errorf("--verbose stderr lacks %q:\n%s", want, errOut)
		}
	}
}

// saveJSON is the --save file (sampler-spec 4.12).
type saveJSON struct {
	Generator string `json:"generator"`
	Meta      string `json:"meta"`
	Samples   []struct {
		SampleID   int `json:"sample_id"`
		Iterations []struct {
			Iteration       int     `json:"iteration"`
			InputMasked     []int32 `json:"input_masked"`
			OutputUnmasked  []int32 `json:"output_unmasked"`
			RemaskedIndices []int   `json:"remasked_indices"`
		} `json:"iterations"`
	} `json:"samples"`
}

func TestSampleSave(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "iterations.json")
	code, out, errOut := runCLI(t, "", args("--model", lmFull, "--seed", "11", "--json", "--save", path)...)
	if code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	if !strings.Contains(errOut, "Saved 2 samples with 4 iterations each\n") {
		t.Errorf("stderr lacks the saved line:\n%s", errOut)
	}
	var res sampleJSON
	decodeOne(t, out, &res)

	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(data, []byte("{\n  \"generator\": ")) {
		t.Errorf("not 2-space indented with generator first:\n%.80s", data)
	}
	// The keys are exactly the reference's, in its order.
	var top map[string]json.RawMessage
	if err := json.Unmarshal(data, &top); err != nil {
		t.Fatal(err)
	}
	if len(top) != 3 {
		t.Errorf("%d top-level keys, want generator, meta, samples", len(top))
	}
	last := -1
	for _, key := range []string{"generator", "meta", "samples"} {
		at := bytes.Index(data, []byte("\n  \""+key+"\": "))
		if at < 0 || at < last {
			t.Errorf("key %q missing or out of order", key)
		}
		last = at
	}
	if strings.Contains(string(data), "null") {
		t.Errorf("the file holds null; remasked_indices must be [] when empty")
	}

	var f saveJSON
	if err := json.Unmarshal(data, &f); err != nil {
		t.Fatal(err)
	}
	if f.Generator != lmFull {
		t.Errorf("generator %q, want %q", f.Generator, lmFull)
	}
	if !strings.Contains(f.Meta, "char vocabulary: 67 tokens") {
		t.Errorf("meta %q does not describe the vocabulary", f.Meta)
	}
	if len(f.Samples) != 2 {
		t.Fatalf("%d samples, want 2", len(f.Samples))
	}
	for i, s := range f.Samples {
		if s.SampleID != i || len(s.Iterations) != 4 {
			t.Fatalf("sample %d: id %d with %d iterations, want id %d with 4", i, s.SampleID, len(s.Iterations), i)
		}
		for k, it := range s.Iterations {
			if it.Iteration != k+1 || len(it.InputMasked) != 24 || len(it.OutputUnmasked) != 24 {
				t.Errorf("sample %d entry %d: iteration %d, %d input and %d output tokens; want %d, 24, 24",
					i, k, it.Iteration, len(it.InputMasked), len(it.OutputUnmasked), k+1)
			}
			if !sort.IntsAreSorted(it.RemaskedIndices) {
				t.Errorf("sample %d iteration %d: remasked_indices %v not ascending", i, k+1, it.RemaskedIndices)
			}
			for _, p := range it.RemaskedIndices {
				if p < 0 || p >= 24 {
					t.Errorf("sample %d iteration %d: remasked index %d outside [0, 23]", i, k+1, p)
				}
			}
			for p, id := range it.OutputUnmasked {
				if id == maskID {
					t.Errorf("sample %d iteration %d: output_unmasked[%d] is [MASK]", i, k+1, p)
				}
			}
			// The next input is this output with the remasked positions masked.
			if k+1 < len(s.Iterations) {
				next := append([]int32(nil), it.OutputUnmasked...)
				for _, p := range it.RemaskedIndices {
					next[p] = maskID
				}
				if !reflect.DeepEqual(next, s.Iterations[k+1].InputMasked) {
					t.Errorf("sample %d: input of iteration %d is not output of %d with its remasked positions masked", i, k+2, k+1)
				}
			}
		}
		for p, id := range s.Iterations[0].InputMasked {
			if id != maskID {
				t.Errorf("sample %d: first input_masked[%d] = %d, want [MASK] (no seed text)", i, p, id)
			}
		}
		if last := s.Iterations[3]; len(last.RemaskedIndices) != 0 {
			t.Errorf("sample %d: last iteration remasked %v, want []", i, last.RemaskedIndices)
		}
		if !reflect.DeepEqual(s.Iterations[3].OutputUnmasked, res.Samples[i].Tokens) {
			t.Errorf("sample %d: the last output is not the final sample", i)
		}
	}
	entries, _ := os.ReadDir(dir)
	if len(entries) != 1 {
		var names []string
		for _, e := range entries {
			names = append(names, e.Name())
		}
		t.Errorf("the save folder holds %v; want only iterations.json (no temporary files left)", names)
	}
}

func TestSampleDefaultModelLookup(t *testing.T) {
	t.Run("absent", func(t *testing.T) {
		t.Setenv("REMASK_MODELS", t.TempDir())
		t.Setenv("XDG_DATA_HOME", t.TempDir()) // an empty per-user folder
		code, out, errOut := runCLI(t, "", args("--seed", "1")...)
		if code != exitUsage {
			t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitUsage, errOut)
		}
		want := "no model given and the shipped model shakespeare.safetensors is in none of the model folders; pass --model FILE, or put the model into the per-user folder (remask pull URL downloads it there; README.md says how)"
		if !strings.Contains(errOut, want) || out != "" {
			t.Errorf("stderr lacks %q (or stdout not empty):\n%s", want, errOut)
		}
	})
	t.Run("found with its judge", func(t *testing.T) {
		dir := t.TempDir()
		link(t, lmFull, filepath.Join(dir, defaultModelName))
		link(t, judge, filepath.Join(dir, defaultJudgeName))
		t.Setenv("REMASK_MODELS", dir)
		code, out, errOut := runCLI(t, "", args("--seed", "1", "--json")...)
		if code != exitOK {
			t.Fatalf("exit %d; stderr:\n%s", code, errOut)
		}
		var res sampleJSON
		decodeOne(t, out, &res)
		if res.Options["model"] != filepath.Join(dir, defaultModelName) || res.Options["judge"] != filepath.Join(dir, defaultJudgeName) {
			t.Errorf("model %v judge %v; want the ones in %s", res.Options["model"], res.Options["judge"], dir)
		}
		if res.Metric != "judge" {
			t.Errorf("metric %q, want judge (the default judge is present)", res.Metric)
		}
		for i, s := range res.Samples {
			if s.JudgeScore == nil || *s.JudgeScore < 0 || *s.JudgeScore > 1 {
				t.Errorf("sample %d: judge score %v, want a number in [0, 1]", i, s.JudgeScore)
			}
		}
	})
}

func link(t *testing.T, target, name string) {
	t.Helper()
	abs, err := filepath.Abs(target)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(abs, name); err != nil {
		t.Fatal(err)
	}
}

func TestModelDirs(t *testing.T) {
	env := map[string]string{"REMASK_MODELS": "/opt/m" + string(filepath.ListSeparator) + "/srv/models"}
	exe := func() (string, error) { return "/usr/local/bin/remask", nil }
	got := modelDirs(func(k string) string { return env[k] }, exe)
	want := []string{"/opt/m", "/srv/models", "models", filepath.Join("/usr/local", "models")}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("modelDirs = %v, want %v", got, want)
	}
	noExe := func() (string, error) { return "", errors.New("unsupported") }
	got = modelDirs(func(string) string { return "" }, noExe)
	if !reflect.DeepEqual(got, []string{"models"}) {
		t.Errorf("modelDirs without env and executable = %v, want [models]", got)
	}
}

func TestSampleInterrupted(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel() // as if Ctrl-C came before the first iteration
	var out, errb bytes.Buffer
	code := run(ctx, args("--model", lmFull, "--seed", "1"), strings.NewReader(""), &out, &errb)
	if code != exitInterrupted {
		t.Fatalf("exit %d, want %d; stderr:\n%s", code, exitInterrupted, errb.String())
	}
	if !strings.Contains(errb.String(), "remask sample: interrupted") || out.Len() != 0 {
		t.Errorf("stderr %q, stdout %q; want the interruption said on stderr only", errb.String(), out.String())
	}
}

func TestSampleRemaskingModel(t *testing.T) {
	code, out, errOut := runCLI(t, "", args("--model", lmFull, "--seed", "2", "--json", "--remasking-model", clsModel)...)
	if code != exitOK {
		t.Fatalf("exit %d; stderr:\n%s", code, errOut)
	}
	var res sampleJSON
	decodeOne(t, out, &res)
	if res.Strategy != "model" {
		t.Errorf("strategy %q, want model (auto picks the remasking model when one is given)", res.Strategy)
	}
	if res.Options["remasking_model"] != clsModel {
		t.Errorf("options.remasking_model = %v, want %s", res.Options["remasking_model"], clsModel)
	}
}
