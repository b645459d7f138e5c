package sampler

import (
	"context"
	"github.com/remask/remask/internal/step"
	"math"
	"strings"
	"testing"

	"github.com/remask/remask/engine/rng"
)

// refTopK is an independent top-k: the k largest scores among candidates,
// ties to the lower position, returned in ascending position order.
func refTopK(score []float64, cand []bool, k int) []int {
	taken := make([]bool, len(score))
	for n := 0; n < k; n++ {
		best := -1
		for i := range score {
			if !cand[i] || taken[i] {
				continue
			}
			if best < 0 || score[i] > score[best] {
				best = i
			}
		}
		if best < 0 {
			break
		}
		taken[best] = true
	}
	var asc []int
	for i := range taken {
		if taken[i] {
			asc = append(asc, i)
		}
	}
	return asc
}

func eqInts(a, b []int) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// criticTable is the per-position critic logit of the remask tests (T=10).
var criticTable = []float32{9, 8, 0.5, 2, -1, 2, 3, 0, 2, -3}

// remaskGen is a B=2, T=10 generation with the seed "ab" at positions 0..1
// (protected), a critic head that returns criticTable, and the given options.
func remaskGen(t *testing.T, spec lmSpec, mod func(*Options)) (*generation, *fakeNet) {
	t.Helper()
	return remaskGenTable(t, spec, criticTable, mod)
}

func remaskGenTable(t *testing.T, spec lmSpec, table []float32, mod func(*Options)) (*generation, *fakeNet) {
	t.Helper()
	m := newLM(spec)
	V := m.Config.VocabSize
	f := &fakeNet{m: m,
		logits: func(row []int32, t int) []float32 { return oneHot(V, t%8, 5) },
		critic: func(row []int32, t int) float32 { return table[t] },
	}
	o := baseOpts()
	o.NumSamples, o.SequenceLength, o.Iterations, o.SeedText = 2, 10, 3, "ab"
	if mod != nil {
		mod(&o)
	}
	return newGen(t, Models{LM: f}, o), f
}

// remaskPred: row 0 fully predicted, row 1 still masked at 2..7 (as left by a
// wave cap), so row 1 has only the candidates 8 and 9.
func remaskPred() []int32 {
	return append(ids("abcdefghab"), ids("ab######cd")...)
}

func TestRemaskRatioCritic(t *testing.T) {
	cases := []struct {
		ratio float64
		want  [][]int // nil = nothing remasked
		minW  float64
	}{
		// k = floor(10*.35) = 3. Row 0: t6 (3), then the tie at 2 between t3, t5, t8
		// goes to the lower positions. Protected 0, 1 (logits 9, 8) never chosen.
		// Row 1: only 2 candidates -> min(k, 2).
		{0.35, [][]int{{3, 5, 6}, {8, 9}}, step.Sigmoid(-3)},
		{0.1, [][]int{{6}, {8}}, step.Sigmoid(2)}, // k = 1: row 1 t8 (2) beats t9 (-3)
		{1, [][]int{{2, 3, 4, 5, 6, 7, 8, 9}, {8, 9}}, step.Sigmoid(-3)},
		{0.05, nil, math.NaN()}, // k = floor(0.5) = 0: nothing
		{0, nil, math.NaN()},
	}
	for _, c := range cases {
		g, _ := remaskGen(t, lmSpec{critic: true}, func(o *Options) { o.Remasking = RemaskCritic })
		pred := remaskPred()
		sel, minW, stop, err := g.remask(context.Background(), 1, pred, c.ratio)
		if err != nil || stop {
			t.Fatalf("ratio %v: err %v stop %v", c.ratio, err, stop)
		}
		if c.want == nil {
			if sel != nil {
				t.Fatalf("ratio %v: selected %v, want nothing", c.ratio, sel)
			}
		} else {
			for b := range c.want {
				if !eqInts(sel[b], c.want[b]) {
					t.Fatalf("ratio %v: selected %v, want %v", c.ratio, sel, c.want)
				}
			}
		}
		if !(approx(minW, c.minW, 1e-7) || math.IsNaN(minW) && math.IsNaN(c.minW)) {
			t.Fatalf("ratio %v: min wrongness %v, want %v", c.ratio, minW, c.minW)
		}
	}
}

