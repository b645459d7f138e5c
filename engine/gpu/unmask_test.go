package gpu

import (
	"context"
	"fmt"
	"testing"

	"github.com/remask/remask/engine"
	"github.com/remask/remask/engine/cpu"
	"github.com/remask/remask/engine/sampler"
)

// The unmask method on the device loop against its CPU twin, the host loop
// (engine/sampler unmask.go), per policy: on this backend with
// Options.HostLoop (the same logits: only the loop's kernels differ) the
// texts, the steps per sample, the iterations run and every iteration's
// prediction and commits must be identical; on the CPU backend (logits
// differ by float rounding) the same is asked of the texts.

// unmaskCases are the policies: every ordering, with and without Gumbel
// noise, every schedule, the threshold, blocks (with a template), early
// commit, top-p.
func unmaskCases(v []string) []struct {
	name string
	opts func(*sampler.Options)
} {
	return []struct {
		name string
		opts func(*sampler.Options)
	}{
		{"confidence", func(o *sampler.Options) {}},
		{"margin", func(o *sampler.Options) { o.Ordering = sampler.OrderMargin }},
		{"entropy", func(o *sampler.Options) { o.Ordering = sampler.OrderEntropy }},
		{"random", func(o *sampler.Options) { o.Ordering = sampler.OrderRandom }},
		{"confidence/gumbel", func(o *sampler.Options) { o.OrderTemperature = 0.3 }},
		{"margin/gumbel", func(o *sampler.Options) { o.Ordering, o.OrderTemperature = sampler.OrderMargin, 1 }},
		{"entropy/gumbel", func(o *sampler.Options) { o.Ordering, o.OrderTemperature = sampler.OrderEntropy, 0.05 }},
		{"cosine", func(o *sampler.Options) { o.UnmaskSchedule = sampler.UnmaskCosine }},
		{"ratio", func(o *sampler.Options) { o.UnmaskSchedule = sampler.UnmaskRatio }},
		{"ratio/list", func(o *sampler.Options) {
			o.UnmaskSchedule, o.MaskingRatios, o.Iterations = sampler.UnmaskRatio, []float64{0.9, 0.6, 0.5, 0.2}, 4
		}},
		// Thresholds and gaps where the rows stop at different steps
		// (measured: 13, 5 and 15 of 32 steps; 12, 3 and 20).
		{"threshold", func(o *sampler.Options) {
			o.ConfidenceThreshold, o.Iterations, o.Temperature = 0.7, 32, 0.3
		}},
		{"threshold/top-p", func(o *sampler.Options) {
			o.ConfidenceThreshold, o.Iterations, o.Temperature, o.TopP = 0.9, 32, 0.3, 0.9
		}},
		{"blocks", func(o *sampler.Options) { o.BlockLength, o.Iterations = 7, 10 }},
		{"blocks/threshold/margin", func(o *sampler.Options) {
			o.BlockLength, o.Iterations, o.ConfidenceThreshold, o.Ordering = 5, 12, 0.2, sampler.OrderMargin
		}},
		{"blocks/template", func(o *sampler.Options) {
			o.SequenceLength = 0
			o.Template = v[2] + "____" + v[5] + v[6] + "__________" + v[9] + "_____" + v[3] + v[4] + v[7] + v[8] + "__"
			o.BlockLength, o.Iterations = 6, 8
		}},
		{"early-commit", func(o *sampler.Options) { o.EarlyCommitGap, o.Temperature, o.Iterations = 0.5, 0.3, 32 }},
		{"early-commit/all-at-once", func(o *sampler.Options) { o.EarlyCommitGap, o.Temperature = 0.1, 0.3 }},
		{"early-commit/blocks/random", func(o *sampler.Options) {
			o.EarlyCommitGap, o.Temperature, o.BlockLength, o.Ordering, o.Iterations = 0.7, 0.3, 8, sampler.OrderRandom, 32
		}},
		{"seed-text", func(o *sampler.Options) {
			o.SeedText, o.SeedPlacement = v[3]+v[7]+v[1], sampler.PlaceRandom
		}},
	}
}

func unmaskBase() sampler.Options {
	o := sampler.Defaults()
	o.Method = sampler.Unmask
	o.NumSamples, o.SequenceLength, o.Iterations, o.Seed = 3, 32, 6, 7
	o.QualityMetric = sampler.MetricSelf
	return o
}

