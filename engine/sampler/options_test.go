package sampler

import (
	"context"
	"errors"
	"math"
	"strings"
	"testing"
)

func checkOptionError(t *testing.T, err error, field string) {
	t.Helper()
	var oe *OptionError
	if !errors.As(err, &oe) {
		t.Fatalf("error %v (%T), want *OptionError for %s", err, err, field)
	}
	if oe.Field != field {
		t.Fatalf("error field %q (%v), want %q", oe.Field, err, field)
	}
	if !strings.HasPrefix(err.Error(), field+": ") {
		t.Fatalf("message %q does not start with the field", err.Error())
	}
}

func TestValidate(t *testing.T) {
	nan, inf := math.NaN(), math.Inf(1)
	cases := []struct {
		name  string
		mod   func(*Options)
		field string // "" = valid
	}{
		{"defaults", func(o *Options) {}, ""},
		{"multinomial", func(o *Options) { o.Method = Multinomial }, ""},
		{"method", func(o *Options) { o.Method = "standard" }, "method"},
		{"num_samples-0", func(o *Options) { o.NumSamples = 0 }, "num_samples"},
		{"sequence_length-0", func(o *Options) { o.SequenceLength = 0 }, "sequence_length"},
		{"sequence_length-0-template", func(o *Options) { o.SequenceLength, o.Template = 0, "a_" }, ""},
		{"iterations-0", func(o *Options) { o.Iterations = 0 }, "iterations"},
		{"iterations-0-ratios", func(o *Options) { o.Iterations, o.MaskingRatios = 0, []float64{0.5} }, ""},
		{"temperature-0", func(o *Options) { o.Temperature = 0 }, "temperature"},
		{"temperature-neg", func(o *Options) { o.Temperature = -1 }, "temperature"},
		{"temperature-nan", func(o *Options) { o.Temperature = nan }, "temperature"},
		{"temperature-inf", func(o *Options) { o.Temperature = inf }, "temperature"},
		{"temperature-small", func(o *Options) { o.Temperature = 1e-3 }, ""},
		{"top_p-0", func(o *Options) { o.TopP = 0 }, "top_p"},
		{"top_p-neg", func(o *Options) { o.TopP = -0.5 }, "top_p"},
		{"top_p-above-1", func(o *Options) { o.TopP = 1.0000001 }, "top_p"},
		{"top_p-nan", func(o *Options) { o.TopP = nan }, "top_p"},
		{"top_p-1", func(o *Options) { o.TopP = 1 }, ""},
		{"top_p-tiny", func(o *Options) { o.TopP = 1e-9 }, ""},
		{"schedule_mode", func(o *Options) { o.ScheduleMode = "cosine" }, "schedule_mode"},
		{"threshold", func(o *Options) { o.ScheduleMode = ScheduleThreshold }, ""},
		{"start_ratio-neg", func(o *Options) { o.StartRatio = -0.1 }, "start_ratio"},
		{"start_ratio-above", func(o *Options) { o.StartRatio = 1.1 }, "start_ratio"},
		{"start_ratio-nan", func(o *Options) { o.StartRatio = nan }, "start_ratio"},
		{"start_ratio-bounds", func(o *Options) { o.StartRatio, o.EndRatio = 1, 0 }, ""},
		{"end_ratio", func(o *Options) { o.EndRatio = 2 }, "end_ratio"},
		{"end_ratio-inf", func(o *Options) { o.EndRatio = -inf }, "end_ratio"},
		{"randomness_strength", func(o *Options) { o.RandomnessStrength = 1.5 }, "randomness_strength"},
		{"randomness_strength-neg", func(o *Options) { o.RandomnessStrength = -0.2 }, "randomness_strength"},
		{"masking_ratios", func(o *Options) { o.MaskingRatios = []float64{0.5, 1.2} }, "masking_ratios"},
		{"masking_ratios-neg", func(o *Options) { o.MaskingRatios = []float64{-0.5} }, "masking_ratios"},
		{"masking_ratios-nan", func(o *Options) { o.MaskingRatios = []float64{nan} }, "masking_ratios"},
		{"masking_ratios-bounds", func(o *Options) { o.MaskingRatios = []float64{0, 1} }, ""},
		{"seed_placement", func(o *Options) { o.SeedPlacement = "middle" }, "seed_placement"},
		{"template+seed_text", func(o *Options) { o.Template, o.SeedText = "a_", "b" }, "template"},
		{"template-no-placeholder", func(o *Options) { o.Template = "abc" }, "template"},
		{"placeholder-empty", func(o *Options) { o.Template, o.Placeholder = "a_", "" }, "placeholder"},
		{"placeholder-two", func(o *Options) { o.Template, o.Placeholder = "a__", "__" }, "placeholder"},
		{"placeholder-unicode", func(o *Options) { o.Template, o.Placeholder = "a·", "·" }, ""},
		{"unknown_chars", func(o *Options) { o.UnknownChars = "keep" }, "unknown_chars"},
		{"unknown_chars-drop", func(o *Options) { o.UnknownChars = UnknownDrop }, ""},
		{"remasking", func(o *Options) { o.Remasking = "intelligent" }, "remasking"},
		{"sampler_neighbors", func(o *Options) { o.SamplerNeighbors = "real" }, "sampler_neighbors"},
		{"sampler_neighbors-ok", func(o *Options) { o.SamplerNeighbors = "embeddings" }, ""},
		{"quality_metric", func(o *Options) { o.QualityMetric = "perplexity" }, "quality_metric"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := Defaults()
			c.mod(&o)
			err := o.Validate()
			if c.field == "" {
				if err != nil {
					t.Fatalf("unexpected error %v", err)
				}
				return
			}
			checkOptionError(t, err, c.field)
			// Generate reports the same error before touching the model.
			f := &fakeNet{m: tinyLM(false, false, "")}
			_, gerr := Generate(context.Background(), Models{LM: f}, o, nil)
			checkOptionError(t, gerr, c.field)
			if f.encodes != 0 {
				t.Fatalf("the model ran %d times on bad options", f.encodes)
			}
		})
	}
}

