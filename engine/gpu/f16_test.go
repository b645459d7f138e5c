package gpu

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"path/filepath"
	"strings"
	"testing"

	"github.com/remask/remask/engine"
	"github.com/remask/remask/engine/cpu"
	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/engine/sampler"
	"github.com/remask/remask/shaders"
)

// Precision "f16" (Options.Precision): the F16 form of the generated matmul
// (shaders.MatmulUnrolled with F16 = 1) for the trunk's four matrices per
// block.
//
// Tolerance: in units of u = 2^-11 (f16's unit roundoff), an output of the
// F16 kernel differs from the exact product by at most
//
//	(2·BK + 1)·u·S + (K/BK + 10)·2^-24·S + (2·K + K/BK)·2^-25,  S = Σ_k |a_k·w_k|
//
// (first order): A is rounded to f16 (u relative per term), each of the BK
// products and BK additions of a K tile's f16 sum rounds once (u relative
// to the partial sum, itself <= S; 2·BK roundings whether or not the
// driver fuses the FMA), the K/BK tile sums (and up to mmMaxSplits = 8
// K-split partials) are added in f32 (2^-24), and a
// subnormal f16 result rounds absolutely by at most 2^-25. The weights are
// f16 values (an F16 file's, or rounded at upload: uploadHalf) and count
// exactly. f16Bound computes it; matmulF16Model is the CPU twin of the
// kernel's arithmetic, held to the bound on the CPU in every run
// (TestMatmulF16Model), and the kernel itself is held to it where the
// device compiles f16 (TestPrecisionF16).

const f16U = 1.0 / 2048 // 2^-11

// f16Round rounds x to the nearest float16 value (through float32; the
// double rounding adds at most 2^-24 relative, inside f16Bound's slack).
func f16Round(x float64) float64 {
	h, _ := model.Float32ToFloat16(float32(x))
	return float64(model.Float16ToFloat32(h))
}

// matmulF16Model is the CPU twin of the F16 kernel: out (M, N) = a (M, K) ·
// w (N, K)ᵀ with a rounded to f16, each K tile of BK terms summed in f16
// (fused multiply-add, one rounding per step) and the tile sums added in
// f32, in the kernel's order.
func matmulF16Model(M, N, K, BK int, a, w []float32) []float32 {
	out := make([]float32, M*N)
	for i := 0; i < M; i++ {
		for j := 0; j < N; j++ {
			var c float32
			for k0 := 0; k0 < K; k0 += BK {
				h := 0.0
				for k := k0; k < k0+BK; k++ {
					h = f16Round(f16Round(float64(a[i*K+k]))*f16Round(float64(w[j*K+k])) + h)
				}
				c += float32(h)
			}
			out[i*N+j] = c
		}
	}
	return out
}

// f16Bound is the bound above for one output element, S = Σ_k |a_k·w_k|.
func f16Bound(S float64, K, BK int) float64 {
	return float64(2*BK+1)*f16U*S + float64(K/BK+2+mmMaxSplits)*math.Ldexp(S, -24) + float64(2*K+K/BK)*math.Ldexp(1, -25)
}

// absSums are S for every output of a (M, K) · w (N, K)ᵀ, w rounded to f16.
func absSums(M, N, K int, a, w []float32) []float64 {
	s := make([]float64, M*N)
	for i := 0; i < M; i++ {
		for j := 0; j < N; j++ {
			for k := 0; k < K; k++ {
				s[i*N+j] += math.Abs(float64(a[i*K+k]) * f16Round(float64(w[j*K+k])))
			}
		}
	}
	return s
}

// f16Ref is the float64 product of a and the f16-rounded w, and S for
// every output.
func f16Ref(M, N, K int, a, w []float32) (want, S []float64) {
	wr := make([]float32, len(w))
	for i, v := range w {
		wr[i] = float32(f16Round(float64(v)))
	}
	return matmulRef(M, N, K, a, wr, nil, nil, false, false, shaders.ActNone), absSums(M, N, K, a, w)
}

