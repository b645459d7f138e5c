package gpu

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"sort"
	"testing"

	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/engine/rng"
	"github.com/remask/remask/shaders"
)

// Per-kernel tests of the device loop's own kernels (loop.go): select.wgsl,
// remask.wgsl, wave.wgsl, waveargs.wgsl, sampler_in.wgsl, stats.wgsl and
// sample.wgsl's scatter and fill modes, each against a float64 twin written
// here from the file's header comment (engine/sampler's versions are
// unexported), on random inputs from fixed seeds. The ops are built as
// loop.go builds them (d.pipeline + op, the same bind kinds and workgroup
// grids) and every buffer a kernel writes is a canary buffer, so a write
// past its end fails the test. loop_test.go compares the whole loop.
//
// BenchmarkSamplingKernels times each kernel at the standard shape.

const lkNone = 0xffffffff

// lkBuf makes a canary buffer of n u32 words holding init (canary words
// where init is nil).
func lkBuf(t *testing.T, d *device, n int, init []uint32) canaryBuf {
	t.Helper()
	var f []float32
	if init != nil {
		f = make([]float32, len(init))
		for i, w := range init {
			f[i] = math.Float32frombits(w)
		}
	}
	return newCanaryBuf(t, d, n, f)
}

func lkFill(n int, w uint32) []uint32 {
	v := make([]uint32, n)
	for i := range v {
		v[i] = w
	}
	return v
}

// lkRun records ops, submits them and returns the interior words of each
// output after checking its canaries.
func lkRun(t *testing.T, d *device, ops []op, outs ...canaryBuf) [][]uint32 {
	t.Helper()
	pr := newProgram(d, "test")
	defer pr.release()
	rec, err := d.p.newRecorder()
	if err != nil {
		t.Fatal(err)
	}
	if err := pr.record(rec, ops); err != nil {
		rec.submit()
		t.Fatal(err)
	}
	var total uint64
	for _, o := range outs {
		total += o.buf.size
	}
	st, err := d.p.newBuffer("test staging", total, usageStaging)
	if err != nil {
		t.Fatal(err)
	}
	defer st.destroy()
	var off uint64
	for _, o := range outs {
		rec.copy(o.buf, 0, st, off, o.buf.size)
		off += o.buf.size
	}
	if err := d.submit(rec); err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, total)
	if err := d.p.read(context.Background(), st, raw); err != nil {
		t.Fatal(err)
	}
	res := make([][]uint32, len(outs))
	off = 0
	for k, o := range outs {
		n := int(o.buf.size / 4)
		res[k] = make([]uint32, o.n)
		for i := 0; i < n; i++ {
			w := binary.LittleEndian.Uint32(raw[off+4*uint64(i):])
			if i >= canaryWords && i < canaryWords+o.n {
				res[k][i-canaryWords] = w
				continue
			}
			if w != canary {
				where := "before"
				if i >= canaryWords {
					where = "after"
				}
				t.Fatalf("output %d: canary word %d %s the output overwritten with %#x", k, i, where, w)
			}
		}
		off += o.buf.size
	}
	return res
}

func lkF32(w []uint32) []float32 {
	f := make([]float32, len(w))
	for i, x := range w {
		f[i] = math.Float32frombits(x)
	}
	return f
}

// lkNear: NaN matches NaN, equal values (infinities) match, else |got -
// want| <= atol + rtol·|want|.
func lkNear(got float32, want, atol, rtol float64) bool {
	g := float64(got)
	if math.IsNaN(want) || math.IsNaN(g) {
		return math.IsNaN(want) && math.IsNaN(g)
	}
	if g == want {
		return true
	}
	return math.Abs(g-want) <= atol+rtol*math.Abs(want)
}

func lkSigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }

// ---------------------------------------------------------------- select

// selectTwin is the selection of engine/sampler's remask(): per row, the
// candidates (prediction not [MASK], not protected); ratio mode keeps the
// min(k, candidates) best by a stable sort on the score, descending (ties:
// the lower position); threshold mode keeps wrongness > thr. It returns
// the next input, the counts per row and the smallest non-NaN wrongness
// among the selected (ok false if none).
func selectTwin(pred, prot []uint32, sw []float32, B, T, k int, threshold bool, thr float32, mask uint32) (tok []uint32, rows []int, minW float32, ok bool) {
	N := B * T
	tok = append([]uint32(nil), pred...)
	rows = make([]int, B)
	for b := 0; b < B; b++ {
		var cand []int
		for t := 0; t < T; t++ {
			p := b*T + t
			if pred[p] == mask || prot[p] != 0 {
				continue
			}
			if threshold && !(float64(sw[N+p]) > float64(thr)) {
				continue
			}
			cand = append(cand, p)
		}
		if !threshold {
			sort.SliceStable(cand, func(i, j int) bool { return float64(sw[cand[i]]) > float64(sw[cand[j]]) })
			cand = cand[:min(k, len(cand))]
		}
		for _, p := range cand {
			tok[p] = mask
			w := sw[N+p]
			if !math.IsNaN(float64(w)) && (!ok || w < minW) {
				minW, ok = w, true
			}
		}
		rows[b] = len(cand)
	}
	return tok, rows, minW, ok
}

// selectOp builds the op as loop.go's remaskOps does.
func selectOp(t *testing.T, d *device, sp shaders.SelectParams, pred, prot, sw *buffer, keys, tok, cnt canaryBuf) op {
	t.Helper()
	pl, err := d.pipeline("select.wgsl", nil, selectKinds)
	if err != nil {
		t.Fatal(err)
	}
	return op{name: "remask select", pl: pl, params: shaders.Bytes(sp),
		binds: []binding{whole(pred), whole(prot), whole(sw), keys.bind(), tok.bind(), cnt.bind()}, wg: d.grid(uint64(sp.B))}
}

type selectInput struct {
	B, T       int
	pred, prot []uint32
	sw         []float32
}

// checkSelect runs one selection and compares TOK and CNT with the twin.
func checkSelect(t *testing.T, d *device, in selectInput, k int, threshold bool, thr float32, mask uint32) {
	t.Helper()
	B, T, N := in.B, in.T, in.B*in.T
	sp := shaders.SelectParams{T: uint32(T), B: uint32(B), K: uint32(k), Mask: mask}
	if threshold {
		sp.Threshold, sp.Thr = 1, thr
	}
	keys := lkBuf(t, d, N, nil)
	tok := lkBuf(t, d, N, lkFill(N, 0x12345678))
	cntInit := make([]uint32, cntWords+B)
	cntInit[1] = noID
	cnt := lkBuf(t, d, cntWords+B, cntInit)
	o := selectOp(t, d, sp, u32Buf(t, d, in.pred), u32Buf(t, d, in.prot), inBuf(t, d, in.sw), keys, tok, cnt)
	got := lkRun(t, d, []op{o}, tok, cnt, keys)
	gTok, gCnt := got[0], got[1]
	wTok, wRows, wMin, wOK := selectTwin(in.pred, in.prot, in.sw, B, T, k, threshold, thr, mask)
	for p := range wTok {
		if gTok[p] != wTok[p] {
			b, tt := p/T, p%T
			t.Fatalf("TOK[%d] (row %d, position %d) = %d, want %d (pred %d, protected %d, score %v, wrongness %v; k %d; row selects %d)",
				p, b, tt, gTok[p], wTok[p], in.pred[p], in.prot[p], in.sw[p], in.sw[N+p], k, wRows[b])
		}
	}
	total := 0
	for b, n := range wRows {
		total += n
		if int(gCnt[cntWords+b]) != n {
			t.Errorf("CNT[4+%d] = %d, want %d", b, gCnt[cntWords+b], n)
		}
	}
	if int(gCnt[0]) != total {
		t.Errorf("CNT[0] = %d, want %d", gCnt[0], total)
	}
	if gCnt[2] != 0 || gCnt[3] != 0 {
		t.Errorf("CNT[2], CNT[3] = %#x, %#x: written", gCnt[2], gCnt[3])
	}
	switch {
	case !wOK && gCnt[1] != noID:
		t.Errorf("CNT[1] = %#x (%v), want untouched %#x: no selected position has a wrongness", gCnt[1], keyF32(gCnt[1]), uint32(noID))
	case wOK && math.Float32bits(keyF32(gCnt[1])) != math.Float32bits(wMin):
		t.Errorf("CNT[1] decodes to %v, want the smallest selected wrongness %v", keyF32(gCnt[1]), wMin)
	}
}

