// The demo site in a real browser: Debian's Chromium driven by playwright-core,
// WebGPU on SwiftShader (docs/browser.md). Run by ./build.sh test after
// ./build.sh build; it serves site/dist with bin/remask serve.
//
//   node tools/browser-test/test.mjs     (from the repository root)
//
// Every check that fails is printed and makes the exit status 1.
// Screenshots go to site/test-results/.
import { spawn, execFileSync } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import path from 'node:path';
import { chromium } from 'playwright-core';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const OUT = path.join(ROOT, 'site/test-results');
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// Small settings: SwiftShader runs WebGPU on the CPU, and the fallback runs
// Go's wasm on one thread.
const SMALL = { num_samples: 1, sequence_length: 64, iterations: 4, seed: 1, judge: 'none', quality_metric: 'node' };
// SwiftShader needs about 10 s per iteration of the shipped model at 64
// characters on 2 cores: the WebGPU path gets the smallest useful run.
const TINY = { ...SMALL, sequence_length: 32, iterations: 3 };
// WebGPU and the CPU agree except where two probabilities are within float
// rounding of a sampling boundary (docs/sampling.md, Randomness), so the
// WebGPU text must match the native CPU backend on >= 99% of characters; the
// in-page CPU backend must match it exactly.
const failures = [];
const t00 = Date.now();

function check(ok, what, detail) {
  const line = `${ok ? 'ok  ' : 'FAIL'} ${what}${detail ? ': ' + detail : ''}`;
  console.log(line);
  if (!ok) failures.push(line);
}

const nativeCache = new Map();
function nativeCPU(o) {
  const key = JSON.stringify(o);
  if (!nativeCache.has(key)) nativeCache.set(key, nativeCPURun(o));
  return nativeCache.get(key);
}
function nativeCPURun(o) {
  const out = execFileSync(path.join(ROOT, 'bin/remask'), ['sample', '--backend', 'cpu', '--json', '--model', 'models/shakespeare.safetensors',
    '--num-samples', String(o.num_samples), '--sequence-length', String(o.sequence_length), '--iterations', String(o.iterations),
    '--seed', String(o.seed), '--quality-metric', o.quality_metric], { cwd: ROOT, encoding: 'utf8' });
  return JSON.parse(out);
}

function agreement(a, b) {
  const x = Array.from(a), y = Array.from(b);
  let same = 0;
  for (let i = 0; i < Math.max(x.length, y.length); i++) if (x[i] === y[i]) same++;
  return same / Math.max(x.length, y.length, 1);
}

// serve starts bin/remask serve on a free port and counts the GETs of each path.
async function serve() {
  const p = spawn(path.join(ROOT, 'bin/remask'), ['serve', '--site', 'site/dist', '--addr', '127.0.0.1:0', '--threads', '1'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
  const gets = new Map();
  let url;
  await new Promise((resolve, reject) => {
    let buf = '';
    p.stderr.setEncoding('utf8');
    p.stderr.on('data', (d) => {
      buf += d;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        const m = /msg=listening url=(\S+)/.exec(line);
        if (m) (url = m[1]), resolve();
        const r = /msg=request method=GET path=(\S+) status=(\d+)/.exec(line);
        if (r) gets.set(r[1], (gets.get(r[1]) || 0) + 1);
      }
    });
    p.on('exit', (c) => reject(new Error(`remask serve exited (${c}) before listening`)));
    setTimeout(() => reject(new Error('remask serve did not start in 20 s')), 20000);
  });
  return { url, gets, stop: () => p.kill('SIGTERM') };
}

async function launch(webgpu) {
  // playwright-core gives every launch a fresh profile (its own --user-data-dir).
  const args = ['--no-sandbox', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'];
  if (webgpu) args.push('--enable-unsafe-webgpu');
  const browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args });
  return { browser, cleanup: () => {} };
}

