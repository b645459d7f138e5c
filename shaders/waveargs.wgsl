// waveargs.wgsl: one thread turns a wave's position count n (written by
// wave.wgsl at WC[slot]) into the workgroup counts of the wave's indirect
// dispatches, five (x, y, z) triples at ARGS[at ..]:
//   0: sampler_in.wgsl, one workgroup per row       2: layernorm, one per row
//   1: the mlp.3 matmul, (nx1, ceil(n / bm1), 1)    3: the output matmul, (nx2, ceil(n / bm2), 1)
//   4: sample.wgsl (scatter), one workgroup per row
// "One per row" is spread over x and y as engine/gpu's grid() does; n = 0
// gives empty dispatches.
// CPU twin: engine/gpu grid() and the matmul workgroup counts (kernels.go).

struct Params {
  slot: u32,
  at: u32,     // first u32 of this wave's 15 in ARGS
  nx1: u32,
  bm1: u32,
  nx2: u32,
  bm2: u32,
  maxd: u32,   // maxComputeWorkgroupsPerDimension
  pad0: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> WC: array<u32>;
@group(0) @binding(2) var<storage, read_write> ARGS: array<u32>;

fn put(i: u32, x: u32, y: u32) {
  let o = P.at + 3u * i;
  ARGS[o] = x;
  ARGS[o + 1u] = y;
  ARGS[o + 2u] = 1u;
}

fn grid(n: u32, i: u32) {
  if (n <= P.maxd) {
    put(i, n, 1u);
    return;
  }
  let y = (n + P.maxd - 1u) / P.maxd;
  put(i, (n + y - 1u) / y, y);
}

@compute @workgroup_size(1)
fn main() {
  let n = WC[P.slot];
  grid(n, 0u);
  put(1u, select(0u, P.nx1, n > 0u), (n + P.bm1 - 1u) / P.bm1);
  grid(n, 2u);
  put(3u, select(0u, P.nx2, n > 0u), (n + P.bm2 - 1u) / P.bm2);
  grid(n, 4u);
}
