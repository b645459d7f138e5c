// embednorm.wgsl: the trunk's input fused with the first block's ln_1
// (layernorm.wgsl's ln_row): per position,
//   X = wte[id] (+ wpe[t]), CLS swapped for cls_embedding
//   Y = LN(X) · LW (+ LB)
// One workgroup per position: each invocation writes the features it then
// normalizes (ln_row's c = li, li + WG, ...) and reads back only its own
// writes, so no barrier is needed and y is layernorm.wgsl's of x (the
// embedding has no kernel of its own). Ids are checked by the host.
// CPU twin: engine/cpu embed(), then layerNorm(). Y must not alias X.

struct Params {
  N: u32,        // positions B·T (rows)
  T: u32,
  C: u32,
  cls_id: u32,   // the id swapped for CLS (only when has_cls == 1)
  has_cls: u32,
  has_wpe: u32,
  has_bias: u32, // 1: add LB (the LayerNorm's bias)
  eps: f32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> TOK: array<u32>;       // (B, T)
@group(0) @binding(2) var<storage, read> W: array<u32>;         // wte (V, C), weight dtype
@group(0) @binding(3) var<storage, read> WPE: array<f32>;       // (block_size, C)
@group(0) @binding(4) var<storage, read> CLS: array<f32>;       // (C)
@group(0) @binding(5) var<storage, read> LW: array<f32>;        // (C)
@group(0) @binding(6) var<storage, read> LB: array<f32>;        // (C)
@group(0) @binding(7) var<storage, read_write> X: array<f32>;   // (B, T, C)
@group(0) @binding(8) var<storage, read_write> Y: array<f32>;   // (B, T, C)

const WG: u32 = 128u; // layernorm.wgsl's
const WDTYPE: u32 = 0u;

var<workgroup> RED: array<f32, WG>;

// include: matmul.wgsl wload

// embed_at is element c of position p's input row (sampler-spec §1.2):
// wte[id] (cls_embedding for the CLS id) + wpe[p % T].
fn embed_at(p: u32, c: u32) -> f32 {
  let id = TOK[p];
  var v: f32;
  if (P.has_cls == 1u && id == P.cls_id) {
    v = CLS[c];
  } else {
    v = wload(id * P.C + c);
  }
  if (P.has_wpe == 1u) {
    v += WPE[(p % P.T) * P.C + c];
  }
  return v;
}

// include: layernorm.wgsl reduce_sum

// include: layernorm.wgsl ln_row

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let row = wg.x + wg.y * nwg.x;
  if (row >= P.N) {
    return;
  }
  let base = row * P.C;
  for (var c = li; c < P.C; c += WG) {
    X[base + c] = embed_at(row, c);
  }
  ln_row(base, li);
}
