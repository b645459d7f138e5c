package gpu

import (
	"context"
	"encoding/binary"
	"fmt"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/remask/remask/engine/model"
	"github.com/remask/remask/shaders"
)

// Kernel sweep tests: every kernel against a plain float64 CPU twin (the
// formulas of engine/cpu/layers.go and heads.go) over sizes 1, primes,
// non-multiples of the workgroup and tile sizes, and the largest shapes the
// golden models use. Outputs are written into buffers with canary words on
// both sides of the bound range; a kernel that writes past its output trips
// the tail canary.

const canary = 0x7fc0dead // a NaN payload no kernel produces
const canaryWords = 64    // 256 bytes: also the binding offset alignment

// canaryBuf makes a buffer of n floats bound at offset 256 with canaries
// before and after, filled with init (or canaries when nil).
type canaryBuf struct {
	buf *buffer
	n   int
}

func newCanaryBuf(t *testing.T, d *device, n int, init []float32) canaryBuf {
	t.Helper()
	words := canaryWords + n + canaryWords
	b, err := d.p.newBuffer("test output", uint64(4*words), usageStorage)
	if err != nil {
		t.Fatal(err)
	}
	data := make([]byte, 4*words)
	for i := 0; i < words; i++ {
		binary.LittleEndian.PutUint32(data[4*i:], canary)
	}
	for i, v := range init {
		binary.LittleEndian.PutUint32(data[4*(canaryWords+i):], math.Float32bits(v))
	}
	if err := d.p.write(b, 0, data); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.destroy)
	return canaryBuf{buf: b, n: n}
}

func (c canaryBuf) bind() binding {
	return binding{buf: c.buf, off: 4 * canaryWords, size: c.buf.size - 4*canaryWords}
}

// inBuf uploads read-only data.
func inBuf(t *testing.T, d *device, data []float32) *buffer {
	t.Helper()
	b, err := d.p.newBuffer("test input", uint64(4*max(1, len(data))), usageStorage)
	if err != nil {
		t.Fatal(err)
	}
	if err := d.p.write(b, 0, f32Bytes(data)); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.destroy)
	return b
}

// run records ops, submits, and returns the output's n floats after
// checking its canaries.
func run(t *testing.T, d *device, ops []op, out canaryBuf) []float32 {
	t.Helper()
	pr := newProgram(d, "test")
	defer pr.release()
	rec, err := d.p.newRecorder()
	if err != nil {
		t.Fatal(err)
	}
	if err := pr.record(rec, ops); err != nil {
		t.Fatal(err)
	}
	st, err := d.p.newBuffer("test staging", out.buf.size, usageStaging)
	if err != nil {
		t.Fatal(err)
	}
	defer st.destroy()
	rec.copy(out.buf, 0, st, 0, out.buf.size)
	if err := rec.submit(); err != nil {
		t.Fatal(err)
	}
	raw := make([]byte, out.buf.size)
	if err := d.p.read(context.Background(), st, raw); err != nil {
		t.Fatal(err)
	}
	words := len(raw) / 4
	for i := 0; i < words; i++ {
		if i >= canaryWords && i < canaryWords+out.n {
			continue
		}
		if w := binary.LittleEndian.Uint32(raw[4*i:]); w != canary {
			where := "before"
			if i >= canaryWords {
				where = "after"
			}
			t.Fatalf("canary word %d %s the output overwritten with %#x", i, where, w)
		}
	}
	got := make([]float32, out.n)
	for i := range got {
		got[i] = math.Float32frombits(binary.LittleEndian.Uint32(raw[4*(canaryWords+i):]))
	}
	return got
}

func randVec(rng *rand.Rand, n int, scale float64) []float32 {
	v := make([]float32, n)
	for i := range v {
		v[i] = float32(scale * rng.NormFloat64())
	}
	return v
}

// checkClose applies the kernel tolerance policy: |got - want| <= atol +
// rtol·|want| (f32 arithmetic against a float64 twin).
func checkClose(t *testing.T, what string, got []float32, want []float64, atol, rtol float64) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d values, want %d", what, len(got), len(want))
	}
	for i := range got {
		d := math.Abs(float64(got[i]) - want[i])
		if !(d <= atol+rtol*math.Abs(want[i])) {
			t.Fatalf("%s: element %d = %v, want %v (|diff| %.3g > %.3g + %.3g·|want|)", what, i, got[i], want[i], d, atol, rtol)
		}
	}
}

