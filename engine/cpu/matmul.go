package cpu

import (
	"sync"
	"sync/atomic"
)

// gemm is one matrix product in the layout every Linear layer of the model
// uses (PyTorch's weight is (out, in)):
//
//	out[i, j] = bias[j] + Σ_k a[i, k] · w[j, k]     i < M, j < N, k < K
//
// a is (M, K), w is (N, K), out is (M, N), each row-major with its own row
// stride (lda, ldw, ldo >= the row length), so that one head's slice of the
// fused q/k/v buffer can be used in place. bias is nil or (N).
//
// Both operands are read along K, contiguously, so a weight needs no
// transposition or packing: its rows already are the "packed panels" of a
// classic blocked matmul (docs/performance.md says why this layout and this
// register block won on the benchmark).
type gemm struct {
	M, N, K int
	out     []float32
	ldo     int
	a       []float32
	lda     int
	w       []float32
	ldw     int
	bias    []float32
}

// linear is the gemm of a Linear layer on contiguous rows:
// out (M, N) = in (M, K) · w (N, K)ᵀ + bias (N).
func linear(out, in, w, bias []float32, M, N, K int) gemm {
	return gemm{M: M, N: N, K: K, out: out, ldo: N, a: in, lda: K, w: w, ldw: K, bias: bias}
}

// naive computes the product with three plain loops and a float64
// accumulator. It is the reference the fast path is tested against.
func (g gemm) naive() {
	for i := 0; i < g.M; i++ {
		for j := 0; j < g.N; j++ {
			var s float64
			if g.bias != nil {
				s = float64(g.bias[j])
			}
			for k := 0; k < g.K; k++ {
				s += float64(g.a[i*g.lda+k]) * float64(g.w[j*g.ldw+k])
			}
			g.out[i*g.ldo+j] = float32(s)
		}
	}
}

// Tile sizes of the fast path.
const (
	// tileM x tileN is the register block: dot3x2 keeps its 6 accumulators,
	// 3 values of a and 2 of w in registers. Larger blocks (4x4) spill on
	// amd64 (Go gives floats 15 registers) and ran 3x slower.
	tileM = 3
	tileN = 2
	// wBlockBytes is how much of w one pass over the rows of a reuses: a
	// block of w rows that stays in the per-core L2 cache.
	wBlockBytes = 128 << 10
	// minParallelFlops: smaller products run on the calling goroutine.
	minParallelFlops = 1 << 18
)

// run computes the product on up to `workers` goroutines, splitting the
// rows of out when there are enough of them and the columns otherwise;
// every worker writes a disjoint part of out.
func (g gemm) run(workers int) {
	if g.M == 0 || g.N == 0 {
		return
	}
	if workers < 1 || 2*g.M*g.N*g.K < minParallelFlops {
		workers = 1
	}
	if g.M >= tileM*workers*4 || g.M >= g.N {
		parallelFor(workers, g.M, tileM, func(lo, hi int) { g.block(lo, hi, 0, g.N) })
	} else {
		parallelFor(workers, g.N, tileN, func(lo, hi int) { g.block(0, g.M, lo, hi) })
	}
}

// block computes out[i0:i1, j0:j1], cache-blocked over the rows of w and
// register-blocked in 3x2 tiles; leftover rows use 1x4 and 1x1 kernels.
func (g gemm) block(i0, i1, j0, j1 int) {
	K := g.K
	nb := max(tileN, wBlockBytes/(4*max(K, 1))/tileN*tileN) // w rows per cache block
	for jb := j0; jb < j1; jb += nb {
		je := min(jb+nb, j1)
		i := i0
		for ; i+tileM <= i1; i += tileM {
			a0 := g.a[i*g.lda:][:K]
			a1 := g.a[(i+1)*g.lda:][:K]
			a2 := g.a[(i+2)*g.lda:][:K]
			o0 := g.out[i*g.ldo:]
			o1 := g.out[(i+1)*g.ldo:]
			o2 := g.out[(i+2)*g.ldo:]
			j := jb
			for ; j+tileN <= je; j += tileN {
				w0 := g.w[j*g.ldw:][:K]
				w1 := g.w[(j+1)*g.ldw:][:K]
				c00, c01, c10, c11, c20, c21 := dot3x2(a0, a1, a2, w0, w1)
				b0, b1 := g.biasAt(j), g.biasAt(j+1)
				o0[j], o0[j+1] = c00+b0, c01+b1
				o1[j], o1[j+1] = c10+b0, c11+b1
				o2[j], o2[j+1] = c20+b0, c21+b1
			}
			for ; j < je; j++ {
				w0 := g.w[j*g.ldw:][:K]
				b := g.biasAt(j)
				o0[j] = dot(a0, w0) + b
				o1[j] = dot(a1, w0) + b
				o2[j] = dot(a2, w0) + b
			}
		}
		for ; i < i1; i++ {
			g.row(i, jb, je)
		}
	}
}

