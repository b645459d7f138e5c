// gather.wgsl: the sampler head's input rows [left, h_p, right] (n, 3C):
// left/right are the wte rows of the neighbour ids, or zeros for id -1 (both
// neighbour modes: the sampler passes -1 for "zeros"). One thread per element.
// CPU twin: engine/cpu samplerInput().

struct Params {
  n: u32,   // rows
  C: u32,
  pad0: u32,
  pad1: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> HID: array<f32>;        // (B*T, C)
@group(0) @binding(2) var<storage, read> W: array<u32>;          // wte (V, C), weight dtype
@group(0) @binding(3) var<storage, read> IDX: array<i32>;        // (3, n): pos, left, right
@group(0) @binding(4) var<storage, read_write> OUT: array<f32>;  // (n, 3C)

const WG: u32 = 256u;
const WDTYPE: u32 = 0u;

// include: matmul.wgsl wload

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= P.n * 3u * P.C) {
    return;
  }
  let r = i / (3u * P.C);
  let part = (i / P.C) % 3u;
  let c = i % P.C;
  var v = 0.0;
  if (part == 1u) {
    v = HID[u32(IDX[r]) * P.C + c];
  } else {
    let id = IDX[select(2u, 1u, part == 0u) * P.n + r];
    if (id >= 0) {
      v = wload(u32(id) * P.C + c);
    }
  }
  OUT[i] = v;
}
