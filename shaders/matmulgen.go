package shaders

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// MatmulUnrolled is the name of the generated matmul variant: the same
// kernel as matmul.wgsl (same Params, bindings and epilogue semantics, same
// CPU twin), written out by Go for one tiling with every register-level loop
// unrolled, so that no function-local array is indexed at run time. Source
// accepts it like a file, with the constants BM BN BK TM TN WDTYPE and the
// optional DB (0 or 1), SHMAX, KSPLIT, F16, the layout constants NEST,
// WX and CL (MatmulTiling's Nest, WX and CL; unset, the layout described
// here) and KW (MatmulTiling's KW, sliced K; unset, one slice).
//
// Why: matmul.wgsl keeps its TM x TN accumulator block in
// `array<array<f32, TN>, TM>` indexed by loop counters. naga emits those as
// function-local arrays with clamped dynamic indices, and a driver that does
// not unroll the loops fully keeps them in (slow) local memory. Here the
// accumulators are named vec4 variables (c_<row>_<colgroup>), every k step of
// a BK tile is written out, and operands move as vec4s.
//
// Structure (the loops of matmul.wgsl, unrolled):
//   - A workgroup of (BN/TN) x (BM/TM) threads computes a BM x BN tile of OUT.
//     Thread (tx, ty) owns rows g·4·WGY + 4·ty + r (g < TM/4, r < 4) and the
//     vec4 column groups c·WGX + tx (c < TN/4) of the tile, so the threads of
//     a warp read consecutive vec4s of the shared W tile (no bank conflicts)
//     and broadcast-read the shared A tile.
//   - Global reads are vec4s along K (A and f32 W as vec4, packed halves as
//     vec2<u32> = 4 halves); loader e = li + NT·j reads tile row e % BM, k
//     quad e / BM, so a warp's transposed stores into the k-major shared
//     tiles hit 32 different banks without padding.
//   - The next K tile is read from global memory into registers while the
//     current one is multiplied (register prefetch; 2 barriers per tile).
//   - Rows beyond M are read clamped (row M-1) and not written: M is free.
//
// With DB = 1 the shared tiles are doubled: the prefetched K tile is stored
// into the idle half right after the current half has been multiplied, so
// one barrier per K tile separates the stores from the reads of both halves.
// SHMAX (optional, default 16384) is the device's
// maxComputeWorkgroupStorageSize; the generator refuses a tiling that needs
// more.
//
// Preconditions, checked by the host: N % BN == 0, K % BK == 0 (BK % 4 ==
// 0), and the bindings are vec4-aligned (every storage offset is a multiple
// of 256 bytes).
//
// F16 = 1 (optional, default 0) is the f16 form, for devices with the
// WebGPU feature shader-f16 (`enable f16;`): A is read as f32 and stored
// into the shared tile as f16, W is read as f16 (WDTYPE 1: the packed
// halves bound as array<vec4<f16>>; F32 and BF16 weights are converted),
// and each K tile's products are summed in f16 registers h_<row>_<colgroup>
// that are added to the f32 accumulators c_<row>_<colgroup> after the tile:
// f32 accumulation across K tiles, the epilogue (bias, activation, residual
// add) and OUT in f32. Error per output element, first order in
// u = 2^-11 (f16's unit roundoff): A's rounding (u) plus one rounding per
// product and per add of the BK-term f16 sum (2·BK·u), each relative to
// Σ_k |a_k·w_k|: |err| <= (2·BK + 1)·u·Σ_k |a_k·w_k| (plus f32's 2^-24
// terms); engine/gpu's f16 tests hold the kernel and its CPU model to it.
// The generated text with F16 = 0 is byte-identical to the generator's
// before F16 existed (shaders' TestF16Variants pins that F16 = 0 changes
// nothing). F16 = 2 is the F16 form's arithmetic emulated in f32 (f32
// types, every f16 result rounded through pack2x16float/unpack2x16float):
// for tests on adapters, or builds, without f16 (engine/gpu's
// TestF16Emulated), not for speed.
const MatmulUnrolled = "matmul_unrolled.wgsl"

// MatmulTiling is one tiling of the matmul kernels, with the layout of
// MatmulUnrolled's threads, loaders and shared tiles (Nest, WX, CL; zero:
// the layout MatmulUnrolled describes; matmul.wgsl ignores them) and its
// K slices inside the workgroup (KW). Every layout computes each output
// with the same FMAs in the same order (k ascending), so the results are
// the same bits; KW changes the order (see KW).
type MatmulTiling struct {
	BM, BN, BK, TM, TN int
	// Nest (constant NEST = 1): the shared tiles are nested arrays,
	// As[k/4][k%4][g][t] instead of As[k·BM/4 + g·WGY + t], the same bytes
	// in the same order. Why: wgpu-native runs naga with its "Restrict"
	// index policy on every array that is not a buffer, so each read of a
	// workgroup array is clamped, min(index, length - 1); in the flat form
	// every one of the BK·(TM+TN)/4 reads of a K tile has its own clamped
	// index (min(C + ty, 255) for C = 0, 16, 32, ...), computed in the loop
	// or held in registers. Nested, every index but the thread's t is a
	// constant (naga checks constants at compile time), so a K tile's reads
	// share two clamped indices, min(ty, WGY-1) and min(tx, WGX-1), and the
	// rest of each address is a constant offset.
	Nest bool
	// WX (constant WX; 0: unset) arranges the threads as warp tiles: each
	// 32 consecutive invocations (a warp on NVIDIA) take a block of WX
	// thread columns x 32/WX thread rows, instead of the row-major
	// tx = li % WGX, ty = li / WGX (for WGX = 16: 16 x 2). A warp then reads
	// 32/WX distinct vec4s of the A tile and WX of the W tile per k step:
	// w8 reads 4 + 8 (64 + 128 bytes: one shared-memory wavefront each)
	// where the row-major 128x128 tile reads 2 + 16 (the W read spans 256
	// bytes, two wavefronts). Needs a multiple of 32 threads, WX | WGX and
	// 32/WX | WGY.
	WX int
	// CL (constant CL; 0 or 1: unset) is how many consecutive invocations
	// load one row of a tile from global memory, CL consecutive vec4s along
	// K. Unset, invocation e loads row e % BM at k quad e / BM: a warp's
	// vec4 loads touch 32 rows (32 cache lines, 16 bytes of each; the other
	// k quads of those lines come in other instructions), and its
	// transposed stores into the k-major shared tile hit 32 banks. With CL,
	// a warp's load touches 32/CL rows with 16·CL contiguous bytes of each
	// (CL = 2: whole 32-byte sectors; 8: whole 128-byte lines), and the CL
	// invocations of a row store into the same bank of CL different k rows
	// (a CL-way bank conflict, since a k row is BM floats, a multiple of
	// 32). NVIDIA's L1 serves global and shared accesses through one data
	// path, so fewer lines per load may pay for the conflicts. Needs
	// CL | BK/4.
	CL int
	// KW (constant KW; 0 or 1: unset) slices K inside the workgroup
	// ("sliced K"): the workgroup has KW groups of (BN/TN) x (BM/TM)
	// threads, all KW·NT threads load each K tile, and group s multiplies
	// only k quads [s·Q, s·Q + Q) of it (Q = BK/4/KW) into its threads' own
	// TM x TN accumulators. After the K loop the groups add their partial
	// sums through workgroup memory (an array of (KW-1)·BM·BN floats beside
	// the tiles) in the fixed order s = 0, 1, ..., KW-1, group s finishing
	// the s-th KW-th of every thread's accumulators: the reduce, the
	// epilogue and the writes are spread over all KW·NT threads. Why: at
	// small grids (1 x 256) a matmul has a few warps per SM, each walking
	// every K tile in turn (latency-bound); KW multiplies the warps by KW
	// with no extra dispatch and no extra global traffic, and divides a
	// thread's k steps per K tile by KW. Unlike Nest, WX and CL it changes
	// the order of the sums (KW partial sums, added at the end), so the
	// results differ from KW = 1 by rounding. Needs KW·NT <= 256,
	// KW | BK/4 and KW | TM·TN/4 (the accumulator vec4s a thread hands
	// out). Loads that do not split evenly over the KW·NT threads take one
	// guarded round (A on the first threads, W on the last). It composes
	// with DB (the same one or two barriers per K tile), KSPLIT (a split's
	// partial product is the sum of its slices), F16 (each group's per-tile
	// f16 sums have BK/KW terms), WX (warp tiles within a group), CL and
	// Nest (the nested tiles get a slice dimension, As[s][k/4 - s·Q]..., so
	// a group's reads index with s, the thread and constants).
	KW int
}

// DefaultWorkgroupStorage is WebGPU's default maxComputeWorkgroupStorageSize,
// the budget of a tiling when the device's limit is not given.
const DefaultWorkgroupStorage = 16384

// SharedBytes is the workgroup memory t's generated kernel declares; db:
// the double-buffered form (DB = 1), two shared tiles, so that a K tile is
// stored while the other is read and each K step needs one barrier instead
// of two. With KW > 1 the sliced-K reduce adds the partial sums of KW - 1
// groups, (KW - 1)·BM·BN floats.
func (t MatmulTiling) SharedBytes(db bool) int {
	n := 4 * t.BK * (t.BM + t.BN)
	if db {
		n *= 2
	}
	return n + t.reduceBytes()
}

