package sampler

import (
	"github.com/remask/remask/internal/step"
	"math"
	"testing"

	"github.com/remask/remask/engine/model"
)

// TestSelfConfidence: mean of ln(q[token] + 1e-10) over the final tokens,
// q = softmax of the LM logits on the final tokens (full vocabulary, no temperature).
func TestSelfConfidence(t *testing.T) {
	m := tinyLM(false, false, "")
	V := m.Config.VocabSize
	ln9, ln81 := float32(math.Log(9)), float32(math.Log(81))
	f := &fakeNet{m: m, logits: func(row []int32, t int) []float32 {
		if hasMask(row) { // generation: fill the placeholder with c
			return hot(V, idC)
		}
		// metrics on "abc": q(a) = 9/18, q(b) = 1/18, q(c) = 81/90
		return [][]float32{oneHot(V, idA, ln9), oneHot(V, idC, ln9), oneHot(V, idC, ln81)}[t]
	}}
	o := baseOpts()
	o.SequenceLength, o.Template, o.QualityMetric, o.Temperature = 0, "ab_", MetricSelf, 0.5
	res := generate(t, Models{LM: f}, o, nil)
	if str(res.Samples[0].Tokens) != "abc" || res.Metric != MetricSelf {
		t.Fatalf("%s %s", str(res.Samples[0].Tokens), res.Metric)
	}
	want := (math.Log(0.5+1e-10) + math.Log(1.0/18+1e-10) + math.Log(0.9+1e-10)) / 3
	if c := res.Samples[0].SelfConfidence; c == nil || !approx(*c, want, 1e-6) {
		t.Fatalf("self-confidence %v, want %v", c, want)
	}
	if res.Samples[0].Critic != nil || res.Samples[0].JudgeScore != nil {
		t.Fatalf("unexpected metrics %+v", res.Samples[0])
	}
	if f.encodes != 2 {
		t.Fatalf("%d trunk passes, want 2 (one iteration, one metric pass)", f.encodes)
	}

	// Direct: [PAD] counts, [MASK] does not; an all-mask row has none.
	g := newGen(t, Models{LM: f}, func() Options { o := baseOpts(); o.NumSamples, o.SequenceLength = 2, 4; return o }())
	copy(g.tokens, []int32{idA, idPad, idMask, idB, idMask, idMask, idMask, idMask})
	for p := 0; p < 8; p++ {
		copy(g.logits[p*V:], oneHot(V, idA, ln9)) // q(a) = .5, q(anything else) = 1/18
	}
	got, ok := g.selfConfidence(0)
	want = (math.Log(0.5+1e-10) + 2*math.Log(1.0/18+1e-10)) / 3
	if !ok || !approx(got, want, 1e-6) {
		t.Fatalf("direct: %v %v, want %v", got, ok, want)
	}
	if _, ok := g.selfConfidence(1); ok {
		t.Fatal("all-mask row has a self-confidence")
	}
}

func logit(p float64) float32 { return float32(math.Log(p / (1 - p))) }