func TestDeviceLoopUnmask(t *testing.T) {
	be := testBackend(t)
	m := loadGolden(t, "lm_rope_bidir_bias.safetensors")
	gn, err := be.Load(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gn.(*Net).Close)
	cn, err := cpu.New(2).Load(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range unmaskCases(m.Vocab.Tokens) {
		t.Run(c.name, func(t *testing.T) {
			o := unmaskBase()
			c.opts(&o)
			got := generateRun(t, sampler.Models{LM: gn}, o)
			if got.res.Loop != "device" {
				t.Fatalf("the GPU backend ran the %q loop; want device", got.res.Loop)
			}
			ho := o
			ho.HostLoop = true
			host := generateRun(t, sampler.Models{LM: gn}, ho)
			compareUnmask(t, "host loop on gpu", host, got, true)
			compareUnmask(t, "cpu backend", generateRun(t, sampler.Models{LM: cn}, o), got, false)
		})
	}
}

// compareUnmask checks a device run against a host run: texts and steps
// per sample, iterations run, and (each) every iteration's prediction and
// commits. It logs the steps and the device work.
func compareUnmask(t *testing.T, what string, want, got loopRun, each bool) {
	t.Helper()
	if want.res.Loop != "host" {
		t.Fatalf("%s: reference ran the %q loop; want host", what, want.res.Loop)
	}
	var steps []int
	for i := range want.res.Samples {
		ws, gs := want.res.Samples[i], got.res.Samples[i]
		if ws.Text != gs.Text || ws.Steps != gs.Steps {
			t.Errorf("%s: sample %d: host %q (%d steps), device %q (%d steps)", what, i, ws.Text, ws.Steps, gs.Text, gs.Steps)
		}
		steps = append(steps, gs.Steps)
	}
	if got.res.IterationsRun != want.res.IterationsRun {
		t.Errorf("%s: iterations run: device %d, host %d", what, got.res.IterationsRun, want.res.IterationsRun)
	}
	t.Logf("vs %s: %d iterations, steps %v, device %+v", what, got.res.IterationsRun, steps, *got.res.Device)
	if !each {
		return
	}
	if len(want.preds) != len(got.preds) {
		t.Fatalf("%s: %d events on the host, %d on the device", what, len(want.preds), len(got.preds))
	}
	for it := range want.preds {
		if fmt.Sprint(want.preds[it]) != fmt.Sprint(got.preds[it]) {
			t.Errorf("%s: iteration %d: predictions differ", what, it)
		}
		if fmt.Sprint(want.remasked[it]) != fmt.Sprint(got.remasked[it]) {
			t.Errorf("%s: iteration %d: left masked per row: host %v, device %v", what, it, want.remasked[it], got.remasked[it])
		}
	}
}

// TestDeviceLoopUnmaskDeterminismAndBatch: on the device loop the same seed
// gives the same text, and sample i's text and steps do not depend on the
// number of samples (each row's decisions read only its own row).
func TestDeviceLoopUnmaskDeterminismAndBatch(t *testing.T) {
	be := testBackend(t)
	m := loadGolden(t, "lm_rope_bidir_bias.safetensors")
	gn, err := be.Load(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(gn.(*Net).Close)
	for _, c := range unmaskCases(m.Vocab.Tokens) {
		t.Run(c.name, func(t *testing.T) {
			o := unmaskBase()
			c.opts(&o)
			run := func(B int) *sampler.Result {
				o := o
				o.NumSamples = B
				r := generateRun(t, sampler.Models{LM: gn}, o).res
				if r.Loop != "device" {
					t.Fatalf("loop %q", r.Loop)
				}
				return r
			}
			one, again, five := run(1), run(1), run(5)
			a, b, c := one.Samples[0], again.Samples[0], five.Samples[0]
			if a.Text != b.Text || a.Text != c.Text || a.Steps != c.Steps || a.Steps != b.Steps {
				t.Fatalf("B=1 %q (%d steps), again %q (%d), B=5 %q (%d)", a.Text, a.Steps, b.Text, b.Steps, c.Text, c.Steps)
			}
			o.Seed = 99
			if other := run(1); other.Samples[0].Text == a.Text {
				t.Errorf("seed 99 gave the same text as seed 7: %q", a.Text)
			}
		})
	}
}

// TestLoopRefusesBadUnmask: a malformed unmask plan is refused by NewLoop.
func TestLoopRefusesBadUnmask(t *testing.T) {
	m := loadGolden(t, "lm_rope_bidir_bias.safetensors")
	net, err := testBackend(t).Load(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	defer net.(*Net).Close()
	const B, T, N = 2, 4, 3
	V := m.Config.VocabSize
	spec := func(mod func(*engine.LoopSpec)) *engine.LoopSpec {
		toks := make([]int32, B*T)
		for i := range toks {
			toks[i] = int32(*m.Vocab.MaskTokenID)
		}
		s := &engine.LoopSpec{B: B, T: T, Tokens: toks, Protected: make([]bool, B*T), Mask: toks[0], Iterations: N,
			Temperature: 1, TopP: 1, SamplerTopP: 1, ExcludeNaive: make([]bool, V), ExcludeSampler: make([]bool, V),
			Unmask: &engine.UnmaskSpec{Blocks: 1, BlockLength: T, Left: make([]int, B*N)}}
		mod(s)
		return s
	}
	l, err := net.(*Net).NewLoop(context.Background(), spec(func(*engine.LoopSpec) {}))
	if err != nil {
		t.Fatalf("a valid spec: %v", err)
	}
	l.Close()
	for name, mod := range map[string]func(*engine.LoopSpec){
		"ordering":       func(s *engine.LoopSpec) { s.Unmask.Ordering = 4 },
		"schedule-size":  func(s *engine.LoopSpec) { s.Unmask.Left = s.Unmask.Left[1:] },
		"schedule-value": func(s *engine.LoopSpec) { s.Unmask.Left[0] = T + 1 },
		"blocks":         func(s *engine.LoopSpec) { s.Unmask.Blocks = N + 1 },
		"sampler-head":   func(s *engine.LoopSpec) { s.UseSampler = true },
		"gap":            func(s *engine.LoopSpec) { s.Unmask.EarlyCommitGap = -1 },
	} {
		if _, err := net.(*Net).NewLoop(context.Background(), spec(mod)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
