// remask.wgsl: the remasking scores of the host loop's remask, one
// thread per position. Writes the score (larger = remasked first) at SW[p]
// and the strategy's wrongness at SW[N + p]; P.strategy is one of the
// STRATEGY_* constants below (internal/step's Strategy numbers):
//   0 critic:     wrong = sigmoid(l), score = blend(l), l = AUX[p] the critic logit
//   1 calibrated: w = max(TABLE[clamp(floor(100·sigmoid(l)), 0, 99)], 1e-6),
//                 wrong = w, score = -(u2 / max((1-r)·w + r·u1, 1e-6))
//                 (score = NaN for a NaN l)
//   2 self:       q = softmax(LOGITS[p])[PRED[p]], wrong = 1 - q, score = blend(1 - q)
//   3 random:     score = u (purpose RemaskRandom), wrong = NaN
//   4 model:      c = AUX[p·stride + col] (a token classifier's class-1 logit),
//                 wrong = 1 - sigmoid(c), score = blend(-c)
// blend(s) = (1-r)·s + r·u with u = Uniform(seed, sample, iteration,
// position, RemaskNoise) when r > 0, else s; u1 likewise, u2 with purpose
// RemaskLuck. All in f32 (the CPU twin computes in float64).
// CPU twin: internal/step Scoring.Scores (float64).

struct Params {
  N: u32,           // B·T positions
  T: u32,
  V: u32,           // vocabulary (self)
  strategy: u32,
  iteration: u32,
  seed_lo: u32,
  seed_hi: u32,
  r: f32,           // randomness_strength, clamped to [0, 1] by the host
  stride: u32,      // AUX row stride (1 for a critic)
  col: u32,         // AUX column
  pad0: u32,
  pad1: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> PRED: array<u32>;     // (N) prediction
@group(0) @binding(2) var<storage, read> LOGITS: array<f32>;   // (N, V) LM logits of the input (self)
@group(0) @binding(3) var<storage, read> AUX: array<f32>;      // critic logits (N) or classifier logits (N, stride)
@group(0) @binding(4) var<storage, read> TABLE: array<f32>;    // (100) calibration
@group(0) @binding(5) var<storage, read_write> SW: array<f32>; // (2N) score, wrongness

const WG: u32 = 64u;

// Remasking strategies (internal/step Critic, Calibrated, Self, Random, Model).
const STRATEGY_CRITIC: u32 = 0u;
const STRATEGY_CALIBRATED: u32 = 1u;
const STRATEGY_SELF: u32 = 2u;
const STRATEGY_RANDOM: u32 = 3u;
const STRATEGY_MODEL: u32 = 4u;

// Random streams (engine/rng Purpose).
const PURPOSE_REMASK_NOISE: u32 = 3u;
const PURPOSE_REMASK_LUCK: u32 = 4u;
const PURPOSE_REMASK_RANDOM: u32 = 5u;

// include: rng.wgsl philox

fn sigm(x: f32) -> f32 {
  return 1.0 / (1.0 + exp(-x));
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let p = gid.x + gid.y * nwg.x * WG;
  if (p >= P.N) {
    return;
  }
  let b = p / P.T;
  let t = p % P.T;
  let r = P.r;
  var noise = 0.0;
  if (r > 0.0) {
    noise = rng_uniform(P.seed_lo, P.seed_hi, b, P.iteration, t, PURPOSE_REMASK_NOISE);
  }
  var score = 0.0;
  var wrong = 0.0;
  switch (P.strategy) {
    case STRATEGY_CRITIC: {
      let l = AUX[p];
      wrong = sigm(l);
      score = l;
    }
    case STRATEGY_CALIBRATED: {
      let pr = sigm(AUX[p]);
      let bucket = u32(clamp(floor(100.0 * pr), 0.0, 99.0));
      let w = max(TABLE[bucket], 1e-6);
      wrong = w;
      let u2 = rng_uniform(P.seed_lo, P.seed_hi, b, P.iteration, t, PURPOSE_REMASK_LUCK);
      let w2 = max((1.0 - r) * w + r * noise, 1e-6);
      score = -(u2 / w2);
      if ((bitcast<u32>(AUX[p]) & 0x7fffffffu) > 0x7f800000u) {
        score = AUX[p];  // a NaN logit stays NaN (the bucket would hide it from select.wgsl's check)
      }
    }
    case STRATEGY_SELF: {
      let base = p * P.V;
      var m = bitcast<f32>(0xff7fffffu);
      for (var i = 0u; i < P.V; i++) {
        m = max(m, LOGITS[base + i]);
      }
      var z = 0.0;
      for (var i = 0u; i < P.V; i++) {
        z += exp(LOGITS[base + i] - m);
      }
      let q = exp(LOGITS[base + PRED[p]] - m) / z;
      wrong = 1.0 - q;
      score = 1.0 - q;
    }
    case STRATEGY_RANDOM: {
      score = rng_uniform(P.seed_lo, P.seed_hi, b, P.iteration, t, PURPOSE_REMASK_RANDOM);
      wrong = bitcast<f32>(0x7fc00000u | (P.strategy & 0u));  // NaN (a runtime value: a NaN constant is an error in WGSL)
    }
    case STRATEGY_MODEL: {
      let c = AUX[p * P.stride + P.col];
      wrong = 1.0 - sigm(c);
      score = -c;
    }
    default: {  // not a strategy: NewLoop refuses one (engine/gpu checkLoop); NaN marks the output
      score = bitcast<f32>(0x7fc00000u | (P.strategy & 0u));
      wrong = score;
    }
  }
  if (r > 0.0 && P.strategy != STRATEGY_CALIBRATED && P.strategy != STRATEGY_RANDOM) {
    score = (1.0 - r) * score + r * noise;
  }
  SW[p] = score;
  SW[P.N + p] = wrong;
}
