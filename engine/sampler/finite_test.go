package sampler

import (
	"context"
	"math"
	"strings"
	"testing"
)

// TestNonFiniteHeadsAreErrors: NaN or infinite output from any head is an
// error naming the model, the head, the sample and the position (issue 11,
// defect 13: an all-Inf critic head ran critic remasking on NaN scores).
// -Inf logits rule a token out and stay allowed; all -Inf is the existing
// "no finite probability" error.
func TestNonFiniteHeadsAreErrors(t *testing.T) {
	nan, inf := float32(math.NaN()), float32(math.Inf(1))
	at := func(x float32) func(row []int32, t int) float32 {
		return func(row []int32, t int) float32 {
			if t == 3 {
				return x
			}
			return 0
		}
	}
	logitsAt := func(V int, x float32) func(row []int32, t int) []float32 {
		return func(row []int32, t int) []float32 {
			l := oneHot(V, t%8, 3)
			if t == 2 {
				l[1] = x
			}
			return l
		}
	}
	lm := tinyLM(true, true, "zeros")
	V := lm.Config.VocabSize
	for _, tc := range []struct {
		name string
		f    *fakeNet
		o    func(*Options)
		want string
	}{
		{"critic NaN", &fakeNet{m: lm, logits: logitsAt(V, 0), critic: at(nan)}, func(o *Options) { o.Remasking = RemaskCritic; o.DisableSampler = true },
			"tiny.safetensors: the critic head gave NaN at sample 0, position 3"},
		{"critic +Inf", &fakeNet{m: lm, logits: logitsAt(V, 0), critic: at(inf)}, func(o *Options) { o.Remasking = RemaskCritic; o.DisableSampler = true },
			"the critic head gave +Inf at sample 0, position 3"},
		{"critic -Inf", &fakeNet{m: lm, logits: logitsAt(V, 0), critic: at(-inf)}, func(o *Options) { o.Remasking = RemaskCalibrated; o.DisableSampler = true },
			"the critic head gave -Inf at sample 0, position 3"},
		{"critic NaN in the metrics", &fakeNet{m: lm, logits: logitsAt(V, 0), critic: at(nan)}, func(o *Options) { o.Remasking = RemaskSelf; o.DisableSampler = true; o.QualityMetric = MetricNode },
			"the critic head gave NaN"},
		{"LM +Inf", &fakeNet{m: lm, logits: logitsAt(V, inf), critic: at(0)}, func(o *Options) { o.DisableSampler = true },
			"the LM head gave +Inf at sample 0, position 2"},
		{"sampler NaN", &fakeNet{m: lm, logits: logitsAt(V, 0), critic: at(0), sampler: func(row []int32, t int, l, r int32) []float32 {
			x := oneHot(V, 1, 2)
			x[0] = nan
			return x
		}}, func(o *Options) {}, "the sampler head gave NaN at sample 0, position"},
		{"judge NaN", &fakeNet{m: lm, logits: logitsAt(V, 0), critic: at(0)}, func(o *Options) { o.DisableSampler = true; o.QualityMetric = MetricJudge },
			"judge.safetensors: the judge head gave NaN at sample 0"},
		{"classifier NaN", &fakeNet{m: lm, logits: logitsAt(V, 0), critic: at(0)}, func(o *Options) { o.DisableSampler = true; o.Remasking = RemaskModel },
			"classifier.safetensors: the classifier head gave NaN at sample 0, position 0"},
	} {
		o := Defaults()
		o.NumSamples, o.SequenceLength, o.Iterations, o.Seed, o.QualityMetric = 2, 8, 3, 1, MetricNone
		tc.o(&o)
		m := Models{LM: tc.f}
		if o.QualityMetric == MetricJudge {
			j := tinyJudge(64, true)
			j.Path = "judge.safetensors"
			m.Judge = &fakeNet{m: j, judge: func([]int32) float32 { return nan }}
		}
		if o.Remasking == RemaskModel {
			c := tinyClassifier(2)
			c.Path = "classifier.safetensors"
			m.Remasker = &fakeNet{m: c, logits: func(row []int32, t int) []float32 { return []float32{0, nan} }}
		}
		_, err := Generate(context.Background(), m, o, nil)
		if err == nil || !strings.Contains(err.Error(), tc.want) || !strings.Contains(err.Error(), "probably damaged") {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.want)
		}
	}
	// -Inf LM logits are allowed: a token ruled out.
	f := &fakeNet{m: lm, logits: logitsAt(V, float32(math.Inf(-1))), critic: at(0)}
	o := Defaults()
	o.NumSamples, o.SequenceLength, o.Iterations, o.Seed, o.QualityMetric, o.DisableSampler = 2, 8, 3, 1, MetricNone, true
	if _, err := Generate(context.Background(), Models{LM: f}, o, nil); err != nil {
		t.Errorf("-Inf logits: %v", err)
	}
}
