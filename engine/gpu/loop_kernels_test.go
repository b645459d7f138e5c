package gpu

import (
	"context"
	"fmt"
	"math"
	"sort"
	"testing"

	"github.com/remask/remask/engine/cpu"
	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/engine/rng"
	"github.com/remask/remask/internal/step"
	"github.com/remask/remask/shaders"
)

// The device loop's own kernels (loop.go) against internal/step, one
// harness entry each (loop_harness_test.go): select.wgsl, remask.wgsl,
// waveplan.wgsl, stats.wgsl and sample.wgsl's fill mode
// against the step the host loop runs (waveplan.wgsl's indirect arguments
// against engine/gpu's grid()), and samplerwave.wgsl against the sampler
// head of the CPU backend, of the unfused GPU kernels and of a float64
// oracle of its formula, and its draws against the host loop's. The ops
// are built as loop.go builds them (the same pipelines, bind kinds and
// grids). loop_test.go compares the whole loop; BenchmarkSamplingKernels
// (loop_kernels_bench_test.go) times each kernel.

func TestLoopKernels(t *testing.T) { runKernelCases(t, loopKernelCases) }

// TestSamplerWaveLimits pins the sizes checkLoop and sampleTokens refuse
// beyond to the kernels' workgroup arrays.
func TestSamplerWaveLimits(t *testing.T) {
	for _, c := range []struct {
		file, name string
		want       int
	}{{"samplerwave.wgsl", "MAXC", samplerMaxC}, {"samplerwave.wgsl", "HLEN", 2 * samplerMaxC},
		{"samplerwave.wgsl", "MAXV", sampleMaxV}, {"sample.wgsl", "MAXV", sampleMaxV}} {
		if err := shaders.CheckConst(c.file, c.name, uint64(c.want)); err != nil {
			t.Error(err)
		}
	}
	// samplerwave.wgsl's own sizes: a thread holds PER = MAXC / WG
	// elements of a C-vector (WG divides MAXC), and matvec's partial sums
	// (4 floats a thread) fit into the half of H they use (MAXC >= 4·WG).
	k := map[string]uint64{}
	for _, name := range []string{"WG", "MAXC"} {
		v, err := shaders.Const("samplerwave.wgsl", name)
		if err != nil {
			t.Fatal(err)
		}
		k[name] = v
	}
	if k["MAXC"]%k["WG"] != 0 || k["MAXC"] < 4*k["WG"] {
		t.Errorf("samplerwave.wgsl: WG %d, MAXC %d: want MAXC a multiple of WG and >= 4·WG", k["WG"], k["MAXC"])
	}
}

// rowsOf is B rows of each T.
func rowsOf(B int, Ts ...int) []shape {
	var s []shape
	for _, T := range Ts {
		s = append(s, shape{B, T})
	}
	return s
}

var loopKernelCases = []kernelCase{
	// T: one position, primes, around the 256-thread workgroup, the
	// standard shape's 1024 and more than one position per thread.
	{name: "select", shapes: rowsOf(4, 1, 7, 97, 255, 257, 1024, 4099), check: checkSelectRandom},
	{name: "select/signed-zero", shapes: rowsOf(1, 16, 257), check: checkSelectSignedZero},
	{name: "select/nan-wrongness", shapes: rowsOf(2, 300), check: checkSelectNaN},
	{name: "select/nan-score", shapes: rowsOf(3, 1, 300), check: checkSelectNaNScore},
	{name: "remask", shapes: []shape{{1, 1}, {3, 37}, {2, 64}, {5, 97}}, tol: 1e-5, check: checkRemask},
	{name: "wave", shapes: rowsOf(6, 1, 7, 50, 257, 1000), check: checkWaveVariants},
	{name: "wave/bootstrap", shapes: rowsOf(4, 1, 50, 1000), check: checkWaveBootstrap},
	{name: "wave/round-halves", shapes: rowsOf(5, 4), check: checkWaveRoundHalves},
	{name: "wave/rounding-edges", shapes: rowsOf(4, 3), check: checkWaveRoundingEdges},
	// B rows of 8 positions, T: n_embd (bias on odd-looking widths).
	{name: "sampler-wave", shapes: []shape{{1, 64}, {2, 102}, {3, 200}, {2, 1024}}, tol: 1e-4, check: checkSamplerWave},
	// B: the vocabulary size V, T: n_embd C; samplerwave.wgsl's split of
	// the two products (quads of outputs x chunks of a multiple of BATCH =
	// 16 inputs) on each: one input and one output (a chunk shorter than a
	// batch), the flagship 67 x 384 (mlp.3: 96 quads x 2 chunks of 192,
	// the head 17 x 12 of 32), 67 x 192 (48 x 4 of 48, 17 x 12 of 16), C
	// and V not multiples of 4 (padded rows; 102: 7 chunks, the last of 6),
	// C = 1021 and V = 1024 (256 quads, one chunk, its last batch partial),
	// 37 x 1000 (21 chunks of the head, the last shorter) and a head of one
	// quad in 16 chunks.
	{name: "sampler-wave/split", shapes: []shape{{1, 1}, {5, 8}, {67, 384}, {67, 192}, {23, 102}, {300, 13}, {1024, 1021}, {37, 1000}, {2, 255}},
		tol: 1e-4, check: checkSamplerWaveSplit},
	{name: "stats", shapes: []shape{{8, 1}, {8, 7}, {8, 300}, {2, 1000}}, tol: 1e-4, check: checkStats},
	// T: the vocabulary size V.
	{name: "sample/fill", shapes: rowsOf(3, 5, 67, 300), check: checkSampleFill},
}

// ---------------------------------------------------------------- select

type selectInput struct {
	B, T       int
	pred, prot []uint32
	sw         []float32 // score (B·T), then wrongness (B·T)
}

// runSelect runs select.wgsl as remaskOps builds it and compares the next
// input and the counters with step.Selection.Select.
func runSelect(k *kernelRun, in selectInput, how step.Selection, mask uint32) {
	k.Helper()
	B, T, N := in.B, in.T, in.B*in.T
	sp := shaders.SelectParams{T: uint32(T), B: uint32(B), K: uint32(how.K), Mask: mask, Threshold: shaders.SelectRatio}
	if how.Threshold {
		sp.Threshold, sp.Thr = shaders.SelectThreshold, float32(how.Thr)
		how.Thr = float64(sp.Thr) // the reference compares with the f32 threshold the kernel sees
	}
	keys, tok := k.out(N, nil), k.out(N, fill(N, 0x12345678))
	cntInit := make([]uint32, cntWords+B)
	cntInit[shaders.CountMinWrong] = noID
	cnt := k.out(cntWords+B, cntInit)
	// ERR: sample.wgsl's word (ErrDraw) must stay as it was.
	const drawWord = 0x13579bdf
	errInit := []uint32{drawWord, drawWord, noID, noID}
	errInit[shaders.ErrScore] = noID
	errW := k.out(len(errInit), errInit)
	o := op{name: "remask select", pl: k.pipeline("select.wgsl", selectKinds), params: shaders.Bytes(sp),
		binds: []binding{k.in(in.pred), k.in(in.prot), k.inF(in.sw), keys.bind(), tok.bind(), cnt.bind(), errW.bind()}, wg: k.d.grid(uint64(B))}
	got := k.exec([]op{o}, tok, cnt, keys, errW)
	gTok, gCnt, gErr := got[0], got[1], got[3]

	score, wrong := f64(in.sw[:N]), f64(in.sw[N:])
	rows, _, total := how.Select(B, T, int32(mask), int32s(in.pred), bools(in.prot), score, wrong)
	wTok := append([]uint32(nil), in.pred...)
	// The device's smallest wrongness skips NaN; step's (math.Min) turns
	// NaN when one selected wrongness is NaN. They differ only when some
	// but not all selected positions have a NaN wrongness (a damaged model).
	minW, minOK := float32(0), false
	for b, ts := range rows {
		for _, t := range ts {
			p := b*T + t
			wTok[p] = mask
			if w := in.sw[N+p]; !math.IsNaN(float64(w)) && (!minOK || w < minW) {
				minW, minOK = w, true
			}
		}
	}
	what := fmt.Sprintf("k %d, threshold %v (%v)", how.K, how.Threshold, how.Thr)
	// ERR[ErrScore]: the smallest candidate position whose score (or, in
	// threshold mode, score or wrongness) is not finite.
	wErr := append([]uint32(nil), errInit...)
	nonFinite := func(x float32) bool { return math.IsNaN(float64(x)) || math.IsInf(float64(x), 0) }
	for p := 0; p < N; p++ {
		if in.pred[p] == mask || in.prot[p] != 0 {
			continue
		}
		if nonFinite(in.sw[p]) || how.Threshold && nonFinite(in.sw[N+p]) {
			wErr[shaders.ErrScore] = uint32(p)
			break
		}
	}
	for i := range wErr {
		if gErr[i] != wErr[i] {
			k.Errorf("%s: ERR[%d] = %#x, want %#x (ERR[%d]: the first candidate with a non-finite value; the others untouched)", what, i, gErr[i], wErr[i], shaders.ErrScore)
		}
	}
	for p := range wTok {
		if gTok[p] != wTok[p] {
			k.Fatalf("%s: TOK[%d] (row %d, position %d) = %d, want %d (pred %d, protected %d, score %v, wrongness %v; row selects %d)",
				what, p, p/T, p%T, gTok[p], wTok[p], in.pred[p], in.prot[p], in.sw[p], in.sw[N+p], len(rows[p/T]))
		}
	}
	for b, ts := range rows {
		if int(gCnt[shaders.CountRows+b]) != len(ts) {
			k.Errorf("%s: CNT[rows+%d] = %d, want %d", what, b, gCnt[shaders.CountRows+b], len(ts))
		}
	}
	if int(gCnt[shaders.CountTotal]) != total {
		k.Errorf("%s: CNT[total] = %d, want %d", what, gCnt[shaders.CountTotal], total)
	}
	if gCnt[2] != 0 || gCnt[3] != 0 {
		k.Errorf("%s: CNT[2], CNT[3] = %#x, %#x: written", what, gCnt[2], gCnt[3])
	}
	switch kw := gCnt[shaders.CountMinWrong]; {
	case !minOK && kw != noID:
		k.Errorf("%s: CNT[min] = %#x (%v), want untouched: no selected position has a wrongness", what, kw, keyF32(kw))
	case minOK && math.Float32bits(keyF32(kw)) != math.Float32bits(minW):
		k.Errorf("%s: CNT[min] decodes to %v, want the smallest selected wrongness %v", what, keyF32(kw), minW)
	}
}

