// certain.wgsl: the unmask method's per-position certainty and ordering
// key (docs/sampling.md "Method unmask"), one workgroup per flat position
// r of the (B, T) tokens; a position whose token is not [MASK] is skipped
// (CERT untouched). The draw distribution is sample.wgsl's, step for step
// (excluded ids get 0, logits / temperature, exp(x - max), the nucleus
// rule with ranks by probability descending, ties to the lower id), so
// that the certainty describes the distribution the token was drawn from.
// Then, with q = p / kept (kept: the mass left after the nucleus rule):
// P1 >= P2 the two largest q (P2 = P1 when two ids share the top, 0 when
// one id has all the mass), NEG = sum q ln q over ids with mass, and the
// ordering's score: confidence P1, margin P1 - P2, entropy NEG, random u,
// u = Uniform(seed, sample, iteration, position, OrderNoise) from
// rng.wgsl's Philox block; every score but u rounded to 1/1024
// (round_score: near-ties that float rounding would decide become ties)
// plus u's top 11 bits times 2^-21 (step.TieBreak: ties in a random order). With an order temperature tau > 0 the key is
// score / tau - ln(-ln u) (Gumbel-top-k; u = 0 gives
// the lowest f32, where the host has -inf: both order it last), else the
// score. CERT[3r] = key, CERT[3r + 1] = P1, CERT[3r + 2] = P1 - P2.
// WGSL's log has only an absolute error bound (2^-21) on [0.5, 2], where
// ln x is near 0; ln_acc sums a series there so that ln q of a confident
// position and the Gumbel noise keep their relative precision.
// CPU twin: internal/step Sampler.Distribution, Certain, Ordering.Score
// and GumbelKey (float64).

struct Params {
  V: u32,            // vocabulary size, 1..MAXV
  n: u32,            // positions (B·T)
  T: u32,            // positions per sample (flat position = sample*T + t)
  iteration: u32,
  temperature: f32,  // > 0
  top_p: f32,        // (0, 1]; 1 disables the nucleus rule
  seed_lo: u32,
  seed_hi: u32,
  mask: u32,         // the [MASK] id
  ordering: u32,     // ORDER_* (internal/step's Ordering)
  order_temp: f32,   // Gumbel temperature, 0: no noise
  pad0: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> LOGITS: array<f32>;       // (n, V)
@group(0) @binding(2) var<storage, read> TOK: array<u32>;          // (n) current tokens
@group(0) @binding(3) var<storage, read> EXCL: array<u32>;         // ceil(V/32) words, bit i%32 of word i/32 = id i excluded
@group(0) @binding(4) var<storage, read_write> CERT: array<f32>;   // (n, 3) key, P1, P1 - P2

const WG: u32 = 256u;      // 64 for small vocabularies (as sample.wgsl)
const MAXV: u32 = 1024u;   // sample.wgsl's MAXV
// Orderings of P.ordering (internal/step's Ordering; shaders' TestEnumsMatchWGSL).
const ORDER_CONFIDENCE: u32 = 0u;
const ORDER_MARGIN: u32 = 1u;
const ORDER_ENTROPY: u32 = 2u;
const ORDER_RANDOM: u32 = 3u;
const PURPOSE_ORDER_NOISE: u32 = 6u;  // engine/rng OrderNoise
// CERT's words per position (shaders.CertainWords; unmask.wgsl reads them).
const CERT_WORDS: u32 = 3u;
const CERT_KEY: u32 = 0u;
const CERT_P1: u32 = 1u;
const CERT_GAP: u32 = 2u;

var<workgroup> PR: array<f32, MAXV>;  // probabilities of the row
var<workgroup> RED: array<f32, WG>;   // reductions

// include: rng.wgsl philox

fn excluded(i: u32) -> bool {
  return ((EXCL[i >> 5u] >> (i & 31u)) & 1u) == 1u;
}

fn reduce_max(v: f32, t: u32) -> f32 {
  RED[t] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (t < s) {
      RED[t] = max(RED[t], RED[t + s]);
    }
    workgroupBarrier();
  }
  let out = RED[0];
  workgroupBarrier();
  return out;
}

fn reduce_sum(v: f32, t: u32) -> f32 {
  RED[t] = v;
  workgroupBarrier();
  for (var s = WG / 2u; s > 0u; s = s >> 1u) {
    if (t < s) {
      RED[t] = RED[t] + RED[t + s];
    }
    workgroupBarrier();
  }
  let out = RED[0];
  workgroupBarrier();
  return out;
}

