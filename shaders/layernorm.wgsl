// layernorm.wgsl: Y = (X - mean) / sqrt(var + eps) · w + b per row of C
// features, biased variance (F.layer_norm). One workgroup per row; the
// statistics are two reductions (mean first, then the centred sum of
// squares, as the CPU twin does in float64): trees in workgroup memory, or
// subgroupAdd where the device has subgroups (subgroups.wgsl's reduce_sum).
// CPU twin: engine/cpu layerNorm(). Y must not alias X.

struct Params {
  N: u32,        // rows
  C: u32,        // features per row
  has_bias: u32, // 1: add B
  eps: f32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;         // (N, C)
@group(0) @binding(2) var<storage, read> LW: array<f32>;        // (C)
@group(0) @binding(3) var<storage, read> LB: array<f32>;        // (C)
@group(0) @binding(4) var<storage, read_write> Y: array<f32>;   // (N, C)

const WG: u32 = 128u;

var<workgroup> RED: array<f32, WG>;

// reduce_sum begin
fn reduce_sum(v: f32, t: u32) -> f32 {
  RED[t] = v;
  workgroupBarrier();
  for (var off = WG / 2u; off > 0u; off >>= 1u) {
    if (t < off) {
      RED[t] += RED[t + off];
    }
    workgroupBarrier();
  }
  let out = RED[0];
  workgroupBarrier();
  return out;
}
// reduce_sum end

// ln_row begin
// ln_row writes the LayerNorm of the row of X at base into the same row of
// Y. Every invocation of the workgroup calls it (workgroup-uniform control
// flow) with its local_invocation_index li and takes the features c = li,
// li + WG, ...: so a kernel that wrote those features of X itself (the
// fused kernels, addnorm.wgsl and embednorm.wgsl) reads back its own
// writes, and its sums are this file's, in this file's order.
fn ln_row(base: u32, li: u32) {
  var s = 0.0;
  for (var c = li; c < P.C; c += WG) {
    s += X[base + c];
  }
  let mean = reduce_sum(s, li) / f32(P.C);
  var ss = 0.0;
  for (var c = li; c < P.C; c += WG) {
    let d = X[base + c] - mean;
    ss += d * d;
  }
  let rstd = 1.0 / sqrt(reduce_sum(ss, li) / f32(P.C) + P.eps);
  for (var c = li; c < P.C; c += WG) {
    var y = (X[base + c] - mean) * rstd * LW[c];
    if (P.has_bias == 1u) {
      y += LB[c];
    }
    Y[base + c] = y;
  }
}
// ln_row end

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>,
        @builtin(local_invocation_index) li: u32) {
  let row = wg.x + wg.y * nwg.x;
  if (row >= P.N) {
    return;
  }
  ln_row(row * P.C, li);
}
