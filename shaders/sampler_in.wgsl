// sampler_in.wgsl: the first block of the sampler head for the rows of a
// wave, one workgroup per row r < n; row r is position pos = LIST[off + r]
// (waveplan.wgsl's lists). Every wave's dispatch is alike (the same params,
// so one bind group serves them all): a workgroup takes a ticket and finds
// its wave as the last slot whose earlier slots launched at most that many
// workgroups (slot record: n, off, workgroups before), and publishes n and
// off at WS[W_CUR_N], WS[W_CUR_OFF] for the wave's sample.wgsl dispatch.
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
  slot_at: u32,     // WS's first slot record
  has_bias: u32,    // 1: b0 and the LayerNorm bias are in VEC
  eps: f32,
  mask: u32,        // the [MASK] id
  embeddings: u32,  // 1: neighbour ids, 0: zeros
  slots: u32,       // slot records of this iteration
  pad0: u32,
  pad1: u32,
  pad2: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> LIST: array<u32>;     // positions by wave
@group(0) @binding(2) var<storage, read_write> WS: array<atomic<u32>>;  // waveplan.wgsl's wave state
@group(0) @binding(3) var<storage, read> HW: array<f32>;       // (B·T, C)
@group(0) @binding(4) var<storage, read> LR: array<f32>;       // (2V, C)
@group(0) @binding(5) var<storage, read> VEC: array<f32>;      // (3, C): b0, LN weight, LN bias
@group(0) @binding(6) var<storage, read_write> Y: array<f32>;  // (n, C)
@group(0) @binding(7) var<storage, read> PRED: array<u32>;     // (B, T) the prediction

const WG: u32 = 128u;
const NONE: u32 = 0xffffffffu;
const MAXC: u32 = 1024u;
// WS's words (waveplan.wgsl's, shaders.Wave*).
const W_TICKET: u32 = 4u;
const W_CUR_N: u32 = 5u;
const W_CUR_OFF: u32 = 6u;
const SLOT_WORDS: u32 = 4u;

var<workgroup> Z: array<f32, MAXC>;
var<workgroup> red: array<f32, WG>;
var<workgroup> WAVE: vec2<u32>;  // the workgroup's wave: (n, off)

// wave finds the slot of ticket k: the last s whose record's workgroups
// before are <= k (non-empty slots launch at least one workgroup each).
fn wave(k: u32) -> vec2<u32> {
  var lo = 0u;
  var hi = P.slots;  // the slot is in [lo, hi)
  while (hi - lo > 1u) {
    let mid = (lo + hi) / 2u;
    if (atomicLoad(&WS[P.slot_at + SLOT_WORDS * mid + 2u]) <= k) {
      lo = mid;
    } else {
      hi = mid;
    }
  }
  let rec = P.slot_at + SLOT_WORDS * lo;
  return vec2<u32>(atomicLoad(&WS[rec]), atomicLoad(&WS[rec + 1u]));
}

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
  if (li == 0u) {
    let w = wave(atomicAdd(&WS[W_TICKET], 1u));
    WAVE = w;
    atomicStore(&WS[W_CUR_N], w.x);
    atomicStore(&WS[W_CUR_OFF], w.y);
  }
  let w = workgroupUniformLoad(&WAVE);
  if (r >= w.x) {
    return;
  }
  let C = P.C;
  let pos = LIST[w.y + r];
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
