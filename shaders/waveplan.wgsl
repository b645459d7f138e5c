// waveplan.wgsl: plans every wave of one iteration's sampler-head fill
// (engine/sampler's wavefront()) at once, from the prediction's masks and
// the LM logits, so that the waves then run as a fixed chain of indirect
// dispatches with no host round trip. Three phases (P.phase):
//
// PHASE_PLAN, one workgroup per row (one for the whole batch with the
// global-bootstrap compat switch): the wave of every masked position.
// A wave takes every masked position with an unmasked neighbour in its row,
// so a masked position at distance d from the nearest unmasked position of
// its row is filled by wave d. A row with masks and no unmasked position is
// bootstrapped: FILL[n_masked] positions with the largest max-logit
// (rounded to 1/1024; ties: the lower position) are its seeds, filled at
// the wave c + 1 after the waves c already planned (per row: c = 0), and
// its other positions at c + 1 + their distance to the nearest seed. Per
// row the bootstrap happens only on the first wave; with global = 1 only
// when no row has an eligible position, i.e. after every row that had an
// unmasked position is done, and then among every remaining masked
// position of the batch (exact max-logit): the rows that got no seed wait
// for the next such round. all = 1 (zeros mode without the wave cap)
// puts every masked position in wave 1. With the wave cap (cap = 1) waves
// after the T-th are dropped: their positions stay masked. Out:
// KEYS[N + p] = the wave of p (0: none), KEYS[p] = p's rank within its wave
// (atomicAdd on WS[CNT + wave]), WS[W_MAX] = max(its value, the row's
// last wave).
//
// PHASE_SCAN, one workgroup: W = WS[W_MAX] waves; for every slot s <
// P.slots (wave s + 1) the record at WS[SLOT + 4s ..]: the wave's count n_s
// (0 past W), its first index off_s in LIST (exclusive prefix sum) and the
// workgroups that samplerwave.wgsl launches for the slots before it (its
// workgroups find their slot by ticket, so that every slot's dispatch is
// alike), and the workgroup count of its indirect dispatch at ARGS[3s ..]:
// samplerwave.wgsl, one workgroup per row, spread over x and y as
// engine/gpu's grid() does (n = 0 gives an empty dispatch). It then resets
// the wave counters and the tickets for the next iteration, adds min(W,
// slots) to WS[W_TOTAL], keeps W in WS[W_LAST] and, when W > P.slots (the
// host's bound was wrong), records the iteration + 1 in WS[W_OVER] (the
// host fails the generation at its next read).
//
// PHASE_LIST, one thread per position: LIST[off_w + rank] = p | flags for
// every position of wave w <= slots, so wave s + 1's positions are
// LIST[off_s .. off_s + n_s) & LIST_POS, in no particular order (what is
// drawn at a position does not depend on the order); the flags LIST_LEFT
// and LIST_RIGHT mark a left or right neighbour in the row that is in the
// same wave (samplerwave.wgsl treats it as masked).
//
// The neighbours' ids are not planned: samplerwave.wgsl reads them from the
// prediction when the wave runs, when exactly the earlier waves are filled.
// CPU twin: internal/step Wave.Plan and Wave.Bootstrap, applied wave after
// wave (engine/gpu's loop_kernels_test.go); the arguments: engine/gpu's
// grid() and the matmul workgroup counts.

