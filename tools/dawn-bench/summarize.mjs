// summarize.mjs: the summary of one h200.sh run. It reads the run's outputs
// in DIR (what h200.sh wrote: native-*.json and cli-*.json from `remask
// bench --json`, the native binary and the same CLI compiled to js/wasm under
// Node with Dawn; pkg-*.jsonl from pkgbench.mjs; adapter.jsonl;
// pytorch-*.json from tools/train/bench_loop.py; steps.jsonl) and prints
// JSON lines ("SUMMARY {...}") and then a Markdown table. A missing or
// broken input shows as "-" in the table and as an "error" line, never as a
// number.
//
//   node summarize.mjs DIR
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';

const dir = process.argv[2];
const errors = [];
function json(name) {
  const f = path.join(dir, name);
  if (!existsSync(f)) return null;
  const s = readFileSync(f, 'utf8').trim();
  if (!s) return null;
  try {
    return JSON.parse(s);
  } catch (e) {
    errors.push(`${name}: not JSON (${e.message.slice(0, 80)}): ${s.slice(0, 160)}`);
    return null;
  }
}
function jsonl(name) {
  const f = path.join(dir, name);
  if (!existsSync(f)) return [];
  const out = [];
  for (const l of readFileSync(f, 'utf8').split('\n')) {
    if (!l.startsWith('{')) continue;
    try {
      out.push(JSON.parse(l));
    } catch {}
  }
  return out;
}
const lines = [];
const emit = (o) => {
  lines.push(o);
  console.log('SUMMARY ' + JSON.stringify(o));
};
const r3 = (x) => (x == null || !isFinite(x) ? null : Math.round(x * 1000) / 1000);
const ratio = (a, b) => (a > 0 && b > 0 ? Math.round((a / b) * 100) / 100 : null);
const f = (x, d = 3) => (x == null ? '-' : Number(x).toFixed(d));
const u = (x, unit) => (x == null ? '-' : `${Number(x).toFixed(3)} ${unit}`);
const fr = (x) => (x == null ? '-' : `${x.toFixed(2)}x`);

const steps = jsonl('steps.jsonl');
for (const s of steps) emit({ kind: 'step', ...s });

