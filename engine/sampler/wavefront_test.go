package sampler

import (
	"github.com/remask/remask/internal/step"
	"math"
	"strings"
	"testing"

	"github.com/remask/remask/engine/rng"
)

// hot returns V logits that are -inf everywhere but id (0 there): the draw
// is id whatever u is.
func hot(V, id int) []float32 {
	l := make([]float32, V)
	for i := range l {
		l[i] = float32(math.Inf(-1))
	}
	l[id] = 0
	return l
}

// chainHead is a fake sampler head that continues the alphabet from a known
// neighbour: left+1 if the left neighbour is given, else right-1, else 'a'.
func chainHead(V int) func(row []int32, t int, left, right int32) []float32 {
	return func(row []int32, t int, left, right int32) []float32 {
		switch {
		case left >= 0:
			return hot(V, int(left)+1)
		case right >= 0:
			return hot(V, int(right)-1)
		}
		return hot(V, idA)
	}
}

func flatPos(calls []samplerCall) [][]int32 {
	var out [][]int32
	for _, c := range calls {
		out = append(out, c.pos)
	}
	return out
}

func eqWaves(a, b [][]int32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if len(a[i]) != len(b[i]) {
			return false
		}
		for j := range a[i] {
			if a[i][j] != b[i][j] {
				return false
			}
		}
	}
	return true
}

// TestWavefrontNeighbors: with "embeddings" the neighbours fill a chain from
// the template character outward; with "zeros" every neighbour is -1.
func TestWavefrontNeighbors(t *testing.T) {
	// template "__e___": waves [1 3] [0 4] [5]; 1 = e-1 = d, 3 = e+1 = f,
	// 0 = d-1 = c, 4 = f+1 = g, 5 = g+1 = h.
	wantWaves := [][]int32{{1, 3}, {0, 4}, {5}}
	cases := []struct {
		name      string
		file      string // the model file's sampler.neighbors
		override  string // Options.SamplerNeighbors
		wantText  string
		wantLeft  [][]int32
		wantRight [][]int32
	}{
		{"embeddings", "embeddings", "", "cdefgh",
			[][]int32{{-1, idE}, {-1, idF}, {idG}}, [][]int32{{idE, -1}, {idD, -1}, {-1}}},
		{"override-embeddings", "zeros", "embeddings", "cdefgh",
			[][]int32{{-1, idE}, {-1, idF}, {idG}}, [][]int32{{idE, -1}, {idD, -1}, {-1}}},
		// zeros: the chain head sees no neighbour and answers 'a' everywhere
		{"zeros", "zeros", "", "aaeaaa",
			[][]int32{{-1, -1}, {-1, -1}, {-1}}, [][]int32{{-1, -1}, {-1, -1}, {-1}}},
		{"override-zeros", "embeddings", "zeros", "aaeaaa",
			[][]int32{{-1, -1}, {-1, -1}, {-1}}, [][]int32{{-1, -1}, {-1, -1}, {-1}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := newLM(lmSpec{sampler: true, neighbors: c.file, minRatio: 0.01})
			V := m.Config.VocabSize
			f := &fakeNet{m: m, logits: func(row []int32, t int) []float32 { return hot(V, idH) }, sampler: chainHead(V)}
			o := baseOpts()
			o.SequenceLength, o.Template, o.SamplerNeighbors = 0, "__e___", c.override
			res := generate(t, Models{LM: f}, o, nil)
			if got := str(res.Samples[0].Tokens); got != c.wantText {
				t.Fatalf("text %s, want %s", got, c.wantText)
			}
			if got := flatPos(f.samplerCalls); !eqWaves(got, wantWaves) {
				t.Fatalf("waves %v, want %v", got, wantWaves)
			}
			for i, call := range f.samplerCalls {
				if !eqWaves([][]int32{call.left}, [][]int32{c.wantLeft[i]}) || !eqWaves([][]int32{call.right}, [][]int32{c.wantRight[i]}) {
					t.Fatalf("wave %d: left %v right %v, want %v %v", i, call.left, call.right, c.wantLeft[i], c.wantRight[i])
				}
			}
			if f.encodes != 1 {
				t.Fatalf("%d trunk passes, want 1 (waves only run the sampler head)", f.encodes)
			}
		})
	}
}