// TestRemaskCriticRandomness recomputes (1-r)*logit + r*u with
// u = rng.Uniform(seed, b, it, t, RemaskNoise).
func TestRemaskCriticRandomness(t *testing.T) {
	// a narrow table, where the noise decides most of the order
	narrow := []float32{0, 0, 0.1, 0.2, 0.3, 0.15, 0.05, 0.25, 0.12, 0.22}
	for _, table := range [][]float32{criticTable, narrow} {
		for _, r := range []float64{0.3, 0.5, 0.9, 1} {
			for _, seed := range []uint64{1, 2, 99} {
				testCriticRandomness(t, table, r, seed)
			}
		}
	}
}

func testCriticRandomness(t *testing.T, table []float32, r float64, seed uint64) {
	t.Helper()
	g, _ := remaskGenTable(t, lmSpec{critic: true}, table, func(o *Options) {
		o.Remasking, o.RandomnessStrength, o.Seed = RemaskCritic, r, seed
	})
	pred := append(ids("abcdefghab"), ids("abcdefghab")...)
	const it, ratio = 2, 0.4 // k = 4
	sel, _, _, err := g.remask(context.Background(), it, pred, ratio)
	if err != nil {
		t.Fatal(err)
	}
	for b := 0; b < 2; b++ {
		score := make([]float64, 10)
		cand := make([]bool, 10)
		for p := range score {
			u := float64(rng.Uniform(seed, uint32(b), it, uint32(p), rng.RemaskNoise))
			score[p] = (1-r)*float64(table[p]) + r*u
			cand[p] = p >= 2
		}
		if want := refTopK(score, cand, 4); !eqInts(sel[b], want) {
			t.Fatalf("r %v seed %d row %d: selected %v, want %v", r, seed, b, sel[b], want)
		}
	}
}

// TestRemaskCalibrated recomputes the [D7] rule: p = step.Sigmoid(logit),
// bucket = clamp(floor(100p), 0, 99), w = max(table[bucket], 1e-6),
// w' = max((1-r)w + r*u1, 1e-6), the k smallest u2/w'.
func TestRemaskCalibrated(t *testing.T) {
	table := make([]float64, 100)
	for i := range table {
		table[i] = float64((i*37)%100) / 100 // scrambled, with table[0] = 0
	}
	for _, tc := range []struct {
		name  string
		calib []float64
	}{{"table", table}, {"default-ramp", nil}} {
		for _, r := range []float64{0, 0.5, 1} {
			g, _ := remaskGen(t, lmSpec{critic: true, calib: tc.calib}, func(o *Options) {
				o.Remasking, o.RandomnessStrength, o.Seed = RemaskCalibrated, r, 5
			})
			tab := tc.calib
			if tab == nil {
				tab = step.DefaultCalibration()
				if len(g.res.Warnings) != 1 || !strings.Contains(g.res.Warnings[0], "calibration") {
					t.Fatalf("default ramp without a warning: %q", g.res.Warnings)
				}
			} else if len(g.res.Warnings) != 0 {
				t.Fatalf("unexpected warnings %q", g.res.Warnings)
			}
			pred := append(ids("abcdefghab"), ids("ab######cd")...)
			const it, ratio = 1, 0.3 // k = 3
			sel, minW, _, err := g.remask(context.Background(), it, pred, ratio)
			if err != nil {
				t.Fatal(err)
			}
			wantMin := math.Inf(1)
			for b := 0; b < 2; b++ {
				score := make([]float64, 10)
				cand := make([]bool, 10)
				ws := make([]float64, 10)
				for p := range score {
					pr := 1 / (1 + math.Exp(-float64(criticTable[p])))
					bucket := int(math.Floor(100 * pr))
					bucket = min(max(bucket, 0), 99)
					w := math.Max(tab[bucket], 1e-6)
					u1 := float64(rng.Uniform(5, uint32(b), it, uint32(p), rng.RemaskNoise))
					u2 := float64(rng.Uniform(5, uint32(b), it, uint32(p), rng.RemaskLuck))
					score[p] = -u2 / math.Max((1-r)*w+r*u1, 1e-6) // largest = smallest u2/w'
					ws[p] = w
					cand[p] = p >= 2 && pred[b*10+p] != idMask
				}
				want := refTopK(score, cand, 3)
				if !eqInts(sel[b], want) {
					t.Fatalf("%s r %v row %d: selected %v, want %v", tc.name, r, b, sel[b], want)
				}
				for _, p := range want {
					wantMin = math.Min(wantMin, ws[p])
				}
			}
			if !approx(minW, wantMin, 1e-12) {
				t.Fatalf("%s r %v: min wrongness %v, want %v", tc.name, r, minW, wantMin)
			}
		}
	}
}

