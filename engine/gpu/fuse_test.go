package gpu

import (
	"fmt"
	"math"
	"math/rand/v2"
	"testing"

	"github.com/remask/remask/shaders"
)

// The fused kernels of the trunk (addnorm.wgsl, embednorm.wgsl, the rope
// inside AttentionUnrolled) against float64 twins, and against the unfused
// kernels they replace.

// lnTwin is engine/cpu's layerNorm in float64: the rows of x (N, C) with
// weight w and bias b (nil: none).
func lnTwin(x []float64, N, C int, w, b []float32) []float64 {
	y := make([]float64, N*C)
	for i := 0; i < N; i++ {
		row := x[i*C : (i+1)*C]
		var mean, ss float64
		for _, v := range row {
			mean += v
		}
		mean /= float64(C)
		for _, v := range row {
			ss += (v - mean) * (v - mean)
		}
		rstd := 1 / math.Sqrt(ss/float64(C)+1e-5)
		for c, v := range row {
			y[i*C+c] = (v - mean) * rstd * float64(w[c])
			if b != nil {
				y[i*C+c] += float64(b[c])
			}
		}
	}
	return y
}

// TestAddNormSweep checks addnorm.wgsl (the K-split reduce, the residual
// add and the LayerNorm in one kernel) against the float64 twin, for x
// and for y, with canaries around both and around the partials: C of 1,
// below, at and off the workgroup (128) and off 4, 1 to 8 partials, with
// and without either bias, more rows than one grid dimension holds; then against MatmulReduce + layernorm.wgsl, the
// two kernels it replaces, whose sums it makes in the same order.
func TestAddNormSweep(t *testing.T) {
	d := testBackend(t).d
	rng := rand.New(rand.NewPCG(31, 32))
	for _, s := range []struct{ N, C, S int }{
		{1, 1, 1}, {1, 2, 2}, {3, 7, 3}, {5, 127, 8}, {2, 128, 4}, {7, 129, 5}, {11, 384, 4}, {3, 1000, 6}, {300, 12, 7}, {4, 384, 8},
		{66000, 4, 2}, // more rows than workgroups in x: a 2-D grid
	} {
		for _, bias := range []bool{false, true} {
			name := fmt.Sprintf("N%d_C%d_S%d/bias%v", s.N, s.C, s.S, bias)
			t.Run(name, func(t *testing.T) {
				NC := s.N * s.C
				rec := randVec(rng, s.S*NC, 1)
				x0 := randVec(rng, NC, 2)
				for i := range x0 {
					x0[i] += 3 // a mean far from 0
				}
				mb := randVec(rng, s.C, 0.3)
				lw := randVec(rng, s.C, 1)
				lb := randVec(rng, s.C, 0.5)
				var mbb, lbb *buffer
				if bias {
					mbb, lbb = inBuf(t, d, mb), inBuf(t, d, lb)
				}
				wantX := make([]float64, NC)
				for i := range wantX {
					v := float64(x0[i])
					for z := 0; z < s.S; z++ {
						v += float64(rec[z*NC+i])
					}
					if bias {
						v += float64(mb[i%s.C])
					}
					wantX[i] = v
				}
				var lbs []float32
				if bias {
					lbs = lb
				}
				wantY := lnTwin(wantX, s.N, s.C, lw, lbs)
				x := newCanaryBuf(t, d, NC, x0)
				y := newCanaryBuf(t, d, NC, nil)
				r := newCanaryBuf(t, d, s.S*NC, rec)
				o, err := d.addNorm("test", s.N, s.C, s.S, r.bind(), mbb, x.bind(), inBuf(t, d, lw), lbb, y.bind(), 1e-5)
				if err != nil {
					t.Fatal(err)
				}
				gotY := run(t, d, []op{o}, y)
				gotX := readCanary(t, d, x)
				checkClose(t, name+" x", gotX, wantX, 1e-5, 1e-5)
				checkClose(t, name+" y", gotY, wantY, 3e-5, 3e-5)
				if s.C%4 != 0 || s.S < 2 {
					return // MatmulReduce works on vec4s of S >= 2 partials
				}
				// The unfused pair on the same inputs: MatmulReduce's
				// epilogue (bias, accumulate) and layernorm.wgsl.
				ux := newCanaryBuf(t, d, NC, x0)
				uy := newCanaryBuf(t, d, NC, nil)
				ops, err := d.reduceThenNorm(s.N, s.C, s.S, r.bind(), mbb, ux.bind(), inBuf(t, d, lw), lbb, uy.bind())
				if err != nil {
					t.Fatal(err)
				}
				uY := run(t, d, ops, uy)
				uX := readCanary(t, d, ux)
				dx, _ := maxAbsDiff(gotX, f64(uX))
				dy, _ := maxAbsDiff(gotY, f64(uY))
				t.Logf("fused vs MatmulReduce + layernorm.wgsl: max |diff| x %.3g, y %.3g", dx, dy)
				if dx > 1e-6 || dy > 1e-5 {
					t.Errorf("fused vs unfused: max |diff| x %.3g, y %.3g", dx, dy)
				}
			})
		}
	}
	if _, err := d.addNorm("test", 1, 8, 0, binding{}, nil, binding{}, nil, nil, binding{}, 1e-5); err == nil {
		t.Error("S = 0 partials was accepted")
	}
}

