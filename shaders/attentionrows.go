package shaders

import (
	"fmt"
	"strconv"
	"strings"
)

// AttentionRows is a third attention kernel (generated; Source accepts it
// with the constants D, R, WG, BC and N): the algorithm of
// AttentionUnrolled (one workgroup per block of query rows of one (b, h),
// key and value tiles of BC rows in workgroup memory read by every thread,
// online softmax, vec4 loads), changed where the shared-memory loads per
// FMA and the per-key overhead go:
//
//   - R query rows per thread (R >= 2: the workgroup's q, pre-scaled, sits
//     transposed in workgroup memory, Qs[dq][r] = q[row0 + r][4dq ..
//     4dq+3], BR = R·WG, so a warp's q loads are consecutive vec4s), so
//     each K or V vec4 read from workgroup memory feeds R rows: for a block
//     of N keys a thread loads R q vec4s and N k vec4s per head vec4 for
//     4·R·N FMAs, and one V vec4 for R. R = 1 keeps q in registers, as
//     AttentionUnrolled does.
//   - Scores of N keys at a time in registers (R·N scalars), one max and
//     one rescale decision per N keys; K and V are arrays of N-key
//     blocks, so within a block every index is a constant (under wgpu's
//     bounds-check policy naga clamps each dynamic index into workgroup
//     memory, min(i, n - 1): here one clamp per block).
//   - exp2 with q pre-scaled by scale·log2(e): scores are in log2 units.
//   - Lazy rescaling: a row's reference max m moves (and its accumulator
//     and sum are rescaled) only when a block's max exceeds m + 8, so p =
//     2^(s - m) <= 256 and the sum stays far from overflow; the result
//     o / l is the same softmax (every p and l share the reference).
//   - Causal: the workgroups take the row blocks from the last (most keys)
//     to the first, so the long ones start first, and each stops at its
//     last row's diagonal tile.
//
// Same Params and bindings as attention.wgsl (OUT = (B, T, C)). Workgroup
// memory: (R·WG·D [R >= 2] + 2·BC·D)·4 bytes (AttentionRowsTile.Shared).
// Dispatch: (⌈T / (R·WG)⌉, B·H, 1).
const AttentionRows = "attention_rows.wgsl"

// AttentionRowsTile is a tiling of AttentionRows: R query rows per thread,
// WG threads per workgroup (BR = R·WG rows per workgroup), key tiles of BC
// keys, N keys scored at a time; PF prefetches the next key tile into
// registers (the constant PF = 1: each thread issues its global loads of
// tile t+1 before scoring tile t and stores them after the tile's closing
// barrier, so their latency hides behind the arithmetic; 2·⌈BC·D/(4·WG)⌉
// more vec4 registers a thread).
type AttentionRowsTile struct {
	R, WG, BC, N int
	PF           bool
}

// String is the tile as "RxWGxBCxN", with the suffix "pf" for PF.
func (t AttentionRowsTile) String() string {
	s := fmt.Sprintf("%dx%dx%dx%d", t.R, t.WG, t.BC, t.N)
	if t.PF {
		s += "pf"
	}
	return s
}

// ParseAttentionRowsTile reads "RxWGxBCxN[pf]" (e.g. "2x64x16x8",
// "2x64x16x8pf").
func ParseAttentionRowsTile(s string) (AttentionRowsTile, error) {
	body, pf := strings.CutSuffix(s, "pf")
	parts := strings.Split(body, "x")
	if len(parts) != 4 {
		return AttentionRowsTile{}, fmt.Errorf("shaders: attention tile %q is not RxWGxBCxN[pf] (e.g. 2x64x16x8)", s)
	}
	var v [4]int
	for i, p := range parts {
		n, err := strconv.Atoi(p)
		if err != nil || n <= 0 {
			return AttentionRowsTile{}, fmt.Errorf("shaders: attention tile %q: %q is not a positive integer (want RxWGxBCxN[pf], e.g. 2x64x16x8)", s, p)
		}
		v[i] = n
	}
	t := AttentionRowsTile{R: v[0], WG: v[1], BC: v[2], N: v[3], PF: pf}
	return t, t.Check()
}

// Shared is the tile's workgroup memory in bytes for head size D.
func (t AttentionRowsTile) Shared(D int) int {
	n := 2 * t.BC * D * 4
	if t.R > 1 {
		n += t.R * t.WG * D * 4
	}
	return n
}

