// samplerwave.wgsl: one sampler-head wave in one dispatch. One workgroup
// per position of the wave, row r < n is position pos = LIST[off + r]
// (waveplan.wgsl's lists), and computes for it the whole sampler head and
// the token draw:
//   y1 = LN1(SiLU(HW[pos] + LR[left] + LR[V + right] + b0))   (mlp.0-2)
//   y2 = LN2(SiLU(W3 · y1 + b3))                               (mlp.3-5)
//   logits = WO · y2                                           (output_head)
// then draws the id of pos from the logits as sample.wgsl does (its draw
// block, spliced in below: exclusion, temperature, nucleus, inverse CDF with
// u = Uniform(seed, sample, iteration, position, Token)) and writes it to
// PRED[pos] ([MASK] and ERR[ERR_DRAW] = the smallest such position when no
// id has probability > 0).
//
// HW = h · W0[:, C:2C]ᵀ for every position (one matmul per iteration); TAB
// holds the per-model tables (engine/gpu's samplerTables): LR = (wte ·
// W0[:, 0:C]ᵀ, wte · W0[:, 2C:3C]ᵀ) per token id, W3ᵀ and WOᵀ (transposed,
// so that the threads of a workgroup, one output each, read consecutive
// words) and the vectors b0, LN1 weight and bias, b3, LN2 weight and bias
// (zeros where the model has no bias). The weights come from global memory
// (L2: every workgroup of every wave reads the same tables); each output is
// a dot product in ascending input order, as the matmul kernels sum, and
// the LayerNorms are layernorm.wgsl's (mean, then the centred sum of
// squares).
//
// left and right are the neighbours' ids read from the prediction (embeddings
// = 1; a masked neighbour, one outside the row, or zeros mode: none, which
// contributes nothing). A neighbour in the same wave is masked when the wave
// starts but may be drawn by another workgroup of this dispatch meanwhile,
// so waveplan.wgsl marks it in the list entry (LIST_LEFT, LIST_RIGHT) and it
// counts as masked; every other neighbour is final for this wave (an
// earlier wave's, or unmasked, or masked until a later wave).
//
// Every wave slot's dispatch is alike (the same params, so one bind group
// serves them all): a workgroup takes a ticket and finds its wave as the last
// slot whose earlier slots launched at most that many workgroups (slot
// record: n, off, workgroups before). A slot past the planned waves is a
// dispatch of zero workgroups.
// CPU twin: engine/cpu's sampler head (SamplerLogits) and internal/step
// Sampler.Draw.