// row computes out[i, j0:j1] for a single row of a.
func (g gemm) row(i, j0, j1 int) {
	K := g.K
	a := g.a[i*g.lda:][:K]
	o := g.out[i*g.ldo:]
	j := j0
	for ; j+4 <= j1; j += 4 {
		c0, c1, c2, c3 := dot1x4(a, g.w[j*g.ldw:][:K], g.w[(j+1)*g.ldw:][:K], g.w[(j+2)*g.ldw:][:K], g.w[(j+3)*g.ldw:][:K])
		o[j], o[j+1], o[j+2], o[j+3] = c0+g.biasAt(j), c1+g.biasAt(j+1), c2+g.biasAt(j+2), c3+g.biasAt(j+3)
	}
	for ; j < j1; j++ {
		o[j] = dot(a, g.w[j*g.ldw:][:K]) + g.biasAt(j)
	}
}

func (g gemm) biasAt(j int) float32 {
	if g.bias == nil {
		return 0
	}
	return g.bias[j]
}

// dot3x2 returns the 6 dot products of rows a0..a2 with rows w0, w1 (all of
// the same length). Each loaded value is used twice or three times, and the
// 6 independent sums hide the latency of the additions.
func dot3x2(a0, a1, a2, w0, w1 []float32) (c00, c01, c10, c11, c20, c21 float32) {
	n := len(a0)
	a1, a2, w0, w1 = a1[:n], a2[:n], w0[:n], w1[:n] // lets the compiler drop bounds checks
	for k, x0 := range a0 {
		y0, y1 := w0[k], w1[k]
		x1, x2 := a1[k], a2[k]
		c00 += x0 * y0
		c01 += x0 * y1
		c10 += x1 * y0
		c11 += x1 * y1
		c20 += x2 * y0
		c21 += x2 * y1
	}
	return
}

// dot1x4 returns the dot products of row a with rows w0..w3.
func dot1x4(a, w0, w1, w2, w3 []float32) (c0, c1, c2, c3 float32) {
	n := len(a)
	w0, w1, w2, w3 = w0[:n], w1[:n], w2[:n], w3[:n]
	for k, x := range a {
		c0 += x * w0[k]
		c1 += x * w1[k]
		c2 += x * w2[k]
		c3 += x * w3[k]
	}
	return
}

// dot returns Σ a[k]·b[k] over len(a), with 4 partial sums.
func dot(a, b []float32) float32 {
	n := len(a)
	b = b[:n]
	var s0, s1, s2, s3 float32
	k := 0
	for ; k+4 <= n; k += 4 {
		s0 += a[k] * b[k]
		s1 += a[k+1] * b[k+1]
		s2 += a[k+2] * b[k+2]
		s3 += a[k+3] * b[k+3]
	}
	for ; k < n; k++ {
		s0 += a[k] * b[k]
	}
	return (s0 + s1) + (s2 + s3)
}

// chunksPerWorker is how many pieces parallelFor cuts the work into per
// worker. Handing out several small pieces instead of one per worker keeps
// every core busy when the pieces cost different amounts (causal attention)
// or a core is shared with another process; re-reading a weight block per
// piece costs far less than the piece's arithmetic.
const chunksPerWorker = 4

// parallelFor splits [0, n) into contiguous chunks whose boundaries are
// multiples of align and runs fn on every chunk, on up to `workers`
// goroutines at once.
func parallelFor(workers, n, align int, fn func(lo, hi int)) {
	units := (n + align - 1) / align
	chunks := min(units, max(1, workers)*chunksPerWorker)
	if chunks <= 1 {
		fn(0, n)
		return
	}
	per := (units + chunks - 1) / chunks * align
	parallelItems(workers, (n+per-1)/per, func(_, c int) { fn(c*per, min((c+1)*per, n)) })
}

// parallelItems runs fn(worker, item) for every item in [0, items) on up to
// `workers` goroutines; the calling goroutine is worker 0, and each worker
// takes the next item as soon as it is free. worker < workers identifies
// the goroutine, so fn can use per-worker scratch buffers.
func parallelItems(workers, items int, fn func(worker, item int)) {
	workers = min(workers, items)
	if workers <= 1 {
		for i := 0; i < items; i++ {
			fn(0, i)
		}
		return
	}
	var next atomic.Int64
	work := func(w int) {
		for {
			i := int(next.Add(1) - 1)
			if i >= items {
				return
			}
			fn(w, i)
		}
	}
	var wg sync.WaitGroup
	for w := 1; w < workers; w++ {
		wg.Go(func() { work(w) })
	}
	work(0)
	wg.Wait()
}