func TestMatmulSweep(t *testing.T) {
	d := testBackend(t).d
	rng := rand.New(rand.NewPCG(1, 2))
	type shape struct{ M, N, K int }
	shapes := []shape{{1, 1, 1}, {1, 7, 3}, {3, 5, 7}, {13, 17, 31}, {64, 64, 16}, {65, 63, 17}, {97, 101, 50}, {48, 96, 32}, {48, 67, 32}, {128, 128, 128}, {130, 257, 40}, {130, 256, 48}, {1, 128, 32},
		// odd numbers of K tiles (the double-buffered halves alternate), M off the tile, one K tile
		{131, 128, 40}, {33, 64, 80}, {200, 384, 24}, {5, 32, 16}}
	defer func() { d.noUnrolled = false }()
	for _, s := range shapes {
		for _, tc := range []struct {
			tl   matmulTile
			loop bool
		}{{tile64, false}, {tile64, true}, {tile128x64, false}, {tile128, false}, {tile128, true},
			{tile128db, false}, {tile64db, false}, {tile32db, false}, {tile128x16db, false}, {tile32k4, false}, {tile32dbnw4k2, false}} {
			tl := tc.tl
			d.noUnrolled = tc.loop
			kernel := "unrolled"
			if tc.loop || !tl.unrollsWithin(s.N, s.K, d.shmax()) {
				kernel = "loop"
			}
			for _, v := range []struct {
				act        int
				bias, accu bool
			}{{shaders.ActNone, false, false}, {shaders.ActGELU, true, false}, {shaders.ActSiLU, true, false}, {shaders.ActNone, true, true}} {
				name := fmt.Sprintf("%dx%dx%d/%v/%s/act%d/bias%v/acc%v", s.M, s.N, s.K, tl, kernel, v.act, v.bias, v.accu)
				t.Run(name, func(t *testing.T) {
					a := randVec(rng, s.M*s.K, 1)
					w := randVec(rng, s.N*s.K, 0.3)
					bias := randVec(rng, s.N, 0.1)
					init := randVec(rng, s.M*s.N, 1)
					out := newCanaryBuf(t, d, s.M*s.N, init)
					var bb *buffer
					if v.bias {
						bb = inBuf(t, d, bias)
					}
					o, err := d.matmulTiled("test", tl, s.M, s.N, s.K, whole(inBuf(t, d, a)), wbuf{b: inBuf(t, d, w)}, bb, out.bind(), v.act, v.accu)
					if err != nil {
						t.Fatal(err)
					}
					got := run(t, d, []op{o}, out)
					want := matmulRef(s.M, s.N, s.K, a, w, bias, init, v.bias, v.accu, v.act)
					checkClose(t, name, got, want, 2e-5*math.Sqrt(float64(s.K)), 1e-5)
				})
			}
		}
	}
}

// TestMatmulHalfWeights checks the packed F16 and BF16 weight paths.
func TestMatmulHalfWeights(t *testing.T) {
	be := testBackend(t)
	rng := rand.New(rand.NewPCG(3, 4))
	// 37x29x23: odd N·K, the last word holds one half (matmul.wgsl);
	// 37x128x64: the generated kernel's vec2<u32> loads.
	for _, sh := range [][3]int{{37, 29, 23}, {37, 128, 64}} {
		M, N, K := sh[0], sh[1], sh[2]
		for _, dt := range []int{shaders.WeightF16, shaders.WeightBF16} {
			t.Run(fmt.Sprintf("%dx%dx%d/%d", M, N, K, dt), func(t *testing.T) {
				w := randVec(rng, N*K, 0.3)
				for i, v := range w { // round to the dtype so that the twin sees the same values
					if dt == shaders.WeightF16 {
						h, _ := f16(v)
						w[i] = h
					} else {
						w[i] = math.Float32frombits(math.Float32bits(v) &^ 0xffff)
					}
				}
				n := &Net{d: be.d}
				defer func() {
					for _, b := range n.weights {
						b.destroy()
					}
				}()
				wb, err := n.uploadMatrix("w", w, dt)
				if err != nil {
					t.Fatal(err)
				}
				a := randVec(rng, M*K, 1)
				out := newCanaryBuf(t, be.d, M*N, nil)
				o, err := be.d.matmul("test", M, N, K, whole(inBuf(t, be.d, a)), wb, nil, out.bind(), shaders.ActNone, false)
				if err != nil {
					t.Fatal(err)
				}
				got := run(t, be.d, []op{o}, out)
				want := make([]float64, M*N)
				for i := 0; i < M; i++ {
					for j := 0; j < N; j++ {
						for k := 0; k < K; k++ {
							want[i*N+j] += float64(a[i*K+k]) * float64(w[j*K+k])
						}
					}
				}
				checkClose(t, "half matmul", got, want, 1e-4, 1e-5)
			})
		}
	}
}

