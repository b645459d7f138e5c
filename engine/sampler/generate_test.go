package sampler

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/remask/remask/internal/step"
	"math"
	"strings"
	"testing"

	"github.com/remask/remask/engine/rng"
)

// TestDiffusionLoop runs full generations on every path and checks the loop
// invariants: each iteration's input is the previous prediction with the
// remasked positions set to [MASK]; a prediction changes only masked
// positions; the final iteration never remasks; events and records agree.
func TestDiffusionLoop(t *testing.T) {
	type setup struct {
		name     string
		spec     lmSpec
		mod      func(*Options)
		strategy string
	}
	setups := []setup{
		{"critic", lmSpec{critic: true}, nil, RemaskCritic},
		{"critic-on-input", lmSpec{critic: true}, func(o *Options) { o.Compat.CriticOnInput = true }, RemaskCritic},
		{"calibrated", lmSpec{critic: true, calib: step.DefaultCalibration()}, func(o *Options) { o.RandomnessStrength = 0.3 }, RemaskCalibrated},
		{"self", lmSpec{}, func(o *Options) { o.RandomnessStrength = 0.2 }, RemaskSelf},
		{"random", lmSpec{critic: true}, func(o *Options) { o.Remasking = RemaskRandom }, RemaskRandom},
		{"sampler-zeros", lmSpec{critic: true, sampler: true, neighbors: "zeros", minRatio: 0.1}, nil, RemaskCritic},
		{"sampler-embeddings-all-compat", lmSpec{critic: true, sampler: true, neighbors: "embeddings", minRatio: 0.1},
			func(o *Options) { o.Compat, _ = ParseCompat("all") }, RemaskCritic},
		{"threshold", lmSpec{critic: true}, func(o *Options) { o.ScheduleMode = ScheduleThreshold }, RemaskCritic},
	}
	for _, s := range setups {
		t.Run(s.name, func(t *testing.T) {
			m := newLM(s.spec)
			V := m.Config.VocabSize
			f := &fakeNet{m: m,
				logits: func(row []int32, t int) []float32 {
					l := make([]float32, V)
					for i := range l {
						l[i] = float32(math.Sin(float64(i)*1.7 + float64(t)*0.9 + float64(row[(t+1)%len(row)])))
					}
					return l
				},
				critic: func(row []int32, t int) float32 { return float32(math.Cos(float64(t)*2.1 + float64(row[t]))) },
				sampler: func(row []int32, t int, left, right int32) []float32 {
					l := make([]float32, V)
					for i := range l {
						l[i] = float32(math.Sin(float64(i)*0.7 + float64(t) + float64(left)*0.3 - float64(right)*0.2))
					}
					return l
				},
			}
			o := baseOpts()
			o.NumSamples, o.SequenceLength, o.Iterations, o.Record, o.SeedText = 3, 12, 5, true, "ha"
			o.SeedPlacement, o.Seed = PlaceRandom, 42
			o.QualityMetric = MetricAuto
			if s.mod != nil {
				s.mod(&o)
			}
			var evs []Event
			res := generate(t, Models{LM: f}, o, func(ev *Event) {
				e := *ev
				e.Tokens = append([]int32(nil), ev.Tokens...)
				e.Filled = append([]bool(nil), ev.Filled...)
				evs = append(evs, e)
			})
			if res.Strategy != s.strategy {
				t.Fatalf("strategy %q, want %q", res.Strategy, s.strategy)
			}
			N := res.IterationsRun
			if N < 1 || N > 5 || len(evs) != N {
				t.Fatalf("ran %d iterations, %d events", N, len(evs))
			}
			start := res.SeedStart
			for b := 0; b < 3; b++ {
				recs := res.Iterations[b]
				if len(recs) != N {
					t.Fatalf("row %d: %d records", b, len(recs))
				}
				for i, r := range recs {
					ev := evs[i]
					if r.Iteration != i+1 || ev.Iteration != i {
						t.Fatalf("numbering %d %d", r.Iteration, ev.Iteration)
					}
					if i == 0 && str(r.InputMasked) != strings.Repeat("#", start)+"ha"+strings.Repeat("#", 10-start) {
						t.Fatalf("first input %s (seed at %d)", str(r.InputMasked), start)
					}
					for p := range r.InputMasked {
						in, out := r.InputMasked[p], r.OutputUnmasked[p]
						if in != idMask && in != out {
							t.Fatalf("it %d row %d: prediction changed a visible position %d", i, b, p)
						}
						if ev.Filled[b*12+p] != (in == idMask) || ev.Tokens[b*12+p] != out {
							t.Fatalf("event/record mismatch at it %d row %d pos %d", i, b, p)
						}
						if p == start || p == start+1 {
							if out != []int32{idH, idA}[p-start] {
								t.Fatalf("seed lost at %d", p)
							}
						}
					}
					var evRemasked []int
					if ev.Remasked != nil {
						evRemasked = ev.Remasked[b]
					}
					if !eqInts(r.RemaskedIndices, evRemasked) && !(len(r.RemaskedIndices) == 0 && len(evRemasked) == 0) {
						t.Fatalf("it %d row %d: record %v event %v", i, b, r.RemaskedIndices, evRemasked)
					}
					for _, p := range r.RemaskedIndices {
						if p == start || p == start+1 || r.OutputUnmasked[p] == idMask {
							t.Fatalf("remasked a protected or masked position %d", p)
						}
					}
					if i+1 < N {
						next := recs[i+1].InputMasked
						for p := range next {
							want := r.OutputUnmasked[p]
							if contains(r.RemaskedIndices, p) {
								want = idMask
							}
							if next[p] != want {
								t.Fatalf("it %d row %d: next input %s from %s remasked %v", i, b, str(next), str(r.OutputUnmasked), r.RemaskedIndices)
							}
						}
					} else {
						if r.RemaskedIndices == nil || len(r.RemaskedIndices) != 0 {
							t.Fatalf("last record remasked %#v, want []", r.RemaskedIndices)
						}
						if ev.Remasked != nil || math.IsNaN(ev.Ratio) != !ev.EarlyStop {
							t.Fatalf("last event remasked %v ratio %v early stop %v", ev.Remasked, ev.Ratio, ev.EarlyStop)
						}
						if ev.EarlyStop != (N < 5) {
							t.Fatalf("early stop %v after %d iterations", ev.EarlyStop, N)
						}
						if str(r.OutputUnmasked) != str(res.Samples[b].Tokens) {
							t.Fatalf("final tokens %s, last prediction %s", str(res.Samples[b].Tokens), str(r.OutputUnmasked))
						}
					}
				}
				js, _ := json.Marshal(recs[N-1])
				if !strings.Contains(string(js), `"remasked_indices":[]`) {
					t.Fatalf("last record JSON %s", js)
				}
			}
			total := 0
			for _, r := range res.Iterations {
				total += countMask(r[0].InputMasked)
			}
			if evs[0].Masked != total || evs[0].Total != 36 {
				t.Fatalf("event masked %d total %d, want %d 36", evs[0].Masked, evs[0].Total, total)
			}
			if res.Samples[0].SelfConfidence == nil || (s.spec.critic && res.Samples[0].Critic == nil) {
				t.Fatalf("metrics missing: %+v", res.Samples[0])
			}
			if res.Seconds <= 0 || res.TokensPerSecond <= 0 {
				t.Fatalf("timing %v %v", res.Seconds, res.TokensPerSecond)
			}
		})
	}
}