// TestCalibratedBuckets checks the bucket arithmetic by hand on one
// candidate (T=1, ratio 1 -> k = 1): min_wrongness is that position's w.
func TestCalibratedBuckets(t *testing.T) {
	table := make([]float64, 100)
	for i := range table {
		table[i] = float64(i+1) / 1000
	}
	table[0] = 0 // floored to 1e-6
	cases := []struct {
		logit float32
		calib []float64
		want  float64
	}{
		{0, table, table[50]},                     // p = .5 -> bucket 50
		{40, table, table[99]},                    // p = 1 -> floor(100) = 100 -> clamped 99
		{-40, table, 1e-6},                        // bucket 0, table 0 -> 1e-6
		{float32(math.Log(0.3 / 0.7)), table, -1}, // p = .3: bucket 29 or 30 (float rounding), checked below
		{0, nil, 0.01 + 50*0.98/99},               // default ramp, bucket 50
		{-40, nil, 0.01},
		{40, nil, 0.99},
	}
	for _, c := range cases {
		m := newLM(lmSpec{critic: true, calib: c.calib})
		f := &fakeNet{m: m,
			logits: func(row []int32, t int) []float32 { return oneHot(10, 0, 1) },
			critic: func(row []int32, t int) float32 { return c.logit },
		}
		o := baseOpts()
		o.SequenceLength, o.Remasking = 1, RemaskCalibrated
		g := newGen(t, Models{LM: f}, o)
		sel, minW, _, err := g.remask(context.Background(), 0, ids("c"), 1)
		if err != nil || len(sel[0]) != 1 {
			t.Fatalf("logit %v: sel %v err %v", c.logit, sel, err)
		}
		want := c.want
		if want < 0 {
			p := step.Sigmoid(float64(c.logit))
			want = table[int(math.Floor(100*p))]
			if want != table[29] && want != table[30] {
				t.Fatalf("p .3 gave bucket value %v", want)
			}
		}
		if !approx(minW, want, 1e-12) {
			t.Fatalf("logit %v: w = %v, want %v", c.logit, minW, want)
		}
	}
}

// TestCalibratedFloor: w' = max((1-r)w + r*u1, 1e-6) at r = 0: a bucket
// whose table value is 0 has w = w' = 1e-6, so it is almost never chosen
// against a small but larger w (5e-4); k smallest u2/w'.
func TestCalibratedFloor(t *testing.T) {
	table := make([]float64, 100)
	table[1] = 5e-4 // table[0] = 0
	for seed := uint64(0); seed < 12; seed++ {
		m := newLM(lmSpec{critic: true, calib: table})
		f := &fakeNet{m: m, logits: func(row []int32, t int) []float32 { return oneHot(10, 0, 1) },
			critic: func(row []int32, t int) float32 { return []float32{-10, logit(0.015)}[t] }}
		o := baseOpts()
		o.SequenceLength, o.Remasking, o.Seed = 2, RemaskCalibrated, seed
		g := newGen(t, Models{LM: f}, o)
		sel, minW, _, err := g.remask(context.Background(), 3, ids("cd"), 0.5) // k = 1
		if err != nil {
			t.Fatal(err)
		}
		u0 := float64(rng.Uniform(seed, 0, 3, 0, rng.RemaskLuck))
		u1 := float64(rng.Uniform(seed, 0, 3, 1, rng.RemaskLuck))
		want, wantW := 1, 5e-4
		if u0/1e-6 < u1/5e-4 {
			want, wantW = 0, 1e-6
		}
		if !eqInts(sel[0], []int{want}) || minW != wantW {
			t.Fatalf("seed %d: selected %v (w %v), want [%d] (w %v)", seed, sel[0], minW, want, wantW)
		}
	}
}