// checkSelectRandom: rows of four kinds (row b%4): 0 scores on five values
// (many exact ties), 1 continuous scores with ±Inf, 3e38 and repeated
// values and some NaN wrongness, 2 mostly non-candidates with one score, 3
// no candidates at all. Wrongness on a 0.1 grid, equal to the thresholds.
func checkSelectRandom(k *kernelRun, s shape) {
	const mask = 65
	B, T, N := s.B, s.T, s.B*s.T
	r := k.r
	in := selectInput{B: B, T: T, pred: make([]uint32, N), prot: make([]uint32, N), sw: make([]float32, 2*N)}
	for b := 0; b < B; b++ {
		for t := 0; t < T; t++ {
			p := b*T + t
			in.pred[p] = uint32(r.IntN(mask))
			if r.IntN(5) == 0 || (b%4 == 2 && r.IntN(10) != 0) {
				in.pred[p] = mask
			}
			if r.IntN(10) == 0 {
				in.prot[p] = 1
			}
			if b%4 == 3 {
				if r.IntN(2) == 0 {
					in.pred[p] = mask
				} else {
					in.prot[p] = 1
				}
			}
			var sc float32
			switch b % 4 {
			case 0:
				sc = float32(r.IntN(5)-2) * 0.25
			case 1:
				sc = float32(3 * r.NormFloat64())
				switch r.IntN(20) {
				case 0:
					sc = float32(math.Inf(1))
				case 1:
					sc = float32(math.Inf(-1))
				case 2:
					sc = 3e38
				}
				if t > 0 && r.IntN(3) == 0 {
					sc = in.sw[b*T+r.IntN(t)] // an earlier score again
				}
			case 2:
				sc = 1
			}
			in.sw[p] = sc
			w := float32(r.IntN(11)) / 10
			if b%4 == 1 && r.IntN(10) == 0 {
				w = float32(math.NaN())
			}
			in.sw[N+p] = w
		}
	}
	seen := map[int]bool{}
	for _, kk := range []int{0, 1, 2, T / 3, T / 2, T - 1, T, T + 5} {
		if !seen[kk] {
			seen[kk] = true
			runSelect(k, in, step.Selection{K: kk}, mask)
		}
	}
	for _, thr := range []float64{0.5, 0.3, 0, -1, 2} {
		runSelect(k, in, step.Selection{Threshold: true, Thr: thr}, mask)
	}
}

// checkSelectSignedZero: scores +0 and -0 are equal to step's sort (float64
// comparison), so ties go to the lower position; an order-preserving key
// must not rank +0 above -0.
func checkSelectSignedZero(k *kernelRun, s shape) {
	T := s.T
	in := selectInput{B: 1, T: T, pred: make([]uint32, T), prot: make([]uint32, T), sw: make([]float32, 2*T)}
	for p := 0; p < T; p++ {
		in.pred[p] = uint32(p % 60)
		in.sw[p] = math.Float32frombits(uint32(1-p%2) << 31) // -0, +0, -0, ...
		in.sw[T+p] = 0.5
	}
	runSelect(k, in, step.Selection{K: T / 2}, 65)
}

// checkSelectNaN: every wrongness NaN (as the random strategy writes them),
// of either sign: the smallest-wrongness counter must stay untouched.
func checkSelectNaN(k *kernelRun, s shape) {
	N := s.B * s.T
	in := selectInput{B: s.B, T: s.T, pred: make([]uint32, N), prot: make([]uint32, N), sw: make([]float32, 2*N)}
	for p := 0; p < N; p++ {
		in.pred[p] = uint32(k.r.IntN(65))
		in.sw[p] = float32(k.r.Float64())
		in.sw[N+p] = math.Float32frombits(0x7fc00000 | uint32(p%2)<<31)
	}
	runSelect(k, in, step.Selection{K: s.T / 3}, 65)
	runSelect(k, in, step.Selection{Threshold: true, Thr: -1}, 65)
}

// checkSelectNaNScore: a NaN score (damaged critic weights) at one
// candidate of the last row, NaN and Inf scores before it only at
// non-candidates ([MASK] predictions, protected positions): ERR[ErrScore]
// must name exactly that candidate (runSelect checks the word), in ratio
// and threshold mode; then a NaN wrongness alone, which only threshold
// mode reads.
func checkSelectNaNScore(k *kernelRun, s shape) {
	const mask = 65
	B, T, N := s.B, s.T, s.B*s.T
	nan := float32(math.NaN())
	in := selectInput{B: B, T: T, pred: make([]uint32, N), prot: make([]uint32, N), sw: make([]float32, 2*N)}
	for p := 0; p < N; p++ {
		in.pred[p] = uint32(k.r.IntN(mask))
		in.sw[p] = float32(k.r.Float64())
		in.sw[N+p] = float32(k.r.Float64())
	}
	bad := (B-1)*T + T/2
	for p := (B - 1) * T; p < bad; p++ {
		switch p % 3 {
		case 0:
			in.pred[p], in.sw[p] = mask, nan
		case 1:
			in.prot[p], in.sw[p] = 1, float32(math.Inf(1))
		default:
			in.pred[p], in.sw[N+p] = mask, nan
		}
	}
	in.sw[bad] = nan
	if bad+1 < N {
		in.sw[bad+1] = float32(math.Inf(-1))
	}
	runSelect(k, in, step.Selection{K: T / 3}, mask)
	runSelect(k, in, step.Selection{Threshold: true, Thr: 0.5}, mask)
	in.sw[bad], in.sw[N+bad] = 0.25, nan
	runSelect(k, in, step.Selection{K: T / 3}, mask)
	runSelect(k, in, step.Selection{Threshold: true, Thr: 0.5}, mask)
}

// ---------------------------------------------------------------- remask

