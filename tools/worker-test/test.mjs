// remask's Cloudflare Worker (wasm/worker) under workerd, Cloudflare's
// open-source runtime: no account, no network. Run by ./build.sh test after
// ./build.sh worker and a build of bin/remask (for the native CPU backend's
// text); docs/edge.md.
//
//   node tools/worker-test/test.mjs     (from the repository root)
//
// Every check that fails is printed and makes the exit status 1. The
// measurements (bundle sizes, memory, CPU and wall time) are printed as one
// JSON line at the end (and written to $WORKER_MEASURE when set).
import { spawn, execFileSync } from 'node:child_process';
import { readFileSync, statSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { gzipSync } from 'node:zlib';
import path from 'node:path';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const DIST = path.join(ROOT, 'wasm/worker/dist');
const WORKERD = path.join(ROOT, 'tools/worker-test/node_modules/.bin/workerd');
const ISOLATE_MEMORY = 128 << 20; // Cloudflare's memory limit per isolate
const failures = [];
const measured = {};

function check(ok, what, detail) {
  const line = `${ok ? 'ok  ' : 'FAIL'} ${what}${detail ? ': ' + detail : ''}`;
  console.log(line);
  if (!ok) failures.push(line);
}

function freePort() {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.on('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address();
      s.close(() => resolve(port));
    });
  });
}

// cpuSeconds: user + system CPU time of a process so far (Linux /proc).
function cpuSeconds(pid) {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const fields = f.slice(f.lastIndexOf(')') + 2).split(' ');
  const ticks = Number(fields[11]) + Number(fields[12]); // utime, stime
  return ticks / 100; // USER_HZ is 100 on Linux
}

function rssBytes(pid) {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) * 1024 : -1;
}

// The worker logs its wasm linear memory whenever it grew (worker.mjs).
let log = '';
function wasmMemoryLogged() {
  let max = 0;
  for (const m of log.matchAll(/wasm memory (\d+) bytes/g)) max = Math.max(max, Number(m[1]));
  return max;
}

