// sampler_in.wgsl: the first block of the sampler head for the rows of a
// wave, one workgroup per row r < n = WS[slot]; row r is position
// pos = LIST[WS[slot + 1] + r] (waveplan.wgsl's lists):
//   y = LN(SiLU(HW[pos] + LR[left] + LR[V + right] + b0)) · w + b
// where HW = h · W0[:, C:2C]ᵀ for every position (one matmul per iteration),
// LR = (wte · W0[:, 0:C]ᵀ, wte · W0[:, 2C:3C]ᵀ) per token id (made once per
// model). left and right are the neighbours' ids read from the prediction
// now, when exactly the earlier waves are filled (embeddings = 1; a masked
// neighbour, one outside the row, or zeros mode: none), and a missing
// neighbour contributes nothing: the
// same function as mlp.0 on [wte[left] or 0, h_p, wte[right] or 0], with the
// three partial sums added in another order. The LayerNorm is
// layernorm.wgsl's (mean, then the centred sum of squares).
// CPU twin: engine/cpu's sampler head (mlp.0, mlp.1, mlp.2).

struct Params {
  C: u32,
  V: u32,
  T: u32,           // positions per row
  slot: u32,        // WS[slot] = n, WS[slot + 1] = the wave's first index in LIST
  has_bias: u32,    // 1: b0 and the LayerNorm bias are in VEC
  eps: f32,
  mask: u32,        // the [MASK] id
  embeddings: u32,  // 1: neighbour ids, 0: zeros
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> LIST: array<u32>;     // positions by wave
@group(0) @binding(2) var<storage, read> WS: array<u32>;       // waveplan.wgsl's wave state
@group(0) @binding(3) var<storage, read> HW: array<f32>;       // (B·T, C)
@group(0) @binding(4) var<storage, read> LR: array<f32>;       // (2V, C)
@group(0) @binding(5) var<storage, read> VEC: array<f32>;      // (3, C): b0, LN weight, LN bias
@group(0) @binding(6) var<storage, read_write> Y: array<f32>;  // (n, C)
@group(0) @binding(7) var<storage, read> PRED: array<u32>;     // (B, T) the prediction

const WG: u32 = 128u;
const NONE: u32 = 0xffffffffu;
const MAXC: u32 = 1024u;

var<workgroup> Z: array<f32, MAXC>;
var<workgroup> red: array<f32, WG>;

// neighbour is the id at q (embeddings mode, unmasked), else NONE.
fn neighbour(q: u32) -> u32 {
  let id = PRED[q];
  if (P.embeddings == 0u || id == P.mask) {
    return NONE;
  }
  return id;
}

fn reduce(li: u32) -> f32 {
  for (var off = WG / 2u; off > 0u; off >>= 1u) {
    if (li < off) {
      red[li] += red[li + off];
    }
    workgroupBarrier();
  }
  let v = red[0];
  workgroupBarrier();
  return v;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let r = wg.x + wg.y * nwg.x;
  if (r >= WS[P.slot]) {
    return;
  }
  let C = P.C;
  let pos = LIST[WS[P.slot + 1u] + r];
  let t = pos % P.T;
  var left = NONE;
  var right = NONE;
  if (t > 0u) {
    left = neighbour(pos - 1u);
  }
  if (t + 1u < P.T) {
    right = neighbour(pos + 1u);
  }
  var s = 0.0;
  for (var c = li; c < C; c += WG) {
    var z = HW[pos * C + c];
    if (left != NONE) {
      z += LR[left * C + c];
    }
    if (right != NONE) {
      z += LR[(P.V + right) * C + c];
    }
    if (P.has_bias == 1u) {
      z += VEC[c];
    }
    z = z / (1.0 + exp(-z));
    Z[c] = z;
    s += z;
  }
  red[li] = s;
  workgroupBarrier();
  let mean = reduce(li) / f32(C);
  var q = 0.0;
  for (var c = li; c < C; c += WG) {
    let d = Z[c] - mean;
    q += d * d;
  }
  red[li] = q;
  workgroupBarrier();
  let rstd = 1.0 / sqrt(reduce(li) / f32(C) + P.eps);
  for (var c = li; c < C; c += WG) {
    var y = (Z[c] - mean) * rstd * VEC[C + c];
    if (P.has_bias == 1u) {
      y += VEC[2u * C + c];
    }
    Y[r * C + c] = y;
  }
}
