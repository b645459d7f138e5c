enable subgroups;

// subgroups.wgsl: the subgroup forms of the workgroup reductions. A kernel
// marks its workgroup-memory reduction with "// NAME begin" and
// "// NAME end" lines (reduce_sum, reduce_max); SubgroupVariant swaps in
// the block of the same name below and puts `enable subgroups;` first. The
// device uses the variant only where it has the WebGPU `subgroups` feature
// (Dawn and browsers; engine/gpu caps.subgroups), the marked block
// everywhere else.
//
// Each function has the contract of the workgroup-memory reduction it
// replaces (a tree in layernorm.wgsl, two levels in sample.wgsl): every
// invocation of the workgroup calls it with its value v and its
// local_invocation_index t (in workgroup-uniform control flow), and every
// invocation gets the reduction of the WG values; RED (WG floats) is free
// again when it returns. WGSL does not say how invocations are grouped
// into subgroups, so nothing below assumes t / subgroup size: each
// subgroup reduces its own values, its first active invocation stores the
// result at RED[t] (0 or the lowest float elsewhere), and then every
// subgroup reduces all of RED, WG / (subgroup size) values per invocation.
// Two barriers instead of the tree's log2(WG) + 2 or the two levels' 4.

const WG: u32 = 256u;  // the including kernel's
var<workgroup> RED: array<f32, WG>;  // the including kernel's

// reduce_sum begin
fn reduce_sum(v: f32, t: u32) -> f32 {
  let part = subgroupAdd(v);
  let lanes = subgroupAdd(1u);
  let lane = subgroupExclusiveAdd(1u);
  RED[t] = select(0.0, part, lane == 0u);
  workgroupBarrier();
  var acc = 0.0;
  for (var i = lane; i < WG; i += lanes) {
    acc += RED[i];
  }
  let out = subgroupAdd(acc);
  workgroupBarrier();
  return out;
}
// reduce_sum end

// reduce_max begin
fn reduce_max(v: f32, t: u32) -> f32 {
  let lowest = bitcast<f32>(0xff7fffffu);
  let part = subgroupMax(v);
  let lanes = subgroupAdd(1u);
  let lane = subgroupExclusiveAdd(1u);
  RED[t] = select(lowest, part, lane == 0u);
  workgroupBarrier();
  var acc = lowest;
  for (var i = lane; i < WG; i += lanes) {
    acc = max(acc, RED[i]);
  }
  let out = subgroupMax(acc);
  workgroupBarrier();
  return out;
}
// reduce_max end
