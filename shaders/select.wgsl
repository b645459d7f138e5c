// select.wgsl: the per-row remask selection of the host loop's remask,
// one workgroup per row, and the next iteration's input. A candidate is a
// position whose prediction is not [MASK] and that is not protected.
// Ratio mode: the k = min(k, candidates) candidates with the largest score
// (SW[p]), ties to the lower position (step.Selection.Select's stable sort), found
// by an exact radix select on order-preserving u32 keys (four 8-bit passes of
// a 256-bin histogram). Threshold mode: every candidate whose wrongness
// (SW[N + p]) is strictly greater than thr. Selected positions become [MASK]
// in TOK, every other position takes the prediction. CNT gets the number
// selected (total [0], per row [4 + b]) and the smallest wrongness among the
// selected ([1], as an order-preserving key; NaN wrongness is skipped).
// ERR[1] gets the smallest flat position p of a candidate whose value is
// not finite (ratio mode: its score SW[p]; threshold mode: its score or its
// wrongness SW[N + p]): damaged critic or remasking-model weights. The
// selection still runs; the host reads ERR with its next read and fails.
// CPU twin: internal/step Selection.Select (float64).

struct Params {
  T: u32,          // positions per row
  B: u32,          // rows
  k: u32,          // ratio mode: positions to select per row
  threshold: u32,  // SELECT_RATIO or SELECT_THRESHOLD
  thr: f32,        // threshold mode: select wrongness > thr
  mask: u32,       // the [MASK] id
  pad0: u32,
  pad1: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> PRED: array<u32>;               // (B, T) prediction
@group(0) @binding(2) var<storage, read> PROT: array<u32>;               // (B, T) 1 = protected
@group(0) @binding(3) var<storage, read> SW: array<f32>;                 // score (B·T), then wrongness (B·T)
@group(0) @binding(4) var<storage, read_write> KEYS: array<u32>;         // (B, T) scratch
@group(0) @binding(5) var<storage, read_write> TOK: array<u32>;          // (B, T) next input
@group(0) @binding(6) var<storage, read_write> CNT: array<atomic<u32>>;  // [0] total, [1] min wrongness key, [4 + b] per row
@group(0) @binding(7) var<storage, read_write> ERR: array<atomic<u32>>;  // [1]: smallest position with a non-finite value (sample.wgsl owns [0])

const WG: u32 = 256u;

// Modes of P.threshold (shaders.SelectRatio, SelectThreshold).
const SELECT_RATIO: u32 = 0u;
const SELECT_THRESHOLD: u32 = 1u;
// CNT's words (engine/gpu's cntWords = CNT_ROWS): the total selected, the
// smallest selected wrongness's key, two unused, then one count per row.
const CNT_TOTAL: u32 = 0u;
const CNT_MIN_WRONG: u32 = 1u;
const CNT_ROWS: u32 = 4u;
const NONE: u32 = 0xffffffffu;  // CNT_MIN_WRONG before any selection, ERR[ERR_SCORE] before a failure (shaders.NoID)
// ERR's word for a non-finite score or wrongness (shaders.ErrScore).
const ERR_SCORE: u32 = 1u;

// topk begin
// Selection on u32 keys for one workgroup of WG = 256 threads over a
// segment KEYS[base .. base + len): thread t owns the contiguous positions
// [t·ch, t·ch + ch), ch = ceil(len / WG), and only ever reads and writes
// those, so no storage barrier is needed. Key 0 marks a non-candidate.
var<workgroup> TK_HIST: array<atomic<u32>, 256>;
var<workgroup> TK_PART: array<u32, WG>;
var<workgroup> TK_U: vec2<u32>;

// f32_key maps x to a u32 that orders like x (larger x, larger key), >= 1;
// -0 and +0 get the same key (they compare equal, so ties go by position).
fn f32_key(x: f32) -> u32 {
  var b = bitcast<u32>(x);
  if (b == 0x80000000u) {
    b = 0u;
  }
  var k = b | 0x80000000u;
  if ((b & 0x80000000u) != 0u) {
    k = ~b;
  }
  return max(k, 1u);
}

// key_f32 inverts f32_key.
fn key_f32(k: u32) -> f32 {
  if ((k & 0x80000000u) != 0u) {
    return bitcast<f32>(k & 0x7fffffffu);
  }
  return bitcast<f32>(~k);
}

// finite: x is neither NaN nor ±Inf (exponent bits not all ones).
fn finite(x: f32) -> bool {
  return (bitcast<u32>(x) & 0x7f800000u) != 0x7f800000u;
}

fn tk_range(len: u32, t: u32) -> vec2<u32> {
  let ch = (len + WG - 1u) / WG;
  let lo = min(t * ch, len);
  return vec2<u32>(lo, min(lo + ch, len));
}

// tk_count is the number of candidates (keys != 0) of the segment.
fn tk_count(base: u32, len: u32, t: u32) -> u32 {
  let r = tk_range(len, t);
  var c = 0u;
  for (var i = r.x; i < r.y; i++) {
    if (KEYS[base + i] != 0u) {
      c++;
    }
  }
  atomicStore(&TK_HIST[t], 0u);
  workgroupBarrier();
  atomicAdd(&TK_HIST[0], c);
  workgroupBarrier();
  if (t == 0u) {
    TK_U = vec2<u32>(atomicLoad(&TK_HIST[0]), 0u);
  }
  return workgroupUniformLoad(&TK_U).x;
}

// tk_kth finds the rank-th largest candidate key (1 <= rank <= candidates):
// it returns (that key, how many candidates equal to it are within the
// rank largest).
fn tk_kth(base: u32, len: u32, rank0: u32, t: u32) -> vec2<u32> {
  let r = tk_range(len, t);
  var prefix = 0u;
  var pmask = 0u;
  var rank = rank0;
  for (var d = 0u; d < 4u; d++) {
    let shift = 24u - 8u * d;
    atomicStore(&TK_HIST[t], 0u);
    workgroupBarrier();
    for (var i = r.x; i < r.y; i++) {
      let key = KEYS[base + i];
      if (key != 0u && (key & pmask) == prefix) {
        atomicAdd(&TK_HIST[(key >> shift) & 255u], 1u);
      }
    }
    workgroupBarrier();
    if (t == 0u) {
      var cum = 0u;
      var found = vec2<u32>(0u, rank);
      for (var b = 256u; b > 0u; b--) {
        let h = atomicLoad(&TK_HIST[b - 1u]);
        if (cum + h >= rank) {
          found = vec2<u32>(b - 1u, rank - cum);
          break;
        }
        cum += h;
      }
      TK_U = found;
    }
    let f = workgroupUniformLoad(&TK_U);
    prefix |= f.x << shift;
    pmask |= 255u << shift;
    rank = f.y;
  }
  return vec2<u32>(prefix, rank);
}

// tk_select overwrites the segment's keys with 1 for the k largest
// candidates (ties: the lower position) and 0 for every other position.
fn tk_select(base: u32, len: u32, k: u32, t: u32) {
  let n = tk_count(base, len, t);
  let r = tk_range(len, t);
  if (k >= n) {  // every candidate
    for (var i = r.x; i < r.y; i++) {
      KEYS[base + i] = select(0u, 1u, KEYS[base + i] != 0u);
    }
    return;
  }
  if (k == 0u) {
    for (var i = r.x; i < r.y; i++) {
      KEYS[base + i] = 0u;
    }
    return;
  }
  let kth = tk_kth(base, len, k, t);
  // Equal keys: the first kth.y of them in position order are in.
  var eq = 0u;
  for (var i = r.x; i < r.y; i++) {
    if (KEYS[base + i] == kth.x) {
      eq++;
    }
  }
  TK_PART[t] = eq;
  workgroupBarrier();
  var before = 0u;
  for (var j = 0u; j < t; j++) {
    before += TK_PART[j];
  }
  for (var i = r.x; i < r.y; i++) {
    let key = KEYS[base + i];
    var sel = key > kth.x;
    if (key == kth.x) {
      sel = before < kth.y;
      before++;
    }
    KEYS[base + i] = select(0u, 1u, sel);
  }
}
// topk end

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let b = wid.x + wid.y * nwg.x;
  if (b >= P.B) {
    return;
  }
  let T = P.T;
  let N = P.B * T;
  let base = b * T;
  let r = tk_range(T, t);
  var bad = NONE;
  for (var i = r.x; i < r.y; i++) {
    let p = base + i;
    let cand = PRED[p] != P.mask && PROT[p] == 0u;
    var key = 0u;
    if (cand) {
      var ok = finite(SW[p]);
      if (P.threshold == SELECT_THRESHOLD) {
        ok = ok && finite(SW[N + p]);
        key = select(0u, 1u, SW[N + p] > P.thr);
      } else {
        key = f32_key(SW[p]);
      }
      if (!ok) {
        bad = min(bad, p);
      }
    }
    KEYS[p] = key;
  }
  if (bad != NONE) {
    atomicMin(&ERR[ERR_SCORE], bad);
  }
  if (P.threshold == SELECT_THRESHOLD) {
    let n = tk_count(base, T, t);
    tk_select(base, T, n, t);
  } else {
    tk_select(base, T, P.k, t);
  }
  var count = 0u;
  var minw = NONE;
  for (var i = r.x; i < r.y; i++) {
    let p = base + i;
    if (KEYS[p] == 1u) {
      TOK[p] = P.mask;
      count++;
      let w = SW[N + p];
      if ((bitcast<u32>(w) & 0x7fffffffu) <= 0x7f800000u) {  // not NaN
        minw = min(minw, f32_key(w));
      }
    } else {
      TOK[p] = PRED[p];
    }
  }
  if (count > 0u) {
    atomicAdd(&CNT[CNT_TOTAL], count);
    atomicAdd(&CNT[CNT_ROWS + b], count);
    atomicMin(&CNT[CNT_MIN_WRONG], minw);
  }
}
