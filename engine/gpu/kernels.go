package gpu

import (
	"fmt"
	"math"
	"regexp"
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
	// half: matmuls with this matrix run the F16 form of the generated
	// kernel (Options.Precision "f16": the trunk's four matrices per block).
	half bool
}

// f16Consts adds the F16 constant of shaders.MatmulUnrolled to c when w is
// multiplied in f16: 1, or 2 (the f16 arithmetic emulated in f32) on a
// device with f16Emulate.
func (d *device) f16Consts(w wbuf, c map[string]string) map[string]string {
	switch {
	case w.half && d.f16Emulate:
		c["F16"] = "2u"
	case w.half:
		c["F16"] = "1u"
	}
	return c
}

var (
	matmulKinds    = []bindKind{bindUniform, bindRead, bindRead, bindRead, bindRW}
	layerNormKinds = []bindKind{bindUniform, bindRead, bindRead, bindRead, bindRW}
	ropeKinds      = []bindKind{bindUniform, bindRead, bindRead, bindRW}
	attnKinds      = []bindKind{bindUniform, bindRead, bindRW}
	attnRopeKinds  = []bindKind{bindUniform, bindRead, bindRW, bindRead, bindRead} // AttentionUnrolled with ROPE: + cos, sin
	addNormKinds   = []bindKind{bindUniform, bindRead, bindRead, bindRead, bindRead, bindRW, bindRW}
	embedNormKinds = []bindKind{bindUniform, bindRead, bindRead, bindRead, bindRead, bindRead, bindRead, bindRW, bindRW}
	rowDotKinds    = []bindKind{bindUniform, bindRead, bindRead, bindRW}
	gatherKinds    = []bindKind{bindUniform, bindRead, bindRead, bindRead, bindRW}
)

// matmulTile is one tiling of the matmul kernels: shaders.MatmulTiling (the
// generator's type, which checks a tiling) with the backend's choices on it;
// DB: the generated kernel's double-buffered form (one barrier per K tile
// instead of two, twice the workgroup memory: shaders.MatmulTiling.SharedBytes).
type matmulTile struct {
	shaders.MatmulTiling
	DB bool
}

func tiling(BM, BN, BK, TM, TN int) matmulTile {
	return matmulTile{MatmulTiling: shaders.MatmulTiling{BM: BM, BN: BN, BK: BK, TM: TM, TN: TN}}
}

// Tilings. Where N % BN == 0 and K % BK == 0 (any M) a matmul runs the
// generated, fully unrolled kernel (shaders.MatmulUnrolled); other shapes
// run matmul.wgsl with the same tile (BK halved until its padded tiles fit
// 16 KiB of workgroup memory; single-buffered), bounds-checked.
var (
	tile64     = tiling(64, 64, 16, 4, 4)
	tile128x64 = tiling(128, 64, 16, 8, 4)
	tile128    = tiling(128, 128, 8, 8, 8)
	tile32     = tiling(32, 32, 16, 4, 4)
	// The double-buffered forms (Options.MatmulDoubleBuffer); all three fit
	// the default 16 KiB of workgroup memory.
	tile128db = tile128.db()
	tile64db  = tile64.db()
	tile32db  = tile32.db()
	// tile128x16db needs 32 KiB: only where the device allows it.
	tile128x16db = tiling(128, 128, 16, 8, 8).db()
	// Two layouts of the generated kernel (Options.MatmulTile's suffixes
	// n, wX and cL; docs/performance.md, "Matmul layouts"), knob values.
	// tile128nc2 is tile128 with nested shared tiles and two invocations
	// per loaded row: the same FMAs in the same order (bit for bit), 0.967x
	// the 16 x 1024 forward of tile128 in the H200 sweep
	// (docs/performance.md); chooseTile's big tile.
	tile128nc2   = matmulTile{MatmulTiling: shaders.MatmulTiling{BM: 128, BN: 128, BK: 8, TM: 8, TN: 8, Nest: true, CL: 2}}
	tile128nw8c2 = matmulTile{MatmulTiling: shaders.MatmulTiling{BM: 128, BN: 128, BK: 8, TM: 8, TN: 8, Nest: true, WX: 8, CL: 2}}
	tile32dbnw4  = matmulTile{MatmulTiling: shaders.MatmulTiling{BM: 32, BN: 32, BK: 16, TM: 4, TN: 4, Nest: true, WX: 4}, DB: true}
	// tile32nw4c2 is tile32 nested, in warp tiles 4 threads wide, with two
	// invocations per loaded row: the same FMAs in the same order (bit for
	// bit), 0.954x and 0.908x the 1 x 256 forward of tile32 in two H200
	// sweeps (docs/performance.md); chooseTile's small tile.
	tile32nw4c2 = matmulTile{MatmulTiling: shaders.MatmulTiling{BM: 32, BN: 32, BK: 16, TM: 4, TN: 4, Nest: true, WX: 4, CL: 2}}
	// Sliced K (Options.MatmulTile's suffix kN; shaders.MatmulTiling.KW),
	// knob values: tile32 with 4 slices of 64 threads (16 KiB: 4 of K
	// tiles, 12 of the partial sums), and double-buffered, nested, warp
	// tiles with 2 slices.
	tile32k4      = matmulTile{MatmulTiling: shaders.MatmulTiling{BM: 32, BN: 32, BK: 16, TM: 4, TN: 4, KW: 4}}
	tile32dbnw4k2 = matmulTile{MatmulTiling: shaders.MatmulTiling{BM: 32, BN: 32, BK: 16, TM: 4, TN: 4, Nest: true, WX: 4, KW: 2}, DB: true}
	// matmulTiles are the tilings the tests cover.
	matmulTiles = []matmulTile{tile128, tile128x64, tile64, tile32, tile128db, tile64db, tile32db, tile128x16db, tile128nw8c2, tile32dbnw4, tile128nc2, tile32k4, tile32dbnw4k2, tile32nw4c2}
)