func TestLayerNormSweep(t *testing.T) { layerNormSweep(t, testBackend(t).d) }

func layerNormSweep(t *testing.T, d *device) {
	rng := rand.New(rand.NewPCG(5, 6))
	for _, s := range []struct{ N, C int }{{1, 1}, {1, 2}, {3, 7}, {5, 127}, {2, 128}, {7, 129}, {11, 384}, {48, 32}, {3, 1000}} {
		for _, hasBias := range []bool{false, true} {
			name := fmt.Sprintf("%dx%d/bias%v", s.N, s.C, hasBias)
			t.Run(name, func(t *testing.T) {
				x := randVec(rng, s.N*s.C, 2)
				for i := range x {
					x[i] += 3 // a mean far from 0
				}
				w := randVec(rng, s.C, 1)
				b := randVec(rng, s.C, 0.5)
				out := newCanaryBuf(t, d, s.N*s.C, nil)
				var bb *buffer
				if hasBias {
					bb = inBuf(t, d, b)
				}
				o, err := d.layerNorm("test", s.N, s.C, whole(inBuf(t, d, x)), inBuf(t, d, w), bb, out.bind(), 1e-5)
				if err != nil {
					t.Fatal(err)
				}
				got := run(t, d, []op{o}, out)
				want := make([]float64, s.N*s.C)
				for i := 0; i < s.N; i++ {
					row := x[i*s.C : (i+1)*s.C]
					var mean, ss float64
					for _, v := range row {
						mean += float64(v)
					}
					mean /= float64(s.C)
					for _, v := range row {
						ss += (float64(v) - mean) * (float64(v) - mean)
					}
					rstd := 1 / math.Sqrt(ss/float64(s.C)+1e-5)
					for c, v := range row {
						y := (float64(v) - mean) * rstd * float64(w[c])
						if hasBias {
							y += float64(b[c])
						}
						want[i*s.C+c] = y
					}
				}
				checkClose(t, name, got, want, 2e-5, 2e-5)
			})
		}
	}
}

// attentionTwin is softmax(q·kᵀ/sqrt(d))·v per head in float64.
func attentionTwin(qkv []float32, B, T, C, H int, causal bool) []float64 {
	D := C / H
	out := make([]float64, B*T*C)
	for b := 0; b < B; b++ {
		for h := 0; h < H; h++ {
			for i := 0; i < T; i++ {
				q := qkv[(b*T+i)*3*C+h*D:]
				keys := T
				if causal {
					keys = i + 1
				}
				s := make([]float64, keys)
				m := math.Inf(-1)
				for j := 0; j < keys; j++ {
					k := qkv[(b*T+j)*3*C+C+h*D:]
					for c := 0; c < D; c++ {
						s[j] += float64(q[c]) * float64(k[c])
					}
					s[j] /= math.Sqrt(float64(D))
					m = math.Max(m, s[j])
				}
				var sum float64
				for j := range s {
					s[j] = math.Exp(s[j] - m)
					sum += s[j]
				}
				for j := range s {
					v := qkv[(b*T+j)*3*C+2*C+h*D:]
					for c := 0; c < D; c++ {
						out[(b*T+i)*C+h*D+c] += s[j] / sum * float64(v[c])
					}
				}
			}
		}
	}
	return out
}

func TestAttentionSweep(t *testing.T) {
	d := testBackend(t).d
	defer func() { d.noUnrolled = false }()
	rng := rand.New(rand.NewPCG(7, 8))
	for _, s := range []struct{ B, T, C, H int }{{1, 1, 2, 1}, {1, 3, 8, 2}, {2, 13, 32, 2}, {1, 31, 16, 1}, {1, 33, 24, 3}, {2, 24, 32, 2}, {1, 65, 32, 4}, {1, 97, 64, 1}, {1, 70, 128, 2}} {
		for _, tc := range []struct{ causal, loop bool }{{false, false}, {true, false}, {false, true}, {true, true}} {
			causal := tc.causal
			d.noUnrolled = tc.loop
			name := fmt.Sprintf("B%d_T%d_C%d_H%d/causal%v/loop%v", s.B, s.T, s.C, s.H, causal, tc.loop)
			t.Run(name, func(t *testing.T) {
				qkv := randVec(rng, s.B*s.T*3*s.C, 1)
				out := newCanaryBuf(t, d, s.B*s.T*s.C, nil)
				o, err := d.attention("test", s.B, s.T, s.C, s.H, causal, whole(inBuf(t, d, qkv)), out.bind())
				if err != nil {
					t.Fatal(err)
				}
				got := run(t, d, []op{o}, out)
				checkClose(t, name, got, attentionTwin(qkv, s.B, s.T, s.C, s.H, causal), 2e-5, 1e-4)
			})
		}
	}
}

