#!/usr/bin/env bash
# Runs engine/gpu's Go tests in the js/wasm build (platform_js.go) under Node
# with Dawn as navigator.gpu: the WebGPU path of browsers, including the
# `subgroups` feature that wgpu-native v22 cannot enable (docs/gpu.md,
# Limits and features). On a machine without a GPU, Dawn runs on Chromium's
# SwiftShader Vulkan ICD (Debian's chromium package).
#
#   WEBGPU_MODULE=/path/to/node_modules/webgpu tools/dawn-go-test/run.sh [-test.run REGEXP] [-test.v]
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
BIN=$(mktemp -d)/gpu.test.wasm
(cd "$ROOT" && GOOS=js GOARCH=wasm go test -c -o "$BIN" ./engine/gpu/)
: "${VK_ICD_FILENAMES:=/usr/lib/chromium/vk_swiftshader_icd.json}"
export VK_ICD_FILENAMES
export XDG_RUNTIME_DIR="${XDG_RUNTIME_DIR:-$(mktemp -d)}"
cd "$ROOT/engine/gpu"
exec node --require "$ROOT/tools/dawn-go-test/preload.cjs" "$(go env GOROOT)/lib/wasm/wasm_exec_node.js" "$BIN" "$@"
