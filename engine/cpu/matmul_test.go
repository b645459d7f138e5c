package cpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"sync"
	"testing"
)

func randSlice(rng *rand.Rand, n int) []float32 {
	s := make([]float32, n)
	for i := range s {
		s[i] = float32(rng.NormFloat64())
	}
	return s
}

// TestGemmMatchesNaive compares the blocked, threaded product with the
// three-loop reference over shapes of size 1, primes, non-multiples of the
// 3x2 tile and of the cache block, and the model's own 384x1536, with and
// without bias, contiguous and strided, on 1 to 3 workers.
func TestGemmMatchesNaive(t *testing.T) {
	shapes := []struct{ M, N, K int }{
		{1, 1, 1}, {1, 7, 13}, {7, 1, 13}, {2, 3, 5}, {3, 2, 1}, {4, 5, 6},
		{7, 13, 67}, {13, 67, 7}, {67, 13, 7}, {67, 67, 67}, {5, 4, 384},
		{31, 97, 1536}, // K so large that the cache block holds only a few w rows
		{97, 385, 11},  // N spans several cache blocks with a partial one
		{64, 1536, 384}, {37, 384, 1536},
	}
	rng := rand.New(rand.NewPCG(1, 2))
	for _, s := range shapes {
		for _, strided := range []bool{false, true} {
			for _, withBias := range []bool{false, true} {
				name := fmt.Sprintf("%dx%dx%d/strided=%v/bias=%v", s.M, s.N, s.K, strided, withBias)
				t.Run(name, func(t *testing.T) {
					pad := 0
					if strided {
						pad = 3
					}
					g := gemm{M: s.M, N: s.N, K: s.K, lda: s.K + pad, ldw: s.K + 2*pad, ldo: s.N + pad}
					g.a = randSlice(rng, s.M*g.lda)
					g.w = randSlice(rng, s.N*g.ldw)
					if withBias {
						g.bias = randSlice(rng, s.N)
					}
					want := g
					want.out = make([]float32, s.M*g.ldo)
					want.naive()
					for _, workers := range []int{1, 2, 3} {
						got := g
						got.out = make([]float32, s.M*g.ldo)
						for i := range got.out {
							got.out[i] = 12345 // canary: padding must stay untouched
						}
						got.run(workers)
						for i := 0; i < s.M; i++ {
							for j := 0; j < g.ldo; j++ {
								o, r := got.out[i*g.ldo+j], want.out[i*g.ldo+j]
								if j >= s.N {
									if o != 12345 {
										t.Fatalf("workers=%d: out[%d,%d] (stride padding) = %v, was overwritten", workers, i, j, o)
									}
									continue
								}
								// float32 sums of K products of N(0,1) values: error grows like sqrt(K).
								tol := 1e-5 * math.Sqrt(float64(s.K)) * (1 + math.Abs(float64(r)))
								if d := math.Abs(float64(o - r)); d > tol {
									t.Fatalf("workers=%d: out[%d,%d] = %v, naive %v (diff %.3g > %.3g)", workers, i, j, o, r, d, tol)
								}
							}
						}
					}
				})
			}
		}
	}
}

func TestParallelForCoversRange(t *testing.T) {
	for _, tc := range []struct{ workers, n, align int }{
		{1, 10, 3}, {2, 10, 3}, {3, 10, 3}, {4, 1, 1}, {2, 2, 2}, {7, 100, 4}, {2, 0, 1},
	} {
		seen := make([]int, tc.n)
		ch := make(chan [2]int, 64)
		parallelFor(tc.workers, tc.n, tc.align, func(lo, hi int) { ch <- [2]int{lo, hi} })
		close(ch)
		chunks := 0
		for c := range ch {
			chunks++
			if c[0]%tc.align != 0 {
				t.Errorf("%+v: chunk [%d,%d) starts off the alignment", tc, c[0], c[1])
			}
			for i := c[0]; i < c[1]; i++ {
				seen[i]++
			}
		}
		if chunks > max(tc.workers, 1)*chunksPerWorker {
			t.Errorf("%+v: %d chunks for %d workers", tc, chunks, tc.workers)
		}
		for i, k := range seen {
			if k != 1 {
				t.Errorf("%+v: index %d covered %d times", tc, i, k)
			}
		}
	}
}

func BenchmarkGemm(b *testing.B) {
	for _, s := range []struct{ M, N, K int }{{256, 1536, 384}, {256, 384, 1536}, {256, 1152, 384}} {
		for _, workers := range []int{1, 2} {
			b.Run(fmt.Sprintf("%dx%dx%d/workers=%d", s.M, s.N, s.K, workers), func(b *testing.B) {
				rng := rand.New(rand.NewPCG(3, 4))
				g := linear(make([]float32, s.M*s.N), randSlice(rng, s.M*s.K), randSlice(rng, s.N*s.K), randSlice(rng, s.N), s.M, s.N, s.K)
				for b.Loop() {
					g.run(workers)
				}
				b.ReportMetric(float64(2*s.M*s.N*s.K)*float64(b.N)/b.Elapsed().Seconds()/1e9, "GFLOP/s")
			})
		}
	}
}

func TestParallelItems(t *testing.T) {
	for _, tc := range []struct{ workers, items int }{{1, 5}, {2, 1}, {2, 9}, {3, 100}, {4, 0}} {
		var mu sync.Mutex
		seen := make([]int, tc.items)
		parallelItems(tc.workers, tc.items, func(w, it int) {
			if w < 0 || w >= max(tc.workers, 1) {
				t.Errorf("%+v: worker id %d", tc, w)
			}
			mu.Lock()
			seen[it]++
			mu.Unlock()
		})
		for i, k := range seen {
			if k != 1 {
				t.Errorf("%+v: item %d ran %d times", tc, i, k)
			}
		}
	}
}