func TestSelectKernel(t *testing.T) {
	d := testBackend(t).d
	r := rand.New(rand.NewPCG(21, 1))
	const mask = 65
	for _, T := range []int{1, 7, 256, 1000, 4096} {
		// Rows: 0 scores on five values (many exact ties), 1 continuous
		// scores with ±Inf and repeated values, 2 mostly non-candidates with
		// one score, 3 no candidates at all. Wrongness on a 0.1 grid (equal
		// to the thresholds below), NaN in row 1.
		const B = 4
		N := B * T
		in := selectInput{B: B, T: T, pred: make([]uint32, N), prot: make([]uint32, N), sw: make([]float32, 2*N)}
		for b := 0; b < B; b++ {
			for tt := 0; tt < T; tt++ {
				p := b*T + tt
				in.pred[p] = uint32(r.IntN(mask))
				if r.IntN(5) == 0 || (b == 2 && r.IntN(10) != 0) {
					in.pred[p] = mask
				}
				if r.IntN(10) == 0 {
					in.prot[p] = 1
				}
				if b == 3 {
					if r.IntN(2) == 0 {
						in.pred[p] = mask
					} else {
						in.prot[p] = 1
					}
				}
				var s float32
				switch b {
				case 0:
					s = float32(r.IntN(5)-2) * 0.25
				case 1:
					s = float32(3 * r.NormFloat64())
					switch r.IntN(20) {
					case 0:
						s = float32(math.Inf(1))
					case 1:
						s = float32(math.Inf(-1))
					case 2:
						s = 3e38
					}
					if tt > 0 && r.IntN(3) == 0 {
						s = in.sw[b*T+r.IntN(tt)] // an earlier score again
					}
				case 2:
					s = 1
				default:
					s = float32(r.NormFloat64())
				}
				in.sw[p] = s
				w := float32(r.IntN(11)) / 10
				if b == 1 && r.IntN(10) == 0 {
					w = float32(math.NaN())
				}
				in.sw[N+p] = w
			}
		}
		seen := map[int]bool{}
		for _, k := range []int{0, 1, 2, T / 3, T / 2, T - 1, T, T + 5} {
			if k < 0 || seen[k] {
				continue
			}
			seen[k] = true
			t.Run(fmt.Sprintf("T%d/ratio/k%d", T, k), func(t *testing.T) { checkSelect(t, d, in, k, false, 0, mask) })
		}
		for _, thr := range []float32{0.5, 0.3, 0, -1, 2} {
			t.Run(fmt.Sprintf("T%d/threshold/%v", T, thr), func(t *testing.T) { checkSelect(t, d, in, 0, true, thr, mask) })
		}
	}
	// Every wrongness NaN (as the random strategy writes them), of either
	// sign: the smallest-wrongness counter must stay untouched.
	const B, T = 2, 300
	in := selectInput{B: B, T: T, pred: make([]uint32, B*T), prot: make([]uint32, B*T), sw: make([]float32, 2*B*T)}
	for p := 0; p < B*T; p++ {
		in.pred[p] = uint32(r.IntN(mask))
		in.sw[p] = float32(r.Float64())
		in.sw[B*T+p] = math.Float32frombits(0x7fc00000 | uint32(p%2)<<31)
	}
	t.Run("nan-wrongness/ratio", func(t *testing.T) { checkSelect(t, d, in, 100, false, 0, mask) })
	t.Run("nan-wrongness/threshold", func(t *testing.T) { checkSelect(t, d, in, 0, true, -1, mask) })
}

// TestSelectSignedZero: scores +0 and -0 are equal to the CPU twin's sort
// (float64 comparison), so ties go to the lower position; an
// order-preserving key must not rank +0 above -0. (Such scores need a
// critic or classifier logit of exactly ±0: rare, but the selection is
// specified as exact.)
func TestSelectSignedZero(t *testing.T) {
	d := testBackend(t).d
	const T, mask = 16, 65
	in := selectInput{B: 1, T: T, pred: make([]uint32, T), prot: make([]uint32, T), sw: make([]float32, 2*T)}
	for p := 0; p < T; p++ {
		in.pred[p] = uint32(p)
		in.sw[p] = math.Float32frombits(uint32(1-p%2) << 31) // -0, +0, -0, ...
		in.sw[T+p] = 0.5
	}
	checkSelect(t, d, in, T/2, false, 0, mask)
}

// ---------------------------------------------------------------- remask

// remaskTwin is the scores part of engine/sampler's remask() in float64
// (strategy numbers of remask.wgsl). For the calibrated strategy alt is the
// score and wrongness of the neighbouring bucket when 100·sigmoid(l) is
// within rounding of a bucket edge (altOK), where f32 may pick either.
func remaskTwin(strategy int, r float64, seed uint64, it, B, T, V, stride, col int, pred []uint32, logits, aux []float32, table []float32) (score, wrong, altScore, altWrong []float64, altOK []bool) {
	N := B * T
	score, wrong = make([]float64, N), make([]float64, N)
	altScore, altWrong, altOK = make([]float64, N), make([]float64, N), make([]bool, N)
	for p := 0; p < N; p++ {
		b, t := uint32(p/T), uint32(p%T)
		noise := float64(rng.Uniform(seed, b, uint32(it), t, rng.RemaskNoise))
		blend := func(s float64) float64 {
			if r > 0 {
				return (1-r)*s + r*noise
			}
			return s
		}
		switch strategy {
		case 0:
			l := float64(aux[p])
			wrong[p], score[p] = lkSigmoid(l), blend(l)
		case 1:
			pr := lkSigmoid(float64(aux[p]))
			u2 := float64(rng.Uniform(seed, b, uint32(it), t, rng.RemaskLuck))
			calib := func(bucket int) (float64, float64) {
				bucket = min(max(bucket, 0), 99)
				w := math.Max(float64(table[bucket]), 1e-6)
				w2 := math.Max((1-r)*w+r*noise, 1e-6)
				return -(u2 / w2), w
			}
			x := 100 * pr
			score[p], wrong[p] = calib(int(math.Floor(x)))
			if e := math.Round(x); math.Abs(x-e) < 1e-4 {
				other := int(e) // the bucket above the edge when x < e, else the one below
				if x >= e {
					other = int(e) - 1
				}
				altScore[p], altWrong[p] = calib(other)
				altOK[p] = true
			}
		case 2:
			row := logits[p*V : (p+1)*V]
			m := math.Inf(-1)
			for _, l := range row {
				m = math.Max(m, float64(l))
			}
			var z float64
			for _, l := range row {
				z += math.Exp(float64(l) - m)
			}
			q := math.Exp(float64(row[pred[p]])-m) / z
			wrong[p], score[p] = 1-q, blend(1-q)
		case 3:
			score[p] = float64(rng.Uniform(seed, b, uint32(it), t, rng.RemaskRandom))
			wrong[p] = math.NaN()
		default:
			c := float64(aux[p*stride+col])
			wrong[p], score[p] = 1-lkSigmoid(c), blend(-c)
		}
	}
	return
}

func TestRemaskKernel(t *testing.T) {
	d := testBackend(t).d
	rg := rand.New(rand.NewPCG(22, 2))
	const B, T, V, K = 3, 37, 67, 3
	N := B * T
	seed := uint64(0x9e3779b97f4a7c15)
	const it = 5
	pred := make([]uint32, N)
	for i := range pred {
		pred[i] = uint32(rg.IntN(V))
	}
	logits := randVec(rg, N*V, 3)
	for v := 0; v < V; v++ { // a row with one dominant logit (q ≈ 1)
		logits[7*V+v] = -20
	}
	logits[7*V+int(pred[7])] = 20
	crit := randVec(rg, N, 3)
	// Calibrated bucket edges: sigmoid 0.5 exactly (bucket 50), saturation
	// to 1 (bucket 100 clamped to 99) and to 0, infinities, and logits whose
	// 100·sigmoid lands on a bucket edge.
	edges := []float32{0, 30, -30, 100, -100, float32(math.Inf(1)), float32(math.Inf(-1)), 88, -88, 1e-3, -1e-3}
	for i := 1; i < 100; i += 7 {
		x := float64(i) / 100
		edges = append(edges, float32(math.Log(x/(1-x))))
	}
	copy(crit, edges)
	cls := randVec(rg, N*K, 2)
	for i, e := range edges {
		cls[(len(edges)+i)*K+1] = e
	}
	table := make([]float32, 100)
	for i := range table {
		table[i] = float32(rg.Float64())
	}
	table[0], table[99], table[50], table[73], table[3] = 0, -0.5, 1e-9, 1e-6, 2e-6 // the 1e-6 floor

	predB, logitsB, critB, clsB, tableB := u32Buf(t, d, pred), inBuf(t, d, logits), inBuf(t, d, crit), inBuf(t, d, cls), inBuf(t, d, table)
	names := []string{"critic", "calibrated", "self", "random", "model"}
	type variant struct {
		strategy    int
		stride, col int
		aux         *buffer
		auxData     []float32
	}
	var vs []variant
	for s := 0; s < 5; s++ {
		vs = append(vs, variant{s, 1, 0, critB, crit})
	}
	vs[4] = variant{4, K, 1, clsB, cls}
	vs = append(vs, variant{4, 1, 0, critB, crit}) // a one-class classifier: column 0
	for _, v := range vs {
		for _, r := range []float64{0, 0.3} {
			name := fmt.Sprintf("%s/stride%d/r%v", names[v.strategy], v.stride, r)
			t.Run(name, func(t *testing.T) {
				rp := shaders.RemaskParams{N: uint32(N), T: uint32(T), V: V, Strategy: uint32(v.strategy), Iteration: it,
					SeedLo: uint32(seed), SeedHi: uint32(seed >> 32), R: float32(r), Stride: uint32(v.stride), Col: uint32(v.col)}
				pl, err := d.pipeline("remask.wgsl", nil, remaskKinds)
				if err != nil {
					t.Fatal(err)
				}
				sw := newCanaryBuf(t, d, 2*N, nil)
				o := op{name: "remask scores", pl: pl, params: shaders.Bytes(rp),
					binds: []binding{whole(predB), whole(logitsB), whole(v.aux), whole(tableB), sw.bind()}, wg: d.grid(uint64(ceilDiv(N, 64)))}
				got := run(t, d, []op{o}, sw)
				score, wrong, as, aw, aok := remaskTwin(v.strategy, r, seed, it, B, T, V, v.stride, v.col, pred, logits, v.auxData, table)
				const tol = 1e-5
				for p := 0; p < N; p++ {
					gs, gw := got[p], got[N+p]
					ok := lkNear(gs, score[p], tol, tol) && lkNear(gw, wrong[p], tol, tol)
					if !ok && aok[p] && lkNear(gs, as[p], tol, tol) && lkNear(gw, aw[p], tol, tol) {
						t.Logf("position %d: aux %v sits on a calibration bucket edge; the GPU took the neighbouring bucket", p, v.auxData[p])
						ok = true
					}
					if !ok {
						t.Fatalf("position %d (aux %v): score %v wrongness %v, want %v and %v (±%g)", p, v.auxData[p*v.stride+v.col], gs, gw, score[p], wrong[p], tol)
					}
				}
			})
		}
	}
}