// checkRemask runs remask.wgsl for every strategy (and a one-class
// classifier) at r = 0 and 0.3 against step.Scoring.Scores. The critic
// logits include the calibration's bucket edges: sigmoid 0.5 exactly,
// saturation, infinities and logits whose 100·sigmoid lands on an edge,
// where f32 may pick the neighbouring bucket.
func checkRemask(k *kernelRun, s shape) {
	const V, K, it = 67, 3, 5
	seed := uint64(0x9e3779b97f4a7c15)
	T, N := s.T, s.B*s.T
	r := k.r
	pred := make([]uint32, N)
	for i := range pred {
		pred[i] = uint32(r.IntN(V))
	}
	logits := randVec(r, N*V, 3)
	if N > 7 { // a row with one dominant logit (q ≈ 1)
		for v := 0; v < V; v++ {
			logits[7*V+v] = -20
		}
		logits[7*V+int(pred[7])] = 20
	}
	edges := []float32{0, 30, -30, 100, -100, float32(math.Inf(1)), float32(math.Inf(-1)), 88, -88, 1e-3, -1e-3}
	for i := 1; i < 100; i += 7 {
		x := float64(i) / 100
		edges = append(edges, float32(math.Log(x/(1-x))))
	}
	crit := randVec(r, N, 3)
	copy(crit, edges)
	cls := randVec(r, N*K, 2)
	for i := 0; i < N; i++ {
		cls[i*K+1] = crit[(i+len(edges))%N]
	}
	table := make([]float32, 100)
	for i := range table {
		table[i] = float32(r.Float64())
	}
	table[0], table[99], table[50], table[73], table[3] = 0, -0.5, 1e-9, 1e-6, 2e-6 // the 1e-6 floor
	predB, logitsB, tableB := k.in(pred), k.inF(logits), k.inF(table)
	type variant struct {
		strategy step.Strategy
		k        int // classifier classes (model)
		aux      []float32
	}
	vs := []variant{{step.Critic, 0, crit}, {step.Calibrated, 0, crit}, {step.Self, 0, crit}, {step.Random, 0, crit},
		{step.Model, K, cls}, {step.Model, 1, crit}}
	for _, v := range vs {
		for _, strength := range []float64{0, 0.3} {
			rp := shaders.RemaskParams{N: uint32(N), T: uint32(T), V: V, Strategy: uint32(v.strategy), Iteration: it,
				SeedLo: uint32(seed), SeedHi: uint32(seed >> 32), R: float32(strength), Stride: 1}
			if v.strategy == step.Model {
				rp.Stride, rp.Col = uint32(v.k), uint32(step.ModelColumn(v.k))
			}
			sw := newCanaryBuf(k.T, k.d, 2*N, nil)
			o := op{name: "remask scores", pl: k.pipeline("remask.wgsl", remaskKinds), params: shaders.Bytes(rp),
				binds: []binding{predB, logitsB, k.inF(v.aux), tableB, sw.bind()}, wg: k.d.grid(uint64(ceilDiv(N, 64)))}
			got := asF32(k.exec([]op{o}, sw)[0])

			sc := step.Scoring{Strategy: v.strategy, Seed: seed, Iteration: it, T: T, R: strength,
				Logits: logits, V: V, Critic: crit, Table: f64(table), Class: v.aux, K: v.k}
			score, wrong := make([]float64, N), make([]float64, N)
			if err := sc.Scores(int32s(pred), score, wrong); err != nil {
				k.Fatal(err)
			}
			for p := 0; p < N; p++ {
				gs, gw := got[p], got[N+p]
				ok := k.near(gs, score[p]) && k.near(gw, wrong[p])
				if !ok && v.strategy == step.Calibrated {
					if as, aw, edge := neighbourBucket(table, crit[p], strength, seed, it, p, T); edge && k.near(gs, as) && k.near(gw, aw) {
						k.Logf("%v position %d: critic %v sits on a calibration bucket edge; the GPU took the neighbouring bucket", v.strategy, p, crit[p])
						ok = true
					}
				}
				if !ok {
					k.Fatalf("%v (k %d, r %v) position %d: score %v wrongness %v, want %v and %v (±%g)", v.strategy, v.k, strength, p, gs, gw, score[p], wrong[p], k.tol)
				}
			}
		}
	}
}

// neighbourBucket is the calibrated score and wrongness of the bucket next
// to step.CalibratedBucket's when 100·sigmoid(logit) is within rounding of
// a bucket edge (edge), where the kernel's f32 may pick either.
func neighbourBucket(table []float32, logit float32, strength float64, seed uint64, it, p, T int) (score, wrong float64, edge bool) {
	x := 100 * step.Sigmoid(float64(logit))
	e := math.Round(x)
	if math.Abs(x-e) >= 1e-4 {
		return 0, 0, false
	}
	other := int(e) // the bucket above the edge when x < e, else the one below
	if x >= e {
		other = int(e) - 1
	}
	b, t := uint32(p/T), uint32(p%T)
	u1 := float64(rng.Uniform(seed, b, uint32(it), t, rng.RemaskNoise))
	u2 := float64(rng.Uniform(seed, b, uint32(it), t, rng.RemaskLuck))
	score, wrong = step.CalibratedScore(f64(table), min(max(other, 0), 99), step.ClampStrength(strength), u1, u2)
	return score, wrong, true
}

// ---------------------------------------------------------------- wave

type waveScenario struct {
	step.Wave
	pred   []uint32
	logits []float32
	cap    bool // the wave cap: at most T waves
	slots  int  // waves encoded: the waves planned plus slots (< 0: too few)
	maxd   int  // maxComputeWorkgroupsPerDimension (0: 65535)
}

// waveRef runs the host loop's fill with step.Wave.Plan, wave after wave
// (engine/sampler's wavefront(), the wave cap included), and returns the
// wave (1, 2, ...) of every position, 0 for none.
func waveRef(s *waveScenario) (waves []int, W int) {
	pred := int32s(s.pred)
	waves = make([]int, len(pred))
	for w := 1; ; w++ {
		if s.cap && w > s.T {
			return waves, W
		}
		pos, _, _, masked := s.Plan(pred, s.logits)
		if masked == 0 {
			return waves, W
		}
		for _, p := range pos {
			waves[p] = w
			pred[p] = s.Mask + 1 // filled: any id but the mask
		}
		W = w
	}
}