func countMask(x []int32) int {
	n := 0
	for _, t := range x {
		if t == idMask {
			n++
		}
	}
	return n
}

// TestSpecialExclusion: by default mask, pad, cls and every id >= base are
// never sampled on any path; mask-pad-only lets [CLS] (and [EXTRA]) through
// on the naive and multinomial paths and [PAD] on the sampler-head path.
func TestSpecialExclusion(t *testing.T) {
	// chars at 0, every special id at 40
	special := func(V int) []float32 {
		l := make([]float32, V)
		for i := 8; i < V; i++ {
			l[i] = 40
		}
		return l
	}
	cases := []struct {
		name    string
		sampler bool
		method  string
		compat  bool
		allowed map[int32]bool
	}{
		{"naive-default", false, Diffusion, false, nil},
		{"naive-mask-pad-only", false, Diffusion, true, map[int32]bool{idCLS: true, idExtra: true}},
		{"multinomial-default", false, Multinomial, false, nil},
		{"multinomial-mask-pad-only", false, Multinomial, true, map[int32]bool{idCLS: true, idExtra: true}},
		{"sampler-default", true, Diffusion, false, nil},
		{"sampler-mask-pad-only", true, Diffusion, true, map[int32]bool{idPad: true, idCLS: true, idExtra: true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := newLM(lmSpec{sampler: c.sampler, neighbors: "zeros", minRatio: 0.1, cls: true, extra: true})
			V := m.Config.VocabSize
			if V != 12 {
				t.Fatalf("V = %d", V)
			}
			f := &fakeNet{m: m,
				logits:  func(row []int32, t int) []float32 { return special(V) },
				sampler: func(row []int32, t int, left, right int32) []float32 { return special(V) },
			}
			o := baseOpts()
			o.Method, o.NumSamples, o.SequenceLength, o.Compat.MaskPadOnly = c.method, 4, 16, c.compat
			res := generate(t, Models{LM: f}, o, nil)
			seen := map[int32]bool{}
			for _, s := range res.Samples {
				for _, id := range s.Tokens {
					seen[id] = true
					if c.allowed == nil && id >= 8 {
						t.Fatalf("sampled special id %d: %q", id, s.Text)
					}
					if c.allowed != nil && !c.allowed[id] {
						t.Fatalf("sampled id %d, want one of %v", id, c.allowed)
					}
				}
			}
			if c.allowed != nil && len(seen) != len(c.allowed) {
				t.Fatalf("sampled %v, want every id of %v (64 draws)", seen, c.allowed)
			}
		})
	}
	// [CLS] decodes as its vocabulary string
	m := newLM(lmSpec{cls: true})
	f := &fakeNet{m: m, logits: func(row []int32, t int) []float32 { return hot(11, idCLS) }}
	o := baseOpts()
	o.SequenceLength, o.Compat.MaskPadOnly = 2, true
	if res := generate(t, Models{LM: f}, o, nil); res.Samples[0].Text != "[CLS][CLS]" {
		t.Fatalf("text %q", res.Samples[0].Text)
	}
	// the sampler path with mask-pad-only: [PAD] wins when it holds the mass
	m = newLM(lmSpec{sampler: true, neighbors: "zeros", minRatio: 0.1})
	f = &fakeNet{m: m, logits: func(row []int32, t int) []float32 { return make([]float32, 10) },
		sampler: func(row []int32, t int, left, right int32) []float32 { return oneHot(10, idPad, 50) }}
	if res := generate(t, Models{LM: f}, o, nil); res.Samples[0].Text != "[PAD][PAD]" {
		t.Fatalf("text %q", res.Samples[0].Text)
	}
	o.Compat.MaskPadOnly = false
	if res := generate(t, Models{LM: f}, o, nil); strings.Contains(res.Samples[0].Text, "[") {
		t.Fatalf("text %q", res.Samples[0].Text)
	}
}