// ---------------------------------------------------------------- wave

type waveScenario struct {
	B, T, V               int
	mask                  uint32
	pred                  []uint32
	logits                []float32
	ratio                 float64
	emb, global, all, off bool
	slot                  int
}

// bootTwin is engine/sampler's bootstrap() over flat positions [lo, hi).
func bootTwin(s *waveScenario, lo, hi, nFill int) []int {
	var masked []int
	for p := lo; p < hi; p++ {
		if s.pred[p] == s.mask {
			masked = append(masked, p)
		}
	}
	if len(masked) <= nFill {
		return masked
	}
	conf := map[int]float32{}
	for _, p := range masked {
		m := float32(math.Inf(-1))
		for _, l := range s.logits[p*s.V : (p+1)*s.V] {
			if l > m {
				m = l
			}
		}
		conf[p] = float32(math.Round(float64(m)*1024) / 1024)
	}
	sort.SliceStable(masked, func(i, j int) bool { return conf[masked[i]] > conf[masked[j]] })
	return masked[:nFill]
}

// waveTwin is one wave of engine/sampler's wavefront() as wave.wgsl lists
// it: position -> (left, right) ids, and the masked count before the wave.
func waveTwin(s *waveScenario) (want map[int][2]uint32, masked int) {
	T := s.T
	isM := func(p int) bool { return s.pred[p] == s.mask }
	elig := func(p int) bool {
		t := p % T
		return isM(p) && ((t > 0 && !isM(p-1)) || (t+1 < T && !isM(p+1)))
	}
	nb := func(p int) uint32 {
		if !s.emb || isM(p) {
			return lkNone
		}
		return s.pred[p]
	}
	want = map[int][2]uint32{}
	add := func(p int) {
		l, r := uint32(lkNone), uint32(lkNone)
		if p%T > 0 {
			l = nb(p - 1)
		}
		if p%T+1 < T {
			r = nb(p + 1)
		}
		want[p] = [2]uint32{l, r}
	}
	type seg struct{ lo, hi int }
	var segs []seg
	if s.global {
		segs = []seg{{0, s.B * T}}
	} else {
		for b := 0; b < s.B; b++ {
			segs = append(segs, seg{b * T, (b + 1) * T})
		}
	}
	for _, g := range segs {
		m, e := 0, 0
		for p := g.lo; p < g.hi; p++ {
			if isM(p) {
				m++
				if s.all || elig(p) {
					e++
				}
			}
		}
		masked += m
		if m == 0 || s.off {
			continue
		}
		if e > 0 {
			for p := g.lo; p < g.hi; p++ {
				if isM(p) && (s.all || elig(p)) {
					add(p)
				}
			}
			continue
		}
		for _, p := range bootTwin(s, g.lo, g.hi, max(1, int(math.Floor(float64(m)*s.ratio)))) {
			add(p)
		}
	}
	return want, masked
}

// checkWave runs one wave plan as loop.go's waveOps builds it and compares
// the listed set, the neighbour ids and the counters with the twin.
func checkWave(t *testing.T, d *device, s *waveScenario) {
	t.Helper()
	N := s.B * s.T
	fill := make([]uint32, N+1)
	for i := range fill {
		fill[i] = uint32(max(1, int(math.Floor(float64(i)*s.ratio))))
	}
	wp := shaders.WaveParams{B: uint32(s.B), T: uint32(s.T), V: uint32(s.V), Mask: s.mask, Slot: uint32(s.slot), Cap: uint32(N)}
	b2u := func(x bool) uint32 {
		if x {
			return 1
		}
		return 0
	}
	wp.Embeddings, wp.Global, wp.All, wp.Off = b2u(s.emb), b2u(s.global), b2u(s.all), b2u(s.off)
	pl, err := d.pipeline("wave.wgsl", nil, waveKinds)
	if err != nil {
		t.Fatal(err)
	}
	const sentinel = 0x5e5e5e5e
	keys := lkBuf(t, d, N, nil)
	list := lkBuf(t, d, 3*N, lkFill(3*N, sentinel))
	const wcWords = 8
	wc := lkBuf(t, d, wcWords, make([]uint32, wcWords))
	wg := d.grid(uint64(s.B))
	if s.global {
		wg = [3]uint32{1, 1, 1}
	}
	o := op{name: "wave plan", pl: pl, params: shaders.Bytes(wp),
		binds: []binding{whole(u32Buf(t, d, s.pred)), whole(inBuf(t, d, s.logits)), keys.bind(), list.bind(), wc.bind(), whole(u32Buf(t, d, fill))}, wg: wg}
	got := lkRun(t, d, []op{o}, list, wc, keys)
	gl, gwc := got[0], got[1]
	want, masked := waveTwin(s)
	n := int(gwc[s.slot])
	for i, w := range gwc {
		switch {
		case i == s.slot && int(w) != len(want):
			t.Errorf("WC[slot] = %d listed, want %d", w, len(want))
		case i == s.slot+1 && int(w) != masked:
			t.Errorf("WC[slot+1] = %d masked, want %d", w, masked)
		case i != s.slot && i != s.slot+1 && w != 0:
			t.Errorf("WC[%d] = %d, written (slot %d)", i, w, s.slot)
		}
	}
	if n > N {
		t.Fatalf("WC[slot] = %d > capacity %d", n, N)
	}
	seen := map[int]bool{}
	for i := 0; i < n; i++ {
		p := int(gl[i])
		lr, ok := want[p]
		switch {
		case !ok:
			t.Errorf("listed position %d (row %d, t %d) is not in the wave (listed %d, want %d)", p, p/s.T, p%s.T, n, len(want))
		case seen[p]:
			t.Errorf("position %d listed twice", p)
		case gl[N+i] != lr[0] || gl[2*N+i] != lr[1]:
			t.Errorf("position %d: neighbours (%#x, %#x), want (%#x, %#x)", p, gl[N+i], gl[2*N+i], lr[0], lr[1])
		}
		seen[p] = true
	}
	for p := range want {
		if !seen[p] {
			t.Errorf("position %d (row %d, t %d) missing from the wave", p, p/s.T, p%s.T)
		}
	}
	for i := n; i < N; i++ {
		if gl[i] != sentinel || gl[N+i] != sentinel || gl[2*N+i] != sentinel {
			t.Fatalf("LIST entry %d written past the count %d", i, n)
		}
	}
}