// runWave runs waveplan.wgsl's three phases as planOps records them, twice
// (the second iteration finds the counters the scan reset), and compares
// each slot's count, list and indirect arguments and the header with the
// host loop's waves (waveRef).
func runWave(k *kernelRun, s *waveScenario) {
	k.Helper()
	N := s.B * s.T
	ref, W := waveRef(s)
	S := max(W+s.slots, 0)
	maxd := s.maxd
	if maxd == 0 {
		maxd = 65535
	}
	fills := make([]uint32, N+1)
	for i := range fills {
		fills[i] = uint32(step.FillCount(i, s.Ratio))
	}
	ws := k.out(shaders.WaveStateWords(N), make([]uint32, shaders.WaveStateWords(N)))
	scr, args, list := k.out(2*N, nil), k.out(shaders.WaveArgsWords*N, nil), k.out(N, nil)
	binds := []binding{k.in(s.pred), k.inF(s.logits), scr.bind(), ws.bind(), k.in(fills), args.bind(), list.bind()}
	var ops []op
	for it := 0; it < 2; it++ {
		for _, ph := range []struct {
			phase uint32
			wg    [3]uint32
		}{{shaders.WavePlan, k.d.grid(uint64(s.B))}, {shaders.WaveScan, [3]uint32{1, 1, 1}}, {shaders.WaveList, k.d.grid(uint64(ceilDiv(N, 256)))}} {
			wp := shaders.WavePlanParams{B: uint32(s.B), T: uint32(s.T), V: uint32(s.V), Mask: uint32(s.Mask), Phase: ph.phase,
				Global: b2u(s.Global), All: b2u(s.All), Cap: b2u(s.cap), Slots: uint32(S), Iteration: uint32(it),
				Maxd: uint32(maxd)}
			wg := ph.wg
			if ph.phase == shaders.WavePlan && s.Global {
				wg = [3]uint32{1, 1, 1}
			}
			ops = append(ops, op{name: "wave plan", pl: k.pipeline("waveplan.wgsl", wavePlanKinds), params: shaders.Bytes(wp), binds: binds, wg: wg})
		}
	}
	got := k.exec(ops, ws, args, list)
	gws, gargs, gl := got[0], got[1], got[2]
	over := uint32(0)
	if W > S {
		over = 1 // iteration 0 + 1
	}
	hdr := []uint32{0, 2 * uint32(min(W, S)), over, uint32(W), 0, 0, 0, 0} // tickets reset, no wave ran
	if fmt.Sprint(gws[:shaders.WaveCounts]) != fmt.Sprint(hdr) {
		k.Errorf("WS header (max, total, over, last, tickets, ...) = %v, want %v (W = %d waves, %d slots)", gws[:shaders.WaveCounts], hdr, W, S)
	}
	for w := 1; w <= N; w++ {
		if c := gws[shaders.WaveCounts+w]; c != 0 {
			k.Fatalf("wave %d's counter %d was not reset by the scan", w, c)
		}
	}
	slot0 := shaders.WaveSlotAt(N)
	off, before := 0, 0
	for sl := 0; sl < S; sl++ {
		var want []int
		if sl < W {
			for p, w := range ref {
				if w == sl+1 {
					want = append(want, p)
				}
			}
		}
		rec := gws[slot0+shaders.WaveSlotWords*sl:]
		n, first := int(rec[0]), int(rec[1])
		if n != len(want) || first != off || int(rec[2]) != before {
			k.Fatalf("slot %d: (count, first, workgroups before) = %v, want (%d, %d, %d)", sl, rec[:3], len(want), off, before)
		}
		gotPos := make([]int, n)
		for i := range gotPos {
			e := gl[first+i]
			p := int(e & shaders.WaveListPos)
			gotPos[i] = p
			// The flags: a row neighbour in the same wave.
			left := p%s.T > 0 && ref[p-1] == sl+1
			right := p%s.T < s.T-1 && ref[p+1] == sl+1
			if e&^shaders.WaveListPos != b2u(left)*shaders.WaveListLeft|b2u(right)*shaders.WaveListRight {
				k.Fatalf("wave %d: list entry %#x of position %d: flags want left %v, right %v", sl+1, e, p, left, right)
			}
		}
		sort.Ints(gotPos)
		if fmt.Sprint(gotPos) != fmt.Sprint(want) {
			k.Fatalf("wave %d lists %v, want %v", sl+1, gotPos, want)
		}
		off += n
		// engine/gpu's grid(), with this maxd (0 workgroups: an empty dispatch).
		grid := [3]uint32{uint32(n), 1, 1}
		if n > maxd {
			y := (n + maxd - 1) / maxd
			grid = [3]uint32{uint32((n + y - 1) / y), uint32(y), 1}
		}
		if maxd == 65535 && n > 0 && grid != k.d.grid(uint64(n)) {
			k.Fatalf("n = %d: this test's grid %v, engine/gpu grid() %v", n, grid, k.d.grid(uint64(n)))
		}
		before += int(grid[0] * grid[1])
		wantArgs := grid[:]
		a := gargs[shaders.WaveArgsWords*sl : shaders.WaveArgsWords*(sl+1)]
		if fmt.Sprint(a) != fmt.Sprint(wantArgs) {
			k.Fatalf("slot %d (n = %d): ARGS = %v, want %v", sl, n, a, wantArgs)
		}
	}
	for i := shaders.WaveArgsWords * S; i < len(gargs); i++ {
		if gargs[i] != canary {
			k.Fatalf("ARGS word %d written past the %d slots", i, S)
		}
	}
	k.Logf("%d waves, %d slots", W, S)
}

const waveV, waveMask = 11, 9

// waveRows makes B rows of T tokens of the given kinds (row b: kinds[b %
// len]) and logits, on a 0.5 grid (many equal maxima: ties) where tied[b %
// len].
func waveRows(k *kernelRun, B, T int, kinds []string, tied []bool) *waveScenario {
	r := k.r
	s := &waveScenario{Wave: step.Wave{B: B, T: T, V: waveV, Mask: waveMask, Ratio: 0.1}}
	for b := 0; b < B; b++ {
		v := make([]uint32, T)
		for i := range v {
			v[i] = uint32(r.IntN(waveV))
			if v[i] == waveMask {
				v[i] = 10
			}
		}
		switch kinds[b%len(kinds)] {
		case "all":
			v = fill(T, waveMask)
		case "rand":
			for i := range v {
				if r.IntN(2) == 0 {
					v[i] = waveMask
				}
			}
		case "runs": // long masked runs: only their ends are eligible
			for i := 0; i < T; {
				n := 1 + r.IntN(12)
				if r.IntN(3) != 0 {
					copy(v[i:min(i+n, T)], fill(n, waveMask))
				}
				i += n
			}
		case "one":
			v[r.IntN(T)] = waveMask
		}
		s.pred = append(s.pred, v...)
		for i := 0; i < T*waveV; i++ {
			x := r.NormFloat64()
			if tied[b%len(tied)] {
				x = math.Round(2*x) / 2
			}
			s.logits = append(s.logits, float32(x))
		}
	}
	return s
}

// checkWaveVariants: rows of every kind, with every switch of the plan,
// more slots than waves (empty ones) and fewer (the overflow record).
func checkWaveVariants(k *kernelRun, sh shape) {
	base := waveRows(k, sh.B, sh.T, []string{"all", "rand", "none", "all", "runs", "one"}, []bool{false, false, false, true, false, false})
	for _, v := range []struct {
		name string
		f    func(*waveScenario)
	}{
		{"per-row", func(s *waveScenario) {}},
		{"per-row/empty-slots", func(s *waveScenario) { s.slots = 5 }},
		{"per-row/maxd3", func(s *waveScenario) { s.maxd = 3 }},
		{"per-row/ratio0.5", func(s *waveScenario) { s.Ratio = 0.5 }},
		{"per-row/ratio1", func(s *waveScenario) { s.Ratio = 1 }},
		{"per-row/cap", func(s *waveScenario) { s.cap = true }},
		{"global", func(s *waveScenario) { s.Global = true }},
		{"global/cap", func(s *waveScenario) { s.Global, s.cap = true, true }},
		{"all", func(s *waveScenario) { s.All = true }},
		{"too-few-slots", func(s *waveScenario) { s.slots = -1 }},
		{"no-masks", func(s *waveScenario) {
			s.pred = append([]uint32(nil), s.pred...)
			for i := range s.pred {
				s.pred[i] %= waveMask
			}
		}},
	} {
		c := *base
		v.f(&c)
		k.Run(v.name, func(t *testing.T) { runWave(&kernelRun{T: t, d: k.d, r: k.r, tol: k.tol}, &c) })
	}
}

// checkWaveBootstrap: rows with no eligible position (all masked, or none),
// per row and global, continuous and tied logits.
func checkWaveBootstrap(k *kernelRun, sh shape) {
	base := waveRows(k, sh.B, sh.T, []string{"all", "none", "all", "all"}, []bool{false, false, true, true})
	base.Ratio = 0.01 + 3/float64(sh.T+10)
	for _, v := range []struct {
		name string
		f    func(*waveScenario)
	}{
		{"per-row", func(s *waveScenario) {}},
		{"global", func(s *waveScenario) { s.Global = true }},
		{"global/cap", func(s *waveScenario) { s.Global, s.cap = true, true }},
		{"global/ratio0.3", func(s *waveScenario) { s.Global, s.Ratio = true, 0.3 }},
	} {
		c := *base
		v.f(&c)
		k.Run(v.name, func(t *testing.T) { runWave(&kernelRun{T: t, d: k.d, r: k.r, tol: k.tol}, &c) })
	}
}

// checkWaveRoundHalves: Go's math.Round on max-logit·1024, halves away from
// zero, in rows of n_fill = 1: each row's first two positions round to the
// same value (ties: position 0 wins), while rounding halves to even or
// towards zero, or not rounding at all, makes position 1 win.
func checkWaveRoundHalves(k *kernelRun, sh shape) {
	s := &waveScenario{Wave: step.Wave{B: sh.B, T: sh.T, V: 2, Mask: waveMask, Ratio: 0.1}, pred: fill(sh.B*sh.T, waveMask)}
	for _, m := range [][2]float32{{0.5, 0.75}, {2.5, 2.9}, {-0.75, -0.5}, {-2.9, -2.5}, {0.9, 1.2}}[:sh.B] {
		for _, x := range []float32{m[0], m[1], -5, -5} {
			s.logits = append(s.logits, x/1024, -6)
		}
	}
	runWave(k, s)
}

