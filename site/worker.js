// worker.js: the in-browser engine's Web Worker. It runs ONE long-lived Go
// instance (wasm/, engine/api's handler) that keeps the WebGPU device and the
// loaded weights for every request, and relays fetch-style requests from the
// page (remask.js) to it. It also owns the model files: downloads with
// progress, the Cache API, sha256 checks against manifest.json, dropped files.
'use strict';
importScripts('wasm_exec.js');

const MODEL_CACHE = 'remask-models-v1';
const dropped = new Map(); // "dropped/<name>" -> File
const inflight = new Map(); // request id -> AbortController
let manifest = { models: [] };
let binding = null;

const send = (msg, transfer) => postMessage(msg, transfer || []);

function hex(buf) {
  return Array.from(new Uint8Array(buf), (b) => b.toString(16).padStart(2, '0')).join('');
}

async function openCache() {
  try {
    return await caches.open(MODEL_CACHE);
  } catch (e) {
    return null; // no Cache API here (an opaque origin, private mode): download every time
  }
}

function manifestEntry(url) {
  return manifest.models.find((m) => new URL(m.file, self.location.href).href === url);
}

// openModel is the Go Loader's host side (wasm/loader_js.go): a
// ReadableStream of the file and its size. Sources are dropped files,
// absolute URLs, or paths relative to the site.
async function openModel(source) {
  if (dropped.has(source)) {
    const f = dropped.get(source);
    send({ type: 'model-source', source, from: 'file' });
    return { body: f.stream(), size: f.size };
  }
  let url;
  try {
    url = new URL(source, self.location.href).href;
  } catch (e) {
    throw new Error(`${source} is not a URL`);
  }
  const entry = manifestEntry(url);
  const cache = await openCache();
  const hit = cache && (await cache.match(url));
  if (hit) {
    send({ type: 'model-source', source, from: 'cache' });
    return { body: hit.body, size: Number(hit.headers.get('content-length')) || (entry ? entry.bytes : -1) };
  }
  let resp;
  try {
    resp = await fetch(url, { cache: 'no-store' });
  } catch (e) {
    throw new Error(`the download of ${url} failed: ${e.message} (offline, or the server does not allow this origin)`);
  }
  if (!resp.ok) {
    const err = new Error(`GET ${url}: HTTP ${resp.status} ${resp.statusText}`);
    err.notFound = resp.status === 404 || resp.status === 410;
    throw err;
  }
  send({ type: 'model-source', source, from: 'network' });
  const size = Number(resp.headers.get('content-length')) || (entry ? entry.bytes : -1);
  const chunks = [];
  // The whole file passes through here: once complete it is checked against
  // the manifest and cached. A mismatch errors the stream, so the engine's
  // load fails instead of using a corrupt file.
  const keep = new TransformStream({
    transform(chunk, ctl) {
      chunks.push(chunk);
      ctl.enqueue(chunk);
    },
    async flush() {
      const blob = new Blob(chunks);
      chunks.length = 0;
      if (entry) {
        const got = hex(await crypto.subtle.digest('SHA-256', await blob.arrayBuffer()));
        if (got !== entry.sha256) {
          throw new Error(`${url}: its sha256 is ${got}, the site manifest says ${entry.sha256}: the download is corrupt or the file changed; clear the cache and reload`);
        }
      }
      if (!cache) return;
      if (entry) await put(cache, url, source, blob);
      // A file the manifest does not list is cached only once the engine
      // has parsed it as a model (the page sends "keep"): a web page or a
      // broken file never lands in the model cache.
      else unverified.set(url, { source, blob, at: Date.now() });
    },
  });
  return { body: resp.body.pipeThrough(keep), size };
}

const unverified = new Map(); // url -> {source, blob}: downloaded, not yet known to be a model

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
        // the worker would not see the page's messages (an abort, another
        // request) until the whole generation had ended.
        await new Promise((r) => setTimeout(r, 0));
      }
    }
    send({ type: 'end', id: msg.id });
  } catch (e) {
    send({ type: 'error', id: msg.id, message: ctl.signal.aborted ? 'aborted' : String((e && e.message) || e) });
  } finally {
    inflight.delete(msg.id);
  }
}

async function start(opts) {
  manifest = await (await fetch('manifest.json')).json();
  globalThis.context = { binding: {} }; // read by syumai/workers when Go starts
  globalThis.remaskHost = {
    backend: opts.backend || 'auto',
    models: manifest.models.map((m) => ({ id: m.id, source: m.file })),
    openModel,
  };
  const go = new Go();
  let ready;
  const readyP = new Promise((r) => (ready = r));
  const imports = { ...go.importObject, workers: { ready: () => ready() } };
  const t0 = performance.now();
  let inst;
  try {
    inst = (await WebAssembly.instantiateStreaming(fetch('remask.wasm'), imports)).instance;
  } catch (e) {
    // A server without the application/wasm type: compile from bytes.
    const bytes = await (await fetch('remask.wasm')).arrayBuffer();
    inst = (await WebAssembly.instantiate(bytes, imports)).instance;
  }
  const compiled = performance.now() - t0;
  go.run(inst).then(() => send({ type: 'fatal', message: 'the engine (Go) exited; see the browser console for its last words. Reload the page.' }));
  await readyP;
  binding = globalThis.context.binding;
  send({ type: 'ready', engine: binding.engine, compileMs: Math.round(compiled), startMs: Math.round(performance.now() - t0) });
}

onmessage = (ev) => {
  const msg = ev.data;
  switch (msg.type) {
    case 'start':
      start(msg).catch((e) => send({ type: 'fatal', message: `the engine did not start: ${e.message || e}` }));
      break;
    case 'fetch':
      relay(msg);
      break;
    case 'abort': {
      const c = inflight.get(msg.id);
      if (c) c.abort();
      break;
    }
    case 'keep':
      keep(msg.source).catch((e) => send({ type: 'cache-cleared', ok: false, message: e.message }));
      break;
    case 'drop':
      dropped.set(msg.source, msg.file);
      break;
    case 'clear-cache':
      caches.delete(MODEL_CACHE).then((ok) => send({ type: 'cache-cleared', ok }), (e) => send({ type: 'cache-cleared', ok: false, message: e.message }));
      break;
  }
};