// reduceThenNorm is the unfused form of addNorm for the tests:
// shaders.MatmulReduce (bias, accumulate into x; C % 4 == 0), then
// layernorm.wgsl.
func (d *device) reduceThenNorm(N, C, S int, rec binding, bias *buffer, x binding, lw, lb *buffer, y binding) ([]op, error) {
	rpl, err := d.pipeline(shaders.MatmulReduce, map[string]string{"S": itoU(S)}, matmulKinds)
	if err != nil {
		return nil, err
	}
	p := shaders.MatmulParams{M: uint32(N), N: uint32(C), K: 1, Accumulate: 1}
	bb := whole(d.dummy)
	if bias != nil {
		p.HasBias = 1
		bb = whole(bias)
	}
	ro := op{name: "test reduce", pl: rpl, params: shaders.Bytes(p), binds: []binding{rec, whole(d.dummy), bb, x}, wg: d.grid(uint64(ceilDiv(N*C/4, 256)))}
	lo, err := d.layerNorm("test ln", N, C, x, lw, lb, y, 1e-5)
	return []op{ro, lo}, err
}

// readCanary reads a canary buffer's values (checking its canaries) by
// running no kernel.
func readCanary(t *testing.T, d *device, b canaryBuf) []float32 {
	t.Helper()
	return run(t, d, nil, b)
}

