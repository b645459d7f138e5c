// addnorm.wgsl: the end of a K-split residual matmul fused with the
// LayerNorm that reads its result: per row of C features,
//   X += Σ_z R[z] (+ MB)        (shaders.MatmulReduce's sum, in its order,
//                                with act none and accumulate)
//   Y = LN(X) · LW (+ LB)       (layernorm.wgsl's ln_row)
// One workgroup per row: each invocation sums the partials of the features
// it then normalizes (ln_row's c = li, li + WG, ...), writes them to X and
// reads back only its own writes, so no barrier is needed between the two
// and the sums are those of the two kernels it replaces. The trunk runs it
// after attn.c_proj and mlp.c_proj where they are split over K (engine/gpu
// residualNormOps): one dispatch instead of the reduce and the LayerNorm.
// CPU twin: engine/cpu's residual add, then layerNorm(). Y must not alias
// X or R.

struct Params {
  N: u32,         // rows
  C: u32,         // features per row
  has_bias: u32,  // 1: add LB (the LayerNorm's bias)
  eps: f32,
  S: u32,         // partial products in R
  has_mbias: u32, // 1: add MB (the matmul's bias)
  pad0: u32,
  pad1: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> R: array<f32>;         // (S·N, C) partial products
@group(0) @binding(2) var<storage, read> MB: array<f32>;        // (C) the matmul's bias
@group(0) @binding(3) var<storage, read> LW: array<f32>;        // (C)
@group(0) @binding(4) var<storage, read> LB: array<f32>;        // (C)
@group(0) @binding(5) var<storage, read_write> X: array<f32>;   // (N, C) the residual stream
@group(0) @binding(6) var<storage, read_write> Y: array<f32>;   // (N, C)

const WG: u32 = 128u; // layernorm.wgsl's

var<workgroup> RED: array<f32, WG>;

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
  let n = P.N * P.C;
  for (var c = li; c < P.C; c += WG) {
    var v = R[base + c];
    for (var z = 1u; z < P.S; z++) {
      v += R[z * n + base + c];
    }
    if (P.has_mbias == 1u) {
      v += MB[c];
    }
    X[base + c] = X[base + c] + v;
  }
  ln_row(base, li);
}