// TestExcludedSets checks the exclusion lists themselves.
func TestExcludedSets(t *testing.T) {
	m := newLM(lmSpec{cls: true, extra: true})
	for _, c := range []struct {
		compat, samplerPath bool
		want                []int
	}{
		{false, false, []int{8, 9, 10, 11}},
		{false, true, []int{8, 9, 10, 11}},
		{true, false, []int{8, 9}},
		{true, true, []int{8}},
	} {
		o := baseOpts()
		o.Compat.MaskPadOnly = c.compat
		g := newGen(t, Models{LM: &fakeNet{m: m}}, o)
		var got []int
		for id, ex := range g.excluded(c.samplerPath) {
			if ex {
				got = append(got, id)
			}
		}
		if !eqInts(got, c.want) {
			t.Fatalf("compat %v sampler %v: excluded %v, want %v", c.compat, c.samplerPath, got, c.want)
		}
	}
}

// TestMultinomial: every unprotected position is redrawn each iteration,
// protected ones kept, and the reference's --save layout.
func TestMultinomial(t *testing.T) {
	m := tinyLM(true, false, "")
	V := m.Config.VocabSize
	// at a mask: t%8; at a visible token: odd t keeps it, even t moves it on by one
	f := &fakeNet{m: m, logits: func(row []int32, t int) []float32 {
		switch {
		case row[t] == idMask:
			return hot(V, t%8)
		case t%2 == 1:
			return hot(V, int(row[t]))
		}
		return hot(V, int(row[t]+1)%8)
	}, critic: func(row []int32, t int) float32 { return 0 }}
	o := baseOpts()
	o.Method, o.NumSamples, o.SequenceLength, o.Iterations, o.SeedText, o.Record = Multinomial, 2, 4, 3, "a", true
	o.QualityMetric = MetricAuto
	var evs []Event
	res := generate(t, Models{LM: f}, o, func(ev *Event) {
		e := *ev
		e.Tokens = append([]int32(nil), ev.Tokens...)
		evs = append(evs, e)
	})
	want := []struct {
		in, out  string
		remasked []int
	}{
		{"a###", "abcd", []int{2}},
		{"ab#d", "abdd", []int{2}},
		{"ab#d", "abed", []int{}},
	}
	for b := 0; b < 2; b++ {
		recs := res.Iterations[b]
		if len(recs) != 3 {
			t.Fatalf("%d records", len(recs))
		}
		for i, w := range want {
			r := recs[i]
			if r.Iteration != i+1 || str(r.InputMasked) != w.in || str(r.OutputUnmasked) != w.out || !eqInts(r.RemaskedIndices, w.remasked) || r.RemaskedIndices == nil {
				t.Fatalf("row %d entry %d: %d %s %s %v, want %s %s %v", b, i, r.Iteration, str(r.InputMasked), str(r.OutputUnmasked), r.RemaskedIndices, w.in, w.out, w.remasked)
			}
		}
		if str(res.Samples[b].Tokens) != "abed" {
			t.Fatalf("final %s", str(res.Samples[b].Tokens))
		}
	}
	if res.Strategy != "" || res.IterationsRun != 3 || f.encodes != 4 { // 3 iterations + metrics
		t.Fatalf("strategy %q run %d encodes %d", res.Strategy, res.IterationsRun, f.encodes)
	}
	if evs[0].Masked != 6 || evs[1].Masked != 0 || evs[0].Remasked != nil || str(evs[1].Tokens[:4]) != "abdd" {
		t.Fatalf("events %+v", evs)
	}
	if len(f.criticSeen) != 1 { // the metrics only: multinomial never remasks
		t.Fatalf("critic ran %d times", len(f.criticSeen))
	}
}

