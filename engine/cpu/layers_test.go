package cpu

import (
	"math"
	"math/rand/v2"
	"testing"
)

func close32(a float32, b, tol float64) bool { return math.Abs(float64(a)-b) <= tol }

func TestLayerNormStatistics(t *testing.T) {
	const N, C = 5, 37
	rng := rand.New(rand.NewPCG(1, 1))
	in := make([]float32, N*C)
	for i := range in {
		in[i] = float32(3 + 10*rng.NormFloat64()) // offset and scale that must be removed
	}
	ones := make([]float32, C)
	for i := range ones {
		ones[i] = 1
	}
	out := make([]float32, N*C)
	layerNorm(out, in, ones, nil, N, C, 1e-5)
	for i := 0; i < N; i++ {
		var mean, sq float64
		for _, v := range out[i*C : (i+1)*C] {
			mean += float64(v)
		}
		mean /= C
		for _, v := range out[i*C : (i+1)*C] {
			sq += (float64(v) - mean) * (float64(v) - mean)
		}
		if math.Abs(mean) > 1e-6 || math.Abs(sq/C-1) > 1e-4 {
			t.Errorf("row %d: mean %.3g, biased variance %.6f; want 0 and 1", i, mean, sq/C)
		}
	}

	// Affine part and eps: [1, 3] has mean 2, biased variance 1, so
	// (x - 2)/sqrt(1 + eps) = -+1/sqrt(1.5) with eps 0.5; then ·w + b.
	got := make([]float32, 2)
	layerNorm(got, []float32{1, 3}, []float32{2, -1}, []float32{0.5, 10}, 1, 2, 0.5)
	r := 1 / math.Sqrt(1.5)
	if want := []float64{-2*r + 0.5, -r + 10}; !close32(got[0], want[0], 1e-6) || !close32(got[1], want[1], 1e-6) {
		t.Errorf("layerNorm([1 3], w=[2 -1], b=[0.5 10], eps=0.5) = %v, want %v", got, want)
	}

	// In place (out aliases in), as the sampler head uses it.
	x := []float32{1, 3}
	layerNorm(x, x, []float32{2, -1}, []float32{0.5, 10}, 1, 2, 0.5)
	if x[0] != got[0] || x[1] != got[1] {
		t.Errorf("in-place layerNorm = %v, want %v", x, got)
	}
}

func TestGELU(t *testing.T) {
	// Known values of x·Φ(x): Φ(1) = 0.841344746..., Φ(2) = 0.977249868..., Φ(-3) = 0.001349898...
	for _, tc := range []struct{ x, want float64 }{
		{0, 0}, {1, 0.8413447460685429}, {-1, -0.15865525393145707},
		{2, 1.9544997361036416}, {-3, -0.0040496940948904},
	} {
		if got := geluScalar(float32(tc.x)); !close32(got, tc.want, 1e-7) {
			t.Errorf("gelu(%v) = %v, want %v", tc.x, got, tc.want)
		}
	}
	// The whole-slice version, threaded, against the erf definition.
	x := make([]float32, 5000)
	for i := range x {
		x[i] = float32(i-2500) / 300
	}
	y := append([]float32(nil), x...)
	gelu(y, 3)
	for i, v := range x {
		a := float64(v)
		if want := 0.5 * a * (1 + math.Erf(a/math.Sqrt2)); !close32(y[i], want, 1e-6*(1+math.Abs(want))) {
			t.Fatalf("gelu(%v) = %v, want %v", v, y[i], want)
		}
	}
}

func TestRopeRotateHalf(t *testing.T) {
	// d = 4, base 10000: inv_freq = [1, 10000^(-2/4)] = [1, 0.01]. Feature j
	// pairs with j+2 and uses frequency j mod 2. At position p:
	// x' = [x0·cos p - x2·sin p, x1·cos .01p - x3·sin .01p,
	//       x2·cos p + x0·sin p, x3·cos .01p + x1·sin .01p].
	r := newRopeTables(4, 10000)
	r.ensure(8)
	for _, tc := range []struct {
		p    int
		want []float64
	}{
		{0, []float64{1, 2, 3, 4}}, // angle 0: identity
		{1, []float64{-1.9841106485555495, 1.959900667496664, 2.4623779024123156, 4.019799668334994}},
		{3, []float64{-1.413352520780047, 1.8791180666879925, -2.828857481741469, 4.058191135400942}},
	} {
		x := []float32{1, 2, 3, 4}
		r.rope(x, tc.p)
		for j := range x {
			if !close32(x[j], tc.want[j], 1e-6) {
				t.Errorf("rope([1 2 3 4], p=%d) = %v, want %v", tc.p, x, tc.want)
				break
			}
		}
	}

	// ropeQK rotates q and k of each head at its own position and leaves v alone.
	const B, T, C, H = 2, 3, 8, 2
	qkv := make([]float32, B*T*3*C)
	for i := range qkv {
		qkv[i] = float32(i%7) - 3
	}
	orig := append([]float32(nil), qkv...)
	r.ropeQK(qkv, B, T, C, H)
	for b := 0; b < B; b++ {
		for tt := 0; tt < T; tt++ {
			row := (b*T + tt) * 3 * C
			for part := 0; part < 3; part++ {
				for h := 0; h < H; h++ {
					off := row + part*C + h*4
					want := append([]float32(nil), orig[off:off+4]...)
					if part < 2 {
						r.rope(want, tt)
					}
					for j := range want {
						if qkv[off+j] != want[j] {
							t.Fatalf("b=%d t=%d part=%d head=%d: got %v, want %v", b, tt, part, h, qkv[off:off+4], want)
						}
					}
				}
			}
		}
	}
}