// Forward: ms per forward per shape, and the per-kernel GPU times (--profile)
// summed over the layers by kernel group.
const nf = json('native-forward.json'), cf = json('cli-forward.json');
const adapters = { native: nf && nf.backend, dawn_cli: cf && cf.backend };
const fwdRows = [];
const groups = (r) => {
  const g = {};
  for (const k of (r && r.profile) || []) g[k.group || k.name] = (g[k.group || k.name] || 0) + k.ms;
  return g;
};
const stageRows = [];
for (const n of (nf && nf.results) || (cf && cf.results) || []) {
  const shape = `${n.batch}x${n.length}`;
  const a = nf && nf.results.find((r) => r.batch === n.batch && r.length === n.length);
  const c = cf && cf.results.find((r) => r.batch === n.batch && r.length === n.length);
  const row = { kind: 'forward', shape, native_ms: r3(a && a.ms_per_forward), dawn_cli_ms: r3(c && c.ms_per_forward), ratio: ratio(c && c.ms_per_forward, a && a.ms_per_forward), native_tflops: r3(a && a.tflops), dawn_cli_tflops: r3(c && c.tflops), dispatches: a && a.dispatches_per_forward, dawn_dispatches: c && c.dispatches_per_forward };
  emit(row);
  fwdRows.push(row);
  const ga = groups(a), gc = groups(c);
  for (const k of new Set([...Object.keys(ga), ...Object.keys(gc)])) {
    const s = { kind: 'stage', what: `forward ${shape} (--profile, summed over layers)`, stage: k, native_ms: r3(ga[k]), dawn_ms: r3(gc[k]), ratio: ratio(gc[k], ga[k]) };
    emit(s);
    stageRows.push(s);
  }
}
// Dawn with --precision f16 (the trunk's matmuls in f16; native has no f16).
const hf = json('cli-forward-f16.json');
for (const c of (hf && hf.results) || []) {
  const shape = `${c.batch}x${c.length}`;
  const row = fwdRows.find((r) => r.shape === shape);
  const a = nf && nf.results.find((r) => r.batch === c.batch && r.length === c.length);
  const o = { kind: 'forward_f16', shape, precision: hf.precision, dawn_f16_ms: r3(c.ms_per_forward), ratio_to_native_f32: ratio(c.ms_per_forward, a && a.ms_per_forward), validation: hf.validation };
  emit(o);
  if (row) row.dawn_f16_ms = o.dawn_f16_ms;
}
// PyTorch's forward of the same shapes (tools/train/bench_forward.py: one JSON
// array of {mode, batch, length, ms_per_forward}).
const pf = json('pytorch-forward.json');
for (const row of fwdRows) {
  for (const m of ['fp32', 'fp32_tf32', 'fp16_autocast']) {
    const p = Array.isArray(pf) ? pf.find((x) => x.mode === m && `${x.batch}x${x.length}` === row.shape) : null;
    if (!p) continue;
    row[`pytorch_${m}_ms`] = r3(p.ms_per_forward);
    emit({ kind: 'pytorch_forward', shape: row.shape, mode: m, ms: r3(p.ms_per_forward), tflops: r3(p.tflops), native_over_pytorch: ratio(row.native_ms, p.ms_per_forward), device: p.device_name });
  }
}
// BEST_FLAGS: the native jobs again with kernel flags, against the defaults.
const bestFlags = existsSync(path.join(dir, 'best-flags.txt')) ? readFileSync(path.join(dir, 'best-flags.txt'), 'utf8').trim() : null;
const bestRows = [];
if (bestFlags) {
  const bf = json('native-forward-best.json');
  for (const r of (bf && bf.results) || []) {
    const base = nf && nf.results.find((b) => b.batch === r.batch && b.length === r.length);
    bestRows.push({ kind: 'best_flags', flags: bestFlags, job: `forward ${r.batch}x${r.length}`, value: r3(r.ms_per_forward), unit: 'ms', defaults: r3(base && base.ms_per_forward), ratio: ratio(r.ms_per_forward, base && base.ms_per_forward), tflops: r3(r.tflops), validation: bf.validation });
  }
  for (const job of ['standard']) {
    const b = json(`native-${job}-best.json`), d = json(`native-${job}.json`);
    for (const r of (b && b.results) || []) {
      if (r.loop !== 'device') continue;
      const base = d && d.results.find((x) => x.loop === 'device' && x.sampler === r.sampler && x.compat === r.compat);
      bestRows.push({ kind: 'best_flags', flags: bestFlags, job: `${job} sampler ${r.sampler ? 'on' : 'off'}${r.compat ? ' ' + r.compat : ''}`, value: r3(r.seconds), unit: 's', defaults: r3(base && base.seconds), ratio: ratio(r.seconds, base && base.seconds) });
    }
  }
  for (const o of bestRows) emit(o);
}
if (nf && nf.validation) emit({ kind: 'validation', side: 'native', ...nf.validation });
if (cf && cf.validation) emit({ kind: 'validation', side: 'dawn_cli', ...cf.validation });