func (t matmulTile) db() matmulTile { t.DB = true; return t }

func (t matmulTile) String() string {
	s := fmt.Sprintf("%dx%dx%d/%dx%d", t.BM, t.BN, t.BK, t.TM, t.TN)
	if t.DB {
		s += "db"
	}
	if t.Nest {
		s += "n"
	}
	if t.WX != 0 {
		s += fmt.Sprintf("w%d", t.WX)
	}
	if t.CL > 1 {
		s += fmt.Sprintf("c%d", t.CL)
	}
	if t.KW > 1 {
		s += fmt.Sprintf("k%d", t.KW)
	}
	return s
}

func (t matmulTile) consts(fast bool, wdtype int) map[string]string {
	return map[string]string{
		"BM": fmt.Sprintf("%du", t.BM), "BN": fmt.Sprintf("%du", t.BN), "BK": fmt.Sprintf("%du", t.BK),
		"TM": fmt.Sprintf("%du", t.TM), "TN": fmt.Sprintf("%du", t.TN),
		"FAST": fmt.Sprint(fast), "WDTYPE": fmt.Sprintf("%du", wdtype),
	}
}

// unrolledConsts are the constants of shaders.MatmulUnrolled on a device
// with shmax bytes of workgroup memory.
func (t matmulTile) unrolledConsts(wdtype, shmax int) map[string]string {
	c := t.consts(false, wdtype)
	delete(c, "FAST")
	c["DB"] = "0u"
	if t.DB {
		c["DB"] = "1u"
	}
	c["SHMAX"] = fmt.Sprintf("%du", shmax)
	if t.Nest {
		c["NEST"] = "1u"
	}
	if t.WX != 0 {
		c["WX"] = fmt.Sprintf("%du", t.WX)
	}
	if t.CL > 1 {
		c["CL"] = fmt.Sprintf("%du", t.CL)
	}
	if t.KW > 1 {
		c["KW"] = fmt.Sprintf("%du", t.KW)
	}
	return c
}

// unrolls reports whether the generated kernel can run (N, K) with t within
// WebGPU's default 16 KiB of workgroup memory.
func (t matmulTile) unrolls(N, K int) bool {
	return t.unrollsWithin(N, K, floorShared)
}

// floorShared is the workgroup memory every device has (Open requires it:
// required.MaxComputeWorkgroupStorageSize, WebGPU's default). The automatic
// tiles (chooseTile), matmul.wgsl's BK and attention's key tile are sized
// within it, so they are the same on every device and so are the sums
// they make; what a device has beyond it (caps.shmax) is used by the
// tilings that need it (Options.MatmulTile, the tiled attention), each
// checked against the device.
var floorShared = int(required.MaxComputeWorkgroupStorageSize)

// unrollsWithin is unrolls on a device with shmax bytes of workgroup memory.
func (t matmulTile) unrollsWithin(N, K, shmax int) bool {
	return N%t.BN == 0 && K%t.BK == 0 && t.CheckUnrolledLimit(t.DB, shmax) == nil
}

// loop is the tile matmul.wgsl runs for t: its shared tiles are padded by
// one vec4 per k row, so BK is halved until they fit 16 KiB. matmul.wgsl
// has no double-buffered form.
func (t matmulTile) loop() matmulTile {
	t.DB = false
	for t.BK > 1 && 4*t.BK*(t.BM+4+t.BN+4) > floorShared {
		t.BK /= 2
	}
	return t
}

// shmax is the device's maxComputeWorkgroupStorageSize (at least 16384:
// checkLimits refuses less), from caps.
func (d *device) shmax() int { return d.caps.shmax }