// TestRemaskSelf: u = 1 - softmax(input logits)[pred]. The fake LM copies a
// visible token (p = e^10/(e^10+9)) and is flat at a mask (p = 1/10, u = .9),
// so only freshly filled positions are remasked.
func TestRemaskSelf(t *testing.T) {
	m := tinyLM(false, false, "")
	V := m.Config.VocabSize
	f := &fakeNet{m: m, logits: func(row []int32, t int) []float32 {
		if row[t] == idMask {
			return make([]float32, V)
		}
		return oneHot(V, int(row[t]), 10)
	}}
	o := baseOpts()
	o.NumSamples, o.SequenceLength, o.MaskingRatios, o.Record = 2, 10, []float64{1, 0.5, 0.3}, true
	var evs []Event
	res := generate(t, Models{LM: f}, o, func(ev *Event) {
		e := *ev
		e.Filled = append([]bool(nil), ev.Filled...)
		evs = append(evs, e)
	})
	if res.Strategy != RemaskSelf {
		t.Fatalf("strategy %q, want self (auto without critic)", res.Strategy)
	}
	// After it 0: every position is fresh, u = .9 everywhere, k = 5 -> ties -> 0..4.
	// After it 1: 5..9 are visible (u ~ 4e-4), 0..4 fresh (u = .9), k = 3 -> 0, 1, 2.
	want := [][]int{{0, 1, 2, 3, 4}, {0, 1, 2}, {}}
	for it, w := range want {
		for b := 0; b < 2; b++ {
			if got := res.Iterations[b][it].RemaskedIndices; !eqInts(got, w) {
				t.Fatalf("it %d row %d: remasked %v, want %v", it, b, got, w)
			}
		}
	}
	if !approx(evs[0].MinWrongness, 0.9, 1e-6) || !approx(evs[1].MinWrongness, 0.9, 1e-6) || !math.IsNaN(evs[2].MinWrongness) {
		t.Fatalf("min wrongness %v %v %v", evs[0].MinWrongness, evs[1].MinWrongness, evs[2].MinWrongness)
	}
	for b := 0; b < 2; b++ {
		for _, p := range evs[1].Remasked[b] {
			if !evs[1].Filled[b*10+p] {
				t.Fatalf("self remasked visible position %d", p)
			}
		}
	}
	// Direct: a visible position's u is 9/(e^10+9), a fresh one's 1 - 1/10.
	g := newGen(t, Models{LM: f}, o)
	copy(g.tokens, append(ids("##cd######"), ids("abcdefgh##")...))
	h, _ := f.Encode(context.Background(), g.tokens, 2, 10)
	if err := f.Logits(context.Background(), h, g.logits); err != nil {
		t.Fatal(err)
	}
	pred := append(ids("abcdefghab"), ids("abcdefghab")...)
	sel, minW, _, err := g.remask(context.Background(), 0, pred, 0.1) // k = 1
	if err != nil {
		t.Fatal(err)
	}
	if !eqInts(sel[0], []int{0}) || !eqInts(sel[1], []int{8}) || !approx(minW, 0.9, 1e-6) {
		t.Fatalf("selected %v minW %v, want [[0] [8]] .9", sel, minW)
	}
	sel, minW, _, _ = g.remask(context.Background(), 0, pred, 1) // k = 10: every candidate
	if len(sel[1]) != 10 || !approx(minW, 9/(math.Exp(10)+9), 1e-6) {
		t.Fatalf("k=10: selected %v minW %v", sel, minW)
	}
}

