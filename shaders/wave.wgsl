// wave.wgsl: plans one wave of engine/sampler's wavefront(), one workgroup
// per row (or one workgroup for the whole batch with the global-bootstrap
// compat switch). A wave takes every masked position with an unmasked left
// or right neighbour in its row; a row with masks but no such position is
// bootstrapped: its n_fill = FILL[n_masked] = max(1, floor(n_masked · ratio))
// (a table the host computes in float64) masked positions
// with the largest raw LM max-logit, rounded to 1/1024 (ties: the lower
// position), or all of them when n_masked <= n_fill. Global bootstrap: only
// when no row of the batch has an eligible position, the top n_fill of the
// whole batch by the exact max-logit. The wave's positions are appended to LIST as (position, left
// id, right id), the neighbours' ids in embeddings mode when unmasked, else
// 0xffffffff (a zero vector). WC[slot] counts the listed positions and
// WC[slot + 1] the masked positions before the wave. With all = 1 every
// masked position is listed (zeros mode: the order of waves changes nothing).
// The list's order is not deterministic; what is drawn at a position is.
// CPU twin: internal/step Wave.Plan and Wave.Bootstrap.

struct Params {
  B: u32,
  T: u32,
  V: u32,
  mask: u32,
  pad1: u32,
  embeddings: u32,  // 1: neighbour ids, 0: zeros
  global: u32,      // 1: global bootstrap (one workgroup)
  all: u32,         // 1: list every masked position
  slot: u32,        // WC offset of this wave's counters
  cap: u32,         // LIST capacity (B·T): pos at [r], left at [cap + r], right at [2·cap + r]
  off: u32,         // 1: the wave cap is reached, list nothing
  pad0: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> PRED: array<u32>;              // (B, T)
@group(0) @binding(2) var<storage, read> LOGITS: array<f32>;            // (B, T, V) LM logits
@group(0) @binding(3) var<storage, read_write> KEYS: array<u32>;        // (B, T) scratch
@group(0) @binding(4) var<storage, read_write> LIST: array<u32>;        // (3, cap)
@group(0) @binding(5) var<storage, read_write> WC: array<atomic<u32>>;  // wave counters
@group(0) @binding(6) var<storage, read> FILL: array<u32>;              // FILL[n] = max(1, floor(n · ratio)), from the host in float64

const WG: u32 = 256u;
const NONE: u32 = 0xffffffffu;

// include: select.wgsl topk

var<workgroup> W_CNT: array<atomic<u32>, 2>;
var<workgroup> W_U: vec2<u32>;

fn is_masked(p: u32) -> bool {
  return PRED[p] == P.mask;
}

fn eligible(p: u32) -> bool {
  let t = p % P.T;
  return is_masked(p) && ((t > 0u && !is_masked(p - 1u)) || (t + 1u < P.T && !is_masked(p + 1u)));
}

fn neighbour(p: u32) -> u32 {
  if (P.embeddings == 0u || is_masked(p)) {
    return NONE;
  }
  return PRED[p];
}

fn append(p: u32) {
  let r = atomicAdd(&WC[P.slot], 1u);
  let t = p % P.T;
  var left = NONE;
  var right = NONE;
  if (t > 0u) {
    left = neighbour(p - 1u);
  }
  if (t + 1u < P.T) {
    right = neighbour(p + 1u);
  }
  LIST[r] = p;
  LIST[P.cap + r] = left;
  LIST[2u * P.cap + r] = right;
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

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let seg = wid.x + wid.y * nwg.x;
  var base = seg * P.T;
  var len = P.T;
  if (P.global == 1u) {
    base = 0u;
    len = P.B * P.T;
  }
  if (seg >= P.B || (P.global == 1u && seg > 0u)) {
    return;
  }
  if (t < 2u) {
    atomicStore(&W_CNT[t], 0u);
  }
  workgroupBarrier();
  let r = tk_range(len, t);
  var masked = 0u;
  var elig = 0u;
  for (var i = r.x; i < r.y; i++) {
    let p = base + i;
    if (is_masked(p)) {
      masked++;
      if (P.all == 1u || eligible(p)) {
        elig++;
      }
    }
  }
  atomicAdd(&W_CNT[0], masked);
  atomicAdd(&W_CNT[1], elig);
  workgroupBarrier();
  if (t == 0u) {
    W_U = vec2<u32>(atomicLoad(&W_CNT[0]), atomicLoad(&W_CNT[1]));
    atomicAdd(&WC[P.slot + 1u], W_U.x);
  }
  let n = workgroupUniformLoad(&W_U);
  if (n.x == 0u || P.off == 1u) {
    return;
  }
  if (n.y > 0u) {
    for (var i = r.x; i < r.y; i++) {
      let p = base + i;
      if (is_masked(p) && (P.all == 1u || eligible(p))) {
        append(p);
      }
    }
    return;
  }
  // Bootstrap.
  let fill = FILL[n.x];
  for (var i = r.x; i < r.y; i++) {
    let p = base + i;
    var key = 0u;
    if (is_masked(p)) {
      key = boot_key(p);
    }
    KEYS[p] = key;
  }
  tk_select(base, len, fill, t);
  for (var i = r.x; i < r.y; i++) {
    let p = base + i;
    if (KEYS[p] == 1u) {
      append(p);
    }
  }
}