// Check reports whether the generator builds the tile (any head size; the
// head size and the device's limits are checked by CheckFor).
func (t AttentionRowsTile) Check() error {
	switch {
	case t.R < 1 || t.R > 4:
		return fmt.Errorf("shaders: attention tile %s: R = %d rows per thread must be 1 to 4", t, t.R)
	case t.WG < 1 || t.WG > 256:
		return fmt.Errorf("shaders: attention tile %s: WG = %d threads must be 1 to 256 (the WebGPU default maxComputeInvocationsPerWorkgroup)", t, t.WG)
	case t.N < 1 || t.N > 16:
		return fmt.Errorf("shaders: attention tile %s: N = %d keys per block must be 1 to 16", t, t.N)
	case t.BC < t.N || t.BC%t.N != 0 || t.BC > 256:
		return fmt.Errorf("shaders: attention tile %s: the key tile BC = %d must be a multiple of N = %d and at most 256", t, t.BC, t.N)
	}
	return nil
}

// CheckFor reports whether the tile runs head size D on a device with
// shmax bytes of workgroup memory and invoc invocations per workgroup.
func (t AttentionRowsTile) CheckFor(D, shmax, invoc int) error {
	if err := t.Check(); err != nil {
		return err
	}
	if D <= 0 || D%4 != 0 || D > 256 {
		return fmt.Errorf("shaders: attention tile %s: head size %d must be a multiple of 4 up to 256", t, D)
	}
	if s := t.Shared(D); s > shmax {
		return fmt.Errorf("shaders: attention tile %s needs %d bytes of workgroup memory at head size %d; the device has %d (maxComputeWorkgroupStorageSize)", t, s, D, shmax)
	}
	if t.WG > invoc {
		return fmt.Errorf("shaders: attention tile %s needs %d invocations per workgroup; the device allows %d (maxComputeInvocationsPerWorkgroup)", t, t.WG, invoc)
	}
	return nil
}

// log2e is log2(e): scores are scaled by scale·log2e so that exp2 gives
// e^(scaled score).
const log2e = 1.4426950408889634

// attentionRowsThreshold is the lazy rescale's bound in log2 units: a
// row's p = 2^(s - m) never exceeds 2^8.
const attentionRowsThreshold = 8

