#!/usr/bin/env bash
# test.sh: builds the vkmask layer and checks, through Dawn (WEBGPU_MODULE, the
# npm package webgpu) on this machine's Vulkan driver (VK_ICD_FILENAMES; in CI
# Chromium's SwiftShader), that it does what f16.sh relies on: without it Dawn
# names the real vendor; with it, the vendor Dawn derives from
# VKMASK_VENDOR_ID (0x10de: "nvidia"; the default 0xfffe: no known vendor);
# with VKMASK_ONLY naming another vendor, nothing changes; the adapter's
# features are the same with and without it (the layer rewrites nothing else);
# and, through Vulkan directly (probe.c), that both property queries are
# rewritten (vkGetPhysicalDeviceProperties, which Dawn reads, and
# vkGetPhysicalDeviceProperties2). Fails (exit 1) on any difference. build.sh's Dawn tests run it.
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
: "${WEBGPU_MODULE:?set WEBGPU_MODULE to an installed webgpu package (tools/dawn-go-test/node_modules/webgpu)}"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
"$HERE/build.sh" "$T/layer" >/dev/null
mkdir -p "$T/node_modules"
ln -s "$WEBGPU_MODULE" "$T/node_modules/webgpu"
cp "$HERE/../adapter.mjs" "$T/"
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$T}
probe() { # probe [ENV...]: "vendor<TAB>features" of Dawn's adapter
	env "$@" node "$T/adapter.mjs" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>{const a=JSON.parse(s);if(a.error){console.error("vkmask test: adapter: "+a.error);process.exit(1)}console.log(a.vendor+"\t"+a.features.join(","))})'
}
LAYER=(VK_LAYER_PATH="$T/layer" VK_INSTANCE_LAYERS=VK_LAYER_REMASK_vkmask)
plain=$(probe)
real=${plain%%$'\t'*}
feats=${plain#*$'\t'}
nv=$(probe "${LAYER[@]}" VKMASK_VENDOR_ID=0x10de)
unk=$(probe "${LAYER[@]}")
real_id=$(VK_LAYER_PATH="$T/layer" VK_INSTANCE_LAYERS=VK_LAYER_REMASK_vkmask VKMASK_VERBOSE=1 node "$T/adapter.mjs" 2>&1 >/dev/null | sed -n 's/^vkmask: vendor ID \(0x[0-9a-f]*\) reported.*/\1/p' | head -n 1)
other=$(probe "${LAYER[@]}" VKMASK_VENDOR_ID=0x10de VKMASK_ONLY=0x1)
fail=0
check() { if [ "$2" != "$3" ]; then echo "vkmask test: FAIL: $1: got '$2', want '$3'"; fail=1; else echo "vkmask test: ok: $1: '$2'"; fi; }
[ "$real" != nvidia ] || { echo "vkmask test: FAIL: the test needs a non-NVIDIA adapter (got nvidia without the layer)"; exit 1; }
check "vendor with VKMASK_VENDOR_ID=0x10de" "${nv%%$'\t'*}" nvidia
check "vendor with the default ID 0xfffe" "${unk%%$'\t'*}" ""
check "vendor with VKMASK_ONLY=0x1 (another GPU's vendor)" "${other%%$'\t'*}" "$real"
check "features with the layer" "${unk#*$'\t'}" "$feats"
${CC:-cc} -O2 -Wall -Wextra -Werror -o "$T/probe" "$HERE/probe.c" -ldl
p0=$("$T/probe" | head -n 1)
p1=$(env "${LAYER[@]}" VKMASK_VENDOR_ID=0x10de "$T/probe" | head -n 1)
check "Vulkan vendor IDs (properties, properties2) without the layer" "${p0%% [A-Za-z]*}" "$real_id $real_id"
check "Vulkan vendor IDs (properties, properties2) with VKMASK_VENDOR_ID=0x10de" "${p1%% [A-Za-z]*}" "0x10de 0x10de"
[ -n "$real_id" ] || { echo "vkmask test: FAIL: VKMASK_VERBOSE printed no rewrite"; fail=1; }
echo "vkmask test: the real vendor: '$real' ($real_id)"
exit $fail