func TestWaveKernel(t *testing.T) {
	d := testBackend(t).d
	r := rand.New(rand.NewPCG(23, 3))
	const V = 11
	const mask = 9
	// Row patterns.
	row := func(kind string, T int) []uint32 {
		v := make([]uint32, T)
		for i := range v {
			v[i] = uint32(r.IntN(V))
			if v[i] == mask {
				v[i] = 10
			}
		}
		switch kind {
		case "all":
			v = lkFill(T, mask)
		case "rand":
			for i := range v {
				if r.IntN(2) == 0 {
					v[i] = mask
				}
			}
		case "runs": // long masked runs: only their ends are eligible
			for i := 0; i < T; {
				n := 1 + r.IntN(12)
				if r.IntN(3) != 0 {
					for j := i; j < min(i+n, T); j++ {
						v[j] = mask
					}
				}
				i += n
			}
		case "one":
			v[r.IntN(T)] = mask
		}
		return v
	}
	// Logits: continuous, or on a 0.5 grid (many equal maxima: ties).
	mk := func(B, T int, kinds []string, tied []bool) *waveScenario {
		s := &waveScenario{B: B, T: T, V: V, mask: mask, ratio: 0.1}
		for b := 0; b < B; b++ {
			s.pred = append(s.pred, row(kinds[b%len(kinds)], T)...)
			for i := 0; i < T*V; i++ {
				x := r.NormFloat64()
				if tied[b%len(tied)] {
					x = math.Round(2*x) / 2
				}
				s.logits = append(s.logits, float32(x))
			}
		}
		return s
	}
	type tc struct {
		name string
		s    *waveScenario
	}
	var cases []tc
	mixed := mk(6, 50, []string{"all", "rand", "none", "all", "runs", "one"}, []bool{false, false, false, true, false, false})
	with := func(s *waveScenario, f func(*waveScenario)) *waveScenario {
		c := *s
		f(&c)
		return &c
	}
	cases = append(cases,
		tc{"per-row/embeddings", with(mixed, func(s *waveScenario) { s.emb = true })},
		tc{"per-row/zeros/slot2", with(mixed, func(s *waveScenario) { s.slot = 2 })},
		tc{"per-row/ratio0.5", with(mixed, func(s *waveScenario) { s.emb, s.ratio = true, 0.5 })},
		tc{"per-row/ratio1", with(mixed, func(s *waveScenario) { s.emb, s.ratio = true, 1 })},
		tc{"global/eligible", with(mixed, func(s *waveScenario) { s.emb, s.global = true, true })},
		tc{"all", with(mixed, func(s *waveScenario) { s.all = true })},
		tc{"off", with(mixed, func(s *waveScenario) { s.emb, s.off, s.slot = true, true, 4 })},
		tc{"global/off", with(mixed, func(s *waveScenario) { s.global, s.off = true, true })},
	)
	boot := mk(4, 50, []string{"all", "none", "all", "all"}, []bool{false, false, true, true})
	cases = append(cases,
		tc{"per-row/bootstrap", with(boot, func(s *waveScenario) { s.emb = true })},
		tc{"global/bootstrap", with(boot, func(s *waveScenario) { s.emb, s.global = true, true })},
		tc{"global/bootstrap/ratio0.3", with(boot, func(s *waveScenario) { s.global, s.ratio = true, 0.3 })},
	)
	none := mk(3, 20, []string{"none"}, []bool{false})
	cases = append(cases, tc{"no-masks", with(none, func(s *waveScenario) { s.emb = true })},
		tc{"global/no-masks", with(none, func(s *waveScenario) { s.global = true })})
	t1 := &waveScenario{B: 5, T: 1, V: V, mask: mask, ratio: 0.1, pred: []uint32{mask, 3, mask, mask, 10}, logits: randVec(r, 5*V, 1)}
	cases = append(cases, tc{"T1/per-row", with(t1, func(s *waveScenario) { s.emb = true })},
		tc{"T1/global", with(t1, func(s *waveScenario) { s.emb, s.global = true, true })})
	big := mk(3, 1000, []string{"all", "rand", "all"}, []bool{true, false, false})
	big.ratio = 0.01
	bigBoot := mk(3, 1000, []string{"all"}, []bool{true, false, true})
	bigBoot.ratio = 0.01
	cases = append(cases, tc{"T1000/per-row", with(big, func(s *waveScenario) { s.emb = true })},
		tc{"T1000/global", with(big, func(s *waveScenario) { s.emb, s.global = true, true })},
		tc{"T1000/per-row/bootstrap", bigBoot},
		tc{"T1000/global/bootstrap", with(bigBoot, func(s *waveScenario) { s.global = true })})
	// Go's math.Round on max-logit·1024, halves away from zero, in rows of
	// n_fill = 1: each row's first two positions round to the same value
	// (ties: position 0 wins), while rounding halves to even or towards
	// zero, or not rounding at all, makes position 1 win.
	halves := &waveScenario{B: 5, T: 4, V: 2, mask: mask, ratio: 0.1, pred: lkFill(20, mask)}
	for _, m := range [][2]float32{{0.5, 0.75}, {2.5, 2.9}, {-0.75, -0.5}, {-2.9, -2.5}, {0.9, 1.2}} {
		for _, x := range []float32{m[0], m[1], -5, -5} {
			halves.logits = append(halves.logits, x/1024, -6)
		}
	}
	cases = append(cases, tc{"bootstrap/round-halves", halves})
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) { checkWave(t, d, c.s) })
	}
}

// TestWaveBootstrapRoundingEdges: max logits whose ·1024 sits just below a
// half (0.5 - 2^-25) or is an odd integer of 2^23 or more, where f32
// floor(x + 0.5) rounds the sum before flooring and so differs from Go's
// math.Round (boot_key's first version), and confidences that round to -0
// and +0, equal in Go's sort (the lower position wins) but not as
// f32_key's keys unless -0 is mapped to +0. n_fill = 1, so the rounding
// alone decides which position is bootstrapped.
func TestWaveBootstrapRoundingEdges(t *testing.T) {
	d := testBackend(t).d
	below := float32(0.5 - 1.0/(1<<25)) // 0.49999997: Go rounds x to 0, f32 floor(x + 0.5) = 1
	s := &waveScenario{B: 4, T: 3, V: 1, mask: 9, ratio: 0.1, emb: true, pred: lkFill(12, 9), logits: []float32{
		below / 1024, 0.5 / 1024, -1, // Go: 0, 1/1024 -> position 1
		-below / 1024, -0.75 / 1024, -1, // Go: -0, -1/1024 -> position 0 (here both agree)
		8192 + 1.0/1024, 8192 + 2.0/1024, -1, // ·1024 = 2^23 + 1 (odd), 2^23 + 2 -> position 1
		-0.3 / 1024, 0.3 / 1024, -1, // Go: -0 and +0, equal -> position 0
	}}
	for b := 0; b < s.B; b++ {
		want := bootTwin(s, b*s.T, (b+1)*s.T, 1)
		t.Logf("row %d: Go's bootstrap takes position %d", b, want[0]%s.T)
	}
	checkWave(t, d, s)
}

// ---------------------------------------------------------------- waveargs

// waveArgsTwin is what waveargs.wgsl writes for n listed positions: grid()
// for the per-row dispatches (x = 0 when n = 0: an empty dispatch) and the
// matmul workgroup counts of kernels.go for M = n rows.
func waveArgsTwin(n int, maxd uint64, nx1, bm1, nx2, bm2 int) [15]uint32 {
	grid := func(n uint64) [3]uint32 {
		if n == 0 {
			return [3]uint32{0, 1, 1}
		}
		if n <= maxd {
			return [3]uint32{uint32(n), 1, 1}
		}
		y := (n + maxd - 1) / maxd
		return [3]uint32{uint32((n + y - 1) / y), uint32(y), 1}
	}
	mm := func(nx, bm int) [3]uint32 {
		if n == 0 {
			return [3]uint32{0, 0, 1}
		}
		return [3]uint32{uint32(nx), uint32(ceilDiv(n, bm)), 1}
	}
	var out [15]uint32
	for i, g := range [][3]uint32{grid(uint64(n)), mm(nx1, bm1), grid(uint64(n)), mm(nx2, bm2), grid(uint64(n))} {
		copy(out[3*i:], g[:])
	}
	return out
}