// TestRemaskRandom: min(k, candidates) positions, never protected, reported,
// in the order of rng.Uniform(seed, b, it, t, RemaskRandom).
func TestRemaskRandom(t *testing.T) {
	m := tinyLM(true, false, "")
	V := m.Config.VocabSize
	f := &fakeNet{m: m,
		logits: func(row []int32, t int) []float32 { return oneHot(V, t%8, 5) },
		critic: func(row []int32, t int) float32 { return 0 }}
	for _, ratio := range []float64{0.5, 1} {
		o := baseOpts()
		o.NumSamples, o.SequenceLength, o.SeedText, o.Record, o.Seed = 2, 10, "ab", true, 11
		o.MaskingRatios = []float64{1, ratio}
		o.Remasking = RemaskRandom
		var remasked [][]int
		res := generate(t, Models{LM: f}, o, func(ev *Event) {
			if ev.Iteration == 0 {
				remasked = ev.Remasked
			}
		})
		k := int(math.Floor(10 * ratio))
		for b := 0; b < 2; b++ {
			score := make([]float64, 10)
			cand := make([]bool, 10)
			for p := range score {
				score[p] = float64(rng.Uniform(11, uint32(b), 0, uint32(p), rng.RemaskRandom))
				cand[p] = p >= 2
			}
			want := refTopK(score, cand, k)
			if len(want) != min(k, 8) {
				t.Fatalf("reference count %d", len(want))
			}
			got := res.Iterations[b][0].RemaskedIndices
			if !eqInts(got, want) || !eqInts(remasked[b], want) {
				t.Fatalf("ratio %v row %d: remasked %v / %v, want %v", ratio, b, got, remasked[b], want)
			}
			in := res.Iterations[b][1].InputMasked
			for p := range in {
				if (in[p] == idMask) != (p >= 2 && contains(want, p)) {
					t.Fatalf("row %d: next input %s, remasked %v", b, str(in), want)
				}
			}
		}
	}
}

func contains(xs []int, x int) bool {
	for _, y := range xs {
		if y == x {
			return true
		}
	}
	return false
}

// classifierConf is the class-1 logit of the fake token classifier (T=10).
var classifierConf = []float32{1, -2, 0, -2, 3, -1, 5, 0.5, -4, 2}

func modelGen(t *testing.T, K int, mod func(*Options)) (*generation, *fakeNet) {
	t.Helper()
	m := tinyLM(true, false, "")
	V := m.Config.VocabSize
	f := &fakeNet{m: m, logits: func(row []int32, t int) []float32 { return oneHot(V, t%8, 5) },
		critic: func(row []int32, t int) float32 { return 0 }}
	c := &fakeNet{m: tinyClassifier(K), logits: func(row []int32, t int) []float32 {
		if K == 1 {
			return []float32{classifierConf[t]}
		}
		l := make([]float32, K)
		l[0] = 7 // never read
		l[1] = classifierConf[t]
		return l
	}}
	o := baseOpts()
	o.SequenceLength, o.Iterations = 10, 3
	if mod != nil {
		mod(&o)
	}
	return newGen(t, Models{LM: f, Remasker: c}, o), c
}

