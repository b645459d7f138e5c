package cpu

import "math"

// The layers of the trunk and the heads, one function each, over flat
// row-major float32 buffers. Shapes use B = batch, T = sequence length,
// C = n_embd, H = n_head, d = C/H, V = vocab_size (sampler-spec.md §0.2).

// embed writes the input of the first block (sampler-spec §1.2):
// x[b,t] = wte[id] + wpe[t], where a CLS id takes cls instead of its wte
// row (clsID < 0 or cls == nil: no swap) and wpe == nil means no absolute
// positions. Ids are checked by the caller.
func embed(x []float32, tokens []int32, T, C int, wte, wpe, cls []float32, clsID int32) {
	// x (B, T, C); tokens (B, T); wte (V, C); wpe (block_size, C) or nil; cls (C) or nil
	for p, id := range tokens {
		row := x[p*C : (p+1)*C]
		if cls != nil && id == clsID {
			copy(row, cls)
		} else {
			copy(row, wte[int(id)*C:(int(id)+1)*C])
		}
		if wpe != nil {
			t := p % T
			for c, v := range wpe[t*C : (t+1)*C] {
				row[c] += v
			}
		}
	}
}

// layerNorm normalises each of the N rows of in over its C features:
// out = (in - mean) / sqrt(var + eps) · w + b, with the biased variance
// (F.layer_norm). b may be nil (models without bias). out may alias in.
func layerNorm(out, in, w, b []float32, N, C int, eps float64) {
	// out, in (N, C); w, b (C)
	for i := 0; i < N; i++ {
		x := in[i*C : (i+1)*C]
		y := out[i*C : (i+1)*C]
		var sum float64
		for _, v := range x {
			sum += float64(v)
		}
		mean := sum / float64(C)
		var ss float64
		for _, v := range x {
			dv := float64(v) - mean
			ss += dv * dv
		}
		rstd := 1 / math.Sqrt(ss/float64(C)+eps)
		for c, v := range x {
			n := float32((float64(v) - mean) * rstd)
			if b != nil {
				y[c] = n*w[c] + b[c]
			} else {
				y[c] = n * w[c]
			}
		}
	}
}

// ropeTables holds cos and sin of angle(p, i) = p / base^(2i/d) for
// positions p < n and i < d/2 (sampler-spec §1.4), computed in float64 and
// rounded once to float32. They grow on demand (ensure), so a model with a
// huge block_size costs only the positions actually used.
type ropeTables struct {
	d, half  int       // head size, d/2
	base     float64   // rope_base
	n        int       // positions tabulated
	cos, sin []float32 // (n, d/2)
}

func newRopeTables(d int, base float64) *ropeTables {
	return &ropeTables{d: d, half: d / 2, base: base}
}

// ensure tabulates positions 0..T-1.
func (r *ropeTables) ensure(T int) {
	for p := r.n; p < T; p++ {
		for i := 0; i < r.half; i++ {
			angle := float64(p) / math.Pow(r.base, float64(2*i)/float64(r.d))
			r.cos = append(r.cos, float32(math.Cos(angle)))
			r.sin = append(r.sin, float32(math.Sin(angle)))
		}
	}
	r.n = max(r.n, T)
}

// rope rotates one head vector x (d) at position p < n in place, rotate-half
// convention: feature j < d/2 pairs with j + d/2,
// x'[j] = x[j]·c − x[j+d/2]·s and x'[j+d/2] = x[j+d/2]·c + x[j]·s.
func (r *ropeTables) rope(x []float32, p int) {
	h := r.half
	cos := r.cos[p*h : (p+1)*h]
	sin := r.sin[p*h : (p+1)*h]
	lo, hi := x[:h], x[h:2*h]
	for j, c := range cos {
		s := sin[j]
		x1, x2 := lo[j], hi[j]
		lo[j] = x1*c - x2*s
		hi[j] = x2*c + x1*s
	}
}

// ropeQK rotates q and k of every head at every position in place; v is
// not rotated. Positions are 0..T-1 in every row.
func (r *ropeTables) ropeQK(qkv []float32, B, T, C, H int) {
	r.ensure(T)
	// qkv (B, T, 3C): q = [:C], k = [C:2C], v = [2C:3C]; head h uses features h*d..h*d+d-1
	d := C / H
	for b := 0; b < B; b++ {
		for t := 0; t < T; t++ {
			row := qkv[(b*T+t)*3*C:]
			for h := 0; h < H; h++ {
				r.rope(row[h*d:(h+1)*d], t)     // q
				r.rope(row[C+h*d:C+(h+1)*d], t) // k
			}
		}
	}
}