// ln_acc is ln x for x > 0: log(x) outside [0.5, 2] (WGSL: 3 ulp there),
// inside it 2·atanh(z), z = (x - 1)/(x + 1), |z| <= 1/3, summed to z^17
// (the rest is below 2^-28 relative). x - 1 is exact there (Sterbenz).
fn ln_acc(x: f32) -> f32 {
  if (x < 0.5 || x > 2.0) {
    return log(x);
  }
  let z = (x - 1.0) / (x + 1.0);
  let z2 = z * z;
  var s = 0.0;
  for (var k = 8i; k >= 0i; k--) {
    s = s * z2 + 1.0 / f32(2i * k + 1i);
  }
  return 2.0 * z * s;
}

// round_score rounds a score to 1/1024, halves away from zero (step.RoundScore,
// Go's math.Round; waveplan.wgsl's boot_key does the same): a - floor(a) is
// exact in f32, while floor(a + 0.5) is not.
fn round_score(x: f32) -> f32 {
  let a = abs(x) * 1024.0;
  var r = floor(a);
  if (a - r >= 0.5) {
    r += 1.0;
  }
  return sign(x) * r / 1024.0;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let r = wid.x + wid.y * nwg.x;
  if (r >= P.n || TOK[r] != P.mask) {
    return;
  }
  let V = P.V;
  let C = (V + WG - 1u) / WG;  // ids per thread, contiguous: [lo, hi)
  let lo = min(t * C, V);
  let hi = min(lo + C, V);
  let base = r * V;

  // The distribution, as sample.wgsl computes it.
  var m = bitcast<f32>(0xff7fffffu);
  for (var i = lo; i < hi; i++) {
    let x = LOGITS[base + i] / P.temperature;
    PR[i] = x;
    if (!excluded(i)) {
      m = max(m, x);
    }
  }
  m = reduce_max(m, t);
  var s = 0.0;
  for (var i = lo; i < hi; i++) {
    var p = 0.0;
    if (!excluded(i)) {
      p = exp(PR[i] - m);
    }
    PR[i] = p;
    s += p;
  }
  let total = reduce_sum(s, t);
  var drop = 0u;  // bit k: id lo+k leaves the nucleus
  if (P.top_p < 1.0 && total > 0.0) {
    for (var i = lo; i < hi; i++) {
      let p = PR[i];
      if (p == 0.0) {
        continue;
      }
      var cum = 0.0;
      var first = true;
      for (var j = 0u; j < V; j++) {
        let q = PR[j];
        if (q > p || (q == p && j < i)) {
          cum += q / total;
          first = false;
        }
      }
      if (!(first || cum <= P.top_p)) {
        drop |= 1u << (i - lo);
      }
    }
  }
  workgroupBarrier();
  s = 0.0;
  var top = 0.0;
  for (var i = lo; i < hi; i++) {
    if (((drop >> (i - lo)) & 1u) == 1u) {
      PR[i] = 0.0;
    }
    s += PR[i];
    top = max(top, PR[i]);
  }
  let kept = reduce_sum(s, t);

  // The two largest masses (the top counted twice when two ids share it).
  let p1 = reduce_max(top, t);
  var n1 = 0.0;
  var second = 0.0;
  var neg = 0.0;
  for (var i = lo; i < hi; i++) {
    let p = PR[i];
    if (p == p1) {
      n1 += 1.0;
    } else {
      second = max(second, p);
    }
    if (p > 0.0) {
      let q = p / kept;
      neg += q * ln_acc(q);
    }
  }
  let ties = reduce_sum(n1, t);
  var p2 = reduce_max(second, t);
  if (ties >= 2.0) {
    p2 = p1;
  }
  let nent = reduce_sum(neg, t);
  if (t != 0u) {
    return;
  }
  let q1 = p1 / kept;
  let q2 = p2 / kept;
  let u = rng_uniform(P.seed_lo, P.seed_hi, r / P.T, P.iteration, r % P.T, PURPOSE_ORDER_NOISE);
  // Ties of the rounded scores by u (step.TieBreak): its top 11 bits times
  // 2^-21, below one 1/1024 step; the sum is exact in f32 for |score| < 8.
  let tie = floor(u * 2048.0) / 2097152.0;
  var score = round_score(q1) + tie;
  switch P.ordering {
    case ORDER_MARGIN: {
      score = round_score(q1 - q2) + tie;
    }
    case ORDER_ENTROPY: {
      score = round_score(nent) + tie;
    }
    case ORDER_RANDOM: {
      score = u;
    }
    default: {}
  }
  var key = score;
  if (P.order_temp > 0.0) {
    key = bitcast<f32>(0xff7fffffu);  // u = 0: never first (the host's -inf; every other key is finite)
    if (u > 0.0) {
      key = score / P.order_temp - ln_acc(-ln_acc(u));
    }
  }
  CERT[CERT_WORDS * r + CERT_KEY] = key;
  CERT[CERT_WORDS * r + CERT_P1] = q1;
  CERT[CERT_WORDS * r + CERT_GAP] = q1 - q2;
}