// reduceBytes is the workgroup memory of the sliced-K reduce (KW > 1):
// the partial sums of KW - 1 groups.
func (t MatmulTiling) reduceBytes() int {
	if t.KW <= 1 {
		return 0
	}
	return 4 * (t.KW - 1) * t.BM * t.BN
}

// kw is the number of K slices: KW, or 1 where it is unset.
func (t MatmulTiling) kw() int { return max(t.KW, 1) }

// MaxMatmulInvocations bounds a generated matmul's workgroup (KW·NT
// threads with sliced K): WebGPU's default maxComputeInvocationsPerWorkgroup,
// which every device engine/gpu opens has.
const MaxMatmulInvocations = 256

// MaxMatmulRegisters bounds Registers: NVIDIA's compiler gives a thread at
// most 255 registers and spills the rest to local memory, which would undo
// the point of the generated kernel; the estimate leaves about 30 for
// addresses, indices and loop state.
const MaxMatmulRegisters = 224

// Registers estimates the 32-bit registers a thread of t's f32 kernel keeps
// live in its K loop: TM·TN accumulators, the 4·(la + lw) prefetched
// components of the next K tile (la, lw: vec4 loads of A and W per thread
// and tile, over the KW·NT threads of a sliced-K workgroup) and one k
// step's operands (TM + TN). An estimate, not the
// driver's count (no WebGPU API reports that).
func (t MatmulTiling) Registers() int {
	if t.TM <= 0 || t.TN <= 0 || t.BM < t.TM || t.BN < t.TN {
		return 0 // not a tiling (CheckUnrolledLimit says why)
	}
	nt := (t.BM / t.TM) * (t.BN / t.TN) * t.kw()
	la, lw := ceilDivInt(t.BM*t.BK/4, nt), ceilDivInt(t.BN*t.BK/4, nt)
	return t.TM*t.TN + 4*(la+lw) + t.TM + t.TN
}

func ceilDivInt(a, b int) int { return (a + b - 1) / b }

// CheckUnrolled reports whether t can be generated as MatmulUnrolled
// (single-buffered) within the default 16 KiB of workgroup memory.
func (t MatmulTiling) CheckUnrolled() error {
	return t.CheckUnrolledLimit(false, DefaultWorkgroupStorage)
}

// CheckUnrolledLimit reports whether t can be generated as MatmulUnrolled,
// double-buffered when db, on a device whose maxComputeWorkgroupStorageSize
// is shmax bytes.
func (t MatmulTiling) CheckUnrolledLimit(db bool, shmax int) error {
	if t.BM <= 0 || t.BN <= 0 || t.BK <= 0 || t.TM <= 0 || t.TN <= 0 {
		return fmt.Errorf("shaders: matmul tiling %+v: sizes must be positive", t)
	}
	if t.TM%4 != 0 || t.TN%4 != 0 || t.BK%4 != 0 {
		return fmt.Errorf("shaders: matmul tiling %+v: TM, TN and BK must be multiples of 4", t)
	}
	if t.BM%t.TM != 0 || t.BN%t.TN != 0 {
		return fmt.Errorf("shaders: matmul tiling %+v: TM must divide BM and TN divide BN", t)
	}
	nt := (t.BM / t.TM) * (t.BN / t.TN)
	if nt > MaxMatmulInvocations {
		return fmt.Errorf("shaders: matmul tiling %+v: %d threads > %d", t, nt, MaxMatmulInvocations)
	}
	if t.KW < 0 {
		return fmt.Errorf("shaders: matmul tiling %+v: KW = %d K slices must be at least 1", t, t.KW)
	}
	if kw := t.kw(); kw > 1 {
		switch {
		case kw*nt > MaxMatmulInvocations:
			return fmt.Errorf("shaders: matmul tiling %+v: KW = %d K slices of %d threads are %d threads > %d (WebGPU's default maxComputeInvocationsPerWorkgroup): use fewer slices or a tile of fewer threads", t, kw, nt, kw*nt, MaxMatmulInvocations)
		case (t.BK/4)%kw != 0:
			return fmt.Errorf("shaders: matmul tiling %+v: KW = %d K slices must divide the BK/4 = %d k quads of a K tile", t, kw, t.BK/4)
		case (t.TM*t.TN/4)%kw != 0:
			return fmt.Errorf("shaders: matmul tiling %+v: KW = %d K slices must divide the TM·TN/4 = %d accumulator vec4s of a thread (each slice group finishes one KW-th of them)", t, kw, t.TM*t.TN/4)
		}
	} else if (t.BM*t.BK/4)%nt != 0 || (t.BN*t.BK/4)%nt != 0 {
		return fmt.Errorf("shaders: matmul tiling %+v: the %d threads do not split the tile loads evenly", t, nt)
	}
	if sh := t.SharedBytes(db); sh > shmax {
		if t.KW > 1 {
			return fmt.Errorf("shaders: matmul tiling %+v: %d bytes of workgroup memory (%d of K tiles, %d of the KW = %d slices' partial sums) > the limit %d", t, sh, sh-t.reduceBytes(), t.reduceBytes(), t.KW, shmax)
		}
		return fmt.Errorf("shaders: matmul tiling %+v: %d bytes of workgroup memory > the limit %d", t, sh, shmax)
	}
	if r := t.Registers(); r > MaxMatmulRegisters {
		return fmt.Errorf("shaders: matmul tiling %+v: about %d registers per thread (%d accumulators, the prefetched K tile and one k step's operands) > %d: it would spill on NVIDIA (255 at most); use a smaller TM·TN or BK", t, r, t.TM*t.TN, MaxMatmulRegisters)
	}
	if t.CL < 0 || t.CL > 8 || t.CL > 1 && (t.CL&(t.CL-1) != 0 || (t.BK/4)%t.CL != 0) {
		return fmt.Errorf("shaders: matmul tiling %+v: CL = %d invocations per loaded row must be 1, 2, 4 or 8 and divide BK/4 = %d", t, t.CL, t.BK/4)
	}
	if t.WX != 0 {
		wgx, wgy := t.BN/t.TN, t.BM/t.TM
		switch {
		case t.WX < 0 || t.WX > 32 || 32%t.WX != 0:
			return fmt.Errorf("shaders: matmul tiling %+v: warp width WX = %d must be 1, 2, 4, 8, 16 or 32", t, t.WX)
		case nt%32 != 0:
			return fmt.Errorf("shaders: matmul tiling %+v: warp tiles need a multiple of 32 threads, not %d", t, nt)
		case wgx%t.WX != 0 || wgy%(32/t.WX) != 0:
			return fmt.Errorf("shaders: matmul tiling %+v: a warp of %d x %d threads does not tile the %d x %d threads (WX must divide BN/TN = %d and 32/WX divide BM/TM = %d)", t, t.WX, 32/t.WX, wgx, wgy, wgx, wgy)
		}
	}
	return nil
}

// generatorConsts parses the constants a generated kernel was asked for:
// each must be one of names and a u32 literal ("8" or "8u"). Which are
// required, and their ranges, each generator checks itself.
func generatorConsts(kernel string, consts map[string]string, names ...string) (map[string]int, error) {
	vals := map[string]int{}
	for name, lit := range consts {
		if !slices.Contains(names, name) {
			return nil, fmt.Errorf("shaders: %s declares no module-scope constant %s", kernel, name)
		}
		v, err := strconv.Atoi(strings.TrimSuffix(lit, "u"))
		if err != nil {
			return nil, fmt.Errorf("shaders: %s: constant %s = %q is not a u32 literal", kernel, name, lit)
		}
		vals[name] = v
	}
	return vals, nil
}

