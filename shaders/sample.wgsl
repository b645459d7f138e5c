// sample.wgsl: the token draw of internal/step's Sampler on the GPU,
// one workgroup per row of logits (one masked position): excluded ids get
// probability 0, the logits are divided by the temperature, softmax without
// normalising (exp(x - max)), the nucleus rule (ranks by probability
// descending, ties to the lower id; rank r is kept iff r == 0 or the
// cumulative probability of ranks < r is <= top_p), then the inverse-CDF draw
// over ids in ascending order with u = Uniform(seed, sample, iteration,
// position, Token) from rng.wgsl's Philox block, spliced in below by shaders.Raw (the
// flat position p of a row is sample p / T, position p % T). All in f32.
// Modes (P.mode, the MODE_* constants): 0 list: row r is position POS[r], OUT[r] gets the id (the tests);
// 2 fill: row r is position r and POS holds the tokens; a kept position
// copies its token to OUT, the others draw (keep = 0: kept where the token is
// not [MASK], the naive path; keep = 1: kept where AUX[r] != 0, the
// protected positions of the multinomial method).
// A row where no id has probability > 0 (every id excluded) gets
// 0xffffffff in mode 0, where step.Pick returns -1; mode 2 writes [MASK]
// instead and records the smallest such position in ERR[0], which the host
// turns into the CPU backend's error. (Mode 1 was the scatter of the
// sampler-head waves, whose draw samplerwave.wgsl now runs with this
// file's draw block.)
// CPU twin: internal/step Sampler.Draw (float64).

struct Params {
  V: u32,            // vocabulary size, 1..MAXV
  n: u32,            // rows
  T: u32,            // positions per sample (flat position = sample*T + t)
  iteration: u32,
  temperature: f32,  // > 0
  top_p: f32,        // (0, 1]; 1 disables the nucleus rule
  seed_lo: u32,
  seed_hi: u32,
  mode: u32,         // MODE_LIST or MODE_FILL
  mask: u32,         // the [MASK] id
  keep: u32,         // fill: KEEP_UNMASKED (unmasked tokens) or KEEP_PROTECTED (where AUX[r] != 0)
  pad0: u32,
}

@group(0) @binding(0) var<uniform> P: Params;
@group(0) @binding(1) var<storage, read> LOGITS: array<f32>;     // (n, V)
@group(0) @binding(2) var<storage, read> POS: array<u32>;        // (n) flat positions
@group(0) @binding(3) var<storage, read> EXCL: array<u32>;       // ceil(V/32) words, bit i%32 of word i/32 = id i excluded
@group(0) @binding(4) var<storage, read_write> OUT: array<u32>;  // (n) drawn ids, or (B, T) in modes 1, 2
@group(0) @binding(5) var<storage, read> AUX: array<u32>;        // fill with keep 1: protected flags
@group(0) @binding(6) var<storage, read_write> ERR: array<atomic<u32>>; // [0]: smallest failed position

const WG: u32 = 256u;        // 64 for small vocabularies (>= MAXV / 32)
const MAXV: u32 = 1024u;   // a multiple of WG, at most 4*WG (the keep mask below)
const PURPOSE_TOKEN: u32 = 2u;  // engine/rng Token

// Modes of P.mode (shaders.SampleList, SampleFill).
const MODE_LIST: u32 = 0u;
const MODE_FILL: u32 = 2u;
// Fill: which positions keep their token (shaders.KeepUnmasked, KeepProtected).
const KEEP_UNMASKED: u32 = 0u;
const KEEP_PROTECTED: u32 = 1u;
const NONE: u32 = 0xffffffffu;  // no id (shaders.NoID)
const ERR_DRAW: u32 = 0u;  // ERR's word for a failed draw (shaders.ErrDraw; select.wgsl owns ERR_SCORE)

