// The npm package's install test (wasm/js, docs/js.md). Run by ./build.sh
// test after ./build.sh package (the tarball in wasm/js/dist) and a build of
// bin/remask (the native CPU backend's text is the reference):
//
//   node tools/package-test/test.mjs     (from the repository root)
//
// It installs the tarball into an empty temporary project with npm (the npm
// registry is the only network it uses: webgpu and typescript come from
// there, through npm's cache), and there
//   - checks that every name the package exports is declared in index.d.ts
//     and every declared name is exported, and type-checks consumer.ts
//     (docs/js.md's API) against index.d.ts with tsc --strict;
//   - runs consumer.mjs in Node: without the webgpu package (NoWebGPUError,
//     the CPU fallback and its reason), on the CPU engine (text, events,
//     typed errors, aborts, bytes, sha256) and on Dawn (webgpu@0.6.2) with
//     Chromium's SwiftShader Vulkan driver; each text must EQUAL the native
//     CPU backend's for the same model, seed and options;
//   - serves examples/embed.html with the installed package next to it and
//     generates text with it in Chromium (playwright-core of
//     tools/browser-test), which must equal the native text too.
// With CI=true nothing is skipped: a missing piece fails the test.
import { execFileSync, spawn, spawnSync } from 'node:child_process';
import { cpSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync, copyFileSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createRequire } from 'node:module';
import { createHash } from 'node:crypto';

const ROOT = path.resolve(path.dirname(new URL(import.meta.url).pathname), '../..');
const HERE = path.join(ROOT, 'tools/package-test');
const CI = process.env.CI === 'true';
const MODEL = path.join(ROOT, 'models/shakespeare-small.safetensors');
const MODEL_SHA256 = createHash('sha256').update(readFileSync(MODEL)).digest('hex');
const SWIFTSHADER_ICD = '/usr/lib/chromium/vk_swiftshader_icd.json';
const CHROMIUM = process.env.CHROMIUM || '/usr/bin/chromium';
// The webgpu (Dawn) version tested: the package's own peer dependency
// (wasm/js/package.json, the one place it is written; build.sh's Dawn Go tests
// read it there too), pinned to its lowest version.
const WEBGPU = 'webgpu@' + JSON.parse(readFileSync(path.join(ROOT, 'wasm/js/package.json'), 'utf8')).peerDependencies.webgpu.replace(/^[\^~]/, '');
const TYPESCRIPT = 'typescript@5.9.3';
// Small: the CPU engine is Go's wasm on one thread, Dawn runs on SwiftShader.
const JOB = { num_samples: 1, sequence_length: 32, iterations: 3, seed: 1, judge: 'none', quality_metric: 'node' };
const failures = [];
const measured = {};

function check(ok, what, detail) {
  const line = `${ok ? 'ok  ' : 'FAIL'} ${what}${detail !== undefined ? ': ' + detail : ''}`;
  console.log(line);
  if (!ok) failures.push(line);
}
// missing reports something the test needs and does not have: a failure in
// CI, a note elsewhere.
function missing(what) {
  if (CI) check(false, `CI=true: ${what}`);
  else console.log(`NOTE: NOT run: ${what}`);
}

function native(job) {
  const out = execFileSync(path.join(ROOT, 'bin/remask'), ['sample', '--backend', 'cpu', '--json', '--model', MODEL,
    '--num-samples', String(job.num_samples), '--sequence-length', String(job.sequence_length), '--iterations', String(job.iterations),
    '--seed', String(job.seed), '--quality-metric', job.quality_metric], { cwd: ROOT, encoding: 'utf8' });
  return JSON.parse(out).samples[0].text;
}

function npm(cwd, args) {
  const t0 = Date.now();
  const r = spawnSync('npm', [...args, '--no-audit', '--no-fund', '--loglevel=error', '--prefer-offline'], { cwd, encoding: 'utf8', timeout: 600000 });
  return { ok: r.status === 0, ms: Date.now() - t0, out: `${r.stdout || ''}${r.stderr || ''}`.trim() };
}