// Whole generations: the device loop's medians, sampler head on and off.
const loopRows = [];
for (const job of ['small', 'standard']) {
  const nl = json(`native-${job}.json`), cl = json(`cli-${job}.json`);
  const pk = jsonl(`pkg-${job}.jsonl`);
  const pt = json(`pytorch-${job}.json`);
  if (nl) adapters.native = adapters.native || nl.backend;
  if (cl) adapters.dawn_cli = adapters.dawn_cli || cl.backend;
  const info = pk.find((x) => x.info);
  if (info) adapters.dawn_package = info.info.backendName;
  for (const e of pk.filter((x) => x.error)) errors.push(`package ${job}: ${e.error.split('\n')[0]}`);
  const pick = (rep, sampler, compat) => rep && rep.results && rep.results.find((r) => r.sampler === sampler && r.compat === compat && r.loop === 'device');
  for (const compat of ['', 'critic-on-input']) {
    for (const sampler of [true, false]) {
      const a = pick(nl, sampler, compat), c = pick(cl, sampler, compat);
      const p = compat === '' ? pk.find((x) => x.sampler === sampler && x.seconds) : null;
      if (!a && !c && !p) continue;
      const row = { kind: 'loop', job, compat, sampler, shape: `${(a || c || p).batch}x${(a || c || p).length}x${(a || c || p).iterations}`, native_s: r3(a && a.seconds), dawn_cli_s: r3(c && c.seconds), package_s: compat === '' ? r3(p && p.seconds) : undefined, ratio_cli: ratio(c && c.seconds, a && a.seconds), ratio_package: compat === '' ? ratio(p && p.seconds, a && a.seconds) : undefined };
      for (const run of (pt && pt.runs) || []) {
        if ((run.sampler === 'on') === sampler && (run.compat === 'none' ? '' : run.compat) === compat) row[`pytorch_${run.dtype}_s`] = r3(run.seconds);
      }
      emit(row);
      loopRows.push(row);
      if (compat === '') {
        const sa = (a && a.gpu_stage_ms) || {}, sc = (c && c.gpu_stage_ms) || {};
        for (const k of new Set([...Object.keys(sa), ...Object.keys(sc)])) {
          const s = { kind: 'stage', what: `${job} sampler ${sampler ? 'on' : 'off'} (one generation)`, stage: k, native_ms: r3(sa[k]), dawn_ms: r3(sc[k]), ratio: ratio(sc[k], sa[k]) };
          emit(s);
          stageRows.push(s);
        }
      }
    }
  }
  if (pt && pt.runs) emit({ kind: 'pytorch', job, device: pt.device_name || pt.device || null, torch: pt.torch_version || null });
}
// SMALL_VARIANTS: the small job's sampler-head generation with other flags,
// against the same side's default run (native 1024 wave slots, js/wasm 16).
const slotRows = [];
{
  const sampled = (rep) => rep && rep.results && rep.results.find((r) => r.sampler === true && r.compat === '' && r.loop === 'device');
  const base = { native: sampled(json('native-small.json')), dawn_cli: sampled(json('cli-small.json')) };
  const vf = path.join(dir, 'variants.tsv');
  const variants = existsSync(vf) ? readFileSync(vf, 'utf8').split('\n').filter((l) => l.includes('\t')).map((l) => l.split('\t')) : [];
  for (const [n, flags] of variants) {
    for (const [side, file] of [['native', 'native'], ['dawn_cli', 'cli']]) {
      const r = sampled(json(`${file}-small-var${n}.json`));
      const o = { kind: 'small_variant', side, flags, s: r3(r && r.seconds), default_s: r3(base[side] && base[side].seconds), ratio_to_default: ratio(r && r.seconds, base[side] && base[side].seconds), dispatches_per_iteration: r && r.dispatches_per_iteration, submits_per_iteration: r && r.submits_per_iteration, gpu_stage_ms: r && r.gpu_stage_ms, device_host_ms: r && r.device_host_ms };
      emit(o);
      slotRows.push(o);
    }
  }
}
const ad = jsonl('adapter.jsonl')[0];
if (ad) {
  if (ad.error) errors.push(`dawn adapter: ${ad.error}`);
  adapters.dawn_adapter = ad.error ? null : { vendor: ad.vendor, architecture: ad.architecture, device: ad.device, description: ad.description, subgroups: (ad.features || []).includes('subgroups'), timestamp_query: (ad.features || []).includes('timestamp-query'), shader_f16: (ad.features || []).includes('shader-f16'), subgroup_sizes: [ad.subgroupMinSize, ad.subgroupMaxSize], features: ad.features, limits: ad.limits };
}
emit({ kind: 'adapters', ...adapters });
const ratios = [...fwdRows.map((r) => r.ratio), ...loopRows.filter((r) => r.compat === '').flatMap((r) => [r.ratio_cli, r.ratio_package])].filter((x) => x != null);
emit({ kind: 'goal', goal: 'Dawn/wasm within 1.5x of native per job', jobs_measured: ratios.length, worst_ratio: ratios.length ? Math.max(...ratios) : null, met: ratios.length ? Math.max(...ratios) <= 1.5 : null });
for (const e of errors) emit({ kind: 'error', message: e });

