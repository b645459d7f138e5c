// remask.js: window.remask, the page's way to the generation API, built on
// the remask npm package (./remask/ in the built site: wasm/js, docs/js.md),
// which the page imports like any other page would.
//
//   await remask.ready                       // the in-page engine has started
//   const resp = await remask.fetch('/v1/generate', {method: 'POST', body: JSON.stringify({...})})
//
// remask.fetch takes what fetch takes and returns a Promise<Response>. By
// default it goes to the in-page engine (remask.local, the package's Remask);
// after remask.useServer('https://host:8080') the same calls go to a remote
// `remask serve` (remask.useServer(null) comes back).
import { Remask, NoWebGPUError, AdapterTooSmallError } from './remask/index.js';

const params = new URLSearchParams(location.search);
const listeners = new Set();
let server = null;

function emit(msg) {
  for (const f of listeners) {
    try {
      f(msg);
    } catch (e) {
      console.error(e);
    }
  }
}

// start makes the engine: the site's models (manifest.json, with their
// sha256) are its library, downloads go to the Cache API. ?backend=gpu asks
// for WebGPU on any adapter; without one the page runs on the CPU and says
// why, as before.
async function start() {
  const manifest = await (await fetch('manifest.json')).json();
  const models = manifest.models.map((m) => ({ id: m.id, url: m.file, sha256: m.sha256 }));
  const want = { gpu: 'webgpu', cpu: 'cpu' }[params.get('backend')] || 'auto';
  let engine;
  try {
    engine = await Remask.create({ backend: want, models, onNotice: emit });
  } catch (e) {
    if (!(e instanceof NoWebGPUError || e instanceof AdapterTooSmallError)) throw e;
    engine = await Remask.create({ backend: 'cpu', models, onNotice: emit });
    Object.assign(engine.info, { requested: 'gpu', gpu_problem: e.details.problem, gpu_error: e.details.reason, adapter: e.details.adapter, fallbackReason: e.details.reason });
  }
  remask.local = engine;
  remask.engine = engine.info;
  remask.startup = engine.startup;
  return engine.info;
}

const abortErr = () => new DOMException('The request was aborted', 'AbortError');
// untilReady waits for the engine, or rejects at once when signal aborts.
const untilReady = (signal) =>
  new Promise((res, rej) => {
    if (!signal) return remask.ready.then(res, rej);
    if (signal.aborted) return rej(abortErr());
    signal.addEventListener('abort', () => rej(abortErr()), { once: true });
    remask.ready.then(res, rej);
  });

const remask = {
  ready: null,
  engine: null,
  local: null,
  fatal: null,
  startup: null,
  get server() {
    return server;
  },
  // fetch sends an API request to the in-page engine or the chosen server.
  async fetch(input, init) {
    if (server) {
      const path = input instanceof Request ? new URL(input.url).pathname : String(input);
      return fetch(new URL(path, server), init);
    }
    await untilReady((init && init.signal) || (input instanceof Request ? input.signal : null));
    return remask.local.fetch(input, init);
  },
  useServer(url) {
    server = url ? new URL(url, location.href).href : null;
  },
  clearCache() {
    if (remask.local) remask.local.clearCache();
  },
  // on(f) calls f with the engine's notices: model-source, cached, cache-cleared.
  on(f) {
    listeners.add(f);
    return () => listeners.delete(f);
  },
};
remask.ready = start();
remask.ready.catch((e) => (remask.fatal = e.message));
window.remask = remask;