// consumer runs consumer.mjs in the project; its results by name.
function consumer(project, mode, env = {}, timeout = 900000) {
  const t0 = Date.now();
  const r = spawnSync(process.execPath, ['consumer.mjs', mode, MODEL], { cwd: project, encoding: 'utf8', timeout, env: { ...process.env, REMASK_JOB: JSON.stringify(JOB), ...env } });
  const res = {};
  for (const line of (r.stdout || '').split('\n')) if (line.startsWith('RESULT ')) {
    const { name, value } = JSON.parse(line.slice(7));
    res[name] = value;
  }
  res.status = r.status;
  res.signal = r.signal;
  res.stderr = (r.stderr || '').split('\n').filter((l) => l && !/XDG_RUNTIME_DIR/.test(l)).slice(-5).join(' | ');
  res.ms = Date.now() - t0;
  return res;
}

// declared lists the runtime names index.d.ts declares.
function declared(dts) {
  const names = new Set();
  for (const m of dts.matchAll(/^export (?:declare )?(?:class|function|const|let) ([A-Za-z_$][\w$]*)/gm)) names.add(m[1]);
  if (/^export default /m.test(dts)) names.add('default');
  return [...names].sort();
}

const err = (r, name, code) => r && r.name === name && (code === undefined || r.code === code);

