package gpu

import (
	"fmt"
	"math"
	"strconv"
	"strings"

	"github.com/remask/remask/shaders"
)

// Typed builders, one per kernel family of shaders/: each checks its shape,
// picks the pipeline variant and returns the op. Shapes are in elements; a
// weight matrix is a wbuf (its buffer and its dtype).

// wbuf is a weight matrix on the device: f32 bits, or halves packed in u32.
type wbuf struct {
	b     *buffer
	dtype int // shaders.WeightF32, WeightF16 or WeightBF16
}

var (
	matmulKinds    = []bindKind{bindUniform, bindRead, bindRead, bindRead, bindRW}
	layerNormKinds = []bindKind{bindUniform, bindRead, bindRead, bindRead, bindRW}
	embedKinds     = []bindKind{bindUniform, bindRead, bindRead, bindRead, bindRead, bindRW}
	ropeKinds      = []bindKind{bindUniform, bindRead, bindRead, bindRW}
	attnKinds      = []bindKind{bindUniform, bindRead, bindRW}
	rowDotKinds    = []bindKind{bindUniform, bindRead, bindRead, bindRW}
	gatherKinds    = []bindKind{bindUniform, bindRead, bindRead, bindRead, bindRW}
)

// matmulTile is one tiling of the matmul kernels: shaders.MatmulTiling (the
// generator's type, which checks a tiling) with the backend's choices on it.
type matmulTile struct{ shaders.MatmulTiling }

func tiling(BM, BN, BK, TM, TN int) matmulTile {
	return matmulTile{shaders.MatmulTiling{BM: BM, BN: BN, BK: BK, TM: TM, TN: TN}}
}

// Tilings. Where N % BN == 0 and K % BK == 0 (any M) a matmul runs the
// generated, fully unrolled kernel (shaders.MatmulUnrolled); other shapes
// run matmul.wgsl with the same tile (BK halved until its padded tiles fit
// 16 KiB of workgroup memory), bounds-checked.
var (
	tile64     = tiling(64, 64, 16, 4, 4)
	tile128x64 = tiling(128, 64, 16, 8, 4)
	tile128    = tiling(128, 128, 8, 8, 8)
	tile32     = tiling(32, 32, 16, 4, 4)
	// matmulTiles are the tilings the tests cover.
	matmulTiles = []matmulTile{tile128, tile128x64, tile64, tile32}
)

func (t matmulTile) String() string {
	return fmt.Sprintf("%dx%dx%d/%dx%d", t.BM, t.BN, t.BK, t.TM, t.TN)
}

func (t matmulTile) consts(fast bool, wdtype int) map[string]string {
	return map[string]string{
		"BM": fmt.Sprintf("%du", t.BM), "BN": fmt.Sprintf("%du", t.BN), "BK": fmt.Sprintf("%du", t.BK),
		"TM": fmt.Sprintf("%du", t.TM), "TN": fmt.Sprintf("%du", t.TN),
		"FAST": fmt.Sprint(fast), "WDTYPE": fmt.Sprintf("%du", wdtype),
	}
}

// unrolledConsts are the constants of shaders.MatmulUnrolled.
func (t matmulTile) unrolledConsts(wdtype int) map[string]string {
	c := t.consts(false, wdtype)
	delete(c, "FAST")
	return c
}

// unrolls reports whether the generated kernel can run (N, K) with t.
func (t matmulTile) unrolls(N, K int) bool {
	return N%t.BN == 0 && K%t.BK == 0 && t.CheckUnrolled() == nil
}

// loop is the tile matmul.wgsl runs for t: its shared tiles are padded by
// one vec4 per k row, so BK is halved until they fit 16 KiB.
func (t matmulTile) loop() matmulTile {
	for t.BK > 1 && 4*t.BK*(t.BM+4+t.BN+4) > 16384 {
		t.BK /= 2
	}
	return t
}

// chooseTile picks 128x128 (8x8 per thread, BK 8) where that still gives
// at least 256 workgroups, else 64x64 where that gives at least 128 (about
// one per streaming multiprocessor of a large GPU), else 32x32: on the H100
// the 128x128 tile was the fastest for every trunk matmul of the 16 x 1024
// forward, N = 384 (384 workgroups) included, and small batches (1 x 256:
// 24 workgroups of 64x64 for N = 384) leave most of the GPU idle
// (docs/performance.md).
func chooseTile(M, N, K int) matmulTile {
	wgs := func(t matmulTile) int { return ceilDiv(M, t.BM) * ceilDiv(N, t.BN) }
	switch {
	case tile128.unrolls(N, K) && wgs(tile128) >= 256:
		return tile128
	case wgs(tile64) >= 128 || !tile32.unrolls(N, K):
		return tile64
	}
	return tile32
}