// chooseTile picks 128x128 (8x8 per thread, BK 8; nested shared tiles,
// two invocations per loaded row: tile128nc2) where that still gives
// at least 256 workgroups, else 64x64 where that gives at least 128 (about
// one per streaming multiprocessor of a large GPU), else 32x32 (nested, warp
// tiles 4 wide, two invocations per loaded row: tile32nw4c2): on the H100
// the 128x128 tile was the fastest for every trunk matmul of the 16 x 1024
// forward, N = 384 (384 workgroups) included, and small batches (1 x 256:
// 24 workgroups of 64x64 for N = 384) leave most of the GPU idle
// (docs/performance.md). Single-buffered: the double-buffered forms are
// opt-in (Options.MatmulDoubleBuffer) until a GPU measurement decides.
func chooseTile(M, N, K int) matmulTile {
	wgs := func(t matmulTile) int { return ceilDiv(M, t.BM) * ceilDiv(N, t.BN) }
	switch {
	case tile128nc2.unrolls(N, K) && wgs(tile128nc2) >= 256:
		return tile128nc2
	case wgs(tile64) >= 128 || !tile32nw4c2.unrolls(N, K):
		return tile64
	}
	return tile32nw4c2
}

// tileSyntax is Options.MatmulTile's grammar, for error messages.
const tileSyntax = "BMxBNxBKxTMxTN[db][n][wX][cL][kN] (five whole numbers, e.g. 128x64x16x8x4; suffixes, each at most once and in this order: db double-buffered, n nested shared tiles, wX warp tiles X threads wide, cL rows loaded by L invocations each, kN K sliced N ways inside the workgroup, e.g. 128x128x8x8x8nw8c2, 32x32x16x4x4k4)"

// tileRE splits Options.MatmulTile into the five numbers and the suffixes.
var tileRE = regexp.MustCompile(`^([0-9]+)x([0-9]+)x([0-9]+)x([0-9]+)x([0-9]+)(db)?(n)?(?:w([0-9]+))?(?:c([0-9]+))?(?:k([0-9]+))?$`)

// parseTile parses Options.MatmulTile, "BMxBNxBKxTMxTN" (e.g.
// "128x64x16x8x4"), with the suffixes "db" for the double-buffered form,
// "n" for nested shared tiles (shaders.MatmulTiling.Nest), "wX" for warp
// tiles X threads wide (shaders.MatmulTiling.WX), "cL" for rows loaded
// by L invocations each (shaders.MatmulTiling.CL) and "kN" for K sliced N
// ways inside the workgroup (shaders.MatmulTiling.KW), and checks that the
// generator can build it within shmax bytes of workgroup memory.
func parseTile(s string, shmax int) (matmulTile, error) {
	m := tileRE.FindStringSubmatch(s)
	if m == nil {
		return matmulTile{}, fmt.Errorf("gpu: matmul tile %q is not %s", s, tileSyntax)
	}
	v := make([]int, 8)
	for i, f := range []string{m[1], m[2], m[3], m[4], m[5], m[8], m[9], m[10]} {
		if f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil { // only an overflow gets here
			return matmulTile{}, fmt.Errorf("gpu: matmul tile %q is not %s", s, tileSyntax)
		}
		v[i] = n
	}
	t := tiling(v[0], v[1], v[2], v[3], v[4])
	t.DB, t.Nest = m[6] != "", m[7] != ""
	if m[8] != "" {
		if v[5] == 0 {
			return matmulTile{}, fmt.Errorf("gpu: matmul tile %q: warp width w0: want w1, w2, w4, w8, w16 or w32", s)
		}
		t.WX = v[5]
	}
	if m[9] != "" {
		if v[6] < 2 {
			return matmulTile{}, fmt.Errorf("gpu: matmul tile %q: c%s: want c2, c4 or c8 (invocations per loaded row; c1 is the default, no suffix)", s, m[9])
		}
		t.CL = v[6]
	}
	if m[10] != "" {
		if v[7] < 2 {
			return matmulTile{}, fmt.Errorf("gpu: matmul tile %q: k%s: want k2 or more K slices (k1 is the default, no suffix)", s, m[10])
		}
		t.KW = v[7]
	}
	if err := t.CheckUnrolledLimit(t.DB, shmax); err != nil {
		return matmulTile{}, fmt.Errorf("gpu: matmul tile %q: %w", s, err)
	}
	return t, nil
}

// tileFor is the tiling of an (M, N, K) matmul: Options.MatmulTile where
// the generated kernel can run the shape with it (openDevice checked the
// tile against the device's workgroup memory), else chooseTile's, in its
// double-buffered form with Options.MatmulDoubleBuffer.
func (d *device) tileFor(M, N, K int) matmulTile {
	if t := d.tile; t != nil && N%t.BN == 0 && K%t.BK == 0 {
		return *t
	}
	t := chooseTile(M, N, K)
	if d.matmulDB {
		t = t.db() // every default tile fits 16 KiB double-buffered
	}
	return t
}