// unrolledSource generates MatmulUnrolled for the given constants.
func unrolledSource(consts map[string]string) (string, error) {
	vals, err := generatorConsts(MatmulUnrolled, consts, "BM", "BN", "BK", "TM", "TN", "WDTYPE", "DB", "SHMAX", "KSPLIT", "F16", "NEST", "WX", "CL", "KW")
	if err != nil {
		return "", err
	}
	for _, name := range []string{"BM", "BN", "BK", "TM", "TN", "WDTYPE"} {
		if _, ok := vals[name]; !ok {
			return "", fmt.Errorf("shaders: %s needs the constant %s", MatmulUnrolled, name)
		}
	}
	if db := vals["DB"]; db != 0 && db != 1 {
		return "", fmt.Errorf("shaders: %s: DB = %d, want 0 or 1", MatmulUnrolled, db)
	}
	if f := vals["F16"]; f < 0 || f > 2 {
		return "", fmt.Errorf("shaders: %s: F16 = %d, want 0, 1 or 2", MatmulUnrolled, f)
	}
	shmax := DefaultWorkgroupStorage
	if v, ok := vals["SHMAX"]; ok {
		shmax = v
	}
	if n := vals["NEST"]; n != 0 && n != 1 {
		return "", fmt.Errorf("shaders: %s: NEST = %d, want 0 or 1", MatmulUnrolled, n)
	}
	t := MatmulTiling{BM: vals["BM"], BN: vals["BN"], BK: vals["BK"], TM: vals["TM"], TN: vals["TN"], Nest: vals["NEST"] == 1, WX: vals["WX"], CL: vals["CL"], KW: vals["KW"]}
	db := vals["DB"] == 1
	ks := 1
	if v, ok := vals["KSPLIT"]; ok {
		ks = v
	}
	if ks < 1 || ks > 64 {
		return "", fmt.Errorf("shaders: %s: KSPLIT = %d, want 1 to 64", MatmulUnrolled, ks)
	}
	if err := t.CheckUnrolledLimit(db, shmax); err != nil {
		return "", err
	}
	// The F16 form adds its per-tile sums: TM·TN halves (two to a
	// register), or TM·TN f32s where emulated (F16 = 2).
	if f := vals["F16"]; f != 0 {
		r := t.Registers() + t.TM*t.TN
		if f == 1 {
			r = t.Registers() + t.TM*t.TN/2
		}
		if r > MaxMatmulRegisters {
			return "", fmt.Errorf("shaders: %s: tiling %+v with F16 = %d needs about %d registers per thread > %d (see MaxMatmulRegisters)", MatmulUnrolled, t, f, r, MaxMatmulRegisters)
		}
	}
	wd := vals["WDTYPE"]
	if wd != WeightF32 && wd != WeightF16 && wd != WeightBF16 {
		return "", fmt.Errorf("shaders: %s: unknown WDTYPE %d", MatmulUnrolled, wd)
	}
	params, err := paramsStruct("matmul.wgsl")
	if err != nil {
		return "", err
	}
	return genUnrolled(t, db, ks, wd, vals["F16"], params), nil
}

