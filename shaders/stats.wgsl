// stats.wgsl: the quality statistics of engine/sampler's metrics(), one
// workgroup per row of the final tokens:
//   OUT[b, 0] self-confidence: the mean over positions whose token is not
//             [MASK] of ln(softmax(LOGITS[p])[TOK[p]] + 1e-10); OUT[b, 1] their count
//   OUT[b, 2..6] with a critic: mean, p10, p50, p90 (linear interpolation
//             between order statistics, as torch.quantile) of sigmoid(CRIT[p])
//             over positions that are neither [MASK] nor [PAD]; OUT[b, 6] their count;
//             OUT[b, 7] how many of them have a NaN or infinite critic logit
//             (tested on the bits: WGSL lets an implementation assume no NaN
//             or infinity occurs, so a NaN need not reach the mean)
// The order statistics are exact radix selects (select.wgsl's topk block).
// Sums are f32 tree reductions (the CPU twin sums in float64).
// CPU twin: internal/step SelfConfidence and CriticRow.

struct Params {
  B: u32,
  T: u32,
  V: u32,
  mask: u32,
  pad: u32,         // the [PAD] id, or 0xffffffff
  has_critic: u32,
  pad0: u32,
  pad1: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> TOK: array<u32>;          // (B, T)
@group(0) @binding(2) var<storage, read> LOGITS: array<f32>;       // (B, T, V)
@group(0) @binding(3) var<storage, read> CRIT: array<f32>;         // (B, T) critic logits
@group(0) @binding(4) var<storage, read_write> KEYS: array<u32>;   // (B, T) scratch
@group(0) @binding(5) var<storage, read_write> OUT: array<f32>;    // (B, 8)

const WG: u32 = 256u;

// OUT's words per row (shaders.Stats*).
const STATS_WORDS: u32 = 8u;
const STATS_SELF: u32 = 0u;          // self-confidence
const STATS_SELF_COUNT: u32 = 1u;    // positions it averages
const STATS_CRITIC_MEAN: u32 = 2u;
const STATS_CRITIC_P10: u32 = 3u;
const STATS_CRITIC_P50: u32 = 4u;
const STATS_CRITIC_P90: u32 = 5u;
const STATS_CRITIC_COUNT: u32 = 6u;  // positions the critic statistics cover
const STATS_CRITIC_NONFINITE: u32 = 7u;  // of those, critic logits NaN or ±Inf

// include: select.wgsl topk

var<workgroup> S_RED: array<f32, WG>;

fn sum(v: f32, t: u32) -> f32 {
  S_RED[t] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (t < s) {
      S_RED[t] = S_RED[t] + S_RED[t + s];
    }
    workgroupBarrier();
  }
  let out = S_RED[0];
  workgroupBarrier();
  return out;
}

fn sigm(x: f32) -> f32 {
  return 1.0 / (1.0 + exp(-x));
}

// nth_smallest is the value of rank i (0-based, ascending) among n candidates.
fn nth_smallest(base: u32, len: u32, n: u32, i: u32, t: u32) -> f32 {
  return key_f32(tk_kth(base, len, n - i, t).x);
}

fn quantile(base: u32, len: u32, n: u32, q: f32, t: u32) -> f32 {
  let pos = q * f32(n - 1u);
  let lo = u32(floor(pos));
  let hi = min(lo + 1u, n - 1u);
  let a = nth_smallest(base, len, n, lo, t);
  let b = nth_smallest(base, len, n, hi, t);
  return a + (pos - f32(lo)) * (b - a);
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let b = wid.x + wid.y * nwg.x;
  if (b >= P.B) {
    return;
  }
  let T = P.T;
  let base = b * T;
  let r = tk_range(T, t);
  var s = 0.0;
  var c = 0.0;
  for (var i = r.x; i < r.y; i++) {
    let p = base + i;
    let tok = TOK[p];
    if (tok == P.mask) {
      continue;
    }
    let lb = p * P.V;
    var m = bitcast<f32>(0xff7fffffu);
    for (var j = 0u; j < P.V; j++) {
      m = max(m, LOGITS[lb + j]);
    }
    var z = 0.0;
    for (var j = 0u; j < P.V; j++) {
      z += exp(LOGITS[lb + j] - m);
    }
    s += log(exp(LOGITS[lb + tok] - m) / z + 1e-10);
    c += 1.0;
  }
  let total = sum(s, t);
  let count = sum(c, t);
  if (P.has_critic == 0u) {
    if (t == 0u) {
      OUT[STATS_WORDS * b + STATS_SELF] = total / max(count, 1.0);
      OUT[STATS_WORDS * b + STATS_SELF_COUNT] = count;
    }
    return;
  }
  var cs = 0.0;
  var bad = 0.0;
  for (var i = r.x; i < r.y; i++) {
    let p = base + i;
    let tok = TOK[p];
    var key = 0u;
    if (tok != P.mask && tok != P.pad) {
      let x = CRIT[p];
      if ((bitcast<u32>(x) & 0x7f800000u) == 0x7f800000u) {
        bad += 1.0;
      }
      let v = sigm(x);
      cs += v;
      key = f32_key(v);
    }
    KEYS[p] = key;
  }
  let csum = sum(cs, t);
  let nonfinite = sum(bad, t);
  let n = tk_count(base, T, t);
  var q10 = 0.0;
  var q50 = 0.0;
  var q90 = 0.0;
  if (n > 0u) {
    q10 = quantile(base, T, n, 0.1, t);
    q50 = quantile(base, T, n, 0.5, t);
    q90 = quantile(base, T, n, 0.9, t);
  }
  if (t == 0u) {
    let o = STATS_WORDS * b;
    OUT[o + STATS_SELF] = total / max(count, 1.0);
    OUT[o + STATS_SELF_COUNT] = count;
    OUT[o + STATS_CRITIC_MEAN] = csum / max(f32(n), 1.0);
    OUT[o + STATS_CRITIC_P10] = q10;
    OUT[o + STATS_CRITIC_P50] = q50;
    OUT[o + STATS_CRITIC_P90] = q90;
    OUT[o + STATS_CRITIC_COUNT] = f32(n);
    OUT[o + STATS_CRITIC_NONFINITE] = nonfinite;
  }
}