// TestMultinomialIgnoresTopP: draws are floor(8u) over 8 equal characters,
// not the top-p nucleus, and a warning says so.
func TestMultinomialIgnoresTopP(t *testing.T) {
	m := tinyLM(false, false, "")
	f := &fakeNet{m: m, logits: func(row []int32, t int) []float32 { return make([]float32, 10) }}
	o := baseOpts()
	o.Method, o.NumSamples, o.SequenceLength, o.TopP, o.Seed = Multinomial, 2, 16, 0.5, 9
	res := generate(t, Models{LM: f}, o, nil)
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "top_p") {
		t.Fatalf("warnings %q", res.Warnings)
	}
	differs := false
	for b := 0; b < 2; b++ {
		for p, id := range res.Samples[b].Tokens {
			u := rng.Uniform(9, uint32(b), 0, uint32(p), rng.Token)
			if want := int32(float64(u) * 8); id != want {
				t.Fatalf("row %d pos %d: %d, want floor(8u) = %d", b, p, id, want)
			}
			// with the nucleus (top_p .5 keeps ids 0..4) it would be floor(5u)
			if int32(float64(u)*5) != id {
				differs = true
			}
		}
	}
	if !differs {
		t.Fatal("test is vacuous: the nucleus would give the same draws")
	}
	// diffusion applies the nucleus: ids 0..4 only, each floor(5u)
	o.Method = Diffusion
	res = generate(t, Models{LM: f}, o, nil)
	if len(res.Warnings) != 0 {
		t.Fatalf("warnings %q", res.Warnings)
	}
	for b := 0; b < 2; b++ {
		for p, id := range res.Samples[b].Tokens {
			u := rng.Uniform(9, uint32(b), 0, uint32(p), rng.Token)
			if want := int32(float64(u) * 5); id != want {
				t.Fatalf("diffusion row %d pos %d: %d, want %d", b, p, id, want)
			}
		}
	}
}