// checkWaveRoundingEdges: max logits whose ·1024 sits just below a half
// (0.5 - 2^-25) or is an odd integer of 2^23 or more, where f32 floor(x +
// 0.5) rounds the sum before flooring and so differs from Go's math.Round
// (boot_key's first version), and confidences that round to -0 and +0,
// equal in Go's sort (the lower position wins) but not as f32_key's keys
// unless -0 is mapped to +0. n_fill = 1, so the rounding alone decides.
func checkWaveRoundingEdges(k *kernelRun, sh shape) {
	below := float32(0.5 - 1.0/(1<<25)) // 0.49999997: Go rounds x to 0, f32 floor(x + 0.5) = 1
	s := &waveScenario{Wave: step.Wave{B: 4, T: 3, V: 1, Mask: waveMask, Ratio: 0.1, Embeddings: true}, pred: fill(12, waveMask), logits: []float32{
		below / 1024, 0.5 / 1024, -1, // Go: 0, 1/1024 -> position 1
		-below / 1024, -0.75 / 1024, -1, // Go: -0, -1/1024 -> position 0 (here both agree)
		8192 + 1.0/1024, 8192 + 2.0/1024, -1, // ·1024 = 2^23 + 1 (odd), 2^23 + 2 -> position 1
		-0.3 / 1024, 0.3 / 1024, -1, // Go: -0 and +0, equal -> position 0
	}}
	runWave(k, s)
}

// ---------------------------------------------------------------- samplerwave

// samplerWaveRef is samplerwave.wgsl's formula in float64 on its tables
// (hw: (·, C) rows; tab: loop.go's samplerLayout): the logits of position
// pos with neighbour ids left and right (-1: none).
func samplerWaveRef(hw, tab []float32, C, V, pos, left, right int, eps float64) []float64 {
	l := newSamplerLayout(C, V)
	lr, w3, wo, vec := tab, tab[l.w3:], tab[l.wo:], tab[l.vec:]
	ln := func(z []float64, w, b []float32) {
		var mean, v float64
		for _, x := range z {
			mean += x / float64(len(z))
		}
		for _, x := range z {
			v += (x - mean) * (x - mean) / float64(len(z))
		}
		for c := range z {
			z[c] = (z[c]-mean)/math.Sqrt(v+eps)*float64(w[c]) + float64(b[c])
		}
	}
	silu := func(x float64) float64 { return x / (1 + math.Exp(-x)) }
	y1 := make([]float64, C)
	for c := range y1 {
		x := float64(hw[pos*C+c]) + float64(vec[c])
		if left >= 0 {
			x += float64(lr[left*C+c])
		}
		if right >= 0 {
			x += float64(lr[(V+right)*C+c])
		}
		y1[c] = silu(x)
	}
	ln(y1, vec[C:2*C], vec[2*C:3*C])
	y2 := make([]float64, C)
	for o := range y2 {
		acc := float64(vec[3*C+o])
		for c := 0; c < C; c++ {
			acc += y1[c] * float64(w3[c*l.cq+o])
		}
		y2[o] = silu(acc)
	}
	ln(y2, vec[4*C:5*C], vec[5*C:6*C])
	out := make([]float64, V)
	for v := range out {
		for c := 0; c < C; c++ {
			out[v] += y2[c] * float64(wo[c*l.vq+v])
		}
	}
	return out
}

// samplerWaveRun is one run of samplerwave.wgsl as slotOps records it: a
// wave of len(list) rows (list entries with their LIST_* flags) at slot 1
// of three, so that its workgroups must find it by ticket (slot 0 launched
// 3 workgroups before it; slot 2 is empty), dispatched indirectly with the
// plan's grid, and with DUMP_AT set so that each row's logits come back
// too. pred is the prediction (P positions); the kernel writes the drawn
// ids at the listed positions.
type samplerWaveRun struct {
	C, V, T          int
	hw, tab, excl    binding
	pred             []uint32
	list             []uint32
	embeddings       bool
	temperature, top float64
	eps              float64
	seed             uint64
	it               int
	mask             uint32
	wg               int // the workgroup size, if not the kernel's default
}

// run returns the prediction after the wave, the logits of each row and ERR.
func (w *samplerWaveRun) run(k *kernelRun) (pred []uint32, logits []float32, errw []uint32) {
	k.Helper()
	d := k.d
	P, n := len(w.pred), len(w.list)
	const first, before = 5, 3
	list := append(fill(first, 0xdead), w.list...)
	ws := make([]uint32, shaders.WaveCounts+3*shaders.WaveSlotWords)
	ws[shaders.WaveTicket] = before
	copy(ws[shaders.WaveCounts:], []uint32{before, 0, 0, 0, uint32(n), first, before, 0, 0, uint32(first + n), uint32(before + n), 0})
	wsB := k.out(len(ws), ws)
	capRows := n + 2 // rows >= n must not write their logits
	predB := k.out(P+capRows*w.V, append(append([]uint32(nil), w.pred...), fill(capRows*w.V, 0x7fc00bad)...))
	errB := k.out(4, []uint32{noID, noID, 0, 0})
	p := shaders.SamplerWaveParams{C: uint32(w.C), V: uint32(w.V), T: uint32(w.T), SlotAt: shaders.WaveCounts, Slots: 3, Eps: float32(w.eps),
		Mask: w.mask, Embeddings: b2u(w.embeddings), Iteration: uint32(w.it), Temperature: float32(w.temperature), TopP: float32(w.top),
		SeedLo: uint32(w.seed), SeedHi: uint32(w.seed >> 32)}
	newSamplerLayout(w.C, w.V).params(&p)
	consts := map[string]string{"DUMP_AT": shaders.UintLiteral(P)}
	if w.wg > 0 {
		consts["WG"] = shaders.UintLiteral(w.wg)
	}
	pl, err := d.pipeline("samplerwave.wgsl", consts, samplerWaveKinds)
	if err != nil {
		k.Fatal(err)
	}
	args, err := d.p.newBuffer("test wave args", 4*shaders.WaveArgsWords, usageIndirect)
	if err != nil {
		k.Fatal(err)
	}
	defer args.destroy()
	g := d.grid(uint64(n))
	if err := d.p.write(args, 0, u32Bytes(g[:])); err != nil {
		k.Fatal(err)
	}
	o := op{name: "sampler wave", pl: pl, params: shaders.Bytes(p), ind: args,
		binds: []binding{k.in(list), wsB.bind(), w.hw, w.tab, predB.bind(), w.excl, errB.bind()}}
	got := k.exec([]op{o}, predB, wsB, errB)
	if t := got[1][shaders.WaveTicket]; t != before+uint32(g[0]*g[1]) {
		k.Errorf("WS tickets = %d after the wave, want %d", t, before+g[0]*g[1])
	}
	for i := P + n*w.V; i < len(got[0]); i++ {
		if got[0][i] != 0x7fc00bad {
			k.Fatalf("logits of row %d (>= n = %d) written", (i-P)/w.V, n)
		}
	}
	listed := map[int]bool{}
	for _, e := range w.list {
		listed[int(e&shaders.WaveListPos)] = true
	}
	for q := 0; q < P; q++ {
		if !listed[q] && got[0][q] != w.pred[q] {
			k.Fatalf("position %d (not in the wave) written: %d, was %d", q, got[0][q], w.pred[q])
		}
	}
	return got[0][:P], asF32(got[0][P : P+n*w.V]), got[2]
}

// neighbours are the neighbour ids of list entry e as samplerwave.wgsl must
// use them (-1: none): none outside the row, in zeros mode, where masked or
// where flagged as in the same wave.
func (w *samplerWaveRun) neighbours(e uint32) (pos, left, right int32) {
	p := int(e & shaders.WaveListPos)
	nb := func(q int, inRow bool, flag uint32) int32 {
		if !inRow || !w.embeddings || e&flag != 0 || w.pred[q] == w.mask {
			return -1
		}
		return int32(w.pred[q])
	}
	return int32(p), nb(p-1, p%w.T > 0, shaders.WaveListLeft), nb(p+1, p%w.T < w.T-1, shaders.WaveListRight)
}