func TestWaveArgsKernel(t *testing.T) {
	d := testBackend(t).d
	ns := []int{0, 1, 63, 64, 65, 65535, 70000}
	devMax := uint64(d.p.limits().MaxComputeWorkgroupsPerDimension)
	if devMax == 0 {
		devMax = 65535
	}
	// The standard shape's tiles, as loop.go picks them (B·T = 16384, C = 384, V = 67).
	const NBT, C, V = 16384, 384, 67
	t1, t2 := chooseTile(NBT, C, C), chooseTile(NBT, V, C)
	for _, maxd := range []uint64{devMax, 1000} {
		t.Run(fmt.Sprintf("maxd%d", maxd), func(t *testing.T) {
			pl, err := d.pipeline("waveargs.wgsl", nil, waveArgsKinds)
			if err != nil {
				t.Fatal(err)
			}
			wc := make([]uint32, 2*len(ns)+2)
			for i, n := range ns {
				wc[2*(i+1)] = uint32(n) // slots 2, 4, ...
				wc[2*(i+1)+1] = 0xabcdef
			}
			wcB := u32Buf(t, d, wc)
			args := lkBuf(t, d, waveArgsWords*len(ns)+3, nil)
			var ops []op
			for i := range ns {
				ap := shaders.WaveArgsParams{Slot: uint32(2 * (i + 1)), At: uint32(waveArgsWords*i + 3),
					Nx1: uint32(ceilDiv(C, t1.BN)), Bm1: uint32(t1.BM), Nx2: uint32(ceilDiv(V, t2.BN)), Bm2: uint32(t2.BM), Maxd: uint32(maxd)}
				ops = append(ops, op{name: "wave args", pl: pl, params: shaders.Bytes(ap), binds: []binding{whole(wcB), args.bind()}, wg: [3]uint32{1, 1, 1}})
			}
			got := lkRun(t, d, ops, args)[0]
			for k := 0; k < 3; k++ {
				if got[k] != canary {
					t.Errorf("ARGS[%d] before the first wave's words written: %#x", k, got[k])
				}
			}
			for i, n := range ns {
				want := waveArgsTwin(n, maxd, ceilDiv(C, t1.BN), t1.BM, ceilDiv(V, t2.BN), t2.BM)
				g := got[waveArgsWords*i+3 : waveArgsWords*(i+1)+3]
				for k := range want {
					if g[k] != want[k] {
						t.Errorf("n = %d: ARGS = %v, want %v", n, g, want)
						break
					}
				}
				if maxd == devMax && n > 0 {
					dg := d.grid(uint64(n))
					for _, k := range []int{0, 2, 4} {
						if [3]uint32(g[3*k:3*k+3]) != dg {
							t.Errorf("n = %d: dispatch %d = %v, engine/gpu grid() = %v", n, k, g[3*k:3*k+3], dg)
						}
					}
					// The matmul of M = n rows with the same tile.
					if w1 := [3]uint32{uint32(ceilDiv(C, t1.BN)), uint32(ceilDiv(n, t1.BM)), 1}; [3]uint32(g[3:6]) != w1 {
						t.Errorf("n = %d: mlp.3 dispatch %v, matmul grid %v", n, g[3:6], w1)
					}
				}
			}
		})
	}
}

// ---------------------------------------------------------------- sampler_in

// samplerInTwin is mlp.0-mlp.2 of the sampler head in float64:
// LN(SiLU(W0·[wte[left] or 0, h, wte[right] or 0] + b0)).
func samplerInTwin(m *model.Model, h []float32, pos int, left, right uint32) []float64 {
	C := m.Config.NEmbd
	w0 := m.T("sampler_head.mlp.0.weight").Data
	wte := m.T("transformer.wte.weight").Data
	lnw := m.T("sampler_head.mlp.2.weight").Data
	z := make([]float64, C)
	for o := 0; o < C; o++ {
		row := w0[o*3*C : (o+1)*3*C]
		var acc float64
		for c := 0; c < C; c++ {
			if left != lkNone {
				acc += float64(row[c]) * float64(wte[int(left)*C+c])
			}
			acc += float64(row[C+c]) * float64(h[pos*C+c])
			if right != lkNone {
				acc += float64(row[2*C+c]) * float64(wte[int(right)*C+c])
			}
		}
		if m.Config.Bias {
			acc += float64(m.T("sampler_head.mlp.0.bias").Data[o])
		}
		z[o] = acc / (1 + math.Exp(-acc))
	}
	var mean, v float64
	for _, x := range z {
		mean += x
	}
	mean /= float64(C)
	for _, x := range z {
		v += (x - mean) * (x - mean)
	}
	v /= float64(C)
	rstd := 1 / math.Sqrt(v+m.Config.LayerNormEps)
	y := make([]float64, C)
	for o := range y {
		y[o] = (z[o] - mean) * rstd * float64(lnw[o])
		if m.Config.Bias {
			y[o] += float64(m.T("sampler_head.mlp.2.bias").Data[o])
		}
	}
	return y
}

func TestSamplerInKernel(t *testing.T) {
	be := testBackend(t)
	d := be.d
	for _, tc := range []struct {
		C, H int
		bias bool
	}{{200, 2, true}, {64, 2, false}, {1024, 8, false}} {
		t.Run(fmt.Sprintf("C%d/bias%v", tc.C, tc.bias), func(t *testing.T) {
			C := tc.C
			const V, P, capN, n, slot = 23, 40, 48, 37, 2
			cfg := model.Standard()
			cfg.NLayer, cfg.NHead, cfg.NEmbd, cfg.BlockSize, cfg.VocabSize, cfg.Bias = 1, tc.H, C, 16, V, tc.bias
			m, err := model.Random(cfg, uint64(C), 0.1)
			if err != nil {
				t.Fatal(err)
			}
			en, err := be.Load(context.Background(), m)
			if err != nil {
				t.Fatal(err)
			}
			net := en.(*Net)
			defer net.Close()
			tabs, err := net.samplerTables()
			if err != nil {
				t.Fatal(err)
			}
			r := rand.New(rand.NewPCG(24, uint64(C)))
			h := randVec(r, P*C, 1)
			hw, err := d.storage("test h·W0", uint64(4*P*C))
			if err != nil {
				t.Fatal(err)
			}
			defer hw.destroy()
			// HW as loop.go's predictOps makes it.
			mm, err := d.matmul("sampler mlp.0 (h)", P, C, C, whole(inBuf(t, d, h)), tabs.w0h, nil, whole(hw), shaders.ActNone, false)
			if err != nil {
				t.Fatal(err)
			}
			list := make([]uint32, 3*capN)
			for i := 0; i < capN; i++ {
				list[i] = uint32(r.IntN(P))
				for _, k := range []int{1, 2} {
					list[k*capN+i] = uint32(r.IntN(V))
					if r.IntN(3) == 0 {
						list[k*capN+i] = lkNone
					}
				}
			}
			list[capN], list[2*capN] = lkNone, lkNone // row 0: no neighbours
			wc := []uint32{7, 7, n, 99}
			listB, wcB := u32Buf(t, d, list), u32Buf(t, d, wc)
			sip := shaders.SamplerInParams{C: uint32(C), V: V, Cap: capN, Slot: slot, Eps: float32(net.eps)}
			if cfg.Bias {
				sip.HasBias = 1
			}
			pl, err := d.pipeline("sampler_in.wgsl", nil, samplerInKinds)
			if err != nil {
				t.Fatal(err)
			}
			mkOp := func(y canaryBuf) op {
				return op{name: "sampler mlp.0-2", pl: pl, params: shaders.Bytes(sip),
					binds: []binding{whole(listB), whole(wcB), whole(hw), whole(tabs.lr), whole(tabs.vec), y.bind()}}
			}
			// Direct: more workgroups than rows (rows >= n must not write).
			y1 := newCanaryBuf(t, d, capN*C, nil)
			o1 := mkOp(y1)
			o1.wg = d.grid(capN + 5)
			// Indirect: the counts from waveargs.wgsl, as loop.go's waves.
			args, err := d.p.newBuffer("test wave args", 4*waveArgsWords, usageIndirect)
			if err != nil {
				t.Fatal(err)
			}
			defer args.destroy()
			apl, err := d.pipeline("waveargs.wgsl", nil, waveArgsKinds)
			if err != nil {
				t.Fatal(err)
			}
			ap := shaders.WaveArgsParams{Slot: slot, Nx1: 1, Bm1: 64, Nx2: 1, Bm2: 64, Maxd: d.p.limits().MaxComputeWorkgroupsPerDimension}
			y2 := newCanaryBuf(t, d, capN*C, nil)
			o2 := mkOp(y2)
			o2.ind = args
			ops := []op{mm, o1, {name: "wave args", pl: apl, params: shaders.Bytes(ap), binds: []binding{whole(wcB), whole(args)}, wg: [3]uint32{1, 1, 1}}, o2}
			outs := lkRun(t, d, ops, y1, y2)
			want := make([]float64, 0, n*C)
			for i := 0; i < n; i++ {
				want = append(want, samplerInTwin(m, h, int(list[i]), list[capN+i], list[2*capN+i])...)
			}
			for k, g := range outs {
				checkClose(t, fmt.Sprintf("Y (%s)", []string{"direct", "indirect"}[k]), lkF32(g[:n*C]), want, 1e-4, 1e-4)
				for i := n * C; i < capN*C; i++ {
					if g[i] != canary {
						t.Fatalf("Y row %d (>= n = %d) written", i/C, n)
					}
				}
			}
		})
	}
}

// ---------------------------------------------------------------- stats

// statsTwin is engine/sampler's selfConfidence() and criticStats() for one
// row, with stats.wgsl's conventions for empty sets (0 values, 0 counts).
func statsTwin(tok []uint32, logits, crit []float32, b, T, V int, mask, pad uint32) [7]float64 {
	var out [7]float64
	var sum float64
	cnt := 0
	var probs []float64
	for t := 0; t < T; t++ {
		p := b*T + t
		if tok[p] == mask {
			continue
		}
		row := logits[p*V : (p+1)*V]
		m := math.Inf(-1)
		for _, l := range row {
			m = math.Max(m, float64(l))
		}
		var z float64
		for _, l := range row {
			z += math.Exp(float64(l) - m)
		}
		sum += math.Log(math.Exp(float64(row[tok[p]])-m)/z + 1e-10)
		cnt++
		if tok[p] != pad {
			probs = append(probs, lkSigmoid(float64(crit[p])))
		}
	}
	if cnt > 0 {
		out[0] = sum / float64(cnt)
	}
	out[1] = float64(cnt)
	if len(probs) > 0 {
		sort.Float64s(probs)
		var s float64
		for _, x := range probs {
			s += x
		}
		q := func(q float64) float64 {
			pos := q * float64(len(probs)-1)
			lo := int(math.Floor(pos))
			hi := min(lo+1, len(probs)-1)
			return probs[lo] + (pos-float64(lo))*(probs[hi]-probs[lo])
		}
		out[2], out[3], out[4], out[5] = s/float64(len(probs)), q(0.1), q(0.5), q(0.9)
	}
	out[6] = float64(len(probs))
	return out
}

