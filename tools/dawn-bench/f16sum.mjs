// f16sum.mjs RESULTS: summarizes tools/dawn-bench/f16.sh's outputs as
// "F16 {json}" lines: the adapter with and without the vkmask layer, the Go
// tests' verdicts and logged f16 errors, the forward f32 against f16 (medians
// over rounds, ratio, validation), the per-kernel profile by kernel group, and
// the small and standard jobs per variant.
import fs from 'fs';
import path from 'path';
const R = process.argv[2];
const read = (f) => { try { return fs.readFileSync(path.join(R, f), 'utf8'); } catch { return null; } };
const json = (f) => { const s = read(f); if (!s) return null; try { return JSON.parse(s); } catch { return null; } };
const out = (o) => console.log('F16 ' + JSON.stringify(o));
const med = (xs) => { const a = xs.filter((x) => x != null).sort((p, q) => p - q); return a.length ? a[(a.length - 1) >> 1] : null; };
const r4 = (x) => (x == null ? null : Math.round(x * 1e4) / 1e4);

for (const f of ['adapter.jsonl', 'adapter-mask.jsonl']) {
  const s = read(f);
  if (!s) continue;
  try {
    const a = JSON.parse(s.trim().split('\n').pop());
    out({ kind: 'adapter', layer: f.includes('mask'), vendor: a.vendor, architecture: a.architecture, description: a.description, shader_f16: (a.features || []).includes('shader-f16'), subgroups: (a.features || []).includes('subgroups'), error: a.error });
  } catch (e) { out({ kind: 'adapter', file: f, error: String(e) }); }
}

const gt = read('gotest.txt');
if (gt) {
  const lines = gt.split('\n');
  const v = lines.filter((l) => /^\s*--- (PASS|FAIL|SKIP)/.test(l)).map((l) => l.trim());
  const n = (w) => v.filter((l) => l.startsWith(`--- ${w}`)).length;
  out({ kind: 'gotest', passed: n('PASS'), failed: n('FAIL'), skipped: n('SKIP'), top: v.filter((l) => !/^--- \w+: \S*\//.test(l)), not_passed: v.filter((l) => !l.startsWith('--- PASS')), final: lines.filter((l) => /^(PASS|FAIL|ok)\b/.test(l)).slice(-2) });
  for (const l of lines.filter((l) => /u·S|logit diff|text agreement|refused/.test(l))) out({ kind: 'gotest-log', line: l.trim().slice(0, 300) });
}

const byShape = {};
for (const f of fs.readdirSync(R).filter((f) => /^forward-.*\.json$/.test(f))) {
  const j = json(f);
  if (!j) continue;
  const key = f.replace(/^forward-/, '').replace(/-\d+\.json$/, '').replace(/\.json$/, '');
  for (const r of j.results || []) {
    const s = `${r.batch}x${r.length}`;
    ((byShape[s] ||= {})[key] ||= { ms: [], val: j.validation, precision: j.precision, backend: j.backend }).ms.push(r.ms_per_forward);
  }
}
for (const [shape, v] of Object.entries(byShape)) {
  const o = { kind: 'forward', shape };
  for (const [k, x] of Object.entries(v)) {
    o[`${k}_ms`] = r4(med(x.ms));
    o[`${k}_runs`] = x.ms.map(r4);
    if (x.val) o[`${k}_validation`] = x.val.max_abs_diff_logits;
    o[`${k}_backend`] = x.backend;
  }
  if (o.f32_ms && o.f16_ms) o.f16_over_f32 = r4(o.f16_ms / o.f32_ms);
  out(o);
}

for (const f of fs.readdirSync(R).filter((f) => /^tile-.*-(f32|f16)\.json$/.test(f)).sort()) {
  const j = json(f);
  const [, tile, p] = f.match(/^tile-(.*)-(f32|f16)\.json$/);
  for (const r of (j && j.results) || []) out({ kind: 'tile', tile, precision: p, shape: `${r.batch}x${r.length}`, ms: r4(r.ms_per_forward), validation: j.validation && j.validation.max_abs_diff_logits });
  if (!j) out({ kind: 'tile', tile, precision: p, error: (read(f.replace(/\.json$/, '.err')) || '').slice(-300) });
}

for (const p of ['f32', 'f16']) {
  const j = json(`profile-${p}.json`);
  if (!j) continue;
  for (const r of j.results || []) {
    const g = {};
    for (const e of r.profile || []) g[e.group] = (g[e.group] || 0) + e.ms;
    for (const k of Object.keys(g)) g[k] = r4(g[k]);
    out({ kind: 'profile', precision: p, shape: `${r.batch}x${r.length}`, ms_by_group: g });
  }
}

for (const job of ['small', 'standard']) {
  const rows = {};
  for (const p of ['f32', 'f16']) {
    const j = json(`${job}-${p}.json`);
    if (!j) continue;
    for (const r of j.results || []) {
      const k = `sampler=${r.sampler} compat=${r.compat || 'default'}`;
      (rows[k] ||= {})[p] = { s: r.seconds, stages: r.gpu_stage_ms };
    }
  }
  for (const [k, v] of Object.entries(rows)) {
    out({ kind: 'job', job, variant: k, f32_s: r4(v.f32 && v.f32.s), f16_s: r4(v.f16 && v.f16.s), f16_over_f32: v.f32 && v.f16 ? r4(v.f16.s / v.f32.s) : null, f32_stages_ms: v.f32 && v.f32.stages, f16_stages_ms: v.f16 && v.f16.stages });
  }
}