func TestRemaskModel(t *testing.T) {
	pred := ids("abcdefghab")
	for _, K := range []int{2, 3, 1} {
		// ratio: the k = 3 smallest class-1 logits: t8 (-4), then the tie t1, t3 (-2).
		g, c := modelGen(t, K, nil)
		if g.strategy != RemaskModel {
			t.Fatalf("auto with a remasking model resolved to %q", g.strategy)
		}
		sel, minW, _, err := g.remask(context.Background(), 0, pred, 0.3)
		if err != nil {
			t.Fatal(err)
		}
		if !eqInts(sel[0], []int{1, 3, 8}) || !approx(minW, 1-step.Sigmoid(-2), 1e-7) {
			t.Fatalf("K=%d: selected %v minW %v, want [1 3 8] %v", K, sel, minW, 1-step.Sigmoid(-2))
		}
		if c.encodes != 1 || str(c.encoded[0].tokens) != "abcdefghab" {
			t.Fatalf("classifier saw %v", c.encoded)
		}
		// threshold .5: wrong = 1 - step.Sigmoid(conf) > .5 strictly, so conf 0 (t2) is out.
		g, _ = modelGen(t, K, func(o *Options) { o.ScheduleMode = ScheduleThreshold })
		sel, minW, stop, _ := g.remask(context.Background(), 0, pred, 0.5)
		if stop || !eqInts(sel[0], []int{1, 3, 5, 8}) || !approx(minW, 1-step.Sigmoid(-1), 1e-7) {
			t.Fatalf("K=%d threshold: selected %v minW %v stop %v", K, sel, minW, stop)
		}
	}
	// blend: (1-r)*(-conf) + r*u
	g, _ := modelGen(t, 2, func(o *Options) { o.RandomnessStrength, o.Seed = 0.8, 3 })
	sel, _, _, _ := g.remask(context.Background(), 1, pred, 0.4)
	score := make([]float64, 10)
	cand := make([]bool, 10)
	for p := range score {
		u := float64(rng.Uniform(3, 0, 1, uint32(p), rng.RemaskNoise))
		score[p] = 0.2*-float64(classifierConf[p]) + 0.8*u
		cand[p] = true
	}
	if want := refTopK(score, cand, 4); !eqInts(sel[0], want) {
		t.Fatalf("blend: selected %v, want %v", sel[0], want)
	}
}

func TestStrategyResolution(t *testing.T) {
	calib := step.DefaultCalibration()
	cls := &fakeNet{m: tinyClassifier(2)}
	judge := &fakeNet{m: tinyJudge(64, true)}
	cases := []struct {
		name      string
		spec      lmSpec
		remasking string
		remasker  bool
		want      string
		errField  string
		warn      string
	}{
		{"auto-model", lmSpec{critic: true, calib: calib}, RemaskAuto, true, RemaskModel, "", ""},
		{"auto-calibrated", lmSpec{critic: true, calib: calib}, RemaskAuto, false, RemaskCalibrated, "", ""},
		{"auto-critic", lmSpec{critic: true}, RemaskAuto, false, RemaskCritic, "", ""},
		{"auto-self", lmSpec{}, RemaskAuto, false, RemaskSelf, "", ""},
		{"auto-model-no-critic", lmSpec{}, RemaskAuto, true, RemaskModel, "", ""},
		{"explicit-critic-with-table", lmSpec{critic: true, calib: calib}, RemaskCritic, false, RemaskCritic, "", ""},
		{"calibrated-default-ramp", lmSpec{critic: true}, RemaskCalibrated, false, RemaskCalibrated, "", "calibration"},
		{"self-with-critic", lmSpec{critic: true}, RemaskSelf, false, RemaskSelf, "", ""},
		{"random", lmSpec{}, RemaskRandom, false, RemaskRandom, "", ""},
		{"critic-without-head", lmSpec{}, RemaskCritic, false, "", "remasking", ""},
		{"calibrated-without-head", lmSpec{}, RemaskCalibrated, false, "", "remasking", ""},
		{"model-without-remasker", lmSpec{critic: true}, RemaskModel, false, "", "remasking_model", ""},
		{"remasker-but-critic", lmSpec{critic: true}, RemaskCritic, true, "", "remasking_model", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			lm := &fakeNet{m: newLM(c.spec)}
			mods := Models{LM: lm}
			if c.remasker {
				mods.Remasker = cls
			}
			o := baseOpts()
			o.Remasking = c.remasking
			g, err := newGeneration(mods, o)
			if c.errField != "" {
				checkOptionError(t, err, c.errField)
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if g.strategy != c.want || g.res.Strategy != c.want {
				t.Fatalf("strategy %q, want %q", g.strategy, c.want)
			}
			if c.warn != "" && (len(g.res.Warnings) == 0 || !strings.Contains(g.res.Warnings[0], c.warn)) {
				t.Fatalf("warnings %q, want one about %q", g.res.Warnings, c.warn)
			}
			if c.warn == "" && len(g.res.Warnings) != 0 {
				t.Fatalf("unexpected warnings %q", g.res.Warnings)
			}
		})
	}
	// a remasking model that is not a token classifier
	o := baseOpts()
	_, err := newGeneration(Models{LM: &fakeNet{m: tinyLM(false, false, "")}, Remasker: judge}, o)
	checkOptionError(t, err, "remasking_model")
	// a token classifier that reads fewer ids than the LM produces
	small := tinyClassifier(2)
	small.Config.VocabSize = 5
	_, err = newGeneration(Models{LM: &fakeNet{m: tinyLM(false, false, "")}, Remasker: &fakeNet{m: small}}, o)
	checkOptionError(t, err, "remasking_model")
}