async function main() {
  const dist = path.join(ROOT, 'wasm/js/dist');
  const tgzs = existsSync(dist) ? readdirSync(dist).filter((f) => /^remask-.*\.tgz$/.test(f)) : [];
  if (tgzs.length !== 1) throw new Error(`want one remask-*.tgz in wasm/js/dist, found ${tgzs.length}: run ./build.sh package first`);
  const tgz = path.join(dist, tgzs[0]);
  measured.tarball_bytes = statSync(tgz).size;
  console.log(`package: ${tgz} (${measured.tarball_bytes} bytes)`);
  if (!existsSync(path.join(ROOT, 'bin/remask'))) throw new Error('bin/remask is missing: run ./build.sh build first');
  // The API's error codes that index.js maps to its classes must be codes of
  // docs/api.md's Errors table (a renamed or misspelt code fails here).
  const apiCodes = new Set([...readFileSync(path.join(ROOT, 'docs/api.md'), 'utf8').matchAll(/^\| \d{3} \| `([a-z_]+)` \|/gm)].map((m) => m[1]));
  const src = readFileSync(path.join(ROOT, 'wasm/js/index.js'), 'utf8');
  const mapped = [...src.matchAll(/^const (?:OPTION|NOT_FOUND)_CODES = new Set\(\[([^\]]*)\]\);$/gm)].flatMap((m) => [...m[1].matchAll(/'([a-z_]+)'/g)].map((x) => x[1]));
  mapped.push(...[...src.matchAll(/if \(code === '([a-z_]+)'\)/g)].map((m) => m[1]));
  const unknown = mapped.filter((c) => !apiCodes.has(c));
  check(apiCodes.size >= 25 && mapped.length >= 10 && unknown.length === 0, 'every API error code index.js maps is one of docs/api.md\'s', `${mapped.length} mapped of ${apiCodes.size}; not in api.md: ${JSON.stringify(unknown)}`);

  const want = native(JOB);
  console.log(`native CPU reference (shakespeare-small, seed ${JOB.seed}, ${JOB.num_samples} x ${JOB.sequence_length}, ${JOB.iterations} iterations): ${JSON.stringify(want)}`);

  const project = mkdtempSync(path.join(tmpdir(), 'remask-package-test-'));
  try {
    writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'remask-consumer', private: true, type: 'module' }, null, 2));
    copyFileSync(path.join(HERE, 'consumer.mjs'), path.join(project, 'consumer.mjs'));
    copyFileSync(path.join(HERE, 'consumer.ts'), path.join(project, 'consumer.ts'));

    console.log('--- npm install the tarball into an empty project');
    let r = npm(project, ['install', tgz]);
    check(r.ok, `npm install ${path.basename(tgz)}`, r.ok ? `${r.ms} ms` : r.out.slice(-400));
    if (!r.ok) return;
    const installed = path.join(project, 'node_modules/remask');
    const files = readdirSync(installed).sort();
    check(['LICENSE', 'LICENSE-go', 'README.md', 'engine-worker.js', 'index.d.ts', 'index.js', 'package.json', 'remask.wasm', 'wasm_exec.js'].every((f) => files.includes(f)), 'the package holds its JavaScript, types, the wasm, Go\'s glue and both licenses', files.join(' '));
    check(/Copyright .* The Go Authors/.test(readFileSync(path.join(installed, 'wasm_exec.js'), 'utf8')) && /Google|Go Authors/.test(readFileSync(path.join(installed, 'LICENSE-go'), 'utf8')), 'wasm_exec.js ships with its license notice and Go\'s LICENSE');

    console.log('--- Node without the webgpu package');
    let c = consumer(project, 'no-webgpu', {}, 120000);
    const dts = declared(readFileSync(path.join(installed, 'index.d.ts'), 'utf8'));
    check(JSON.stringify(c.exports) === JSON.stringify(dts), 'every exported name is declared in index.d.ts and every declared name is exported', `exports ${JSON.stringify(c.exports)}, declared ${JSON.stringify(dts)}`);
    check(err(c['create-webgpu'], 'NoWebGPUError', 'no_webgpu') && /npm install webgpu/.test(c['create-webgpu'].message), "backend 'webgpu' without the webgpu package: NoWebGPUError saying to install it", c['create-webgpu'] && c['create-webgpu'].message);
    check(c['auto-info'] && c['auto-info'].backend === 'cpu' && /webgpu/.test(c['auto-info'].fallbackReason || ''), "backend 'auto' falls back to the CPU and says why", JSON.stringify(c['auto-info']));
    check(c['idle-health'] === 200 && c.exit === true && c.status === 0, 'an idle engine left open does not keep the Node process alive', `status ${c.status} ${c.signal || ''} after ${c.ms} ms ${c.stderr}`);

    console.log('--- Node, the CPU engine');
    c = consumer(project, 'cpu');
    check(err(c['bad-backend'], 'InvalidOptionError', 'invalid_option'), "create({backend:'gpu'}): InvalidOptionError", JSON.stringify(c['bad-backend']));
    check(err(c['bad-option'], 'InvalidOptionError'), 'a misspelt create option is refused, not ignored', c['bad-option'] && c['bad-option'].message);
    check(err(c['create-abort'], 'AbortError'), 'an abort during create rejects with an AbortError', JSON.stringify(c['create-abort']));
    check(c.info && c.info.backend === 'cpu' && c.info.runtime === 'node', 'engine.info: cpu in node', JSON.stringify(c.info));
    check(c.load && c.load.id === 'shakespeare-small' && c.load.progress >= 2 && c.load.last.loaded === c.load.last.total, 'loadModel(file path) with progress to the end', JSON.stringify(c.load));
    check(c.text && JSON.stringify(c.text.events) === JSON.stringify(['start', 'iteration', 'iteration', 'iteration', 'done']), 'generate yields start, one iteration per iteration, done', c.text && c.text.events.join(','));
    check(c.text && c.text.text === want, 'Node CPU engine: the text EQUALS the native CPU backend\'s', c.text && JSON.stringify(c.text.text));
    check(c.bytes && c.bytes.id === 'from-bytes' && c.bytes.text === want, 'loadModel(Uint8Array, {sha256}) loads the same model: same text', JSON.stringify(c.bytes));
    check(err(c['sha-mismatch'], 'ModelInvalidError', 'sha256_mismatch') && /sha256/.test(c['sha-mismatch'].message), 'a sha256 mismatch: ModelInvalidError (sha256_mismatch)', c['sha-mismatch'] && c['sha-mismatch'].message);
    check(err(c['not-a-model'], 'ModelInvalidError', 'invalid_model'), 'bytes that are not a model: ModelInvalidError (invalid_model)', c['not-a-model'] && c['not-a-model'].message);
    check(err(c['missing-file'], 'ModelNotFoundError', 'source_not_found'), 'a missing file: ModelNotFoundError (source_not_found)', c['missing-file'] && c['missing-file'].message);
    check(err(c['unknown-id'], 'ModelNotFoundError', 'unknown_model'), 'generate with an unknown model id: ModelNotFoundError (unknown_model)', c['unknown-id'] && c['unknown-id'].message);
    check(c['by-id'] === 'shakespeare-small', 'loadModel(id) of a loaded model answers at once', JSON.stringify(c['by-id']));
    check(err(c['bad-generate'], 'InvalidOptionError', 'invalid_option') && c['bad-generate'].field === 'top_p', 'generate({top_p: 2}): InvalidOptionError naming top_p', c['bad-generate'] && c['bad-generate'].message);
    check(c['generate-abort'] && c['generate-abort'].name === 'AbortError' && c['generate-abort'].iterations === 1, 'an abort mid-generation rejects with an AbortError and stops it', JSON.stringify(c['generate-abort']));
    check(err(c['load-abort'], 'AbortError'), 'an abort during a load rejects with an AbortError', JSON.stringify(c['load-abort']));
    check(c.health && c.health.status === 200 && c.health.backend === 'cpu' && c.health.running === false, 'engine.fetch(/v1/health) after the aborts: nothing left running', JSON.stringify(c.health));
    check(c['text-again'] && c['text-again'].text === want, 'the engine generates the same text after the aborts', c['text-again'] && JSON.stringify(c['text-again'].text));
    check(c['queue-abort'] && c['queue-abort'].name === 'AbortError' && JSON.stringify(c['queue-abort'].seen) === '["queued"]', 'an abort while queued behind another generation rejects with an AbortError', JSON.stringify(c['queue-abort']));
    check(err(c['close-during'], 'EngineError') && c['close-during'].iterations === 1, 'close() during a generation rejects the pending iteration with EngineError (no hang)', JSON.stringify(c['close-during']));
    check(err(c['after-close'], 'EngineError'), 'after close(), requests fail with EngineError', JSON.stringify(c['after-close']));
    check(c.exit === true && c.status === 0, 'the CPU run ends and the process exits', `status ${c.status} ${c.signal || ''} ${c.stderr}`);
    measured.node_cpu_ms = c.ms;

    console.log(`--- npm install ${WEBGPU} ${TYPESCRIPT}`);
    r = npm(project, ['install', WEBGPU, TYPESCRIPT]);
    if (!r.ok) missing(`npm install ${WEBGPU} ${TYPESCRIPT} failed (no access to the npm registry?): ${r.out.slice(-300)}`);
    else {
      check(true, `npm install ${WEBGPU} ${TYPESCRIPT}`, `${r.ms} ms`);
      // The page's view of the package (lib dom), no @types/node needed.
      writeFileSync(path.join(project, 'tsconfig.json'), JSON.stringify({ compilerOptions: { strict: true, noEmit: true, target: 'es2022', module: 'nodenext', moduleResolution: 'nodenext', lib: ['es2022', 'dom', 'dom.iterable'], types: [] }, files: ['consumer.ts'] }));
      const tsc2 = spawnSync(process.execPath, [path.join(project, 'node_modules/typescript/bin/tsc'), '-p', 'tsconfig.json'], { cwd: project, encoding: 'utf8' });
      check(tsc2.status === 0, 'tsc --strict type-checks consumer.ts (docs/js.md\'s API) against index.d.ts', (tsc2.stdout + tsc2.stderr).trim().slice(0, 600) || 'no errors');

      console.log('--- Node, Dawn (webgpu) on SwiftShader');
      if (!existsSync(SWIFTSHADER_ICD)) missing(`Dawn needs SwiftShader's Vulkan driver ${SWIFTSHADER_ICD} (apt-get install chromium)`);
      else {
        c = consumer(project, 'webgpu', { VK_ICD_FILENAMES: SWIFTSHADER_ICD });
        check(c.info && c.info.backend === 'webgpu' && /swiftshader/i.test(c.info.adapter || ''), "backend 'webgpu' runs Dawn on SwiftShader", JSON.stringify(c.info) || c.stderr);
        check(c.text && JSON.stringify(c.text.events) === JSON.stringify(['start', 'iteration', 'iteration', 'iteration', 'done']) && /^webgpu/.test(c.text.backend), 'Dawn: generate yields start, iterations, done on the webgpu backend', JSON.stringify(c.text && { events: c.text.events, backend: c.text.backend }));
        check(c.text && c.text.text === want, 'Node Dawn (SwiftShader): the text EQUALS the native CPU backend\'s', c.text && JSON.stringify(c.text.text));
        const dl = c['default-limits'];
        check(dl && dl.limits === 'default' && dl.engine === 'webgpu' && /^webgpu/.test(dl.backend) && dl.text === want, "Dawn with limits: 'default' (the WebGPU spec's defaults): the text EQUALS the native CPU backend's", JSON.stringify(dl));
        check(c.exit === true && c.status === 0, 'the Dawn run ends and the process exits', `status ${c.status} ${c.signal || ''} ${c.stderr}`);
        measured.node_dawn_ms = c.ms;
        if (c.text) measured.node_dawn_generate_ms = c.text.ms;
      }
    }

    console.log('--- Chromium: examples/embed.html with the installed package');
    await browser(project, installed, want);
  } finally {
    rmSync(project, { recursive: true, force: true });
  }
}

