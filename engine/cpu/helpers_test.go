package cpu

import (
	"fmt"
	"math"
	"testing"

	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/internal/enginetest"
	"github.com/remask/remask/internal/golden"
)

// testConfig, randomModel and randomTokens are the contract suite's
// (internal/enginetest): every backend tests the same models.
func testConfig() model.Config { return enginetest.Config() }

func randomModel(t testing.TB, cfg model.Config, seed uint64) *model.Model {
	t.Helper()
	return enginetest.RandomModel(t, cfg, seed)
}

func randomTokens(B, T, V int, seed uint64) []int32 { return enginetest.RandomTokens(B, T, V, seed) }

func mustLoad(t testing.TB, m *model.Model, threads int) *Net {
	t.Helper()
	n, err := New(threads).load(m)
	if err != nil {
		t.Fatalf("load: %v", err)
	}
	return n
}

// maxAbsDiff returns max |a[i] - b[i]| and where; NaN counts as infinite.
func maxAbsDiff(a []float32, b []float64) (float64, int) { return golden.MaxAbsDiff(a, b) }

// ---- a float64 reference forward pass, written straight from sampler-spec §1 ----

// refModel evaluates a model in float64 with plain loops, one position at a
// time; it shares no code with the backend.
type refModel struct {
	m   *model.Model
	cfg *model.Config
}

func (r refModel) w(name string) []float64 {
	t := r.m.T(name)
	out := make([]float64, len(t.Data))
	for i, v := range t.Data {
		out[i] = float64(v)
	}
	return out
}

func (r refModel) opt(name string) []float64 {
	if _, ok := r.m.Tensors[name]; !ok {
		return nil
	}
	return r.w(name)
}

// linear: y[o] = b[o] + Σ_i W[o][i] x[i], W (out, in).
func refLinear(x, W, b []float64, out int) []float64 {
	in := len(x)
	y := make([]float64, out)
	for o := range y {
		if b != nil {
			y[o] = b[o]
		}
		for i := 0; i < in; i++ {
			y[o] += W[o*in+i] * x[i]
		}
	}
	return y
}

func refLayerNorm(x, w, b []float64, eps float64) []float64 {
	n := float64(len(x))
	mean, v := 0.0, 0.0
	for _, a := range x {
		mean += a
	}
	mean /= n
	for _, a := range x {
		v += (a - mean) * (a - mean)
	}
	v /= n
	y := make([]float64, len(x))
	for i, a := range x {
		y[i] = (a - mean) / math.Sqrt(v+eps) * w[i]
		if b != nil {
			y[i] += b[i]
		}
	}
	return y
}

// encode returns h (B*T rows of C).
func (r refModel) encode(tokens []int32, B, T int) [][]float64 {
	cfg := r.cfg
	C, H := cfg.NEmbd, cfg.NHead
	d := C / H
	wte := r.w("transformer.wte.weight")
	x := make([][]float64, B*T)
	for p, id := range tokens {
		x[p] = append([]float64(nil), wte[int(id)*C:int(id+1)*C]...)
		if cfg.CLSTokenID != nil && int(id) == *cfg.CLSTokenID {
			x[p] = r.w("cls_embedding")
		}
		if cfg.PositionEncoding == model.Absolute {
			wpe := r.w("transformer.wpe.weight")
			for c := range x[p] {
				x[p][c] += wpe[(p%T)*C+c]
			}
		}
	}
	for l := 0; l < cfg.NLayer; l++ {
		pre := fmt.Sprintf("transformer.h.%d.", l)
		q := make([][]float64, B*T)
		k := make([][]float64, B*T)
		v := make([][]float64, B*T)
		attOut := make([][]float64, B*T) // c_proj(attention) per position; x changes only after all are done
		for p := range x {
			ln := refLayerNorm(x[p], r.w(pre+"ln_1.weight"), r.opt(pre+"ln_1.bias"), cfg.LayerNormEps)
			qkv := refLinear(ln, r.w(pre+"attn.c_attn.weight"), r.opt(pre+"attn.c_attn.bias"), 3*C)
			q[p], k[p], v[p] = qkv[:C], qkv[C:2*C], qkv[2*C:]
			if cfg.PositionEncoding == model.Rotary {
				t := float64(p % T)
				for h := 0; h < H; h++ {
					for _, vec := range [][]float64{q[p][h*d : (h+1)*d], k[p][h*d : (h+1)*d]} {
						for j := 0; j < d/2; j++ {
							angle := t / math.Pow(cfg.RopeBase, float64(2*j)/float64(d))
							c, s := math.Cos(angle), math.Sin(angle)
							a, b := vec[j], vec[j+d/2]
							vec[j], vec[j+d/2] = a*c-b*s, b*c+a*s
						}
					}
				}
			}
		}
		for b := 0; b < B; b++ {
			for i := 0; i < T; i++ {
				y := make([]float64, C)
				for h := 0; h < H; h++ {
					scores := make([]float64, T)
					mx := math.Inf(-1)
					for j := 0; j < T; j++ {
						scores[j] = math.Inf(-1)
						if cfg.Attention == model.Causal && j > i {
							continue
						}
						s := 0.0
						for e := 0; e < d; e++ {
							s += q[b*T+i][h*d+e] * k[b*T+j][h*d+e]
						}
						scores[j] = s / math.Sqrt(float64(d))
						mx = math.Max(mx, scores[j])
					}
					sum := 0.0
					for j := range scores {
						scores[j] = math.Exp(scores[j] - mx)
						sum += scores[j]
					}
					for j := range scores {
						for e := 0; e < d; e++ {
							y[h*d+e] += scores[j] / sum * v[b*T+j][h*d+e]
						}
					}
				}
				out := refLinear(y, r.w(pre+"attn.c_proj.weight"), r.opt(pre+"attn.c_proj.bias"), C)
				attOut[b*T+i] = out
			}
		}
		for p := range x {
			for c := range x[p] {
				x[p][c] += attOut[p][c]
			}
			ln := refLayerNorm(x[p], r.w(pre+"ln_2.weight"), r.opt(pre+"ln_2.bias"), cfg.LayerNormEps)
			fc := refLinear(ln, r.w(pre+"mlp.c_fc.weight"), r.opt(pre+"mlp.c_fc.bias"), 4*C)
			for i, a := range fc {
				fc[i] = 0.5 * a * (1 + math.Erf(a/math.Sqrt2))
			}
			out := refLinear(fc, r.w(pre+"mlp.c_proj.weight"), r.opt(pre+"mlp.c_proj.bias"), C)
			for c := range x[p] {
				x[p][c] += out[c]
			}
		}
	}
	for p := range x {
		x[p] = refLayerNorm(x[p], r.w("transformer.ln_f.weight"), r.opt("transformer.ln_f.bias"), cfg.LayerNormEps)
	}
	return x
}