func TestThresholdCritic(t *testing.T) {
	// threshold = 1 - .5 = .5 = step.Sigmoid(0): a logit of exactly 0 is not selected.
	logits := []float32{0, 0.001, -0.001, 3, 0, -5, 0.01, 0}
	m := tinyLM(true, false, "")
	f := &fakeNet{m: m, logits: func(row []int32, t int) []float32 { return oneHot(10, 0, 1) },
		critic: func(row []int32, t int) float32 { return logits[t] }}
	o := baseOpts()
	o.ScheduleMode, o.Remasking, o.Iterations = ScheduleThreshold, RemaskCritic, 2
	o.RandomnessStrength = 0.7 // ignored in threshold mode, with a warning
	g := newGen(t, Models{LM: f}, o)
	if len(g.res.Warnings) != 1 || !strings.Contains(g.res.Warnings[0], "randomness_strength") {
		t.Fatalf("warnings %q", g.res.Warnings)
	}
	pred := ids("abcdefgh")
	sel, minW, stop, err := g.remask(context.Background(), 0, pred, 0.5)
	if err != nil || stop {
		t.Fatal(err, stop)
	}
	if !eqInts(sel[0], []int{1, 3, 6}) || !approx(minW, step.Sigmoid(0.001), 1e-9) {
		t.Fatalf("selected %v minW %v, want [1 3 6] %v", sel[0], minW, step.Sigmoid(0.001))
	}
	// a ratio of 0 -> threshold 1: nothing can exceed it -> stop
	sel, minW, stop, _ = g.remask(context.Background(), 0, pred, 0)
	if !stop || sel != nil || !math.IsNaN(minW) {
		t.Fatalf("threshold 1: sel %v minW %v stop %v, want early stop", sel, minW, stop)
	}
	// k is not used in threshold mode: ratio .05 (k = 0) still selects by wrongness
	sel, _, stop, _ = g.remask(context.Background(), 0, pred, 0.05)
	if stop || !eqInts(sel[0], []int{3}) { // step.Sigmoid(3) = .9526 > .95
		t.Fatalf("threshold .95: sel %v stop %v, want [3]", sel, stop)
	}
}

