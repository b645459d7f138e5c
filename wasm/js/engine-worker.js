// engine-worker.js: the worker of the remask package. It runs ONE long-lived
// Go instance (remask.wasm: engine/api's handler, wasm/main_js.go) that keeps
// the WebGPU device and the loaded weights for every request, and relays the
// fetch-style requests of index.js to it. It also owns the model files:
// downloads (fetch), files on disk (Node), bytes handed over by the page,
// sha256 checks, and the Cache API (browsers).
//
// The same file runs as a module Web Worker in browsers and as a
// worker_threads Worker in Node >= 20 (feature-detected below). In Node the
// GPU comes from the optional peer dependency `webgpu` (Dawn); without it the
// engine runs on the CPU and says why.
import './wasm_exec.js';

const IN_BROWSER = typeof WorkerGlobalScope !== 'undefined' && typeof self !== 'undefined';
const nodeMods = IN_BROWSER ? null : await loadNodeModules();

async function loadNodeModules() {
  const [wt, fs, url, stream, path] = await Promise.all([
    import('node:worker_threads'),
    import('node:fs'),
    import('node:url'),
    import('node:stream'),
    import('node:path'),
  ]);
  return { wt, fs, url, stream, path };
}

const send = IN_BROWSER ? (msg, transfer) => self.postMessage(msg, transfer || []) : (msg, transfer) => nodeMods.wt.parentPort.postMessage(msg, transfer || []);

const memory = new Map(); // source -> Blob: bytes handed over by loadModel(bytes)
const expected = new Map(); // source (absolute) -> sha256 hex that its bytes must have
const inflight = new Map(); // request id -> AbortController
const unverified = new Map(); // url -> {source, blob}: downloaded, not yet known to be a model
let cacheName = null; // the Cache API cache for model files (browsers), or null
let base = null; // what relative sources resolve against
let binding = null;

function hex(buf) {
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');
}

async function openCache() {
  if (!cacheName || typeof caches === 'undefined') return null;
  try {
    return await caches.open(cacheName);
  } catch (e) {
    return null; // an opaque origin, private mode: download every time
  }
}

function notFound(message) {
  return Object.assign(new Error(message), { notFound: true });
}

// invalid reports a file that is not the expected model: index.js turns the
// failed load into a ModelInvalidError.
function invalid(source, message) {
  send({ type: 'model-invalid', source, message });
  return new Error(message);
}

async function sha256(blob) {
  return hex(await crypto.subtle.digest('SHA-256', await blob.arrayBuffer()));
}

// checked passes a stream through and, at its end, compares the whole file's
// sha256 with want (when set) and hands the file to done (the cache). A
// mismatch errors the stream, so the engine's load fails instead of using a
// corrupt file.
function checked(body, source, want, done) {
  const chunks = [];
  return body.pipeThrough(
    new TransformStream({
      transform(chunk, ctl) {
        chunks.push(chunk);
        ctl.enqueue(chunk);
      },
      async flush() {
        const blob = new Blob(chunks);
        chunks.length = 0;
        if (want) {
          const got = await sha256(blob);
          if (got !== want) throw invalid(source, `${source}: its sha256 is ${got}, expected ${want}: the download is corrupt or the file changed`);
        }
        if (done) await done(blob);
      },
    })
  );
}

