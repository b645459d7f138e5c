// unmask.wgsl: one step of the unmask method for every row (docs/sampling.md
// "Method unmask"), one workgroup per row, after sample.wgsl's fill (PRED:
// a draw at every [MASK] position of TOK, the other tokens copied) and
// certain.wgsl (CERT: key, P1 and P1 - P2 of every [MASK] position).
// The row's state ST[4b ..] is (block, step in the block, steps taken).
// 1. Advance: blocks with no [MASK] in TOK are finished and skipped (a new
//    block starts at step 0); a row with no block left is done: nothing
//    changes (no step).
// 2. Early commit (Prophet, P.gap > 0): when every [MASK] position of the
//    row has P1 - P2 >= gap, every one of them takes its draw.
// 3. Otherwise, with m the [MASK] positions of the current block j (its
//    positions [t0, t1)) and left = LEFT[b·T + t0 + step] (the schedule's
//    positions left masked after this step, computed by the host:
//    step.StillMasked; a block takes at most t1 - t0 steps, as each commits
//    at least one position, so its steps fit in its positions' slots),
//    k = min(max(m - left, 1), m) positions take their draw: the k largest
//    keys (select.wgsl's exact radix select, ties to the lower position),
//    together with every one whose P1 >= tau when tau > 0 (Fast-dLLM).
//    Every other position keeps its token ([MASK] stays [MASK]).
// 4. step and steps count up; CNT[CNT_ROWS + b] = steps, and CNT[CNT_TOTAL]
//    counts the rows that still have a [MASK] (the host stops at 0).
// CPU twin: engine/sampler's unmask loop (step.EarlyCommit, CommitCount,
// SelectCommits), float64.

struct Params {
  T: u32,           // positions per row
  B: u32,           // rows
  mask: u32,        // the [MASK] id
  blocks: u32,      // nb >= 1
  block_len: u32,   // positions per block (T when nb = 1)
  pad0: u32,
  tau: f32,         // confidence threshold, 0: none
  gap: f32,         // early-commit gap, 0: none
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> PRED: array<u32>;               // (B, T) draws at [MASK] positions
@group(0) @binding(2) var<storage, read> CERT: array<f32>;               // (B·T, 3) key, P1, P1 - P2
@group(0) @binding(3) var<storage, read> LEFT: array<u32>;               // (B, T) schedule: block j's steps from its first position
@group(0) @binding(4) var<storage, read_write> KEYS: array<u32>;         // (B, T) scratch
@group(0) @binding(5) var<storage, read_write> TOK: array<u32>;          // (B, T) tokens: this step's input, the next step's input
@group(0) @binding(6) var<storage, read_write> ST: array<u32>;           // (B, 4) block, step, steps, unused
@group(0) @binding(7) var<storage, read_write> CNT: array<atomic<u32>>;  // [CNT_TOTAL] rows still masked, [CNT_ROWS + b] steps of row b

const WG: u32 = 256u;
const CNT_TOTAL: u32 = 0u;  // select.wgsl's counter layout (shaders.CountTotal, CountRows)
const CNT_ROWS: u32 = 4u;
// certain.wgsl's CERT layout (shaders.CertainWords, CertainKey, CertainP1, CertainGap).
const CERT_WORDS: u32 = 3u;
const CERT_KEY: u32 = 0u;
const CERT_P1: u32 = 1u;
const CERT_GAP: u32 = 2u;
const STATE_WORDS: u32 = 4u;  // ST's words per row (shaders.UnmaskStateWords)

var<workgroup> ACC: array<atomic<u32>, 2>;
var<workgroup> UNI: vec4<u32>;

// include: select.wgsl topk

// wg_sum2 adds the two counts of every thread; uniform result.
fn wg_sum2(a: u32, c: u32, t: u32) -> vec2<u32> {
  if (t == 0u) {
    atomicStore(&ACC[0], 0u);
    atomicStore(&ACC[1], 0u);
  }
  workgroupBarrier();
  atomicAdd(&ACC[0], a);
  atomicAdd(&ACC[1], c);
  workgroupBarrier();
  if (t == 0u) {
    UNI = vec4<u32>(atomicLoad(&ACC[0]), atomicLoad(&ACC[1]), 0u, 0u);
  }
  return workgroupUniformLoad(&UNI).xy;
}

// masked_in counts [MASK] tokens of TOK[base + lo .. base + hi) (uniform).
fn masked_in(base: u32, lo: u32, hi: u32, t: u32) -> u32 {
  let r = tk_range(hi - lo, t);
  var c = 0u;
  for (var i = r.x; i < r.y; i++) {
    c += select(0u, 1u, TOK[base + lo + i] == P.mask);
  }
  return wg_sum2(c, 0u, t).x;
}

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let b = wid.x + wid.y * nwg.x;
  if (b >= P.B) {
    return;
  }
  let T = P.T;
  let base = b * T;
  if (t == 0u) {
    UNI = vec4<u32>(ST[STATE_WORDS * b], ST[STATE_WORDS * b + 1u], ST[STATE_WORDS * b + 2u], 0u);
  }
  let st = workgroupUniformLoad(&UNI);
  var block = st.x;
  var stp = st.y;
  var steps = st.z;