// checkSamplerWave runs samplerwave.wgsl, the fused sampler-head wave, on
// a random model (n_embd C = s.T, odd vocabularies, with and without bias)
// against its CPU twins: the logits of every row against engine/cpu's
// SamplerLogits on the CPU backend's hidden state and against the unfused
// GPU kernels' (heads.go SamplerLogits: mlp.0 as one matmul of [left, h,
// right], the reductions in other orders: 1.4e-5 apart at C = 1024 on
// lavapipe), both within k.tol, and every drawn id against internal/step's draw on the kernel's
// own logits (drawCheck: a different id only at a rounding boundary). B =
// s.B rows of 8 positions; waves: one position at the end of the last row
// (embeddings), every masked position of the batch at once (runs of
// adjacent masks in one wave: the LIST_* flags; nucleus and exclusions),
// the same in zeros mode, and every id excluded (the error word).
func checkSamplerWave(k *kernelRun, s shape) {
	B, C := s.B, s.T
	const T = 8
	V := map[int]int{64: 23, 102: 37, 200: 300, 1024: 67}[C]
	heads := map[int]int{64: 2, 102: 3, 200: 2, 1024: 8}[C]
	bias := C != 64
	P, mask := B*T, uint32(V-2)
	ctx := context.Background()
	cfg := model.Standard()
	cfg.NLayer, cfg.NHead, cfg.NEmbd, cfg.BlockSize, cfg.VocabSize, cfg.Bias = 1, heads, C, 16, V, bias
	m, err := model.Random(cfg, uint64(C), 0.1)
	if err != nil {
		k.Fatal(err)
	}
	en, err := testBackend(k.T).Load(ctx, m)
	if err != nil {
		k.Fatal(err)
	}
	net := en.(*Net)
	defer net.Close()
	cn, err := cpu.New(1).Load(ctx, m)
	if err != nil {
		k.Fatal(err)
	}
	r := k.r
	tokens := make([]int32, P)
	for i := range tokens {
		tokens[i] = int32(r.IntN(V))
	}
	hc, err := cn.Encode(ctx, tokens, B, T)
	if err != nil {
		k.Fatal(err)
	}
	hg, err := net.Encode(ctx, tokens, B, T)
	if err != nil {
		k.Fatal(err)
	}
	tabs, err := net.samplerTables()
	if err != nil {
		k.Fatal(err)
	}
	hw := k.out(P*C, nil)
	mm, err := k.d.matmul("sampler mlp.0 (h)", P, C, C, whole(net.act.h), tabs.w0h, nil, hw.bind(), shaders.ActNone, false)
	if err != nil {
		k.Fatal(err)
	}
	k.exec([]op{mm}, hw)
	pred := make([]uint32, P)
	for i := range pred {
		pred[i] = uint32(r.IntN(V - 2))
		if r.IntN(3) == 0 || i == 0 || i == P-1 || i == T-1 {
			pred[i] = mask
		}
	}
	// The masked positions, flagged where a row neighbour is masked too.
	var all []uint32
	for p := 0; p < P; p++ {
		if pred[p] != mask {
			continue
		}
		e := uint32(p)
		if p%T > 0 && pred[p-1] == mask {
			e |= shaders.WaveListLeft
		}
		if p%T < T-1 && pred[p+1] == mask {
			e |= shaders.WaveListRight
		}
		all = append(all, e)
	}
	excl := make([]bool, V)
	excl[mask], excl[V-1], excl[3] = true, true, true
	allExcl := make([]bool, V)
	for i := range allExcl {
		allExcl[i] = true
	}
	// The last row's last position alone: its left neighbour is read from
	// the prediction (masked or not), no right neighbour.
	last := uint32(P - 1)
	pred[P-2] = 7
	c := &drawCheck{k: k, seed: 0x5eed0001, it: 4, T: T, mask: mask}
	for _, sc := range []struct {
		name       string
		list       []uint32
		embeddings bool
		excl       []bool
		temp, top  float64
	}{
		{"one position", []uint32{last}, true, excl, 1, 1},
		{"every mask", all, true, excl, 0.8, 0.9},
		{"every mask/zeros", all, false, excl, 1.3, 1},
		{"every id excluded", all, true, allExcl, 1, 1},
	} {
		w := &samplerWaveRun{C: C, V: V, T: T, hw: hw.bind(), tab: whole(tabs.tab), excl: k.in(excludeWords(sc.excl)),
			pred: pred, list: sc.list, embeddings: sc.embeddings, temperature: sc.temp, top: sc.top, eps: net.eps,
			seed: c.seed, it: c.it, mask: mask}
		gotPred, logits, errw := w.run(k)
		n := len(sc.list)
		pos, left, right := make([]int32, n), make([]int32, n), make([]int32, n)
		for i, e := range sc.list {
			pos[i], left[i], right[i] = w.neighbours(e)
		}
		want := make([]float32, n*V)
		if err := cn.SamplerLogits(ctx, hc, pos, left, right, want); err != nil {
			k.Fatal(err)
		}
		checkClose(k.T, sc.name+": logits against the CPU backend", logits, f64(want), k.tol, k.tol)
		unfused := make([]float32, n*V)
		if err := net.SamplerLogits(ctx, hg, pos, left, right, unfused); err != nil {
			k.Fatal(err)
		}
		checkClose(k.T, sc.name+": logits against the unfused GPU kernels", logits, f64(unfused), k.tol, k.tol)
		wantErr := uint32(noID)
		for i := 0; i < n; i++ {
			p := int(pos[i])
			if sc.excl[0] && sc.excl[1] { // every id excluded
				wantErr = min(wantErr, uint32(p))
			}
			c.check(sc.name, logits[i*V:(i+1)*V], sc.excl, sc.temp, sc.top, p, gotPred[p])
		}
		if errw[shaders.ErrDraw] != wantErr || errw[shaders.ErrScore] != noID {
			k.Errorf("%s: ERR = %#x, want [%#x %#x ...]", sc.name, errw, wantErr, uint32(noID))
		}
		k.Logf("%s: %d positions", sc.name, n)
	}
	if float64(c.disagree) > 0.01*float64(c.total) {
		k.Errorf("GPU and CPU ids differ on %d of %d draws", c.disagree, c.total)
	}
}

// checkSamplerWaveSplit runs samplerwave.wgsl on random tables of n_embd
// s.T and vocabulary s.B (three positions, neighbours read from the
// prediction, one of them without a left neighbour) against its formula in
// float64 (samplerWaveRef) within k.tol, and its draws against
// internal/step's on the kernel's own logits; with the default workgroup
// and with one of 64 threads (fewer threads than quads where C or V >
// 256: matvec's items loop).
func checkSamplerWaveSplit(k *kernelRun, s shape) {
	for _, wg := range []int{0, 64} {
		samplerWaveSplit(k, s, wg)
	}
}

func samplerWaveSplit(k *kernelRun, s shape, wg int) {
	C, V := s.T, s.B
	const T, P = 8, 16
	l := newSamplerLayout(C, V)
	hw, tab := randVec(k.r, P*C, 1), randVec(k.r, l.size, 0.3)
	list := []uint32{T, 5, P - 3}
	pred := make([]uint32, P)
	mask := uint32(V) // an id no row holds: V = 1 has no id to spare
	for p := range pred {
		pred[p] = uint32(k.r.IntN(V))
	}
	w := &samplerWaveRun{C: C, V: V, T: T, hw: k.inF(hw), tab: k.inF(tab), excl: k.in(excludeWords(make([]bool, V))),
		pred: pred, list: list, embeddings: true, temperature: 1, top: 1, eps: 1e-5, seed: 11, it: 2, mask: mask, wg: wg}
	got, logits, _ := w.run(k)
	c := &drawCheck{k: k, seed: 11, it: 2, T: T, mask: mask}
	for i, e := range list {
		p, left, right := w.neighbours(e)
		checkClose(k.T, fmt.Sprintf("C %d, V %d, WG %d, position %d: logits", C, V, wg, p), logits[i*V:(i+1)*V],
			samplerWaveRef(hw, tab, C, V, int(p), int(left), int(right), 1e-5), k.tol, k.tol)
		c.check("split", logits[i*V:(i+1)*V], make([]bool, V), 1, 1, int(p), got[p])
	}
}

// ---------------------------------------------------------------- stats