// TestEmbedNormSweep checks embednorm.wgsl (the embedding and the first
// LayerNorm in one kernel) against the float64 twins of embed and
// layerNorm, x and y, with canaries: T of 1, C of 1, off 4 and off the
// workgroup, with and without wpe, cls and the LayerNorm's bias, every
// weight dtype's loader (F32 values; F16 and BF16 packed); and y against
// layernorm.wgsl of the kernel's x.
func TestEmbedNormSweep(t *testing.T) {
	d := testBackend(t).d
	rng := rand.New(rand.NewPCG(33, 34))
	for _, s := range []struct {
		B, T, C, V     int
		wpe, cls, bias bool
		dtype          int
	}{
		{1, 1, 1, 2, false, false, false, shaders.WeightF32}, {2, 7, 5, 11, true, false, true, shaders.WeightF32},
		{3, 13, 32, 67, true, true, true, shaders.WeightF32}, {1, 257, 3, 5, false, true, false, shaders.WeightF32},
		{2, 5, 129, 9, true, true, true, shaders.WeightF16}, {1, 4099, 8, 7, true, false, true, shaders.WeightBF16},
		{1, 3, 384, 70, true, false, true, shaders.WeightF16},
	} {
		name := fmt.Sprintf("B%d_T%d_C%d_V%d/wpe%v/cls%v/bias%v/dtype%d", s.B, s.T, s.C, s.V, s.wpe, s.cls, s.bias, s.dtype)
		t.Run(name, func(t *testing.T) {
			N, NC := s.B*s.T, s.B*s.T*s.C
			wte := randVec(rng, s.V*s.C, 1)
			if s.dtype != shaders.WeightF32 {
				wte = halfValues(wte, s.dtype)
			}
			wpe := randVec(rng, s.T*s.C, 1)
			cls := randVec(rng, s.C, 1)
			lw := randVec(rng, s.C, 1)
			lb := randVec(rng, s.C, 0.5)
			ids := make([]int32, N)
			tok := make([]float32, N)
			for i := range ids {
				ids[i] = int32(rng.IntN(s.V))
				tok[i] = math.Float32frombits(uint32(ids[i]))
			}
			clsID := int32(s.V - 1)
			var wb, cb, lbb *buffer
			var lbs []float32
			if s.wpe {
				wb = inBuf(t, d, wpe)
			}
			if s.cls {
				cb = inBuf(t, d, cls)
			}
			if s.bias {
				lbb, lbs = inBuf(t, d, lb), lb
			}
			wantX := make([]float64, NC)
			for p, id := range ids {
				for c := 0; c < s.C; c++ {
					v := float64(wte[int(id)*s.C+c])
					if s.cls && id == clsID {
						v = float64(cls[c])
					}
					if s.wpe {
						v += float64(wpe[(p%s.T)*s.C+c])
					}
					wantX[p*s.C+c] = v
				}
			}
			wantY := lnTwin(wantX, N, s.C, lw, lbs)
			w := packedWeights(t, d, wte, s.dtype)
			tb := whole(inBuf(t, d, tok))
			x := newCanaryBuf(t, d, NC, nil)
			y := newCanaryBuf(t, d, NC, nil)
			o, err := d.embedNorm("test", N, s.T, s.C, tb, w, wb, cb, clsID, inBuf(t, d, lw), lbb, x.bind(), y.bind(), 1e-5)
			if err != nil {
				t.Fatal(err)
			}
			gotY := run(t, d, []op{o}, y)
			gotX := readCanary(t, d, x)
			checkClose(t, name+" x", gotX, wantX, 1e-6, 1e-6)
			checkClose(t, name+" y", gotY, wantY, 3e-5, 3e-5)
			// layernorm.wgsl on the fused x: the same y.
			ux := newCanaryBuf(t, d, NC, gotX)
			uy := newCanaryBuf(t, d, NC, nil)
			lo, err := d.layerNorm("test ln", N, s.C, ux.bind(), inBuf(t, d, lw), lbb, uy.bind(), 1e-5)
			if err != nil {
				t.Fatal(err)
			}
			uY := run(t, d, []op{lo}, uy)
			dy, _ := maxAbsDiff(gotY, f64(uY))
			t.Logf("fused vs layernorm.wgsl of its x: max |diff| y %.3g", dy)
			if dy > 1e-5 {
				t.Errorf("fused vs layernorm.wgsl of its x: max |diff| %.3g", dy)
			}
		})
	}
}

// ropeTwin rotates q and k of qkv (B, T, 3C) as engine/cpu does, in
// float64 from the float32 tables.
func ropeTwin(qkv []float32, B, T, C, H int, cos, sin []float32) []float32 {
	out := append([]float32(nil), qkv...)
	D := C / H
	half := D / 2
	for p := 0; p < B*T; p++ {
		tt := p % T
		for h := 0; h < H; h++ {
			for _, base := range []int{p*3*C + h*D, p*3*C + C + h*D} {
				for j := 0; j < half; j++ {
					c, sn := float64(cos[tt*half+j]), float64(sin[tt*half+j])
					x1, x2 := float64(qkv[base+j]), float64(qkv[base+j+half])
					out[base+j] = float32(x1*c - x2*sn)
					out[base+j+half] = float32(x2*c + x1*sn)
				}
			}
		}
	}
	return out
}

