// remask: masked-diffusion text generation in browsers and Node, on WebGPU
// or the CPU. The engine (Go compiled to WebAssembly: engine/api's HTTP API)
// runs in a worker (a Web Worker, or a worker_threads Worker in Node); this
// module is its client. docs/js.md documents the API.

const IN_BROWSER = typeof window !== 'undefined' || (typeof WorkerGlobalScope !== 'undefined' && typeof self !== 'undefined');
const BACKENDS = ['auto', 'webgpu', 'cpu'];
const LIMITS = ['adapter', 'default'];
// Relative API paths (engine.fetch('/v1/health')) resolve against this
// origin when there is no page to resolve them against (Node).
const API_ORIGIN = 'http://localhost/';
const DEFAULT_CACHE = 'remask-models-v1';

/** The base of every error the package throws (aborts excepted: they are DOMExceptions named AbortError). */
export class RemaskError extends Error {
  constructor(message, { code = 'remask_error', status, field, details, cause } = {}) {
    super(message, cause === undefined ? undefined : { cause });
    this.name = 'RemaskError';
    this.code = code;
    if (status !== undefined) this.status = status;
    if (field !== undefined) this.field = field;
    if (details !== undefined) this.details = details;
  }
}

/** backend 'webgpu' was asked for and there is no usable WebGPU adapter (or device). */
export class NoWebGPUError extends RemaskError {
  constructor(message, opts = {}) {
    super(message, { code: 'no_webgpu', ...opts });
    this.name = 'NoWebGPUError';
  }
}

/** The WebGPU adapter's limits are below what the engine needs. */
export class AdapterTooSmallError extends RemaskError {
  constructor(message, opts = {}) {
    super(message, { code: 'adapter_too_small', ...opts });
    this.name = 'AdapterTooSmallError';
  }
}

/** The file is not a remask model, or its bytes do not have the expected sha256. */
export class ModelInvalidError extends RemaskError {
  constructor(message, opts = {}) {
    super(message, { code: 'invalid_model', ...opts });
    this.name = 'ModelInvalidError';
  }
}

/** The model's file or URL does not exist, or the engine's library has no such id. */
export class ModelNotFoundError extends RemaskError {
  constructor(message, opts = {}) {
    super(message, { code: 'source_not_found', ...opts });
    this.name = 'ModelNotFoundError';
  }
}

/** A request option is wrong (err.field names it); the message says what is allowed. */
export class InvalidOptionError extends RemaskError {
  constructor(message, opts = {}) {
    super(message, { code: 'invalid_option', ...opts });
    this.name = 'InvalidOptionError';
  }
}

/** The engine (its worker, or the Go program in it) failed or was closed. */
export class EngineError extends RemaskError {
  constructor(message, opts = {}) {
    super(message, { code: 'engine_failed', ...opts });
    this.name = 'EngineError';
  }
}

const OPTION_CODES = new Set(['invalid_json', 'unknown_field', 'duplicate_field', 'invalid_type', 'invalid_option', 'too_many_tokens', 'too_much_work', 'too_much_memory', 'body_too_large']);
const NOT_FOUND_CODES = new Set(['unknown_model', 'source_not_found']);

/**
 * errorFromAPI makes the typed error of one of the API's JSON errors
 * ({code, message, field, ...}; docs/api.md, Errors).
 */
export function errorFromAPI(e, status) {
  const { code = 'remask_error', message = 'the engine failed without a message', field, ...details } = e || {};
  const opts = { code, status, field, details: Object.keys(details).length ? details : undefined };
  if (code === 'invalid_model') return new ModelInvalidError(message, opts);
  if (NOT_FOUND_CODES.has(code)) return new ModelNotFoundError(message, opts);
  if (OPTION_CODES.has(code)) return new InvalidOptionError(message, opts);
  return new RemaskError(message, opts);
}

function abortError(signal) {
  if (signal && signal.reason instanceof Error && signal.reason.name === 'AbortError') return signal.reason;
  return new DOMException('The operation was aborted', 'AbortError');
}

async function errorOf(resp) {
  let e = null;
  try {
    e = (await resp.json()).error;
  } catch (_) {}
  return e ? errorFromAPI(e, resp.status) : new RemaskError(`the engine answered HTTP ${resp.status} ${resp.statusText}`, { code: 'http_' + resp.status, status: resp.status });
}

