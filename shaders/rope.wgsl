// rope.wgsl: rotary position embedding of q and k in place in the fused qkv
// buffer, rotate-half convention (sampler-spec §1.4): feature j < d/2 pairs
// with j + d/2. The cos/sin tables are computed by the host in float64 and
// rounded once, exactly as the CPU twin (engine/cpu ropeTables) does.
// One thread per (position, head, j < d/2); it rotates q and k.

struct Params {
  n: u32,    // B*T*H*(d/2) threads
  T: u32,
  C: u32,
  H: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> COS: array<f32>;         // (block, d/2)
@group(0) @binding(2) var<storage, read> SIN: array<f32>;         // (block, d/2)
@group(0) @binding(3) var<storage, read_write> QKV: array<f32>;   // (B, T, 3C)

const WG: u32 = 256u;

fn rotate(base: u32, half: u32, c: f32, s: f32) {
  let x1 = QKV[base];
  let x2 = QKV[base + half];
  QKV[base] = x1 * c - x2 * s;
  QKV[base + half] = x2 * c + x1 * s;
}

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= P.n) {
    return;
  }
  let d = P.C / P.H;
  let half = d / 2u;
  let j = i % half;
  let h = (i / half) % P.H;
  let p = i / (half * P.H); // b*T + t
  let t = p % P.T;
  let c = COS[t * half + j];
  let s = SIN[t * half + j];
  let base = p * 3u * P.C + h * d + j;
  rotate(base, half, c, s);          // q
  rotate(base + P.C, half, c, s);    // k
}
