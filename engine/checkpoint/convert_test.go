package checkpoint

import (
	"archive/zip"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/remask/remask/engine/model"
)

// f32Tol is the largest absolute error allowed against PyTorch's float64
// outputs for an F32 file: float32 arithmetic on these tiny models stays far
// below it.
const f32Tol = 1e-4

// f16Tol is the tolerance for F16 files. Rounding every weight to 11
// significant bits moves outputs of magnitude ~3 by a few 1e-3 (measured
// worst case 8e-3 over the fixtures); 2e-2 leaves room and still catches a
// wrong conversion, which moves them by O(1).
const f16Tol = 2e-2

// variant is one convertible fixture and what converting it needs.
type variant struct {
	name     string
	opts     Options
	family   Family
	kind     model.Kind
	warnings []string // substrings, one per expected warning
}

func variants() []variant {
	return []variant{
		{name: "sh_lm", family: SH, kind: model.LanguageModel,
			warnings: []string{"sampler head untrained: saved at iter_num 250, before start_sampler_iteration 1000"}},
		{name: "sh_lm_abs_causal", opts: Options{MetaPath: fixture("meta.pkl")}, family: SH, kind: model.LanguageModel,
			warnings: []string{"critic head half-trained: saved at iter_num 150, before end_critic_iteration 300"}},
		{name: "sh_lm_compiled", family: SH, kind: model.LanguageModel},
		{name: "sh_judge", family: SH, kind: model.SequenceScorer,
			warnings: []string{"no string for id 67"}},
		{name: "sh_classifier", family: SH, kind: model.TokenClassifier},
		{name: "d7_lora", opts: Options{CalibrationPath: fixture("calibration.json")}, family: D7, kind: model.LanguageModel},
	}
}

// TestConvertGolden converts every fixture, writes it as F32 and F16,
// reads it back and compares the CPU backend's outputs with PyTorch's.
func TestConvertGolden(t *testing.T) {
	for _, v := range variants() {
		t.Run(v.name, func(t *testing.T) {
			c := open(t, v.name)
			fam, err := c.Family()
			if err != nil || fam != v.family {
				t.Fatalf("Family() = %q, %v; want %q", fam, err, v.family)
			}
			m, warnings, err := c.Convert(v.opts)
			if err != nil {
				t.Fatal(err)
			}
			if m.Config.Kind != v.kind {
				t.Errorf("kind %q, want %q", m.Config.Kind, v.kind)
			}
			checkWarnings(t, warnings, v.warnings)
			if err := m.Validate(); err != nil {
				t.Fatal(err)
			}
			// Exactly Expected's tensors (plus the tied head of an LM).
			var names []string
			for _, s := range model.Expected(&m.Config) {
				names = append(names, s.Name)
			}
			if m.Config.Kind == model.LanguageModel {
				names = append(names, "lm_head.weight")
			}
			slices.Sort(names)
			if got := sortedNames(m.Tensors); !slices.Equal(got, names) {
				t.Fatalf("tensors %v, want %v", got, names)
			}
			e := readExpected(t, v.name)
			for _, dt := range []struct {
				dtype string
				tol   float64
			}{{model.F32, f32Tol}, {model.F16, f16Tol}} {
				path := filepath.Join(t.TempDir(), v.name+".safetensors")
				if err := model.Save(path, m, dt.dtype); err != nil {
					t.Fatal(err)
				}
				back, err := model.Load(path)
				if err != nil {
					t.Fatal(err)
				}
				if back.DType != dt.dtype {
					t.Errorf("read back as %s, want %s", back.DType, dt.dtype)
				}
				errs := compareOutputs(t, back, e)
				out, worst := errs.max()
				t.Logf("%s: max abs error %.3g (%s), all %v", dt.dtype, worst, out, errs)
				if worst > dt.tol {
					t.Errorf("%s: %s differs from PyTorch by %.3g, more than %g", dt.dtype, out, worst, dt.tol)
				}
			}
		})
	}
}

