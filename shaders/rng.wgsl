// rng.wgsl: Philox4x32-10 (Salmon et al., SC'11), the counter-based
// randomness of engine/rng, in u32 arithmetic only (the 32x32 -> 64-bit
// products are built from 16-bit halves). This kernel evaluates it on a list
// of (counter, key) blocks so that the tests can compare it bit for bit with
// engine/rng. The kernels that draw (remask.wgsl, sample.wgsl) get the block
// between the "philox begin" and "philox end" markers through the line
// "// include: rng.wgsl philox" (shaders.Raw splices it in; shaders'
// TestPhiloxCopies checks that no kernel carries a copy of its own).
//
// engine/rng's layout: counter = (position, sample, iteration, purpose), key =
// (seed low 32 bits, seed high 32 bits); a uniform float32 in [0, 1) is the
// top 24 bits of output word 0 times 2^-24 (exact in f32).
// CPU twin: engine/rng Philox4x32, Bits, Uniform.

struct Params {
  n: u32,   // blocks
  pad0: u32,
  pad1: u32,
  pad2: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> IN: array<u32>;         // (n, 6): counter[4], key[2]
@group(0) @binding(2) var<storage, read_write> OUT: array<u32>;  // (n, 5): words[4], bits of the uniform

const WG: u32 = 64u;

// philox begin
const PHILOX_M0: u32 = 0xD2511F53u;
const PHILOX_M1: u32 = 0xCD9E8D57u;
const PHILOX_W0: u32 = 0x9E3779B9u;
const PHILOX_W1: u32 = 0xBB67AE85u;

// mulhilo returns (high, low) 32 bits of the 64-bit product a*b.
fn mulhilo(a: u32, b: u32) -> vec2<u32> {
  let a0 = a & 0xffffu;
  let a1 = a >> 16u;
  let b0 = b & 0xffffu;
  let b1 = b >> 16u;
  let p00 = a0 * b0;
  let p01 = a0 * b1;
  let p10 = a1 * b0;
  let p11 = a1 * b1;
  let mid = (p00 >> 16u) + (p01 & 0xffffu) + (p10 & 0xffffu);
  let hi = p11 + (p01 >> 16u) + (p10 >> 16u) + (mid >> 16u);
  return vec2<u32>(hi, a * b);
}

// philox4x32 is Philox4x32-10 on one counter block.
fn philox4x32(counter: vec4<u32>, key: vec2<u32>) -> vec4<u32> {
  var c = counter;
  var k = key;
  for (var i = 0u; i < 10u; i++) {
    if (i > 0u) {
      k = k + vec2<u32>(PHILOX_W0, PHILOX_W1);
    }
    let r0 = mulhilo(PHILOX_M0, c.x);
    let r1 = mulhilo(PHILOX_M1, c.z);
    c = vec4<u32>(r1.x ^ c.y ^ k.x, r1.y, r0.x ^ c.w ^ k.y, r0.y);
  }
  return c;
}

// to_unit maps a random word to an f32 in [0, 1) with 24 bits of resolution.
fn to_unit(x: u32) -> f32 {
  return f32(x >> 8u) * (1.0 / 16777216.0);
}

// rng_uniform is engine/rng's Uniform(seed, sample, iteration, position, purpose).
fn rng_uniform(seed_lo: u32, seed_hi: u32, sample: u32, iteration: u32, position: u32, purpose: u32) -> f32 {
  return to_unit(philox4x32(vec4<u32>(position, sample, iteration, purpose), vec2<u32>(seed_lo, seed_hi)).x);
}
// philox end

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= P.n) {
    return;
  }
  let c = vec4<u32>(IN[6u * i], IN[6u * i + 1u], IN[6u * i + 2u], IN[6u * i + 3u]);
  let k = vec2<u32>(IN[6u * i + 4u], IN[6u * i + 5u]);
  let w = philox4x32(c, k);
  OUT[5u * i] = w.x;
  OUT[5u * i + 1u] = w.y;
  OUT[5u * i + 2u] = w.z;
  OUT[5u * i + 3u] = w.w;
  OUT[5u * i + 4u] = bitcast<u32>(to_unit(w.x));
}