// genUnrolled writes MatmulUnrolled; f16mode is the constant F16 (0, 1, 2).
func genUnrolled(t MatmulTiling, db bool, ks, wd, f16mode int, params string) string {
	f16, emu := f16mode == 1, f16mode == 2 // the F16 form, in f16 or emulated in f32
	wgx, wgy := t.BN/t.TN, t.BM/t.TM
	nt := wgx * wgy // the threads of one K slice's group
	kw := t.kw()
	ntt := kw * nt     // the workgroup
	q := t.BK / 4 / kw // k quads per slice of a K tile
	// The tile loads: rounds of ntt vec4s; with sliced K a remainder round
	// (guarded: A on the first threads, W on the last).
	aRounds, wRounds := loadRounds(t.BM*t.BK/4, ntt, false), loadRounds(t.BN*t.BK/4, ntt, true)
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...); b.WriteByte('\n') }

	p("// %s: generated by shaders/matmulgen.go (see MatmulUnrolled there) from the", MatmulUnrolled)
	p("// structure of matmul.wgsl. BM=%d BN=%d BK=%d TM=%d TN=%d DB=%v WDTYPE=%d.", t.BM, t.BN, t.BK, t.TM, t.TN, db, wd)
	if t.Nest || t.WX != 0 || t.CL > 1 {
		p("// Layout: NEST=%v WX=%d CL=%d (see MatmulTiling's Nest, WX and CL).", t.Nest, t.WX, t.CL)
	}
	if kw > 1 {
		p("// Sliced K: KW=%d groups of NT threads, group s multiplies k quads [%d·s, %d·s + %d) of", kw, q, q, q)
		p("// each K tile; the partial sums are added in workgroup memory (see MatmulTiling's KW).")
	}
	// sh is the type of the shared tiles' vec4s; conv converts an A
	// component (f32) to it.
	sh, conv := "f32", ""
	if f16 {
		p("// F16: f16 operands in workgroup memory, f16 products summed in f16 within a")
		p("// K tile, f32 across K tiles and in the epilogue (see MatmulUnrolled).")
		p("enable f16;")
		sh, conv = "f16", "f16"
	}
	if emu {
		p("// F16 = 2: the F16 form's arithmetic emulated in f32, every f16 result rounded")
		p("// through pack2x16float (tests on adapters without shader-f16; see MatmulUnrolled).")
		conv = "q16"
	}
	p("")
	p("%s", params)
	p("")
	p("@group(0) @binding(0) var<uniform> P: Params;")
	p("@group(0) @binding(1) var<storage, read> A: array<vec4<f32>>;")
	if f16 && wd == WeightF16 {
		p("@group(0) @binding(2) var<storage, read> W: array<vec4<f16>>; // 4 halves")
	} else if wd == WeightF32 {
		p("@group(0) @binding(2) var<storage, read> W: array<vec4<u32>>; // f32 bits")
	} else {
		p("@group(0) @binding(2) var<storage, read> W: array<vec2<u32>>; // 4 packed halves")
	}
	p("@group(0) @binding(3) var<storage, read> BIAS: array<vec4<f32>>;")
	p("@group(0) @binding(4) var<storage, read_write> OUT: array<vec4<f32>>;")
	p("")
	p("const BM: u32 = %du;", t.BM)
	p("const BN: u32 = %du;", t.BN)
	p("const BK: u32 = %du;", t.BK)
	p("const WGX: u32 = %du;", wgx)
	p("const WGY: u32 = %du;", wgy)
	p("const NT: u32 = %du;", nt)
	if kw > 1 {
		p("const KW: u32 = %du;", kw)
	}
	p("")
	nbuf := 1
	if db {
		nbuf = 2
	}
	asLen, wsLen := t.BK*t.BM/4, t.BK*t.BN/4 // vec4s of one shared tile
	if t.Nest {
		// The flat layout's vec4s in the same order, as nested arrays
		// [half][k/4][k%4][group][thread].
		nest := func(groups, threads int) string {
			ty := fmt.Sprintf("array<array<array<array<vec4<%s>, %d>, %d>, 4>, %d>", sh, threads, groups, t.BK/4)
			if kw > 1 {
				// [slice][k/4 within the slice]: a slice's reads index
				// the tile with s and constants.
				ty = fmt.Sprintf("array<array<array<array<array<vec4<%s>, %d>, %d>, 4>, %d>, %d>", sh, threads, groups, q, kw)
			}
			if db {
				ty = fmt.Sprintf("array<%s, 2>", ty)
			}
			return ty
		}
		half := ""
		if db {
			half = "[h]"
		}
		kq := "[k/4]"
		if kw > 1 {
			kq = fmt.Sprintf("[k/%d][k/4%%%d]", 4*q, q)
		}
		p("// Nested shared tiles (NEST): every index of a read but the thread's is a constant.")
		p("var<workgroup> As: %s; // As%s%s[k%%4][g][t][c] = A[row0 + 4·(g·WGY + t) + c, k0 + k]", nest(t.TM/4, wgy), half, kq)
		p("var<workgroup> Ws: %s; // Ws%s%s[k%%4][g][t][c] = W[col0 + 4·(g·WGX + t) + c, k0 + k]", nest(t.TN/4, wgx), half, kq)
	} else {
		p("// With DB, half h of As/Ws starts at h·%d / h·%d.", asLen, wsLen)
		p("var<workgroup> As: array<vec4<%s>, %d>; // As[k*BM/4 + m/4][m%%4] = A[row0+m, k0+k]", sh, nbuf*asLen)
		p("var<workgroup> Ws: array<vec4<%s>, %d>; // Ws[k*BN/4 + n/4][n%%4] = W[col0+n, k0+k]", sh, nbuf*wsLen)
	}
	e4 := t.TM * t.TN / 4 / kw // accumulator vec4s of a thread per part
	if kw > 1 {
		p("// The partial sums of the sliced-K reduce: Red[((p·(KW-1) + w)·%d + e)·NT + t] is vec4 e of", e4)
		p("// part p of thread t's accumulators in the w-th group other than p.")
		p("var<workgroup> Red: array<vec4<f32>, %d>;", t.reduceBytes()/16)
	}
	p("")
	p("// wload4 reads W[4i .. 4i+3] (element index) as %s.", sh)
	p("fn wload4(i: u32) -> vec4<%s> {", sh)
	switch {
	case f16 && wd == WeightF16:
		p("  return W[i];")
	case f16 && wd == WeightF32:
		p("  return vec4<f16>(bitcast<vec4<f32>>(W[i]));")
	case f16 && wd == WeightBF16:
		p("  let w = W[i];")
		p("  return vec4<f16>(bitcast<vec4<f32>>(vec4<u32>(w.x << 16u, w.x & 0xffff0000u, w.y << 16u, w.y & 0xffff0000u)));")
	case wd == WeightF32:
		p("  return bitcast<vec4<f32>>(W[i]);")
	case wd == WeightF16:
		p("  let w = W[i];")
		p("  return vec4<f32>(unpack2x16float(w.x), unpack2x16float(w.y));")
	case wd == WeightBF16:
		p("  let w = W[i];")
		p("  return bitcast<vec4<f32>>(vec4<u32>(w.x << 16u, w.x & 0xffff0000u, w.y << 16u, w.y & 0xffff0000u));")
	}
	p("}")
	p("")
	if emu {
		p("// q16 and q16v round to an f16 value (F16 = 2).")
		p("fn q16(x: f32) -> f32 {")
		p("  return unpack2x16float(pack2x16float(vec2<f32>(x, 0.0))).x;")
		p("}")
		p("")
		p("fn q16v(v: vec4<f32>) -> vec4<f32> {")
		p("  return vec4<f32>(unpack2x16float(pack2x16float(v.xy)), unpack2x16float(pack2x16float(v.zw)));")
		p("}")
		p("")
	}
	p("// erf4 and activate4: matmul.wgsl's erf_approx and activate on vec4s.")
	p("%s", erf4WGSL)
	p("")
	p("fn activate4(v: vec4<f32>) -> vec4<f32> {")
	p("  if (P.act == %du) { // ActGELU", ActGELU)
	p("    return 0.5 * v * (1.0 + erf4(v * 0.70710678118654752));")
	p("  }")
	p("  if (P.act == %du) { // ActSiLU", ActSiLU)
	p("    return v / (1.0 + exp(-v));")
	p("  }")
	p("  return v;")
	p("}")
	p("")
	tli := "li" // the thread's index within its K slice's group
	if kw > 1 {
		tli = "lt"
		p("@compute @workgroup_size(NT * KW)")
		p("fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {")
		p("  let s = li / NT; // the K slice of this thread's group")
		p("  let lt = li %% NT;")
	} else {
		p("@compute @workgroup_size(NT)")
		p("fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {")
	}
	if t.WX != 0 {
		wy := 32 / t.WX
		p("  // Warp tiles (WX = %d): invocations 32w .. 32w+31 take a block of %d x %d threads.", t.WX, t.WX, wy)
		p("  let lane = %s %% 32u;", tli)
		p("  let warp = %s / 32u;", tli)
		p("  let tx = (warp %% %du) * %du + lane %% %du;", wgx/t.WX, t.WX, t.WX)
		p("  let ty = (warp / %du) * %du + lane / %du;", wgx/t.WX, wy, t.WX)
	} else {
		p("  let tx = %s %% WGX;", tli)
		p("  let ty = %s / WGX;", tli)
	}
	p("  let row0 = wg.y * BM;")
	p("  let col0 = wg.x * BN;")
	p("  let K4 = P.K / 4u;")
	kz := ""
	if ks > 1 {
		p("  // K split %d ways: workgroup z multiplies K columns [z·KC, z·KC + KC).", ks)
		p("  let KC = P.K / %du;", ks)
		p("  let kz = wg.z * (KC / 4u);")
		kz = " + kz"
	} else {
		p("  let KC = P.K;")
	}
	p("  let mlast = P.M - 1u;")
	// Loader coordinates: e = li + NT*j (NT·KW with sliced K; a guarded
	// round of W counts from the last threads); tile row e % BM, k quad
	// e / BM, or with CL > 1 row (e / CL) % BM, k quad e % CL + CL·(e /
	// (CL·BM)).
	loader := func(pre string, rounds []loadRound, rows, threads int, rowExpr func(string) string) {
		for j, r := range rounds {
			if r.off >= 0 {
				p("  let %se%d = li + %du;", pre, j, r.off)
			} else {
				p("  let %se%d = li - %du; // only where %s", pre, j, -r.off, r.guard)
			}
			if t.CL > 1 {
				p("  let %sm%d = (%se%d / %du) %% %du;", pre, j, pre, j, t.CL, rows)
				p("  let %sk%d = %se%d %% %du + %du * (%se%d / %du);", pre, j, pre, j, t.CL, t.CL, pre, j, t.CL*rows)
			} else {
				p("  let %sm%d = %se%d %% %du;", pre, j, pre, j, rows)
				p("  let %sk%d = %se%d / %du;", pre, j, pre, j, rows)
			}
			p("  let %sg%d = %s * K4 + %sk%d%s; // vec4 index at k0 = 0", pre, j, rowExpr(fmt.Sprintf("%sm%d", pre, j)), pre, j, kz)
			if t.Nest {
				if kw > 1 {
					p("  let %sh%d = %sk%d / %du; // the K slice of k quad %sk%d, and the quad within it", pre, j, pre, j, q, pre, j)
					p("  let %si%d = %sk%d %% %du;", pre, j, pre, j, q)
				}
				p("  let %sq%d = %sm%d / %du; // the shared tile's group and thread of row m", pre, j, pre, j, 4*threads)
				p("  let %st%d = (%sm%d / 4u) %% %du;", pre, j, pre, j, threads)
			} else {
				p("  let %ss%d = %sk%d * %du + %sm%d / 4u; // shared vec4 index of k row 4·k quad", pre, j, pre, j, 4*rows/4, pre, j)
			}
			p("  let %sc%d = %sm%d %% 4u;", pre, j, pre, j)
		}
	}
	loader("a", aRounds, t.BM, wgy, func(m string) string { return fmt.Sprintf("min(row0 + %s, mlast)", m) })
	loader("w", wRounds, t.BN, wgx, func(m string) string { return fmt.Sprintf("(col0 + %s)", m) })
	for r := 0; r < t.TM; r++ {
		for c := 0; c < t.TN/4; c++ {
			p("  var c_%d_%d = vec4<f32>(0.0);", r, c)
		}
	}
	// guarded writes a round's statements, inside `if (guard)` for a
	// guarded round.
	guarded := func(indent string, r loadRound, body func(indent string)) {
		if r.guard == "" {
			body(indent)
			return
		}
		p("%sif (%s) {", indent, r.guard)
		body(indent + "  ")
		p("%s}", indent)
	}
	for j, r := range aRounds {
		if r.guard == "" {
			p("  var pa%d = A[ag%d];", j, j)
			continue
		}
		p("  var pa%d: vec4<f32>;", j)
		guarded("  ", r, func(in string) { p("%spa%d = A[ag%d];", in, j, j) })
	}
	for j, r := range wRounds {
		if r.guard == "" {
			p("  var pw%d = wload4(wg%d);", j, j)
			continue
		}
		p("  var pw%d: vec4<%s>;", j, sh)
		guarded("  ", r, func(in string) { p("%spw%d = wload4(wg%d);", in, j, j) })
	}
	// store writes the prefetched registers into a shared tile; cv
	// converts each component (the A tile of the F16 form: f32 -> f16).
	store := func(indent, arr, pre, reg, base string, rounds []loadRound, rows int) {
		cv := ""
		if arr == "As" || emu && wd != WeightF16 {
			cv = conv
		}
		for j, r := range rounds {
			guarded(indent, r, func(indent string) {
				for i, comp := range "xyzw" {
					v := fmt.Sprintf("%s%d.%c", reg, j, comp)
					if cv != "" {
						v = cv + "(" + v + ")"
					}
					if t.Nest {
						// base is the half's index ("" single-buffered).
						h := ""
						if base != "" {
							h = "[" + base + "]"
						}
						kq := fmt.Sprintf("[%sk%d]", pre, j)
						if kw > 1 {
							kq = fmt.Sprintf("[%sh%d][%si%d]", pre, j, pre, j)
						}
						p("%s%s%s%s[%d][%sq%d][%st%d][%sc%d] = %s;", indent, arr, h, kq, i, pre, j, pre, j, pre, j, v)
						continue
					}
					p("%s%s[%s%ss%d + %du][%sc%d] = %s;", indent, arr, base, pre, j, i*rows/4, pre, j, v)
				}
			})
		}
	}
	prefetch := func(indent string) {
		for j, r := range aRounds {
			guarded(indent, r, func(in string) { p("%spa%d = A[ag%d + kn];", in, j, j) })
		}
		for j, r := range wRounds {
			guarded(indent, r, func(in string) { p("%spw%d = wload4(wg%d + kn);", in, j, j) })
		}
	}
	multiply := func(abase, wbase string) {
		// acc is the accumulator the k steps add into: c_r_c, or in the
		// F16 form h_r_c, f16 sums of this K tile added to c_r_c after it.
		acc, splat, round := "c", "vec4<f32>", ""
		if f16 || emu {
			acc = "h"
			if f16 {
				splat = "vec4<f16>"
			} else {
				round = "q16v"
			}
			for r := 0; r < t.TM; r++ {
				for c := 0; c < t.TN/4; c++ {
					p("    var h_%d_%d = %s(0.0);", r, c, splat)
				}
			}
		}
		if kw > 1 {
			// This group's slice of the tile: k quads [s·q, s·q + q).
			if t.Nest {
				abase, wbase = abase+"[s]", wbase+"[s]"
			} else {
				abase, wbase = abase+"sa + ", wbase+"sw + "
			}
		}
		for k := 0; k < t.BK/kw; k++ {
			p("    {")
			for g := 0; g < t.TM/4; g++ {
				if t.Nest {
					p("      let a%d = As%s[%d][%d][%d][ty];", g, abase, k/4, k%4, g)
				} else {
					p("      let a%d = As[%s%du + ty];", g, abase, k*t.BM/4+g*wgy)
				}
			}
			for c := 0; c < t.TN/4; c++ {
				if t.Nest {
					p("      let b%d = Ws%s[%d][%d][%d][tx];", c, wbase, k/4, k%4, c)
				} else {
					p("      let b%d = Ws[%s%du + tx];", c, wbase, k*t.BN/4+c*wgx)
				}
			}
			for r := 0; r < t.TM; r++ {
				for c := 0; c < t.TN/4; c++ {
					e := fmt.Sprintf("fma(%s(a%d.%c), b%d, %s_%d_%d)", splat, r/4, "xyzw"[r%4], c, acc, r, c)
					if round != "" {
						e = round + "(" + e + ")"
					}
					p("      %s_%d_%d = %s;", acc, r, c, e)
				}
			}
			p("    }")
		}
		if f16 || emu {
			for r := 0; r < t.TM; r++ {
				for c := 0; c < t.TN/4; c++ {
					p("    c_%d_%d += vec4<f32>(h_%d_%d);", r, c, r, c)
				}
			}
		}
	}
	if kw > 1 && !t.Nest {
		p("  let sa = s * %du; // this slice's first vec4 of a K tile of A, of W", q*t.BM)
		p("  let sw = s * %du;", q*t.BN)
	}
	if !db {
		p("  for (var k0 = 0u; k0 < KC; k0 += BK) {")
		p("    workgroupBarrier();")
		store("    ", "As", "a", "pa", "", aRounds, t.BM)
		store("    ", "Ws", "w", "pw", "", wRounds, t.BN)
		p("    workgroupBarrier();")
		p("    let kn = (k0 + BK) / 4u;")
		p("    if (k0 + BK < KC) {")
		prefetch("      ")
		p("    }")
		multiply("", "")
		p("  }")
	} else {
		// Tile 0 goes into half 0; then, per K tile: prefetch the next tile
		// into registers, multiply the current half, store the prefetched
		// tile into the other half, one barrier. The stores of step i hit the
		// half that step i-1 read, after step i-1's barrier; the reads of
		// step i+1 see them after step i's.
		first := ""
		if t.Nest {
			first = "0u"
		}
		store("  ", "As", "a", "pa", first, aRounds, t.BM)
		store("  ", "Ws", "w", "pw", first, wRounds, t.BN)
		p("  workgroupBarrier();")
		p("  var cur = 0u;")
		p("  for (var k0 = 0u; k0 < KC; k0 += BK) {")
		p("    let kn = (k0 + BK) / 4u;")
		p("    let more = k0 + BK < KC;")
		p("    if (more) {")
		prefetch("      ")
		p("    }")
		if t.Nest {
			multiply("[cur]", "[cur]")
			p("    if (more) {")
			p("      let nx = 1u - cur;")
			store("      ", "As", "a", "pa", "nx", aRounds, t.BM)
			store("      ", "Ws", "w", "pw", "nx", wRounds, t.BN)
			p("    }")
		} else {
			p("    let ab = cur * %du;", asLen)
			p("    let wb = cur * %du;", wsLen)
			multiply("ab + ", "wb + ")
			p("    if (more) {")
			p("      let an = %du - ab;", asLen)
			p("      let wn = %du - wb;", wsLen)
			store("      ", "As", "a", "pa", "an + ", aRounds, t.BM)
			store("      ", "Ws", "w", "pw", "wn + ", wRounds, t.BN)
			p("    }")
		}
		p("    workgroupBarrier();")
		p("    cur = 1u - cur;")
		p("  }")
	}
	p("")
	p("  let N4 = P.N / 4u;")
	p("  let cb = col0 / 4u + tx;")
	if kw > 1 {
		slicedReduce(p, t, ks, wgx, wgy)
	} else if ks > 1 {
		// Raw partial sums of split z into OUT rows z·M .. z·M + M - 1;
		// MatmulReduce adds them up and applies the epilogue.
		for r := 0; r < t.TM; r++ {
			p("  {")
			p("    let r = row0 + %du + 4u * ty;", (r/4)*4*wgy+r%4)
			p("    if (r < P.M) {")
			p("      let ob = (wg.z * P.M + r) * N4 + cb;")
			for c := 0; c < t.TN/4; c++ {
				p("      OUT[ob + %du] = c_%d_%d;", c*wgx, r, c)
			}
			p("    }")
			p("  }")
		}
	} else {
		for c := 0; c < t.TN/4; c++ {
			p("  var bias%d = vec4<f32>(0.0);", c)
		}
		p("  if (P.has_bias == 1u) {")
		for c := 0; c < t.TN/4; c++ {
			p("    bias%d = BIAS[cb + %du];", c, c*wgx)
		}
		p("  }")
		for r := 0; r < t.TM; r++ {
			p("  {")
			p("    let r = row0 + %du + 4u * ty;", (r/4)*4*wgy+r%4)
			p("    if (r < P.M) {")
			p("      let ob = r * N4 + cb;")
			for c := 0; c < t.TN/4; c++ {
				p("      {")
				p("        let o = ob + %du;", c*wgx)
				p("        var v = activate4(c_%d_%d + bias%d);", r, c, c)
				p("        if (P.accumulate == 1u) {")
				p("          v = OUT[o] + v;")
				p("        }")
				p("        OUT[o] = v;")
				p("      }")
			}
			p("    }")
			p("  }")
		}
	}
	p("}")
	return b.String()
}

