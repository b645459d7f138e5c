package gpu

import (
	"context"
	"fmt"
	"math"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remask/remask/engine"
	"github.com/remask/remask/engine/cpu"
	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/engine/sampler"
	"github.com/remask/remask/internal/step"
)

// The device loop against its CPU twin, engine/sampler's host loop, run
// twice: on this backend with Options.HostLoop (the same network kernels, so
// only the loop's own kernels differ: f32 draws and selection against the
// host's float64) and on the CPU backend (the networks differ by float
// rounding too, ~1e-6). Texts may differ only where a draw or a selection
// sits on a rounding boundary; on these models they agree on every position.
// In ratio mode the number of positions remasked per row must be identical.
//
// One mode is rounding-bound by construction: with critic-on-input the
// critic of iteration 0 scores an all-[MASK] input, whose per-position logits
// differ by ~1e-7 (measured on lm_rope_bidir_bias: -0.1010181 .. -0.1010171),
// so which positions stay is decided by float rounding, exactly like the
// bootstrap's near-ties (docs/sampling.md). There the CPU backend comparison
// checks iteration 0 and the remask counts only.

type loopRun struct {
	res      *sampler.Result
	preds    [][]int32 // per iteration
	remasked [][]int   // per iteration, per row
	wrong    [][]float64
}

func generateRun(t *testing.T, m sampler.Models, o sampler.Options) loopRun {
	t.Helper()
	var r loopRun
	res, err := sampler.Generate(context.Background(), m, o, func(ev *sampler.Event) {
		r.preds = append(r.preds, append([]int32(nil), ev.Tokens...))
		var counts []int
		if ev.Remasked != nil {
			for _, row := range ev.Remasked {
				counts = append(counts, len(row))
			}
		}
		r.remasked = append(r.remasked, counts)
		r.wrong = append(r.wrong, append([]float64(nil), ev.Wrongness...))
	})
	if err != nil {
		t.Fatalf("generate: %v", err)
	}
	r.res = res
	return r
}

