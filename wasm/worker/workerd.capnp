# workerd configuration of remask's Worker, for running it locally without a
# Cloudflare account (tools/worker-test runs it; docs/edge.md). It mirrors
# wrangler.toml: the same modules (built into dist/ by ./build.sh worker),
# the static assets as the ASSETS binding (a disk service here; pass
# --directory-path assets=<absolute path of dist/assets>) and the same
# compatibility date.
#
#   workerd serve wasm/worker/workerd.capnp \
#     --directory-path assets=$PWD/wasm/worker/dist/assets --socket-addr http=127.0.0.1:8787

using Workerd = import "/workerd/workerd.capnp";

const config :Workerd.Config = (
  services = [
    (name = "main", worker = .remask),
    (name = "assets", disk = (path = "dist/assets", writable = false)),
  ],
  sockets = [(name = "http", address = "127.0.0.1:8787", http = (), service = "main")],
);

const remask :Workerd.Worker = (
  modules = [
    (name = "worker.mjs", esModule = embed "dist/worker.mjs"),
    (name = "wasm_exec.js", esModule = embed "dist/wasm_exec.js"),
    (name = "remask-worker.wasm", wasm = embed "dist/remask-worker.wasm"),
  ],
  compatibilityDate = "2025-09-15",
  compatibilityFlags = ["enable_request_signal"],
  bindings = [
    (name = "ASSETS", service = "assets"),
    (name = "ALLOW_ORIGINS", text = ""),
  ],
);
