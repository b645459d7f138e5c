// pkgbench.mjs: times whole generations through the npm package (wasm/js) in
// Node with Dawn (the webgpu package), the jobs of `remask bench --job
// small|standard`: the same model, critic remasking (self without a
// critic), seed 1, the node quality metric, sampler head on and off; a
// warm-up generation, then REPS timed ones, the median reported. Run by
// h200.sh from a folder whose node_modules holds remask and webgpu:
//
//   node pkgbench.mjs MODEL JOB B T N REPS
//
// prints one JSON line per variant ({"side":"package",...}) and one with the
// engine's info; a failure prints {"side":"package","error":...} and exits 1.
import { Remask } from 'remask';

const [model, job, B, T, N, reps] = process.argv.slice(2);
const out = (o) => console.log(JSON.stringify({ side: 'package', ...o }));

async function generate(e, opts) {
  const t0 = performance.now();
  let done = null;
  for await (const ev of e.generate(opts)) if (ev.event === 'done') done = ev;
  const s = (performance.now() - t0) / 1000;
  if (!done) throw new Error('generate ended without a done event');
  return { s, done };
}

try {
  const t0 = performance.now();
  const e = await Remask.create({ backend: 'webgpu' });
  const startMs = performance.now() - t0;
  const m = await e.loadModel(model);
  const heads = m.heads || {};
  out({ job, info: { backend: e.info.backend, backendName: e.info.backendName, adapter: e.info.adapter, limits: e.info.limits, startup: e.startup, createMs: Math.round(startMs), model: m.id, heads } });
  const modes = heads.sampler ? [true, false] : [false];
  for (const sampler of modes) {
    const opts = {
      model: m.id, judge: 'none', num_samples: +B, sequence_length: +T, iterations: +N, seed: 1,
      remasking: heads.critic ? 'critic' : 'self', disable_sampler: !sampler,
    };
    await generate(e, opts); // warm-up: pipelines, buffers
    const secs = [];
    let last = null;
    for (let i = 0; i < +reps; i++) {
      const r = await generate(e, opts);
      secs.push(r.s);
      last = r.done;
    }
    secs.sort((a, b) => a - b);
    out({ job, batch: +B, length: +T, iterations: +N, sampler, compat: '', reps: +reps, seconds: secs[secs.length >> 1], seconds_min: secs[0], backend: last.backend, quality_metric: last.quality_metric });
  }
  e.close();
  process.exit(0);
} catch (err) {
  out({ job, error: String(err && err.stack || err) });
  process.exit(1);
}