// loadRound is one round of a generated matmul's tile loads: invocation
// li loads vec4 e = li + off of the tile, where guard (a WGSL condition on
// li; "" always) holds.
type loadRound struct {
	off   int
	guard string
}

// loadRounds spreads the n vec4 loads of a tile over nt invocations:
// n / nt rounds of all of them, then, where nt does not divide n (only
// with sliced K), one guarded round of the rest, on the first invocations
// (A's tile) or the last (W's, fromEnd), so that a workgroup whose two
// remainders add up to at most nt loads each vec4 of that round once.
func loadRounds(n, nt int, fromEnd bool) []loadRound {
	var rs []loadRound
	for j := 0; j < n/nt; j++ {
		rs = append(rs, loadRound{off: nt * j})
	}
	if rem := n % nt; rem != 0 {
		if fromEnd {
			rs = append(rs, loadRound{off: nt*(n/nt) - (nt - rem), guard: fmt.Sprintf("li >= %du", nt-rem)})
		} else {
			rs = append(rs, loadRound{off: nt * (n / nt), guard: fmt.Sprintf("li < %du", rem)})
		}
	}
	return rs
}

// slicedReduce writes the end of a sliced-K MatmulUnrolled (KW > 1): the
// KW groups' partial sums added through workgroup memory and, for each
// sum, the epilogue (KSPLIT = 1) or the raw write of split z (KSPLIT > 1).
// A thread's accumulator vec4s c_<r>_<c>, numbered i = r·TN/4 + c, form KW
// parts of E = TM·TN/4/KW consecutive ones; group p finishes part p of
// its thread's block: every other group writes its part p to Red, and
// group p adds the KW partials in the order s = 0, 1, ..., KW-1 (its own
// from registers), so every output is summed in the same order whichever
// group finishes it.
func slicedReduce(p func(string, ...any), t MatmulTiling, ks, wgx, wgy int) {
	kw, nt := t.KW, wgx*wgy
	tn4 := t.TN / 4
	e4 := t.TM * tn4 / kw
	acc := func(i int) string { return fmt.Sprintf("c_%d_%d", i/tn4, i%tn4) }
	stride := e4 * nt // vec4s of Red per (part, writer) slot
	p("  // Sliced K: group s writes part p != s of its partial sums to Red, slot")
	p("  // p·(KW-1) + w (w: s's rank among the groups other than p).")
	for part := 0; part < kw; part++ {
		p("  if (s != %du) {", part)
		p("    let o = (%du + s - select(0u, 1u, s > %du)) * %du + lt;", part*(kw-1), part, stride)
		for e := 0; e < e4; e++ {
			p("    Red[o + %du] = %s;", e*nt, acc(part*e4+e))
		}
		p("  }")
	}
	p("  workgroupBarrier();")
	p("  // Group s adds part s of the %d partials, in the order 0, 1, ..., KW-1.", kw)
	p("  let rb = s * %du + lt; // Red slot s·(KW-1), this thread", (kw-1)*stride)
	if ks <= 1 {
		p("  let hb = P.has_bias == 1u;")
	}
	for e := 0; e < e4; e++ {
		p("  {")
		p("    var own = %s;", acc(e))
		for part := 1; part < kw; part++ {
			p("    own = select(own, %s, s == %du);", acc(part*e4+e), part)
		}
		for x := 0; x < kw; x++ {
			op := "+="
			if x == 0 {
				p("    var v: vec4<f32>;")
				op = "="
			}
			p("    if (s == %du) {", x)
			p("      v %s own;", op)
			p("    } else {")
			if x == 0 {
				p("      v = Red[rb + %du];", e*nt)
			} else {
				p("      v += Red[rb + select(%du, %du, s < %du)];", x*stride+e*nt, (x-1)*stride+e*nt, x)
			}
			p("    }")
		}
		// Accumulator vec4 i = s·E + e of the thread: row i / (TN/4), column
		// group i % (TN/4).
		p("    let i = s * %du + %du;", e4, e)
		if tn4 > 1 {
			p("    let ri = i / %du;", tn4)
			p("    let r = row0 + (ri / 4u) * %du + ri %% 4u + 4u * ty;", 4*wgy)
			p("    let oc = cb + (i %% %du) * %du;", tn4, wgx)
		} else {
			p("    let r = row0 + (i / 4u) * %du + i %% 4u + 4u * ty;", 4*wgy)
			p("    let oc = cb;")
		}
		p("    if (r < P.M) {")
		if ks > 1 {
			p("      OUT[(wg.z * P.M + r) * N4 + oc] = v;")
		} else {
			p("      var bias = vec4<f32>(0.0);")
			p("      if (hb) {")
			p("        bias = BIAS[oc];")
			p("      }")
			p("      var x = activate4(v + bias);")
			p("      let o = r * N4 + oc;")
			p("      if (P.accumulate == 1u) {")
			p("        x = OUT[o] + x;")
			p("      }")
			p("      OUT[o] = x;")
		}
		p("    }")
		p("  }")
	}
}