// attnScratch is one attention worker's score buffer.
type attnScratch struct {
	att []float32 // (attnRows, T): scores, then probabilities
}

// attnRows is the number of query rows one attention work item handles,
// so that its score rows (attnRows, T) stay in the L2 cache.
const attnRows = 64

// attention is multi-head scaled dot-product attention over the fused
// q/k/v buffer (sampler-spec §1.3): for every batch row b and head h,
// out[b, :, h] = softmax(q·kᵀ/sqrt(d)) · v, with key j visible to query i
// iff j <= i when causal. vt is scratch for vᵀ; scratch has one entry per
// worker.
func attention(out, qkv, vt []float32, B, T, C, H int, causal bool, scratch []attnScratch) {
	// out (B, T, C); qkv (B, T, 3C); vt (B, H, d, T)
	d := C / H
	workers := len(scratch)

	// vt[b, h] = v[b, :, h]ᵀ, so that the product with the probabilities
	// reads both operands along T.
	parallelFor(workers, B*H, 1, func(lo, hi int) {
		for bh := lo; bh < hi; bh++ {
			b, h := bh/H, bh%H
			dst := vt[bh*d*T : (bh+1)*d*T]
			for t := 0; t < T; t++ {
				v := qkv[(b*T+t)*3*C+2*C+h*d:][:d]
				for j, x := range v {
					dst[j*T+t] = x
				}
			}
		}
	})

	// Work items: (b, h, block of attnRows query rows).
	chunks := (T + attnRows - 1) / attnRows
	items := B * H * chunks
	scale := 1 / math.Sqrt(float64(d))
	parallelItems(workers, items, func(w, it int) {
		s := &scratch[w]
		bh, chunk := it/chunks, it%chunks
		b, h := bh/H, bh%H
		i0 := chunk * attnRows
		i1 := min(i0+attnRows, T)
		keys := T // keys any query of this block can see
		if causal {
			keys = i1
		}
		rows := i1 - i0
		att := s.att[:rows*keys] // (rows, keys)
		base := b * T * 3 * C
		// scores: att = q[b, i0:i1, h] · k[b, :keys, h]ᵀ
		gemm{M: rows, N: keys, K: d,
			out: att, ldo: keys,
			a: qkv[base+i0*3*C+h*d:], lda: 3 * C,
			w: qkv[base+C+h*d:], ldw: 3 * C,
		}.block(0, rows, 0, keys)
		for r := 0; r < rows; r++ {
			visible := keys
			if causal {
				visible = i0 + r + 1
			}
			softmaxRow(att[r*keys:(r+1)*keys], visible, scale)
		}
		// out[b, i0:i1, h] = att · vt[b, h, :, :keys]ᵀ
		gemm{M: rows, N: d, K: keys,
			out: out[(b*T+i0)*C+h*d:], ldo: C,
			a: att, lda: keys,
			w: vt[bh*d*T:], ldw: T,
		}.block(0, rows, 0, d)
	})
}

// softmaxRow turns the first `visible` scores of row into the
// probabilities softmax(row·scale) and zeroes the rest (masked keys).
func softmaxRow(row []float32, visible int, scale float64) {
	m := row[0]
	for _, v := range row[1:visible] {
		m = max(m, v)
	}
	var sum float64
	for j, v := range row[:visible] {
		e := math.Exp((float64(v) - float64(m)) * scale)
		row[j] = float32(e)
		sum += e
	}
	inv := float32(1 / sum)
	for j := range row[:visible] {
		row[j] *= inv
	}
	clear(row[visible:])
}

// gelu applies the exact GELU, 0.5·x·(1 + erf(x/√2)), in place.
func gelu(x []float32, workers int) {
	parallelFor(workers, len(x), 1024, func(lo, hi int) {
		for i, v := range x[lo:hi] {
			x[lo+i] = geluScalar(v)
		}
	})
}

func geluScalar(v float32) float32 {
	x := float64(v)
	return float32(0.5 * x * (1 + math.Erf(x/math.Sqrt2)))
}

// silu applies x·sigmoid(x) in place.
func silu(x []float32) {
	for i, v := range x {
		x[i] = float32(float64(v) / (1 + math.Exp(-float64(v))))
	}
}

// residual adds y to the residual stream x in place: x += y.
func residual(x, y []float32) {
	y = y[:len(x)]
	for i, v := range y {
		x[i] += v
	}
}

func sigmoid(x float64) float64 { return 1 / (1 + math.Exp(-x)) }