async function startWorkerd() {
  const port = await freePort();
  const p = spawn(WORKERD, ['serve', 'wasm/worker/workerd.capnp', '--directory-path', `assets=${path.join(DIST, 'assets')}`,
    '--socket-addr', `http=127.0.0.1:${port}`], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  p.stdout.on('data', (d) => (log += d));
  p.stderr.on('data', (d) => (log += d));
  const base = `http://127.0.0.1:${port}`;
  const t0 = performance.now();
  for (let i = 0; i < 200; i++) {
    if (p.exitCode !== null) throw new Error(`workerd exited (${p.exitCode}): ${log}`);
    try {
      await fetch(`${base}/v1/health`);
      // From the process start to the first answer: workerd's start, the
      // wasm compile, the Go instance's start (nothing read yet).
      measured.first_answer_ms = Math.round(performance.now() - t0);
      return { p, base };
    } catch {
      await new Promise((r) => setTimeout(r, 100));
    }
  }
  throw new Error(`workerd did not answer on ${base}: ${log}`);
}

const post = (base, path, body, headers = {}) =>
  fetch(base + path, { method: 'POST', headers: { 'Content-Type': 'application/json', ...headers }, body: typeof body === 'string' ? body : JSON.stringify(body) });

// generate runs a streamed generation and returns its events, wall and CPU time.
async function generate(base, pid, o) {
  const c0 = cpuSeconds(pid);
  const t0 = performance.now();
  const res = await post(base, '/v1/generate', { ...o, stream: true });
  const text = await res.text();
  const wall = (performance.now() - t0) / 1000;
  const cpu = cpuSeconds(pid) - c0;
  const events = text.trim().split('\n').filter(Boolean).map((l) => JSON.parse(l));
  return { res, events, wall, cpu };
}

function native(o) {
  const out = execFileSync(path.join(ROOT, 'bin/remask'), ['sample', '--backend', 'cpu', '--json', '--model', 'models/shakespeare.safetensors',
    '--num-samples', String(o.num_samples), '--sequence-length', String(o.sequence_length), '--iterations', String(o.iterations),
    '--seed', String(o.seed)], { cwd: ROOT, encoding: 'utf8' });
  return JSON.parse(out);
}

// Bundle sizes: the script Cloudflare limits (worker.mjs, wasm_exec.js, the
// wasm), raw and gzip -9 as an upload compresses it; the model is an asset.
{
  const files = ['worker.mjs', 'wasm_exec.js', 'remask-worker.wasm'].map((f) => readFileSync(path.join(DIST, f)));
  const raw = files.reduce((n, b) => n + b.length, 0);
  measured.bundle_bytes = raw;
  measured.bundle_gzip_bytes = gzipSync(Buffer.concat(files), { level: 9 }).length;
  measured.wasm_bytes = files[2].length;
  measured.wasm_gzip_bytes = gzipSync(files[2], { level: 9 }).length;
  measured.model_asset_bytes = statSync(path.join(DIST, 'assets/models/shakespeare.safetensors')).size;
  check(measured.bundle_gzip_bytes <= 10 << 20, 'bundle fits the paid plan (10 MiB compressed)', `${measured.bundle_gzip_bytes} bytes gzip, ${raw} raw`);
  check(measured.model_asset_bytes <= 25 << 20, 'model fits a static asset (25 MiB per file)', `${measured.model_asset_bytes} bytes`);
}

const { p, base } = await startWorkerd();
const pid = p.pid;
try {
  measured.workerd_rss_started = rssBytes(pid);

  // Health and models.
  {
    const res = await fetch(`${base}/v1/health`);
    const h = await res.json();
    check(res.status === 200 && h.status === 'ok' && h.backend === 'cpu', 'GET /v1/health', `${res.status} ${h.status} ${h.backend}`);
    check(h.limits?.max_tokens === 512 && h.limits?.max_work === 8192 && h.limits?.loading === false, 'health shows the Worker limits', JSON.stringify(h.limits));
    const mres = await fetch(`${base}/v1/models`);
    const m = await mres.json();
    check(mres.status === 200 && m.models?.length === 1 && m.models[0].id === 'shakespeare' && m.default_model === 'shakespeare',
      'GET /v1/models lists the shipped model', m.models?.map((x) => x.id).join(','));
  }

  // A small streamed generation: the text equals the native CPU backend's.
  const small = { num_samples: 1, sequence_length: 64, iterations: 8, seed: 1 };
  const want = native(small).samples[0].text;
  {
    const g = await generate(base, pid, small);
    const done = g.events.at(-1);
    const iters = g.events.filter((e) => e.event === 'iteration').length;
    check(g.res.status === 200 && g.res.headers.get('content-type') === 'application/x-ndjson', 'POST /v1/generate streams NDJSON', `${g.res.status} ${g.res.headers.get('content-type')}`);
    check(g.events[0]?.event === 'start' && iters === 8 && done?.event === 'done', 'stream: start, 8 iterations, done', g.events.map((e) => e.event).join(','));
    check(done?.samples?.[0]?.text === want, '1x64x8 seed 1 text equals the native CPU backend', JSON.stringify(done?.samples?.[0]?.text));
    measured.first_1x64x8 = { wall_s: +g.wall.toFixed(2), cpu_s: +g.cpu.toFixed(2), note: 'includes reading and widening the model' };
    await new Promise((r) => setTimeout(r, 300)); // workerd's log line
    measured.wasm_memory_after_load = wasmMemoryLogged();
    measured.workerd_rss_after_load = rssBytes(pid);
  }
  // The long measurements (docs/edge.md) run when WORKER_MEASURE is set.
  const sizes = [small];
  if (process.env.WORKER_MEASURE) sizes.push({ num_samples: 1, sequence_length: 256, iterations: 15, seed: 2 }, { num_samples: 1, sequence_length: 512, iterations: 16, seed: 2 });
  for (const o of sizes) {
    const g = await generate(base, pid, o);
    const done = g.events.at(-1);
    const key = `${o.num_samples}x${o.sequence_length}x${o.iterations}`;
    check(done?.event === 'done', `${key} generation (model loaded) ends with done`, `${g.wall.toFixed(2)} s wall, ${g.cpu.toFixed(2)} s CPU`);
    if (o === small) check(done?.samples?.[0]?.text === want, `${key} again: same text (the model stayed loaded)`);
    measured[key] = { wall_s: +g.wall.toFixed(2), cpu_s: +g.cpu.toFixed(2), engine_seconds: done?.seconds };
  }
  const loads = (await (await fetch(`${base}/v1/health`)).json()).loaded;
  check(loads === 1, 'the model is loaded once and kept', `loaded=${loads}`);

  // Validation errors.
  {
    const res = await post(base, '/v1/generate', { num_samples: 0 });
    const e = (await res.json()).error;
    check(res.status === 400 && e?.field === 'num_samples', 'num_samples 0: 400 naming the field', `${res.status} ${e?.code} ${e?.message}`);
    const r2 = await post(base, '/v1/generate', { num_samples: 1, temprature: 1 });
    const e2 = (await r2.json()).error;
    check(r2.status === 400 && e2?.code === 'unknown_field', 'a misspelt field: 400 unknown_field', `${r2.status} ${e2?.code}`);
  }

  // Requests over the Worker's limits: 413 naming the limit, and the Worker keeps serving.
  {
    const res = await post(base, '/v1/generate', { num_samples: 1, sequence_length: 512, iterations: 64, seed: 1 });
    const e = (await res.json()).error;
    check(res.status === 413 && e?.code === 'too_much_work' && / 8192 /.test(e?.message), '1x512x64: 413 too_much_work naming the limit', `${res.status} ${e?.code}: ${e?.message}`);
    const r2 = await post(base, '/v1/generate', { num_samples: 4, sequence_length: 1024, iterations: 2 });
    const e2 = (await r2.json()).error;
    check(r2.status === 413 && e2?.code === 'too_many_tokens' && / 512 tokens/.test(e2?.message), '4x1024: 413 too_many_tokens naming the limit', `${r2.status} ${e2?.code}: ${e2?.message}`);
    const r3 = await post(base, '/v1/generate', JSON.stringify({ num_samples: 1, template: 'x'.repeat(200_000) }));
    const e3 = (await r3.json()).error;
    check(r3.status === 413 && /65536|64 KiB/.test(e3?.message ?? ''), 'a 200 kB body: 413 naming the 64 KiB limit', `${r3.status} ${e3?.code}: ${e3?.message}`);
    const r4 = await post(base, '/v1/models', { path: '/etc/passwd' });
    check(r4.status === 403, 'loading a path is refused on the Worker', `${r4.status} ${(await r4.json()).error?.code}`);
    const h = await fetch(`${base}/v1/health`);
    check(h.status === 200, 'the Worker still serves after the refusals');
  }

  // CORS as engine/api's Guard defines it: loopback pages (the site served
  // locally) pass, other origins get 403 unless ALLOW_ORIGINS names them.
  {
    const pre = await fetch(`${base}/v1/generate`, { method: 'OPTIONS', headers: { Origin: 'http://127.0.0.1:8080', 'Access-Control-Request-Method': 'POST', 'Access-Control-Request-Headers': 'content-type' } });
    check(pre.status === 204 && pre.headers.get('access-control-allow-origin') === 'http://127.0.0.1:8080' && /content-type/i.test(pre.headers.get('access-control-allow-headers') ?? ''),
      'preflight from the local site: 204 with CORS headers', `${pre.status} ${pre.headers.get('access-control-allow-origin')} ${pre.headers.get('access-control-allow-methods')}`);
    const g = await fetch(`${base}/v1/health`, { headers: { Origin: 'http://localhost:8080' } });
    check(g.status === 200 && g.headers.get('access-control-allow-origin') === 'http://localhost:8080', 'GET from a loopback page gets Access-Control-Allow-Origin');
    const bad = await fetch(`${base}/v1/generate`, { method: 'OPTIONS', headers: { Origin: 'https://evil.example', 'Access-Control-Request-Method': 'POST' } });
    const be = await bad.json();
    check(bad.status === 403 && be.error?.code === 'origin_not_allowed' && !bad.headers.get('access-control-allow-origin'), 'another origin: 403 origin_not_allowed', `${bad.status} ${be.error?.code}`);
  }

  // Cancellation: the client goes away mid-stream; the generation stops
  // (the isolate's CPU goes idle, the queue empties) and the next one runs.
  {
    const ctl = new AbortController();
    const res = await fetch(`${base}/v1/generate`, { method: 'POST', signal: ctl.signal, headers: { 'Content-Type': 'application/json' },
      body: JSON.stringify({ num_samples: 1, sequence_length: 128, iterations: 15, seed: 3, stream: true }) });
    const reader = res.body.getReader();
    const dec = new TextDecoder();
    let buf = '';
    while (!/"event":"iteration"/.test(buf)) {
      const { done, value } = await reader.read();
      if (done) break;
      buf += dec.decode(value);
    }
    const t0 = performance.now();
    ctl.abort(); // closes the connection
    await reader.cancel().catch(() => {});
    let running = true;
    for (let i = 0; i < 100 && running; i++) {
      await new Promise((r) => setTimeout(r, 100));
      running = (await (await fetch(`${base}/v1/health`)).json()).queue.running;
    }
    const stopped = (performance.now() - t0) / 1000;
    check(!running, 'client disconnect: the generation stops', `queue idle ${stopped.toFixed(2)} s after the disconnect`);
    const c0 = cpuSeconds(pid);
    await new Promise((r) => setTimeout(r, 1000));
    const idle = cpuSeconds(pid) - c0;
    check(idle < 0.3, 'after the disconnect the isolate is idle', `${idle.toFixed(2)} s CPU in the next second`);
    measured.cancel_stopped_s = +stopped.toFixed(2);
    const g = await generate(base, pid, small);
    check(g.events.at(-1)?.samples?.[0]?.text === want, 'the next generation runs and gives the same text');
  }

  measured.wasm_memory_max = wasmMemoryLogged();
  measured.workerd_rss_end = rssBytes(pid);
  check(measured.wasm_memory_max > 0 && measured.wasm_memory_max < ISOLATE_MEMORY, 'wasm memory stays under the 128 MiB isolate limit', `${measured.wasm_memory_max} bytes at most`);
  check(!/panic|fatal error|Uncaught/.test(log), 'workerd logged no panic or uncaught error', log.match(/.*(panic|fatal error|Uncaught).*/)?.[0]);
} catch (e) {
  check(false, 'the Worker test ran to its end', e.stack || String(e));
} finally {
  p.kill('SIGTERM');
}

console.log('measured ' + JSON.stringify(measured));
if (process.env.WORKER_MEASURE) writeFileSync(process.env.WORKER_MEASURE, JSON.stringify(measured, null, 2) + '\n');
if (failures.length) {
  console.log(`\n${failures.length} check(s) failed; workerd's log:\n${log.slice(-4000)}`);
  process.exit(1);
}
console.log('worker tests passed');
