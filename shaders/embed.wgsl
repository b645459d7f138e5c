// embed.wgsl: the input of the first block (sampler-spec §1.2):
// X[b,t] = wte[id] + wpe[t], where the CLS id takes cls_embedding instead of
// its wte row. One thread per output element. Ids are checked by the host.
// CPU twin: engine/cpu embed().

struct Params {
  n: u32,       // B*T*C elements
  T: u32,
  C: u32,
  cls_id: u32,  // the id swapped for CLS (only when has_cls == 1)
  has_cls: u32,
  has_wpe: u32,
  pad0: u32,
  pad1: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> TOK: array<u32>;       // (B, T)
@group(0) @binding(2) var<storage, read> W: array<u32>;         // wte (V, C), weight dtype
@group(0) @binding(3) var<storage, read> WPE: array<f32>;       // (block_size, C)
@group(0) @binding(4) var<storage, read> CLS: array<f32>;       // (C)
@group(0) @binding(5) var<storage, read_write> X: array<f32>;   // (B, T, C)

const WG: u32 = 256u;
const WDTYPE: u32 = 0u;

// include: matmul.wgsl wload

// embed_at begin
// embed_at is element c of position p's input row: wte[id] (cls_embedding
// for the CLS id) + wpe[p % T].
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
// embed_at end

@compute @workgroup_size(WG)
fn main(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>) {
  let i = gid.x + gid.y * nwg.x * WG;
  if (i >= P.n) {
    return;
  }
  X[i] = embed_at(i / P.C, i % P.C);
}