// TestWavefrontSeededChain: a seed in the middle of a longer row, two rows.
func TestWavefrontSeededChain(t *testing.T) {
	m := newLM(lmSpec{sampler: true, neighbors: "embeddings", minRatio: 0.01})
	V := m.Config.VocabSize
	f := &fakeNet{m: m, logits: func(row []int32, t int) []float32 { return hot(V, idH) }, sampler: chainHead(V)}
	o := baseOpts()
	o.NumSamples, o.SequenceLength, o.Template = 2, 0, "___d____"
	res := generate(t, Models{LM: f}, o, nil)
	for b := 0; b < 2; b++ {
		if got := str(res.Samples[b].Tokens); got != "abcdefgh" {
			t.Fatalf("row %d: %s, want abcdefgh", b, got)
		}
	}
	want := [][]int32{{2, 4, 10, 12}, {1, 5, 9, 13}, {0, 6, 8, 14}, {7, 15}}
	if got := flatPos(f.samplerCalls); !eqWaves(got, want) {
		t.Fatalf("waves %v, want %v", got, want)
	}
}

// TestDisableSampler: the naive path draws from the LM logits; the sampler
// head is never called.
func TestDisableSampler(t *testing.T) {
	m := newLM(lmSpec{sampler: true, neighbors: "embeddings", minRatio: 0.01})
	V := m.Config.VocabSize
	f := &fakeNet{m: m, logits: func(row []int32, t int) []float32 { return hot(V, 7-t%8) }, sampler: chainHead(V)}
	o := baseOpts()
	o.SequenceLength, o.Template, o.DisableSampler = 0, "__e___", true
	res := generate(t, Models{LM: f}, o, nil)
	// 7 - t%8 at t = 0, 1, 3, 4, 5; the template's e at 2
	if got := str(res.Samples[0].Tokens); got != "hgeedc" {
		t.Fatalf("text %s, want hgeedc", got)
	}
	if len(f.samplerCalls) != 0 {
		t.Fatalf("sampler head called %d times", len(f.samplerCalls))
	}
	// multinomial never uses the sampler head either
	o.Method = Multinomial
	generate(t, Models{LM: f}, o, nil)
	o.DisableSampler = false
	generate(t, Models{LM: f}, o, nil)
	if len(f.samplerCalls) != 0 {
		t.Fatalf("multinomial called the sampler head %d times", len(f.samplerCalls))
	}
}

// TestBootstrap: per-row bootstrap (default) vs the global top-k by raw max LM
// logit (global-bootstrap compat). B=2, T=4, min_neighbors_ratio .25.
func TestBootstrap(t *testing.T) {
	conf := [][]float32{{1, 2, 1, 1}, {4, 1, 5, 1}}
	cases := []struct {
		name   string
		global bool
		waves  [][]int32
	}{
		// each row: n_fill = max(1, floor(4*.25)) = 1: row 0 t1, row 1 t2 (flat 6)
		{"per-row", false, [][]int32{{1, 6}, {0, 2, 5, 7}, {3, 4}}},
		// global: n_fill = floor(8*.25) = 2: (1,2)=5 and (1,0)=4. Row 0 waits
		// until no row has an eligible position, then gets floor(4*.25) = 1.
		{"global", true, [][]int32{{4, 6}, {5, 7}, {1}, {0, 2}, {3}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := newLM(lmSpec{sampler: true, neighbors: "zeros", minRatio: 0.25})
			V := m.Config.VocabSize
			f := &fakeNet{m: m,
				rowLogits: func(b int, row []int32, t int) []float32 {
					l := make([]float32, V)
					l[idMask] = conf[b][t] // the raw max includes special ids
					return l
				},
				sampler: func(row []int32, t int, left, right int32) []float32 { return hot(V, t%8) },
			}
			o := baseOpts()
			o.NumSamples, o.SequenceLength = 2, 4
			o.Compat.GlobalBootstrap = c.global
			res := generate(t, Models{LM: f}, o, nil)
			if got := flatPos(f.samplerCalls); !eqWaves(got, c.waves) {
				t.Fatalf("waves %v, want %v", got, c.waves)
			}
			for b := 0; b < 2; b++ {
				if got := str(res.Samples[b].Tokens); got != "abcd" {
					t.Fatalf("row %d: %s", b, got)
				}
			}
		})
	}
}