// TestModelDependentOptions covers the checks Generate makes against the models.
func TestModelDependentOptions(t *testing.T) {
	lm := func() *fakeNet { return &fakeNet{m: tinyLM(false, false, "")} }
	noMask := tinyLM(false, false, "")
	noMask.Vocab.MaskTokenID = nil
	smallJudge := tinyJudge(64, true)
	smallJudge.Config.VocabSize = 4
	cases := []struct {
		name  string
		m     Models
		mod   func(*Options)
		field string
	}{
		{"no-lm", Models{}, nil, "model"},
		{"lm-is-judge", Models{LM: &fakeNet{m: tinyJudge(64, true)}}, nil, "model"},
		{"lm-is-classifier", Models{LM: &fakeNet{m: tinyClassifier(2)}}, nil, "model"},
		{"no-mask", Models{LM: &fakeNet{m: noMask}}, nil, "model"},
		{"sequence_length-above-block", Models{LM: lm()}, func(o *Options) { o.SequenceLength = 65 }, "sequence_length"},
		{"judge-wrong-kind", Models{LM: lm(), Judge: lm()}, nil, "judge"},
		{"judge-small-vocab", Models{LM: lm(), Judge: &fakeNet{m: smallJudge}}, nil, "judge"},
		{"judge-metric-without-judge", Models{LM: lm()}, func(o *Options) { o.QualityMetric = MetricJudge }, "quality_metric"},
		{"node-without-critic", Models{LM: lm()}, func(o *Options) { o.QualityMetric = MetricNode }, "quality_metric"},
		{"too-many-tokens", Models{LM: lm()}, func(o *Options) { o.NumSamples, o.SequenceLength = 1<<23, 64 }, "num_samples"},
		{"seed-too-long", Models{LM: lm()}, func(o *Options) { o.SeedText = "abcdefghabcdefghabcdefghabcdefghabcdefghabcdefghabcdefghabcdefgha" }, "seed_text"},
		{"template-too-long", Models{LM: lm()}, func(o *Options) {
			o.SequenceLength, o.Template = 0, strings.Repeat("_", 65)
		}, "template"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := baseOpts()
			if c.mod != nil {
				c.mod(&o)
			}
			_, err := Generate(context.Background(), c.m, o, nil)
			checkOptionError(t, err, c.field)
		})
	}
	// sequence_length == block_size is fine
	o := baseOpts()
	o.SequenceLength = 64
	f := &fakeNet{m: tinyLM(false, false, ""), logits: func(row []int32, t int) []float32 { return oneHot(10, 0, 1) }}
	if _, err := Generate(context.Background(), Models{LM: f}, o, nil); err != nil {
		t.Fatal(err)
	}
}

func TestParseCompat(t *testing.T) {
	all := Compat{true, true, true, true, true}
	cases := []struct {
		in   string
		want Compat
		str  string
	}{
		{"", Compat{}, ""},
		{"wave-cap", Compat{WaveCap: true}, "wave-cap"},
		{"global-bootstrap", Compat{GlobalBootstrap: true}, "global-bootstrap"},
		{"critic-on-input", Compat{CriticOnInput: true}, "critic-on-input"},
		{"mask-pad-only", Compat{MaskPadOnly: true}, "mask-pad-only"},
		{"judge-keep-last", Compat{JudgeKeepLast: true}, "judge-keep-last"},
		{" judge-keep-last , wave-cap,", Compat{WaveCap: true, JudgeKeepLast: true}, "wave-cap,judge-keep-last"},
		{"all", all, strings.Join(CompatNames, ",")},
		{"wave-cap,all", all, strings.Join(CompatNames, ",")},
	}
	for _, c := range cases {
		got, err := ParseCompat(c.in)
		if err != nil || got != c.want {
			t.Fatalf("ParseCompat(%q) = %+v, %v; want %+v", c.in, got, err, c.want)
		}
		if got.String() != c.str {
			t.Fatalf("String() = %q, want %q", got.String(), c.str)
		}
		if back, err := ParseCompat(got.String()); err != nil || back != got {
			t.Fatalf("round trip of %q: %+v %v", got.String(), back, err)
		}
	}
	for _, bad := range []string{"wavecap", "wave-cap,bogus", "ALL"} {
		_, err := ParseCompat(bad)
		checkOptionError(t, err, "compat")
		if !strings.Contains(err.Error(), "wave-cap") || !strings.Contains(err.Error(), "all") {
			t.Fatalf("message %q does not list the allowed names", err)
		}
	}
	if len(CompatNames) != 5 {
		t.Fatalf("CompatNames %v", CompatNames)
	}
}