func TestRopeSweep(t *testing.T) {
	d := testBackend(t).d
	rng := rand.New(rand.NewPCG(9, 10))
	for _, s := range []struct{ B, T, C, H int }{{1, 1, 2, 1}, {1, 5, 8, 2}, {2, 13, 32, 2}, {3, 37, 48, 3}, {1, 300, 64, 1}} {
		name := fmt.Sprintf("B%d_T%d_C%d_H%d", s.B, s.T, s.C, s.H)
		t.Run(name, func(t *testing.T) {
			D := s.C / s.H
			cos, sin := ropeTables(s.T, D, 10000)
			qkv := randVec(rng, s.B*s.T*3*s.C, 1)
			out := newCanaryBuf(t, d, len(qkv), qkv)
			o, err := d.rope("test", s.B, s.T, s.C, s.H, inBuf(t, d, cos), inBuf(t, d, sin), out.bind())
			if err != nil {
				t.Fatal(err)
			}
			got := run(t, d, []op{o}, out)
			want := f64(qkv)
			half := D / 2
			for p := 0; p < s.B*s.T; p++ {
				tt := p % s.T
				for h := 0; h < s.H; h++ {
					for _, base := range []int{p*3*s.C + h*D, p*3*s.C + s.C + h*D} {
						for j := 0; j < half; j++ {
							c, sn := float64(cos[tt*half+j]), float64(sin[tt*half+j])
							x1, x2 := float64(qkv[base+j]), float64(qkv[base+j+half])
							want[base+j] = x1*c - x2*sn
							want[base+j+half] = x2*c + x1*sn
						}
					}
				}
			}
			checkClose(t, name, got, want, 1e-6, 1e-6)
		})
	}
}

func TestRowDotAndGatherSweep(t *testing.T) {
	d := testBackend(t).d
	rng := rand.New(rand.NewPCG(13, 14))
	for _, s := range []struct{ n, C, stride int }{{1, 1, 1}, {7, 5, 5}, {65, 32, 32}, {3, 32, 24 * 32}, {131, 384, 384}} {
		for _, sig := range []bool{false, true} {
			name := fmt.Sprintf("rowdot n%d_C%d_stride%d/sigmoid%v", s.n, s.C, s.stride, sig)
			t.Run(name, func(t *testing.T) {
				x := randVec(rng, (s.n-1)*s.stride+s.C, 1)
				w := randVec(rng, s.C, 0.3)
				out := newCanaryBuf(t, d, s.n, nil)
				o, err := d.rowDot("test", s.n, s.C, s.stride, whole(inBuf(t, d, x)), inBuf(t, d, w), out.bind(), sig, 1.3, -0.2)
				if err != nil {
					t.Fatal(err)
				}
				got := run(t, d, []op{o}, out)
				want := make([]float64, s.n)
				for i := range want {
					for c := 0; c < s.C; c++ {
						want[i] += float64(x[i*s.stride+c]) * float64(w[c])
					}
					if sig {
						want[i] = 1 / (1 + math.Exp(-(1.3*want[i] - 0.2)))
					}
				}
				checkClose(t, name, got, want, 1e-5, 1e-5)
			})
		}
	}
	for _, s := range []struct{ n, C, BT, V int }{{1, 1, 1, 2}, {5, 7, 9, 11}, {37, 32, 48, 67}} {
		name := fmt.Sprintf("gather n%d_C%d", s.n, s.C)
		t.Run(name, func(t *testing.T) {
			h := randVec(rng, s.BT*s.C, 1)
			wte := randVec(rng, s.V*s.C, 1)
			idx := make([]float32, 3*s.n)
			ids := make([]int32, 3*s.n)
			for i := 0; i < s.n; i++ {
				ids[i] = int32(rng.IntN(s.BT))
				ids[s.n+i] = int32(rng.IntN(s.V+1)) - 1 // -1: zeros
				ids[2*s.n+i] = int32(rng.IntN(s.V+1)) - 1
			}
			for i, v := range ids {
				idx[i] = math.Float32frombits(uint32(v))
			}
			out := newCanaryBuf(t, d, s.n*3*s.C, nil)
			o, err := d.gather(s.n, s.C, whole(inBuf(t, d, h)), wbuf{b: inBuf(t, d, wte)}, whole(inBuf(t, d, idx)), out.bind())
			if err != nil {
				t.Fatal(err)
			}
			got := run(t, d, []op{o}, out)
			want := make([]float64, len(got))
			for i := 0; i < s.n; i++ {
				for c := 0; c < s.C; c++ {
					if l := ids[s.n+i]; l >= 0 {
						want[i*3*s.C+c] = float64(wte[int(l)*s.C+c])
					}
					want[i*3*s.C+s.C+c] = float64(h[int(ids[i])*s.C+c])
					if r := ids[2*s.n+i]; r >= 0 {
						want[i*3*s.C+2*s.C+c] = float64(wte[int(r)*s.C+c])
					}
				}
			}
			checkClose(t, name, got, want, 0, 0)
		})
	}
}