// TestBootstrapTiesAndCount: ties in the max logit go to the lower position;
// n_fill = max(1, floor(n_masked*ratio)); every masked position when n_masked <= n_fill.
func TestBootstrapTiesAndCount(t *testing.T) {
	m := newLM(lmSpec{sampler: true, neighbors: "zeros", minRatio: 0.3})
	g := newGen(t, Models{LM: &fakeNet{m: m}}, func() Options { o := baseOpts(); o.NumSamples, o.SequenceLength = 2, 10; return o }())
	V := g.V
	for p := 0; p < 20; p++ {
		g.logits[p*V+idA] = float32([]int{3, 1, 3, 2, 3, 0, 1, 1, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 9, 9}[p])
	}
	pred := append(ids("##########"), ids("a########b")...)
	boot := func(pred []int32, b0, b1 int, ratio float64) []int32 {
		w := step.Wave{B: g.B, T: g.T, V: V, Mask: g.mask, Ratio: ratio}
		return w.Bootstrap(pred, g.logits, b0, b1)
	}
	// row 0: 10 masked, n_fill 3: the three 3s at 0, 2, 4
	if got := boot(pred, 0, 1, 0.3); !eqWaves([][]int32{got}, [][]int32{{0, 2, 4}}) {
		t.Fatalf("row 0: %v", got)
	}
	// row 1: 8 masked (11..18), n_fill 2: 18 (9), then the 0-ties -> 11
	if got := boot(pred, 1, 2, 0.3); !eqWaves([][]int32{got}, [][]int32{{18, 11}}) {
		t.Fatalf("row 1: %v", got)
	}
	// global: 18 masked, n_fill 5: 18 (9), then 0, 2, 4 (3), then 3 (2)
	if got := boot(pred, 0, 2, 0.3); !eqWaves([][]int32{got}, [][]int32{{18, 0, 2, 4, 3}}) {
		t.Fatalf("global: %v", got)
	}
	// tiny ratio: at least one
	if got := boot(pred, 0, 1, 0.001); len(got) != 1 || got[0] != 0 {
		t.Fatalf("n_fill 1: %v", got)
	}
	// n_masked <= n_fill: every masked position
	if got := boot(pred, 1, 2, 1); len(got) != 8 {
		t.Fatalf("ratio 1: %v", got)
	}
}