// parseTile parses Options.MatmulTile, "BMxBNxBKxTMxTN" (e.g.
// "128x64x16x8x4"), and checks that the generated kernel can run it.
func parseTile(s string) (matmulTile, error) {
	parts := strings.Split(s, "x")
	v := make([]int, len(parts))
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || len(parts) != 5 {
			return matmulTile{}, fmt.Errorf("gpu: matmul tile %q is not BMxBNxBKxTMxTN (five whole numbers, e.g. 128x64x16x8x4)", s)
		}
		v[i] = n
	}
	t := tiling(v[0], v[1], v[2], v[3], v[4])
	if err := t.CheckUnrolled(); err != nil {
		return matmulTile{}, fmt.Errorf("gpu: matmul tile %q: %w", s, err)
	}
	return t, nil
}

// tileFor is the tiling of an (M, N, K) matmul: Options.MatmulTile where
// the generated kernel can run the shape with it, else chooseTile's.
func (d *device) tileFor(M, N, K int) matmulTile {
	if t := d.tile; t != nil && t.unrolls(N, K) {
		return *t
	}
	return chooseTile(M, N, K)
}

// matmul: out (M, N) [+]= act(a (M, K) · w (N, K)ᵀ + bias).
func (d *device) matmul(name string, M, N, K int, a binding, w wbuf, bias *buffer, out binding, act int, accumulate bool) (op, error) {
	return d.matmulTiled(name, d.tileFor(M, N, K), M, N, K, a, w, bias, out, act, accumulate)
}

func (d *device) matmulTiled(name string, t matmulTile, M, N, K int, a binding, w wbuf, bias *buffer, out binding, act int, accumulate bool) (op, error) {
	if M < 1 || N < 1 || K < 1 {
		return op{}, fmt.Errorf("gpu: %s: matmul shape M=%d N=%d K=%d", name, M, N, K)
	}
	var pl *pipeline
	var err error
	if !d.noUnrolled && t.unrolls(N, K) {
		pl, err = d.pipeline(shaders.MatmulUnrolled, t.unrolledConsts(w.dtype), matmulKinds)
	} else {
		t = t.loop()
		fast := M%t.BM == 0 && N%t.BN == 0 && K%t.BK == 0
		pl, err = d.pipeline("matmul.wgsl", t.consts(fast, w.dtype), matmulKinds)
	}
	if err != nil {
		return op{}, err
	}
	p := shaders.MatmulParams{M: uint32(M), N: uint32(N), K: uint32(K), Act: uint32(act)}
	bb := whole(d.dummy)
	if bias != nil {
		p.HasBias = 1
		bb = whole(bias)
	}
	if accumulate {
		p.Accumulate = 1
	}
	return op{name: name, pl: pl, params: shaders.Bytes(p),
		binds: []binding{a, whole(w.b), bb, out},
		wg:    [3]uint32{uint32(ceilDiv(N, t.BN)), uint32(ceilDiv(M, t.BM)), 1}}, nil
}

// layerNorm: y (N, C) = LN(x) · w + b; b may be nil.
func (d *device) layerNorm(name string, N, C int, x binding, w, b *buffer, y binding, eps float64) (op, error) {
	pl, err := d.pipeline("layernorm.wgsl", nil, layerNormKinds)
	if err != nil {
		return op{}, err
	}
	p := shaders.LayerNormParams{N: uint32(N), C: uint32(C), Eps: float32(eps)}
	bb := whole(d.dummy)
	if b != nil {
		p.HasBias = 1
		bb = whole(b)
	}
	return op{name: name, pl: pl, params: shaders.Bytes(p), binds: []binding{x, whole(w), bb, y}, wg: d.grid(uint64(N))}, nil
}

// embed: x (B, T, C) = wte[tokens] (+ wpe[t]), CLS swapped for cls.
func (d *device) embed(n, T, C int, tokens binding, wte wbuf, wpe, cls *buffer, clsID int32, x binding) (op, error) {
	pl, err := d.pipeline("embed.wgsl", map[string]string{"WDTYPE": fmt.Sprintf("%du", wte.dtype)}, embedKinds)
	if err != nil {
		return op{}, err
	}
	p := shaders.EmbedParams{N: uint32(n), T: uint32(T), C: uint32(C)}
	wb, cb := whole(d.dummy), whole(d.dummy)
	if wpe != nil {
		p.HasWPE = 1
		wb = whole(wpe)
	}
	if cls != nil && clsID >= 0 {
		p.HasCls, p.ClsID = 1, uint32(clsID)
		cb = whole(cls)
	}
	return op{name: "embed", pl: pl, params: shaders.Bytes(p), binds: []binding{tokens, whole(wte.b), wb, cb, x}, wg: d.grid(uint64(ceilDiv(n, 256)))}, nil
}