func attentionRowsSource(consts map[string]string) (string, error) {
	vals, err := generatorConsts(AttentionRows, consts, "D", "R", "WG", "BC", "N", "PF")
	if err != nil {
		return "", err
	}
	for _, name := range []string{"D", "R", "WG", "BC", "N"} {
		if _, ok := vals[name]; !ok {
			return "", fmt.Errorf("shaders: %s needs the constant %s (D, R, WG, BC, N; PF optional)", AttentionRows, name)
		}
	}
	if pf := vals["PF"]; pf != 0 && pf != 1 {
		return "", fmt.Errorf("shaders: %s: PF = %d must be 0 or 1", AttentionRows, pf)
	}
	t := AttentionRowsTile{R: vals["R"], WG: vals["WG"], BC: vals["BC"], N: vals["N"], PF: vals["PF"] == 1}
	D := vals["D"]
	if err := t.CheckFor(D, 1<<30, 256); err != nil {
		return "", err
	}
	params, err := paramsStruct("attention.wgsl")
	if err != nil {
		return "", err
	}
	R, WG, BC, N := t.R, t.WG, t.BC, t.N
	BR := R * WG
	d4 := D / 4
	var b strings.Builder
	p := func(format string, args ...any) { fmt.Fprintf(&b, format, args...); b.WriteByte('\n') }
	p("// %s: generated by shaders/attentionrows.go (see AttentionRows there)", AttentionRows)
	p("// from the structure of attention.wgsl. D=%d R=%d WG=%d BC=%d N=%d.", D, R, WG, BC, N)
	p("")
	p("%s", params)
	p("")
	p("@group(0) @binding(0) var<uniform> P: Params;")
	p("@group(0) @binding(1) var<storage, read> QKV: array<vec4<f32>>;       // (B, T, 3C)")
	p("@group(0) @binding(2) var<storage, read_write> OUT: array<vec4<f32>>; // (B, T, C)")
	p("")
	p("const D4: u32 = %du;", d4)
	p("const WG: u32 = %du;", WG)
	p("const BR: u32 = %du; // R·WG query rows per workgroup", BR)
	p("const BC: u32 = %du;", BC)
	p("const NEG: f32 = -3.0e38;")
	p("const LOG2E: f32 = %v;", float32(log2e))
	p("const TH: f32 = %d.0; // lazy rescale bound (log2 units)", attentionRowsThreshold)
	p("")
	if R > 1 {
		p("var<workgroup> Qs: array<array<vec4<f32>, %d>, %d>; // Qs[dq][r] = q[row0+r][4dq..4dq+3]·scale·log2e", BR, d4)
	}
	p("var<workgroup> Ks: array<array<vec4<f32>, %d>, %d>; // Ks[jj / N][(jj %% N)*D4 + dq] = k[j0+jj][4dq..4dq+3]", N*d4, BC/N)
	p("var<workgroup> Vs: array<array<vec4<f32>, %d>, %d>;", N*d4, BC/N)
	p("")
	p("@compute @workgroup_size(WG)")
	p("fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32, @builtin(num_workgroups) nwg: vec3<u32>) {")
	p("  let b = wg.y / P.H;")
	p("  let h = wg.y %% P.H;")
	p("  // Causal: the last row block (the most keys) first.")
	p("  var rblk = wg.x;")
	p("  if (P.causal == 1u) {")
	p("    rblk = nwg.x - 1u - wg.x;")
	p("  }")
	p("  let row0 = rblk * BR;")
	p("  let C4 = P.C / 4u;")
	p("  let C3 = 3u * C4;")
	p("  let rowbase = b * P.T;")
	p("  let qs = P.scale * LOG2E;")
	for r := 0; r < R; r++ {
		p("  let i%d = row0 + %du + li;", r, r*WG)
		p("  let lim%d = select(P.T, min(P.T, i%d + 1u), P.causal == 1u); // keys j < lim%d are visible", r, r, r)
		if R > 1 {
			p("  let qi%d = li + %du;", r, r*WG)
		}
	}
	if R > 1 {
		p("  // Stage q (rows past T read row T-1; their output is never written).")
		p("  for (var e = li; e < BR * D4; e += WG) {")
		p("    let rr = e / D4;")
		p("    let dq = e %% D4;")
		p("    Qs[dq][rr] = QKV[(rowbase + min(row0 + rr, P.T - 1u)) * C3 + h * D4 + dq] * qs;")
		p("  }")
	} else {
		p("  let qb = (rowbase + min(i0, P.T - 1u)) * C3 + h * D4;")
		for c := 0; c < d4; c++ {
			p("  let q0_%d = QKV[qb + %du] * qs;", c, c)
		}
	}
	for r := 0; r < R; r++ {
		for c := 0; c < d4; c++ {
			p("  var o%d_%d = vec4<f32>(0.0);", r, c)
		}
		p("  var m%d = NEG;", r)
		p("  var l%d = 0.0;", r)
	}
	p("  var kend = P.T;")
	p("  if (P.causal == 1u) {")
	p("    kend = min(P.T, row0 + BR);")
	p("  }")
	if !t.PF {
		p("  for (var j0 = 0u; j0 < kend; j0 += BC) {")
		p("    for (var e = li; e < BC * D4; e += WG) {")
		p("      let j = j0 + e / D4;")
		p("      var kv = vec4<f32>(0.0);")
		p("      var vv = vec4<f32>(0.0);")
		p("      if (j < P.T) {")
		p("        let kb = (rowbase + j) * C3 + h * D4 + e %% D4;")
		p("        kv = QKV[kb + C4];")
		p("        vv = QKV[kb + 2u * C4];")
		p("      }")
		p("      Ks[e / %du][e %% %du] = kv;", N*d4, N*d4)
		p("      Vs[e / %du][e %% %du] = vv;", N*d4, N*d4)
		p("    }")
		p("    workgroupBarrier();")
	} else {
		// Thread li stages elements e = li + k·WG, k < NL, of the tile.
		NL := (BC*d4 + WG - 1) / WG
		for k := 0; k < NL; k++ {
			p("  var pk%d = vec4<f32>(0.0);", k)
			p("  var pv%d = vec4<f32>(0.0);", k)
		}
		load := func(indent, j0 string) {
			for k := 0; k < NL; k++ {
				p("%s{", indent)
				p("%s  let e = li + %du;", indent, k*WG)
				p("%s  let j = %s + e / D4;", indent, j0)
				p("%s  pk%d = vec4<f32>(0.0);", indent, k)
				p("%s  pv%d = vec4<f32>(0.0);", indent, k)
				p("%s  if (e < BC * D4 && j < P.T) {", indent)
				p("%s    let kb = (rowbase + j) * C3 + h * D4 + e %% D4;", indent)
				p("%s    pk%d = QKV[kb + C4];", indent, k)
				p("%s    pv%d = QKV[kb + 2u * C4];", indent, k)
				p("%s  }", indent)
				p("%s}", indent)
			}
		}
		p("  // Prefetch: tile 0 now, tile t+1 while tile t is scored.")
		load("  ", "0u")
		p("  for (var j0 = 0u; j0 < kend; j0 += BC) {")
		for k := 0; k < NL; k++ {
			p("    {")
			p("      let e = li + %du;", k*WG)
			p("      if (e < BC * D4) {")
			p("        Ks[e / %du][e %% %du] = pk%d;", N*d4, N*d4, k)
			p("        Vs[e / %du][e %% %du] = pv%d;", N*d4, N*d4, k)
			p("      }")
			p("    }")
		}
		p("    workgroupBarrier();")
		p("    if (j0 + BC < kend) {")
		load("      ", "(j0 + BC)")
		p("    }")
	}
	// The key tile's blocks of N keys: Ks and Vs are arrays of blocks, so
	// the block index is the only dynamic one (one bounds-check clamp per
	// block, which naga adds to a dynamic index into workgroup memory)
	// and every index within a block is a constant offset.
	p("    for (var blk = 0u; blk < %du; blk++) {", BC/N)
	{
		// Scores s{r}_{n} of the N keys.
		for r := 0; r < R; r++ {
			for n := 0; n < N; n++ {
				p("      var s%d_%d = 0.0;", r, n)
			}
		}
		for c := 0; c < d4; c++ {
			p("      {")
			if R > 1 {
				for r := 0; r < R; r++ {
					p("        let q%d = Qs[%du][qi%d];", r, c, r)
				}
			}
			for n := 0; n < N; n++ {
				p("        let k%d = Ks[blk][%du];", n, n*d4+c)
				for r := 0; r < R; r++ {
					q := fmt.Sprintf("q%d", r)
					if R == 1 {
						q = fmt.Sprintf("q0_%d", c)
					}
					p("        s%d_%d = fma(%s.w, k%d.w, fma(%s.z, k%d.z, fma(%s.y, k%d.y, fma(%s.x, k%d.x, s%d_%d))));", r, n, q, n, q, n, q, n, q, n, r, n)
				}
			}
			p("      }")
		}
		p("      let j = j0 + blk * %du;", N)
		for r := 0; r < R; r++ {
			p("      {")
			p("        // row i%d: mask, block max, lazy rescale, probabilities", r)
			for n := 0; n < N; n++ {
				p("        let v%d = j + %du < lim%d;", n, n, r)
				p("        s%d_%d = select(NEG, s%d_%d, v%d);", r, n, r, n, n)
			}
			mx := fmt.Sprintf("s%d_0", r)
			for n := 1; n < N; n++ {
				mx = fmt.Sprintf("max(%s, s%d_%d)", mx, r, n)
			}
			p("        let bm = %s;", mx)
			p("        if (bm > m%d + TH) {", r)
			p("          let corr = exp2(m%d - bm);", r)
			p("          l%d *= corr;", r)
			for c := 0; c < d4; c++ {
				p("          o%d_%d *= corr;", r, c)
			}
			p("          m%d = bm;", r)
			p("        }")
			for n := 0; n < N; n++ {
				p("        s%d_%d = select(0.0, exp2(s%d_%d - m%d), v%d);", r, n, r, n, r, n)
			}
			sum := fmt.Sprintf("s%d_0", r)
			for n := 1; n < N; n++ {
				sum = fmt.Sprintf("%s + s%d_%d", sum, r, n)
			}
			p("        l%d += %s;", r, sum)
			p("      }")
		}
		for n := 0; n < N; n++ {
			for c := 0; c < d4; c++ {
				p("      {")
				p("        let v = Vs[blk][%du];", n*d4+c)
				for r := 0; r < R; r++ {
					p("        o%d_%d = fma(vec4<f32>(s%d_%d), v, o%d_%d);", r, c, r, n, r, c)
				}
				p("      }")
			}
		}
		p("    }")
	}
	p("    workgroupBarrier();")
	p("  }")
	for r := 0; r < R; r++ {
		p("  if (i%d < P.T) {", r)
		p("    let inv = 1.0 / l%d;", r)
		p("    let ob = (rowbase + i%d) * C4 + h * D4;", r)
		for c := 0; c < d4; c++ {
			p("    OUT[ob + %du] = o%d_%d * inv;", c, r, c)
		}
		p("  }")
	}
	p("}")
	return b.String(), nil
}