// TestWaveCap: B=2, T=4, global bootstrap (one seed: the tie goes to row 0),
// one iteration. With the wave cap, row 0 takes all T=4 waves and row 1
// stays masked; without it every mask is filled.
func TestWaveCap(t *testing.T) {
	cases := []struct {
		name         string
		compat       Compat
		row1         string
		waves        int
		selfConfRow1 bool
	}{
		{"global+wave-cap", Compat{GlobalBootstrap: true, WaveCap: true}, "####", 4, false},
		{"global", Compat{GlobalBootstrap: true}, "abcd", 8, true},
		{"wave-cap", Compat{WaveCap: true}, "abcd", 4, true},
		{"default", Compat{}, "abcd", 4, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := newLM(lmSpec{sampler: true, neighbors: "zeros", minRatio: 0.01})
			V := m.Config.VocabSize
			f := &fakeNet{m: m,
				logits: func(row []int32, t int) []float32 {
					l := make([]float32, V)
					l[idA] = []float32{5, 1, 1, 1}[t]
					return l
				},
				sampler: func(row []int32, t int, left, right int32) []float32 { return hot(V, t%8) },
			}
			o := baseOpts()
			o.NumSamples, o.SequenceLength, o.Compat, o.QualityMetric = 2, 4, c.compat, MetricSelf
			res := generate(t, Models{LM: f}, o, nil)
			if got := str(res.Samples[0].Tokens); got != "abcd" {
				t.Fatalf("row 0: %s", got)
			}
			if got := str(res.Samples[1].Tokens); got != c.row1 {
				t.Fatalf("row 1: %s, want %s", got, c.row1)
			}
			if len(f.samplerCalls) != c.waves {
				t.Fatalf("%d waves, want %d", len(f.samplerCalls), c.waves)
			}
			if (res.Samples[1].SelfConfidence != nil) != c.selfConfRow1 {
				t.Fatalf("row 1 self-confidence %v", res.Samples[1].SelfConfidence)
			}
			if c.row1 == "####" && res.Samples[1].Text != "[MASK][MASK][MASK][MASK]" {
				t.Fatalf("text %q", res.Samples[1].Text)
			}
		})
	}
}

// TestWaveCapLeftovers: masks left by the wave cap are not candidates for
// remasking; the next iteration refills them (within its own cap).
func TestWaveCapLeftovers(t *testing.T) {
	m := newLM(lmSpec{sampler: true, critic: true, neighbors: "zeros", minRatio: 0.01})
	V := m.Config.VocabSize
	f := &fakeNet{m: m,
		logits: func(row []int32, t int) []float32 {
			l := make([]float32, V)
			l[idA] = []float32{5, 1, 1, 1}[t]
			return l
		},
		critic:  func(row []int32, t int) float32 { return float32(t) },
		sampler: func(row []int32, t int, left, right int32) []float32 { return hot(V, t%8) },
	}
	o := baseOpts()
	o.NumSamples, o.SequenceLength, o.Record = 2, 4, true
	o.MaskingRatios = []float64{1, 0.5}
	o.Compat = Compat{GlobalBootstrap: true, WaveCap: true}
	res := generate(t, Models{LM: f}, o, nil)
	// it 0: row 0 "abcd", row 1 "####" (no candidates); remask k=2 of row 0: t2, t3
	r := res.Iterations
	if str(r[1][0].OutputUnmasked) != "####" || !eqInts(r[0][0].RemaskedIndices, []int{2, 3}) || len(r[1][0].RemaskedIndices) != 0 {
		t.Fatalf("it 0: %s %v %v", str(r[1][0].OutputUnmasked), r[0][0].RemaskedIndices, r[1][0].RemaskedIndices)
	}
	if str(r[0][1].InputMasked) != "ab##" || str(r[1][1].InputMasked) != "####" {
		t.Fatalf("it 1 inputs %s %s", str(r[0][1].InputMasked), str(r[1][1].InputMasked))
	}
	// it 1: row 0 has an eligible position, so row 1 waits (global
	// bootstrap): waves [2] [3], then the bootstrap of row 1 at t0 [4], then
	// [5]; the cap of T=4 waves leaves row 1's last two masks.
	if got := flatPos(f.samplerCalls[4:]); !eqWaves(got, [][]int32{{2}, {3}, {4}, {5}}) {
		t.Fatalf("it 1 waves %v", got)
	}
	if got := str(res.Samples[0].Tokens); got != "abcd" {
		t.Fatalf("row 0 final %s", got)
	}
	if got := str(res.Samples[1].Tokens); got != "ab##" {
		t.Fatalf("row 1 final %s, want ab## (the cap leaves masks)", got)
	}
}