// matmul: out (M, N) [+]= act(a (M, K) · w (N, K)ᵀ + bias).
func (d *device) matmul(name string, M, N, K int, a binding, w wbuf, bias *buffer, out binding, act int, accumulate bool) (op, error) {
	return d.matmulTiled(name, d.tileFor(M, N, K), M, N, K, a, w, bias, out, act, accumulate)
}

func (d *device) matmulTiled(name string, t matmulTile, M, N, K int, a binding, w wbuf, bias *buffer, out binding, act int, accumulate bool) (op, error) {
	if M < 1 || N < 1 || K < 1 {
		return op{}, fmt.Errorf("gpu: %s: matmul shape M=%d N=%d K=%d", name, M, N, K)
	}
	if err := d.checkGroups(name+" (matmul workgroups in x or y)", ceilDiv(N, t.BN), ceilDiv(M, t.BM)); err != nil {
		return op{}, err
	}
	var pl *pipeline
	var err error
	if !d.noUnrolled && t.unrollsWithin(N, K, d.shmax()) {
		pl, err = d.pipeline(shaders.MatmulUnrolled, d.f16Consts(w, t.unrolledConsts(w.dtype, d.shmax())), matmulKinds)
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

// K-split matmuls: where a matmul's grid has few workgroups and K is deep
// (small batches: 1 x 256 runs mlp.c_proj, K = 1536, on 96 workgroups of
// 32x32 that walk 96 K tiles each), workgroup z of S multiplies one S-th of
// K into a scratch buffer and shaders.MatmulReduce sums the S partials and
// applies the epilogue. Opt-in (Options.Split "mm") until measured on a GPU.
const (
	mmSplitTarget = 512 // workgroups the split aims for
	mmMaxSplits   = 8
	mmMinKTiles   = 6 // K tiles each split walks at least
	// mmSplitFloats bounds the scratch of any split: only tiles of at most
	// 64x64 are split, so S·M·N <= S·wgs·BM·BN <= mmSplitTarget·64·64.
	mmSplitFloats = mmSplitTarget * 64 * 64
)

// kSplits is the number of K splits for (M, N, K) with tile t (1: none):
// the largest S <= mmMaxSplits that divides t's K tiles into runs of at
// least mmMinKTiles and keeps S·workgroups <= mmSplitTarget. Tiles larger
// than 64x64 are chosen only for large grids and never split.
func kSplits(t matmulTile, M, N, K int) int {
	if t.BM*t.BN > 64*64 {
		return 1
	}
	wgs := ceilDiv(M, t.BM) * ceilDiv(N, t.BN)
	tiles := K / t.BK
	best := 1
	for S := 2; S <= mmMaxSplits; S++ {
		if K%t.BK == 0 && S*wgs <= mmSplitTarget && tiles%S == 0 && tiles/S >= mmMinKTiles {
			best = S
		}
	}
	return best
}

// matmulOps is matmul, split over K where Options.Split has "mm", kSplits
// says so and the partials fit scratch (nil: never split).
func (d *device) matmulOps(name string, M, N, K int, a binding, w wbuf, bias *buffer, out binding, act int, accumulate bool, scratch *buffer) ([]op, error) {
	t := d.tileFor(M, N, K)
	if S := d.mmSplits(t, M, N, K, scratch); S > 1 {
		return d.matmulSplit(name, t, S, M, N, K, a, w, bias, out, act, accumulate, whole(scratch))
	}
	o, err := d.matmulTiled(name, t, M, N, K, a, w, bias, out, act, accumulate)
	return []op{o}, err
}

// mmSplits is the number of K splits matmulOps runs (M, N, K) with tile t
// in: kSplits where Options.Split has "mm", the generated kernel runs the
// shape and the partials fit scratch (nil: never split), else 1.
func (d *device) mmSplits(t matmulTile, M, N, K int, scratch *buffer) int {
	if scratch != nil && d.splitMM && !d.noUnrolled && t.unrollsWithin(N, K, d.shmax()) && M >= 1 {
		if S := kSplits(t, M, N, K); S > 1 && uint64(4*S*M*N) <= scratch.size {
			return S
		}
	}
	return 1
}

// lnSpec is a LayerNorm that reads the residual stream: its op's name
// ("h.0.ln_2"), its name in a fused op's (of the layer before: "ln_2",
// "next ln_1"), weight, bias (nil: none) and output.
type lnSpec struct {
	name, fused string
	w, b        *buffer
	y           binding
}

// residualNormOps is the residual matmul x (M, N) += a (M, K) · wᵀ + bias
// followed by ln's LayerNorm of x: where matmulOps would split it over K,
// the K-split partial products and shaders' addnorm.wgsl (the reduce, the
// residual add and the LayerNorm in one dispatch per row; named
// "NAME reduce + " and ln.fused), else the matmul and layernorm.wgsl. The values are
// those of matmulOps and layerNorm either way.
func (d *device) residualNormOps(name string, M, N, K int, a binding, w wbuf, bias *buffer, x binding, ln lnSpec, eps float64, scratch *buffer) ([]op, error) {
	t := d.tileFor(M, N, K)
	if S := d.mmSplits(t, M, N, K, scratch); S > 1 {
		rec := whole(scratch)
		po, err := d.matmulPartials(name, t, S, M, N, K, a, w, rec)
		if err != nil {
			return nil, err
		}
		ao, err := d.addNorm(name+" reduce + "+ln.fused, M, N, S, rec, bias, x, ln.w, ln.b, ln.y, eps)
		return []op{po, ao}, err
	}
	mo, err := d.matmulTiled(name, t, M, N, K, a, w, bias, x, shaders.ActNone, true)
	if err != nil {
		return nil, err
	}
	lo, err := d.layerNorm(ln.name, M, N, x, ln.w, ln.b, ln.y, eps)
	return []op{mo, lo}, err
}

// addNorm: x (N, C) += Σ_z rec[z] (S partial products of (N, C), from
// matmulPartials) + bias; y = LN(x) · lw + lb (shaders' addnorm.wgsl).
// bias and lb may be nil.
func (d *device) addNorm(name string, N, C, S int, rec binding, bias *buffer, x binding, lw, lb *buffer, y binding, eps float64) (op, error) {
	if N < 1 || C < 1 || S < 1 {
		return op{}, fmt.Errorf("gpu: %s: residual LayerNorm of N=%d C=%d with S=%d partials", name, N, C, S)
	}
	pl, err := d.pipeline("addnorm.wgsl", nil, addNormKinds)
	if err != nil {
		return op{}, err
	}
	p := shaders.AddNormParams{N: uint32(N), C: uint32(C), S: uint32(S), Eps: float32(eps)}
	mb, bb := whole(d.dummy), whole(d.dummy)
	if bias != nil {
		p.HasMBias = 1
		mb = whole(bias)
	}
	if lb != nil {
		p.HasBias = 1
		bb = whole(lb)
	}
	return op{name: name, pl: pl, params: shaders.Bytes(p), binds: []binding{rec, mb, whole(lw), bb, x, y}, wg: d.grid(uint64(N))}, nil
}

// matmulSplit runs (M, N, K) as S K-splits of tile t into rec (S·M·N
// floats) and shaders.MatmulReduce into out.
func (d *device) matmulSplit(name string, t matmulTile, S, M, N, K int, a binding, w wbuf, bias *buffer, out binding, act int, accumulate bool, rec binding) ([]op, error) {
	po, err := d.matmulPartials(name, t, S, M, N, K, a, w, rec)
	if err != nil {
		return nil, err
	}
	rpl, err := d.pipeline(shaders.MatmulReduce, map[string]string{"S": itoU(S)}, matmulKinds)
	if err != nil {
		return nil, err
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
	return []op{po,
		{name: name + " reduce", pl: rpl, params: shaders.Bytes(p), binds: []binding{rec, whole(d.dummy), bb, out},
			wg: d.grid(uint64(ceilDiv(M*N/4, 256)))},
	}, nil
}

// matmulPartials is the first kernel of a K-split matmul: workgroup z of
// S writes a (M, K) · w (N, K)ᵀ over its S-th of K to rows z·M .. z·M + M
// - 1 of rec (S·M·N floats), no epilogue.
func (d *device) matmulPartials(name string, t matmulTile, S, M, N, K int, a binding, w wbuf, rec binding) (op, error) {
	if M < 1 || N < 1 || K < 1 || S < 2 || K%(S*t.BK) != 0 || !t.unrollsWithin(N, K, d.shmax()) {
		return op{}, fmt.Errorf("gpu: %s: matmul M=%d N=%d K=%d cannot be split %d ways with tile %v (N %% BN and K %% (S·BK) must be 0)", name, M, N, K, S, t)
	}
	if err := d.checkGroups(name+" (matmul workgroups in x or y)", ceilDiv(N, t.BN), ceilDiv(M, t.BM)); err != nil {
		return op{}, err
	}
	c := d.f16Consts(w, t.unrolledConsts(w.dtype, d.shmax()))
	c["KSPLIT"] = itoU(S)
	pl, err := d.pipeline(shaders.MatmulUnrolled, c, matmulKinds)
	if err != nil {
		return op{}, err
	}
	p := shaders.MatmulParams{M: uint32(M), N: uint32(N), K: uint32(K)}
	return op{name: name, pl: pl, params: shaders.Bytes(p), binds: []binding{a, whole(w.b), whole(d.dummy), rec},
		wg: [3]uint32{uint32(ceilDiv(N, t.BN)), uint32(ceilDiv(M, t.BM)), uint32(S)}}, nil
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

// embedNorm: x (N = B·T, C) = wte[tokens] (+ wpe[t]), CLS swapped for
// cls; y = LN(x) · lw + lb (shaders' embednorm.wgsl: the embedding and the
// first LayerNorm in one dispatch, one workgroup per row; y is layerNorm's
// of x). wpe, cls and lb may be nil.
func (d *device) embedNorm(name string, N, T, C int, tokens binding, wte wbuf, wpe, cls *buffer, clsID int32, lw, lb *buffer, x, y binding, eps float64) (op, error) {
	if N < 1 || T < 1 || C < 1 {
		return op{}, fmt.Errorf("gpu: %s: embedding of N=%d T=%d C=%d", name, N, T, C)
	}
	pl, err := d.pipeline("embednorm.wgsl", map[string]string{"WDTYPE": fmt.Sprintf("%du", wte.dtype)}, embedNormKinds)
	if err != nil {
		return op{}, err
	}
	p := shaders.EmbedNormParams{N: uint32(N), T: uint32(T), C: uint32(C), Eps: float32(eps)}
	wb, cb, bb := whole(d.dummy), whole(d.dummy), whole(d.dummy)
	if wpe != nil {
		p.HasWPE = 1
		wb = whole(wpe)
	}
	if cls != nil && clsID >= 0 {
		p.HasCls, p.ClsID = 1, uint32(clsID)
		cb = whole(cls)
	}
	if lb != nil {
		p.HasBias = 1
		bb = whole(lb)
	}
	return op{name: name, pl: pl, params: shaders.Bytes(p), binds: []binding{tokens, whole(wte.b), wb, cb, whole(lw), bb, x, y}, wg: d.grid(uint64(N))}, nil
}

// ropeSpec is the trunk's rotary embedding of one layer for attentionOps:
// the name of its op where it runs on its own, and the tables.
type ropeSpec struct {
	name     string
	cos, sin *buffer
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
	for BC > 1 && 2*BC*D*4 > floorShared {
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
	if B*H > d.caps.groupsDim {
		return op{}, d.attnGroupsError(B, H)
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

// Key-split attention (flash-decoding style): where (B·H·⌈T/BR⌉) gives the
// GPU few workgroups (short sequences, e.g. 1 x 256: 24 of them), the keys
// are split S ways and AttentionCombine merges the partial results.
// Opt-in (Options.Split "attn") until measured on a GPU.
const (
	attnSplitTarget = 512 // workgroups the split aims for
	attnMaxSplits   = 16
)

// attnSplits returns the number of key splits S and the keys per split KS
// (a multiple of BC) for (B, T, H) with tiles BR, BC; S = 1: no split.
// Every split holds at least one key tile.
func attnSplits(B, T, H, BR, BC int) (S, KS int) {
	wgs := ceilDiv(T, BR) * B * H
	S = min(attnSplitTarget/max(wgs, 1), ceilDiv(T, BC), attnMaxSplits)
	if S < 2 {
		return 1, 0
	}
	KS = ceilDiv(ceilDiv(T, S), BC) * BC
	S = ceilDiv(T, KS)
	if S < 2 {
		return 1, 0
	}
	return S, KS
}

// attnSplitRows bounds S·B·T over every (B, T) with B·T <= capBT: S ≤
// attnSplitTarget / (B·H·⌈T/BR⌉) ≤ attnSplitTarget·BR / (B·T·H).
func attnSplitRows(capBT, H, BR int) int {
	return min(ceilDiv(attnSplitTarget*BR, H), attnMaxSplits*capBT)
}

// attentionOps is attention, split over keys where Options.Split has
// "attn", attnSplits says so and the generated kernels apply (D % 4 == 0): then the partial records go to
// scratch, which must hold S·B·T·(C + 4H) floats (attnSplitRows·(C + 4H)
// for any shape of B·T <= the capacity it was sized for).
//
// rope (nil: none) rotates q and k first: inside the split attention's
// loads where D % 8 == 0 (AttentionUnrolled's ROPE), else as a rope
// dispatch before the attention.
func (d *device) attentionOps(name string, B, T, C, H int, causal bool, qkv binding, rope *ropeSpec, scratch *buffer, out binding) ([]op, error) {
	D := C / H
	BR, BC, err := attnTiles(D)
	if err != nil {
		return nil, err
	}
	S, KS := attnSplits(B, T, H, BR, BC)
	split := !(S < 2 || scratch == nil || !d.splitAttn || d.noUnrolled || D%4 != 0 || BC%4 != 0 || uint64(4*S*B*T*(C+4*H)) > scratch.size)
	if rope != nil && !(split && D%8 == 0) {
		ro, err := d.rope(rope.name, B, T, C, H, rope.cos, rope.sin, qkv)
		if err != nil {
			return nil, err
		}
		rest, err := d.attentionOps(name, B, T, C, H, causal, qkv, nil, scratch, out)
		return append([]op{ro}, rest...), err
	}
	if !split {
		if d.tiledAttention(D) {
			o, err := d.attentionTiled(name, B, T, C, H, causal, qkv, out)
			return []op{o}, err
		}
		if d.attnRows && !d.noUnrolled {
			o, err := d.attentionRows(name, B, T, C, H, causal, qkv, out)
			return []op{o}, err
		}
		if d.attnAuto && !d.noUnrolled {
			// The default where a tile of RowsTiles fits the device at
			// this head size: 0.84x the one-row-per-thread kernel's
			// 16 x 1024 forward on the H200 (docs/performance.md).
			if t, err := d.rowsTileFor(D); err == nil {
				o, err := d.attentionRowsWith(name, t, B, T, C, H, causal, qkv, out)
				return []op{o}, err
			}
		}
		o, err := d.attention(name, B, T, C, H, causal, qkv, out)
		return []op{o}, err
	}
	return d.attentionSplit(name, B, T, C, H, causal, qkv, rope, whole(scratch), out, S, KS)
}

// tiledAttention reports whether unsplit attention of head size D runs
// shaders.AttentionTiled: Options.Attention "tiled" (opt-in until measured;
// the default is the one-row-per-thread kernel), D = 64 and enough
// workgroup memory.
func (d *device) tiledAttention(D int) bool {
	return d.attnTiled && D == 64 && !d.noUnrolled && d.shmax() >= shaders.AttentionTiledShared
}

// attentionTiled is attention through shaders.AttentionTiled (D = 64).
func (d *device) attentionTiled(name string, B, T, C, H int, causal bool, qkv, out binding) (op, error) {
	if C != 64*H || T < 1 || d.shmax() < shaders.AttentionTiledShared {
		return op{}, fmt.Errorf("gpu: %s: the tiled attention kernel needs head size 64 (C = %d, H = %d) and %d bytes of workgroup memory (the device has %d)", name, C, H, shaders.AttentionTiledShared, d.shmax())
	}
	if B*H > d.caps.groupsDim {
		return op{}, d.attnGroupsError(B, H)
	}
	pl, err := d.pipeline(shaders.AttentionTiled, nil, attnKinds)
	if err != nil {
		return op{}, err
	}
	p := shaders.AttentionParams{T: uint32(T), C: uint32(C), H: uint32(H), Scale: float32(1 / math.Sqrt(64))}
	if causal {
		p.Causal = 1
	}
	return op{name: name, pl: pl, params: shaders.Bytes(p), binds: []binding{qkv, out}, wg: [3]uint32{uint32(ceilDiv(T, 32)), uint32(B * H), 1}}, nil
}

// rowsTileFor is the tile Attention "rows" runs at head size D on this
// device: Options.AttentionTile, else the first of RowsTiles that fits.
// The error names what does not fit.
func (d *device) rowsTileFor(D int) (shaders.AttentionRowsTile, error) {
	if d.rowsTile != nil {
		t := *d.rowsTile
		if err := t.CheckFor(D, d.shmax(), d.caps.invoc); err != nil {
			return t, fmt.Errorf("gpu: attention \"rows\" (Options.AttentionTile): %w: choose a tile that fits, or leave the tile empty", err)
		}
		return t, nil
	}
	var errs []string
	for _, s := range RowsTiles {
		t, err := shaders.ParseAttentionRowsTile(s)
		if err == nil {
			err = t.CheckFor(D, d.shmax(), d.caps.invoc)
		}
		if err == nil {
			return t, nil
		}
		errs = append(errs, err.Error())
	}
	return shaders.AttentionRowsTile{}, fmt.Errorf("gpu: attention \"rows\": no tile runs head size %d on this device (%s); leave Options.Attention empty", D, strings.Join(errs, "; "))
}

// attentionRows is attention through shaders.AttentionRows (Attention
// "rows"; "auto" runs it too where a tile of RowsTiles fits).
func (d *device) attentionRows(name string, B, T, C, H int, causal bool, qkv, out binding) (op, error) {
	t, err := d.rowsTileFor(C / H)
	if err != nil {
		return op{}, fmt.Errorf("%w (%s)", err, name)
	}
	return d.attentionRowsWith(name, t, B, T, C, H, causal, qkv, out)
}

// attentionRowsWith is attentionRows with the tile t.
func (d *device) attentionRowsWith(name string, t shaders.AttentionRowsTile, B, T, C, H int, causal bool, qkv, out binding) (op, error) {
	D := C / H
	if C != D*H || T < 1 {
		return op{}, fmt.Errorf("gpu: %s: attention of T = %d, C = %d, H = %d (C must be a multiple of H, T at least 1)", name, T, C, H)
	}
	if err := t.CheckFor(D, d.shmax(), d.caps.invoc); err != nil {
		return op{}, fmt.Errorf("gpu: %s: %w", name, err)
	}
	if B*H > d.caps.groupsDim {
		return op{}, d.attnGroupsError(B, H)
	}
	consts := rowsConsts(D, t)
	pl, err := d.pipeline(shaders.AttentionRows, consts, attnKinds)
	if err != nil {
		return op{}, err
	}
	p := shaders.AttentionParams{T: uint32(T), C: uint32(C), H: uint32(H), Scale: float32(1 / math.Sqrt(float64(D)))}
	if causal {
		p.Causal = 1
	}
	return op{name: name, pl: pl, params: shaders.Bytes(p), binds: []binding{qkv, out}, wg: [3]uint32{uint32(ceilDiv(T, t.R*t.WG)), uint32(B * H), 1}}, nil
}

// rowsConsts are shaders.AttentionRows' constants for head size D and tile t.
func rowsConsts(D int, t shaders.AttentionRowsTile) map[string]string {
	pf := 0
	if t.PF {
		pf = 1
	}
	return map[string]string{"D": itoU(D), "R": itoU(t.R), "WG": itoU(t.WG), "BC": itoU(t.BC), "N": itoU(t.N), "PF": itoU(pf)}
}

// attentionSplit is the key-split attention with S splits of KS keys:
// shaders.AttentionUnrolled with KS into rec, then shaders.AttentionCombine
// into out. rope (nil: none; head size D % 8 == 0) rotates q and k as
// they are loaded (AttentionUnrolled's ROPE).
func (d *device) attentionSplit(name string, B, T, C, H int, causal bool, qkv binding, rope *ropeSpec, rec, out binding, S, KS int) ([]op, error) {
	D := C / H
	BR, BC, err := attnTiles(D)
	if err != nil {
		return nil, err
	}
	if D%4 != 0 || KS < BC || KS%BC != 0 || S < 1 || S*KS < T || (S-1)*KS >= T {
		return nil, fmt.Errorf("gpu: %s: key split S=%d KS=%d does not cover T=%d in tiles of %d (head size %d must be a multiple of 4)", name, S, KS, T, BC, D)
	}
	if rope != nil && D%8 != 0 {
		return nil, fmt.Errorf("gpu: %s: the rope inside the attention needs head size D %% 8 == 0 (D = %d)", name, D)
	}
	if B*H > d.caps.groupsDim {
		return nil, d.attnGroupsError(B, H)
	}
	consts, kinds := map[string]string{"D": itoU(D), "BR": itoU(BR), "BC": itoU(BC), "KS": itoU(KS)}, attnKinds
	if rope != nil {
		consts["ROPE"], kinds = "1u", attnRopeKinds
	}
	pl, err := d.pipeline(shaders.AttentionUnrolled, consts, kinds)
	if err != nil {
		return nil, err
	}
	cpl, err := d.pipeline(shaders.AttentionCombine, map[string]string{"D": itoU(D), "S": itoU(S)}, attnKinds)
	if err != nil {
		return nil, err
	}
	p := shaders.AttentionParams{T: uint32(T), C: uint32(C), H: uint32(H), Scale: float32(1 / math.Sqrt(float64(D)))}
	if causal {
		p.Causal = 1
	}
	cp := p
	cp.T = uint32(B * T)
	n := B * T * C / 4
	binds := []binding{qkv, rec}
	if rope != nil {
		binds = append(binds, whole(rope.cos), whole(rope.sin))
	}
	return []op{
		{name: name, pl: pl, params: shaders.Bytes(p), binds: binds, wg: [3]uint32{uint32(ceilDiv(T, BR)), uint32(B * H), uint32(S)}},
		{name: name + " combine", pl: cpl, params: shaders.Bytes(cp), binds: []binding{rec, out}, wg: d.grid(uint64(ceilDiv(n, 256)))},
	}, nil
}

// checkGroups refuses a dispatch of more than maxComputeWorkgroupsPerDimension
// workgroups in one dimension.
func (d *device) checkGroups(what string, counts ...int) error {
	for _, n := range counts {
		if n > d.caps.groupsDim {
			return d.caps.limitError("maxComputeWorkgroupsPerDimension", uint64(d.caps.groupsDim), uint64(d.caps.adapter.MaxComputeWorkgroupsPerDimension), uint64(n),
				what, d.p.info().Name, "use a smaller batch or sequence (fewer positions B·T)")
		}
	}
	return nil
}

// attnGroupsError is the error of an attention whose B·H workgroups exceed
// maxComputeWorkgroupsPerDimension.
func (d *device) attnGroupsError(B, H int) error {
	return d.caps.limitError("maxComputeWorkgroupsPerDimension", uint64(d.caps.groupsDim), uint64(d.caps.adapter.MaxComputeWorkgroupsPerDimension), uint64(B*H),
		"attention (batch x heads workgroups)", d.p.info().Name, "use a smaller batch")
}

func itoU(v int) string { return shaders.UintLiteral(v) }

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