func TestSeedPlacement(t *testing.T) {
	m := tinyLM(false, false, "")
	V := m.Config.VocabSize
	f := &fakeNet{m: m, logits: func(row []int32, t int) []float32 { return hot(V, idH) }}
	o := baseOpts()
	o.NumSamples, o.SequenceLength, o.SeedText = 3, 6, "bad"
	res := generate(t, Models{LM: f}, o, nil)
	for b := 0; b < 3; b++ {
		if got := str(res.Samples[b].Tokens); got != "badhhh" || res.SeedStart != 0 {
			t.Fatalf("prefix: %s at %d", got, res.SeedStart)
		}
	}
	starts := map[int]bool{}
	o.SeedPlacement = PlaceRandom
	for seed := uint64(0); seed < 24; seed++ {
		o.Seed = seed
		res := generate(t, Models{LM: f}, o, nil)
		u := rng.Uniform(seed, 0, 0, 0, rng.SeedPlacement)
		want := int(float64(u) * 4) // span = 6 - 3 + 1
		if res.SeedStart != want {
			t.Fatalf("seed %d: start %d, want %d", seed, res.SeedStart, want)
		}
		starts[want] = true
		row := strings.Repeat("h", want) + "bad" + strings.Repeat("h", 3-want)
		for b := 0; b < 3; b++ {
			if got := str(res.Samples[b].Tokens); got != row {
				t.Fatalf("seed %d row %d: %s, want %s", seed, b, got, row)
			}
		}
	}
	if len(starts) < 3 {
		t.Fatalf("starts %v: the random placement hardly varies", starts)
	}
	// a seed as long as the sequence: start 0
	o.SequenceLength, o.SeedText = 3, "bad"
	if res := generate(t, Models{LM: f}, o, nil); res.SeedStart != 0 || str(res.Samples[0].Tokens) != "bad" {
		t.Fatalf("full-length seed: %s at %d", str(res.Samples[0].Tokens), res.SeedStart)
	}
	// longer: an error, not a truncation
	o.SeedText = "badc"
	_, err := Generate(context.Background(), Models{LM: f}, o, nil)
	checkOptionError(t, err, "seed_text")
	// the empty seed protects nothing
	o.SeedText, o.SequenceLength = "", 4
	if res := generate(t, Models{LM: f}, o, nil); str(res.Samples[0].Tokens) != "hhhh" || res.SeedStart != 0 {
		t.Fatalf("no seed: %s", str(res.Samples[0].Tokens))
	}
}

func TestSeedUnknownChars(t *testing.T) {
	m := tinyLM(false, false, "")
	V := m.Config.VocabSize
	f := &fakeNet{m: m, logits: func(row []int32, t int) []float32 { return hot(V, idH) }}
	o := baseOpts()
	o.SequenceLength, o.SeedText = 6, "a?bzz"
	_, err := Generate(context.Background(), Models{LM: f}, o, nil)
	checkOptionError(t, err, "seed_text")
	for _, s := range []string{`"?"`, `"z"`, "unknown_chars"} {
		if !strings.Contains(err.Error(), s) {
			t.Fatalf("message %q does not mention %s", err, s)
		}
	}
	if strings.Contains(err.Error(), `"a"`) {
		t.Fatalf("message %q names a known character", err)
	}
	o.UnknownChars = UnknownDrop
	res := generate(t, Models{LM: f}, o, nil)
	if str(res.Samples[0].Tokens) != "abhhhh" {
		t.Fatalf("dropped: %s", str(res.Samples[0].Tokens))
	}
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "?z") {
		t.Fatalf("warnings %q", res.Warnings)
	}
	// the special tokens' names are not characters of the vocabulary
	o.UnknownChars, o.SeedText = UnknownError, "[MASK]"
	_, err = Generate(context.Background(), Models{LM: f}, o, nil)
	checkOptionError(t, err, "seed_text")
}

func TestTemplate(t *testing.T) {
	m := tinyLM(true, false, "")
	V := m.Config.VocabSize
	f := &fakeNet{m: m, logits: func(row []int32, t int) []float32 { return hot(V, idH) },
		critic: func(row []int32, t int) float32 { return float32(-t) }}
	o := baseOpts()
	o.NumSamples, o.SequenceLength, o.Template, o.Record = 2, 0, "a_c__", true
	o.MaskingRatios = []float64{1, 1, 1} // remask every candidate
	res := generate(t, Models{LM: f}, o, nil)
	for b := 0; b < 2; b++ {
		if got := str(res.Samples[b].Tokens); got != "ahchh" {
			t.Fatalf("row %d: %s", b, got)
		}
		recs := res.Iterations[b]
		for i, want := range [][]int{{1, 3, 4}, {1, 3, 4}, {}} {
			if !eqInts(recs[i].RemaskedIndices, want) || str(recs[i].InputMasked) != "a#c##" {
				t.Fatalf("row %d it %d: %s remasked %v", b, i, str(recs[i].InputMasked), recs[i].RemaskedIndices)
			}
		}
	}
	// an explicit matching length is fine; a different one is an error
	o.SequenceLength = 5
	generate(t, Models{LM: f}, o, nil)
	o.SequenceLength = 6
	_, err := Generate(context.Background(), Models{LM: f}, o, nil)
	checkOptionError(t, err, "sequence_length")
	// template + seed text
	o.SequenceLength, o.SeedText = 0, "a"
	_, err = Generate(context.Background(), Models{LM: f}, o, nil)
	checkOptionError(t, err, "template")
	// unknown characters: an error naming them, or dropped (the length shrinks)
	o.SeedText, o.Template, o.MaskingRatios, o.Record = "", "a_z_", nil, false
	_, err = Generate(context.Background(), Models{LM: f}, o, nil)
	checkOptionError(t, err, "template")
	if !strings.Contains(err.Error(), `"z"`) {
		t.Fatalf("message %q", err)
	}
	o.UnknownChars = UnknownDrop
	res = generate(t, Models{LM: f}, o, nil)
	if str(res.Samples[0].Tokens) != "ahh" || len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "z") {
		t.Fatalf("dropped: %s %q", str(res.Samples[0].Tokens), res.Warnings)
	}
	// a multi-byte placeholder, and the placeholder may be a vocabulary character
	o.UnknownChars, o.Template, o.Placeholder = UnknownError, "ab··", "·"
	if res := generate(t, Models{LM: f}, o, nil); str(res.Samples[0].Tokens) != "abhh" {
		t.Fatalf("unicode placeholder: %s", str(res.Samples[0].Tokens))
	}
	o.Template, o.Placeholder = "bab", "a"
	if res := generate(t, Models{LM: f}, o, nil); str(res.Samples[0].Tokens) != "bhb" {
		t.Fatalf("placeholder a: %s", str(res.Samples[0].Tokens))
	}
}