func TestStatsKernel(t *testing.T) {
	d := testBackend(t).d
	r := rand.New(rand.NewPCG(25, 5))
	const V, mask, pad = 67, 65, 66
	for _, tc := range []struct {
		name   string
		B, T   int
		critic bool
		pad    uint32
	}{
		{"T300/critic", 8, 300, true, pad},
		{"T300/no-pad-id", 8, 300, true, lkNone},
		{"T300/no-critic", 8, 300, false, pad},
		{"T1/critic", 3, 1, true, pad},
		{"T1000/critic", 2, 1000, true, pad},
	} {
		t.Run(tc.name, func(t *testing.T) {
			B, T := tc.B, tc.T
			N := B * T
			tok := make([]uint32, N)
			crit := randVec(r, N, 2)
			for b := 0; b < B; b++ {
				for tt := 0; tt < T; tt++ {
					p := b*T + tt
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
						if tt == T/2 {
							tok[p] = 5
						}
					case 5: // two
						tok[p] = pad
						if tt == 0 || tt == T-1 {
							tok[p] = uint32(tt % (V - 2))
						}
					}
				}
			}
			logits := randVec(r, N*V, 2)
			for b := 6; b < B; b += 8 { // tokens of probability ~1e-17: the + 1e-10 matters
				for tt := 0; tt < T; tt += 3 {
					p := b*T + tt
					logits[p*V+int(tok[p])] = -40
				}
			}
			sp := shaders.StatsParams{B: uint32(B), T: uint32(T), V: V, Mask: mask, Pad: tc.pad}
			if tc.critic {
				sp.HasCritic = 1
			}
			pl, err := d.pipeline("stats.wgsl", nil, statsKinds)
			if err != nil {
				t.Fatal(err)
			}
			const sentinel = 0x3f8ccccd // 1.1
			keys := lkBuf(t, d, N, nil)
			out := lkBuf(t, d, 8*B, lkFill(8*B, sentinel))
			o := op{name: "stats", pl: pl, params: shaders.Bytes(sp),
				binds: []binding{whole(u32Buf(t, d, tok)), whole(inBuf(t, d, logits)), whole(inBuf(t, d, crit)), keys.bind(), out.bind()}, wg: d.grid(uint64(B))}
			got := lkRun(t, d, []op{o}, out, keys)[0]
			names := []string{"self-confidence", "count", "critic mean", "p10", "p50", "p90", "critic count"}
			for b := 0; b < B; b++ {
				want := statsTwin(tok, logits, crit, b, T, V, mask, tc.pad)
				g := lkF32(got[8*b : 8*b+8])
				n := 7
				if !tc.critic {
					n = 2
				}
				for i := 0; i < n; i++ {
					if !lkNear(g[i], want[i], 1e-4, 1e-4) {
						t.Errorf("row %d %s = %v, want %v", b, names[i], g[i], want[i])
					}
				}
				for i := n; i < 8; i++ {
					if got[8*b+i] != sentinel {
						t.Errorf("row %d OUT[%d] written (%v)", b, i, g[i])
					}
				}
			}
		})
	}
}

// ---------------------------------------------------------------- sample (fill, scatter)

func TestSampleFillScatter(t *testing.T) {
	d := testBackend(t).d
	r := rand.New(rand.NewPCG(26, 6))
	seed := uint64(0xfeedface12345678)
	const it = 3
	for _, V := range []int{67, 300} {
		mask := uint32(V - 2)
		exclude := make([]bool, V)
		exclude[mask], exclude[V-1] = true, true
		for i := 0; i < V; i += 9 {
			exclude[i] = true
		}
		all := make([]bool, V)
		for i := range all {
			all[i] = true
		}
		const B, T = 3, 50
		N := B * T
		// check compares one drawn id with the twin, as sample_test.go does.
		disagree, total := 0, 0
		check := func(t *testing.T, what string, logits []float32, excl []bool, topP float64, p int, g uint32) {
			t.Helper()
			u := rng.Uniform(seed, uint32(p/T), it, uint32(p%T), rng.Token)
			want, _, _, _ := sampleRef(logits, excl, 0.8, topP, u)
			total++
			if want < 0 {
				if g != mask {
					t.Errorf("%s position %d: every id excluded, got %d, want [MASK] %d", what, p, g, mask)
				}
				return
			}
			if int(g) == want {
				return
			}
			if int(g) >= V || excl[g] {
				t.Fatalf("%s position %d: drew %d, excluded or out of range", what, p, g)
			}
			disagree++
			if why := explain(logits, excl, 0.8, topP, u, int(g)); why == "" {
				t.Errorf("%s position %d: GPU drew %d, CPU %d, u = %v: not explained by rounding at a boundary", what, p, g, want, u)
			}
		}
		for _, keep := range []int{0, 1} {
			for _, allExcl := range []bool{false, true} {
				t.Run(fmt.Sprintf("V%d/fill/keep%d/all-excluded%v", V, keep, allExcl), func(t *testing.T) {
					excl := exclude
					if allExcl {
						excl = all
					}
					tok := make([]uint32, N)
					prot := make([]uint32, N)
					for p := range tok {
						tok[p] = uint32(r.IntN(V))
						if r.IntN(2) == 0 {
							tok[p] = mask
						}
						if r.IntN(3) == 0 {
							prot[p] = 1
						}
					}
					logits := randVec(r, N*V, 2)
					out := lkBuf(t, d, N, lkFill(N, 0x12345678))
					errw := lkBuf(t, d, 4, []uint32{noID, 0, 0, 0})
					td := tokenDraw{V: V, T: T, Iteration: it, Temperature: 0.8, TopP: 1, Seed: seed, Mode: shaders.SampleFill, Keep: keep,
						Mask: mask, Err: errw.bind()}
					if keep == 1 {
						td.Aux = whole(u32Buf(t, d, prot))
					}
					o, err := d.sampleTokens(N, td, whole(inBuf(t, d, logits)), whole(u32Buf(t, d, tok)), whole(u32Buf(t, d, excludeWords(excl))), out.bind())
					if err != nil {
						t.Fatal(err)
					}
					got := lkRun(t, d, []op{o}, out, errw)
					firstErr := uint32(noID)
					for p := 0; p < N; p++ {
						kept := (keep == 0 && tok[p] != mask) || (keep == 1 && prot[p] != 0)
						if kept {
							if got[0][p] != tok[p] {
								t.Errorf("kept position %d: %d, want its token %d", p, got[0][p], tok[p])
							}
							continue
						}
						if allExcl && firstErr == noID {
							firstErr = uint32(p)
						}
						check(t, "fill", logits[p*V:(p+1)*V], excl, 1, p, got[0][p])
					}
					if got[1][0] != firstErr || got[1][1] != 0 || got[1][2] != 0 || got[1][3] != 0 {
						t.Errorf("ERR = %#x, want [%#x 0 0 0]", got[1], firstErr)
					}
				})
			}
		}
		for _, allExcl := range []bool{false, true} {
			t.Run(fmt.Sprintf("V%d/scatter/all-excluded%v", V, allExcl), func(t *testing.T) {
				excl := exclude
				if allExcl {
					excl = all
				}
				const rows, count, countAt = 40, 25, 3
				perm := r.Perm(N)
				pos := make([]uint32, rows)
				for i := range pos {
					pos[i] = uint32(perm[i])
				}
				logits := randVec(r, rows*V, 2)
				aux := []uint32{0, 0, 0, count, 77}
				out := lkBuf(t, d, N, lkFill(N, 0x12345678))
				errw := lkBuf(t, d, 4, []uint32{noID, 0, 0, 0})
				td := tokenDraw{V: V, T: T, Iteration: it, Temperature: 0.8, TopP: 0.9, Seed: seed, Mode: shaders.SampleScatter,
					Mask: mask, CountAt: countAt, Aux: whole(u32Buf(t, d, aux)), Err: errw.bind()}
				o, err := d.sampleTokens(rows, td, whole(inBuf(t, d, logits)), whole(u32Buf(t, d, pos)), whole(u32Buf(t, d, excludeWords(excl))), out.bind())
				if err != nil {
					t.Fatal(err)
				}
				got := lkRun(t, d, []op{o}, out, errw)
				written := map[int]bool{}
				firstErr := uint32(noID)
				for i := 0; i < count; i++ {
					p := int(pos[i])
					written[p] = true
					if allExcl {
						firstErr = min(firstErr, uint32(p))
					}
					check(t, "scatter", logits[i*V:(i+1)*V], excl, 0.9, p, got[0][p])
				}
				for p := 0; p < N; p++ {
					if !written[p] && got[0][p] != 0x12345678 {
						t.Errorf("position %d written (%d) though no row below the count %d holds it", p, got[0][p], count)
					}
				}
				if got[1][0] != firstErr {
					t.Errorf("ERR[0] = %#x, want %#x", got[1][0], firstErr)
				}
			})
		}
		if float64(disagree) > 0.01*float64(total) {
			t.Errorf("V %d: GPU and CPU ids differ on %d of %d draws", V, disagree, total)
		}
	}
}