// browser serves examples/embed.html, the installed package (as remask/)
// and the model from one folder and generates in Chromium.
async function browser(project, installed, want) {
  const pw = path.join(ROOT, 'tools/browser-test/node_modules/playwright-core');
  if (!existsSync(CHROMIUM) || !existsSync(pw)) return missing(`the example page's test needs ${CHROMIUM} and tools/browser-test's playwright-core (cd tools/browser-test && npm ci)`);
  const { chromium } = createRequire(import.meta.url)(pw);
  const site = path.join(project, 'site');
  mkdirSync(path.join(site, 'models'), { recursive: true });
  copyFileSync(path.join(ROOT, 'examples/embed.html'), path.join(site, 'embed.html'));
  cpSync(installed, path.join(site, 'remask'), { recursive: true });
  copyFileSync(MODEL, path.join(site, 'models/shakespeare-small.safetensors'));
  const srv = spawn(path.join(ROOT, 'bin/remask'), ['serve', '--site', site, '--addr', '127.0.0.1:0', '--threads', '1'], { stdio: ['ignore', 'ignore', 'pipe'] });
  const url = await new Promise((resolve, reject) => {
    let buf = '';
    srv.stderr.setEncoding('utf8');
    srv.stderr.on('data', (d) => {
      buf += d;
      const m = /msg=listening url=(\S+)/.exec(buf);
      if (m) resolve(m[1]);
    });
    srv.on('exit', (code) => reject(new Error(`remask serve exited (${code}): ${buf}`)));
    setTimeout(() => reject(new Error('remask serve did not start in 20 s')), 20000);
  });
  const b = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ['--no-sandbox', '--no-first-run', '--disable-background-networking'] });
  try {
    const page = await b.newPage();
    const errors = [];
    page.on('pageerror', (e) => errors.push(String(e)));
    page.on('console', (m) => m.type() === 'error' && errors.push(m.text()));
    page.on('response', (r) => r.status() >= 400 && errors.push(`${r.status()} ${r.url()}`));
    const t0 = Date.now();
    await page.goto(`${url}/embed.html`);
    await page.waitForFunction(() => !document.querySelector('#generate').disabled, null, { timeout: 120000 });
    const status = await page.textContent('#status');
    check(/cpu/i.test(status), 'the example page starts the engine and says what runs', JSON.stringify(status));
    await page.fill('#seed', String(JOB.seed));
    await page.fill('#length', String(JOB.sequence_length));
    await page.fill('#iterations', String(JOB.iterations));
    await page.click('#generate');
    await page.waitForFunction(() => document.body.dataset.state === 'done' || document.body.dataset.state === 'error', null, { timeout: 300000 });
    const got = await page.evaluate(() => ({ state: document.body.dataset.state, text: document.getElementById('output').textContent, status: document.getElementById('status').textContent }));
    measured.browser_example_ms = Date.now() - t0;
    check(got.state === 'done' && got.text.length === JOB.sequence_length, 'examples/embed.html generates text in Chromium', JSON.stringify(got));
    check(got.text === want, 'the example page\'s text EQUALS the native CPU backend\'s', JSON.stringify(got.text));
    check(errors.length === 0, 'no page error or console error', errors.join(' | '));

    // The typed errors in a browser: the same module, through its own engine.
    const typed = await page.evaluate(async (sum) => {
      const { Remask, RemaskError } = await import(new URL('remask/index.js', location.href).href);
      const caught = async (p) => {
        try {
          await p;
          return { ok: true };
        } catch (e) {
          return { name: e.name, code: e.code, message: e.message, remask: e instanceof RemaskError };
        }
      };
      const out = {};
      // Chromium here runs without --enable-unsafe-webgpu: no adapter.
      out.webgpu = await caught(Remask.create({ backend: 'webgpu' }));
      const e = await Remask.create({ backend: 'cpu', cache: 'package-test' });
      const bytes = await (await fetch('models/shakespeare-small.safetensors')).blob();
      out.sha = await caught(e.loadModel(new File([bytes], 'mine.safetensors'), { sha256: '0'.repeat(64) }));
      out.page = await caught(e.loadModel('embed.html'));
      out.pageCached = !!(await (await caches.open('package-test')).match(new URL('embed.html', location.href).href));
      const m = await e.loadModel('models/shakespeare-small.safetensors', { id: 'checked', sha256: sum });
      out.modelCached = !!(await (await caches.open('package-test')).match(new URL('models/shakespeare-small.safetensors', location.href).href));
      out.id = m.id;
      const ctl = new AbortController();
      const p = caught(e.loadModel('models/shakespeare-small.safetensors', { id: 'aborted', signal: ctl.signal }));
      ctl.abort();
      out.abort = await p;
      e.close();
      out.closed = await caught(e.fetch('/v1/health'));
      return out;
    }, MODEL_SHA256);
    check(typed.webgpu.name === 'NoWebGPUError' && typed.webgpu.remask, "Chromium without WebGPU: backend 'webgpu' rejects with NoWebGPUError", JSON.stringify(typed.webgpu));
    check(typed.sha.name === 'ModelInvalidError' && typed.sha.code === 'sha256_mismatch', 'Chromium: a dropped File with the wrong sha256: ModelInvalidError (sha256_mismatch)', typed.sha.message);
    check(typed.page.name === 'ModelInvalidError' && typed.page.code === 'invalid_model' && !typed.pageCached, 'Chromium: a web page is not a model (ModelInvalidError) and is not cached', `${typed.page.message} (cached: ${typed.pageCached})`);
    check(typed.id === 'checked' && typed.modelCached, 'Chromium: a model loaded with its sha256 is checked and cached in the Cache API', JSON.stringify({ id: typed.id, cached: typed.modelCached }));
    check(typed.abort.name === 'AbortError', 'Chromium: an aborted load rejects with an AbortError', JSON.stringify(typed.abort));
    check(typed.closed.name === 'EngineError', 'Chromium: after close(), requests fail with EngineError', JSON.stringify(typed.closed));

    // The package from another origin (a CDN): the page imports it from there.
    const cdn = await cdnServer(installed);
    try {
      const fromCdn = await page.evaluate(async ({ base, job }) => {
        const { Remask } = await import(base + '/index.js');
        const e = await Remask.create({ backend: 'cpu' });
        const m = await e.loadModel('models/shakespeare-small.safetensors');
        let text = null;
        for await (const ev of e.generate({ ...job, model: m.id })) if (ev.event === 'done') text = ev.samples[0].text;
        e.close();
        return text;
      }, { base: cdn.url, job: JOB });
      check(fromCdn === want, 'Chromium: the package imported from another origin (CORS, like a CDN) generates the same text', JSON.stringify(fromCdn));
    } finally {
      cdn.close();
    }
  } finally {
    await b.close();
    srv.kill('SIGTERM');
  }
}

