package checkpoint

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/remask/remask/engine/model"
)

func TestInspectSafetensors(t *testing.T) {
	s, err := InspectFile("../../testdata/golden/lm_d7_bf16.safetensors", Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Format != model.Format || s.Kind != model.LanguageModel || s.DType != model.BF16 {
		t.Errorf("format %q kind %q dtype %q", s.Format, s.Kind, s.DType)
	}
	if s.NLayer != 2 || s.NHead != 4 || s.NEmbd != 32 || s.BlockSize != 32 || s.VocabSize != 68 {
		t.Errorf("sizes %d %d %d %d %d", s.NLayer, s.NHead, s.NEmbd, s.BlockSize, s.VocabSize)
	}
	if !slices.Equal(s.Heads, []string{"lm", "critic", "sampler"}) || s.SamplerNeighbors != model.NeighborsZeros || !s.CriticCalibration {
		t.Errorf("heads %v neighbors %q calibration %v", s.Heads, s.SamplerNeighbors, s.CriticCalibration)
	}
	want := []SpecialToken{{65, "[MASK]", "mask"}, {66, "[PAD]", "pad"}, {67, "[CLS]", "cls"}}
	if s.Vocab == nil || s.Vocab.BaseVocabSize != 65 || !slices.Equal(s.Vocab.Special, want) {
		t.Errorf("vocab %+v, want specials %v", s.Vocab, want)
	}
	if s.Source == nil || s.Source.Trainer == "" || s.Card == "" {
		t.Errorf("source %+v, card %q", s.Source, s.Card)
	}
	if _, err := InspectFile("../../testdata/golden/lm_d7_bf16.safetensors", Options{MetaPath: fixture("meta.pkl")}); err == nil || !strings.Contains(err.Error(), "applies to checkpoints only") {
		t.Errorf("--meta on a model file: %v", err)
	}
}

func TestInspectCheckpoint(t *testing.T) {
	s, err := InspectFile(fixture("sh_lm.pt"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.Format != "fork-checkpoint" || s.ForkFamily != "sh" || s.Error != "" || s.DType != model.F32 {
		t.Errorf("format %q family %q error %q dtype %q", s.Format, s.ForkFamily, s.Error, s.DType)
	}
	// 2 blocks of 12704 (with biases), wte 67x32, ln_f, critic, sampler head.
	if s.Parameters != 34080 {
		t.Errorf("parameters %d, want 34080", s.Parameters)
	}
	if s.IterNum == nil || *s.IterNum != 250 || len(s.Warnings) != 1 || !strings.Contains(s.Warnings[0], "sampler head untrained") {
		t.Errorf("iter_num %v, warnings %q", s.IterNum, s.Warnings)
	}
	if !slices.ContainsFunc(s.Conversion, func(a string) bool { return strings.Contains(a, "tied to transformer.wte.weight") }) {
		t.Errorf("conversion steps %q", s.Conversion)
	}
	if s.Source == nil || s.Source.Created != "" || s.Source.ConvertedFrom != "sh_lm.pt" {
		t.Errorf("source %+v", s.Source)
	}
	if _, err := json.Marshal(s); err != nil {
		t.Fatal(err)
	}

	// A checkpoint that cannot be converted as is: what is known, and why.
	s, err = InspectFile(fixture("sh_lm_abs_causal.pt"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.NLayer != 2 || s.PositionEncoding != model.Absolute || s.Attention != model.Causal || !strings.Contains(s.Error, "--meta") || s.Vocab != nil {
		t.Errorf("summary %+v", s)
	}
	s, err = InspectFile(fixture("bpe.pt"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	if s.VocabSize != 50304 || !strings.Contains(s.Error, "BPE") {
		t.Errorf("bpe: vocab %d error %q", s.VocabSize, s.Error)
	}
}