func f16(v float32) (float32, bool) {
	h, ok := model.Float32ToFloat16(v)
	return model.Float16ToFloat32(h), ok
}

// matmulRef is the float64 oracle of the matmul kernels: out (M, N) =
// act(a (M, K) · w (N, K)ᵀ + bias) [+ init], the epilogue in the kernels'
// order.
func matmulRef(M, N, K int, a, w, bias, init []float32, hasBias, accumulate bool, act int) []float64 {
	want := make([]float64, M*N)
	for i := 0; i < M; i++ {
		for j := 0; j < N; j++ {
			var acc float64
			for k := 0; k < K; k++ {
				acc += float64(a[i*K+k]) * float64(w[j*K+k])
			}
			if hasBias {
				acc += float64(bias[j])
			}
			switch act {
			case shaders.ActGELU:
				acc = geluF64(acc)
			case shaders.ActSiLU:
				acc = acc / (1 + math.Exp(-acc))
			}
			if accumulate {
				acc += float64(init[i*N+j])
			}
			want[i*N+j] = acc
		}
	}
	return want
}

func geluF64(x float64) float64 { return 0.5 * x * (1 + math.Erf(x/math.Sqrt2)) }

// TestAttentionSplitSweep checks the key-split attention (AttentionUnrolled
// with KS, then AttentionCombine) against the float64 twin: split counts
// from 2 to 7, splits whose last one is partial or holds only keys a causal
// row cannot see, T not a multiple of the tiles, several batch rows and
// heads, and the canaries around both the output and the records.
func TestAttentionSplitSweep(t *testing.T) {
	d := testBackend(t).d
	rng := rand.New(rand.NewPCG(9, 10))
	for _, s := range []struct{ B, T, C, H, S, KS int }{
		{1, 33, 8, 2, 2, 32}, {1, 64, 16, 1, 2, 32}, {2, 97, 32, 2, 4, 32}, {1, 130, 64, 1, 3, 64},
		{1, 200, 24, 3, 7, 32}, {3, 70, 32, 4, 3, 32}, {1, 256, 128, 2, 8, 32}, {1, 45, 256, 1, 6, 8},
	} {
		for _, causal := range []bool{false, true} {
			name := fmt.Sprintf("B%d_T%d_C%d_H%d_S%d_KS%d/causal%v", s.B, s.T, s.C, s.H, s.S, s.KS, causal)
			t.Run(name, func(t *testing.T) {
				qkv := randVec(rng, s.B*s.T*3*s.C, 1)
				out := newCanaryBuf(t, d, s.B*s.T*s.C, nil)
				rec := newCanaryBuf(t, d, s.S*s.B*s.T*(s.C+4*s.H), nil)
				ops, err := d.attentionSplit("test", s.B, s.T, s.C, s.H, causal, whole(inBuf(t, d, qkv)), nil, rec.bind(), out.bind(), s.S, s.KS)
				if err != nil {
					t.Fatal(err)
				}
				if len(ops) != 2 {
					t.Fatalf("%d ops, want 2", len(ops))
				}
				run(t, d, ops[:1], rec) // the records stay inside their range
				got := run(t, d, ops, out)
				checkClose(t, name, got, attentionTwin(qkv, s.B, s.T, s.C, s.H, causal), 2e-5, 1e-4)
			})
		}
	}
	// A split that does not cover T, or splits with no key, is an error.
	for _, bad := range [][2]int{{2, 16}, {4, 64}, {2, 24}} {
		if _, err := d.attentionSplit("test", 1, 100, 64, 1, false, binding{}, nil, binding{}, binding{}, bad[0], bad[1]); err == nil {
			t.Errorf("S=%d KS=%d for T=100 was accepted", bad[0], bad[1])
		}
	}
}

