// sw.js: makes the page work offline after the first visit. The page's own
// files are answered from the network when it is reachable (so a new build is
// picked up at once; the HTTP cache still avoids re-downloads) and from this
// cache when it is not. Model files are cached by the engine's worker
// (the package's remask/engine-worker.js, Cache API "remask-models-v1"), not here.
'use strict';
const SHELL = 'remask-shell-v2';
const FILES = ['./', 'index.html', 'style.css', 'app.js', 'remask.js', 'remask/index.js', 'remask/engine-worker.js', 'remask/wasm_exec.js', 'remask/remask.wasm', 'manifest.json'];

self.addEventListener('install', (e) => {
  e.waitUntil(caches.open(SHELL).then((c) => c.addAll(FILES)).then(() => self.skipWaiting()));
});
self.addEventListener('activate', (e) => e.waitUntil(self.clients.claim()));

self.addEventListener('fetch', (e) => {
  const url = new URL(e.request.url);
  if (e.request.method !== 'GET' || url.origin !== location.origin) return;
  const rel = url.pathname.slice(new URL('./', location.href).pathname.length) || './';
  if (!FILES.includes(rel)) return; // models, the API of a local server: not ours
  e.respondWith(
    (async () => {
      const cache = await caches.open(SHELL);
      try {
        const resp = await fetch(e.request);
        if (resp.ok) cache.put(e.request, resp.clone());
        return resp;
      } catch (err) {
        const hit = await cache.match(e.request, { ignoreSearch: true });
        if (hit) return hit;
        throw err;
      }
    })()
  );
});