// flatten concatenates rows.
func flatten(rows [][]float64) []float64 {
	var out []float64
	for _, r := range rows {
		out = append(out, r...)
	}
	return out
}

func (r refModel) logits(h [][]float64) []float64 {
	var out []float64
	name, n := "transformer.wte.weight", r.cfg.VocabSize
	if r.cfg.Kind == model.TokenClassifier {
		name, n = "lm_head.weight", r.cfg.NumTokenClasses
	}
	W := r.w(name)
	for _, hp := range h {
		out = append(out, refLinear(hp, W, nil, n)...)
	}
	return out
}

func (r refModel) critic(h [][]float64) []float64 {
	var out []float64
	W := r.w("critic_head.weight")
	for _, hp := range h {
		out = append(out, refLinear(hp, W, nil, 1)...)
	}
	return out
}

func (r refModel) sampler(h [][]float64, pos, left, right []int32) []float64 {
	C := r.cfg.NEmbd
	wte := r.w("transformer.wte.weight")
	nb := func(id int32) []float64 {
		if id < 0 {
			return make([]float64, C)
		}
		return wte[int(id)*C : int(id+1)*C]
	}
	silu := func(x []float64) {
		for i, a := range x {
			x[i] = a / (1 + math.Exp(-a))
		}
	}
	var out []float64
	for i, p := range pos {
		in := append(append(append([]float64(nil), nb(left[i])...), h[p]...), nb(right[i])...)
		z := refLinear(in, r.w("sampler_head.mlp.0.weight"), r.opt("sampler_head.mlp.0.bias"), C)
		silu(z)
		z = refLayerNorm(z, r.w("sampler_head.mlp.2.weight"), r.opt("sampler_head.mlp.2.bias"), r.cfg.LayerNormEps)
		z = refLinear(z, r.w("sampler_head.mlp.3.weight"), r.opt("sampler_head.mlp.3.bias"), C)
		silu(z)
		z = refLayerNorm(z, r.w("sampler_head.mlp.5.weight"), r.opt("sampler_head.mlp.5.bias"), r.cfg.LayerNormEps)
		out = append(out, refLinear(z, r.w("sampler_head.output_head.weight"), nil, r.cfg.VocabSize)...)
	}
	return out
}

func (r refModel) judge(h [][]float64, B, T int) []float64 {
	w := r.w("sequence_head.base_predictor.weight")
	A, Bs := r.w("sequence_head.A")[0], r.w("sequence_head.B")[0]
	out := make([]float64, B)
	for b := range out {
		s := 0.0
		for c, a := range h[b*T] {
			s += a * w[c]
		}
		out[b] = 1 / (1 + math.Exp(-(A*s + Bs)))
	}
	return out
}
