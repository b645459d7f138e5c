package gpu

import (
	"math/rand/v2"
	"testing"

	"github.com/remask/remask/shaders"
)

// TestStandardShapeKernels runs the matmul and attention kernels once at
// the standard model's width (C = 384, 6 heads, d = 64) on a short sequence,
// so the register-heavy d = 64 attention variant and the fast matmul path
// at trunk widths are covered without a long lavapipe run.
func TestStandardShapeKernels(t *testing.T) {
	d := testBackend(t).d
	rng := rand.New(rand.NewPCG(21, 22))
	B, T, C, H := 2, 128, 384, 6
	t.Run("attention", func(t *testing.T) {
		qkv := randVec(rng, B*T*3*C, 1)
		out := newCanaryBuf(t, d, B*T*C, nil)
		o, err := d.attention("test", B, T, C, H, false, whole(inBuf(t, d, qkv)), out.bind())
		if err != nil {
			t.Fatal(err)
		}
		got := run(t, d, []op{o}, out)
		checkClose(t, "attention 2x128x384", got, attentionTwin(qkv, B, T, C, H, false), 2e-5, 1e-4)
	})
	t.Run("matmul", func(t *testing.T) {
		M, N, K := B*T, 4*C, C
		a := randVec(rng, M*K, 1)
		w := randVec(rng, N*K, 0.05)
		out := newCanaryBuf(t, d, M*N, nil)
		o, err := d.matmul("test", M, N, K, whole(inBuf(t, d, a)), wbuf{b: inBuf(t, d, w)}, nil, out.bind(), shaders.ActGELU, false)
		if err != nil {
			t.Fatal(err)
		}
		got := run(t, d, []op{o}, out)
		want := make([]float64, M*N)
		for i := 0; i < M; i++ {
			for j := 0; j < N; j++ {
				var acc float64
				for k := 0; k < K; k++ {
					acc += float64(a[i*K+k]) * float64(w[j*K+k])
				}
				want[i*N+j] = geluF64(acc)
			}
		}
		checkClose(t, "matmul 256x1536x384", got, want, 1e-4, 1e-5)
	})
}