var<workgroup> PR: array<f32, MAXV>;  // probabilities of the row
var<workgroup> RED: array<f32, WG>;   // reductions and the scan
var<workgroup> PICK: atomic<u32>;     // first id whose cumulative mass exceeds the target
var<workgroup> LAST: atomic<u32>;     // 1 + the last id with mass, 0 if none

// include: rng.wgsl philox

// draw begin
// The draw, shared with samplerwave.wgsl (which includes this block). The
// including kernel declares WG, MAXV, NONE, PURPOSE_TOKEN, EXCL, PR, RED,
// PICK and LAST as this file does, Params members V, T, iteration, top_p,
// seed_lo and seed_hi, and includes rng.wgsl's philox block.

fn excluded(i: u32) -> bool {
  return ((EXCL[i >> 5u] >> (i & 31u)) & 1u) == 1u;
}

// The row's maximum and total in workgroup memory, or subgroups.wgsl's
// blocks of the same names where the device has subgroups: RG threads
// each reduce WG / RG values (t, t + RG, ...), then every thread reduces
// those RG results in ascending order. Four barriers instead of a tree's
// ten: the sampler-head waves (samplerwave.wgsl, six reductions and the
// scan below per position) run a few workgroups at a time, so their
// barriers are on the critical path.
const RG: u32 = 16u;  // divides WG

// reduce_max begin
fn reduce_max(v: f32, t: u32) -> f32 {
  RED[t] = v;
  workgroupBarrier();
  var acc = bitcast<f32>(0xff7fffffu);
  if (t < RG) {
    for (var i = t; i < WG; i += RG) {
      acc = max(acc, RED[i]);
    }
  }
  workgroupBarrier();
  if (t < RG) {
    RED[t] = acc;
  }
  workgroupBarrier();
  var out = RED[0];
  for (var i = 1u; i < RG; i++) {
    out = max(out, RED[i]);
  }
  workgroupBarrier();
  return out;
}
// reduce_max end

// reduce_sum begin
fn reduce_sum(v: f32, t: u32) -> f32 {
  RED[t] = v;
  workgroupBarrier();
  var acc = 0.0;
  if (t < RG) {
    for (var i = t; i < WG; i += RG) {
      acc += RED[i];
    }
  }
  workgroupBarrier();
  if (t < RG) {
    RED[t] = acc;
  }
  workgroupBarrier();
  var out = RED[0];
  for (var i = 1u; i < RG; i++) {
    out += RED[i];
  }
  workgroupBarrier();
  return out;
}
// reduce_sum end

