// rowdot.wgsl: one dot product per output row, OUT[i] = f(X[i*stride : i*stride+C] · w).
// The critic head (stride C, f = identity: h · critic_head.weightᵀ) and the
// judge (stride T*C, reading h[b, 0]; f(x) = sigmoid(a·x + b)).
// CPU twins: engine/cpu CriticLogits and JudgeEval.

struct Params {
  n: u32,       // rows
  C: u32,
  stride: u32,  // elements between the rows read
  sigmoid: u32, // 1: OUT = sigmoid(a·dot + b)
  a: f32,
  b: f32,
  pad0: u32,
  pad1: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> X: array<f32>;
@group(0) @binding(2) var<storage, read> WV: array<f32>;         // (C)
@group(0) @binding(3) var<storage, read_write> OUT: array<f32>;  // (n)

const WG: u32 = 64u;

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= P.n) {
    return;
  }
  let base = i * P.stride;
  var dot = 0.0;
  for (var c = 0u; c < P.C; c++) {
    dot = fma(X[base + c], WV[c], dot);
  }
  if (P.sigmoid == 1u) {
    dot = 1.0 / (1.0 + exp(-(P.a * dot + P.b)));
  }
  OUT[i] = dot;
}