// ndjson yields the events of a streamed answer; an "error" event throws.
async function* ndjson(resp) {
  const reader = resp.body.pipeThrough(new TextDecoderStream()).getReader();
  let buf = '';
  try {
    for (;;) {
      const { done, value } = await reader.read();
      if (value) buf += value;
      let i;
      while ((i = buf.indexOf('\n')) >= 0) {
        const line = buf.slice(0, i);
        buf = buf.slice(i + 1);
        if (!line.trim()) continue;
        const ev = JSON.parse(line);
        if (ev.event === 'error') throw errorFromAPI(ev.error, resp.status);
        yield ev;
      }
      if (done) break;
    }
    if (buf.trim()) throw new EngineError(`the engine's stream ended inside a line: ${buf.slice(0, 80)}`);
  } finally {
    reader.cancel().catch(() => {});
  }
}

function check(name, value, allowed) {
  if (value !== undefined && !allowed.includes(value)) {
    throw new InvalidOptionError(`${name} ${JSON.stringify(value)} is not one of ${allowed.map((a) => JSON.stringify(a)).join(', ')}`, { field: name });
  }
}

function pageBase() {
  if (typeof document !== 'undefined' && document.baseURI) return document.baseURI;
  if (typeof location !== 'undefined') return location.href;
  return null;
}

async function nodeBase() {
  const { pathToFileURL } = await import('node:url');
  return pathToFileURL(process.cwd() + '/').href;
}

function isBytes(x) {
  return x instanceof ArrayBuffer || ArrayBuffer.isView(x) || (typeof Blob !== 'undefined' && x instanceof Blob);
}

/** The engine: one worker running one Go instance. Made by Remask.create. */
export class Remask {
  /**
   * create starts the engine and resolves once it runs (its wasm compiled,
   * its backend open). It rejects with NoWebGPUError or AdapterTooSmallError
   * when backend 'webgpu' was asked for and cannot be had.
   */
  static async create(options = {}) {
    const { backend = 'auto', limits, workerURL, wasmURL, models = [], cache, dawnFlags = [], signal, onNotice } = options;
    check('backend', backend, BACKENDS);
    check('limits', limits, LIMITS);
    const known = new Set(['backend', 'limits', 'workerURL', 'wasmURL', 'models', 'cache', 'dawnFlags', 'signal', 'onNotice']);
    for (const k of Object.keys(options)) if (!known.has(k)) throw new InvalidOptionError(`unknown option ${JSON.stringify(k)} of Remask.create; the options are ${[...known].join(', ')}`, { field: k });
    if (signal && signal.aborted) throw abortError(signal);
    if (!Array.isArray(models)) throw new InvalidOptionError('models is an array of {id, url, sha256?}', { field: 'models' });
    if (!Array.isArray(dawnFlags) || dawnFlags.some((f) => typeof f !== 'string')) throw new InvalidOptionError('dawnFlags is an array of strings, e.g. ["enable-dawn-features=allow_unsafe_apis"]', { field: 'dawnFlags' });
    const base = IN_BROWSER ? pageBase() : await nodeBase();
    const lib = models.map((m) => {
      if (!m || typeof m.id !== 'string' || typeof m.url !== 'string') throw new InvalidOptionError('each of models is {id, url, sha256?}', { field: 'models' });
      return { id: m.id, source: new URL(m.url, base).href, sha256: m.sha256 ? String(m.sha256).toLowerCase() : undefined };
    });
    const e = new Remask(onNotice);
    for (const m of lib) e._ids.add(m.id);
    e._want = backend;
    // The Go side's names (wasm/main_js.go): "gpu" takes any adapter, "auto" leaves a software one for the CPU engine.
    await e._start({ backend: { auto: 'auto', webgpu: 'gpu', cpu: 'cpu' }[backend], limits, base, models: lib, cache: cache === false ? null : typeof cache === 'string' ? cache : IN_BROWSER ? DEFAULT_CACHE : null, dawnFlags, workerURL, wasmURL, signal });
    return e;
  }