// draw_row draws the id of flat position p from PR[0 .. P.V), the row's
// logits divided by the temperature, which thread t must be able to read
// for its ids [t·ceil(V/WG), ...) (its own writes, or a barrier after the
// writes); PR is overwritten. Every invocation calls it in uniform control
// flow and gets the id: NONE when no id has probability > 0.
fn draw_row(p: u32, t: u32) -> u32 {
  let V = P.V;
  let C = (V + WG - 1u) / WG;  // ids per thread, contiguous: [lo, hi)
  let lo = min(t * C, V);
  let hi = min(lo + C, V);
  if (t == 0u) {
    atomicStore(&PICK, NONE);
    atomicStore(&LAST, 0u);
  }

  // Exclusion; the row maximum.
  var m = bitcast<f32>(0xff7fffffu);
  for (var i = lo; i < hi; i++) {
    if (!excluded(i)) {
      m = max(m, PR[i]);
    }
  }
  m = reduce_max(m, t);

  // Unnormalised probabilities and their total.
  var s = 0.0;
  for (var i = lo; i < hi; i++) {
    var p = 0.0;
    if (!excluded(i)) {
      p = exp(PR[i] - m);
    }
    PR[i] = p;
    s += p;
  }
  let total = reduce_sum(s, t);

  // Nucleus: rank by counting. The ids ranked before i are those with a
  // larger probability or an equal one and a lower id.
  var drop = 0u;  // bit k: id lo+k leaves the nucleus
  if (P.top_p < 1.0 && total > 0.0) {
    for (var i = lo; i < hi; i++) {
      let p = PR[i];
      if (p == 0.0) {
        continue;
      }
      var cum = 0.0;
      var first = true;
      for (var j = 0u; j < V; j++) {
        let q = PR[j];
        if (q > p || (q == p && j < i)) {
          cum += q / total;
          first = false;
        }
      }
      if (!(first || cum <= P.top_p)) {
        drop |= 1u << (i - lo);
      }
    }
  }
  workgroupBarrier();
  s = 0.0;
  for (var i = lo; i < hi; i++) {
    if (((drop >> (i - lo)) & 1u) == 1u) {
      PR[i] = 0.0;
    }
    s += PR[i];
  }

  // Scan of the per-thread masses (ids ascending), in two levels: RG
  // threads each scan a run of WG / RG consecutive threads' masses in place
  // (stored run-major, RED[i·RG + g] the mass of thread g·run + i, so that
  // the RG threads read consecutive words), then thread t adds the totals
  // of the runs before its own (every thread adds all RG totals in the
  // same order: one kept mass).
  let run = WG / RG;
  let g = t / run;
  RED[(t % run) * RG + g] = s;
  workgroupBarrier();
  if (t < RG) {
    var a = 0.0;
    for (var i = 0u; i < run; i++) {
      a += RED[i * RG + t];
      RED[i * RG + t] = a;
    }
  }
  workgroupBarrier();
  let last = (run - 1u) * RG;  // the runs' totals
  var cum = 0.0;  // the mass of the ids before the thread's
  for (var h = 0u; h < g; h++) {
    cum += RED[last + h];
  }
  var kept = cum;
  for (var h = g; h < RG; h++) {
    kept += RED[last + h];
  }
  if (t % run > 0u) {
    cum += RED[(t % run - 1u) * RG + g];
  }

  // Inverse CDF: the first id whose cumulative mass exceeds u * kept.
  let u = rng_uniform(P.seed_lo, P.seed_hi, p / P.T, P.iteration, p % P.T, PURPOSE_TOKEN);
  let goal = u * kept;
  for (var i = lo; i < hi; i++) {
    let q = PR[i];
    if (q == 0.0) {
      continue;
    }
    cum += q;
    atomicMax(&LAST, i + 1u);
    if (cum > goal) {
      atomicMin(&PICK, i);
      break;
    }
  }
  workgroupBarrier();
  var id = atomicLoad(&PICK);
  if (id == NONE) {
    id = atomicLoad(&LAST) - 1u;  // rounding left none: the last id with mass (NONE if none)
  }
  workgroupBarrier();  // PICK and LAST are read before a next draw resets them
  return id;
}
// draw end

@compute @workgroup_size(WG)
fn main(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) t: u32) {
  let r = wid.x + wid.y * nwg.x;
  if (r >= P.n) {
    return;
  }
  var p = r;
  if (P.mode == MODE_LIST) {
    p = POS[r];
  } else {
    let tok = POS[r];
    if ((P.keep == KEEP_UNMASKED && tok != P.mask) || (P.keep == KEEP_PROTECTED && AUX[r] != 0u)) {
      if (t == 0u) {
        OUT[r] = tok;
      }
      return;
    }
  }
  // The row's logits divided by the temperature, each thread its own ids.
  let V = P.V;
  let C = (V + WG - 1u) / WG;
  let lo = min(t * C, V);
  let hi = min(lo + C, V);
  let base = r * V;
  for (var i = lo; i < hi; i++) {
    PR[i] = LOGITS[base + i] / P.temperature;
  }
  let id = draw_row(p, t);
  if (t == 0u) {
    if (P.mode == MODE_LIST) {
      OUT[r] = id;
    } else if (id == NONE) {
      OUT[p] = P.mask;
      atomicMin(&ERR[ERR_DRAW], p);
    } else {
      OUT[p] = id;
    }
  }
}