// checkF16 holds got to f16Bound against the float64 product of a and the
// f16-rounded w, and returns the largest error in units of u·S.
func checkF16(t *testing.T, what string, M, N, K, BK int, a, w, got []float32) float64 {
	t.Helper()
	want, S := f16Ref(M, N, K, a, w)
	return checkF16Ref(t, what, K, BK, want, S, got)
}

// checkF16Ref is checkF16 with f16Ref's results.
func checkF16Ref(t *testing.T, what string, K, BK int, want, S []float64, got []float32) float64 {
	t.Helper()
	worst := 0.0
	for i := range got {
		d := math.Abs(float64(got[i]) - want[i])
		if !(d <= f16Bound(S[i], K, BK)) {
			t.Fatalf("%s: element %d = %v, want %v: |diff| %.3g > bound %.3g (S = %.3g, K = %d, BK = %d)", what, i, got[i], want[i], d, f16Bound(S[i], K, BK), S[i], K, BK)
		}
		if S[i] > 0 {
			worst = max(worst, d/(f16U*S[i]))
		}
	}
	// The kernel must round like f16: an f32 kernel stays near 2^-24/u =
	// 1/8192 u·S per rounding (below 0.01 u·S on these shapes); every f16
	// run so far is above 0.16.
	if worst < 0.05 {
		t.Fatalf("%s: max |err| %.4f u·S: the kernel does not round like f16", what, worst)
	}
	return worst
}

// TestMatmulF16Model holds the CPU twin of the F16 kernel to f16Bound over
// awkward shapes (M off every tile, one K tile, deep K) and both K tiles
// the backend uses (8: the 128x128 tile; 16: the others). It runs on every
// machine: the kernel itself can only be checked where the device compiles
// f16 (TestPrecisionF16).
func TestMatmulF16Model(t *testing.T) {
	rng := rand.New(rand.NewPCG(31, 32))
	for _, s := range []struct{ M, N, K, BK int }{{1, 4, 8, 8}, {13, 8, 64, 8}, {37, 12, 384, 8}, {5, 16, 1536, 16}, {97, 4, 16, 16}, {3, 8, 400, 16}} {
		a := randVec(rng, s.M*s.K, 1)
		w := randVec(rng, s.N*s.K, 0.3)
		got := matmulF16Model(s.M, s.N, s.K, s.BK, a, w)
		worst := checkF16(t, fmt.Sprintf("model %dx%dx%d/BK%d", s.M, s.N, s.K, s.BK), s.M, s.N, s.K, s.BK, a, w, got)
		t.Logf("f16 model %dx%dx%d BK %d: max |err| = %.3f u·S (bound %d u·S)", s.M, s.N, s.K, s.BK, worst, 2*s.BK+1)
		if worst == 0 {
			t.Errorf("%dx%dx%d: the f16 model is exact: it does not round like the kernel", s.M, s.N, s.K)
		}
	}
}

// TestPrecisionF16 opens a device with Options.Precision "f16". Where that
// is refused, the error must name the reason this adapter and build have
// (no shader-f16; or, as with wgpu-native v22 on lavapipe and on NVIDIA,
// a shader compiler without f16). Where it opens, the F16 matmul kernels
// are held to f16Bound over a sweep of shapes and tiles, a forward is
// compared with the CPU backend's, and the text of a generation with the
// shipped small model is compared with the f32 path's, character by
// character (reported, not required to be equal).
func TestPrecisionF16(t *testing.T) {
	ai := testBackend(t).Info()
	be, err := New(context.Background(), Options{Precision: "f16"})
	if err != nil {
		want := "refused the f16 matmul kernel"
		if !ai.ShaderF16 {
			want = "does not offer"
		}
		if !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "use precision f32") {
			t.Fatalf("New(precision f16) on %q (shader-f16 %v): %v; want an error saying %q and the fix", ai.Name, ai.ShaderF16, err, want)
		}
		t.Logf("precision f16 is refused here, as it must be: %v", err)
		return
	}
	defer be.Close()
	if be.Precision() != "f16" || !strings.HasSuffix(be.Name(), ", f16)") {
		t.Fatalf("precision f16 opened, but Precision() = %q, Name() = %q", be.Precision(), be.Name())
	}
	checkF16Backend(t, be, "f16")
}

