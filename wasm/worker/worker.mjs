// remask's Cloudflare Worker: the entry module (wrangler.toml main). It runs
// ONE Go instance (wasm/worker, built to remask-worker.wasm) per isolate, so
// the model loaded by the first generation stays in memory for the requests
// that follow. It provides what syumai/workers' runtime contract expects
// (globalThis.context.binding and the workers.ready import), reads the model
// file from the static assets (env.ASSETS), and turns Go's answers into
// streamed Responses. bridge_js.go says why the streams live on this side.
import "./wasm_exec.js";
import wasm from "./remask-worker.wasm";

let engine; // Promise of the Go binding while the instance lives
let memory; // the instance's linear memory
let loggedBytes = 0;

function start(env) {
  globalThis.context = { binding: {} }; // read by syumai/workers when Go starts
  globalThis.remaskEdge = {
    allowOrigins: typeof env.ALLOW_ORIGINS === "string" ? env.ALLOW_ORIGINS : "",
    tick: () => new Promise((r) => setTimeout(r, 0)),
    async openModel(source) {
      if (!env.ASSETS) throw new Error("the Worker has no ASSETS binding (wrangler.toml [assets]); the model files are served from it");
      const res = await env.ASSETS.fetch(new URL(source, "https://assets.invalid/"));
      if (res.status === 404) {
        const e = new Error(`${source} is not in the Worker's static assets`);
        e.notFound = true;
        throw e;
      }
      if (!res.ok || !res.body) throw new Error(`reading ${source} from the static assets: HTTP ${res.status}`);
      const len = res.headers.get("content-length");
      const reader = res.body.getReader();
      return {
        size: len === null ? -1 : Number(len),
        read: async () => {
          const { done, value } = await reader.read();
          return done ? null : value;
        },
        cancel: () => {
          reader.cancel().catch(() => {});
        },
      };
    },
  };
  const go = new Go();
  let ready;
  const readyP = new Promise((r) => (ready = r));
  const instance = new WebAssembly.Instance(wasm, { ...go.importObject, workers: { ready: () => ready() } });
  memory = instance.exports.mem;
  const exited = go.run(instance).then(() => {
    console.error("remask worker: the Go instance exited; the next request starts a new one");
    engine = undefined;
    throw new Error("the engine exited");
  });
  return Promise.race([readyP.then(() => globalThis.context.binding), exited]);
}

function jsonError(status, code, message) {
  return new Response(JSON.stringify({ error: { code, message } }) + "\n", {
    status,
    headers: { "Content-Type": "application/json", "Cache-Control": "no-store" },
  });
}

// readBody reads at most max+1 bytes of the request body: Go answers 413
// for a body over its limit without the isolate holding a large upload.
async function readBody(req, max) {
  if (req.method === "GET" || req.method === "HEAD" || !req.body) return null;
  const reader = req.body.getReader();
  const chunks = [];
  let n = 0;
  for (;;) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    n += value.byteLength;
    if (n > max) {
      reader.cancel().catch(() => {});
      break;
    }
  }
  const body = new Uint8Array(n);
  let off = 0;
  for (const c of chunks) {
    body.set(c, off);
    off += c.byteLength;
  }
  return body;
}

function logMemory(binding) {
  const bytes = memory.buffer.byteLength;
  if (bytes !== loggedBytes) {
    loggedBytes = bytes;
    const m = binding.memory();
    console.log(`remask worker: wasm memory ${bytes} bytes (Go heap in use ${m.heap_alloc}, from the system ${m.sys})`);
  }
}

async function fetch(req, env) {
  let binding;
  try {
    engine ??= start(env);
    binding = await engine;
  } catch (e) {
    engine = undefined;
    return jsonError(503, "engine_unavailable", `the engine did not start: ${e.message || e}; retry`);
  }
  let head;
  try {
    const body = await readBody(req, binding.maxBodyBytes);
    head = await binding.serve(req, body);
  } catch (e) {
    return jsonError(503, "engine_unavailable", `the engine failed: ${e.message || e}; retry`);
  }
  const init = { status: head.status, headers: head.headers };
  if (head.nobody) {
    logMemory(binding);
    return new Response(null, init);
  }
  const stream = new ReadableStream(
    {
      async pull(controller) {
        const chunk = await head.read();
        if (chunk === null) {
          controller.close();
          logMemory(binding);
        } else if (chunk.byteLength > 0) {
          controller.enqueue(chunk);
        }
      },
      cancel() {
        head.cancel();
      },
    },
    { highWaterMark: 0 },
  );
  return new Response(stream, init);
}

export default { fetch };