// ---------------------------------------------------------------- benchmarks

// lkBench times rep (one or more ops, copies allowed) recorded b.N times
// into one command buffer, submitted and waited for, as Profile times the
// trunk; the bind groups are made once. positions is what one rep
// processes, reported as positions/s.
func lkBench(b *testing.B, d *device, rep []op, positions int) {
	b.Helper()
	ctx := context.Background()
	slot := uint64(max(256, d.p.limits().MinUniformBufferOffsetAlignment))
	uni, err := d.p.newBuffer("bench params", slot*uint64(len(rep)), usageUniform)
	if err != nil {
		b.Fatal(err)
	}
	defer uni.destroy()
	host := make([]byte, slot*uint64(len(rep)))
	bgs := make([]*bindGroup, len(rep))
	for j, o := range rep {
		if o.cp != nil {
			continue
		}
		copy(host[uint64(j)*slot:], o.params)
		all := append([]binding{{buf: uni, off: uint64(j) * slot, size: uint64(len(o.params))}}, o.binds...)
		if bgs[j], err = d.p.newBindGroup(o.pl, all); err != nil {
			b.Fatalf("%s: %v", o.name, err)
		}
		defer bgs[j].release()
	}
	if err := d.p.write(uni, 0, host); err != nil {
		b.Fatal(err)
	}
	record := func(n int) *recorder {
		rec, err := d.p.newRecorder()
		if err != nil {
			b.Fatal(err)
		}
		for i := 0; i < n; i++ {
			for j, o := range rep {
				if o.cp != nil {
					rec.copy(o.cp.src, o.cp.srcOff, o.cp.dst, o.cp.dstOff, o.cp.size)
					continue
				}
				rec.dispatch(o.pl, bgs[j], o.wg[0], o.wg[1], o.wg[2])
			}
		}
		return rec
	}
	submit := func(rec *recorder) {
		if err := d.submit(rec); err != nil {
			b.Fatal(err)
		}
		if err := d.p.wait(ctx); err != nil {
			b.Fatal(err)
		}
	}
	b.StopTimer()
	submit(record(1)) // warm-up
	rec := record(b.N)
	b.ResetTimer()
	b.StartTimer()
	submit(rec)
	b.StopTimer()
	if s := b.Elapsed().Seconds(); s > 0 {
		b.ReportMetric(float64(positions)*float64(b.N)/s, "positions/s")
	}
}

// BenchmarkSamplingKernels times the device loop's kernels at the standard
// shape (B = 16, T = 1024, V = 67, C = 384) on random inputs.
func BenchmarkSamplingKernels(b *testing.B) {
	d := testBackend(b).d
	const B, T, V, C = 16, 1024, 67, 384
	const N = B * T
	mask := uint32(V - 2)
	r := rand.New(rand.NewPCG(99, 1))
	var bufs []*buffer
	defer func() {
		for _, x := range bufs {
			x.destroy()
		}
	}()
	mk := func(words int, data []uint32) *buffer {
		x, err := d.p.newBuffer("bench", uint64(4*max(words, 4)), usageStorage)
		if err != nil {
			b.Fatal(err)
		}
		bufs = append(bufs, x)
		if data != nil {
			if err := d.p.write(x, 0, u32Bytes(data)); err != nil {
				b.Fatal(err)
			}
		}
		return x
	}
	f32 := func(v []float32) []uint32 { return words(v) }
	tok := make([]uint32, N)  // half masked
	pred := make([]uint32, N) // a prediction: no masks
	prot := make([]uint32, N)
	wavePred := make([]uint32, N) // 30% masked, the last two rows fully (bootstrap)
	for p := range tok {
		pred[p] = uint32(r.IntN(V - 2))
		tok[p] = pred[p]
		if r.IntN(2) == 0 {
			tok[p] = mask
		}
		if r.IntN(20) == 0 {
			prot[p] = 1
		}
		wavePred[p] = pred[p]
		if r.IntN(10) < 3 || p >= (B-2)*T {
			wavePred[p] = mask
		}
	}
	excl := make([]bool, V)
	excl[mask], excl[V-1] = true, true
	logits := mk(N*V, f32(randVec(r, N*V, 2)))
	crit := mk(N, f32(randVec(r, N, 2)))
	tokB, predB, protB := mk(N, tok), mk(N, pred), mk(N, prot)
	exclB := mk(1, excludeWords(excl))
	out, keys, sw := mk(N, nil), mk(N, nil), mk(2*N, nil)
	sws := randVec(r, 2*N, 1)
	for i := N; i < 2*N; i++ {
		sws[i] = float32(r.Float64())
	}
	swIn := mk(2*N, f32(sws))
	cnt, errw := mk(cntWords+B, nil), mk(4, lkFill(4, noID))
	table := mk(100, f32(randVec(r, 100, 0.3)))
	pipe := func(file string, kinds []bindKind) *pipeline {
		pl, err := d.pipeline(file, nil, kinds)
		if err != nil {
			b.Fatal(err)
		}
		return pl
	}

	b.Run("sample-fill", func(b *testing.B) {
		o, err := d.sampleTokens(N, tokenDraw{V: V, T: T, Iteration: 1, Temperature: 0.8, TopP: 1, Seed: 42, Mode: shaders.SampleFill, Mask: mask, Err: whole(errw)},
			whole(logits), whole(tokB), whole(exclB), whole(out))
		if err != nil {
			b.Fatal(err)
		}
		lkBench(b, d, []op{o}, N)
	})
	remask := func(strategy uint32) func(b *testing.B) {
		return func(b *testing.B) {
			rp := shaders.RemaskParams{N: N, T: T, V: V, Strategy: strategy, Iteration: 1, SeedLo: 42, Stride: 1}
			o := op{name: "remask scores", pl: pipe("remask.wgsl", remaskKinds), params: shaders.Bytes(rp),
				binds: []binding{whole(predB), whole(logits), whole(crit), whole(table), whole(sw)}, wg: d.grid(uint64(ceilDiv(N, 64)))}
			lkBench(b, d, []op{o}, N)
		}
	}
	b.Run("remask-critic", remask(0))
	b.Run("remask-self", remask(2))
	sel := func(threshold bool) func(b *testing.B) {
		return func(b *testing.B) {
			sp := shaders.SelectParams{T: T, B: B, K: T / 2, Mask: mask}
			if threshold {
				sp.Threshold, sp.Thr = 1, 0.5
			}
			o := op{name: "remask select", pl: pipe("select.wgsl", selectKinds), params: shaders.Bytes(sp),
				binds: []binding{whole(predB), whole(protB), whole(swIn), whole(keys), whole(tokB), whole(cnt)}, wg: d.grid(B)}
			lkBench(b, d, []op{o}, N)
		}
	}
	b.Run("select-ratio", sel(false))
	b.Run("select-threshold", sel(true))
	b.Run("wave-plan", func(b *testing.B) {
		fill := make([]uint32, N+1)
		for i := range fill {
			fill[i] = uint32(max(1, int(math.Floor(float64(i)*0.01))))
		}
		wc, zero, list := mk(8, nil), mk(8, make([]uint32, 8)), mk(3*N, nil)
		wp := shaders.WaveParams{B: B, T: T, V: V, Mask: mask, Embeddings: 1, Cap: N}
		o := op{name: "wave plan", pl: pipe("wave.wgsl", waveKinds), params: shaders.Bytes(wp),
			binds: []binding{whole(mk(N, wavePred)), whole(logits), whole(keys), whole(list), whole(wc), whole(mk(N+1, fill))}, wg: d.grid(B)}
		// The counters start at zero each time (loop.go writes them per chunk).
		lkBench(b, d, []op{copyBuf(zero, wc, 32), o}, N)
	})
	b.Run("sampler-in", func(b *testing.B) {
		list := make([]uint32, 3*N)
		for i := 0; i < N; i++ {
			list[i] = uint32(i)
			list[N+i], list[2*N+i] = uint32(r.IntN(V)), uint32(r.IntN(V))
		}
		sip := shaders.SamplerInParams{C: C, V: V, Cap: N, Slot: 0, HasBias: 1, Eps: 1e-5}
		o := op{name: "sampler mlp.0-2", pl: pipe("sampler_in.wgsl", samplerInKinds), params: shaders.Bytes(sip),
			binds: []binding{whole(mk(3*N, list)), whole(mk(4, []uint32{N, 0, 0, 0})), whole(mk(N*C, f32(randVec(r, N*C, 1)))),
				whole(mk(2*V*C, f32(randVec(r, 2*V*C, 1)))), whole(mk(3*C, f32(randVec(r, 3*C, 1)))), whole(mk(N*C, nil))}, wg: d.grid(N)}
		lkBench(b, d, []op{o}, N)
	})
	b.Run("stats", func(b *testing.B) {
		sp := shaders.StatsParams{B: B, T: T, V: V, Mask: mask, Pad: uint32(V - 1), HasCritic: 1}
		o := op{name: "stats", pl: pipe("stats.wgsl", statsKinds), params: shaders.Bytes(sp),
			binds: []binding{whole(predB), whole(logits), whole(crit), whole(keys), whole(mk(8*B, nil))}, wg: d.grid(B)}
		lkBench(b, d, []op{o}, N)
	})
}