struct Params {
  C: u32,
  V: u32,           // vocabulary size, 1..MAXV
  T: u32,           // positions per row
  slot_at: u32,     // WS's first slot record
  slots: u32,       // slot records of this iteration
  eps: f32,
  mask: u32,        // the [MASK] id
  embeddings: u32,  // 1: neighbour ids, 0: zeros
  iteration: u32,
  temperature: f32, // > 0
  top_p: f32,       // (0, 1]; 1 disables the nucleus rule
  seed_lo: u32,
  seed_hi: u32,
  pad0: u32,
  pad1: u32,
  pad2: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> LIST: array<u32>;              // positions by wave, with the LIST_* flags
@group(0) @binding(2) var<storage, read_write> WS: array<atomic<u32>>;  // waveplan.wgsl's wave state
@group(0) @binding(3) var<storage, read> HW: array<f32>;                // (B·T, C)
@group(0) @binding(4) var<storage, read> TAB: array<f32>;               // LR (2V, C), W3ᵀ (C, C), WOᵀ (C, V), VEC (6, C)
@group(0) @binding(5) var<storage, read_write> PRED: array<u32>;        // (B, T) the prediction
@group(0) @binding(6) var<storage, read> EXCL: array<u32>;              // ceil(V/32) words, bit i%32 of word i/32 = id i excluded
@group(0) @binding(7) var<storage, read_write> ERR: array<atomic<u32>>; // [ERR_DRAW]: smallest failed position

const WG: u32 = 256u;
const MAXC: u32 = 1024u;
const MAXV: u32 = 1024u;   // at most 32·WG (the draw's keep mask is one u32)
const HLEN: u32 = 2048u;   // 2·MAXC: the two vectors of the head
const NONE: u32 = 0xffffffffu;
const PURPOSE_TOKEN: u32 = 2u;  // engine/rng Token
const ERR_DRAW: u32 = 0u;
// WS's words (waveplan.wgsl's, shaders.Wave*).
const W_TICKET: u32 = 4u;
const SLOT_WORDS: u32 = 4u;
// LIST's entries (waveplan.wgsl's, shaders.WaveList*): the position, and
// whether its left or right neighbour is in the same wave.
const LIST_LEFT: u32 = 0x80000000u;
const LIST_RIGHT: u32 = 0x40000000u;
const LIST_POS: u32 = 0x3fffffffu;
// DUMP_AT > 0 (tests only): also write each row's logits, as f32 bits, to
// PRED[DUMP_AT + r·V ..].
const DUMP_AT: u32 = 0u;
// H's vectors.
const X0: u32 = 0u;
const Y0: u32 = MAXC;

var<workgroup> H: array<f32, HLEN>;  // y1 at X0, y2 at Y0
var<workgroup> PR: array<f32, MAXV>;  // the logits / temperature, then probabilities
var<workgroup> RED: array<f32, WG>;   // reductions and the scan
var<workgroup> PICK: atomic<u32>;     // first id whose cumulative mass exceeds the target
var<workgroup> LAST: atomic<u32>;     // 1 + the last id with mass, 0 if none
var<workgroup> WAVE: vec2<u32>;       // the workgroup's wave: (n, off)

// include: rng.wgsl philox

// include: sample.wgsl draw

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

// neighbour is the id at q (embeddings mode, unmasked, not in this wave),
// else NONE.
fn neighbour(q: u32, same: bool) -> u32 {
  if (P.embeddings == 0u || same) {
    return NONE;
  }
  let id = PRED[q];
  if (id == P.mask) {
    return NONE;
  }
  return id;
}

fn silu(z: f32) -> f32 {
  return z / (1.0 + exp(-z));
}

// dot is sum over c < C of H[x + c] · TAB[w + c·s], summed in ascending c
// (as the matmul kernels sum). Eight weights are loaded before they are
// summed, so that a thread has eight loads in flight instead of one:
// the waves are latency-bound (a few workgroups reading from L2).
fn dot(x: u32, w: u32, s: u32) -> f32 {
  let C = P.C;
  var acc = 0.0;
  var c = 0u;
  for (; c + 8u <= C; c += 8u) {
    let b = w + c * s;
    let wa = vec4<f32>(TAB[b], TAB[b + s], TAB[b + 2u * s], TAB[b + 3u * s]);
    let wb = vec4<f32>(TAB[b + 4u * s], TAB[b + 5u * s], TAB[b + 6u * s], TAB[b + 7u * s]);
    let i = x + c;
    acc += H[i] * wa.x;
    acc += H[i + 1u] * wa.y;
    acc += H[i + 2u] * wa.z;
    acc += H[i + 3u] * wa.w;
    acc += H[i + 4u] * wb.x;
    acc += H[i + 5u] * wb.y;
    acc += H[i + 6u] * wb.z;
    acc += H[i + 7u] * wb.w;
  }
  for (; c < C; c++) {
    acc += H[x + c] * TAB[w + c * s];
  }
  return acc;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) t: u32) {
  let r = wg.x + wg.y * nwg.x;
  if (t == 0u) {
    WAVE = wave(atomicAdd(&WS[W_TICKET], 1u));
  }
  let w = workgroupUniformLoad(&WAVE);
  if (r >= w.x) {
    return;
  }
  let C = P.C;
  let V = P.V;
  let lr = 0u;
  let w3 = 2u * V * C;
  let wo = w3 + C * C;
  let vec = wo + C * V;
  let e = LIST[w.y + r];
  let pos = e & LIST_POS;
  let tp = pos % P.T;
  var left = NONE;
  var right = NONE;
  if (tp > 0u) {
    left = neighbour(pos - 1u, (e & LIST_LEFT) != 0u);
  }
  if (tp + 1u < P.T) {
    right = neighbour(pos + 1u, (e & LIST_RIGHT) != 0u);
  }

  // mlp.0-2: y1 = LN1(SiLU(HW[pos] + LR[left] + LR[V + right] + b0)).
  var s = 0.0;
  for (var c = t; c < C; c += WG) {
    var z = HW[pos * C + c];
    if (left != NONE) {
      z += TAB[lr + left * C + c];
    }
    if (right != NONE) {
      z += TAB[lr + (V + right) * C + c];
    }
    z = silu(z + TAB[vec + c]);
    H[X0 + c] = z;
    s += z;
  }
  let mean1 = reduce_sum(s, t) / f32(C);
  var q = 0.0;
  for (var c = t; c < C; c += WG) {
    let d = H[X0 + c] - mean1;
    q += d * d;
  }
  let rstd1 = 1.0 / sqrt(reduce_sum(q, t) / f32(C) + P.eps);
  for (var c = t; c < C; c += WG) {
    H[X0 + c] = (H[X0 + c] - mean1) * rstd1 * TAB[vec + C + c] + TAB[vec + 2u * C + c];
  }
  workgroupBarrier();

  // mlp.3-5: y2 = LN2(SiLU(W3 · y1 + b3)), one output per thread.
  s = 0.0;
  for (var o = t; o < C; o += WG) {
    let z = silu(dot(X0, w3 + o, C) + TAB[vec + 3u * C + o]);
    H[Y0 + o] = z;
    s += z;
  }
  let mean2 = reduce_sum(s, t) / f32(C);
  q = 0.0;
  for (var o = t; o < C; o += WG) {
    let d = H[Y0 + o] - mean2;
    q += d * d;
  }
  let rstd2 = 1.0 / sqrt(reduce_sum(q, t) / f32(C) + P.eps);
  for (var o = t; o < C; o += WG) {
    H[Y0 + o] = (H[Y0 + o] - mean2) * rstd2 * TAB[vec + 4u * C + o] + TAB[vec + 5u * C + o];
  }
  workgroupBarrier();

  // output_head: the logits, divided by the temperature for the draw.
  for (var v = t; v < V; v += WG) {
    let acc = dot(Y0, wo + v, V);
    if (DUMP_AT > 0u) {
      PRED[DUMP_AT + r * V + v] = bitcast<u32>(acc);
    }
    PR[v] = acc / P.temperature;
  }
  workgroupBarrier();

  let id = draw_row(pos, t);
  if (t == 0u) {
    if (id == NONE) {
      PRED[pos] = P.mask;
      atomicMin(&ERR[ERR_DRAW], pos);
    } else {
      PRED[pos] = id;
    }
  }
}