  constructor(onNotice) {
    this._pending = new Map();
    this._listeners = new Set(onNotice ? [onNotice] : []);
    this._invalid = new Map(); // source -> message: sha256 mismatches seen by the worker
    this._ids = new Set(); // the ids loadModel takes as ids: the library's and those loaded
    this._inMemory = new Set(); // the sources of the bytes being loaded
    this._nextId = 1;
    this._busy = 0;
    this._closed = false;
    this._fatal = null;
    this.info = null;
    this.startup = null;
  }

  async _start({ workerURL, wasmURL, signal, ...start }) {
    const wURL = workerURL ? new URL(workerURL, start.base) : new URL('./engine-worker.js', import.meta.url);
    const wasm = wasmURL instanceof ArrayBuffer || ArrayBuffer.isView(wasmURL) ? wasmURL : new URL(wasmURL || new URL('./remask.wasm', import.meta.url), start.base).href;
    let ready, fail;
    const readyP = new Promise((res, rej) => ((ready = res), (fail = rej)));
    this._failStart = fail;
    const onMsg = (m) => this._onMessage(m, { ready, fail, start: { type: 'start', ...start, wasm } });
    if (IN_BROWSER) {
      // A worker script must come from the page's origin: from elsewhere (a
      // CDN) a same-origin blob: module imports it (the CDN must allow CORS).
      const same = typeof location === 'undefined' || wURL.origin === location.origin || wURL.protocol === 'blob:';
      const script = same ? wURL : URL.createObjectURL(new Blob([`import ${JSON.stringify(wURL.href)};\n`], { type: 'text/javascript' }));
      this._worker = new Worker(script, { type: 'module', name: 'remask' });
      this._worker.onmessage = (ev) => onMsg(ev.data);
      this._worker.onerror = (ev) => {
        ev.preventDefault && ev.preventDefault();
        this._die(`the engine's worker (${wURL.href}) failed: ${ev.message || 'it could not be loaded (a wrong workerURL, or a server without the JavaScript type for .js files)'}`);
      };
      this._post = (m, t) => this._worker.postMessage(m, t || []);
    } else {
      const { Worker } = await import('node:worker_threads');
      this._worker = new Worker(wURL);
      this._worker.on('message', onMsg);
      this._worker.on('error', (e) => this._die(`the engine's worker failed: ${e.message}`));
      this._worker.on('exit', (code) => this._die(`the engine's worker exited (code ${code})`));
      this._post = (m, t) => this._worker.postMessage(m, t || []);
    }
    this._hold();
    const onAbort = () => {
      this.close();
      fail(abortError(signal));
    };
    if (signal) {
      signal.addEventListener('abort', onAbort, { once: true });
      if (signal.aborted) onAbort();
    }
    try {
      await readyP;
    } finally {
      if (signal) signal.removeEventListener('abort', onAbort);
      this._release();
    }
  }

  _onMessage(m, boot) {
    const p = m.id !== undefined ? this._pending.get(m.id) : null;
    switch (m.type) {
      case 'listening':
        this._post(boot.start);
        return;
      case 'ready': {
        const raw = m.engine;
        const gpu = raw.webgpu === true;
        this.info = {
          ...raw,
          backend: gpu ? 'webgpu' : 'cpu',
          backendName: raw.backend,
          adapter: raw.adapter || null,
          fallbackReason: gpu ? null : raw.gpu_error || (raw.requested === 'cpu' ? 'backend "cpu" was asked for' : null),
          limits: raw.limits || boot.start.limits || 'adapter',
          runtime: IN_BROWSER ? 'browser' : 'node',
        };
        this.startup = { compileMs: m.compileMs, startMs: m.startMs };
        if (this._want === 'webgpu' && !gpu) {
          const Err = raw.gpu_problem === 'limits' ? AdapterTooSmallError : NoWebGPUError;
          const why = raw.gpu_error || 'no WebGPU adapter';
          this.close();
          return boot.fail(new Err(`backend "webgpu" was asked for and cannot run: ${why}`, { details: { problem: raw.gpu_problem || 'no_adapter', adapter: raw.adapter || null, reason: why } }));
        }
        return boot.ready(this.info);
      }
      case 'fatal':
        return this._die(m.message);
      case 'head':
        if (p) p.head(m);
        return;
      case 'chunk':
        if (p) p.chunk(m.data);
        return;
      case 'end':
        if (p) p.end();
        this._done(m.id);
        return;
      case 'error':
        if (p) p.fail(new EngineError(m.message));
        this._done(m.id);
        return;
      case 'model-invalid':
        this._invalid.set(m.source, m.message);
        break;
    }
    for (const f of this._listeners) {
      try {
        f(m);
      } catch (e) {
        console.error(e);
      }
    }
  }

