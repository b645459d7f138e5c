package gpu

import (
	"context"
	"fmt"
	"math"
	"testing"

	"github.com/remask/remask/engine"
	"github.com/remask/remask/engine/cpu"
	"github.com/remask/remask/engine/rng"
	"github.com/remask/remask/engine/sampler"
	"github.com/remask/remask/internal/step"
	"github.com/remask/remask/shaders"
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
		// (measured: 10, 14 and 14 of 32 steps; 21, 17 and 21).
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
			// One submission per step (the counters' read included), and no
			// sampler-head waves.
			if w := got.res.Device; w.Submits != got.res.IterationsRun || w.Waves != 0 {
				t.Errorf("%d submits and %d waves in %d steps; want one submission per step and no waves", w.Submits, w.Waves, got.res.IterationsRun)
			}
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
			Unmask: &engine.UnmaskSpec{Blocks: 1, BlockLength: T, Left: make([]int, B*T)}}
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
		"block-length":   func(s *engine.LoopSpec) { s.Unmask.Blocks, s.Unmask.BlockLength = 2, T },
		"sampler-head":   func(s *engine.LoopSpec) { s.UseSampler = true },
		"gap":            func(s *engine.LoopSpec) { s.Unmask.EarlyCommitGap = -1 },
	} {
		if _, err := net.(*Net).NewLoop(context.Background(), spec(mod)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

// ---------------------------------------------------------------- kernels

// The unmask kernels against internal/step, in loop_kernels_test.go's
// harness: certain.wgsl (shape: B·T positions x V ids) and unmask.wgsl
// (B rows of T positions; sizes around its 256-thread workgroup).
func TestUnmaskKernels(t *testing.T) { runKernelCases(t, unmaskKernelCases) }

var unmaskKernelCases = []kernelCase{
	// T: the vocabulary size V.
	{name: "certain", shapes: rowsOf(40, 1, 2, 5, 67, 256, 257, 1024), tol: 2e-5, check: checkCertain},
	{name: "unmask", shapes: rowsOf(5, 1, 7, 97, 255, 257, 1024, 4099), check: checkUnmaskCommit},
}

// checkCertain runs certain.wgsl for every ordering, with and without
// Gumbel noise, top-p and a temperature, with some ids excluded, positions
// whose top two logits tie, and positions left with one id; positions that
// are not [MASK] must stay untouched. The reference is step.Sampler's
// distribution, step.Certain, Ordering.Score and GumbelKey in float64. A
// rounded score (1/1024) may differ by one step where the unrounded value
// is within tolerance of a half.
func checkCertain(k *kernelRun, s shape) {
	V, n := s.T, s.B
	const T, it, seed = 8, 5, 0x0123456789abcdef
	r := k.r
	mask := uint32(V) // not a vocabulary id: the tokens only say masked or not
	exclude := make([]bool, V)
	for i := 3; i < V; i += 7 {
		exclude[i] = true
	}
	for _, ord := range []step.Ordering{step.OrderConfidence, step.OrderMargin, step.OrderEntropy, step.OrderRandom} {
		for _, v := range []struct{ temperature, topP, orderTemp float64 }{{1, 1, 0}, {0.6, 0.8, 0}, {1, 1, 0.7}, {0.8, 0.95, 0.05}} {
			what := fmt.Sprintf("%v temperature %v top-p %v order temperature %v", ord, v.temperature, v.topP, v.orderTemp)
			logits := randVec(r, n*V, 2)
			tok := make([]uint32, n)
			for p := range tok {
				if r.IntN(4) == 0 {
					tok[p] = uint32(r.IntN(V))
				} else {
					tok[p] = mask
				}
				row := logits[p*V : (p+1)*V]
				switch p % 5 {
				case 1: // the two largest allowed logits tie
					if V > 2 {
						row[0], row[1] = 4, 4
					}
				case 2: // one id far above the rest: all the mass after top-p
					row[V-1] = 40
				}
			}
			cert := k.out(shaders.CertainWords*n, nil)
			o, err := k.d.certainOp(n, V, T, it, v.temperature, v.topP, seed, mask, ord, v.orderTemp,
				k.inF(logits), k.in(tok), k.in(excludeWords(exclude)), cert.bind())
			if err != nil {
				k.Fatal(err)
			}
			got := asF32(k.exec([]op{o}, cert)[0])
			smp := step.NewSampler(exclude, v.temperature, v.topP)
			for p := 0; p < n; p++ {
				g := got[shaders.CertainWords*p : shaders.CertainWords*(p+1)]
				if tok[p] != mask {
					for i, x := range g {
						if math.Float32bits(x) != canary {
							k.Errorf("%s: position %d is not [MASK], CERT[%d] written: %v", what, p, i, x)
						}
					}
					continue
				}
				probs, total := smp.Distribution(logits[p*V : (p+1)*V])
				c := step.Certain(probs, total)
				u := rng.Uniform(seed, uint32(p/T), it, uint32(p%T), rng.OrderNoise)
				key := step.GumbelKey(ord.Score(c, float64(u)), v.orderTemp, float64(u))
				if math.IsInf(key, -1) {
					key = -math.MaxFloat32 // the kernel's lowest f32 (u = 0)
				}
				if !k.near(g[shaders.CertainP1], c.P1) || !k.near(g[shaders.CertainGap], c.Gap()) {
					k.Errorf("%s: position %d: P1 %v gap %v, want %v %v", what, p, g[shaders.CertainP1], g[shaders.CertainGap], c.P1, c.Gap())
				}
				if k.near(g[shaders.CertainKey], key) {
					continue
				}
				// A rounded score one step off, where the unrounded one is
				// within tolerance of a half.
				raw := map[step.Ordering]float64{step.OrderConfidence: c.P1, step.OrderMargin: c.Gap(), step.OrderEntropy: c.NegEntropy}[ord]
				half := math.Abs(math.Abs(raw*1024)-math.Floor(math.Abs(raw*1024))-0.5) <= 1024*k.tol*(1+math.Abs(raw))
				step1 := 1 / 1024.0
				if v.orderTemp > 0 {
					step1 /= v.orderTemp
				}
				if ord != step.OrderRandom && half && math.Abs(math.Abs(float64(g[shaders.CertainKey])-key)-step1) <= k.tol*(1+math.Abs(key)) {
					continue
				}
				k.Errorf("%s: position %d: key %v, want %v (P1 %v gap %v entropy %v, u %v)", what, p, g[shaders.CertainKey], key, c.P1, c.Gap(), c.NegEntropy, u)
			}
		}
	}
}

// unmaskRef is one step of unmask.wgsl on the host, written with the steps
// engine/sampler's unmask loop uses: the next tokens, the rows' state and
// the counters.
func unmaskRef(B, T int, p shaders.UnmaskParams, pred, tok []uint32, cert []float32, left, state []uint32) (next, st, cnt []uint32) {
	next = append([]uint32(nil), tok...)
	st = append([]uint32(nil), state...)
	cnt = make([]uint32, cntWords+B)
	nb, L := int(p.Blocks), int(p.BlockLen)
	for b := 0; b < B; b++ {
		row := next[b*T : (b+1)*T]
		block, stp, steps := int(st[4*b]), int(st[4*b+1]), int(st[4*b+2])
		masked := func(t0, t1 int) int {
			c := 0
			for _, x := range row[t0:t1] {
				if x == p.Mask {
					c++
				}
			}
			return c
		}
		m := 0
		for ; block < nb; block, stp = block+1, 0 {
			if m = masked(block*L, min((block+1)*L, T)); m > 0 {
				break
			}
		}
		st[4*b], st[4*b+1] = uint32(block), uint32(stp)
		cnt[shaders.CountRows+b] = uint32(steps)
		if block >= nb {
			continue
		}
		var gaps []float64
		var rest []int
		for t, x := range row {
			if x == p.Mask {
				gaps = append(gaps, float64(cert[3*(b*T+t)+shaders.CertainGap]))
				rest = append(rest, t)
			}
		}
		commit := rest
		if !step.EarlyCommit(gaps, float64(p.Gap)) {
			t0, t1 := block*L, min((block+1)*L, T)
			var cands []int
			var keys, conf []float64
			for t := t0; t < t1; t++ {
				if row[t] == p.Mask {
					cands = append(cands, t)
					keys = append(keys, float64(cert[3*(b*T+t)+shaders.CertainKey]))
					conf = append(conf, float64(cert[3*(b*T+t)+shaders.CertainP1]))
				}
			}
			// A block's step s < its positions (the kernel clamps it there).
			k := step.CommitCount(len(cands), int(left[b*T+t0+min(stp, t1-t0-1)]))
			commit = step.SelectCommits(cands, keys, conf, k, float64(p.Tau))
		}
		for _, t := range commit {
			row[t] = pred[b*T+t]
		}
		st[4*b+1], st[4*b+2] = uint32(stp+1), uint32(steps+1)
		cnt[shaders.CountRows+b] = uint32(steps + 1)
		if len(rest) > len(commit) {
			cnt[shaders.CountTotal]++
		}
	}
	return next, st, cnt
}

// checkUnmaskCommit runs unmask.wgsl on random rows: one block or blocks of
// 3 and of T/2+1 positions, rows in any block and step, finished rows,
// keys with many ties (a few distinct values, so the lower position
// decides), with and without the threshold and the gap.
func checkUnmaskCommit(k *kernelRun, s shape) {
	B, T := s.B, s.T
	const mask = 1000
	r := k.r
	for _, L := range []int{T, 3, T/2 + 1} {
		nb := step.Blocks(T, L)
		for _, v := range []struct{ tau, gap float32 }{{0, 0}, {0.75, 0}, {0, 0.5}, {0.5, 0.125}} {
			N := nb + r.IntN(5)
			what := fmt.Sprintf("blocks of %d (%d), %d steps, tau %v, gap %v", L, nb, N, v.tau, v.gap)
			tok, pred := make([]uint32, B*T), make([]uint32, B*T)
			cert := make([]float32, 3*B*T)
			state := make([]uint32, 4*B)
			left := make([]uint32, B*T)
			for b := 0; b < B; b++ {
				block := r.IntN(nb + 1) // nb: the row is done
				if b == 0 {
					block = 0
				}
				for t := 0; t < T; t++ {
					p := b*T + t
					pred[p] = uint32(r.IntN(50))
					tok[p] = pred[p]
					// Blocks before the row's block are finished; later ones
					// and its own are mostly masked; a row may skip blocks.
					if t >= block*L && r.IntN(4) != 0 {
						tok[p] = mask
					}
					cert[3*p+shaders.CertainKey] = float32(r.IntN(4)) / 4 // ties
					cert[3*p+shaders.CertainP1] = float32(r.IntN(5)) / 4
					cert[3*p+shaders.CertainGap] = float32(r.IntN(9)) / 8
					if b == 1 && v.gap > 0 {
						cert[3*p+shaders.CertainGap] = v.gap // Prophet passes on row 1
					}
				}
				if block < nb {
					state[4*b] = uint32(block)
					state[4*b+1] = uint32(r.IntN(min(step.BlockSteps(N, nb, block), min((block+1)*L, T)-block*L)))
				} else {
					state[4*b] = uint32(r.IntN(nb))
				}
				state[4*b+2] = uint32(r.IntN(20))
				for i := range left[b*T : (b+1)*T] {
					left[b*T+i] = uint32(r.IntN(T + 1))
				}
			}
			u := &engine.UnmaskSpec{Blocks: nb, BlockLength: L, ConfidenceThreshold: float64(v.tau), EarlyCommitGap: float64(v.gap)}
			p := unmaskParams(B, T, mask, u)
			keys, tokB, stB := k.out(B*T, nil), k.out(B*T, tok), k.out(4*B, state)
			cnt := k.out(cntWords+B, make([]uint32, cntWords+B))
			o, err := k.d.unmaskOp(p, k.in(pred), k.inF(cert), k.in(left), keys.bind(), tokB.bind(), stB.bind(), cnt.bind())
			if err != nil {
				k.Fatal(err)
			}
			got := k.exec([]op{o}, tokB, stB, cnt)
			wTok, wSt, wCnt := unmaskRef(B, T, p, pred, tok, cert, left, state)
			for i := range wTok {
				if got[0][i] != wTok[i] {
					k.Errorf("%s: row %d position %d: token %d, want %d", what, i/T, i%T, got[0][i], wTok[i])
					break
				}
			}
			if fmt.Sprint(got[1]) != fmt.Sprint(wSt) {
				k.Errorf("%s: state %v, want %v", what, got[1], wSt)
			}
			if fmt.Sprint(got[2]) != fmt.Sprint(wCnt) {
				k.Errorf("%s: counters %v, want %v", what, got[2], wCnt)
			}
		}
	}
}