// TestTokenDraws: every token draw uses u = rng.Uniform(seed, b, it, t, Token):
// over 8 equal characters ([MASK], [PAD] excluded) the token is floor(8u).
// Two iterations with every position remasked, so the output is iteration 1's.
func TestTokenDraws(t *testing.T) {
	for _, path := range []string{"naive", "sampler-zeros", "sampler-embeddings"} {
		m := newLM(lmSpec{sampler: path != "naive", neighbors: strings.TrimPrefix(path, "sampler-"), minRatio: 0.2})
		flat := func(row []int32, t int) []float32 { return make([]float32, 10) }
		f := &fakeNet{m: m, logits: flat,
			sampler: func(row []int32, t int, left, right int32) []float32 { return make([]float32, 10) }}
		o := baseOpts()
		o.NumSamples, o.SequenceLength, o.Seed, o.MaskingRatios = 2, 16, 77, []float64{1, 1}
		res := generate(t, Models{LM: f}, o, nil)
		for b := 0; b < 2; b++ {
			for p, id := range res.Samples[b].Tokens {
				u := rng.Uniform(77, uint32(b), 1, uint32(p), rng.Token)
				if want := int32(float64(u) * 8); id != want {
					t.Fatalf("%s row %d pos %d: %d, want floor(8u) = %d", path, b, p, id, want)
				}
			}
		}
	}
}

// TestGlobalBootstrapExactRank reproduces the fork-parity case of issue 16:
// on all-[MASK] rows the two best max-logits were 1.490514 and 1.489980
// (gap 5.3e-4), which both round to 1526/1024. Under global-bootstrap the
// reference ranks the exact values and seeds only the better one (flat 6
// here); rounding would tie them and seed the lower position (flat 1).
// The per-row bootstrap (remask's default) keeps the rounding.
func TestGlobalBootstrapExactRank(t *testing.T) {
	const lo, hi = float32(1.489980), float32(1.490514)
	if step.BootstrapConfidence([]float32{lo}) != step.BootstrapConfidence([]float32{hi}) {
		t.Fatalf("the case needs both values to round alike")
	}
	m := newLM(lmSpec{sampler: true, neighbors: "zeros", minRatio: 0.1})
	V := m.Config.VocabSize
	maxl := map[int]float32{1: lo, 6: hi} // flat positions; the rest 1.0
	f := &fakeNet{m: m,
		rowLogits: func(b int, row []int32, t int) []float32 {
			l := make([]float32, V)
			l[idA] = 1
			if x, ok := maxl[b*4+t]; ok {
				l[idA] = x
			}
			return l
		},
		sampler: func(row []int32, t int, left, right int32) []float32 { return hot(V, t%8) },
	}
	for _, c := range []struct {
		name   string
		global bool
		first  []int32
	}{
		{"global: exact", true, []int32{6}},        // n_fill = max(1, floor(8*.1)) = 1
		{"per-row: rounded", false, []int32{1, 6}}, // each row seeds its own best
	} {
		t.Run(c.name, func(t *testing.T) {
			f.samplerCalls = nil
			o := baseOpts()
			o.NumSamples, o.SequenceLength = 2, 4
			o.Compat.GlobalBootstrap = c.global
			generate(t, Models{LM: f}, o, nil)
			if len(f.samplerCalls) == 0 {
				t.Fatal("no wave")
			}
			if got := flatPos(f.samplerCalls)[0]; !eqWaves([][]int32{got}, [][]int32{c.first}) {
				t.Fatalf("first wave %v, want %v", got, c.first)
			}
		})
	}
	// The step-level twin the GPU kernel is tested against.
	w := step.Wave{B: 2, T: 4, V: 1, Mask: 0, Ratio: 0.1, Global: true}
	logits := []float32{1, lo, 1, 1, 1, 1, hi, 1}
	if got := w.Bootstrap(make([]int32, 8), logits, 0, 2); len(got) != 1 || got[0] != 6 {
		t.Fatalf("global Bootstrap = %v, want [6]", got)
	}
	w.Global = false
	if got := w.Bootstrap(make([]int32, 8), logits, 0, 2); len(got) != 1 || got[0] != 1 {
		t.Fatalf("rounded Bootstrap = %v, want [1] (the tie to the lower position)", got)
	}
}