// rope rotates q and k of qkv (B, T, 3C) in place.
func (d *device) rope(name string, B, T, C, H int, cos, sin *buffer, qkv binding) (op, error) {
	pl, err := d.pipeline("rope.wgsl", nil, ropeKinds)
	if err != nil {
		return op{}, err
	}
	n := B * T * H * (C / H / 2)
	p := shaders.RopeParams{N: uint32(n), T: uint32(T), C: uint32(C), H: uint32(H)}
	return op{name: name, pl: pl, params: shaders.Bytes(p), binds: []binding{whole(cos), whole(sin), qkv}, wg: d.grid(uint64(ceilDiv(n, 256)))}, nil
}

// attnTiles picks the key tile for head size D so that K and V tiles fit
// 16 KiB of workgroup memory.
func attnTiles(D int) (BR, BC int, err error) {
	if D < 1 || D > 256 {
		return 0, 0, fmt.Errorf("gpu: head size %d is not supported by the attention kernel (1 to 256)", D)
	}
	BC = 32
	for BC > 1 && 2*BC*D*4 > 16384 {
		BC /= 2
	}
	return 64, BC, nil
}

// attention: out (B, T, C) = softmax(q·kᵀ/sqrt(d)) · v per head.
func (d *device) attention(name string, B, T, C, H int, causal bool, qkv, out binding) (op, error) {
	D := C / H
	BR, BC, err := attnTiles(D)
	if err != nil {
		return op{}, err
	}
	if B*H > int(d.p.limits().MaxComputeWorkgroupsPerDimension) {
		return op{}, &LimitError{Limit: "maxComputeWorkgroupsPerDimension", Have: uint64(d.p.limits().MaxComputeWorkgroupsPerDimension), Want: uint64(B * H), What: "attention (batch x heads workgroups)", Adapter: d.p.info().Name}
	}
	file := "attention.wgsl"
	if !d.noUnrolled && D%4 == 0 && BC%4 == 0 {
		// q and the accumulator as named vec4s, vec4 loads (C = H·D, so
		// every row offset is a multiple of 4 floats).
		file = shaders.AttentionUnrolled
	}
	pl, err := d.pipeline(file, map[string]string{"D": fmt.Sprintf("%du", D), "BR": fmt.Sprintf("%du", BR), "BC": fmt.Sprintf("%du", BC)}, attnKinds)
	if err != nil {
		return op{}, err
	}
	p := shaders.AttentionParams{T: uint32(T), C: uint32(C), H: uint32(H), Scale: float32(1 / math.Sqrt(float64(D)))}
	if causal {
		p.Causal = 1
	}
	return op{name: name, pl: pl, params: shaders.Bytes(p), binds: []binding{qkv, out}, wg: [3]uint32{uint32(ceilDiv(T, BR)), uint32(B * H), 1}}, nil
}

// rowDot: out[i] = f(x[i·stride : i·stride+C] · w), f = identity or
// sigmoid(a·v + b).
func (d *device) rowDot(name string, n, C, stride int, x binding, w *buffer, out binding, sigmoid bool, a, b float64) (op, error) {
	pl, err := d.pipeline("rowdot.wgsl", nil, rowDotKinds)
	if err != nil {
		return op{}, err
	}
	p := shaders.RowDotParams{N: uint32(n), C: uint32(C), Stride: uint32(stride), A: float32(a), B: float32(b)}
	if sigmoid {
		p.Sigmoid = 1
	}
	return op{name: name, pl: pl, params: shaders.Bytes(p), binds: []binding{x, whole(w), out}, wg: d.grid(uint64(ceilDiv(n, 64)))}, nil
}

// gather: out (n, 3C) = [wte[left] or 0, h[pos], wte[right] or 0]; idx is
// (3, n) int32: pos, left, right.
func (d *device) gather(n, C int, h binding, wte wbuf, idx, out binding) (op, error) {
	pl, err := d.pipeline("gather.wgsl", map[string]string{"WDTYPE": fmt.Sprintf("%du", wte.dtype)}, gatherKinds)
	if err != nil {
		return op{}, err
	}
	p := shaders.GatherParams{N: uint32(n), C: uint32(C)}
	return op{name: "sampler gather", pl: pl, params: shaders.Bytes(p), binds: []binding{h, whole(wte.b), idx, out}, wg: d.grid(uint64(ceilDiv(n*3*C, 256)))}, nil
}
