#!/usr/bin/env bash
# h200.sh: one command on a GPU machine without network that times the jobs
# of `remask bench` (forward 16x1024 and 1x256; small and standard, sampler
# head on and off) three ways, in this order of priority:
#   native   bin/remask (wgpu-native, Vulkan)
#   cli      the same `remask bench` compiled to js/wasm, under Node with Dawn
#            (the npm package webgpu: the browsers' WebGPU implementation)
#   package  the npm package (wasm/js) in Node with Dawn: generate() timed
#            by tools/dawn-bench/pkgbench.mjs
# plus the Dawn adapter's features and, if time is left, the PyTorch loop
# (tools/train/bench_loop.py) on the same GPU. It prints each step's status,
# then "SUMMARY {json}" lines and a Markdown table (summarize.mjs); the raw
# outputs go to $OUT/dawnbench-raw.tar.gz when $OUT is set.
#
# BEST_FLAGS adds native runs with kernel flags (see below); PYTORCH=0 skips PyTorch;
# SMALL_VARIANTS="--wave-slots 32;--wave-dispatch direct" adds the small job on
# the Dawn CLI and natively with each ';'-separated set of flags (e.g. the
# browser's gpu.BrowserWaveSlots challenged).
# Inputs: the carry folder (default .devcarry/, made by tools/dawn-bench/pack.sh):
#   node.xz dawn.node.xz webgpu.tar remask.xz remask-cli.wasm.xz remask-pkg.tgz
#   wasm_exec_node.js wasm_exec.js model.safetensors.xz gl/*.deb
#
#   bash tools/dawn-bench/h200.sh                       # on the GPU machine, repository root
#   SMALL=1 DAWN_ICD=/usr/lib/chromium/vk_swiftshader_icd.json bash tools/dawn-bench/h200.sh
#                                                       # a tiny run on a machine without GPU
# BUDGET (seconds, default 225) bounds the whole run: each step's timeout is
# the smaller of its own limit and what is left; a step that would get less
# than 15 s is skipped (and says so); SCALE multiplies the steps' own limits
# (default 1, with SMALL=1 8).
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$ROOT/tools/dawn-bench"
CARRY=${CARRY:-$ROOT/.devcarry}
BUDGET=${BUDGET:-225}
SMALL=${SMALL:-0}
W=${W:-/tmp/dawnbench}
R=$W/results
START=$(date +%s)
elapsed() { echo $(($(date +%s) - START)); }

echo "== dawn-bench: carry $CARRY, budget ${BUDGET} s, SMALL=$SMALL, $(date -u +%FT%TZ)"
for f in node.xz dawn.node.xz webgpu.tar remask.xz remask-cli.wasm.xz remask-pkg.tgz wasm_exec_node.js wasm_exec.js model.safetensors.xz; do
	[ -e "$CARRY/$f" ] || { echo "== dawn-bench: $CARRY/$f is missing (run tools/dawn-bench/pack.sh on the build machine)"; exit 2; }