  _die(message) {
    if (this._fatal) return;
    this._fatal = message;
    const err = new EngineError(message);
    if (this._failStart) this._failStart(err);
    for (const q of this._pending.values()) q.fail(err);
    this._pending.clear();
    this.close();
  }

  // _hold and _release keep a Node process alive while the engine works, and
  // only then: an idle engine does not stop the process from exiting.
  _hold() {
    if (this._busy++ === 0 && this._worker && this._worker.ref) this._worker.ref();
  }
  _release() {
    if (--this._busy === 0 && this._worker && this._worker.unref) this._worker.unref();
  }
  _done(id) {
    if (this._pending.delete(id)) this._release();
  }

  /** on(f) calls f with the engine's notices (model-source, cached, cache-cleared, model-invalid); it returns the function that stops it. */
  on(f) {
    this._listeners.add(f);
    return () => this._listeners.delete(f);
  }

  /**
   * fetch sends one request of the HTTP API (docs/api.md) to the engine:
   * it takes what fetch takes and returns a Promise<Response> whose body
   * streams. Aborting init.signal cancels the request (a generation stops).
   */
  async fetch(input, init) {
    if (this._closed) throw new EngineError(this._fatal || 'the engine is closed');
    const req = typeof input === 'string' && !/^[a-z][a-z0-9+.-]*:/i.test(input) ? new Request(new URL(input, IN_BROWSER ? pageBase() || API_ORIGIN : API_ORIGIN), init) : new Request(input, init);
    const body = req.method === 'GET' || req.method === 'HEAD' ? null : await req.arrayBuffer();
    // Like fetch: a signal that aborted before the request never reaches the engine.
    if (req.signal.aborted) throw abortError(req.signal);
    if (this._closed) throw new EngineError(this._fatal || 'the engine is closed');
    const id = this._nextId++;
    return new Promise((resolve, reject) => {
      let ctl = null;
      let settled = false;
      const worker = this;
      const entry = {
        head(m) {
          settled = true;
          const stream = new ReadableStream({
            start(c) {
              ctl = c;
            },
            cancel() {
              ctl = null; // the reader is gone: later chunks are dropped
              worker._post({ type: 'abort', id });
            },
          });
          resolve(new Response(stream, { status: m.status, statusText: m.statusText, headers: m.headers }));
        },
        chunk(data) {
          if (ctl) ctl.enqueue(data);
        },
        end() {
          if (ctl) ctl.close();
          ctl = null;
          req.signal.removeEventListener('abort', onAbort);
        },
        fail(err) {
          const e = req.signal.aborted ? abortError(req.signal) : err;
          if (!settled) reject(e);
          else if (ctl) {
            try {
              ctl.error(e);
            } catch (_) {} // already closed
          }
          settled = true;
          ctl = null;
          req.signal.removeEventListener('abort', onAbort);
        },
      };
      // Like fetch: an abort rejects the promise, or errors the body.
      const onAbort = () => {
        this._post({ type: 'abort', id });
        entry.fail(abortError(req.signal));
        this._done(id);
      };
      this._pending.set(id, entry);
      this._hold();
      req.signal.addEventListener('abort', onAbort, { once: true });
      this._post({ type: 'fetch', id, url: req.url, method: req.method, headers: Array.from(req.headers.entries()), body }, body ? [body] : []);
    });
  }