// detNet is a fake whose distributions are spread out, so that the seed matters.
func detNet(spec lmSpec) *fakeNet {
	m := newLM(spec)
	V := m.Config.VocabSize
	return &fakeNet{m: m,
		logits: func(row []int32, t int) []float32 {
			l := make([]float32, V)
			var s float64
			for _, x := range row {
				s += float64(x)
			}
			for i := range l {
				l[i] = float32(math.Sin(float64(i)*1.3+float64(t)*0.7+s*0.01)) * 2
			}
			return l
		},
		critic: func(row []int32, t int) float32 { return float32(math.Sin(float64(row[t])*0.9 + float64(t))) },
		sampler: func(row []int32, t int, left, right int32) []float32 {
			l := make([]float32, V)
			for i := range l {
				l[i] = float32(math.Cos(float64(i)*1.1 + float64(t)*0.3 + float64(left)))
			}
			return l
		},
	}
}

func TestDeterminism(t *testing.T) {
	setups := []struct {
		name string
		spec lmSpec
		mod  func(*Options)
	}{
		{"critic", lmSpec{critic: true}, func(o *Options) { o.RandomnessStrength = 0.3 }},
		{"calibrated", lmSpec{critic: true, calib: step.DefaultCalibration()}, func(o *Options) { o.RandomnessStrength = 0.3 }},
		{"self", lmSpec{}, nil},
		{"random", lmSpec{}, func(o *Options) { o.Remasking = RemaskRandom }},
		{"sampler", lmSpec{critic: true, sampler: true, neighbors: "embeddings", minRatio: 0.05}, nil},
		{"multinomial", lmSpec{}, func(o *Options) { o.Method = Multinomial }},
		{"template", lmSpec{critic: true}, func(o *Options) { o.SequenceLength, o.SeedText, o.Template = 0, "", "ab______cd__" }},
	}
	for _, s := range setups {
		t.Run(s.name, func(t *testing.T) {
			run := func(seed uint64, B int) []string {
				o := baseOpts()
				o.NumSamples, o.SequenceLength, o.Iterations, o.Seed = B, 12, 4, seed
				o.SeedText, o.SeedPlacement, o.Temperature = "gh", PlaceRandom, 1.3
				if s.mod != nil {
					s.mod(&o)
				}
				res := generate(t, Models{LM: detNet(s.spec)}, o, nil)
				var out []string
				for _, smp := range res.Samples {
					out = append(out, str(smp.Tokens))
				}
				return out
			}
			a, b := run(7, 4), run(7, 4)
			if strings.Join(a, ",") != strings.Join(b, ",") {
				t.Fatalf("same seed differs: %v / %v", a, b)
			}
			if c := run(8, 4); strings.Join(a, ",") == strings.Join(c, ",") {
				t.Fatalf("seeds 7 and 8 give the same text %v", a)
			}
			if a[0] == a[1] && a[1] == a[2] {
				t.Fatalf("rows do not differ: %v", a)
			}
			for _, B := range []int{1, 2, 3} {
				part := run(7, B)
				for i := range part {
					if part[i] != a[i] {
						t.Fatalf("sample %d with num_samples %d: %s, with 4: %s", i, B, part[i], a[i])
					}
				}
			}
		})
	}
}