func checkWarnings(t *testing.T, got, want []string) {
	t.Helper()
	if len(got) != len(want) {
		t.Errorf("warnings %q, want %d matching %q", got, len(want), want)
		return
	}
	for i := range want {
		if !strings.Contains(got[i], want[i]) {
			t.Errorf("warning %q does not say %q", got[i], want[i])
		}
	}
}

// TestLoRAMergeMatters checks that the golden comparison can fail: the
// [D7] fixture converted without its LoRA adapters (B zeroed) must be far
// from PyTorch's outputs.
func TestLoRAMergeMatters(t *testing.T) {
	c := open(t, "d7_lora")
	for name, tensor := range c.StateDict {
		if strings.HasSuffix(name, ".B.weight") {
			clear(tensor.Data)
		}
	}
	m, _, err := c.Convert(Options{})
	if err != nil {
		t.Fatal(err)
	}
	_, worst := compareOutputs(t, m, readExpected(t, "d7_lora")).max()
	if worst < 100*f32Tol {
		t.Fatalf("without LoRA the outputs differ by only %.3g: the fixture does not exercise the merge", worst)
	}
}

func TestSamplerNeighborsZeros(t *testing.T) {
	for _, name := range []string{"sh_lm", "sh_lm_compiled"} {
		m, _, err := open(t, name).Convert(Options{})
		if err != nil {
			t.Fatal(err)
		}
		if s := m.Config.Sampler; s == nil || s.Neighbors != model.NeighborsZeros || s.MinNeighborsRatio != 0.01 {
			t.Errorf("%s: sampler %+v, want neighbors %q, min_neighbors_ratio 0.01", name, s, model.NeighborsZeros)
		}
	}
}

func TestModelModeBothPickleForms(t *testing.T) {
	// sh_lm was pickled as ModelMode("language_model") (Python <= 3.10),
	// sh_classifier as getattr(ModelMode, "TOKEN_CLASSIFIER") (>= 3.11).
	for name, want := range map[string]ModelMode{"sh_lm": "language_model", "sh_judge": "sequence_scorer", "sh_classifier": "token_classifier"} {
		c := open(t, name)
		if got := c.ModelArgs["mode"]; got != want {
			t.Errorf("%s: model_args mode = %#v, want %q", name, got, want)
		}
	}
}