// erf4WGSL is matmul.wgsl's erf_approx on vec4s, for the generated
// kernels' GELU epilogues.
const erf4WGSL = `fn erf4(x: vec4<f32>) -> vec4<f32> {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
    t * (-0.82215223 + t * 0.17087277)))))))));
  return select(r - 1.0, 1.0 - r, x >= vec4<f32>(0.0));
}`

// MatmulReduce is the second kernel of a K-split matmul (MatmulUnrolled
// with KSPLIT = S > 1, whose workgroup z wrote the partial product of its
// K range to rows z·M .. z·M + M - 1 of a scratch buffer): one thread per
// vec4 of OUT, OUT[m, n] [+]= act(Σ_z R[z·M + m, n] + bias[n]), the
// epilogue of matmul.wgsl. Same Params and bindings as matmul.wgsl, with
// the partials bound as A (W is not read); constant S. Small batches (1 x
// 256) give a deep-K product (mlp.c_proj: K = 1536) few workgroups, each
// walking many K tiles one after the other: splitting K gives the GPU S
// times more workgroups, each S times shorter.
const MatmulReduce = "matmul_reduce.wgsl"

func matmulReduceSource(consts map[string]string) (string, error) {
	vals, err := generatorConsts(MatmulReduce, consts, "S")
	if err != nil {
		return "", err
	}
	S, ok := vals["S"]
	if !ok || S < 1 || S > 64 {
		return "", fmt.Errorf("shaders: %s needs the constant S, 1 to 64", MatmulReduce)
	}
	params, err := paramsStruct("matmul.wgsl")
	if err != nil {
		return "", err
	}
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...); b.WriteByte('\n') }
	p("// %s: generated by shaders/matmulgen.go (see MatmulReduce there). S=%d.", MatmulReduce, S)
	p("")
	p("%s", params)
	p("")
	p("@group(0) @binding(0) var<uniform> P: Params;")
	p("@group(0) @binding(1) var<storage, read> A: array<vec4<f32>>; // the S partial products, (S·M, N)")
	p("@group(0) @binding(2) var<storage, read> W: array<u32>;       // not read")
	p("@group(0) @binding(3) var<storage, read> BIAS: array<vec4<f32>>;")
	p("@group(0) @binding(4) var<storage, read_write> OUT: array<vec4<f32>>;")
	p("")
	p("const S: u32 = %du;", S)
	p("const WG: u32 = 256u;")
	p("")
	p("%s", erf4WGSL)
	p("")
	p("@compute @workgroup_size(WG)")
	p("fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {")
	p("  let N4 = P.N / 4u;")
	p("  let e = gid.x + gid.y * nwg.x * WG;")
	p("  let n = P.M * N4;")
	p("  if (e >= n) {")
	p("    return;")
	p("  }")
	p("  var v = A[e];")
	p("  for (var z = 1u; z < S; z++) {")
	p("    v += A[z * n + e];")
	p("  }")
	p("  if (P.has_bias == 1u) {")
	p("    v += BIAS[e %% N4];")
	p("  }")
	p("  if (P.act == %du) { // ActGELU", ActGELU)
	p("    v = 0.5 * v * (1.0 + erf4(v * 0.70710678118654752));")
	p("  } else if (P.act == %du) { // ActSiLU", ActSiLU)
	p("    v = v / (1.0 + exp(-v));")
	p("  }")
	p("  if (P.accumulate == 1u) {")
	p("    v = OUT[e] + v;")
	p("  }")
	p("  OUT[e] = v;")
	p("}")
	return b.String(), nil
}

// AttentionUnrolled is the generated variant of attention.wgsl for head
// sizes D % 4 == 0: the same Params, bindings and algorithm (one thread per
// query row, key/value tiles of BC rows in workgroup memory, online
// softmax), with q and the output accumulator held as D/4 named vec4
// variables instead of function-local arrays, keys scored four at a time
// (one max and one rescale per four keys) and every load a vec4. Source
// accepts it like a file, with the constants D, BR and BC, and the optional
// KS.
//
// KS > 0 (a multiple of BC) splits the keys (flash-decoding style): the
// dispatch's z dimension is the split, workgroup z scores keys [z·KS,
// z·KS + KS) only and writes, instead of the output row, a partial record
// of D/4 + 1 vec4s to OUT (then a scratch buffer): the unnormalized
// accumulator o and (m, l, 0, 0), its running max and sum. Record of split
// z, row r = b·T + i, head h: ((z·B·T + r)·H + h)·(D/4 + 1). AttentionCombine
// merges the S records of a row into the output. At short sequences this
// gives the GPU S times more workgroups, each walking S times fewer keys.
//
// ROPE = 1 (head sizes D % 8 == 0) applies the rotary position embedding
// (rope.wgsl's rotation, the same products) to q and k as they are loaded,
// from the cos and sin tables bound at 3 and 4 (as vec4s: (block, D/8)):
// the kernel then reads qkv as c_attn wrote it, and the trunk needs no
// rope dispatch (engine/gpu attentionOps).
const AttentionUnrolled = "attention_unrolled.wgsl"

// AttentionCombine is the second kernel of the key-split attention: one
// thread per (row, head, vec4 of the head), OUT[r, h] = Σ_z o_z·e^(m_z - M)
// / Σ_z l_z·e^(m_z - M), M = max_z m_z. Same Params as attention.wgsl, with
// T = B·T (every row); bindings: P, the records (read), OUT. Constants D
// and S (the number of splits).
const AttentionCombine = "attention_combine.wgsl"