// TestCriticStats: percentiles with linear interpolation over sorted
// step.Sigmoid(critic) at positions that are neither [MASK] nor [PAD].
func TestCriticStats(t *testing.T) {
	m := tinyLM(true, false, "")
	g := newGen(t, Models{LM: &fakeNet{m: m}}, func() Options { o := baseOpts(); o.NumSamples, o.SequenceLength = 3, 8; return o }())
	copy(g.tokens, []int32{
		idC, idMask, idA, idB, idPad, idD, idE, idF, // 6 valid
		idMask, idMask, idPad, idPad, idMask, idMask, idMask, idPad, // none
		idMask, idMask, idA, idMask, idMask, idMask, idMask, idMask, // one
	})
	// valid probabilities .4 .1 .2 .6 .3 .5 (unsorted); mask and pad .99
	copy(g.critic, []float32{logit(0.4), logit(0.99), logit(0.1), logit(0.2), logit(0.99), logit(0.6), logit(0.3), logit(0.5)})
	for p := 8; p < 24; p++ {
		g.critic[p] = logit(0.99)
	}
	g.critic[18] = logit(0.7)
	// n = 6: q = .1 -> rank .5 -> .1 + .5*.1 = .15; q = .5 -> rank 2.5 -> .35; q = .9 -> rank 4.5 -> .55
	s := g.criticStats(0)
	if s == nil || !approx(s.Mean, 0.35, 1e-6) || !approx(s.P10, 0.15, 1e-6) || !approx(s.P50, 0.35, 1e-6) || !approx(s.P90, 0.55, 1e-6) {
		t.Fatalf("stats %+v, want mean .35 p10 .15 p50 .35 p90 .55", s)
	}
	if s := g.criticStats(1); s != nil {
		t.Fatalf("row without valid positions: %+v", s)
	}
	if s := g.criticStats(2); s == nil || !approx(s.P10, 0.7, 1e-6) || !approx(s.P90, 0.7, 1e-6) || !approx(s.Mean, 0.7, 1e-6) {
		t.Fatalf("single position: %+v", s)
	}
	// quantile itself: [1 2 3 4] at .1 -> rank .3 -> 1.3; at .9 -> 3.7; the ends
	xs := []float64{1, 2, 3, 4}
	for _, c := range []struct{ q, want float64 }{{0.1, 1.3}, {0.5, 2.5}, {0.9, 3.7}, {0, 1}, {1, 4}} {
		if got := step.Quantile(xs, c.q); !approx(got, c.want, 1e-12) {
			t.Fatalf("quantile(%v) = %v, want %v", c.q, got, c.want)
		}
	}
}

// TestJudge: score = 1 - clamp(evaluation, 0, 1); the judge reads [CLS] +
// the first block_size-1 tokens by default, the last block_size columns with
// judge-keep-last.
func TestJudge(t *testing.T) {
	cases := []struct {
		name      string
		block     int
		cls       bool
		keepLast  bool
		wantInput []string // rows of the judge input, C = [CLS]
		// scores: 1 - clamp(evaluation of the first non-CLS token): a -.2, b .25, c 1.3, d .6
		wantScore []float64 // nil: 1, .75, 0
	}{
		{"crop-keeps-cls", 4, true, false, []string{"Cabc", "Cbcd", "Ccde"}, nil},
		{"keep-last-drops-cls", 4, true, true, []string{"abcd", "bcde", "cdef"}, nil},
		{"fits", 8, true, false, []string{"Cabcd", "Cbcde", "Ccdef"}, nil},
		{"fits-keep-last", 5, true, true, []string{"Cabcd", "Cbcde", "Ccdef"}, nil},
		{"no-cls", 4, false, false, []string{"abcd", "bcde", "cdef"}, nil},
		{"no-cls-crop", 3, false, false, []string{"abc", "bcd", "cde"}, nil},
		{"no-cls-keep-last", 3, false, true, []string{"bcd", "cde", "def"}, []float64{0.75, 0, 0.4}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := tinyLM(false, false, "")
			V := m.Config.VocabSize
			lm := &fakeNet{m: m, rowLogits: func(b int, row []int32, t int) []float32 { return hot(V, (t+b)%8) }}
			evals := map[int32]float32{idA: -0.2, idB: 0.25, idC: 1.3, idD: 0.6}
			j := &fakeNet{m: tinyJudge(c.block, c.cls), judge: func(row []int32) float32 {
				for _, x := range row {
					if x != idCLS {
						return evals[x]
					}
				}
				return 0
			}}
			o := baseOpts()
			o.NumSamples, o.SequenceLength, o.QualityMetric, o.Compat.JudgeKeepLast = 3, 4, MetricAuto, c.keepLast
			res := generate(t, Models{LM: lm, Judge: j}, o, nil)
			if res.Metric != MetricJudge {
				t.Fatalf("metric %q, want judge", res.Metric)
			}
			if j.encodes != 1 {
				t.Fatalf("judge ran %d times", j.encodes)
			}
			in := j.encoded[0]
			if in.B != 3 || in.T != len(c.wantInput[0]) {
				t.Fatalf("judge input %dx%d", in.B, in.T)
			}
			for b, w := range c.wantInput {
				if got := str(in.tokens[b*in.T : (b+1)*in.T]); got != w {
					t.Fatalf("row %d judge input %s, want %s", b, got, w)
				}
			}
			scores := c.wantScore
			if scores == nil {
				scores = []float64{1, 0.75, 0} // 1 - clamp(-.2), 1 - .25, 1 - clamp(1.3)
			}
			for b, want := range scores {
				s := res.Samples[b].JudgeScore
				if s == nil || !approx(*s, want, 1e-7) {
					t.Fatalf("row %d judge score %v, want %v", b, s, want)
				}
				if res.Samples[b].SelfConfidence == nil {
					t.Fatalf("row %d: no self-confidence next to the judge", b)
				}
			}
		})
	}
}