  async _post_json(path, body, signal) {
    return this.fetch(path, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify(body), signal });
  }

  /**
   * loadModel puts a model on the engine: a URL (http(s); in Node also a
   * file path or file: URL), the id of a model given to create's models or
   * loaded before, or the file's bytes (Uint8Array, ArrayBuffer, Blob/File). It resolves with
   * the model's listing (GET /v1/models' format).
   */
  async loadModel(src, { id, sha256, onProgress, onQueued, signal } = {}) {
    let body;
    let source = null;
    const want = sha256 ? String(sha256).toLowerCase() : undefined;
    if (want !== undefined && !/^[0-9a-f]{64}$/.test(want)) throw new InvalidOptionError(`sha256 must be 64 hex digits, got ${JSON.stringify(sha256)}`, { field: 'sha256' });
    if (isBytes(src)) {
      const n = this._nextId++;
      const name = typeof File !== 'undefined' && src instanceof File && src.name ? src.name.replace(/[^A-Za-z0-9._-]/g, '_') : `model-${n}.safetensors`;
      // The source is the file's name (what the engine's messages name), made
      // unique among the bytes being loaded at the same time.
      source = this._inMemory.has(name) ? `${n}-${name}` : name;
      this._inMemory.add(source);
      let blob = src instanceof Blob ? src : new Blob([src]);
      // Node's worker_threads do not take a Blob: its bytes travel instead.
      if (!IN_BROWSER) blob = await blob.arrayBuffer();
      this._post({ type: 'register', source, blob, sha256: want }, !IN_BROWSER ? [blob] : []);
      body = { path: source };
    } else if (typeof src === 'string' || src instanceof URL) {
      const s = String(src);
      if (this._ids.has(s)) {
        body = { id: s }; // a model of the library (create's models) or one loaded before
      } else {
        const base = IN_BROWSER ? pageBase() : await nodeBase();
        let url;
        try {
          url = new URL(s, base);
        } catch (e) {
          throw new InvalidOptionError(`${s} is not a URL${IN_BROWSER ? '' : ' or a file path'}`, { field: 'source' });
        }
        source = url.href;
        body = url.protocol === 'http:' || url.protocol === 'https:' ? { url: source } : { path: source };
        if (want) this._post({ type: 'expect', source, sha256: want });
      }
    } else {
      throw new InvalidOptionError('loadModel takes a URL, a file path (Node), a library id, or the bytes (Uint8Array, ArrayBuffer, Blob)', { field: 'source' });
    }
    if (id !== undefined) body.id = id;
    if (source) this._invalid.delete(source);
    try {
      const resp = await this._post_json('/v1/models', body, signal);
      if (!resp.ok) throw await errorOf(resp);
      let info = null;
      for await (const ev of ndjson(resp)) {
        if (ev.event === 'progress' && onProgress) onProgress({ loaded: ev.bytes, total: ev.total === undefined ? null : ev.total });
        else if (ev.event === 'queued' && onQueued) onQueued(ev.position);
        else if (ev.event === 'loaded') info = ev.model;
      }
      if (!info) throw new EngineError('loading the model ended without an answer');
      this._ids.add(info.id);
      if (body.url) this._post({ type: 'keep', source: body.url }); // it parsed as a model: it may be cached now
      return info;
    } catch (e) {
      if (signal && signal.aborted) throw abortError(signal);
      if (source && this._invalid.has(source)) throw new ModelInvalidError(this._invalid.get(source), { code: 'sha256_mismatch', cause: e });
      throw e;
    } finally {
      if (source && this._inMemory.delete(source)) this._post({ type: 'forget', source });
    }
  }

  /**
   * generate runs one generation (the options of POST /v1/generate,
   * docs/api.md) and yields its events: queued, start, one iteration per
   * iteration, done. Breaking out of the loop or aborting signal stops it.
   */
  async *generate(options = {}, { signal } = {}) {
    if (options.stream === false) throw new InvalidOptionError('generate always streams; use engine.fetch for one JSON answer', { field: 'stream' });
    const resp = await this._post_json('/v1/generate', { ...options, stream: true }, signal);
    if (!resp.ok) throw await errorOf(resp);
    try {
      yield* ndjson(resp);
    } catch (e) {
      if (signal && signal.aborted) throw abortError(signal);
      throw e;
    }
  }

  /** clearCache deletes the Cache API cache of model files (browsers); it resolves with whether there was one. */
  clearCache() {
    return new Promise((resolve) => {
      const off = this.on((m) => {
        if (m.type === 'cache-cleared') {
          off();
          resolve(m.ok === true);
        }
      });
      this._post({ type: 'clear-cache' });
    });
  }

  /** close ends the engine: the worker is terminated, the GPU device and the weights are freed. */
  close() {
    if (this._closed) return;
    this._closed = true;
    const err = new EngineError(this._fatal || 'the engine was closed');
    for (const q of this._pending.values()) q.fail(err);
    this._pending.clear();
    if (this._worker) this._worker.terminate();
  }
}

export default Remask;