// TestAttnSplits: the split choice covers T with whole key tiles, splits
// only short sequences, and stays within the scratch bound that ensure
// allocates.
func TestAttnSplits(t *testing.T) {
	for _, c := range []struct{ B, T, H, S int }{{1, 256, 6, 8}, {16, 1024, 6, 1}, {1, 16, 6, 1}, {1, 1024, 6, 5}, {2, 64, 6, 2}} {
		if S, _ := attnSplits(c.B, c.T, c.H, 64, 32); S != c.S {
			t.Errorf("B=%d T=%d H=%d: %d splits, want %d", c.B, c.T, c.H, S, c.S)
		}
	}
	for B := 1; B <= 9; B++ {
		for T := 1; T <= 1100; T += 7 {
			for _, H := range []int{1, 2, 6, 16} {
				for _, BC := range []int{8, 16, 32} {
					S, KS := attnSplits(B, T, H, 64, BC)
					if S == 1 {
						continue
					}
					if KS%BC != 0 || S*KS < T || (S-1)*KS >= T {
						t.Fatalf("B=%d T=%d H=%d BC=%d: S=%d KS=%d", B, T, H, BC, S, KS)
					}
					if S*B*T > attnSplitRows(B*T, H, 64) {
						t.Fatalf("B=%d T=%d H=%d: S·B·T = %d > bound %d", B, T, H, S*B*T, attnSplitRows(B*T, H, 64))
					}
				}
			}
		}
	}
}

// TestMatmulSplitSweep checks the K-split matmul (MatmulUnrolled with
// KSPLIT, then MatmulReduce with the epilogue) against the float64 twin:
// 2 to 8 splits, M off the tile, single- and double-buffered tiles, every
// epilogue, canaries around the output and the partials.
func TestMatmulSplitSweep(t *testing.T) {
	d := testBackend(t).d
	rng := rand.New(rand.NewPCG(11, 12))
	for _, s := range []struct {
		M, N, K, S int
		tl         matmulTile
	}{
		{1, 32, 64, 2, tile32db}, {33, 64, 96, 3, tile32db}, {5, 32, 128, 8, tile32}, {70, 128, 192, 4, tile64db},
		{131, 128, 48, 3, tile128db}, {17, 96, 1536, 6, tile32db},
		// the layouts of the generated kernel (MatmulTile's suffixes n and wX)
		{33, 64, 96, 3, layoutTile("32x32x16x4x4dbnw4")}, {70, 128, 192, 4, layoutTile("64x64x16x4x4nw8c2")}, {5, 32, 128, 8, layoutTile("32x32x16x4x4nc4")},
		// sliced K (MatmulTile's suffix kN): the split's partials come from the slices
		{33, 64, 96, 3, tile32k4}, {17, 96, 1536, 6, tile32dbnw4k2}, {70, 64, 256, 2, layoutTile("32x64x16x4x4k2")},
	} {
		for _, v := range []struct {
			act        int
			bias, accu bool
		}{{shaders.ActNone, false, false}, {shaders.ActGELU, true, false}, {shaders.ActSiLU, true, false}, {shaders.ActNone, true, true}} {
			name := fmt.Sprintf("%dx%dx%d/S%d/%v/act%d/bias%v/acc%v", s.M, s.N, s.K, s.S, s.tl, v.act, v.bias, v.accu)
			t.Run(name, func(t *testing.T) {
				a := randVec(rng, s.M*s.K, 1)
				w := randVec(rng, s.N*s.K, 0.3)
				bias := randVec(rng, s.N, 0.1)
				init := randVec(rng, s.M*s.N, 1)
				out := newCanaryBuf(t, d, s.M*s.N, init)
				rec := newCanaryBuf(t, d, s.S*s.M*s.N, nil)
				var bb *buffer
				if v.bias {
					bb = inBuf(t, d, bias)
				}
				ops, err := d.matmulSplit("test", s.tl, s.S, s.M, s.N, s.K, whole(inBuf(t, d, a)), wbuf{b: inBuf(t, d, w)}, bb, out.bind(), v.act, v.accu, rec.bind())
				if err != nil {
					t.Fatal(err)
				}
				run(t, d, ops[:1], rec) // the partials stay inside their range
				got := run(t, d, ops, out)
				want := matmulRef(s.M, s.N, s.K, a, w, bias, init, v.bias, v.accu, v.act)
				checkClose(t, name, got, want, 2e-5*math.Sqrt(float64(s.K)), 1e-5)
			})
		}
	}
	// A split that does not divide K into whole tiles is an error.
	if _, err := d.matmulSplit("test", tile32db, 3, 4, 32, 64, binding{}, wbuf{}, nil, binding{}, 0, false, binding{}); err == nil {
		t.Error("K = 64 split 3 ways in tiles of 16 was accepted")
	}
}