// openModel is the Go Loader's host side (wasm/loader_js.go): a
// ReadableStream of the file and its size. Sources are bytes handed over by
// loadModel, http(s) URLs, and in Node file paths and file: URLs.
async function openModel(source) {
  const want = expected.get(source);
  if (memory.has(source)) {
    const blob = memory.get(source);
    send({ type: 'model-source', source, from: 'memory' });
    return { body: want ? checked(blob.stream(), source, want) : blob.stream(), size: blob.size };
  }
  let url;
  try {
    url = new URL(source, base);
  } catch (e) {
    throw notFound(`${source} is not a URL${IN_BROWSER ? '' : ' or a file path'}`);
  }
  if (url.protocol === 'file:') {
    if (IN_BROWSER) throw notFound(`${source}: a page cannot read file: URLs; pass the file's bytes (a File from an <input type=file>) to loadModel`);
    return openFile(source, url, want);
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') throw notFound(`${source}: only http(s) URLs${IN_BROWSER ? '' : ', file: URLs and file paths'} can be loaded`);
  const href = url.href;
  const cache = await openCache();
  const hit = cache && (await cache.match(href));
  if (hit) {
    send({ type: 'model-source', source, from: 'cache' });
    return { body: hit.body, size: Number(hit.headers.get('content-length')) || -1 };
  }
  let resp;
  try {
    resp = await fetch(href, { cache: 'no-store' });
  } catch (e) {
    throw new Error(`the download of ${href} failed: ${e.message}${IN_BROWSER ? ' (offline, or the server does not allow this origin)' : ''}`);
  }
  if (!resp.ok) {
    const err = new Error(`GET ${href}: HTTP ${resp.status} ${resp.statusText}`);
    err.notFound = resp.status === 404 || resp.status === 410;
    throw err;
  }
  send({ type: 'model-source', source, from: 'network' });
  const size = Number(resp.headers.get('content-length')) || -1;
  if (!cache) return { body: want ? checked(resp.body, source, want) : resp.body, size };
  return {
    body: checked(resp.body, source, want, async (blob) => {
      if (want) await put(cache, href, source, blob);
      // A file with no sha256 to check is cached only once the engine has
      // parsed it as a model (index.js sends "keep" after the load): a web
      // page or a broken file never lands in the model cache.
      else unverified.set(href, { source, blob });
    }),
    size,
  };
}

async function openFile(source, url, want) {
  const { fs, stream } = nodeMods;
  const file = nodeMods.url.fileURLToPath(url);
  let st;
  try {
    st = await fs.promises.stat(file);
  } catch (e) {
    if (e.code === 'ENOENT' || e.code === 'ENOTDIR') throw notFound(`${file}: no such file`);
    throw new Error(`${file}: ${e.message}`);
  }
  if (!st.isFile()) throw new Error(`${file} is not a regular file (a folder, FIFO or device); pass a model file`);
  send({ type: 'model-source', source, from: 'file' });
  const body = stream.Readable.toWeb(fs.createReadStream(file));
  return { body: want ? checked(body, source, want) : body, size: st.size };
}

async function put(cache, url, source, blob) {
  await cache.put(url, new Response(blob, { headers: { 'content-length': String(blob.size), 'content-type': 'application/octet-stream' } }));
  send({ type: 'cached', source, bytes: blob.size });
}

async function keep(url) {
  const u = unverified.get(url);
  unverified.delete(url);
  const cache = u && (await openCache());
  if (cache) await put(cache, url, u.source, u.blob);
}

async function relay(msg) {
  const ctl = new AbortController();
  inflight.set(msg.id, ctl);
  try {
    const req = new Request(msg.url, { method: msg.method, headers: msg.headers, body: msg.body, signal: ctl.signal });
    const resp = await binding.serve(req);
    send({ type: 'head', id: msg.id, status: resp.status, statusText: resp.statusText, headers: Array.from(resp.headers.entries()) });
    if (resp.body) {
      const reader = resp.body.getReader();
      ctl.signal.addEventListener('abort', () => reader.cancel().catch(() => {}), { once: true });
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        send({ type: 'chunk', id: msg.id, data: value }, [value.buffer]);
        // Reading the Go stream is a chain of promise jobs (microtasks), and Go
        // computes the next iteration inside it: without this macrotask break
        // the worker would not see the caller's messages (an abort, another
        // request) until the whole generation had ended.
        await new Promise((r) => setTimeout(r, 0));
      }
    }
    send({ type: 'end', id: msg.id });
  } catch (e) {
    send({ type: 'error', id: msg.id, aborted: ctl.signal.aborted, message: ctl.signal.aborted ? 'aborted' : String((e && e.message) || e) });
  } finally {
    inflight.delete(msg.id);
  }
}