// TestMetricResolution: auto = judge > node > self; none skips the pass.
func TestMetricResolution(t *testing.T) {
	judge := func() *fakeNet {
		return &fakeNet{m: tinyJudge(64, true), judge: func(row []int32) float32 { return 0.5 }}
	}
	cases := []struct {
		name     string
		critic   bool
		judge    bool
		metric   string
		want     string
		hasJudge bool
		hasSelf  bool
		hasCrit  bool
	}{
		{"auto-judge", true, true, MetricAuto, MetricJudge, true, true, true},
		{"auto-node", true, false, MetricAuto, MetricNode, false, true, true},
		{"auto-self", false, false, MetricAuto, MetricSelf, false, true, false},
		{"auto-judge-no-critic", false, true, MetricAuto, MetricJudge, true, true, false},
		{"self-with-judge", true, true, MetricSelf, MetricSelf, false, true, true},
		{"node-with-judge", true, true, MetricNode, MetricNode, false, true, true},
		{"none", true, true, MetricNone, MetricNone, false, false, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := tinyLM(c.critic, false, "")
			lm := &fakeNet{m: m, logits: func(row []int32, t int) []float32 { return hot(10, idA) },
				critic: func(row []int32, t int) float32 { return 0 }}
			mods := Models{LM: lm}
			var j *fakeNet
			if c.judge {
				j = judge()
				mods.Judge = j
			}
			o := baseOpts()
			o.QualityMetric = c.metric
			res := generate(t, mods, o, nil)
			s := res.Samples[0]
			if res.Metric != c.want || (s.JudgeScore != nil) != c.hasJudge || (s.SelfConfidence != nil) != c.hasSelf || (s.Critic != nil) != c.hasCrit {
				t.Fatalf("metric %q judge %v self %v critic %v", res.Metric, s.JudgeScore, s.SelfConfidence, s.Critic)
			}
			wantEnc := 2
			if c.metric == MetricNone {
				wantEnc = 1
			}
			if lm.encodes != wantEnc {
				t.Fatalf("LM ran %d times, want %d", lm.encodes, wantEnc)
			}
			if j != nil && (j.encodes == 1) != c.hasJudge {
				t.Fatalf("judge ran %d times", j.encodes)
			}
		})
	}
}

func TestEncodeDecode(t *testing.T) {
	v := tinyVocab(true)
	got := Decode(&v, []int32{idA, idMask, idPad, idCLS, idH, 11, -1})
	if want := "a[MASK][PAD][CLS]h[UNK][UNK]"; got != want {
		t.Fatalf("Decode = %q, want %q", got, want)
	}
	x, dropped, err := EncodeText(&v, "hag", UnknownError, "seed_text")
	if err != nil || str(x) != "hag" || dropped != nil {
		t.Fatalf("EncodeText: %v %v %v", x, dropped, err)
	}
	x, dropped, err = EncodeText(&v, "h!a!é", UnknownDrop, "seed_text")
	if err != nil || str(x) != "ha" || string(dropped) != "!é" {
		t.Fatalf("drop: %v %q %v", x, string(dropped), err)
	}
	_, _, err = EncodeText(&v, "é!", UnknownError, "template")
	checkOptionError(t, err, "template")
	// multi-character entries and ids at or above base are not characters
	w := model.Vocab{Tokens: []string{"a", "bc", "d"}, BaseVocabSize: 2}
	if _, _, err := EncodeText(&w, "d", UnknownError, "seed_text"); err == nil {
		t.Fatal("an id at or above base_vocab_size encoded a character")
	}
	if _, _, err := EncodeText(&w, "b", UnknownError, "seed_text"); err == nil {
		t.Fatal("a multi-character token encoded a character")
	}
}