async function openPage(context, url, log) {
  const page = await context.newPage();
  page.on('console', (m) => m.type() === 'error' && log.push(`console: ${m.text()}`));
  page.on('pageerror', (e) => log.push(`page error: ${e.message}`));
  await page.addInitScript(() => {
    window.__longTasks = [];
    try {
      new PerformanceObserver((l) => window.__longTasks.push(...l.getEntries().map((e) => ({ start: e.startTime, duration: e.duration })))).observe({ type: 'longtask', buffered: true });
    } catch (e) {
      window.__longTasks = null;
    }
  });
  const t0 = Date.now();
  await page.goto(url);
  await page.waitForFunction(() => ['ready', 'error'].includes(document.body.dataset.state), null, { timeout: 60000 });
  return { page, readyMs: Date.now() - t0 };
}

// generate clicks Generate and waits; it returns what the page shows.
async function generate(page, timeout) {
  const t0 = await page.evaluate(() => performance.now());
  await page.click('#generate');
  await page.waitForFunction(() => ['done', 'error', 'stopped'].includes(document.body.dataset.state), null, { timeout, polling: 250 });
  return page.evaluate((t0) => {
    const ui = window.remaskUI;
    const run = ui.runs[0] || {};
    const iters = run.iters || [];
    return {
      state: ui.state,
      error: ui.error,
      texts: iters.map((e) => e.text[0]),
      ttft: run.ttft,
      done: run.done || null,
      metricsShown: !document.getElementById('metrics').hidden && /tokens\/s/.test(document.getElementById('metrics').textContent),
      status: document.getElementById('gen-status').textContent,
      longTasks: window.__longTasks && window.__longTasks.filter((t) => t.start >= t0).map((t) => Math.round(t.duration)),
      sources: ui.sources || [],
    };
  }, t0);
}

// visit loads url afresh (a goto that changes only the hash would not reload).
async function visit(page, url) {
  await page.goto('about:blank');
  await page.goto(url);
  await page.waitForFunction(() => ['ready', 'error'].includes(document.body.dataset.state), null, { timeout: 60000 });
}

const shareHash = (o) => '#o=' + encodeURIComponent(JSON.stringify({ preset: 'custom', model: 'shakespeare', judge: o.judge, seed: o.seed, num_samples: o.num_samples, sequence_length: o.sequence_length, iterations: o.iterations, quality_metric: o.quality_metric, heatmap: true }));