// statsRef is step.SelfConfidence and step.CriticRow of row b in
// stats.wgsl's layout (shaders.Stats*) and with its conventions for empty
// sets (0 values, 0 counts).
func statsRef(tok []uint32, logits, crit []float32, b, T, V int, mask, pad uint32) []float64 {
	out := make([]float64, shaders.StatsWords)
	row := int32s(tok[b*T : (b+1)*T])
	if c, ok := step.SelfConfidence(row, logits[b*T*V:(b+1)*T*V], V, int32(mask)); ok {
		out[shaders.StatsSelf] = c
	}
	for _, id := range row {
		if id != int32(mask) {
			out[shaders.StatsSelfCount]++
		}
	}
	p := int(pad)
	if pad == noID {
		p = -1
	}
	if s, ok := step.CriticRow(row, crit[b*T:(b+1)*T], int32(mask), p); ok {
		out[shaders.StatsCriticMean], out[shaders.StatsCriticP10], out[shaders.StatsCriticP50] = s.Mean, s.P10, s.P50
		out[shaders.StatsCriticP90], out[shaders.StatsCriticCount] = s.P90, float64(s.N)
	}
	for t, id := range row {
		if x := float64(crit[b*T+t]); id != int32(mask) && int(id) != p && (math.IsNaN(x) || math.IsInf(x, 0)) {
			out[shaders.StatsCriticNonFinite]++
		}
	}
	return out
}

// runStats runs stats.wgsl as Loop.metricsOps builds it and compares each row;
// without a critic only the self-confidence words may be written.
func runStats(k *kernelRun, B, T, V int, tok []uint32, logits, crit []float32, mask, pad uint32, critic bool) {
	k.Helper()
	const W = shaders.StatsWords
	sp := shaders.StatsParams{B: uint32(B), T: uint32(T), V: uint32(V), Mask: mask, Pad: pad, HasCritic: b2u(critic)}
	const sentinel = 0x3f8ccccd // 1.1
	out := k.out(W*B, fill(W*B, sentinel))
	o := op{name: "stats", pl: k.pipeline("stats.wgsl", statsKinds), params: shaders.Bytes(sp),
		binds: []binding{k.in(tok), k.inF(logits), k.inF(crit), k.out(B*T, nil).bind(), out.bind()}, wg: k.d.grid(uint64(B))}
	got := k.exec([]op{o}, out)[0]
	names := map[int]string{shaders.StatsSelf: "self-confidence", shaders.StatsSelfCount: "count", shaders.StatsCriticMean: "critic mean",
		shaders.StatsCriticP10: "p10", shaders.StatsCriticP50: "p50", shaders.StatsCriticP90: "p90", shaders.StatsCriticCount: "critic count",
		shaders.StatsCriticNonFinite: "non-finite critic logits"}
	for b := 0; b < B; b++ {
		want := statsRef(tok, logits, crit, b, T, V, mask, pad)
		g := asF32(got[W*b : W*(b+1)])
		for i := 0; i < W; i++ {
			name, used := names[i]
			if used && (critic || i == shaders.StatsSelf || i == shaders.StatsSelfCount) {
				if !k.near(g[i], want[i]) {
					k.Errorf("row %d %s = %v, want %v", b, name, g[i], want[i])
				}
			} else if got[W*b+i] != sentinel {
				k.Errorf("row %d OUT[%d] written (%v)", b, i, g[i])
			}
		}
	}
}

// checkStats: rows (b%8) with masks and pads, critic values with ties,
// every position masked, every position padded, one and two eligible
// positions, tokens of probability ~1e-17 (where the + 1e-10 matters) and
// infinite critic logits (counted as non-finite);
// with a pad id, without one, and without a critic.
func checkStats(k *kernelRun, s shape) {
	const V, mask, pad = 67, 65, 66
	B, T, N := s.B, s.T, s.B*s.T
	r := k.r
	tok := make([]uint32, N)
	crit := randVec(r, N, 2)
	for b := 0; b < B; b++ {
		for t := 0; t < T; t++ {
			p := b*T + t
			tok[p] = uint32(r.IntN(V - 2))
			switch b % 8 {
			case 0: // masks and pads
				if x := r.IntN(6); x == 0 {
					tok[p] = mask
				} else if x == 1 {
					tok[p] = pad
				}
			case 1: // critic on a few values: ties among the order statistics
				crit[p] = float32(r.IntN(4)-2) * 0.5
				if r.IntN(4) == 0 {
					tok[p] = mask
				}
			case 2: // every position masked: no eligible position at all
				tok[p] = mask
			case 3: // every position padded: self-confidence only
				tok[p] = pad
			case 4: // one eligible position
				tok[p] = mask
				if t == T/2 {
					tok[p] = 5
				}
			case 5: // two
				tok[p] = pad
				if t == 0 || t == T-1 {
					tok[p] = uint32(t % (V - 2))
				}
			case 7: // infinite critic logits (a damaged model), counted by stats.wgsl's bit test
				if t%5 == 0 {
					crit[p] = float32(math.Inf(1 - 2*(t/5%2)))
				}
			}
		}
	}
	logits := randVec(r, N*V, 2)
	for b := 6; b < B; b += 8 {
		for t := 0; t < T; t += 3 {
			p := b*T + t
			logits[p*V+int(tok[p])] = -40
		}
	}
	runStats(k, B, T, V, tok, logits, crit, mask, pad, true)
	runStats(k, B, T, V, tok, logits, crit, mask, noID, true)
	runStats(k, B, T, V, tok, logits, crit, mask, pad, false)
}

// ---------------------------------------------------------------- sample (fill)

// checkDraw compares one drawn id with step.Sampler's, as sample_test.go
// does: a different id must be explained by rounding at a boundary.
type drawCheck struct {
	k               *kernelRun
	seed            uint64
	it, T           int
	mask            uint32
	disagree, total int
}

func (c *drawCheck) check(what string, logits []float32, excl []bool, temperature, topP float64, p int, g uint32) {
	c.k.Helper()
	u := rng.Uniform(c.seed, uint32(p/c.T), uint32(c.it), uint32(p%c.T), rng.Token)
	want, _, _, _ := sampleRef(logits, excl, temperature, topP, u)
	c.total++
	if want < 0 {
		if g != c.mask {
			c.k.Errorf("%s position %d: every id excluded, got %d, want [MASK] %d", what, p, g, c.mask)
		}
		return
	}
	if int(g) == want {
		return
	}
	if int(g) >= len(logits) || excl[g] {
		c.k.Fatalf("%s position %d: drew %d, excluded or out of range", what, p, g)
	}
	c.disagree++
	if why := explain(logits, excl, temperature, topP, u, int(g)); why == "" {
		c.k.Errorf("%s position %d: GPU drew %d, CPU %d, u = %v: not explained by rounding at a boundary", what, p, g, want, u)
	}
}

// checkSampleFill runs sample.wgsl's fill mode (keep unmasked and keep
// protected), with some ids excluded and with every id excluded (the error
// word), for V = s.T.
func checkSampleFill(k *kernelRun, s shape) {
	V, B := s.T, s.B
	const T, it, temperature = 50, 3, 0.8
	N := B * T
	r := k.r
	c := &drawCheck{k: k, seed: 0xfeedface12345678, it: it, T: T, mask: uint32(V - 2)}
	exclude, all := make([]bool, V), make([]bool, V)
	exclude[c.mask], exclude[V-1] = true, true
	for i := 0; i < V; i += 9 {
		exclude[i] = true
	}
	for i := range all {
		all[i] = true
	}
	if V < 4 {
		exclude[0] = false
	}
	for _, allExcl := range []bool{false, true} {
		excl := exclude
		if allExcl {
			excl = all
		}
		for _, keep := range []int{shaders.KeepUnmasked, shaders.KeepProtected} {
			tok, prot := make([]uint32, N), make([]uint32, N)
			for p := range tok {
				tok[p] = uint32(r.IntN(V))
				if r.IntN(2) == 0 {
					tok[p] = c.mask
				}
				prot[p] = b2u(r.IntN(3) == 0)
			}
			logits := randVec(r, N*V, 2)
			out, errw := k.out(N, fill(N, 0x12345678)), k.out(4, []uint32{noID, 0, 0, 0})
			td := tokenDraw{V: V, T: T, Iteration: it, Temperature: temperature, TopP: 1, Seed: c.seed, Mode: shaders.SampleFill, Keep: keep, Mask: c.mask, Err: errw.bind()}
			if keep == shaders.KeepProtected {
				td.Aux = k.in(prot)
			}
			o, err := k.d.sampleTokens(N, td, k.inF(logits), k.in(tok), k.in(excludeWords(excl)), out.bind())
			if err != nil {
				k.Fatal(err)
			}
			got := k.exec([]op{o}, out, errw)
			firstErr := uint32(noID)
			what := fmt.Sprintf("fill keep %d all-excluded %v", keep, allExcl)
			for p := 0; p < N; p++ {
				if (keep == shaders.KeepUnmasked && tok[p] != c.mask) || (keep == shaders.KeepProtected && prot[p] != 0) {
					if got[0][p] != tok[p] {
						k.Errorf("%s: kept position %d: %d, want its token %d", what, p, got[0][p], tok[p])
					}
					continue
				}
				if allExcl && firstErr == noID {
					firstErr = uint32(p)
				}
				c.check(what, logits[p*V:(p+1)*V], excl, temperature, 1, p, got[0][p])
			}
			if got[1][0] != firstErr || got[1][1] != 0 || got[1][2] != 0 || got[1][3] != 0 {
				k.Errorf("%s: ERR = %#x, want [%#x 0 0 0]", what, got[1], firstErr)
			}
		}
	}
	if float64(c.disagree) > 0.01*float64(c.total) {
		k.Errorf("V %d: GPU and CPU ids differ on %d of %d draws", V, c.disagree, c.total)
	}
}