// TestCriticOnInput counts trunk passes and checks what the critic saw.
func TestCriticOnInput(t *testing.T) {
	for _, strategy := range []string{RemaskCritic, RemaskCalibrated} {
		for _, compat := range []bool{false, true} {
			m := tinyLM(true, false, "")
			V := m.Config.VocabSize
			f := &fakeNet{m: m, logits: func(row []int32, t int) []float32 { return hot(V, t%8) },
				// a mask looks wrong to the critic; otherwise later positions look worse
				critic: func(row []int32, t int) float32 {
					if row[t] == idMask {
						return 10
					}
					return float32(t)
				}}
			o := baseOpts()
			o.SequenceLength, o.MaskingRatios, o.Remasking, o.Record = 6, []float64{1, 0.5, 0.5}, strategy, true
			o.Compat.CriticOnInput = compat
			res := generate(t, Models{LM: f}, o, nil)
			wantEnc, wantSeen := 5, []string{"abcdef", "abcdef"} // predict + critic(pred) twice, then predict
			if compat {
				wantEnc, wantSeen = 3, []string{"######", "###def", "###def"}
			}
			if f.encodes != wantEnc {
				t.Fatalf("%s compat %v: %d trunk passes, want %d", strategy, compat, f.encodes, wantEnc)
			}
			var seen []string
			for i, s := range f.criticSeen {
				if strategy == RemaskCalibrated && compat && i > 0 {
					// the luck draw picks the 3 remasked positions: only their count is fixed
					if countMask(s) != 3 {
						t.Fatalf("critic saw %s, want 3 masks", str(s))
					}
					seen = append(seen, wantSeen[i])
					continue
				}
				seen = append(seen, str(s))
			}
			if strings.Join(seen, ",") != strings.Join(wantSeen, ",") {
				t.Fatalf("%s compat %v: critic saw %v, want %v", strategy, compat, seen, wantSeen)
			}
			if strategy == RemaskCritic {
				// default: the largest t -> 3, 4, 5; compat: the masks tie -> 0, 1, 2
				want := []int{3, 4, 5}
				if compat {
					want = []int{0, 1, 2}
				}
				for i := 0; i < 2; i++ {
					if got := res.Iterations[0][i].RemaskedIndices; !eqInts(got, want) {
						t.Fatalf("compat %v it %d: remasked %v, want %v", compat, i, got, want)
					}
				}
			}
		}
	}
	// self and random never run the critic, compat or not
	for _, s := range []string{RemaskSelf, RemaskRandom} {
		m := tinyLM(true, false, "")
		f := &fakeNet{m: m, logits: func(row []int32, t int) []float32 { return hot(10, idA) },
			critic: func(row []int32, t int) float32 { return 0 }}
		o := baseOpts()
		o.Iterations, o.Remasking, o.Compat.CriticOnInput = 3, s, true
		generate(t, Models{LM: f}, o, nil)
		if f.encodes != 3 || len(f.criticSeen) != 0 {
			t.Fatalf("%s: encodes %d critic calls %d", s, f.encodes, len(f.criticSeen))
		}
	}
}

func TestCancellation(t *testing.T) {
	m := tinyLM(true, false, "")
	V := m.Config.VocabSize
	newF := func() *fakeNet {
		return &fakeNet{m: m, logits: func(row []int32, t int) []float32 { return hot(V, idB) },
			critic: func(row []int32, t int) float32 { return 0 }}
	}
	for _, method := range []string{Diffusion, Multinomial} {
		// cancelled before the start
		ctx, cancel := context.WithCancel(context.Background())
		cancel()
		f := newF()
		o := baseOpts()
		o.Method, o.Iterations = method, 5
		if _, err := Generate(ctx, Models{LM: f}, o, nil); !errors.Is(err, context.Canceled) || f.encodes != 0 {
			t.Fatalf("%s: err %v encodes %d", method, err, f.encodes)
		}
		// cancelled by the observer after iteration 0
		ctx, cancel = context.WithCancel(context.Background())
		f = newF()
		n := 0
		_, err := Generate(ctx, Models{LM: f}, o, func(ev *Event) { n++; cancel() })
		if !errors.Is(err, context.Canceled) || n != 1 {
			t.Fatalf("%s: err %v after %d iterations", method, err, n)
		}
		// a deadline
		ctx, cancel = context.WithTimeout(context.Background(), 0)
		_, err = Generate(ctx, Models{LM: newF()}, o, nil)
		cancel()
		if !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("%s: err %v", method, err)
		}
	}
	// the wavefront checks the context between waves
	ms := newLM(lmSpec{sampler: true, neighbors: "zeros", minRatio: 0.01})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	f := &fakeNet{m: ms, logits: func(row []int32, t int) []float32 { return hot(10, idA) },
		sampler: func(row []int32, t int, left, right int32) []float32 { cancel(); return hot(10, idA) }}
	o := baseOpts()
	o.SequenceLength, o.Template = 0, "___d____"
	if _, err := Generate(ctx, Models{LM: f}, o, nil); !errors.Is(err, context.Canceled) || len(f.samplerCalls) != 1 {
		t.Fatalf("wavefront: err %v after %d waves", err, len(f.samplerCalls))
	}
}