done
rm -rf "$W" && mkdir -p "$W/bin" "$W/node_modules/remask" "$R"
. "$HERE/carry.sh"
unpack_dawn "$CARRY" "$W" &
unxz "$CARRY/remask.xz" "$W/bin/remask" &
unxz "$CARRY/remask-cli.wasm.xz" "$W/bin/remask-cli.wasm" &
unxz "$CARRY/model.safetensors.xz" "$W/model.safetensors" &
wait
tar xzf "$CARRY/remask-pkg.tgz" -C "$W/node_modules/remask" --strip-components=1
cp "$HERE"/*.mjs "$W/"
# Go's wasm_exec*.js are CommonJS; the scripts here are .mjs.
echo '{"name":"dawnbench","private":true,"type":"commonjs"}' >"$W/package.json"
chmod +x "$W/bin/remask"
NODE=$W/bin/node
M=$W/model.safetensors
echo "== unpacked in $(elapsed) s: $(du -sh "$W" | cut -f1) in $W; node $("$NODE" --version)"

# Vulkan: the loader from the carried .debs when the machine has none; the
# NVIDIA driver's ICD file.
. "$HERE/vulkan-env.sh"
vulkan_env "$CARRY/gl" || exit 2
echo "== VK_DRIVER_FILES=${VK_DRIVER_FILES:-unset} DAWN_ICD=${DAWN_ICD:-same}"
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$W}
export WEBGPU_MODULE=$W/node_modules/webgpu
# DAWN runs a command with Dawn's Vulkan driver (DAWN_ICD, for tests on
# machines without GPU: SwiftShader) when it differs from the native one.
DAWN=(env)
[ -z "${DAWN_ICD:-}" ] || DAWN=(env VK_ICD_FILENAMES="$DAWN_ICD" VK_DRIVER_FILES="$DAWN_ICD")
CLI=("${DAWN[@]}" "$NODE" --require "$W/preload.cjs" "$W/wasm_exec_node.js" "$W/bin/remask-cli.wasm")
# step (carry.sh) runs each timed step.

# SCALE multiplies every step's limit (software adapters are slow).
if [ "$SMALL" = 1 ]; then
	SCALE=${SCALE:-8}
	FWD=(--model "$M" --shapes 1x32 --iters 1 --validate 1x8 --profile 1)
	SM=(--batch 1 --length 32 --iterations 2 --reps 1); SMP=(1 32 2 1)
	ST=(--batch 2 --length 32 --iterations 2 --reps 1); STP=(2 32 2 1)
else
	FWD=(--shapes 16x1024,1x256 --iters 10 --profile 3)
	SM=(--reps 5); SMP=(1 256 15 5)
	ST=(--reps 3); STP=(16 1024 15 3)
	SCALE=${SCALE:-1}
fi
PT=(python3 tools/train/bench_loop.py --model "$M" --dtype all --sampler both --compat none)

step adapter 30 adapter.jsonl "${DAWN[@]}" "$NODE" "$W/adapter.mjs"
step native-forward 40 native-forward.json "$W/bin/remask" bench --job forward --backend gpu "${FWD[@]}" --json
# BEST_FLAGS: `remask bench` flags (kernel variants for the big shapes, e.g.
# the winners of sweep.sh) timed natively beside the defaults: the forward
# and the standard job (a forced --matmul-tile applies to every matmul, so the
# 1 x 256 jobs would measure a tile meant for 16 x 1024).
if [ -n "${BEST_FLAGS:-}" ]; then
	read -r -a BF <<<"$BEST_FLAGS"
	echo "$BEST_FLAGS" >"$R/best-flags.txt"
	step native-forward-best 40 native-forward-best.json "$W/bin/remask" bench --job forward --backend gpu "${FWD[@]}" --json "${BF[@]}"
	step native-standard-best 45 native-standard-best.json "$W/bin/remask" bench --job standard --backend gpu --model "$M" "${ST[@]}" --json "${BF[@]}"
fi
step cli-forward 60 cli-forward.json "${CLI[@]}" bench --job forward --backend gpu "${FWD[@]}" --json
step native-small 30 native-small.json "$W/bin/remask" bench --job small --backend gpu --model "$M" "${SM[@]}" --json
step cli-small 40 cli-small.json "${CLI[@]}" bench --job small --backend gpu --model "$M" "${SM[@]}" --json
step pkg-small 40 pkg-small.jsonl "${DAWN[@]}" "$NODE" "$W/pkgbench.mjs" "$M" small "${SMP[@]}"
# SMALL_VARIANTS: the small job with other flags, on Dawn and natively;
# variants.tsv maps each variant's number to its flags (summarize.mjs).
n=0
IFS=';' read -r -a VARIANTS <<<"${SMALL_VARIANTS:-}"
for v in "${VARIANTS[@]}"; do
	[ -n "${v// /}" ] || continue
	n=$((n + 1))
	printf '%s\t%s\n' "$n" "$v" >>"$R/variants.tsv"
	read -r -a VF <<<"$v"
	step "cli-small-var$n" 40 "cli-small-var$n.json" "${CLI[@]}" bench --job small --backend gpu --model "$M" "${SM[@]}" --json "${VF[@]}"
	step "native-small-var$n" 30 "native-small-var$n.json" "$W/bin/remask" bench --job small --backend gpu --model "$M" "${SM[@]}" --json "${VF[@]}"
done
step native-standard 45 native-standard.json "$W/bin/remask" bench --job standard --backend gpu --model "$M" "${ST[@]}" --json
# PyTorch on the same GPU, before the Dawn standard jobs (the longest steps).
if [ "${PYTORCH:-1}" = 1 ] && [ "$SMALL" != 1 ]; then
	step pytorch-forward 60 pytorch-forward.json python3 tools/train/bench_forward.py --iters 20
	step pytorch-small 40 pytorch-small.json "${PT[@]}" --job small --reps 5
	step pytorch-standard 45 pytorch-standard.json "${PT[@]}" --job standard --reps 3
fi
step pkg-standard 40 pkg-standard.jsonl "${DAWN[@]}" "$NODE" "$W/pkgbench.mjs" "$M" standard "${STP[@]}"
step cli-standard 60 cli-standard.json "${CLI[@]}" bench --job standard --backend gpu --model "$M" "${ST[@]}" --json
# Dawn only (wgpu-native cannot compile f16 shaders): the trunk in f16 where
# the adapter has shader-f16 (a build without --precision fails this step alone).
step cli-forward-f16 40 cli-forward-f16.json "${CLI[@]}" bench --job forward --backend gpu --precision f16 "${FWD[@]}" --json
echo "== done in $(elapsed) s"
"$NODE" "$W/summarize.mjs" "$R"
if [ -n "${OUT:-}" ]; then tar czf "$OUT/dawnbench-raw.tar.gz" -C "$W" results && echo "== raw outputs: \$OUT/dawnbench-raw.tar.gz"; fi
