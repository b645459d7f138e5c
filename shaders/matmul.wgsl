// matmul.wgsl: OUT (M, N) = A (M, K) · W (N, K)ᵀ + bias, with an optional
// GELU or SiLU epilogue and an optional residual accumulate (OUT += result).
// W is in PyTorch's Linear layout (out, in), so both operands are read along
// K. CPU twin: engine/cpu linear() (+ gelu/silu/residual).
//
// Tiling: a workgroup computes a BM x BN tile of OUT; every thread a TM x TN
// register block. K advances BK at a time through workgroup-shared tiles
// stored k-major as vec4 columns, so the inner loop reads TM/4 + TN/4 vec4s
// and does TM*TN fused multiply-adds. FAST (set by the host when M % BM,
// N % BN and K % BK are all 0) drops every bounds check.
//
// Host-substituted constants (shaders.Source): BM BN BK TM TN FAST WDTYPE.
//
// This file is the readable form and the bounds-checked path for shapes that
// do not divide the tile. Where N % BN == 0 and K % BK == 0 the host runs
// shaders.MatmulUnrolled instead (matmulgen.go): this structure with every
// register loop written out, so no function-local array is indexed at run
// time (the arrays below stayed in local memory on the NVIDIA driver).

struct Params {
  M: u32,
  N: u32,
  K: u32,
  act: u32,        // ACT_NONE, ACT_GELU (exact) or ACT_SILU
  has_bias: u32,   // 1: add BIAS[n]
  accumulate: u32, // 1: OUT += result (the residual add)
  pad0: u32,
  pad1: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> A: array<f32>;           // (M, K)
@group(0) @binding(2) var<storage, read> W: array<u32>;           // (N, K): f32 bits, or two halves per word
@group(0) @binding(3) var<storage, read> BIAS: array<f32>;        // (N)
@group(0) @binding(4) var<storage, read_write> OUT: array<f32>;   // (M, N)

const BM: u32 = 64u;
const BN: u32 = 64u;
const BK: u32 = 16u;
const TM: u32 = 4u;
const TN: u32 = 4u;
const FAST: bool = false;
const WDTYPE: u32 = 0u; // weights: WEIGHT_F32, WEIGHT_F16 or WEIGHT_BF16

// Activations of P.act (shaders.ActNone, ActGELU, ActSiLU).
const ACT_NONE: u32 = 0u;
const ACT_GELU: u32 = 1u;
const ACT_SILU: u32 = 2u;

const WGX: u32 = BN / TN;
const WGY: u32 = BM / TM;
const NT: u32 = WGX * WGY;

// Each k row of a tile is padded by one vec4: the loaders write with k
// varying fastest across threads, and an unpadded row stride of BM/4 vec4s
// (a multiple of 32 words) would put all of a warp's stores into one bank.
// With the pad, the 128x128 tiling stores without conflicts and the 64x64
// one with at most two-way conflicts.
const AS_STRIDE: u32 = BM / 4u + 1u;
const WS_STRIDE: u32 = BN / 4u + 1u;
const AS_LEN: u32 = BK * AS_STRIDE;
const WS_LEN: u32 = BK * WS_STRIDE;
var<workgroup> As: array<vec4<f32>, AS_LEN>; // As[k*AS_STRIDE + m/4][m%4] = A[row0+m, k0+k]
var<workgroup> Ws: array<vec4<f32>, WS_LEN>; // Ws[k*WS_STRIDE + n/4][n%4] = W[col0+n, k0+k]

// wload begin
// Weight dtypes of WDTYPE (shaders.WeightF32, WeightF16, WeightBF16).
const WEIGHT_F32: u32 = 0u;
const WEIGHT_F16: u32 = 1u;   // two per u32, element 2k in the low half
const WEIGHT_BF16: u32 = 2u;  // likewise

// wload reads element i of W (binding W: array<u32>) in the weight dtype
// WDTYPE.
fn wload(i: u32) -> f32 {
  if (WDTYPE == WEIGHT_F32) {
    return bitcast<f32>(W[i]);
  }
  let word = W[i >> 1u];
  let hi = (i & 1u) == 1u;
  if (WDTYPE == WEIGHT_F16) {
    let v = unpack2x16float(word);
    return select(v.x, v.y, hi);
  }
  return bitcast<f32>(select(word << 16u, word & 0xffff0000u, hi));
}
// wload end

// erf with |error| < 1.2e-7 (Numerical Recipes' erfc Chebyshev fit).
fn erf_approx(x: f32) -> f32 {
  let z = abs(x);
  let t = 1.0 / (1.0 + 0.5 * z);
  let r = t * exp(-z * z - 1.26551223 + t * (1.00002368 + t * (0.37409196 + t * (0.09678418 +
    t * (-0.18628806 + t * (0.27886807 + t * (-1.13520398 + t * (1.48851587 +
    t * (-0.82215223 + t * 0.17087277)))))))));
  return select(r - 1.0, 1.0 - r, x >= 0.0);
}

fn activate(v: f32) -> f32 {
  if (P.act == ACT_GELU) {
    return 0.5 * v * (1.0 + erf_approx(v * 0.70710678118654752));
  }
  if (P.act == ACT_SILU) {
    return v / (1.0 + exp(-v));
  }
  return v;
}

@compute @workgroup_size(NT)
fn main(@builtin(workgroup_id) wg: vec3<u32>, @builtin(local_invocation_index) li: u32) {
  let tx = li % WGX;
  let ty = li / WGX;
  let row0 = wg.y * BM;
  let col0 = wg.x * BN;
  var acc: array<array<f32, TN>, TM>;
  var a: array<f32, TM>;
  var b: array<f32, TN>;

  for (var k0 = 0u; k0 < P.K; k0 += BK) {
    for (var e = li; e < BM * BK; e += NT) {
      let m = e / BK;
      let k = e % BK;
      let gr = row0 + m;
      let gk = k0 + k;
      var v = 0.0;
      if (FAST || (gr < P.M && gk < P.K)) {
        v = A[gr * P.K + gk];
      }
      As[k * AS_STRIDE + m / 4u][m % 4u] = v;
    }
    for (var e = li; e < BN * BK; e += NT) {
      let n = e / BK;
      let k = e % BK;
      let gn = col0 + n;
      let gk = k0 + k;
      var v = 0.0;
      if (FAST || (gn < P.N && gk < P.K)) {
        v = wload(gn * P.K + gk);
      }
      Ws[k * WS_STRIDE + n / 4u][n % 4u] = v;
    }
    workgroupBarrier();
    for (var k = 0u; k < BK; k++) {
      for (var i = 0u; i < TM / 4u; i++) {
        let v = As[k * AS_STRIDE + ty * (TM / 4u) + i];
        a[4u * i] = v.x;
        a[4u * i + 1u] = v.y;
        a[4u * i + 2u] = v.z;
        a[4u * i + 3u] = v.w;
      }
      for (var j = 0u; j < TN / 4u; j++) {
        let v = Ws[k * WS_STRIDE + tx * (TN / 4u) + j];
        b[4u * j] = v.x;
        b[4u * j + 1u] = v.y;
        b[4u * j + 2u] = v.z;
        b[4u * j + 3u] = v.w;
      }
      for (var i = 0u; i < TM; i++) {
        for (var j = 0u; j < TN; j++) {
          acc[i][j] = fma(a[i], b[j], acc[i][j]);
        }
      }
    }
    workgroupBarrier();
  }

  for (var i = 0u; i < TM; i++) {
    let r = row0 + ty * TM + i;
    for (var j = 0u; j < TN; j++) {
      let c = col0 + tx * TN + j;
      if (FAST || (r < P.M && c < P.N)) {
        var v = acc[i][j];
        if (P.has_bias == 1u) {
          v += BIAS[c];
        }
        v = activate(v);
        let o = r * P.N + c;
        if (P.accumulate == 1u) {
          v = OUT[o] + v;
        }
        OUT[o] = v;
      }
    }
  }
}