func TestCheckpointFields(t *testing.T) {
	c := open(t, "d7_lora")
	if c.IterNum == nil || *c.IterNum != 3000 {
		t.Errorf("iter_num %v, want 3000", c.IterNum)
	}
	if c.BestValLoss == nil || *c.BestValLoss != 1.25 { // a 0-d tensor in this file
		t.Errorf("best_val_loss %v, want 1.25", c.BestValLoss)
	}
	if !c.HasOptimizer {
		t.Error("the optimizer entry was not noticed")
	}
	if want := []string{"model", "optimizer", "model_args", "iter_num", "best_val_loss", "config"}; !slices.Equal(c.Keys, want) {
		t.Errorf("keys %v, want %v", c.Keys, want)
	}
	// Shared matrices are listed under every block with the same values.
	a, b := c.StateDict["transformer.h.0.attn.c_attn.weight"], c.StateDict["transformer.h.1.attn.c_attn.weight"]
	if a == nil || b == nil || !slices.Equal(a.Data, b.Data) {
		t.Error("share_main_matrices: block 1's c_attn differs from block 0's")
	}
	m, _, err := c.Convert(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Source.ForkFamily != "d7" || m.Source.IterNum == nil || *m.Source.IterNum != 3000 || m.Source.Dataset != "char_diffusion" || m.Source.ConvertedFrom != "d7_lora.pt" {
		t.Errorf("source %+v", m.Source)
	}
	if !strings.Contains(m.Card, "d7_lora.pt") || !strings.Contains(m.Card, "merged LoRA") {
		t.Errorf("card does not describe the conversion:\n%s", m.Card)
	}
}

func TestD7Details(t *testing.T) {
	c := open(t, "d7_lora")
	conv, err := c.Plan(Options{CalibrationPath: fixture("calibration.json")})
	if err != nil {
		t.Fatal(err)
	}
	cfg := conv.Model.Config
	if cfg.CLSTokenID == nil || *cfg.CLSTokenID != 67 || cfg.Attention != model.Bidirectional || cfg.PositionEncoding != model.Rotary {
		t.Errorf("config %+v: want cls 67, bidirectional, rotary", cfg)
	}
	v := conv.Model.Vocab
	if v.BaseVocabSize != 65 || v.Tokens[67] != "[CLS]" || *v.CLSTokenID != 67 || *v.MaskTokenID != 65 || *v.PadTokenID != 66 {
		t.Errorf("vocab base %d, tokens[67] %q, ids %v %v %v", v.BaseVocabSize, v.Tokens[67], *v.MaskTokenID, *v.PadTokenID, *v.CLSTokenID)
	}
	for _, want := range []string{"merged LoRA into 8 matrices", "guidance weights", "sequence head", "tied to transformer.wte.weight", "matched by file name"} {
		if !slices.ContainsFunc(conv.Actions, func(a string) bool { return strings.Contains(a, want) }) {
			t.Errorf("actions %q do not mention %q", conv.Actions, want)
		}
	}

	// The same checkpoint in sequence_scorer mode keeps the sequence head.
	c.Config["model_mode"] = "sequence_scorer"
	m, _, err := c.Convert(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if m.Config.Kind != model.SequenceScorer || m.Tensors["sequence_head.A"] == nil || m.Tensors["critic_head.weight"] != nil || m.Tensors["lm_head.weight"] != nil {
		t.Errorf("sequence_scorer mode: kind %s, tensors %v", m.Config.Kind, sortedNames(m.Tensors))
	}
}

func TestCalibration(t *testing.T) {
	data, err := os.ReadFile(fixture("calibration.json"))
	if err != nil {
		t.Fatal(err)
	}
	var tables map[string][]float64
	if err := json.Unmarshal(data, &tables); err != nil {
		t.Fatal(err)
	}
	want := tables[`out-char-diffusion\d7_lora.pt`]
	if len(want) != 100 {
		t.Fatalf("calibration.json has no Windows-keyed table for d7_lora.pt")
	}
	c := open(t, "d7_lora")

	t.Run("basename", func(t *testing.T) {
		m, warnings, err := c.Convert(Options{CalibrationPath: fixture("calibration.json")})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(m.Config.CriticCalibration, want) {
			t.Errorf("table %v..., want the d7_lora.pt entry %v...", m.Config.CriticCalibration[:3], want[:3])
		}
		if len(warnings) != 0 {
			t.Errorf("warnings %q", warnings)
		}
	})
	t.Run("exact path wins", func(t *testing.T) {
		other := make([]float64, 100)
		for i := range other {
			other[i] = 0.5
		}
		path := writeJSON(t, map[string][]float64{`x\d7_lora.pt`: want, c.Path: other})
		m, _, err := c.Convert(Options{CalibrationPath: path})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(m.Config.CriticCalibration, other) {
			t.Error("the exact-path entry did not win over the basename match")
		}
	})
	t.Run("absent", func(t *testing.T) {
		m, warnings, err := c.Convert(Options{})
		if err != nil {
			t.Fatal(err)
		}
		if m.Config.CriticCalibration != nil {
			t.Error("a table appeared without --calibration")
		}
		checkWarnings(t, warnings, []string{"no critic calibration table"})
	})
	for _, tc := range []struct {
		name    string
		content map[string][]float64
		want    string
	}{
		{"no match", map[string][]float64{`out\other.pt`: want}, `has no table for`},
		{"short", map[string][]float64{`d7_lora.pt`: want[:99]}, `has 99 numbers, want 100`},
		{"out of range", map[string][]float64{`d7_lora.pt`: append([]float64{1.5}, want[1:]...)}, `value 0 is 1.5`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := c.Convert(Options{CalibrationPath: writeJSON(t, tc.content)})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
	t.Run("no critic", func(t *testing.T) {
		_, _, err := open(t, "sh_lm_compiled").Convert(Options{CalibrationPath: fixture("calibration.json")})
		if err == nil || !strings.Contains(err.Error(), "no critic head") {
			t.Fatalf("error %v, want one saying the model has no critic head", err)
		}
	})
}

func writeJSON(t *testing.T, v any) string {
	t.Helper()
	data, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "calibration.json")
	if err := os.WriteFile(path, data, 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

func TestMeta(t *testing.T) {
	c := open(t, "sh_lm_abs_causal")
	if c.Config["meta"] != nil {
		t.Fatal("sh_lm_abs_causal should have no config['meta']")
	}
	_, _, err := c.Convert(Options{})
	if err == nil || !errors.Is(err, errNoMeta) || !strings.Contains(err.Error(), "--meta") || !strings.Contains(err.Error(), "data/char_diffusion/meta.pkl") {
		t.Fatalf("error %v, want one that says to pass --meta data/char_diffusion/meta.pkl", err)
	}
	meta, err := ReadMeta(fixture("meta.pkl"))
	if err != nil {
		t.Fatal(err)
	}
	if meta.Dataset != "char_diffusion" || *meta.VocabSize != 67 || meta.Itos[0] != "\n" || meta.Itos[66] != "[PAD]" || meta.Stoi["[MASK]"] != 65 || meta.BaseVocabSize != nil {
		t.Errorf("meta.pkl read as %+v", meta)
	}
	m, _, err := c.Convert(Options{Meta: meta})
	if err != nil {
		t.Fatal(err)
	}
	v := m.Vocab
	if v.BaseVocabSize != 65 || len(v.Tokens) != 67 || v.Tokens[65] != "[MASK]" || v.CLSTokenID != nil {
		t.Errorf("vocab %+v", v)
	}
	// A meta that is not a meta.
	if _, err := ReadMeta(fixture("calibration.json")); err == nil || !strings.Contains(err.Error(), "not a readable pickle") {
		t.Errorf("ReadMeta(calibration.json) = %v, want a 'not a readable pickle' error", err)
	}
	// --meta over an embedded vocabulary is honoured, with a warning.
	_, warnings, err := open(t, "sh_lm_compiled").Convert(Options{MetaPath: fixture("meta.pkl")})
	if err != nil {
		t.Fatal(err)
	}
	checkWarnings(t, warnings, []string{"embeds its own vocabulary"})
}

func TestJudgeVocabulary(t *testing.T) {
	m, _, err := open(t, "sh_judge").Convert(Options{})
	if err != nil {
		t.Fatal(err)
	}
	cfg, v := m.Config, m.Vocab
	// CLS from the judge's model_args (Q9), its string from stoi only.
	if cfg.CLSTokenID == nil || *cfg.CLSTokenID != 66 || v.Tokens[66] != "[CLS]" || v.Tokens[67] != "[UNUSED_67]" || v.Tokens[68] != "[PAD]" {
		t.Errorf("cls %v, tokens[65:] %q", cfg.CLSTokenID, v.Tokens[65:])
	}
	if *v.PadTokenID != 68 || *v.MaskTokenID != 65 || *v.CLSTokenID != 66 || v.BaseVocabSize != 65 {
		t.Errorf("special ids mask %d pad %d cls %d base %d", *v.MaskTokenID, *v.PadTokenID, *v.CLSTokenID, v.BaseVocabSize)
	}
}

func TestRefusals(t *testing.T) {
	t.Run("bpe", func(t *testing.T) {
		_, _, err := open(t, "bpe").Convert(Options{})
		if err == nil || !strings.Contains(err.Error(), "vocab_size 50304 is GPT-2's BPE vocabulary") {
			t.Fatalf("error %v, want the BPE refusal", err)
		}
		// Even with a meta at hand.
		_, _, err = open(t, "bpe").Convert(Options{MetaPath: fixture("meta.pkl")})
		if err == nil || !strings.Contains(err.Error(), "vocab_size") {
			t.Fatalf("error %v, want a refusal", err)
		}
	})
	edits := []struct {
		name string
		edit func(c *Checkpoint)
		want string
	}{
		{"unknown tensor", func(c *Checkpoint) {
			c.StateDict["transformer.h.0.attn.extra.weight"] = &Tensor{Shape: []int{2, 2}, DType: "F32", Data: make([]float32, 4)}
		}, "unexpected tensor transformer.h.0.attn.extra.weight, shape [2 2]"},
		{"missing tensor", func(c *Checkpoint) {
			delete(c.StateDict, "transformer.h.1.mlp.c_fc.weight")
		}, "missing tensor transformer.h.1.mlp.c_fc.weight, shape [128 32]"},
		{"shape mismatch", func(c *Checkpoint) {
			c.StateDict["critic_head.weight"] = &Tensor{Shape: []int{2, 32}, DType: "F32", Data: make([]float32, 64)}
		}, "tensor critic_head.weight: shape [2 32], want [1 32]"},
		{"untied lm_head", func(c *Checkpoint) {
			h := c.StateDict["lm_head.weight"]
			c.StateDict["lm_head.weight"] = &Tensor{Shape: h.Shape, DType: h.DType, Data: append([]float32{h.Data[0] + 1}, h.Data[1:]...)}
		}, "an untied LM head is not supported"},
		{"head without flag", func(c *Checkpoint) {
			c.ModelArgs["add_sampler_head"] = false
		}, "unexpected tensor sampler_head.mlp.0.bias, shape [32] (model_args add_sampler_head is not True)"},
		{"bad mode", func(c *Checkpoint) {
			c.ModelArgs["mode"] = ModelMode("image_model")
		}, `ModelMode "image_model"`},
		{"no size", func(c *Checkpoint) {
			delete(c.ModelArgs, "n_embd")
		}, `model_args has no "n_embd"`},
		{"unknown family", func(c *Checkpoint) {
			for _, k := range []string{"mode", "attention_type", "position_encoding", "add_sampler_head", "num_token_classes"} {
				delete(c.ModelArgs, k)
			}
		}, "neither 'mode' nor any field of a known fork generation"},
		{"int tensor", func(c *Checkpoint) {
			c.StateDict["critic_head.weight"] = &Tensor{Shape: []int{1, 32}, DType: "I64"}
		}, "tensor critic_head.weight: dtype I64, want a floating-point tensor"},
	}
	for _, tc := range edits {
		t.Run(tc.name, func(t *testing.T) {
			c := open(t, "sh_lm")
			tc.edit(c)
			_, _, err := c.Convert(Options{})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v\nwant one saying %q", err, tc.want)
			}
		})
	}
	t.Run("lora without flag", func(t *testing.T) {
		c := open(t, "d7_lora")
		c.ModelArgs["use_lora_mlp"] = false
		_, _, err := c.Convert(Options{})
		if err == nil || !strings.Contains(err.Error(), "unexpected tensor transformer.h.0.mlp.lora_fc.A.weight, shape [4 32] (model_args do not enable LoRA for this layer)") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("lora missing", func(t *testing.T) {
		c := open(t, "d7_lora")
		delete(c.StateDict, "transformer.h.1.attn.lora_out.B.weight")
		_, _, err := c.Convert(Options{})
		if err == nil || !strings.Contains(err.Error(), "missing tensor transformer.h.1.attn.lora_out.B.weight, shape [32 4]") {
			t.Fatalf("error %v", err)
		}
	})
	t.Run("guidance without flag", func(t *testing.T) {
		c := open(t, "d7_lora")
		c.ModelArgs["use_guidance"] = false
		_, _, err := c.Convert(Options{})
		if err == nil || !strings.Contains(err.Error(), "(model_args use_guidance is False)") {
			t.Fatalf("error %v", err)
		}
	})
}

func TestShareMainMatricesListedOnce(t *testing.T) {
	// A file that lists shared base matrices under block 0 only converts to
	// the same model.
	c := open(t, "d7_lora")
	want, _, err := c.Convert(Options{Created: "x"})
	if err != nil {
		t.Fatal(err)
	}
	for _, base := range []string{"attn.c_attn", "attn.c_proj", "mlp.c_fc", "mlp.c_proj"} {
		delete(c.StateDict, "transformer.h.1."+base+".weight")
		delete(c.StateDict, "transformer.h.1."+base+".bias")
	}
	got, _, err := c.Convert(Options{Created: "x"})
	if err != nil {
		t.Fatal(err)
	}
	for name, w := range want.Tensors {
		if !slices.Equal(got.Tensors[name].Data, w.Data) {
			t.Errorf("tensor %s differs", name)
		}
	}
	// Without share_main_matrices the same file is missing tensors.
	c.ModelArgs["share_main_matrices"] = false
	if _, _, err := c.Convert(Options{}); err == nil || !strings.Contains(err.Error(), "missing tensor transformer.h.1.attn.c_attn.weight") {
		t.Fatalf("error %v", err)
	}
}

func TestVocabularyRefusals(t *testing.T) {
	c := open(t, "sh_lm_abs_causal")
	good, err := ReadMeta(fixture("meta.pkl"))
	if err != nil {
		t.Fatal(err)
	}
	clone := func(edit func(m *Meta)) *Meta {
		m := *good
		m.Itos = map[int]string{}
		for k, v := range good.Itos {
			m.Itos[k] = v
		}
		edit(&m)
		return &m
	}
	for _, tc := range []struct {
		name string
		meta *Meta
		want string
	}{
		{"no itos", clone(func(m *Meta) { m.Itos = nil }), "has no itos"},
		{"multi-char token", clone(func(m *Meta) { m.Itos[40] = "th" }), `token id 40 is "th" (2 characters)`},
		{"character after specials", clone(func(m *Meta) {
			m.Itos[65], m.Itos[40] = "a", "[MASK]"
			m.MaskTokenID = new(40)
		}), "special ids already start at"},
		{"too large", clone(func(m *Meta) { m.VocabSize = new(80) }), "has vocab_size 80 but the model has 67 ids"},
		{"wrong base", clone(func(m *Meta) { m.BaseVocabSize = new(60) }), "has base_vocab_size 60"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := c.Convert(Options{Meta: tc.meta})
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

func TestOpenErrors(t *testing.T) {
	dir := t.TempDir()
	full, err := os.ReadFile(fixture("sh_lm.pt"))
	if err != nil {
		t.Fatal(err)
	}
	write := func(name string, data []byte) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, data, 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for _, tc := range []struct {
		name, path, want string
	}{
		{"missing", filepath.Join(dir, "nope.pt"), "no such file"},
		{"empty", write("empty.pt", nil), "the file is empty"},
		{"text", write("text.pt", []byte("hello world, not a checkpoint")), "not a PyTorch checkpoint"},
		{"legacy", write("legacy.pt", []byte{0x80, 0x02, 0x8a, 0x0a, 0x6c, 0xfc}), "legacy (non-zip) torch.save"},
		{"safetensors", "../../testdata/golden/classifier.safetensors", "a .safetensors file"},
		{"truncated", write("cut.pt", full[:len(full)/2]), "not a readable zip archive"},
		{"meta.pkl", fixture("meta.pkl"), "a plain pickle (a dataset meta.pkl?)"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Open(tc.path)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("error %v, want one saying %q", err, tc.want)
			}
		})
	}
}

// TestCorruptedBytesNeverPanic flips bytes through a checkpoint: every
// outcome must be a value or an error.
func TestCorruptedBytesNeverPanic(t *testing.T) {
	full, err := os.ReadFile(fixture("sh_classifier.pt"))
	if err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "bad.pt")
	failed := 0
	const flips = 40
	for i := 0; i < flips; i++ {
		data := slices.Clone(full)
		pos := (i*7919 + 13) % len(data)
		data[pos] ^= 0x5a
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := Open(path)
		if err == nil {
			_, _, err = c.Convert(Options{})
		}
		if err != nil {
			failed++
		}
	}
	// The zip CRC-32 of every record read (data.pkl and the model's
	// storages) catches most flips; flips in unread optimizer records or in
	// zip padding may pass.
	t.Logf("%d of %d corrupted files refused", failed, flips)
	if failed < flips/2 {
		t.Errorf("only %d of %d corrupted files were refused", failed, flips)
	}
}

// TestOptimizerNeverRead corrupts one storage record of a checkpoint: the
// last one (torch.save numbers storages in pickling order, and the
// optimizer is pickled after the model) must not matter, the first one
// (transformer.wte.weight's) must be caught by the zip CRC.
func TestOptimizerNeverRead(t *testing.T) {
	full, err := os.ReadFile(fixture("sh_lm.pt"))
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(full), int64(len(full)))
	if err != nil {
		t.Fatal(err)
	}
	last, lastKey := (*zip.File)(nil), -1
	var first *zip.File
	for _, f := range zr.File {
		var key int
		if n, _ := fmt.Sscanf(f.Name, "sh_lm/data/%d", &key); n != 1 || f.UncompressedSize64 == 0 {
			continue
		}
		if key > lastKey {
			last, lastKey = f, key
		}
		if key == 0 {
			first = f
		}
	}
	if last == nil || first == nil || lastKey < 40 {
		t.Fatalf("storage records not found (last key %d)", lastKey)
	}
	corrupt := func(f *zip.File) error {
		off, err := f.DataOffset()
		if err != nil {
			t.Fatal(err)
		}
		data := slices.Clone(full)
		data[off+1] ^= 0xff
		path := filepath.Join(t.TempDir(), "sh_lm.pt")
		if err := os.WriteFile(path, data, 0o644); err != nil {
			t.Fatal(err)
		}
		c, err := Open(path)
		if err != nil {
			return err
		}
		_, _, err = c.Convert(Options{})
		return err
	}
	if err := corrupt(last); err != nil {
		t.Errorf("a corrupted optimizer record (%s) broke the conversion: %v", last.Name, err)
	}
	if err := corrupt(first); err == nil || !strings.Contains(err.Error(), "corrupted") {
		t.Errorf("a corrupted model record (%s): error %v, want a 'corrupted' error", first.Name, err)
	}
}

// remask's trainer records config['sampler_neighbors'] = 'embeddings'; the
// flag overrides either way with a warning; nonsense is refused.
func TestSamplerNeighborsFromTrainerAndFlag(t *testing.T) {
	ck := open(t, "sh_lm")
	ck.Config["sampler_neighbors"] = "embeddings"
	conv, err := ck.Plan(Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := conv.Model.Config.Sampler.Neighbors; got != model.NeighborsEmbeddings {
		t.Errorf("neighbors = %q, want embeddings from config['sampler_neighbors']", got)
	}
	for _, a := range conv.Actions {
		if strings.HasPrefix(a, "sampler head written with") {
			t.Errorf("stale action kept: %q", a)
		}
	}
	conv, err = ck.Plan(Options{SamplerNeighbors: model.NeighborsZeros})
	if err != nil {
		t.Fatal(err)
	}
	if got := conv.Model.Config.Sampler.Neighbors; got != model.NeighborsZeros {
		t.Errorf("neighbors = %q, want zeros from the override", got)
	}
	if !strings.Contains(strings.Join(conv.Warnings, "\n"), "--sampler-neighbors") {
		t.Errorf("override without a warning: %q", conv.Warnings)
	}
	ck.Config["sampler_neighbors"] = "sideways"
	if _, err := ck.Plan(Options{}); err == nil || !strings.Contains(err.Error(), "sampler_neighbors") {
		t.Errorf("err = %v, want a refusal naming sampler_neighbors", err)
	}
	judge := open(t, "sh_judge")
	if _, err := judge.Plan(Options{SamplerNeighbors: "embeddings"}); err == nil || !strings.Contains(err.Error(), "no sampler head") {
		t.Errorf("err = %v, want: no sampler head", err)
	}
}