// layoutTile is parseTile for a tile a test names (within 16 KiB).
func layoutTile(s string) matmulTile {
	t, err := parseTile(s, shaders.DefaultWorkgroupStorage)
	if err != nil {
		panic(err)
	}
	return t
}

// TestKSplits: splits only small grids, into whole runs of K tiles.
func TestKSplits(t *testing.T) {
	for _, c := range []struct{ M, N, K, S int }{{256, 384, 1536, 4}, {256, 384, 384, 4}, {256, 1152, 384, 1}, {16384, 384, 1536, 1}, {16, 384, 1536, 8}, {256, 384, 80, 1}} {
		if S := kSplits(chooseTile(c.M, c.N, c.K), c.M, c.N, c.K); S != c.S {
			t.Errorf("%dx%dx%d: %d splits, want %d", c.M, c.N, c.K, S, c.S)
		}
	}
	for M := 1; M <= 600; M += 13 {
		for _, N := range []int{32, 64, 384, 1536} {
			for _, K := range []int{16, 96, 384, 1536} {
				tl := chooseTile(M, N, K)
				S := kSplits(tl, M, N, K)
				if S > 1 && (K%(S*tl.BK) != 0 || K/(S*tl.BK) < mmMinKTiles || S*M*N > mmSplitFloats || S*M*N > mmMaxSplits*M*4*384) {
					t.Fatalf("%dx%dx%d with %v: %d splits", M, N, K, tl, S)
				}
			}
		}
	}
}

// TestAttentionTiledSweep checks shaders.AttentionTiled (head size 64)
// against the float64 twin: T of 1, below, at and off the 32-row and
// 32-key tiles, several batch rows and heads, causal and not.
func TestAttentionTiledSweep(t *testing.T) {
	d := testBackend(t).d
	if d.shmax() < shaders.AttentionTiledShared {
		t.Fatalf("the device has %d bytes of workgroup memory, the tiled attention needs %d", d.shmax(), shaders.AttentionTiledShared)
	}
	rng := rand.New(rand.NewPCG(13, 14))
	for _, s := range []struct{ B, T, H int }{{1, 1, 1}, {1, 5, 1}, {2, 31, 2}, {1, 32, 1}, {1, 33, 3}, {2, 64, 1}, {1, 97, 2}, {1, 130, 1}} {
		for _, causal := range []bool{false, true} {
			C := 64 * s.H
			name := fmt.Sprintf("B%d_T%d_H%d/causal%v", s.B, s.T, s.H, causal)
			t.Run(name, func(t *testing.T) {
				qkv := randVec(rng, s.B*s.T*3*C, 1)
				out := newCanaryBuf(t, d, s.B*s.T*C, nil)
				o, err := d.attentionTiled("test", s.B, s.T, C, s.H, causal, whole(inBuf(t, d, qkv)), out.bind())
				if err != nil {
					t.Fatal(err)
				}
				got := run(t, d, []op{o}, out)
				checkClose(t, name, got, attentionTwin(qkv, s.B, s.T, C, s.H, causal), 2e-5, 1e-4)
			})
		}
	}
	if _, err := d.attentionTiled("test", 1, 8, 96, 3, false, binding{}, binding{}); err == nil {
		t.Error("head size 32 was accepted")
	}
}

// TestMatmulTileOption: Options.MatmulTile is parsed and checked by New
// (a bad value is an error naming it, before any adapter is opened), and a
// device with a tile uses it where the generated kernel can run the shape.
func TestMatmulTileOption(t *testing.T) {
	for _, bad := range []string{"128x64", "128x64x16x8x4x1", "axbxcxdxe", "128x64x16x8x3", "0x64x16x8x4", "128 x64x16x8x4", "1024x1024x16x8x8"} {
		_, err := New(context.Background(), Options{MatmulTile: bad})
		if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("matmul tile %q", bad)) {
			t.Errorf("New with MatmulTile %q: err = %v, want an error naming the tile", bad, err)
		}
	}
	tl, err := parseTile("128x64x16x8x4", shaders.DefaultWorkgroupStorage)
	if err != nil || tl != tile128x64 {
		t.Fatalf("parseTile(128x64x16x8x4) = %v, %v", tl, err)
	}
	d := &device{tile: &tl}
	if got := d.tileFor(4096, 384, 384); got != tile128x64 {
		t.Errorf("tileFor with the option = %v, want %v", got, tile128x64)
	}
	if got, want := d.tileFor(7, 33, 5), chooseTile(7, 33, 5); got != want {
		t.Errorf("tileFor of a shape the tile cannot run = %v, want the automatic %v", got, want)
	}
	if got, want := (&device{}).tileFor(4096, 384, 384), chooseTile(4096, 384, 384); got != want || got.DB {
		t.Errorf("tileFor without the option = %v, want %v (single-buffered)", got, want)
	}
	// The "db" suffix: the double-buffered form, checked against the
	// workgroup memory it is given (128x128x16 needs 32 KiB).
	if tl, err := parseTile("64x64x16x4x4db", shaders.DefaultWorkgroupStorage); err != nil || tl != tile64db {
		t.Errorf("parseTile(64x64x16x4x4db) = %v, %v, want %v", tl, err, tile64db)
	}
	if _, err := parseTile("128x128x16x8x8db", shaders.DefaultWorkgroupStorage); err == nil || !strings.Contains(err.Error(), "workgroup memory") {
		t.Errorf("parseTile(128x128x16x8x8db) within 16 KiB: err = %v, want the workgroup memory named", err)
	}
	if tl, err := parseTile("128x128x16x8x8db", 32768); err != nil || tl != tile128x16db {
		t.Errorf("parseTile(128x128x16x8x8db) within 32 KiB = %v, %v", tl, err)
	}
	// MatmulDoubleBuffer: the automatic tile, double-buffered.
	if got, want := (&device{matmulDB: true}).tileFor(4096, 384, 384), chooseTile(4096, 384, 384).db(); got != want || !got.DB {
		t.Errorf("tileFor with MatmulDoubleBuffer = %v, want %v", got, want)
	}
}