func loadGolden(t *testing.T, name string) *model.Model {
	t.Helper()
	m, err := model.Load(filepath.Join(goldenDir, name))
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func TestDeviceLoopMatchesHost(t *testing.T) { deviceLoopMatchesHost(t, testBackend(t)) }

func deviceLoopMatchesHost(t *testing.T, be *Backend) {
	cb := cpu.New(2)
	load := func(m *model.Model) (engine.Net, engine.Net) {
		g, err := be.Load(context.Background(), m)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(g.(*Net).Close)
		c, err := cb.Load(context.Background(), m)
		if err != nil {
			t.Fatal(err)
		}
		return g, c
	}
	emb := loadGolden(t, "lm_rope_bidir_bias.safetensors") // sampler head with embeddings, critic
	d7 := loadGolden(t, "lm_d7_bf16.safetensors")          // zeros mode, calibration table, BF16
	clsM := loadGolden(t, "classifier.safetensors")
	embG, embC := load(emb)
	d7G, d7C := load(d7)
	clsG, clsC := load(clsM)

	base := func() sampler.Options {
		o := sampler.Defaults()
		o.NumSamples, o.SequenceLength, o.Iterations, o.Seed = 3, 32, 5, 7
		o.QualityMetric = sampler.MetricNode
		return o
	}
	type tc struct {
		name    string
		gpu     sampler.Models
		cpu     sampler.Models
		opts    func(*sampler.Options)
		counts  bool // ratio mode: remask counts must be identical
		nearTie bool // the CPU comparison stops after iteration 0 (see above)
	}
	cases := []tc{
		{"critic/sampler-embeddings", sampler.Models{LM: embG}, sampler.Models{LM: embC}, func(o *sampler.Options) {}, true, false},
		{"critic-on-input", sampler.Models{LM: embG}, sampler.Models{LM: embC}, func(o *sampler.Options) { o.Compat.CriticOnInput = true }, true, true},
		{"critic/randomness/top-p", sampler.Models{LM: embG}, sampler.Models{LM: embC}, func(o *sampler.Options) {
			o.RandomnessStrength, o.TopP, o.Temperature = 0.3, 0.9, 0.8
		}, true, false},
		{"self/naive", sampler.Models{LM: embG}, sampler.Models{LM: embC}, func(o *sampler.Options) {
			o.Remasking, o.DisableSampler, o.RandomnessStrength = sampler.RemaskSelf, true, 0.2
		}, true, false},
		{"random/seed-text", sampler.Models{LM: embG}, sampler.Models{LM: embC}, func(o *sampler.Options) {
			o.Remasking = sampler.RemaskRandom
			o.SeedText = string([]rune(emb.Vocab.Tokens[3] + emb.Vocab.Tokens[7] + emb.Vocab.Tokens[1]))
			o.SeedPlacement = sampler.PlaceRandom
		}, true, false},
		{"threshold", sampler.Models{LM: embG}, sampler.Models{LM: embC}, func(o *sampler.Options) {
			o.ScheduleMode, o.StartRatio, o.EndRatio = sampler.ScheduleThreshold, 0.9, 0.2
		}, false, false},
		{"calibrated/zeros/bf16", sampler.Models{LM: d7G}, sampler.Models{LM: d7C}, func(o *sampler.Options) {
			o.RandomnessStrength = 0.25
		}, true, false},
		{"zeros/wave-cap/mask-pad-only", sampler.Models{LM: d7G}, sampler.Models{LM: d7C}, func(o *sampler.Options) {
			o.Compat.WaveCap, o.Compat.MaskPadOnly = true, true
			o.Remasking = sampler.RemaskCritic
		}, true, false},
		// global-bootstrap ranks the exact max logits, as the reference: the
		// all-[MASK] rows' near-ties (~1e-6 apart) then rank by each backend's
		// float rounding, so it is compared with the host loop on the same
		// GPU logits only (docs/sampling.md, --compat global-bootstrap).
		{"zeros/wave-cap/global-bootstrap/mask-pad-only", sampler.Models{LM: d7G}, sampler.Models{LM: d7C}, func(o *sampler.Options) {
			o.Compat.WaveCap, o.Compat.GlobalBootstrap, o.Compat.MaskPadOnly = true, true, true
			o.Remasking = sampler.RemaskCritic
		}, true, false},
		{"model strategy", sampler.Models{LM: embG, Remasker: clsG}, sampler.Models{LM: embC, Remasker: clsC}, func(o *sampler.Options) {
			o.RandomnessStrength = 0.1
		}, true, false},
		{"multinomial", sampler.Models{LM: embG}, sampler.Models{LM: embC}, func(o *sampler.Options) {
			o.Method = sampler.Multinomial
			o.TopP = 1
		}, false, false},
		{"template", sampler.Models{LM: embG}, sampler.Models{LM: embC}, func(o *sampler.Options) {
			v := emb.Vocab.Tokens
			o.SequenceLength = 0
			o.Template = v[2] + "____" + v[5] + v[6] + "__________" + v[9] + "_____"
		}, true, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			o := base()
			c.opts(&o)
			got := generateRun(t, c.gpu, o)
			if got.res.Loop != "device" {
				t.Fatalf("the GPU backend ran the %q loop; want device", got.res.Loop)
			}
			ho := o
			ho.HostLoop = true
			t.Run("vs host loop on gpu", func(t *testing.T) {
				compareRuns(t, generateRun(t, c.gpu, ho), got, c.counts, 0.999)
			})
			if o.Compat.GlobalBootstrap {
				return // exact near-tie ranks differ across backends (above)
			}
			t.Run("vs cpu backend", func(t *testing.T) {
				want := generateRun(t, c.cpu, o)
				if c.nearTie {
					// Iteration 0 (same input) and every iteration's remask counts.
					for i := range want.remasked {
						if fmt.Sprint(want.remasked[i]) != fmt.Sprint(got.remasked[i]) {
							t.Errorf("iteration %d: remasked per row: host %v, device %v", i, want.remasked[i], got.remasked[i])
						}
					}
					want.preds, got.preds = want.preds[:1], got.preds[:1]
					compareIterations(t, want, got, false)
					return
				}
				compareRuns(t, want, got, c.counts, 0.99)
			})
		})
	}
}