async function main() {
  mkdirSync(OUT, { recursive: true });
  const want = nativeCPU(SMALL).samples[0].text;
  console.log(`native CPU reference (seed ${SMALL.seed}, ${SMALL.num_samples} x ${SMALL.sequence_length}, ${SMALL.iterations} iterations): ${JSON.stringify(want)}`);
  const srv = await serve();
  const log = [];
  try {
    // 1. WebGPU on SwiftShader.
    const { browser, cleanup } = await launch(true);
    try {
      const context = await browser.newContext({ viewport: { width: 1100, height: 900 } });
      let { page, readyMs } = await openPage(context, srv.url + shareHash(TINY), log);
      const engine = await page.evaluate(() => window.remask.engine);
      check(engine && engine.webgpu === true, 'the page finds a WebGPU adapter', JSON.stringify(engine));
      check(/swiftshader/i.test(engine && engine.adapter), 'the adapter is SwiftShader', engine && engine.adapter);
      console.log(`     engine ready ${readyMs} ms after navigation (wasm compile ${await page.evaluate(() => remask.startup.compileMs)} ms)`);
      await page.screenshot({ path: path.join(OUT, '1-ready-webgpu.png') });

      let r = await generate(page, 240000);
      check(r.state === 'done', 'WebGPU: generation finishes', r.error || r.status);
      check(r.texts.length === TINY.iterations && new Set(r.texts).size >= 2, 'WebGPU: the text updates per iteration', `${r.texts.length} iteration events, ${new Set(r.texts).size} distinct texts`);
      check(r.metricsShown, 'WebGPU: the metrics appear (tokens/s)', r.done && `${Math.round(r.done.tokens_per_second)} tokens/s`);
      const gpuText = r.done ? r.done.samples[0].text : '';
      const wantTiny = nativeCPU(TINY).samples[0].text;
      const agree = agreement(gpuText, wantTiny);
      console.log(`     WebGPU text: ${JSON.stringify(gpuText)}; native CPU: ${JSON.stringify(wantTiny)}`);
      check(agree >= 0.99, 'WebGPU (SwiftShader) result equals the native CPU backend on >= 99% of characters', `${(agree * 100).toFixed(1)}%`);
      console.log(`     WebGPU: ${r.done && r.done.tokens_per_second.toFixed(1)} tokens/s; time to first text ${(r.ttft / 1000).toFixed(2)} s (first generation: includes the 22.5 MB download and the upload)`);
      check(r.longTasks !== null && r.longTasks.every((d) => d <= 200), 'the main thread has no long task over 200 ms during generation', `long tasks: [${r.longTasks}] ms`);
      check(srv.gets.get('/models/shakespeare.safetensors') === 1, 'the model was downloaded once', `${srv.gets.get('/models/shakespeare.safetensors')} GETs`);
      await page.screenshot({ path: path.join(OUT, '2-generated-webgpu.png'), fullPage: true });

      // 2. A reload takes the model from the Cache API. The page reloads
      // with ?backend=cpu: the in-page CPU backend, which must give exactly
      // the native CPU backend's text (same Go code, same Philox randomness).
      await page.goto(srv.url + '?backend=cpu' + shareHash(SMALL));
      await page.reload();
      await page.waitForFunction(() => document.body.dataset.state === 'ready', null, { timeout: 60000 });
      r = await generate(page, 120000);
      check(r.state === 'done', 'after a reload: generation finishes', r.error || r.status);
      check(r.sources.some((s) => s.from === 'cache') && !r.sources.some((s) => s.from === 'network'), 'after a reload: the model comes from the cache', JSON.stringify(r.sources));
      check(srv.gets.get('/models/shakespeare.safetensors') === 1, 'after a reload: no second download', `${srv.gets.get('/models/shakespeare.safetensors')} GETs of the model in the server log`);
      check(r.done && r.done.samples[0].text === want, 'in-page CPU backend: the text equals the native CPU backend exactly', r.done && JSON.stringify(r.done.samples[0].text));
      check(r.longTasks !== null && r.longTasks.every((d) => d <= 200), 'in-page CPU backend: no long task over 200 ms on the main thread', `[${r.longTasks}] ms`);
      console.log(`     in-page CPU: ${r.done && r.done.tokens_per_second.toFixed(1)} tokens/s; time to first text ${(r.ttft / 1000).toFixed(2)} s (model from the cache)`);

      // 3. Sampler head on and off side by side, on the same seed; this view,
      // scrubbed back to an iteration with masked cells and the heatmap, is
      // the README's screenshot.
      const SIDE = { ...SMALL, sequence_length: 96, iterations: 6 };
      await visit(page, srv.url + '?backend=cpu' + shareHash(SIDE).replace('heatmap', 'compare%22%3Atrue%2C%22heatmap'));
      r = await generate(page, 120000);
      const runs = await page.evaluate(() => remaskUI.runs.map((r) => ({ label: r.label, seed: r.done && r.done.seed, sampler: r.opts.disable_sampler, text: r.done && r.done.samples[0].text })));
      check(r.state === 'done' && runs.length === 2 && runs[0].seed === runs[1].seed && runs[0].sampler === false && runs[1].sampler === true,
        'sampler head on/off side by side on the same seed', JSON.stringify(runs.map((x) => x.label)));
      await page.evaluate(() => {
        const s = document.getElementById('scrub');
        s.value = 3;
        s.dispatchEvent(new Event('input'));
        window.scrollTo(0, 0);
      });
      await page.screenshot({ path: path.join(OUT, 'screenshot.png') });

      // 4. The same calls reach a remote `remask serve` (here the one serving the page).
      const remote = await page.evaluate(async () => {
        remask.useServer(location.origin);
        try {
          return await (await remask.fetch('/v1/health')).json();
        } finally {
          remask.useServer(null);
        }
      });
      check(remote && remote.status === 'ok' && remote.models >= 2, 'remask.fetch reaches a remote remask serve', JSON.stringify(remote && { backend: remote.backend, models: remote.models }));

      // 5. Offline after the first visit: the service worker serves the page
      // and the engine, the Cache API the model.
      await context.setOffline(true);
      await visit(page, srv.url + '?backend=cpu' + shareHash({ ...SMALL, sequence_length: 32, iterations: 2 }));
      r = await generate(page, 120000);
      check(r.state === 'done', 'offline: the page loads and generates from its caches', r.error || r.status);
      await context.setOffline(false);

      // 6. A bad model URL shows an error.
      await page.fill('#model-url', srv.url + 'models/nope.safetensors');
      await page.click('#load-url');
      await page.waitForFunction(() => document.getElementById('model-status').className === 'error', null, { timeout: 20000 });
      let msg = await page.textContent('#model-status');
      check(/404|not found|does not exist/i.test(msg), 'a missing model URL shows an error', msg);
      await page.fill('#model-url', srv.url + 'index.html');
      await page.click('#load-url');
      await page.waitForFunction(() => /index\.html/.test(document.getElementById('model-status').textContent) && document.getElementById('model-status').className === 'error', null, { timeout: 20000 });
      msg = await page.textContent('#model-status');
      check(/invalid_model|not a|safetensors/i.test(msg), 'a file that is not a model shows an error', msg);
      await page.screenshot({ path: path.join(OUT, '3-bad-url.png') });
      await context.close();
    } finally {
      await browser.close();
      cleanup();
    }

    // 7. WebGPU off: the CPU fallback, equal to the native CPU backend.
    const off = await launch(false);
    try {
      const context = await off.browser.newContext({ viewport: { width: 420, height: 900 }, isMobile: true });
      const { page } = await openPage(context, srv.url + shareHash(SMALL), log);
      const engine = await page.evaluate(() => window.remask.engine);
      check(engine && engine.webgpu === false && engine.gpu_problem === 'no_adapter', 'without WebGPU the engine falls back to the CPU', JSON.stringify(engine));
      const notice = await page.textContent('#engine');
      check(/No GPU/.test(notice) && /CPU/.test(notice), 'the page says so plainly', notice);
      const r = await generate(page, 240000);
      check(r.state === 'done', 'CPU fallback: generation finishes', r.error || r.status);
      const cpuText = r.done ? r.done.samples[0].text : '';
      check(cpuText === want, 'CPU fallback: the text equals the native CPU backend exactly', JSON.stringify(cpuText));
      check(r.longTasks !== null && r.longTasks.every((d) => d <= 200), 'CPU fallback: no long task over 200 ms on the main thread', `[${r.longTasks}] ms`);
      console.log(`     CPU fallback: ${r.done && r.done.tokens_per_second.toFixed(1)} tokens/s, first text after ${(r.ttft / 1000).toFixed(2)} s (includes the 22.5 MB download)`);
      await page.screenshot({ path: path.join(OUT, '4-cpu-fallback-phone.png'), fullPage: true });

      // 8. Stop: the aborted fetch cancels the generation in the engine, which
      // frees the device for the next request.
      await visit(page, srv.url + shareHash({ ...SMALL, sequence_length: 128, iterations: 500 }));
      await page.click('#generate');
      await page.waitForFunction(() => remaskUI.runs[0] && remaskUI.runs[0].iters && remaskUI.runs[0].iters.length >= 2, null, { timeout: 60000 });
      await page.click('#stop');
      await page.waitForFunction(() => document.body.dataset.state === 'stopped', null, { timeout: 10000 });
      const freed = await page.evaluate(async () => {
        for (let i = 0; i < 50; i++) {
          const h = await (await remask.fetch('/v1/health')).json();
          if (!h.queue.running) return { ms: i * 100, iterations: remaskUI.runs[0].iters.length };
          await new Promise((r) => setTimeout(r, 100));
        }
        return null;
      });
      check(freed !== null && freed.iterations < 500, 'Stop cancels the generation and frees the engine', JSON.stringify(freed));
      await context.close();
    } finally {
      await off.browser.close();
      off.cleanup();
    }
  } finally {
    srv.stop();
  }
  if (log.length) console.log('browser log:\n  ' + log.join('\n  '));
  console.log(`browser tests: ${failures.length ? failures.length + ' FAILED' : 'all passed'} in ${((Date.now() - t00) / 1000).toFixed(1)} s; screenshots in site/test-results/`);
  process.exit(failures.length ? 1 : 0);
}

main().catch((e) => {
  console.error('browser tests: FAIL:', e);
  process.exit(1);
});