// ---------------------------------------------------------------- 2-D grids

// TestLoopKernelsGrid2D runs each kernel with more workgroups than one grid
// dimension holds (engine/gpu's grid() spreads them over x and y; the
// kernels compute their row as x + y·(workgroups in x)).
func TestLoopKernelsGrid2D(t *testing.T) {
	maxd := int(testBackend(t).d.p.limits().MaxComputeWorkgroupsPerDimension)
	if maxd == 0 || maxd > 70000 {
		t.Skipf("maxComputeWorkgroupsPerDimension %d: too many workgroups for a test", maxd)
	}
	rows := maxd + 65 // one workgroup per row
	const mask = 5
	runKernelCases(t, []kernelCase{
		{name: "select", shapes: []shape{{rows, 2}}, check: func(k *kernelRun, s shape) {
			N := s.B * s.T
			in := selectInput{B: s.B, T: s.T, pred: make([]uint32, N), prot: make([]uint32, N), sw: make([]float32, 2*N)}
			for p := range in.pred {
				in.pred[p] = uint32(k.r.IntN(mask + 1))
				in.sw[p] = float32(k.r.IntN(3))
				in.sw[N+p] = float32(k.r.IntN(4)) / 4
			}
			runSelect(k, in, step.Selection{K: 1}, mask)
		}},
		{name: "stats", shapes: []shape{{rows, 1}}, tol: 1e-4, check: func(k *kernelRun, s shape) {
			const V = 3
			tok := make([]uint32, s.B)
			for p := range tok {
				tok[p] = uint32(k.r.IntN(V))
				if k.r.IntN(4) == 0 {
					tok[p] = mask
				}
			}
			runStats(k, s.B, 1, V, tok, randVec(k.r, s.B*V, 1), randVec(k.r, s.B, 1), mask, 2, true)
		}},
		{name: "wave", shapes: []shape{{rows, 1}}, check: func(k *kernelRun, s shape) {
			w := &waveScenario{Wave: step.Wave{B: s.B, T: 1, V: 2, Mask: mask, Ratio: 0.1, Embeddings: true},
				pred: make([]uint32, s.B), logits: randVec(k.r, 2*s.B, 1)}
			for p := range w.pred {
				w.pred[p] = uint32(k.r.IntN(mask + 1))
			}
			runWave(k, w)
		}},
		// One thread per position: 64·maxd + 100 positions.
		{name: "remask", shapes: []shape{{1, 64*maxd + 100}}, tol: 1e-5, check: func(k *kernelRun, s shape) {
			N := s.T
			crit := randVec(k.r, N, 2)
			rp := shaders.RemaskParams{N: uint32(N), T: 1000, V: 1, Strategy: uint32(step.Critic), Stride: 1}
			sw := k.out(2*N, nil)
			o := op{name: "remask scores", pl: k.pipeline("remask.wgsl", remaskKinds), params: shaders.Bytes(rp),
				binds: []binding{whole(k.d.dummy), whole(k.d.dummy), k.inF(crit), whole(k.d.dummy), sw.bind()}, wg: k.d.grid(uint64(ceilDiv(N, 64)))}
			got := asF32(k.exec([]op{o}, sw)[0])
			score, wrong := make([]float64, N), make([]float64, N)
			sc := step.Scoring{Strategy: step.Critic, T: 1000, Critic: crit}
			if err := sc.Scores(make([]int32, N), score, wrong); err != nil {
				k.Fatal(err)
			}
			for p := 0; p < N; p++ {
				if !k.near(got[p], score[p]) || !k.near(got[N+p], wrong[p]) {
					k.Fatalf("position %d: score %v wrongness %v, want %v and %v", p, got[p], got[N+p], score[p], wrong[p])
				}
			}
		}},
		{name: "sample-fill", shapes: []shape{{rows, 1}}, check: func(k *kernelRun, s shape) {
			const V, T = 4, 1000
			excl := []bool{false, false, true, false}
			tok := make([]uint32, s.B)
			for p := range tok {
				tok[p] = uint32(k.r.IntN(V))
				if k.r.IntN(2) == 0 {
					tok[p] = mask
				}
			}
			logits := randVec(k.r, s.B*V, 1)
			out := k.out(s.B, nil)
			o, err := k.d.sampleTokens(s.B, tokenDraw{V: V, T: T, Iteration: 2, Temperature: 1, TopP: 1, Seed: 9, Mode: shaders.SampleFill, Mask: mask,
				Err: k.out(4, fill(4, noID)).bind()}, k.inF(logits), k.in(tok), k.in(excludeWords(excl)), out.bind())
			if err != nil {
				k.Fatal(err)
			}
			got := k.exec([]op{o}, out)[0]
			c := &drawCheck{k: k, seed: 9, it: 2, T: T, mask: mask}
			for p := range tok {
				if tok[p] != mask {
					if got[p] != tok[p] {
						k.Fatalf("kept position %d: %d, want %d", p, got[p], tok[p])
					}
					continue
				}
				c.check("fill", logits[p*V:(p+1)*V], excl, 1, 1, p, got[p])
			}
		}},
		// samplerwave.wgsl's own formula on random tables (samplerWaveRef,
		// float64): one wave of the even positions of one row of 2n, whose
		// neighbours (the odd positions) are read from the prediction.
		{name: "sampler-wave", shapes: []shape{{rows, 8}}, tol: 1e-4, check: func(k *kernelRun, s shape) {
			n, C := s.B, s.T
			const V = 5
			P := 2 * n
			hw, tab := randVec(k.r, P*C, 1), randVec(k.r, newSamplerLayout(C, V).size, 0.3)
			list, pred := make([]uint32, n), make([]uint32, P)
			for i := 0; i < n; i++ {
				list[i] = uint32(P - 2 - 2*i)
			}
			for p := range pred {
				pred[p] = uint32(k.r.IntN(V - 1))
			}
			w := &samplerWaveRun{C: C, V: V, T: P, hw: k.inF(hw), tab: k.inF(tab), excl: k.in(excludeWords(make([]bool, V))),
				pred: pred, list: list, embeddings: true, temperature: 1, top: 1, eps: 1e-5, seed: 3, it: 1, mask: V - 1}
			got, logits, _ := w.run(k)
			c := &drawCheck{k: k, seed: 3, it: 1, T: P, mask: V - 1}
			for i := 0; i < n; i++ {
				p := int(list[i])
				left := -1
				if p > 0 {
					left = int(pred[p-1])
				}
				right := int(pred[p+1])
				checkClose(k.T, "logits", logits[i*V:(i+1)*V], samplerWaveRef(hw, tab, C, V, p, left, right, 1e-5), k.tol, k.tol)
				c.check("wave", logits[i*V:(i+1)*V], make([]bool, V), 1, 1, p, got[p])
			}
		}},
	})
}