// TestLoopKernelsGrid2D runs each kernel with more workgroups than one grid
// dimension holds (engine/gpu's grid() spreads them over x and y; the
// kernels compute their row as x + y·(workgroups in x)).
func TestLoopKernelsGrid2D(t *testing.T) {
	d := testBackend(t).d
	maxd := int(d.p.limits().MaxComputeWorkgroupsPerDimension)
	if maxd == 0 || maxd > 70000 {
		t.Skipf("maxComputeWorkgroupsPerDimension %d: too many workgroups for a test", maxd)
	}
	rows := maxd + 65 // one workgroup per row
	r := rand.New(rand.NewPCG(27, 7))
	const mask = 5
	t.Run("select", func(t *testing.T) {
		in := selectInput{B: rows, T: 2, pred: make([]uint32, 2*rows), prot: make([]uint32, 2*rows), sw: make([]float32, 4*rows)}
		for p := range in.pred {
			in.pred[p] = uint32(r.IntN(mask + 1))
			in.sw[p] = float32(r.IntN(3))
			in.sw[2*rows+p] = float32(r.IntN(4)) / 4
		}
		checkSelect(t, d, in, 1, false, 0, mask)
	})
	t.Run("stats", func(t *testing.T) {
		const V = 3
		tok := make([]uint32, rows)
		for p := range tok {
			tok[p] = uint32(r.IntN(V))
			if r.IntN(4) == 0 {
				tok[p] = mask
			}
		}
		logits, crit := randVec(r, rows*V, 1), randVec(r, rows, 1)
		sp := shaders.StatsParams{B: uint32(rows), T: 1, V: V, Mask: mask, Pad: 2, HasCritic: 1}
		pl, err := d.pipeline("stats.wgsl", nil, statsKinds)
		if err != nil {
			t.Fatal(err)
		}
		out := lkBuf(t, d, 8*rows, nil)
		o := op{name: "stats", pl: pl, params: shaders.Bytes(sp),
			binds: []binding{whole(u32Buf(t, d, tok)), whole(inBuf(t, d, logits)), whole(inBuf(t, d, crit)), lkBuf(t, d, rows, nil).bind(), out.bind()}, wg: d.grid(uint64(rows))}
		got := lkRun(t, d, []op{o}, out)[0]
		for b := 0; b < rows; b++ {
			want := statsTwin(tok, logits, crit, b, 1, V, mask, 2)
			for i, w := range want {
				if g := math.Float32frombits(got[8*b+i]); !lkNear(g, w, 1e-4, 1e-4) {
					t.Fatalf("row %d OUT[%d] = %v, want %v", b, i, g, w)
				}
			}
		}
	})
	t.Run("wave", func(t *testing.T) {
		s := &waveScenario{B: rows, T: 1, V: 2, mask: mask, ratio: 0.1, emb: true, pred: make([]uint32, rows), logits: randVec(r, 2*rows, 1)}
		for p := range s.pred {
			s.pred[p] = uint32(r.IntN(mask + 1))
		}
		checkWave(t, d, s)
	})
	t.Run("remask", func(t *testing.T) {
		N := 64*maxd + 100
		crit := randVec(r, N, 2)
		rp := shaders.RemaskParams{N: uint32(N), T: 1000, V: 1, Strategy: 0, Stride: 1}
		pl, err := d.pipeline("remask.wgsl", nil, remaskKinds)
		if err != nil {
			t.Fatal(err)
		}
		sw := newCanaryBuf(t, d, 2*N, nil)
		o := op{name: "remask scores", pl: pl, params: shaders.Bytes(rp),
			binds: []binding{whole(d.dummy), whole(d.dummy), whole(inBuf(t, d, crit)), whole(d.dummy), sw.bind()}, wg: d.grid(uint64(ceilDiv(N, 64)))}
		got := run(t, d, []op{o}, sw)
		for p := 0; p < N; p++ {
			if got[p] != crit[p] || !lkNear(got[N+p], lkSigmoid(float64(crit[p])), 1e-5, 1e-5) {
				t.Fatalf("position %d: score %v wrongness %v, want %v and %v", p, got[p], got[N+p], crit[p], lkSigmoid(float64(crit[p])))
			}
		}
	})
	t.Run("sample-fill", func(t *testing.T) {
		const V, T = 4, 1000
		excl := []bool{false, false, true, false}
		tok := make([]uint32, rows)
		for p := range tok {
			tok[p] = uint32(r.IntN(V))
			if r.IntN(2) == 0 {
				tok[p] = mask
			}
		}
		logits := randVec(r, rows*V, 1)
		out := lkBuf(t, d, rows, nil)
		o, err := d.sampleTokens(rows, tokenDraw{V: V, T: T, Iteration: 2, Temperature: 1, TopP: 1, Seed: 9, Mode: shaders.SampleFill, Mask: mask, Err: lkBuf(t, d, 4, lkFill(4, noID)).bind()},
			whole(inBuf(t, d, logits)), whole(u32Buf(t, d, tok)), whole(u32Buf(t, d, excludeWords(excl))), out.bind())
		if err != nil {
			t.Fatal(err)
		}
		got := lkRun(t, d, []op{o}, out)[0]
		for p := 0; p < rows; p++ {
			if tok[p] != mask {
				if got[p] != tok[p] {
					t.Fatalf("kept position %d: %d, want %d", p, got[p], tok[p])
				}
				continue
			}
			u := rng.Uniform(9, uint32(p/T), 2, uint32(p%T), rng.Token)
			want, _, _, _ := sampleRef(logits[p*V:(p+1)*V], excl, 1, 1, u)
			if int(got[p]) != want && explain(logits[p*V:(p+1)*V], excl, 1, 1, u, int(got[p])) == "" {
				t.Fatalf("position %d: drew %d, want %d", p, got[p], want)
			}
		}
	})
	t.Run("sampler-in", func(t *testing.T) {
		const C, V = 8, 5
		n := rows
		hw, lr, vec := randVec(r, n*C, 1), randVec(r, 2*V*C, 1), randVec(r, 3*C, 1)
		list := make([]uint32, 3*n)
		for i := 0; i < n; i++ {
			list[i] = uint32(n - 1 - i)
			list[n+i], list[2*n+i] = uint32(r.IntN(V)), uint32(r.IntN(V))
		}
		sip := shaders.SamplerInParams{C: C, V: V, Cap: uint32(n), Slot: 0, HasBias: 1, Eps: 1e-5}
		pl, err := d.pipeline("sampler_in.wgsl", nil, samplerInKinds)
		if err != nil {
			t.Fatal(err)
		}
		y := newCanaryBuf(t, d, n*C, nil)
		o := op{name: "sampler mlp.0-2", pl: pl, params: shaders.Bytes(sip),
			binds: []binding{whole(u32Buf(t, d, list)), whole(u32Buf(t, d, []uint32{uint32(n)})), whole(inBuf(t, d, hw)), whole(inBuf(t, d, lr)), whole(inBuf(t, d, vec)), y.bind()}, wg: d.grid(uint64(n))}
		got := run(t, d, []op{o}, y)
		// The kernel's own formula: LN(SiLU(HW[pos] + LR[left] + LR[V + right] + b0)).
		want := make([]float64, n*C)
		for i := 0; i < n; i++ {
			pos, l, rt := int(list[i]), int(list[n+i]), int(list[2*n+i])
			z := make([]float64, C)
			var mean, v float64
			for c := 0; c < C; c++ {
				x := float64(hw[pos*C+c]) + float64(lr[l*C+c]) + float64(lr[(V+rt)*C+c]) + float64(vec[c])
				z[c] = x / (1 + math.Exp(-x))
				mean += z[c] / C
			}
			for c := 0; c < C; c++ {
				v += (z[c] - mean) * (z[c] - mean) / C
			}
			for c := 0; c < C; c++ {
				want[i*C+c] = (z[c]-mean)/math.Sqrt(v+1e-5)*float64(vec[C+c]) + float64(vec[2*C+c])
			}
		}
		checkClose(t, "Y", got, want, 1e-4, 1e-4)
	})
}