func attentionUnrolledSource(consts map[string]string) (string, error) {
	vals, err := generatorConsts(AttentionUnrolled, consts, "D", "BR", "BC", "KS", "ROPE")
	if err != nil {
		return "", err
	}
	D, BR, BC, KS, rope := vals["D"], vals["BR"], vals["BC"], vals["KS"], vals["ROPE"]
	if rope != 0 && (rope != 1 || D%8 != 0) {
		return "", fmt.Errorf("shaders: %s: ROPE = %d needs ROPE 0 or 1 and, for 1, D %% 8 == 0 (got D=%d)", AttentionUnrolled, rope, D)
	}
	if D <= 0 || D%4 != 0 || BR <= 0 || BR > 256 || BC <= 0 || BC%4 != 0 || 2*BC*D*4 > 16384 {
		return "", fmt.Errorf("shaders: %s: needs D %% 4 == 0, 0 < BR <= 256, BC %% 4 == 0 and 2·BC·D·4 <= 16384 bytes (got D=%d BR=%d BC=%d)", AttentionUnrolled, D, BR, BC)
	}
	if KS < 0 || KS%BC != 0 {
		return "", fmt.Errorf("shaders: %s: KS = %d must be 0 (no split) or a multiple of BC = %d", AttentionUnrolled, KS, BC)
	}
	params, err := paramsStruct("attention.wgsl")
	if err != nil {
		return "", err
	}
	d4 := D / 4
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...); b.WriteByte('\n') }
	p("// %s: generated by shaders/matmulgen.go (see AttentionUnrolled there)", AttentionUnrolled)
	p("// from the structure of attention.wgsl. D=%d BR=%d BC=%d KS=%d ROPE=%d.", D, BR, BC, KS, rope)
	p("")
	p("%s", params)
	p("")
	p("@group(0) @binding(0) var<uniform> P: Params;")
	p("@group(0) @binding(1) var<storage, read> QKV: array<vec4<f32>>;       // (B, T, 3C)")
	if KS == 0 {
		p("@group(0) @binding(2) var<storage, read_write> OUT: array<vec4<f32>>; // (B, T, C)")
	} else {
		p("@group(0) @binding(2) var<storage, read_write> OUT: array<vec4<f32>>; // split records (AttentionUnrolled)")
	}
	h4 := d4 / 2
	if rope == 1 {
		p("@group(0) @binding(3) var<storage, read> COS: array<vec4<f32>>;       // rope cos (block, D/2)")
		p("@group(0) @binding(4) var<storage, read> SIN: array<vec4<f32>>;       // rope sin (block, D/2)")
		p("")
		p("const H4: u32 = %du; // vec4s of half a head", h4)
	}
	p("")
	p("const D4: u32 = %du;", d4)
	p("const BR: u32 = %du;", BR)
	p("const BC: u32 = %du;", BC)
	p("const NEG: f32 = -3.0e38;")
	p("")
	p("var<workgroup> Ks: array<vec4<f32>, %d>; // Ks[jj*D4 + c/4] = k[j0+jj][c..c+3]", BC*d4)
	p("var<workgroup> Vs: array<vec4<f32>, %d>;", BC*d4)
	p("")
	p("@compute @workgroup_size(BR)")
	p("fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32, @builtin(num_workgroups) nwg: vec3<u32>) {")
	p("  let b = wg.y / P.H;")
	p("  let h = wg.y %% P.H;")
	p("  let i = wg.x * BR + li;")
	p("  let valid = i < P.T;")
	p("  let C4 = P.C / 4u;")
	p("  let rowbase = b * P.T;")
	p("  let qpos = min(i, P.T - 1u);")
	p("  let qb = (rowbase + qpos) * 3u * C4 + h * D4;")
	if rope == 1 {
		// rope.wgsl's rotation: x1·c - x2·s, x2·c + x1·s (j < D/2 pairs with
		// j + D/2), then the scale, as when q was rotated in place.
		p("  let qr = qpos * H4;")
		for c := 0; c < d4; c++ {
			if c < h4 {
				p("  let q%d = (QKV[qb + %du] * COS[qr + %du] - QKV[qb + %du] * SIN[qr + %du]) * P.scale;", c, c, c, c+h4, c)
			} else {
				p("  let q%d = (QKV[qb + %du] * COS[qr + %du] + QKV[qb + %du] * SIN[qr + %du]) * P.scale;", c, c, c-h4, c-h4, c-h4)
			}
		}
	} else {
		for c := 0; c < d4; c++ {
			p("  let q%d = QKV[qb + %du] * P.scale;", c, c)
		}
	}
	for c := 0; c < d4; c++ {
		p("  var o%d = vec4<f32>(0.0);", c)
	}
	p("  var m = NEG;")
	p("  var l = 0.0;")
	p("  var kend = P.T;")
	p("  if (P.causal == 1u) {")
	p("    kend = min(P.T, wg.x * BR + BR);")
	p("  }")
	if KS == 0 {
		p("  for (var j0 = 0u; j0 < kend; j0 += BC) {")
	} else {
		p("  // This workgroup's split of the keys (KS = %d, a multiple of BC).", KS)
		p("  let jend = min(kend, wg.z * %du + %du);", KS, KS)
		p("  for (var j0 = wg.z * %du; j0 < jend; j0 += BC) {", KS)
	}
	p("    for (var e = li; e < BC * D4; e += BR) {")
	p("      let j = j0 + e / D4;")
	p("      var kv = vec4<f32>(0.0);")
	p("      var vv = vec4<f32>(0.0);")
	p("      if (j < P.T) {")
	p("        let kb = (rowbase + j) * 3u * C4 + h * D4 + e %% D4;")
	if rope == 1 {
		p("        let c4 = e %% D4;")
		p("        let r = j * H4 + c4 %% H4;")
		p("        let first = c4 < H4;")
		p("        let ps = QKV[select(kb + C4 - H4, kb + C4 + H4, first)] * SIN[r];")
		p("        kv = QKV[kb + C4] * COS[r] + select(ps, -ps, first); // x1·c - x2·s or x2·c + x1·s")
	} else {
		p("        kv = QKV[kb + C4];")
	}
	p("        vv = QKV[kb + 2u * C4];")
	p("      }")
	p("      Ks[e] = kv;")
	p("      Vs[e] = vv;")
	p("    }")
	p("    workgroupBarrier();")
	p("    for (var jj = 0u; jj < BC; jj += 4u) {")
	p("      let kb = jj * D4;")
	p("      var s = vec4<f32>(0.0);")
	for k := 0; k < 4; k++ {
		p("      {")
		p("        var t = q0 * Ks[kb + %du];", k*d4)
		for c := 1; c < d4; c++ {
			p("        t = fma(q%d, Ks[kb + %du], t);", c, k*d4+c)
		}
		p("        s.%c = (t.x + t.y) + (t.z + t.w);", "xyzw"[k])
		p("      }")
	}
	p("      let j = vec4<u32>(j0 + jj) + vec4<u32>(0u, 1u, 2u, 3u);")
	p("      let vis = (j < vec4<u32>(P.T)) & ((vec4<u32>(P.causal) == vec4<u32>(0u)) | (j <= vec4<u32>(i)));")
	p("      s = select(vec4<f32>(NEG), s, vis);")
	p("      let mnew = max(m, max(max(s.x, s.y), max(s.z, s.w)));")
	p("      let corr = exp(m - mnew);")
	p("      let pr = select(vec4<f32>(0.0), exp(s - mnew), vis);")
	p("      l = l * corr + ((pr.x + pr.y) + (pr.z + pr.w));")
	p("      m = mnew;")
	for c := 0; c < d4; c++ {
		p("      o%d = fma(vec4<f32>(pr.x), Vs[kb + %du], o%d * corr);", c, c, c)
		for k := 1; k < 4; k++ {
			p("      o%d = fma(vec4<f32>(pr.%c), Vs[kb + %du], o%d);", c, "xyzw"[k], k*d4+c, c)
		}
	}
	p("    }")
	p("    workgroupBarrier();")
	p("  }")
	p("  if (valid) {")
	if KS == 0 {
		p("    let inv = 1.0 / l;")
		p("    let ob = (rowbase + i) * C4 + h * D4;")
		for c := 0; c < d4; c++ {
			p("    OUT[ob + %du] = o%d * inv;", c, c)
		}
	} else {
		p("    let BT = (nwg.y / P.H) * P.T;")
		p("    let ob = ((wg.z * BT + rowbase + i) * P.H + h) * %du;", d4+1)
		for c := 0; c < d4; c++ {
			p("    OUT[ob + %du] = o%d;", c, c)
		}
		p("    OUT[ob + %du] = vec4<f32>(m, l, 0.0, 0.0);", d4)
	}
	p("  }")
	p("}")
	return b.String(), nil
}

// attentionCombineSource generates AttentionCombine for D and S.
func attentionCombineSource(consts map[string]string) (string, error) {
	vals, err := generatorConsts(AttentionCombine, consts, "D", "S")
	if err != nil {
		return "", err
	}
	D, S := vals["D"], vals["S"]
	if D <= 0 || D%4 != 0 || S < 1 || S > 64 {
		return "", fmt.Errorf("shaders: %s: needs D %% 4 == 0 and 1 <= S <= 64 (got D=%d S=%d)", AttentionCombine, D, S)
	}
	params, err := paramsStruct("attention.wgsl")
	if err != nil {
		return "", err
	}
	d4 := D / 4
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...); b.WriteByte('\n') }
	p("// %s: generated by shaders/matmulgen.go (see AttentionCombine there). D=%d S=%d.", AttentionCombine, D, S)
	p("// Params as attention.wgsl, with T = B·T (all rows).")
	p("")
	p("%s", params)
	p("")
	p("@group(0) @binding(0) var<uniform> P: Params;")
	p("@group(0) @binding(1) var<storage, read> REC: array<vec4<f32>>;      // the split records")
	p("@group(0) @binding(2) var<storage, read_write> OUT: array<vec4<f32>>; // (B·T, C)")
	p("")
	p("const D4: u32 = %du;", d4)
	p("const S: u32 = %du;", S)
	p("const WG: u32 = 256u;")
	p("")
	p("@compute @workgroup_size(WG)")
	p("fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {")
	p("  let e = gid.x + gid.y * nwg.x * WG; // (row, head, vec4) = ((r·H + h)·D4 + c)")
	p("  let n = P.T * P.H * D4;")
	p("  if (e >= n) {")
	p("    return;")
	p("  }")
	p("  let rh = e / D4;")
	p("  let c = e %% D4;")
	p("  let stride = P.T * P.H * %du; // one split's records", d4+1)
	p("  var M = -3.0e38;")
	p("  for (var z = 0u; z < S; z++) {")
	p("    M = max(M, REC[z * stride + rh * %du + D4].x);", d4+1)
	p("  }")
	p("  var num = vec4<f32>(0.0);")
	p("  var l = 0.0;")
	p("  for (var z = 0u; z < S; z++) {")
	p("    let base = z * stride + rh * %du;", d4+1)
	p("    let ml = REC[base + D4];")
	p("    let wz = exp(ml.x - M); // 0 for an empty split (m = -3e38, l = 0)")
	p("    l = fma(ml.y, wz, l);")
	p("    num = fma(vec4<f32>(wz), REC[base + c], num);")
	p("  }")
	p("  OUT[e] = num / l; // row-major (B·T, H, D4) is (B, T, C)")
	p("}")
	return b.String(), nil
}

// AttentionTiled is a second attention kernel for head size 64 (the
// shipped models'), written like a matmul: a workgroup of 64 threads takes
// 32 query rows of one (b, h) and walks the keys 32 at a time. Q (pre-scaled)
// and each K tile sit transposed in workgroup memory, so a thread computes
// a 4 x 4 block of scores from one vec4 of Q and one of K per head
// dimension (16 FMAs per 2 shared loads, against 4 per load for one row per
// thread); the tile's row maxima are combined through workgroup memory, the
// probabilities are written transposed over the K tile, and each thread
// adds P·V into a 4 rows x 8 columns block (32 FMAs per 3 shared loads).
// Same Params and bindings as attention.wgsl, same online softmax (per key
// tile instead of per four keys). Workgroup memory: 25 KiB, so it runs only
// where maxComputeWorkgroupStorageSize allows. No constants.
const AttentionTiled = "attention_tiled.wgsl"

