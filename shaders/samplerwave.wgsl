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
// holds the per-model tables (engine/gpu's samplerTables, which also sets
// the params w3_at, wo_at and vec_at): LR = (wte · W0[:, 0:C]ᵀ, wte ·
// W0[:, 2C:3C]ᵀ) per token id, W3ᵀ and WOᵀ (transposed, each row padded
// with zeros to a multiple of 4 floats and 16-byte aligned, so that 4
// consecutive outputs are one vec4 load) and the vectors b0, LN1 weight and
// bias, b3, LN2 weight and bias (zeros where the model has no bias). The
// weights come from global memory (L2: every workgroup of every wave reads
// the same tables). A wave has a few workgroups on a GPU of a hundred
// cores, so its time is the latency of those loads, and what bounds it is
// the bytes a workgroup keeps in flight: each of the two matrix-vector
// products (mlp.3: C x C, the output head: V x C) gives every thread a
// quad of 4 consecutive outputs and a chunk of the inputs (split: as many
// chunks of a multiple of BATCH inputs as the WG threads allow; C = 384:
// 96 quads x 2 chunks of 192 for mlp.3, 17 quads x 12 chunks of 32 for V =
// 67), 16 vec4 loads in flight per thread (part), and the chunks' partial
// sums meet in workgroup memory, added in ascending chunk order
// (sum_parts): deterministic, but not the matmul kernels' single
// ascending sum, so the logits match the CPU twin within a tolerance (the
// kernel tests: 1e-4). The LayerNorms are layernorm.wgsl's formula (mean,
// then the centred sum of squares; the sums by the draw block's
// reductions), on vectors each thread loads into registers before the
// wave is known.
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
// serves them all): a workgroup takes a ticket and finds its wave as the
// slot whose earlier slots launched at most that many workgroups and whose
// successor's more (slot record: n, off, workgroups before), every thread
// testing a few records at once (wave). A slot past the planned waves is a
// dispatch of zero workgroups. With direct = 1 (Options.WaveDispatch
// "direct") each slot is instead a direct dispatch of the batch's B·T
// workgroups with its own params (slot), and runs that slot's wave: through
// Dawn an indirect dispatch costs far more than a direct one (measured:
// docs/gpu.md, "The sampler-head waves").
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
  w3_at: u32,       // TAB's W3ᵀ, in floats (a multiple of 4)
  wo_at: u32,       // TAB's WOᵀ, in floats (a multiple of 4)
  vec_at: u32,      // TAB's vectors, in floats
  slot: u32,        // direct: this dispatch's slot
  direct: u32,      // 1: a direct dispatch of a fixed grid runs slot's wave; 0: indirect, the wave by ticket
  pad0: u32,
  pad1: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> LIST: array<u32>;              // positions by wave, with the LIST_* flags
@group(0) @binding(2) var<storage, read_write> WS: array<atomic<u32>>;  // waveplan.wgsl's wave state
@group(0) @binding(3) var<storage, read> HW: array<f32>;                // (B·T, C)
@group(0) @binding(4) var<storage, read> TAB: array<vec4<f32>>;         // LR (2V, C), W3ᵀ (C, 4·ceil(C/4)), WOᵀ (C, 4·ceil(V/4)), VEC (6, C)
@group(0) @binding(5) var<storage, read_write> PRED: array<u32>;        // (B, T) the prediction
@group(0) @binding(6) var<storage, read> EXCL: array<u32>;              // ceil(V/32) words, bit i%32 of word i/32 = id i excluded
@group(0) @binding(7) var<storage, read_write> ERR: array<atomic<u32>>; // [ERR_DRAW]: smallest failed position

const WG: u32 = 256u;
const MAXC: u32 = 1024u;   // a multiple of WG, at least 4·WG (matvec's partial sums)
const PER: u32 = MAXC / WG;  // the most elements of a C-vector one thread holds
const MAXV: u32 = 1024u;   // at most 32·WG (the draw's keep mask is one u32), at most MAXC
const BATCH: u32 = 16u;    // rows of a table that part loads before it sums them
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