// TestF16Emulated runs the checks of TestPrecisionF16's f16 branch on the
// F16 form's arithmetic emulated in f32 (shaders.MatmulUnrolled F16 = 2:
// every f16 result rounded through pack2x16float), which every adapter
// compiles: the bound, the weight upload, the trunk's wiring (the split
// kernels included), a forward against the CPU backend and the text
// agreement with f32 run in CI, on lavapipe, though f16 itself cannot.
// What it does not cover: the f16 types and instructions (the naga and
// Tint CLIs validate those: shaders' TestF16Variants).
func TestF16Emulated(t *testing.T) {
	testBackend(t)
	be, err := New(context.Background(), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	be.d.f16, be.d.f16Emulate = true, true
	checkF16Backend(t, be, "f16 emulated")
}

// TestF16EmulatedDefaultLimits is TestF16Emulated on a device opened with
// Options.Limits "default" (the spec's defaults, below what lavapipe's
// adapter offers): the F16 form's pipelines go through the same footprint
// checks as every other kernel and stay within the granted limits.
func TestF16EmulatedDefaultLimits(t *testing.T) {
	testBackend(t)
	be, err := New(context.Background(), Options{Limits: "default"})
	if err != nil {
		t.Fatal(err)
	}
	defer be.Close()
	be.d.f16, be.d.f16Emulate = true, true
	checkF16Backend(t, be, "f16 emulated, default limits")
	checkWithinLimits(t, be)
	n := 0
	for key := range be.d.footprints {
		if strings.Contains(key, "F16=2u") {
			n++
		}
	}
	if n == 0 {
		t.Error("no pipeline of the F16 form recorded a footprint: the f16 kernels bypassed the limit checks")
	}
	t.Logf("%d pipelines of the F16 form checked against the default limits", n)
}

// checkF16Backend holds a backend whose trunk matmuls run the F16 form to
// f16Bound (kernels), gpu.F16LogitBound (a forward) and reports the text
// agreement of a generation with f32's.
func checkF16Backend(t *testing.T, be *Backend, label string) {
	d := be.d
	rng := rand.New(rand.NewPCG(33, 34))
	t.Run("matmul", func(t *testing.T) {
		for _, s := range []struct{ M, N, K int }{{1, 128, 16}, {5, 32, 16}, {131, 128, 40}, {33, 64, 80}, {200, 384, 24}, {67, 1536, 384}, {17, 384, 1536}} {
			a := randVec(rng, s.M*s.K, 1)
			w := randVec(rng, s.N*s.K, 0.3)
			want, S := f16Ref(s.M, s.N, s.K, a, w)
			for _, tl := range []matmulTile{tile128, tile64, tile32, tile128db, tile64db, tile32db, layoutTile("128x128x8x8x8nw8c2"), layoutTile("32x32x16x4x4dbnw4"), tile32k4, tile32dbnw4k2} {
				if !tl.unrollsWithin(s.N, s.K, d.shmax()) {
					continue
				}
				n := &Net{d: d}
				wb, err := n.uploadHalf("w", w, shaders.WeightF32)
				if err != nil {
					t.Fatal(err)
				}
				out := newCanaryBuf(t, d, s.M*s.N, nil)
				o, err := d.matmulTiled("test", tl, s.M, s.N, s.K, whole(inBuf(t, d, a)), wb, nil, out.bind(), shaders.ActNone, false)
				if err != nil {
					t.Fatal(err)
				}
				got := run(t, d, []op{o}, out)
				for _, b := range n.weights {
					b.destroy()
				}
				worst := checkF16Ref(t, fmt.Sprintf("%s matmul %dx%dx%d/%v", label, s.M, s.N, s.K, tl), s.K, tl.BK, want, S, got)
				t.Logf("%s matmul %dx%dx%d %v: max |err| = %.3f u·S (bound %d u·S)", label, s.M, s.N, s.K, tl, worst, 2*tl.BK+1)
			}
		}
	})
	t.Run("matmul split", func(t *testing.T) {
		// The K-split form (MatmulUnrolled with KSPLIT and F16, then
		// MatmulReduce): small batches of deep K (1 x 256: mlp.c_proj).
		M, N, K, S := 17, 96, 1536, 4
		a := randVec(rng, M*K, 1)
		w := randVec(rng, N*K, 0.3)
		n := &Net{d: d}
		wb, err := n.uploadHalf("w", w, shaders.WeightF32)
		if err != nil {
			t.Fatal(err)
		}
		defer func() {
			for _, b := range n.weights {
				b.destroy()
			}
		}()
		out := newCanaryBuf(t, d, M*N, nil)
		rec := newCanaryBuf(t, d, S*M*N, nil)
		ops, err := d.matmulSplit("test", tile32, S, M, N, K, whole(inBuf(t, d, a)), wb, nil, out.bind(), shaders.ActNone, false, rec.bind())
		if err != nil {
			t.Fatal(err)
		}
		got := run(t, d, ops, out)
		worst := checkF16(t, label+" split matmul", M, N, K, tile32.BK, a, w, got)
		t.Logf("%s matmul %dx%dx%d split %d ways %v: max |err| = %.3f u·S (bound %d u·S)", label, M, N, K, S, tile32, worst, 2*tile32.BK+1)
	})
	t.Run("forward", func(t *testing.T) {
		m, err := model.Load(filepath.Join(goldenDir, "lm_rope_bidir_bias.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		g, err := be.Load(context.Background(), m)
		if err != nil {
			t.Fatal(err)
		}
		defer g.(*Net).Close()
		c, err := cpu.New(2).Load(context.Background(), m)
		if err != nil {
			t.Fatal(err)
		}
		B, T := 2, 32
		tokens := make([]int32, B*T)
		for i := range tokens {
			tokens[i] = int32(rng.IntN(m.Config.VocabSize))
		}
		logits := func(n engine.Net) []float32 {
			h, err := n.Encode(context.Background(), tokens, B, T)
			if err != nil {
				t.Fatal(err)
			}
			out := make([]float32, B*T*m.Config.VocabSize)
			if err := n.Logits(context.Background(), h, out); err != nil {
				t.Fatal(err)
			}
			return out
		}
		got, want := logits(g), logits(c)
		diff, at := maxAbsDiff(got, f64(want))
		if !(diff <= F16LogitBound) {
			t.Fatalf("%s forward: max |logit diff| vs the CPU backend %.3g at %d > %g", label, diff, at, F16LogitBound)
		}
		t.Logf("%s forward 2x32 (%s): max |logit diff| vs the CPU backend = %.3g", label, m.Name(), diff)
	})
	t.Run("text", func(t *testing.T) {
		m, err := model.Load(filepath.Join("..", "..", "models", "shakespeare-small.safetensors"))
		if err != nil {
			t.Fatal(err)
		}
		gen := func(b engine.Backend) string {
			n, err := b.Load(context.Background(), m)
			if err != nil {
				t.Fatal(err)
			}
			defer n.(*Net).Close()
			o := sampler.Defaults()
			o.NumSamples, o.SequenceLength, o.Iterations, o.Seed = 2, 64, 5, 1
			res, err := sampler.Generate(context.Background(), sampler.Models{LM: n}, o, nil)
			if err != nil {
				t.Fatal(err)
			}
			var s strings.Builder
			for _, x := range res.Samples {
				s.WriteString(x.Text)
			}
			return s.String()
		}
		a, b := []rune(gen(testBackend(t))), []rune(gen(be))
		same := 0
		for i := range min(len(a), len(b)) {
			if a[i] == b[i] {
				same++
			}
		}
		t.Logf("text agreement %s vs f32 (%s, 2 x 64, 5 iterations, seed 1): %d of %d characters (%.1f%%)", label, m.Name(), same, max(len(a), len(b)), 100*float64(same)/float64(max(len(a), len(b), 1)))
	})
}