// TestThresholdEarlyStop: nothing qualifies in the whole batch -> the
// generation stops with that prediction, IterationsRun is smaller and the
// last record has [].
func TestThresholdEarlyStop(t *testing.T) {
	m := tinyLM(true, false, "")
	V := m.Config.VocabSize
	// row 0 predicts "bcdefg", row 1 "cdefgh"
	f := &fakeNet{m: m, rowLogits: func(b int, row []int32, t int) []float32 { return oneHot(V, (t+1+b)%8, 6) }}
	for _, oneRow := range []bool{false, true} {
		// in the oneRow case, position 3 of row 1 (which starts with c) qualifies
		f.critic = func(row []int32, t int) float32 {
			if oneRow && row[0] == idC && t == 3 {
				return 4
			}
			return -10
		}
		f.encodes = 0
		o := baseOpts()
		o.NumSamples, o.SequenceLength, o.ScheduleMode, o.Record = 2, 6, ScheduleThreshold, true
		o.MaskingRatios = []float64{0.9, 0.5, 0.5, 0.5}
		var evs []Event
		res := generate(t, Models{LM: f}, o, func(ev *Event) { evs = append(evs, *ev) })
		if !oneRow {
			if res.IterationsRun != 1 || len(evs) != 1 || !evs[0].EarlyStop || evs[0].Remasked != nil {
				t.Fatalf("run %d events %d stop %v", res.IterationsRun, len(evs), evs[0].EarlyStop)
			}
			for b, want := range []string{"bcdefg", "cdefgh"} {
				if s := str(res.Samples[b].Tokens); s != want {
					t.Fatalf("row %d: %s, want the first prediction %s", b, s, want)
				}
				if r := res.Iterations[b]; len(r) != 1 || r[0].RemaskedIndices == nil || len(r[0].RemaskedIndices) != 0 {
					t.Fatalf("records %+v", r)
				}
			}
			if f.encodes != 2 { // predict + critic of iteration 0
				t.Fatalf("encodes %d, want 2", f.encodes)
			}
			continue
		}
		// one row qualifies: no stop; row 0 remasks nothing, row 1 position 3
		if res.IterationsRun != 4 || evs[0].EarlyStop || len(evs[0].Remasked[0]) != 0 || !eqInts(evs[0].Remasked[1], []int{3}) {
			t.Fatalf("run %d stop %v remasked %v", res.IterationsRun, evs[0].EarlyStop, evs[0].Remasked)
		}
	}
}

// TestThresholdRandomFallsBack: random has no wrongness; threshold mode
// falls back to the ratio schedule with a warning.
func TestThresholdRandomFallsBack(t *testing.T) {
	m := tinyLM(false, false, "")
	V := m.Config.VocabSize
	f := &fakeNet{m: m, logits: func(row []int32, t int) []float32 { return oneHot(V, t%8, 6) }}
	o := baseOpts()
	o.SequenceLength, o.ScheduleMode, o.Remasking, o.MaskingRatios = 10, ScheduleThreshold, RemaskRandom, []float64{1, 0.3, 0.6}
	o.RandomnessStrength = 0.5 // no second warning: random ignores it anyway
	var masked []int
	res := generate(t, Models{LM: f}, o, func(ev *Event) { masked = append(masked, ev.Masked) })
	if len(res.Warnings) != 1 || !strings.Contains(res.Warnings[0], "falls back to the ratio") {
		t.Fatalf("warnings %q", res.Warnings)
	}
	if !eqInts(masked, []int{10, 3, 6}) {
		t.Fatalf("masked per iteration %v, want [10 3 6]", masked)
	}
}

// TestStrategyNames pins the option names (Remask*) to internal/step's
// strategies, which number remask.wgsl's: every name but auto parses to a
// strategy whose String is the name, every strategy has a name, and an
// unknown name or number is an error, never a silent critic.
func TestStrategyNames(t *testing.T) {
	names := []string{RemaskCritic, RemaskCalibrated, RemaskSelf, RemaskRandom, RemaskModel}
	seen := map[step.Strategy]bool{}
	for _, n := range names {
		s, err := step.ParseStrategy(n)
		if err != nil || s.String() != n {
			t.Errorf("option %q: step strategy %v, %v", n, s, err)
		}
		seen[s] = true
	}
	for _, s := range step.Strategies {
		if !seen[s] {
			t.Errorf("step strategy %v (%d) has no Remask* option name", s, uint32(s))
		}
	}
	if _, err := step.ParseStrategy(RemaskAuto); err == nil {
		t.Error("auto parsed as a strategy; it must be resolved first")
	}
	// An unknown strategy reaching the remask step is an error.
	o := baseOpts()
	o.SequenceLength, o.Remasking = 2, RemaskSelf
	g := newGen(t, Models{LM: &fakeNet{m: newLM(lmSpec{})}}, o)
	g.remasking = step.Strategy(len(step.Strategies))
	if _, _, _, err := g.remask(context.Background(), 0, ids("cd"), 0.5); err == nil || !strings.Contains(err.Error(), "unknown remasking strategy") {
		t.Fatalf("remask with strategy %v: %v, want an unknown-strategy error", g.remasking, err)
	}
}