// cdnServer serves a folder on another port (another origin) with CORS, as
// a CDN serves npm packages.
async function cdnServer(dir) {
  const { createServer } = await import('node:http');
  const types = { '.js': 'text/javascript', '.wasm': 'application/wasm', '.json': 'application/json', '.ts': 'text/plain' };
  const srv = createServer((req, res) => {
    const file = path.join(dir, path.normalize(decodeURIComponent(new URL(req.url, 'http://x').pathname)).replace(/^(\.\.[/\\])+/, ''));
    if (!file.startsWith(dir + path.sep) || !existsSync(file) || !statSync(file).isFile()) {
      res.writeHead(404, { 'Access-Control-Allow-Origin': '*' });
      return res.end();
    }
    res.writeHead(200, { 'Content-Type': types[path.extname(file)] || 'application/octet-stream', 'Access-Control-Allow-Origin': '*' });
    res.end(readFileSync(file));
  });
  await new Promise((r) => srv.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${srv.address().port}`, close: () => srv.close() };
}

try {
  await main();
} catch (e) {
  check(false, 'the package test ran to its end', String((e && e.stack) || e).split('\n').slice(0, 3).join(' | '));
}
console.log('measured ' + JSON.stringify(measured));
if (failures.length) {
  console.log(`\n${failures.length} check(s) FAILED:\n${failures.join('\n')}`);
  process.exit(1);
}
console.log('\nall package checks passed');