// TestBackendErrors: errors of the Net are returned, not swallowed.
func TestBackendErrors(t *testing.T) {
	m := tinyLM(true, true, "zeros")
	f := &fakeNet{m: m, logits: func(row []int32, t int) []float32 { return hot(10, idA) }} // no critic, no sampler
	o := baseOpts()
	o.MaskingRatios = []float64{1, 0.5}
	if _, err := Generate(context.Background(), Models{LM: f}, o, nil); err == nil || !strings.Contains(err.Error(), "fake: no sampler") {
		t.Fatalf("sampler error: %v", err)
	}
	o.DisableSampler = true
	if _, err := Generate(context.Background(), Models{LM: f}, o, nil); err == nil || !strings.Contains(err.Error(), "fake: no critic") {
		t.Fatalf("critic error: %v", err)
	}
	o.Compat.CriticOnInput = true
	if _, err := Generate(context.Background(), Models{LM: f}, o, nil); err == nil || !strings.Contains(err.Error(), "fake: no critic") {
		t.Fatalf("critic-on-input error: %v", err)
	}
	o.Remasking, o.QualityMetric = RemaskSelf, MetricNode
	if _, err := Generate(context.Background(), Models{LM: f}, o, nil); err == nil || !strings.Contains(err.Error(), "fake: no critic") {
		t.Fatalf("metrics critic error: %v", err)
	}
}

// TestBackendFailures: a failing trunk pass or head, wherever it happens
// (predict, critic, remasking model, metrics, judge), is returned.
func TestBackendFailures(t *testing.T) {
	type tc struct {
		name string
		run  func() error
	}
	lm := func(critic bool) *fakeNet {
		return &fakeNet{m: tinyLM(critic, false, ""), logits: func(row []int32, t int) []float32 { return hot(10, idA) },
			critic: func(row []int32, t int) float32 { return 0 }}
	}
	opts := func(method string, metric string) Options {
		o := baseOpts()
		o.Method, o.MaskingRatios, o.QualityMetric = method, []float64{1, 0.5}, metric
		return o
	}
	gen := func(m Models, o Options) error { _, err := Generate(context.Background(), m, o, nil); return err }
	var cases []tc
	for _, method := range []string{Diffusion, Multinomial} {
		// diffusion with a critic: predict, critic, predict, metrics; multinomial: 2 passes, metrics
		passes := map[string]int{Diffusion: 4, Multinomial: 3}[method]
		for n := 1; n <= passes; n++ {
			cases = append(cases, tc{fmt.Sprintf("%s-encode-%d", method, n), func() error {
				f := lm(true)
				f.failEncode = n
				return gen(Models{LM: f}, opts(method, MetricNode))
			}})
		}
		cases = append(cases, tc{method + "-logits", func() error {
			f := lm(false)
			f.failLogits = true
			return gen(Models{LM: f}, opts(method, MetricNone))
		}})
	}
	cases = append(cases,
		tc{"remasker-encode", func() error {
			c := &fakeNet{m: tinyClassifier(2), failEncode: 1}
			return gen(Models{LM: lm(false), Remasker: c}, opts(Diffusion, MetricNone))
		}},
		tc{"remasker-logits", func() error {
			c := &fakeNet{m: tinyClassifier(2), failLogits: true}
			return gen(Models{LM: lm(false), Remasker: c}, opts(Diffusion, MetricNone))
		}},
		tc{"judge-encode", func() error {
			j := &fakeNet{m: tinyJudge(64, true), failEncode: 1}
			return gen(Models{LM: lm(false), Judge: j}, opts(Diffusion, MetricJudge))
		}},
		tc{"metrics-logits", func() error {
			f := lm(false)
			o := opts(Diffusion, MetricSelf)
			o.MaskingRatios = nil
			g := newGen(t, Models{LM: f}, o)
			f.failLogits = true
			return g.metrics(context.Background())
		}},
	)
	for _, c := range cases {
		if err := c.run(); err == nil || !strings.Contains(err.Error(), "fake: ") {
			t.Fatalf("%s: err %v, want the backend's error", c.name, err)
		}
	}
}