// compareRuns checks a device run against a host run: final tokens agree
// on at least minAgree of the positions, every iteration's prediction on
// 99%, the metrics within f32 tolerance where the texts are equal.
func compareRuns(t *testing.T, want, got loopRun, counts bool, minAgree float64) {
	t.Helper()
	if want.res.Loop != "host" {
		t.Fatalf("reference ran the %q loop; want host", want.res.Loop)
	}
	if got.res.IterationsRun != want.res.IterationsRun {
		t.Fatalf("iterations run: device %d, host %d", got.res.IterationsRun, want.res.IterationsRun)
	}
	same, total := 0, 0
	for i := range want.res.Samples {
		a, b := want.res.Samples[i].Tokens, got.res.Samples[i].Tokens
		for j := range a {
			total++
			if a[j] == b[j] {
				same++
			}
		}
	}
	agree := float64(same) / float64(total)
	t.Logf("final tokens agree on %d/%d (%.2f%%); device: %+v", same, total, 100*agree, *got.res.Device)
	if agree < minAgree {
		t.Errorf("device and host loops agree on %.2f%% of the final tokens; want >= %.1f%%", 100*agree, 100*minAgree)
	}
	compareIterations(t, want, got, counts)
	if agree < 1 {
		return
	}
	for i := range want.res.Samples {
		ws, gs := want.res.Samples[i], got.res.Samples[i]
		if (ws.SelfConfidence == nil) != (gs.SelfConfidence == nil) || ws.SelfConfidence != nil && math.Abs(*ws.SelfConfidence-*gs.SelfConfidence) > 1e-3 {
			t.Errorf("sample %d: self-confidence host %v, device %v", i, ws.SelfConfidence, gs.SelfConfidence)
		}
		if (ws.Critic == nil) != (gs.Critic == nil) {
			t.Errorf("sample %d: critic stats host %v, device %v", i, ws.Critic, gs.Critic)
			continue
		}
		if ws.Critic == nil {
			continue
		}
		for _, q := range [][2]float64{{ws.Critic.Mean, gs.Critic.Mean}, {ws.Critic.P10, gs.Critic.P10}, {ws.Critic.P50, gs.Critic.P50}, {ws.Critic.P90, gs.Critic.P90}} {
			if math.Abs(q[0]-q[1]) > 1e-4 {
				t.Errorf("sample %d: critic stats host %+v, device %+v", i, *ws.Critic, *gs.Critic)
				break
			}
		}
	}
}

// compareIterations checks each iteration's prediction (>= 99% equal), the
// remask counts per row (when counts) and that both report a wrongness
// heatmap for the same iterations.
func compareIterations(t *testing.T, want, got loopRun, counts bool) {
	t.Helper()
	for it := range want.preds {
		s, n := 0, 0
		for j := range want.preds[it] {
			n++
			if want.preds[it][j] == got.preds[it][j] {
				s++
			}
		}
		if float64(s)/float64(n) < 0.99 {
			t.Errorf("iteration %d: predictions agree on %d/%d", it, s, n)
		}
		if counts && fmt.Sprint(want.remasked[it]) != fmt.Sprint(got.remasked[it]) {
			t.Errorf("iteration %d: remasked per row: host %v, device %v", it, want.remasked[it], got.remasked[it])
		}
		if len(want.wrong[it]) != len(got.wrong[it]) {
			t.Errorf("iteration %d: wrongness of %d positions on the host, %d on the device", it, len(want.wrong[it]), len(got.wrong[it]))
		}
	}
}