// AttentionTiledShared is AttentionTiled's workgroup memory in bytes.
const AttentionTiledShared = 4 * 4 * (512 + 512 + 512 + 64)

func attentionTiledSource(consts map[string]string) (string, error) {
	for name := range consts {
		return "", fmt.Errorf("shaders: %s declares no module-scope constant %s", AttentionTiled, name)
	}
	params, err := paramsStruct("attention.wgsl")
	if err != nil {
		return "", err
	}
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...); b.WriteByte('\n') }
	p("// %s: generated by shaders/matmulgen.go (see AttentionTiled there). D = 64.", AttentionTiled)
	p("")
	p("%s", params)
	p("")
	p("@group(0) @binding(0) var<uniform> P: Params;")
	p("@group(0) @binding(1) var<storage, read> QKV: array<vec4<f32>>;       // (B, T, 3C)")
	p("@group(0) @binding(2) var<storage, read_write> OUT: array<vec4<f32>>; // (B, T, C)")
	p("")
	p("const D4: u32 = 16u;")
	p("const BR: u32 = 32u;")
	p("const BC: u32 = 32u;")
	p("const NEG: f32 = -3.0e38;")
	p("")
	p("var<workgroup> Qt: array<vec4<f32>, 512>;  // Qt[d*8 + r/4][r%%4] = q[row0 + r][d] · scale")
	p("var<workgroup> KP: array<vec4<f32>, 512>;  // Kt[d*8 + j/4][j%%4] = k[j0 + j][d]; then Pt[j*8 + r/4][r%%4] = p[r][j]")
	p("var<workgroup> Vs: array<vec4<f32>, 512>;  // Vs[j*16 + d/4] = v[j0 + j][d .. d+3]")
	p("var<workgroup> red: array<vec4<f32>, 64>;  // red[r*2 + kq/4][kq%%4]: per-thread row partials")
	p("")
	p("fn max4(v: vec4<f32>) -> f32 { return max(max(v.x, v.y), max(v.z, v.w)); }")
	p("fn sum4(v: vec4<f32>) -> f32 { return (v.x + v.y) + (v.z + v.w); }")
	p("")
	p("@compute @workgroup_size(64)")
	p("fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {")
	p("  let b = wg.y / P.H;")
	p("  let h = wg.y %% P.H;")
	p("  let row0 = wg.x * BR;")
	p("  let C4 = P.C / 4u;")
	p("  let rowbase = b * P.T;")
	p("  let rq = li / 8u; // rows 4rq .. 4rq+3 of the tile")
	p("  let kq = li %% 8u; // keys 4kq .. 4kq+3 of a key tile; head vec4s kq and kq+8 of the output")
	p("  // Q tile, transposed and scaled (rows beyond T read row T-1, never written).")
	for j := 0; j < 8; j++ {
		p("  {")
		p("    let e = li + %du;", 64*j)
		p("    let r = e %% 32u;")
		p("    let dq = e / 32u;")
		p("    let qv = QKV[(rowbase + min(row0 + r, P.T - 1u)) * 3u * C4 + h * D4 + dq] * P.scale;")
		for c, comp := range "xyzw" {
			p("    Qt[(4u * dq + %du) * 8u + r / 4u][r %% 4u] = qv.%c;", c, comp)
		}
		p("  }")
	}
	p("  var m = vec4<f32>(NEG); // running max of rows 4rq+i")
	p("  var l = vec4<f32>(0.0); // this thread's share of the running sums")
	for i := 0; i < 4; i++ {
		p("  var o%d_0 = vec4<f32>(0.0);", i)
		p("  var o%d_1 = vec4<f32>(0.0);", i)
	}
	p("  let rows = vec4<u32>(row0 + 4u * rq) + vec4<u32>(0u, 1u, 2u, 3u);")
	p("  var kend = P.T;")
	p("  if (P.causal == 1u) {")
	p("    kend = min(P.T, row0 + BR);")
	p("  }")
	p("  for (var j0 = 0u; j0 < kend; j0 += BC) {")
	p("    workgroupBarrier();")
	for j := 0; j < 8; j++ {
		p("    {")
		p("      let e = li + %du;", 64*j)
		p("      let key = e %% 32u;")
		p("      let dq = e / 32u;")
		p("      var kv = vec4<f32>(0.0);")
		p("      if (j0 + key < P.T) {")
		p("        kv = QKV[(rowbase + j0 + key) * 3u * C4 + C4 + h * D4 + dq];")
		p("      }")
		for c, comp := range "xyzw" {
			p("      KP[(4u * dq + %du) * 8u + key / 4u][key %% 4u] = kv.%c;", c, comp)
		}
		p("    }")
		p("    {")
		p("      let e = li + %du;", 64*j)
		p("      let dq = e %% 16u;")
		p("      let key = e / 16u;")
		p("      var vv = vec4<f32>(0.0);")
		p("      if (j0 + key < P.T) {")
		p("        vv = QKV[(rowbase + j0 + key) * 3u * C4 + 2u * C4 + h * D4 + dq];")
		p("      }")
		p("      Vs[key * 16u + dq] = vv;")
		p("    }")
	}
	p("    workgroupBarrier();")
	for i := 0; i < 4; i++ {
		p("    var s%d = vec4<f32>(0.0);", i)
	}
	p("    for (var d = 0u; d < 64u; d++) {")
	p("      let q = Qt[d * 8u + rq];")
	p("      let k = KP[d * 8u + kq];")
	for i, comp := range "xyzw" {
		p("      s%d = fma(vec4<f32>(q.%c), k, s%d);", i, comp, i)
	}
	p("    }")
	p("    let keys = vec4<u32>(j0 + 4u * kq) + vec4<u32>(0u, 1u, 2u, 3u);")
	p("    let inT = keys < vec4<u32>(P.T);")
	p("    let nc = P.causal == 0u;")
	for i, comp := range "xyzw" {
		p("    let vis%d = inT & (vec4<bool>(nc) | (keys <= vec4<u32>(rows.%c)));", i, comp)
		p("    s%d = select(vec4<f32>(NEG), s%d, vis%d);", i, i, i)
		p("    red[(4u * rq + %du) * 2u + kq / 4u][kq %% 4u] = max4(s%d);", i, i)
	}
	p("    workgroupBarrier();")
	p("    var tm = vec4<f32>(NEG);")
	for i, comp := range "xyzw" {
		p("    tm.%c = max(max4(red[(4u * rq + %du) * 2u]), max4(red[(4u * rq + %du) * 2u + 1u]));", comp, i, i)
	}
	p("    let mnew = max(m, tm);")
	p("    let corr = exp(m - mnew);")
	for i, comp := range "xyzw" {
		p("    let p%d = select(vec4<f32>(0.0), exp(s%d - mnew.%c), vis%d);", i, i, comp, i)
	}
	p("    l = l * corr + vec4<f32>(sum4(p0), sum4(p1), sum4(p2), sum4(p3));")
	p("    m = mnew;")
	p("    // Every thread has finished reading K (the barrier above): P overwrites it.")
	for c, comp := range "xyzw" {
		p("    KP[(4u * kq + %du) * 8u + rq] = vec4<f32>(p0.%c, p1.%c, p2.%c, p3.%c);", c, comp, comp, comp, comp)
	}
	for i, comp := range "xyzw" {
		p("    o%d_0 = o%d_0 * corr.%c;", i, i, comp)
		p("    o%d_1 = o%d_1 * corr.%c;", i, i, comp)
	}
	p("    workgroupBarrier();")
	p("    for (var j = 0u; j < BC; j++) {")
	p("      let pv = KP[j * 8u + rq];")
	p("      let v0 = Vs[j * 16u + kq];")
	p("      let v1 = Vs[j * 16u + 8u + kq];")
	for i, comp := range "xyzw" {
		p("      o%d_0 = fma(vec4<f32>(pv.%c), v0, o%d_0);", i, comp, i)
		p("      o%d_1 = fma(vec4<f32>(pv.%c), v1, o%d_1);", i, comp, i)
	}
	p("    }")
	p("  }")
	p("  // The row sums: add up the 8 threads' shares.")
	p("  workgroupBarrier();")
	for i, comp := range "xyzw" {
		p("  red[(4u * rq + %du) * 2u + kq / 4u][kq %% 4u] = l.%c;", i, comp)
	}
	p("  workgroupBarrier();")
	for i, comp := range "xyzw" {
		p("  {")
		p("    let r = rows.%c;", comp)
		p("    let lt = sum4(red[(4u * rq + %du) * 2u]) + sum4(red[(4u * rq + %du) * 2u + 1u]);", i, i)
		p("    if (r < P.T) {")
		p("      let ob = (rowbase + r) * C4 + h * D4;")
		p("      OUT[ob + kq] = o%d_0 / lt;", i)
		p("      OUT[ob + 8u + kq] = o%d_1 / lt;", i)
		p("    }")
		p("  }")
	}
	p("}")
	return b.String(), nil
}
