// Characters per second of the shipped language models in the page's in-page
// CPU engine (Go's wasm on one thread, in Debian's Chromium without WebGPU),
// through the page's own API (remask.fetch). docs/models.md and
// docs/browser.md quote what it prints.
//
//   ./build.sh build && node tools/browser-test/speed.mjs [runs]
//
// Each model: one warm-up run (it loads the model), then `runs` timed runs
// (default 3) of 1 sample x 128 characters, 8 passes, seed 1, critic
// remasking, no quality metric; the engine's own tokens_per_second of each
// run and their median are printed.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { chromium } from 'playwright-core';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const RUNS = Number(process.argv[2] || 3);
const BODY = { num_samples: 1, sequence_length: 128, iterations: 8, seed: 1, remasking: 'critic', quality_metric: 'none', stream: false };

const srv = spawn(path.join(ROOT, 'bin/remask'), ['serve', '--site', 'site/dist', '--addr', '127.0.0.1:0', '--threads', '1'], { cwd: ROOT, stdio: ['ignore', 'ignore', 'pipe'] });
const url = await new Promise((resolve, reject) => {
  let buf = '';
  srv.stderr.setEncoding('utf8');
  srv.stderr.on('data', (d) => {
    buf += d;
    const m = /msg=listening url=(\S+)/.exec(buf);
    if (m) resolve(m[1]);
  });
  srv.on('exit', (c) => reject(new Error(`remask serve exited (${c})`)));
});
const browser = await chromium.launch({ executablePath: process.env.CHROMIUM || '/usr/bin/chromium', headless: true, args: ['--no-sandbox', '--disable-gpu'] });
try {
  const page = await browser.newPage();
  await page.goto(url + '?backend=cpu');
  await page.waitForFunction(() => window.remask && window.remask.engine, null, { timeout: 120000 });
  console.log(`engine: ${JSON.stringify(await page.evaluate(() => ({ webgpu: remask.engine.webgpu, requested: remask.engine.requested })))}`);
  for (const model of ['shakespeare-small', 'shakespeare']) {
    const tps = [];
    for (let i = 0; i <= RUNS; i++) {
      const r = await page.evaluate(async (body) => {
        const resp = await remask.fetch('/v1/generate', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body) });
        const j = await resp.json();
        if (!resp.ok) throw new Error(JSON.stringify(j));
        return { tps: j.tokens_per_second, seconds: j.seconds, backend: j.backend };
      }, { ...BODY, model });
      if (i > 0) tps.push(r.tps);
      console.log(`${model} run ${i}${i ? '' : ' (warm-up, loads the model)'}: ${r.tps.toFixed(1)} characters/s, ${r.seconds.toFixed(2)} s, ${r.backend}`);
    }
    tps.sort((a, b) => a - b);
    console.log(`${model}: median ${tps[Math.floor(tps.length / 2)].toFixed(1)} characters/s over ${tps.length} runs (1 x 128, 8 passes)`);
  }
} finally {
  await browser.close();
  srv.kill('SIGTERM');
}