func TestSoftmaxRow(t *testing.T) {
	row := []float32{1, 2, 3, 100}
	softmaxRow(row, 3, 0.5) // the 4th key is masked
	var e [3]float64
	sum := 0.0
	for j := range e {
		e[j] = math.Exp(0.5 * float64(j+1))
		sum += e[j]
	}
	for j := range e {
		if !close32(row[j], e[j]/sum, 1e-7) {
			t.Errorf("p[%d] = %v, want %v", j, row[j], e[j]/sum)
		}
	}
	if row[3] != 0 {
		t.Errorf("masked key has probability %v, want 0", row[3])
	}
	// Large scores must not overflow.
	big := []float32{1e30, 1e30}
	softmaxRow(big, 2, 1)
	if big[0] != 0.5 || big[1] != 0.5 {
		t.Errorf("softmax of equal huge scores = %v, want [0.5 0.5]", big)
	}
}

// TestAttentionBlocks checks attention against a direct computation on
// a case with more query rows than one work item (attnRows) so that causal
// blocks with a partial key range are covered.
func TestAttentionBlocks(t *testing.T) {
	const B, H, d = 1, 2, 3
	const C = H * d
	T := attnRows + 9
	rng := rand.New(rand.NewPCG(4, 4))
	qkv := randSlice(rng, B*T*3*C)
	for _, causal := range []bool{false, true} {
		out := make([]float32, B*T*C)
		vt := make([]float32, B*T*C)
		scratch := make([]attnScratch, 2)
		for i := range scratch {
			scratch[i].att = make([]float32, attnRows*T)
		}
		attention(out, qkv, vt, B, T, C, H, causal, scratch)
		for i := 0; i < T; i++ {
			for h := 0; h < H; h++ {
				n := T
				if causal {
					n = i + 1
				}
				s := make([]float64, n)
				mx := math.Inf(-1)
				for j := range s {
					for e := 0; e < d; e++ {
						s[j] += float64(qkv[i*3*C+h*d+e]) * float64(qkv[j*3*C+C+h*d+e])
					}
					s[j] /= math.Sqrt(d)
					mx = math.Max(mx, s[j])
				}
				sum := 0.0
				for j := range s {
					s[j] = math.Exp(s[j] - mx)
					sum += s[j]
				}
				for e := 0; e < d; e++ {
					want := 0.0
					for j := range s {
						want += s[j] / sum * float64(qkv[j*3*C+2*C+h*d+e])
					}
					if got := out[i*C+h*d+e]; !close32(got, want, 1e-5) {
						t.Fatalf("causal=%v: out[t=%d, head %d, %d] = %v, want %v", causal, i, h, e, got, want)
					}
				}
			}
		}
	}
}

func TestEmbedCLSAndPositions(t *testing.T) {
	const T, C = 3, 2
	wte := []float32{0, 1, 10, 11, 20, 21} // V = 3
	wpe := []float32{100, 200, 300, 400, 500, 600}
	cls := []float32{-7, -8}
	x := make([]float32, 2*T*C)
	embed(x, []int32{2, 0, 1, 1, 2, 2}, T, C, wte, wpe, cls, 2)
	want := []float32{
		-7 + 100, -8 + 200, 0 + 300, 1 + 400, 10 + 500, 11 + 600, // row 0: CLS, 0, 1
		10 + 100, 11 + 200, -7 + 300, -8 + 400, -7 + 500, -8 + 600, // row 1: 1, CLS, CLS
	}
	for i := range want {
		if x[i] != want[i] {
			t.Fatalf("embed = %v, want %v", x, want)
		}
	}
	embed(x[:T*C], []int32{2, 0, 1}, T, C, wte, nil, nil, -1) // no positions, no CLS swap
	if want := []float32{20, 21, 0, 1, 10, 11}; !equal32(x[:T*C], want) {
		t.Fatalf("embed without wpe/cls = %v, want %v", x[:T*C], want)
	}
}

func equal32(a, b []float32) bool {
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