// TestAttentionRopeSweep checks the rope on the loads of the key-split
// attention (AttentionUnrolled with ROPE) against the float64 twins of
// rope and attention, with canaries, over head sizes 8 to 128, T of 1,
// off the tiles and 4099 (the rope tables' rows beyond the first tile),
// causal and not; and attentionOps' choice: the rope fused where the split
// applies and D % 8 == 0, a rope dispatch before the attention otherwise.
func TestAttentionRopeSweep(t *testing.T) {
	d := testBackend(t).d
	rng := rand.New(rand.NewPCG(35, 36))
	for _, s := range []struct{ B, T, C, H, S, KS int }{
		{1, 1, 8, 1, 1, 32}, {1, 33, 16, 2, 2, 32}, {2, 97, 32, 2, 4, 32}, {1, 130, 64, 1, 3, 64},
		{1, 200, 24, 3, 7, 32}, {1, 256, 384, 6, 8, 32}, {1, 70, 128, 1, 3, 32}, {1, 4099, 16, 1, 9, 480},
	} {
		for _, causal := range []bool{false, true} {
			name := fmt.Sprintf("B%d_T%d_C%d_H%d_S%d_KS%d/causal%v", s.B, s.T, s.C, s.H, s.S, s.KS, causal)
			t.Run(name, func(t *testing.T) {
				D := s.C / s.H
				cos, sin := ropeTables(s.T+3, D, 10000) // the table has block_size rows, more than T
				rope := &ropeSpec{name: "test rope", cos: inBuf(t, d, cos), sin: inBuf(t, d, sin)}
				qkv := randVec(rng, s.B*s.T*3*s.C, 1)
				out := newCanaryBuf(t, d, s.B*s.T*s.C, nil)
				rec := newCanaryBuf(t, d, s.S*s.B*s.T*(s.C+4*s.H), nil)
				in := newCanaryBuf(t, d, len(qkv), qkv)
				ops, err := d.attentionSplit("test", s.B, s.T, s.C, s.H, causal, in.bind(), rope, rec.bind(), out.bind(), s.S, s.KS)
				if err != nil {
					t.Fatal(err)
				}
				run(t, d, ops[:1], rec) // the records stay inside their range
				got := run(t, d, ops, out)
				checkClose(t, name, got, attentionTwin(ropeTwin(qkv, s.B, s.T, s.C, s.H, cos, sin), s.B, s.T, s.C, s.H, causal), 2e-5, 1e-4)
				if after := readCanary(t, d, in); !slicesEqual(after, qkv) {
					t.Error("the fused rope wrote qkv")
				}
			})
		}
	}
	if _, err := d.attentionSplit("test", 1, 64, 12, 1, false, binding{}, &ropeSpec{}, binding{}, binding{}, 2, 32); err == nil {
		t.Error("the fused rope at head size 12 (not a multiple of 8) was accepted")
	}
	// attentionOps: fused where it can, a rope dispatch otherwise.
	scratch := newCanaryBuf(t, d, 1<<20, nil).buf
	rope := &ropeSpec{name: "r", cos: d.dummy, sin: d.dummy}
	for _, c := range []struct {
		B, T, C, H int
		ops        []string
	}{
		{1, 256, 384, 6, []string{"a", "a combine"}},     // split, D = 64: fused
		{1, 256, 72, 6, []string{"r", "a", "a combine"}}, // split, D = 12: a rope dispatch
		{16, 1024, 384, 6, []string{"r", "a"}},           // no split
		{1, 16, 384, 6, []string{"r", "a"}},              // no split (TestAttnSplits)
	} {
		ops, err := d.attentionOps("a", c.B, c.T, c.C, c.H, false, binding{}, rope, scratch, binding{})
		if err != nil {
			t.Fatal(err)
		}
		var names []string
		for _, o := range ops {
			names = append(names, o.name)
		}
		if fmt.Sprint(names) != fmt.Sprint(c.ops) {
			t.Errorf("B=%d T=%d C=%d H=%d: ops %v, want %v", c.B, c.T, c.C, c.H, names, c.ops)
		}
	}
}

func slicesEqual(a, b []float32) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if math.Float32bits(a[i]) != math.Float32bits(b[i]) {
			return false
		}
	}
	return true
}

// halfValues rounds v to dtype's values (F16 or BF16), so that a twin
// sees what the packed upload holds.
func halfValues(v []float32, dtype int) []float32 {
	out := make([]float32, len(v))
	for i, x := range v {
		if dtype == shaders.WeightF16 {
			out[i], _ = f16(x)
		} else {
			out[i] = math.Float32frombits(math.Float32bits(x) &^ 0xffff)
		}
	}
	return out
}

// packedWeights uploads w in dtype (Net.uploadMatrix: F16 and BF16 packed
// two per word), freed with the test.
func packedWeights(t *testing.T, d *device, w []float32, dtype int) wbuf {
	t.Helper()
	n := &Net{d: d}
	t.Cleanup(func() {
		for _, b := range n.weights {
			b.destroy()
		}
	})
	wb, err := n.uploadMatrix("w", w, dtype)
	if err != nil {
		t.Fatal(err)
	}
	return wb
}