// TestOptionsCheck: the variant options are checked with errors naming the
// bad value and the accepted ones; the zero Options are the defaults.
func TestOptionsCheck(t *testing.T) {
	good := []Options{{}, {Split: []string{"mm"}}, {Split: []string{"attn", "mm"}}, {Attention: "auto"}, {Attention: "tiled"},
		{MatmulDoubleBuffer: true}, {MatmulTile: "32x32x16x4x4db"}, {MatmulTile: "128x128x8x8x8nw8"}, {MatmulTile: "64x64x16x4x4dbnw4c4"}, {MatmulTile: "32x32x16x4x4k4"}, {MatmulTile: "32x32x16x4x4nw4c2k2"}, {Precision: "auto"}, {Precision: "f32"}, {Precision: "f16"}}
	for _, o := range good {
		if err := o.Check(); err != nil {
			t.Errorf("%+v: %v", o, err)
		}
	}
	for _, c := range []struct {
		o    Options
		want string
	}{
		{Options{Split: []string{"matmul"}}, `split "matmul" is not a split kernel kind (want attn or mm, or none)`},
		{Options{Split: []string{"mm", "mm"}}, `split "mm" is named twice`},
		{Options{Split: []string{"none", "mm"}}, `split "none" cannot be combined`},
		{Options{Split: []string{""}}, `split "" is not`},
		{Options{Attention: "flash"}, `attention "flash" is not an attention kernel (want auto, tiled, rows)`},
		{Options{MatmulTile: "64x64x16x4x4dbl"}, `matmul tile "64x64x16x4x4dbl" is not BMxBNxBKxTMxTN[db]`},
		{Options{MatmulTile: "128x128x8x8x8nwx"}, `matmul tile "128x128x8x8x8nwx" is not BMxBNxBKxTMxTN[db][n][wX][cL]`},
		{Options{MatmulTile: "128x128x8x8x8w8n"}, `matmul tile "128x128x8x8x8w8n" is not BMxBNxBKxTMxTN[db][n][wX][cL]`},
		{Options{MatmulTile: "128x128x8x8x8c4"}, `must be 1, 2, 4 or 8 and divide BK/4 = 2`},
		{Options{MatmulTile: "128x128x8x8x8w12"}, `matmul tile "128x128x8x8x8w12": shaders: matmul tiling`},
		{Options{MatmulTile: "128x128x8x8x8w32"}, `does not tile the 16 x 16 threads`},
		{Options{MatmulTile: "128x64x32x16x8"}, `registers per thread`},
		{Options{MatmulTile: "32x32x16x4x4k8"}, `matmul tile "32x32x16x4x4k8": shaders: matmul tiling`},
		{Options{MatmulTile: "32x32x16x4x4k4db"}, `is not BMxBNxBKxTMxTN[db][n][wX][cL][kN]`},
		{Options{Precision: "fp16"}, `precision "fp16" is not a precision (want auto, f32, f16)`},
	} {
		err := c.o.Check()
		if err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("%+v: err = %v, want %q", c.o, err, c.want)
		}
		if _, err := New(context.Background(), c.o); err == nil || !strings.Contains(err.Error(), c.want) {
			t.Errorf("New(%+v): err = %v, want %q", c.o, err, c.want)
		}
	}
}