// The Markdown.
const md = [];
md.push(`Native: ${adapters.native || '-'}; Dawn (CLI wasm): ${adapters.dawn_cli || '-'}; Dawn (package): ${adapters.dawn_package || '-'}.`);
if (adapters.dawn_adapter) {
  const d = adapters.dawn_adapter;
  md.push(`Dawn adapter features: subgroups ${d.subgroups ? 'yes' : 'no'} (sizes ${d.subgroup_sizes.join('-')}), timestamp-query ${d.timestamp_query ? 'yes' : 'no'}, shader-f16 ${d.shader_f16 ? 'yes' : 'no'}.`);
}
md.push('');
md.push('| job | native (wgpu-native, Vulkan) | Dawn: remask CLI as js/wasm | Dawn: npm package | ratio CLI / package | PyTorch fp32 / TF32 / fp16 |');
md.push('|---|---:|---:|---:|---:|---:|');
for (const r of fwdRows) {
  const pts = ['fp32', 'fp32_tf32', 'fp16_autocast'].map((d) => r[`pytorch_${d}_ms`]);
  const pt = pts.every((x) => x == null) ? '-' : pts.map((x) => f(x)).join(' / ') + ' ms';
  md.push(`| forward ${r.shape} | ${u(r.native_ms, 'ms')} | ${u(r.dawn_cli_ms, 'ms')}${r.dawn_f16_ms != null ? ` (f16: ${u(r.dawn_f16_ms, 'ms')})` : ''} | - | ${fr(r.ratio)} / - | ${pt} |`);
}
for (const r of loopRows.filter((r) => r.compat === '')) {
  const pts = ['fp32', 'fp32_tf32', 'fp16'].map((d) => r[`pytorch_${d}_s`]);
  const pt = pts.every((x) => x == null) ? '-' : pts.map((x) => f(x)).join(' / ') + ' s';
  md.push(`| ${r.job} ${r.shape}, sampler ${r.sampler ? 'on' : 'off'} | ${u(r.native_s, 's')} | ${u(r.dawn_cli_s, 's')} | ${u(r.package_s, 's')} | ${fr(r.ratio_cli)} / ${fr(r.ratio_package)} | ${pt} |`);
}
const crit = loopRows.filter((r) => r.compat !== '');
if (crit.length) {
  md.push('');
  md.push('critic-on-input variants (CLI only): ' + crit.map((r) => `${r.job} sampler ${r.sampler ? 'on' : 'off'} ${u(r.native_s, 's')} native, ${u(r.dawn_cli_s, 's')} Dawn (${fr(r.ratio_cli)})`).join('; ') + '.');
}
if (bestRows.length) {
  md.push('');
  md.push(`Native with \`${bestFlags}\` against the defaults of the same run:`);
  md.push('');
  md.push('| job | with the flags | defaults | ratio |');
  md.push('|---|---:|---:|---:|');
  for (const r of bestRows) md.push(`| ${r.job} | ${u(r.value, r.unit)} | ${u(r.defaults, r.unit)} | ${fr(r.ratio)} |`);
}
if (slotRows.length) {
  md.push('');
  md.push('| small job, sampler head, with | side | s | default s | ratio | GPU sampling ms | host steps ms |');
  md.push('|---|---|---:|---:|---:|---:|---:|');
  for (const r of slotRows) md.push(`| \`${r.flags}\` | ${r.side} | ${f(r.s)} | ${f(r.default_s)} | ${fr(r.ratio_to_default)} | ${f(r.gpu_stage_ms && r.gpu_stage_ms.sampling)} | ${f(r.device_host_ms && r.device_host_ms.steps)} |`);
}
if (stageRows.length) {
  md.push('');
  md.push('| GPU time per stage (timestamp queries) | stage | native ms | Dawn ms | Dawn / native |');
  md.push('|---|---|---:|---:|---:|');
  for (const s of stageRows) md.push(`| ${s.what} | ${s.stage} | ${f(s.native_ms)} | ${f(s.dawn_ms)} | ${fr(s.ratio)} |`);
}
if (steps.length) {
  md.push('');
  md.push('Steps: ' + steps.map((s) => `${s.step} ${s.rc === 0 ? 'ok' : s.rc === 'skipped' ? 'skipped' : 'rc ' + s.rc} ${s.seconds != null ? s.seconds + ' s' : ''}`.trim()).join('; ') + '.');
}
for (const e of errors) md.push(`\nerror: ${e}`);
console.log('\n' + md.join('\n'));
