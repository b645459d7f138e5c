// consumer.mjs: a user of the remask npm package, run by test.mjs inside an
// empty temporary project where the packed tarball was installed with npm.
// It imports the package by its name only and prints one JSON line per
// result ("RESULT {...}"); test.mjs checks them.
//
//   node consumer.mjs cpu MODEL        the CPU engine: text, events, errors, aborts, bytes
//   node consumer.mjs no-webgpu MODEL  without the webgpu package installed
//   node consumer.mjs webgpu MODEL     Dawn (the webgpu package), backend 'webgpu'
import * as pkg from 'remask';
import { readFile } from 'node:fs/promises';

const { Remask, RemaskError } = pkg;
const [mode, model] = process.argv.slice(2);
const out = (name, value) => console.log('RESULT ' + JSON.stringify({ name, value }));
// The options of the text test; test.mjs runs bin/remask sample with the same.
const JOB = JSON.parse(process.env.REMASK_JOB);

async function caught(p) {
  try {
    await p;
    return { ok: true };
  } catch (e) {
    return { name: e.name, code: e.code, field: e.field, message: e.message, remask: e instanceof RemaskError };
  }
}

async function textOf(engine, id, opts = {}, init = {}) {
  const events = [];
  let done = null;
  for await (const ev of engine.generate({ ...JOB, model: id, ...opts }, init)) {
    events.push(ev.event);
    if (ev.event === 'done') done = ev;
  }
  return { events, text: done && done.samples[0].text, backend: done && done.backend };
}

out('exports', Object.keys(pkg).sort());

if (mode === 'no-webgpu') {
  out('create-webgpu', await caught(Remask.create({ backend: 'webgpu' })));
  const e = await Remask.create({ backend: 'auto' });
  out('auto-info', { backend: e.info.backend, fallbackReason: e.info.fallbackReason, runtime: e.info.runtime });
  // Left open on purpose: an idle engine must not keep the process alive.
  out('idle-health', (await e.fetch('/v1/health')).status);
} else if (mode === 'webgpu') {
  const t0 = performance.now();
  const e = await Remask.create({ backend: 'webgpu' });
  out('info', { backend: e.info.backend, adapter: e.info.adapter, fallbackReason: e.info.fallbackReason, startup: e.startup, ms: Math.round(performance.now() - t0) });
  const m = await e.loadModel(model);
  const t1 = performance.now();
  out('text', { ...(await textOf(e, m.id)), ms: Math.round(performance.now() - t1) });
  e.close();
  // The WebGPU spec's default limits (what every adapter has): remaskHost.limits.
  const d = await Remask.create({ backend: 'webgpu', limits: 'default' });
  const md = await d.loadModel(model);
  out('default-limits', { ...(await textOf(d, md.id)), limits: d.info.limits, engine: d.info.backend });
  d.close();
} else if (mode === 'cpu') {
  out('bad-backend', await caught(Remask.create({ backend: 'gpu' })));
  out('bad-option', await caught(Remask.create({ backen: 'cpu' })));
  const early = new AbortController();
  const p = Remask.create({ backend: 'cpu', signal: early.signal });
  early.abort();
  out('create-abort', await caught(p));

  const e = await Remask.create({ backend: 'cpu' });
  out('info', { backend: e.info.backend, fallbackReason: e.info.fallbackReason, runtime: e.info.runtime, limits: e.info.limits });
  const progress = [];
  const m = await e.loadModel(model, { onProgress: (p) => progress.push(p) });
  out('load', { id: m.id, kind: m.kind, progress: progress.length, last: progress[progress.length - 1] });
  out('text', await textOf(e, m.id));

  // The same file as bytes, under its own id, with its sha256.
  const bytes = new Uint8Array(await readFile(model));
  const sum = Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', bytes)), (b) => b.toString(16).padStart(2, '0')).join('');
  const mb = await e.loadModel(bytes, { id: 'from-bytes', sha256: sum });
  out('bytes', { id: mb.id, ...(await textOf(e, mb.id)) });

  const wrong = '0'.repeat(64);
  out('sha-mismatch', await caught(e.loadModel(bytes, { id: 'wrong-sum', sha256: wrong })));
  out('not-a-model', await caught(e.loadModel(new TextEncoder().encode('this is not a model'), { id: 'text' })));
  out('missing-file', await caught(e.loadModel('./no-such-file.safetensors')));
  out('unknown-id', await caught(textOf(e, 'no-such-model')));
  out('by-id', (await e.loadModel(m.id)).id);
  out('bad-generate', await caught(textOf(e, m.id, { top_p: 2 })));

  // An abort in the middle of a generation: after the first iteration.
  const ctl = new AbortController();
  let iterations = 0;
  const aborted = await caught(
    (async () => {
      for await (const ev of e.generate({ ...JOB, model: m.id, iterations: 50 }, { signal: ctl.signal })) {
        if (ev.event === 'iteration' && ++iterations === 1) ctl.abort();
      }
    })()
  );
  out('generate-abort', { ...aborted, iterations });
  // An abort during a load (the read of the file).
  const lctl = new AbortController();
  const lp = e.loadModel(bytes, { id: 'aborted-load', signal: lctl.signal });
  lctl.abort();
  out('load-abort', await caught(lp));
  // The engine still answers after the aborts, and the HTTP-shaped API works.
  const h = await e.fetch('/v1/health');
  const health = await h.json();
  out('health', { status: h.status, backend: health.backend, running: health.queue && health.queue.running });
  out('text-again', await textOf(e, m.id));

  // An abort while queued: a second generation waits behind a long one.
  const long = new AbortController();
  let firstIteration;
  const started = new Promise((r) => (firstIteration = r));
  const a = caught(
    (async () => {
      for await (const ev of e.generate({ ...JOB, model: m.id, iterations: 200 }, { signal: long.signal })) if (ev.event === 'iteration') firstIteration();
    })()
  );
  await started;
  const qctl = new AbortController();
  const seen = [];
  const queued = await caught(
    (async () => {
      for await (const ev of e.generate({ ...JOB, model: m.id }, { signal: qctl.signal })) {
        seen.push(ev.event);
        if (ev.event === 'queued') qctl.abort();
      }
    })()
  );
  out('queue-abort', { ...queued, seen });
  long.abort();
  await a;

  // close() during a generation: the pending iteration rejects, nothing hangs.
  let n = 0;
  const closing = await caught(
    (async () => {
      for await (const ev of e.generate({ ...JOB, model: m.id, iterations: 200 })) if (ev.event === 'iteration' && ++n === 1) e.close();
    })()
  );
  out('close-during', { ...closing, iterations: n });
  out('after-close', await caught(e.fetch('/v1/health')));
}
out('exit', true);