struct Params {
  B: u32,
  T: u32,
  V: u32,
  mask: u32,
  phase: u32,       // PHASE_PLAN, PHASE_SCAN, PHASE_LIST
  global: u32,      // 1: global bootstrap (one workgroup)
  all: u32,         // 1: every masked position in wave 1
  cap: u32,         // 1: the wave cap (at most T waves)
  slots: u32,       // waves the host encoded (scan, list)
  iteration: u32,   // W_OVER's record
  maxd: u32,        // maxComputeWorkgroupsPerDimension
  pad0: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> PRED: array<u32>;              // (B, T)
@group(0) @binding(2) var<storage, read> LOGITS: array<f32>;            // (B, T, V) LM logits
@group(0) @binding(3) var<storage, read_write> KEYS: array<u32>;        // (2, B·T): keys and ranks, then waves
@group(0) @binding(4) var<storage, read_write> WS: array<atomic<u32>>;  // wave state (the W_* header, CNT, SLOT)
@group(0) @binding(5) var<storage, read> FILL: array<u32>;              // FILL[n] = max(1, floor(n · ratio)), from the host in float64
@group(0) @binding(6) var<storage, read_write> ARGS: array<u32>;        // (slots, 3) indirect dispatch arguments
@group(0) @binding(7) var<storage, read_write> LIST: array<u32>;        // (B·T) positions by wave; scratch while planning

const WG: u32 = 256u;
const NONE: u32 = 0xffffffffu;
// Phases of P.phase (shaders.WavePlan, WaveScan, WaveList).
const PHASE_PLAN: u32 = 0u;
const PHASE_SCAN: u32 = 1u;
const PHASE_LIST: u32 = 2u;
// WS's words (shaders.WaveWMax ...): the header, then CNT[w] at WS_CNT + w
// (w = 1 .. B·T), then the slots at WS_CNT + B·T + 1 (shaders.WaveSlotAt).
const W_MAX: u32 = 0u;    // this iteration's last wave, reset by the scan
const W_TOTAL: u32 = 1u;  // waves run so far
const W_OVER: u32 = 2u;   // 0, or 1 + the first iteration whose waves exceeded the slots
const W_LAST: u32 = 3u;   // the latest iteration's wave count
const W_TICKET: u32 = 4u; // samplerwave.wgsl's workgroup tickets
const WS_CNT: u32 = 8u;    // (words 5 to 7 are unused)
const SLOT_WORDS: u32 = 4u;  // per slot: count, first, workgroups before, unused
// LIST's flags (samplerwave.wgsl's, shaders.WaveList*).
const LIST_LEFT: u32 = 0x80000000u;
const LIST_RIGHT: u32 = 0x40000000u;

// include: select.wgsl topk

var<workgroup> W_ACC: array<atomic<u32>, 2>;
var<workgroup> W_U: vec2<u32>;
var<workgroup> W_LO: array<u32, WG>;  // per thread: the last source position of its chunk (NONE: none)
var<workgroup> W_HI: array<u32, WG>;  // per thread: the first source position of its chunk

fn is_masked(p: u32) -> bool {
  return PRED[p] == P.mask;
}

// boot_key is the bootstrap confidence of a masked position: the raw max
// logit rounded to 1/1024, as an order-preserving key; with the
// global-bootstrap compat switch the exact max logit, as the reference ranks.
fn boot_key(p: u32) -> u32 {
  let base = p * P.V;
  var m = bitcast<f32>(0xff7fffffu);
  for (var i = 0u; i < P.V; i++) {
    m = max(m, LOGITS[base + i]);
  }
  if (P.global == 1u) {
    return f32_key(m);
  }
  // Go's math.Round: halves away from zero (WGSL's round() goes to even),
  // exactly: a - floor(a) is exact in f32, while floor(a + 0.5) is not
  // (0.49999997 + 0.5 rounds up to 1).
  let a = abs(m) * 1024.0;
  var r = floor(a);
  if (a - r >= 0.5) {
    r += 1.0;
  }
  return f32_key(sign(m) * r / 1024.0);
}

// wave_of reads the planned wave of p (0: none yet).
fn wave_of(p: u32, N: u32) -> u32 {
  return KEYS[N + p];
}

// is_source: unmasked (seeds = 0) or a seed of the current bootstrap.
fn is_source(p: u32, seeds: bool) -> bool {
  if (seeds) {
    return KEYS[p] == 1u;
  }
  return !is_masked(p);
}

// workgroup sum and max of per-thread values (uniform results).
fn wg_sum_max(s: u32, m: u32, t: u32) -> vec2<u32> {
  if (t < 2u) {
    atomicStore(&W_ACC[t], 0u);
  }
  workgroupBarrier();
  atomicAdd(&W_ACC[0], s);
  atomicMax(&W_ACC[1], m);
  workgroupBarrier();
  if (t == 0u) {
    W_U = vec2<u32>(atomicLoad(&W_ACC[0]), atomicLoad(&W_ACC[1]));
  }
  return workgroupUniformLoad(&W_U);
}

// assign gives every masked position of the segment without a wave that
// has a source in its row the wave c + d, d = its distance to the nearest
// source (a source itself: c + 1, seeds only), and returns the segment's
// (positions still without a wave, largest wave given). LIST holds each
// position's nearest source at or before it (scratch).
fn assign(base: u32, len: u32, c: u32, seeds: bool, t: u32) -> vec2<u32> {
  let N = P.B * P.T;
  let r = tk_range(len, t);
  var lo = NONE;
  var hi = NONE;
  for (var i = r.x; i < r.y; i++) {
    let p = base + i;
    if (is_source(p, seeds)) {
      lo = p;
      if (hi == NONE) {
        hi = p;
      }
    }
  }
  W_LO[t] = lo;
  W_HI[t] = hi;
  workgroupBarrier();
  var left = NONE;
  for (var j = 0u; j < t; j++) {
    if (W_LO[j] != NONE) {
      left = W_LO[j];
    }
  }
  var right = NONE;
  for (var j = WG; j > t + 1u; j--) {
    if (W_HI[j - 1u] != NONE) {
      right = W_HI[j - 1u];
    }
  }
  workgroupBarrier();  // W_LO and W_HI are read before the next call writes them
  for (var i = r.x; i < r.y; i++) {
    let p = base + i;
    if (is_source(p, seeds)) {
      left = p;
    }
    LIST[p] = left;
  }
  var waiting = 0u;
  var top = 0u;
  for (var i = r.y; i > r.x; i--) {
    let p = base + i - 1u;
    if (is_source(p, seeds)) {
      right = p;
    }
    if (!is_masked(p) || wave_of(p, N) != 0u) {
      continue;
    }
    let row0 = p - p % P.T;
    let l = LIST[p];
    var d = NONE;
    if (l != NONE && l >= row0) {
      d = p - l;
    }
    if (right != NONE && right < row0 + P.T) {
      d = min(d, right - p);
    }
    if (d == NONE) {
      waiting++;
      continue;
    }
    var w = c + d;
    if (seeds) {
      w += 1u;
    }
    KEYS[N + p] = w;
    top = max(top, w);
  }
  return vec2<u32>(waiting, top);
}

fn plan(seg: u32, t: u32) {
  let N = P.B * P.T;
  var base = seg * P.T;
  var len = P.T;
  if (P.global == 1u) {
    base = 0u;
    len = N;
  }
  let r = tk_range(len, t);
  for (var i = r.x; i < r.y; i++) {
    let p = base + i;
    KEYS[N + p] = select(0u, 1u, P.all == 1u && is_masked(p));
  }
  var c = 0u;
  if (P.all == 0u) {
    // Waves from the unmasked positions.
    let a = assign(base, len, 0u, false, t);
    let u0 = wg_sum_max(a.x, a.y, t);
    var waiting = u0.x;
    c = u0.y;
    // Bootstrap rounds (per row: at most one).
    loop {
      if (waiting == 0u) {
        break;
      }
      let fill = FILL[waiting];
      for (var i = r.x; i < r.y; i++) {
        let p = base + i;
        var key = 0u;
        if (is_masked(p) && wave_of(p, N) == 0u) {
          key = boot_key(p);
        }
        KEYS[p] = key;
      }
      tk_select(base, len, fill, t);
      let b = assign(base, len, c, true, t);
      let u = wg_sum_max(b.x, b.y, t);
      waiting = u.x;
      c = max(c, u.y);
    }
  }
  // Ranks within each wave; the wave cap drops the waves after the T-th.
  var top = 0u;
  for (var i = r.x; i < r.y; i++) {
    let p = base + i;
    var w = KEYS[N + p];
    if (P.cap == 1u && w > P.T) {
      w = 0u;
      KEYS[N + p] = 0u;
    }
    if (w > 0u) {
      KEYS[p] = atomicAdd(&WS[WS_CNT + w], 1u);
      top = max(top, w);
    }
  }
  atomicMax(&WS[W_MAX], top);
}

fn put(s: u32, x: u32, y: u32) {
  let o = 3u * s;
  ARGS[o] = x;
  ARGS[o + 1u] = y;
  ARGS[o + 2u] = 1u;
}

// grid writes engine/gpu's grid() of n workgroups as slot s's arguments and
// returns how many it launches (x·y).
fn grid(s: u32, n: u32) -> u32 {
  if (n <= P.maxd) {
    put(s, n, 1u);
    return n;
  }
  let y = (n + P.maxd - 1u) / P.maxd;
  let x = (n + y - 1u) / y;
  put(s, x, y);
  return x * y;
}

fn launched(n: u32) -> u32 {
  if (n <= P.maxd) {
    return n;
  }
  let y = (n + P.maxd - 1u) / P.maxd;
  return ((n + y - 1u) / y) * y;
}

fn scan(t: u32) {
  let N = P.B * P.T;
  let slot0 = WS_CNT + N + 1u;
  let W = atomicLoad(&WS[W_MAX]);
  let S = P.slots;
  let len = max(S, W);
  let r = tk_range(len, t);
  var sum = 0u;
  var wgs = 0u;
  for (var s = r.x; s < r.y; s++) {
    if (s < S && s < W) {
      let n = atomicLoad(&WS[WS_CNT + s + 1u]);
      sum += n;
      wgs += launched(n);
    }
  }
  TK_PART[t] = sum;
  W_LO[t] = wgs;
  workgroupBarrier();
  var off = 0u;
  var before = 0u;
  for (var j = 0u; j < t; j++) {
    off += TK_PART[j];
    before += W_LO[j];
  }
  for (var s = r.x; s < r.y; s++) {
    var n = 0u;
    if (s < W) {
      n = atomicLoad(&WS[WS_CNT + s + 1u]);
      atomicStore(&WS[WS_CNT + s + 1u], 0u);
    }
    if (s < S) {
      let rec = slot0 + SLOT_WORDS * s;
      atomicStore(&WS[rec], n);
      atomicStore(&WS[rec + 1u], off);
      atomicStore(&WS[rec + 2u], before);
      off += n;
      before += grid(s, n);
    }
  }
  workgroupBarrier();
  if (t == 0u) {
    atomicStore(&WS[W_MAX], 0u);
    atomicStore(&WS[W_TICKET], 0u);
    atomicStore(&WS[W_LAST], W);
    atomicAdd(&WS[W_TOTAL], min(W, S));
    if (W > S && atomicLoad(&WS[W_OVER]) == 0u) {
      atomicStore(&WS[W_OVER], P.iteration + 1u);
    }
  }
}

fn list(p: u32) {
  let N = P.B * P.T;
  if (p >= N) {
    return;
  }
  let w = KEYS[N + p];
  if (w == 0u || w > P.slots) {
    return;
  }
  let slot0 = WS_CNT + N + 1u;
  let t = p % P.T;
  var e = p;
  if (t > 0u && KEYS[N + p - 1u] == w) {
    e |= LIST_LEFT;
  }
  if (t + 1u < P.T && KEYS[N + p + 1u] == w) {
    e |= LIST_RIGHT;
  }
  LIST[atomicLoad(&WS[slot0 + SLOT_WORDS * (w - 1u) + 1u]) + KEYS[p]] = e;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let g = wid.x + wid.y * nwg.x;
  switch P.phase {
    case PHASE_PLAN: {
      if (g < P.B && (P.global == 0u || g == 0u)) {
        plan(g, t);
      }
    }
    case PHASE_SCAN: {
      if (g == 0u) {
        scan(t);
      }
    }
    default: {
      list(g * WG + t);
    }
  }
}