var<workgroup> H: array<f32, HLEN>;  // y1, then y2, at X0; matvec's partial sums at Y0
var<workgroup> PR: array<f32, MAXV>;  // the logits / temperature, then probabilities
var<workgroup> RED: array<f32, WG>;   // reductions and the scan
var<workgroup> PICK: atomic<u32>;     // first id whose cumulative mass exceeds the target
var<workgroup> LAST: atomic<u32>;     // 1 + the last id with mass, 0 if none
var<workgroup> TICKET: u32;           // the workgroup's ticket
var<workgroup> WAVE: vec2<u32>;       // the workgroup's wave: (n, off)

// include: rng.wgsl philox

// include: sample.wgsl draw

// wave finds the wave of ticket k, in one round of independent loads:
// thread t tests the slot records s = t, t + WG, ...; slot s is the wave
// when its workgroups before are <= k and the next slot's are > k (the
// records' workgroups before ascend; an empty slot launches none, so its
// successor has the same count and it never matches). The one match
// writes WAVE; every invocation calls it in uniform control flow and gets
// (n, off), (0, 0) if no slot matched.
fn wave(k: u32, t: u32) -> vec2<u32> {
  for (var s = t; s < P.slots; s += WG) {
    let rec = P.slot_at + SLOT_WORDS * s;
    let n = atomicLoad(&WS[rec]);
    let off = atomicLoad(&WS[rec + 1u]);
    let before = atomicLoad(&WS[rec + 2u]);
    var next = NONE;
    if (s + 1u < P.slots) {
      next = atomicLoad(&WS[rec + SLOT_WORDS + 2u]);
    }
    if (before <= k && k < next) {
      WAVE = vec2<u32>(n, off);
    }
  }
  return workgroupUniformLoad(&WAVE);
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

// tab is TAB's float i.
fn tab(i: u32) -> f32 {
  return TAB[i >> 2u][i & 3u];
}

// Split is how a matrix-vector product of C inputs and `outs` outputs
// spreads over the workgroup: quads of 4 consecutive outputs (q = ceil(outs
// / 4) of them) times chunks of `len` consecutive inputs (a multiple of
// BATCH, the loads part keeps in flight), as many chunks as fit into WG
// threads (at least one, and none empty: chunks = ceil(C / len)). Thread t
// works on quad t % q and chunk t / q (matvec).
struct Split {
  q: u32,
  len: u32,
  chunks: u32,
}

fn split(outs: u32) -> Split {
  let C = P.C;
  let q = (outs + 3u) / 4u;  // <= WG at the default WG (outs <= MAXC, MAXV)
  let k = max(WG / q, 1u);
  let len = ((C + k - 1u) / k + BATCH - 1u) / BATCH * BATCH;
  return Split(q, len, (C + len - 1u) / len);
}

// part is sum over c in [lo, hi) of H[x + c] · TAB[w + c·n] (n vec4 per row
// of the table, so that a quad of outputs is one 16-byte load), in
// ascending c. BATCH = 16 rows are loaded before they are summed (the
// last batch loads row hi - 1 in place of the rows past hi and skips
// them), so that a thread keeps 16 loads (256 bytes) in flight: a wave of
// a few workgroups is bound by the latency of its loads from L2.
fn part(x: u32, w: u32, n: u32, lo: u32, hi: u32) -> vec4<f32> {
  var acc = vec4<f32>(0.0);
  let e = hi - 1u;
  for (var c = lo; c < hi; c += BATCH) {
    let a0 = TAB[w + c * n];
    let a1 = TAB[w + min(c + 1u, e) * n];
    let a2 = TAB[w + min(c + 2u, e) * n];
    let a3 = TAB[w + min(c + 3u, e) * n];
    let a4 = TAB[w + min(c + 4u, e) * n];
    let a5 = TAB[w + min(c + 5u, e) * n];
    let a6 = TAB[w + min(c + 6u, e) * n];
    let a7 = TAB[w + min(c + 7u, e) * n];
    let a8 = TAB[w + min(c + 8u, e) * n];
    let a9 = TAB[w + min(c + 9u, e) * n];
    let a10 = TAB[w + min(c + 10u, e) * n];
    let a11 = TAB[w + min(c + 11u, e) * n];
    let a12 = TAB[w + min(c + 12u, e) * n];
    let a13 = TAB[w + min(c + 13u, e) * n];
    let a14 = TAB[w + min(c + 14u, e) * n];
    let a15 = TAB[w + min(c + 15u, e) * n];
    let i = x + c;
    acc += H[i] * a0;
    if (c + 1u < hi) {
      acc += H[i + 1u] * a1;
    }
    if (c + 2u < hi) {
      acc += H[i + 2u] * a2;
    }
    if (c + 3u < hi) {
      acc += H[i + 3u] * a3;
    }
    if (c + 4u < hi) {
      acc += H[i + 4u] * a4;
    }
    if (c + 5u < hi) {
      acc += H[i + 5u] * a5;
    }
    if (c + 6u < hi) {
      acc += H[i + 6u] * a6;
    }
    if (c + 7u < hi) {
      acc += H[i + 7u] * a7;
    }
    if (c + 8u < hi) {
      acc += H[i + 8u] * a8;
    }
    if (c + 9u < hi) {
      acc += H[i + 9u] * a9;
    }
    if (c + 10u < hi) {
      acc += H[i + 10u] * a10;
    }
    if (c + 11u < hi) {
      acc += H[i + 11u] * a11;
    }
    if (c + 12u < hi) {
      acc += H[i + 12u] * a12;
    }
    if (c + 13u < hi) {
      acc += H[i + 13u] * a13;
    }
    if (c + 14u < hi) {
      acc += H[i + 14u] * a14;
    }
    if (c + 15u < hi) {
      acc += H[i + 15u] * a15;
    }
  }
  return acc;
}

// matvec stores the partial sums of the product of y = H[X0 ..) with the
// table at w (vec4 index; sp.q vec4 per row) in H[Y0 ..): item j = k·sp.q
// + q (thread j, and j + WG, ... where WG < sp.q), chunk k's partial sums
// of the outputs 4q .. 4q + 3, at H[Y0 + 4j ..] (at most 4·max(WG, MAXC /
// 4, MAXV / 4) floats: MAXC >= 4·WG, MAXV), which sum_parts adds up. Every
// invocation calls it in uniform control flow; the partial sums are
// complete when it returns.
fn matvec(w: u32, sp: Split, t: u32) {
  for (var j = t; j < sp.chunks * sp.q; j += WG) {
    let lo = (j / sp.q) * sp.len;
    let v = part(X0, w + j % sp.q, sp.q, lo, min(lo + sp.len, P.C));
    let i = Y0 + 4u * j;
    H[i] = v.x;
    H[i + 1u] = v.y;
    H[i + 2u] = v.z;
    H[i + 3u] = v.w;
  }
  workgroupBarrier();
}

// sum_parts is output o of the product matvec stored: its chunks' partial
// sums in ascending chunk order.
fn sum_parts(o: u32, sp: Split) -> f32 {
  let i = Y0 + o;  // chunk 0's: 4·(o / 4) + o % 4
  var acc = H[i];
  for (var k = 1u; k < sp.chunks; k++) {
    acc += H[i + 4u * k * sp.q];
  }
  return acc;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) t: u32) {
  let r = wg.x + wg.y * nwg.x;
  let C = P.C;
  let V = P.V;
  let vec = P.vec_at;
  // The thread's elements c = t + i·WG (i < PER) of the vectors, loaded
  // before the wave is known, so that their loads overlap the ticket's and
  // the wave's instead of costing a round trip each where they are used.
  var b0: array<f32, PER>;
  var g1: array<f32, PER>;
  var e1: array<f32, PER>;
  var b3: array<f32, PER>;
  var g2: array<f32, PER>;
  var e2: array<f32, PER>;
  for (var i = 0u; i < PER; i++) {
    let c = t + i * WG;
    if (c < C) {
      b0[i] = tab(vec + c);
      g1[i] = tab(vec + C + c);
      e1[i] = tab(vec + 2u * C + c);
      b3[i] = tab(vec + 3u * C + c);
      g2[i] = tab(vec + 4u * C + c);
      e2[i] = tab(vec + 5u * C + c);
    }
  }
  var w: vec2<u32>;
  if (P.direct == 1u) {
    // A direct dispatch (engine/gpu's Options.WaveDispatch "direct"): slot
    // P.slot's wave, on a grid of the batch's positions; the workgroups
    // past the wave's n return at once.
    if (t == 0u) {
      let rec = P.slot_at + SLOT_WORDS * P.slot;
      WAVE = vec2<u32>(atomicLoad(&WS[rec]), atomicLoad(&WS[rec + 1u]));
    }
    w = workgroupUniformLoad(&WAVE);
  } else {
    if (t == 0u) {
      TICKET = atomicAdd(&WS[W_TICKET], 1u);
      WAVE = vec2<u32>(0u, 0u);
    }
    w = wave(workgroupUniformLoad(&TICKET), t);
  }
  if (r >= w.x) {
    return;
  }
  let lr = 0u;
  let e = LIST[w.y + r];
  let pos = e & LIST_POS;
  var z: array<f32, PER>;  // the thread's elements of the vector at hand
  for (var i = 0u; i < PER; i++) {
    let c = t + i * WG;
    if (c < C) {
      z[i] = HW[pos * C + c];
    }
  }
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
  for (var i = 0u; i < PER; i++) {
    let c = t + i * WG;
    if (c < C) {
      var y = z[i];
      if (left != NONE) {
        y += tab(lr + left * C + c);
      }
      if (right != NONE) {
        y += tab(lr + (V + right) * C + c);
      }
      z[i] = silu(y + b0[i]);
      s += z[i];
    }
  }
  let mean1 = reduce_sum(s, t) / f32(C);
  var q = 0.0;
  for (var i = 0u; i < PER; i++) {
    if (t + i * WG < C) {
      let d = z[i] - mean1;
      q += d * d;
    }
  }
  let rstd1 = 1.0 / sqrt(reduce_sum(q, t) / f32(C) + P.eps);
  for (var i = 0u; i < PER; i++) {
    let c = t + i * WG;
    if (c < C) {
      H[X0 + c] = (z[i] - mean1) * rstd1 * g1[i] + e1[i];
    }
  }
  workgroupBarrier();

  // mlp.3-5: y2 = LN2(SiLU(W3 · y1 + b3)), in place of y1 (spent once
  // matvec returns).
  let s3 = split(C);
  matvec(P.w3_at / 4u, s3, t);
  s = 0.0;
  for (var i = 0u; i < PER; i++) {
    let o = t + i * WG;
    if (o < C) {
      z[i] = silu(sum_parts(o, s3) + b3[i]);
      s += z[i];
    }
  }
  let mean2 = reduce_sum(s, t) / f32(C);
  q = 0.0;
  for (var i = 0u; i < PER; i++) {
    if (t + i * WG < C) {
      let d = z[i] - mean2;
      q += d * d;
    }
  }
  let rstd2 = 1.0 / sqrt(reduce_sum(q, t) / f32(C) + P.eps);
  for (var i = 0u; i < PER; i++) {
    let o = t + i * WG;
    if (o < C) {
      H[X0 + o] = (z[i] - mean2) * rstd2 * g2[i] + e2[i];
    }
  }
  workgroupBarrier();

  // output_head: the logits, divided by the temperature for the draw.
  let so = split(V);
  matvec(P.wo_at / 4u, so, t);
  for (var v = t; v < V; v += WG) {
    let acc = sum_parts(v, so);
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
