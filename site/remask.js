// remask.js: window.remask, the page's way to the generation API.
//
//   await remask.ready                       // the in-page engine has started
//   const resp = await remask.fetch('/v1/generate', {method: 'POST', body: JSON.stringify({...})})
//
// remask.fetch takes what fetch takes and returns a Promise<Response>. By
// default it goes to the in-page engine (Go in a Web Worker); after
// remask.useServer('https://host:8080') the same calls go to a remote
// `remask serve` (remask.useServer(null) comes back).
'use strict';
(function () {
  const params = new URLSearchParams(location.search);
  const listeners = new Set();
  const pending = new Map();
  let nextId = 1;
  let server = null;
  let worker = null;
  let readyResolve, readyReject;
  const ready = new Promise((res, rej) => ((readyResolve = res), (readyReject = rej)));

  function emit(msg) {
    for (const f of listeners) {
      try {
        f(msg);
      } catch (e) {
        console.error(e);
      }
    }
  }

  function startWorker() {
    worker = new Worker('worker.js');
    worker.onmessage = (ev) => {
      const m = ev.data;
      const p = m.id !== undefined ? pending.get(m.id) : null;
      switch (m.type) {
        case 'ready':
          remask.engine = m.engine;
          remask.startup = { compileMs: m.compileMs, startMs: m.startMs };
          readyResolve(m.engine);
          break;
        case 'fatal':
          remask.fatal = m.message;
          readyReject(new Error(m.message));
          for (const q of pending.values()) q.fail(new Error(m.message));
          pending.clear();
          break;
        case 'head':
          if (p) p.head(m);
          return;
        case 'chunk':
          if (p) p.chunk(m.data);
          return;
        case 'end':
          if (p) p.end();
          pending.delete(m.id);
          return;
        case 'error':
          if (p) p.fail(new Error(m.message));
          pending.delete(m.id);
          return;
      }
      emit(m);
    };
    worker.onerror = (e) => {
      const msg = `the engine's worker failed: ${e.message || 'unknown error'}`;
      remask.fatal = msg;
      readyReject(new Error(msg));
    };
    worker.postMessage({ type: 'start', backend: params.get('backend') || 'auto' });
  }

  const abortErr = () => new DOMException('The request was aborted', 'AbortError');
  // untilReady waits for the engine, or rejects at once when signal aborts.
  const untilReady = (signal) =>
    new Promise((res, rej) => {
      if (signal.aborted) return rej(abortErr());
      signal.addEventListener('abort', () => rej(abortErr()), { once: true });
      ready.then(res, rej);
    });

  async function localFetch(input, init) {
    const req = new Request(input, init);
    await untilReady(req.signal);
    const body = req.method === 'GET' || req.method === 'HEAD' ? null : await req.arrayBuffer();
    // Like fetch: a signal that aborted while waiting never reaches the engine.
    if (req.signal.aborted) throw abortErr();
    const id = nextId++;
    return new Promise((resolve, reject) => {
      let ctl = null;
      let settled = false;
      const entry = {
        head(m) {
          settled = true;
          const stream = new ReadableStream({
            start(c) {
              ctl = c;
            },
            cancel() {
              worker.postMessage({ type: 'abort', id });
            },
          });
          resolve(new Response(stream, { status: m.status, statusText: m.statusText, headers: m.headers }));
        },
        chunk(data) {
          if (ctl) ctl.enqueue(data);
        },
        end() {
          if (ctl) ctl.close();
        },
        fail(err) {
          if (!settled) reject(req.signal.aborted ? abortErr() : err);
          else if (ctl) {
            try {
              ctl.error(req.signal.aborted ? abortErr() : err);
            } catch (_) {} // already closed
          }
          settled = true;
          ctl = null;
        },
      };
      pending.set(id, entry);
      // Like fetch: an abort rejects the promise, or errors the body.
      req.signal.addEventListener(
        'abort',
        () => {
          worker.postMessage({ type: 'abort', id });
          entry.fail(abortErr());
          pending.delete(id);
        },
        { once: true }
      );
      worker.postMessage(
        { type: 'fetch', id, url: req.url, method: req.method, headers: Array.from(req.headers.entries()), body },
        body ? [body] : []
      );
    });
  }

  const remask = {
    ready,
    engine: null,
    fatal: null,
    get server() {
      return server;
    },
    // fetch sends an API request to the in-page engine or the chosen server.
    fetch(input, init) {
      if (server) {
        const path = input instanceof Request ? new URL(input.url).pathname : String(input);
        return fetch(new URL(path, server), init);
      }
      return localFetch(input, init);
    },
    useServer(url) {
      server = url ? new URL(url, location.href).href : null;
    },
    // dropFile hands a local model file to the engine; load it with
    // POST /v1/models {"path": <the returned source>}.
    dropFile(file) {
      const source = 'dropped/' + file.name.replace(/[^A-Za-z0-9._-]/g, '_');
      worker.postMessage({ type: 'drop', source, file });
      return source;
    },
    // keep tells the worker that a model loaded from url parsed as a model:
    // only then is a file that the site's manifest does not list cached.
    keep(url) {
      if (!server && worker) worker.postMessage({ type: 'keep', source: url });
    },
    clearCache() {
      worker.postMessage({ type: 'clear-cache' });
    },
    // on(f) calls f with the engine's notices: model-source, cached, cache-cleared.
    on(f) {
      listeners.add(f);
      return () => listeners.delete(f);
    },
  };
  window.remask = remask;
  startWorker();
})();