  // 1. Advance past finished blocks.
  var m = 0u;
  loop {
    if (block >= P.blocks) {
      break;
    }
    let t0 = block * P.block_len;
    m = masked_in(base, t0, min(t0 + P.block_len, T), t);
    if (m > 0u) {
      break;
    }
    block++;
    stp = 0u;
  }
  if (block >= P.blocks) {  // done: no step
    if (t == 0u) {
      ST[STATE_WORDS * b] = block;
      ST[STATE_WORDS * b + 1u] = stp;
      atomicStore(&CNT[CNT_ROWS + b], steps);
    }
    return;
  }

  // 2. Prophet's test over every [MASK] position of the row.
  let rr = tk_range(T, t);
  var masked = 0u;
  var unsure = 0u;
  for (var i = rr.x; i < rr.y; i++) {
    let p = base + i;
    if (TOK[p] == P.mask) {
      masked++;
      if (!(CERT[CERT_WORDS * p + CERT_GAP] >= P.gap)) {
        unsure++;
      }
    }
  }
  let row = wg_sum2(masked, unsure, t);
  storageBarrier();  // step 2's reads of TOK before step 3's writes by other threads
  let early = P.gap > 0.0 && row.y == 0u;

  var committed = 0u;
  if (early) {
    for (var i = rr.x; i < rr.y; i++) {
      let p = base + i;
      if (TOK[p] == P.mask) {
        TOK[p] = PRED[p];
        committed++;
      }
    }
  } else {
    // 3. The schedule's k and the radix select over the block.
    let t0 = block * P.block_len;
    let len = min(t0 + P.block_len, T) - t0;
    let left = LEFT[base + t0 + min(stp, len - 1u)];
    var k = 1u;
    if (m > left) {
      k = m - left;
    }
    k = min(k, m);
    let seg = base + t0;
    let br = tk_range(len, t);
    for (var i = br.x; i < br.y; i++) {
      let p = seg + i;
      KEYS[p] = select(0u, f32_key(CERT[CERT_WORDS * p + CERT_KEY]), TOK[p] == P.mask);
    }
    tk_select(seg, len, k, t);
    for (var i = br.x; i < br.y; i++) {
      let p = seg + i;
      if (TOK[p] != P.mask) {
        continue;
      }
      if (KEYS[p] == 1u || (P.tau > 0.0 && CERT[CERT_WORDS * p + CERT_P1] >= P.tau)) {
        TOK[p] = PRED[p];
        committed++;
      }
    }
  }
  let c = wg_sum2(committed, 0u, t).x;

  // 4. The row's state and the counters.
  if (t == 0u) {
    ST[STATE_WORDS * b] = block;
    ST[STATE_WORDS * b + 1u] = stp + 1u;
    ST[STATE_WORDS * b + 2u] = steps + 1u;
    atomicStore(&CNT[CNT_ROWS + b], steps + 1u);
    if (row.x > c) {
      atomicAdd(&CNT[CNT_TOTAL], 1u);
    }
  }
}
