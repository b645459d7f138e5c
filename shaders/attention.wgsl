// attention.wgsl: fused multi-head scaled dot-product attention, flash style
// (online softmax over key tiles): memory per head is O(T), never O(T²).
// For batch row b, head h and query i:
//   OUT[b, i, h] = Σ_j softmax_j(q_i·k_j / sqrt(d)) · v_j,  key j visible iff
//   j <= i when causal. CPU twin: engine/cpu attention().
//
// A workgroup handles BR query rows of one (b, h), one thread per row; key
// and value tiles of BC rows are staged in workgroup memory and read by every
// thread (broadcast). Each thread keeps q, the output accumulator and the
// running max / sum in registers.
// Host-substituted constants: D (head size), BR, BC.
// For D % 4 == 0 the host runs shaders.AttentionUnrolled (matmulgen.go), the
// same algorithm with q and acc as named vec4 variables instead of arrays.

struct Params {
  T: u32,
  C: u32,
  H: u32,
  causal: u32,  // 1: causal mask
  scale: f32,   // 1/sqrt(d)
  pad0: u32,
  pad1: u32,
  pad2: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> QKV: array<f32>;         // (B, T, 3C)
@group(0) @binding(2) var<storage, read_write> OUT: array<f32>;   // (B, T, C)

const D: u32 = 16u;
const BR: u32 = 64u;
const BC: u32 = 32u;
const NEG: f32 = -3.0e38;

const KV_LEN: u32 = BC * D;
var<workgroup> Ks: array<f32, KV_LEN>;
var<workgroup> Vs: array<f32, KV_LEN>;

@compute @workgroup_size(BR)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let b = wg.y / P.H;
  let h = wg.y % P.H;
  let i = wg.x * BR + li;
  let valid = i < P.T;
  let C3 = 3u * P.C;
  let rowbase = b * P.T;

  var q: array<f32, D>;
  var acc: array<f32, D>;
  var s: array<f32, BC>;
  if (valid) {
    let qb = (rowbase + i) * C3 + h * D;
    for (var c = 0u; c < D; c++) {
      q[c] = QKV[qb + c] * P.scale;
    }
  }
  var m = NEG;
  var l = 0.0;
  var kend = P.T;
  if (P.causal == 1u) {
    kend = min(P.T, wg.x * BR + BR);
  }
  for (var j0 = 0u; j0 < kend; j0 += BC) {
    for (var e = li; e < BC * D; e += BR) {
      let j = j0 + e / D;
      var kv = 0.0;
      var vv = 0.0;
      if (j < P.T) {
        let kb = (rowbase + j) * C3 + h * D + e % D;
        kv = QKV[kb + P.C];
        vv = QKV[kb + 2u * P.C];
      }
      Ks[e] = kv;
      Vs[e] = vv;
    }
    workgroupBarrier();
    if (valid) {
      var tmax = NEG;
      for (var jj = 0u; jj < BC; jj++) {
        let j = j0 + jj;
        var dot = 0.0;
        for (var c = 0u; c < D; c++) {
          dot = fma(q[c], Ks[jj * D + c], dot);
        }
        let vis = j < P.T && (P.causal == 0u || j <= i);
        s[jj] = select(NEG, dot, vis);
        tmax = max(tmax, s[jj]);
      }
      let mnew = max(m, tmax);
      let corr = exp(m - mnew);
      l *= corr;
      for (var c = 0u; c < D; c++) {
        acc[c] *= corr;
      }
      for (var jj = 0u; jj < BC; jj++) {
        let j = j0 + jj;
        let vis = j < P.T && (P.causal == 0u || j <= i);
        let p = select(0.0, exp(s[jj] - mnew), vis);
        l += p;
        for (var c = 0u; c < D; c++) {
          acc[c] = fma(p, Vs[jj * D + c], acc[c]);
        }
      }
      m = mnew;
    }
    workgroupBarrier();
  }
  if (valid) {
    let inv = 1.0 / l;
    let ob = (rowbase + i) * P.C + h * D;
    for (var c = 0u; c < D; c++) {
      OUT[ob + c] = acc[c] * inv;
    }
  }
}