// nodeGPU puts Dawn's navigator.gpu (the npm package webgpu) on globalThis,
// or says why there is none.
async function nodeGPU(flags) {
  let mod;
  try {
    mod = await import('webgpu');
  } catch (e) {
    return `the optional peer dependency "webgpu" (Dawn for Node) could not be loaded: ${e.message.split('\n')[0]}; install it next to remask (npm install webgpu) for the GPU`;
  }
  Object.assign(globalThis, mod.globals);
  Object.defineProperty(globalThis, 'navigator', { value: { gpu: mod.create(flags) }, configurable: true, writable: true });
  return null;
}

async function wasmModule(src) {
  if (src instanceof ArrayBuffer || ArrayBuffer.isView(src)) return WebAssembly.compile(src);
  const url = new URL(src, base);
  if (url.protocol === 'file:' && !IN_BROWSER) return WebAssembly.compile(await nodeMods.fs.promises.readFile(nodeMods.url.fileURLToPath(url)));
  const resp = await fetch(url.href);
  if (!resp.ok) throw new Error(`GET ${url.href}: HTTP ${resp.status} ${resp.statusText}`);
  if (typeof WebAssembly.compileStreaming === 'function' && (resp.headers.get('content-type') || '').startsWith('application/wasm')) {
    return WebAssembly.compileStreaming(resp);
  }
  // A server without the application/wasm type: compile from bytes.
  return WebAssembly.compile(await resp.arrayBuffer());
}

async function start(opts) {
  base = opts.base;
  cacheName = opts.cache || null;
  for (const m of opts.models || []) if (m.sha256) expected.set(m.source, m.sha256);
  let gpuProblem = null;
  if (!IN_BROWSER && opts.backend !== 'cpu') gpuProblem = await nodeGPU(opts.dawnFlags || []);
  globalThis.context = { binding: {} }; // read by syumai/workers when Go starts
  globalThis.remaskHost = {
    backend: gpuProblem ? 'cpu' : opts.backend,
    limits: opts.limits,
    models: (opts.models || []).map((m) => ({ id: m.id, source: m.source })),
    openModel,
  };
  const go = new Go();
  let ready;
  const readyP = new Promise((r) => (ready = r));
  const imports = { ...go.importObject, workers: { ready: () => ready() } };
  const t0 = performance.now();
  const mod = await wasmModule(opts.wasm);
  const inst = await WebAssembly.instantiate(mod, imports);
  const compiled = performance.now() - t0;
  go.run(inst).then(() => send({ type: 'fatal', message: 'the engine (Go) exited; see the console for its last words' }));
  await readyP;
  binding = globalThis.context.binding;
  const engine = binding.engine;
  if (gpuProblem) {
    engine.gpu_problem = 'no_webgpu';
    engine.gpu_error = gpuProblem;
  }
  send({ type: 'ready', engine, compileMs: Math.round(compiled), startMs: Math.round(performance.now() - t0) });
}

function onMessage(msg) {
  switch (msg.type) {
    case 'start':
      start(msg).catch((e) => send({ type: 'fatal', message: `the engine did not start: ${(e && e.message) || e}` }));
      break;
    case 'fetch':
      relay(msg);
      break;
    case 'abort': {
      const c = inflight.get(msg.id);
      if (c) c.abort();
      break;
    }
    case 'register':
      memory.set(msg.source, msg.blob instanceof Blob ? msg.blob : new Blob([msg.blob]));
      if (msg.sha256) expected.set(msg.source, msg.sha256);
      break;
    case 'expect':
      if (msg.sha256) expected.set(msg.source, msg.sha256);
      break;
    case 'forget':
      memory.delete(msg.source);
      break;
    case 'keep':
      keep(msg.source).catch((e) => send({ type: 'cache-cleared', ok: false, message: e.message }));
      break;
    case 'clear-cache':
      if (!cacheName || typeof caches === 'undefined') send({ type: 'cache-cleared', ok: false, message: 'no Cache API here' });
      else caches.delete(cacheName).then((ok) => send({ type: 'cache-cleared', ok }), (e) => send({ type: 'cache-cleared', ok: false, message: e.message }));
      break;
  }
}

if (IN_BROWSER) self.onmessage = (ev) => onMessage(ev.data);
else nodeMods.wt.parentPort.on('message', onMessage);
send({ type: 'listening' });