// TestLoopRefusesUnknownStrategy: a strategy number remask.wgsl does not
// know is refused by NewLoop, never run as another strategy.
func TestLoopRefusesUnknownStrategy(t *testing.T) {
	m := loadGolden(t, "lm_rope_bidir_bias.safetensors")
	net, err := testBackend(t).Load(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	defer net.(*Net).Close()
	const B, T = 1, 4
	V := m.Config.VocabSize
	spec := func(s step.Strategy) *engine.LoopSpec {
		toks := make([]int32, B*T)
		for i := range toks {
			toks[i] = int32(*m.Vocab.MaskTokenID)
		}
		return &engine.LoopSpec{B: B, T: T, Tokens: toks, Protected: make([]bool, B*T), Mask: toks[0], Iterations: 2, Ratios: []float64{0.5},
			Temperature: 1, TopP: 1, SamplerTopP: 1, ExcludeNaive: make([]bool, V), ExcludeSampler: make([]bool, V), Strategy: s}
	}
	l, err := net.(*Net).NewLoop(context.Background(), spec(step.Self))
	if err != nil {
		t.Fatalf("a valid spec: %v", err)
	}
	l.Close()
	for _, s := range []step.Strategy{step.Strategy(len(step.Strategies)), 1 << 31} {
		if _, err := net.(*Net).NewLoop(context.Background(), spec(s)); err == nil || !strings.Contains(err.Error(), "unknown remasking strategy") {
			t.Errorf("strategy %d: %v, want an unknown-strategy error", uint32(s), err)
		}
	}
	// The multinomial method never remasks: its spec's Strategy (the zero
	// value, step.Critic) is not checked against a model without a critic.
	m = loadGolden(t, "lm_nopos_f16.safetensors")
	if m.Config.HasCritic() {
		t.Fatal("lm_nopos_f16 has a critic head")
	}
	if net, err = testBackend(t).Load(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	defer net.(*Net).Close()
	V = m.Config.VocabSize
	multi := spec(step.Critic)
	multi.Multinomial, multi.Ratios = true, nil
	if l, err := net.(*Net).NewLoop(context.Background(), multi); err != nil {
		t.Errorf("multinomial without a critic: %v", err)
	} else {
		l.Close()
	}
	if _, err := net.(*Net).NewLoop(context.Background(), spec(step.Critic)); err == nil || !strings.Contains(err.Error(), "no critic head") {
		t.Errorf("critic remasking without a critic: %v", err)
	}
}

// TestDeviceLoopWaveSlots: the sampler-head waves without host round trips
// (docs/gpu.md, "The sampler-head waves"). With the default
// Options.WaveSlots every iteration is one submission and, with no observer
// and ratio mode, reads nothing back (the tokens and the wave count are read
// once, after the last iteration). With WaveSlots 1 the iterations whose
// schedule allows more waves read their wave count once and record exactly
// those: two submissions. Either way the text is the host loop's, per row
// and with the global bootstrap (with and without the wave cap).
func TestDeviceLoopWaveSlots(t *testing.T) {
	emb := loadGolden(t, "lm_rope_bidir_bias.safetensors")
	d7 := loadGolden(t, "lm_d7_bf16.safetensors")
	one, err := New(context.Background(), Options{WaveSlots: 1})
	if err != nil {
		t.Fatal(err)
	}
	defer one.Close()
	// Options.WaveDispatch "direct": every slot a direct dispatch with the
	// slot in its params, alone and with one slot (the wave count read).
	direct, err := New(context.Background(), Options{WaveDispatch: "direct"})
	if err != nil {
		t.Fatal(err)
	}
	defer direct.Close()
	oneDirect, err := New(context.Background(), Options{WaveSlots: 1, WaveDispatch: "direct"})
	if err != nil {
		t.Fatal(err)
	}
	defer oneDirect.Close()
	for _, be := range []*Backend{testBackend(t), one, direct, oneDirect} {
		slots := be.d.waveSlots
		for _, c := range []struct {
			name string
			m    *model.Model
			opts func(*sampler.Options)
		}{
			{"per-row", emb, func(o *sampler.Options) {}},
			{"global-bootstrap", emb, func(o *sampler.Options) { o.Compat.GlobalBootstrap = true }},
			{"global-bootstrap/wave-cap/zeros", d7, func(o *sampler.Options) {
				o.Compat.GlobalBootstrap, o.Compat.WaveCap, o.Remasking = true, true, sampler.RemaskCritic
			}},
		} {
			t.Run(fmt.Sprintf("slots%d/dispatch=%q/%s", slots, be.d.waveDispatch, c.name), func(t *testing.T) {
				net, err := be.Load(context.Background(), c.m)
				if err != nil {
					t.Fatal(err)
				}
				defer net.(*Net).Close()
				o := sampler.Defaults()
				o.NumSamples, o.SequenceLength, o.Iterations, o.Seed = 3, 32, 5, 11
				o.QualityMetric = sampler.MetricNode
				c.opts(&o)
				res, err := sampler.Generate(context.Background(), sampler.Models{LM: net}, o, nil)
				if err != nil {
					t.Fatal(err)
				}
				w := res.Device
				t.Logf("device: %d submits, %d dispatches, %d bytes read, %d waves in %d iterations", w.Submits, w.Dispatches, w.ReadBytes, w.Waves, res.IterationsRun)
				if slots == WaveSlots && (w.Submits != res.IterationsRun || w.ReadBytes != 0) {
					t.Errorf("%d submits and %d bytes read in %d iterations; want one submission each and nothing read", w.Submits, w.ReadBytes, res.IterationsRun)
				}
				if slots == 1 && w.Submits <= res.IterationsRun {
					t.Errorf("%d submits in %d iterations with one wave slot; want a wave count read in some", w.Submits, res.IterationsRun)
				}
				if w.Waves == 0 {
					t.Errorf("no waves counted")
				}
				ho := o
				ho.HostLoop = true
				want, err := sampler.Generate(context.Background(), sampler.Models{LM: net}, ho, nil)
				if err != nil {
					t.Fatal(err)
				}
				for i := range want.Samples {
					if a, b := want.Samples[i].Text, res.Samples[i].Text; a != b {
						t.Errorf("sample %d: host loop %q, device loop %q", i, a, b)
					}
				}
			})
		}
	}
}

// TestDeviceLoopWaveDispatches pins the sampler-head waves' dispatches: an
// iteration with the sampler head records the naive path's dispatches
// with the fill draw swapped for h · W0, plus the plan's three and one per
// wave slot (samplerwave.wgsl; five before issue 15's fusion), as many
// slots as the schedule bounds (every position masked: T).
func TestDeviceLoopWaveDispatches(t *testing.T) {
	m := loadGolden(t, "lm_rope_bidir_bias.safetensors")
	net, err := testBackend(t).Load(context.Background(), m)
	if err != nil {
		t.Fatal(err)
	}
	defer net.(*Net).Close()
	const B, T = 2, 6
	V := m.Config.VocabSize
	dispatches := func(sampler bool) int {
		toks := make([]int32, B*T)
		for i := range toks {
			toks[i] = int32(*m.Vocab.MaskTokenID)
		}
		s := &engine.LoopSpec{B: B, T: T, Tokens: toks, Protected: make([]bool, B*T), Mask: toks[0], Iterations: 2, Ratios: []float64{0.5},
			Temperature: 1, TopP: 1, SamplerTopP: 1, ExcludeNaive: make([]bool, V), ExcludeSampler: make([]bool, V), Strategy: step.Critic,
			UseSampler: sampler, Embeddings: true, MinNeighborsRatio: 0.1}
		l, err := net.(*Net).NewLoop(context.Background(), s)
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		st, err := l.Step(context.Background(), 0, false)
		if err != nil {
			t.Fatal(err)
		}
		return st.Dispatches
	}
	naive, waves := dispatches(false), dispatches(true)
	t.Logf("iteration 0 at %d x %d: %d dispatches with the naive draw, %d with the sampler head (%d wave slots)", B, T, naive, waves, T)
	if want := naive + 3 + T; waves != want {
		t.Errorf("%d dispatches with the sampler head, want %d: the naive path's %d + the plan's 3 + one per wave slot (%d)", waves, want, naive, T)
	}
}
