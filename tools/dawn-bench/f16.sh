#!/usr/bin/env bash
# f16.sh: one command on an NVIDIA GPU machine that runs remask's f16 path for
# real, through Dawn (the browsers' WebGPU), with the vkmask layer in front of
# the driver (tools/dawn-bench/vkmask: Dawn withholds shader-f16 on NVIDIA by
# a vendor check; docs/gpu.md "Precision"). In order:
#   1. Dawn's adapter without and with the layer (vendor, shader-f16);
#   2. engine/gpu's TestPrecisionF16 (and TestGolden, TestSubgroupReductions)
#      in js/wasm under Node + Dawn with the layer: the f16 kernels against
#      float64 and the CPU backend, and the text agreement with f32;
#   3. `remask bench` (the CLI as js/wasm under Dawn) f32 against f16, in the
#      same command, alternately: the forward (16x1024, 1x256, validated
#      against the CPU backend), its per-kernel profile, and the small and
#      standard jobs; and f32 without the layer, to show the layer costs
#      nothing; with F16_TILES, the 16 x 1024 forward with other tiles
#      (ONLY_TILES=1: the adapters and those alone).
# Inputs (CARRY, default .devf16/, made by `tools/dawn-bench/pack.sh f16`):
#   node.xz dawn.node.xz webgpu.tar wasm_exec_node.js remask-cli.wasm.xz
#   gpu.test.wasm.xz vkmask/{libvkmask.so,vkmask.json} gl/*.deb
# and from the tree: models/shakespeare.safetensors,
# models/shakespeare-small.safetensors, testdata/golden.
# Outputs: the steps' status lines, then "F16 {json}" lines (tools/dawn-bench/
# f16sum.mjs), raw outputs in $OUT/f16-raw.tar.gz when $OUT is set.
#
#   bash tools/dawn-bench/f16.sh
#   SMALL=1 DAWN_ICD=/usr/lib/chromium/vk_swiftshader_icd.json bash tools/dawn-bench/f16.sh   # a smoke test here
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$ROOT/tools/dawn-bench"
CARRY=${CARRY:-$ROOT/.devf16}
BUDGET=${BUDGET:-400}
SMALL=${SMALL:-0}
ROUNDS=${ROUNDS:-2}
W=${W:-/tmp/f16bench}
R=$W/results
START=$(date +%s)
elapsed() { echo $(($(date +%s) - START)); }
for f in node.xz dawn.node.xz webgpu.tar wasm_exec_node.js remask-cli.wasm.xz gpu.test.wasm.xz vkmask/libvkmask.so vkmask/vkmask.json; do
	[ -e "$CARRY/$f" ] || { echo "== f16: $CARRY/$f is missing (tools/dawn-bench/pack.sh f16)"; exit 2; }
done
rm -rf "$W" && mkdir -p "$W/bin" "$R"
. "$HERE/carry.sh"
unpack_dawn "$CARRY" "$W" &
unxz "$CARRY/remask-cli.wasm.xz" "$W/bin/remask-cli.wasm" &
unxz "$CARRY/gpu.test.wasm.xz" "$W/bin/gpu.test.wasm" &
wait
cp "$HERE"/adapter.mjs "$HERE"/f16sum.mjs "$W/"
echo '{"name":"f16bench","private":true,"type":"commonjs"}' >"$W/package.json"
NODE=$W/bin/node
echo "== unpacked in $(elapsed) s; node $("$NODE" --version)"
. "$HERE/vulkan-env.sh"
vulkan_env "$CARRY/gl" || exit 2
command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi --query-gpu=name,driver_version,clocks.max.sm --format=csv,noheader
export XDG_RUNTIME_DIR=${XDG_RUNTIME_DIR:-$W}
export WEBGPU_MODULE=$W/node_modules/webgpu
DAWN=(env)
[ -z "${DAWN_ICD:-}" ] || DAWN=(env VK_ICD_FILENAMES="$DAWN_ICD" VK_DRIVER_FILES="$DAWN_ICD")
# MASK: the layer, reporting another vendor (VKMASK_VENDOR_ID's default).
MASK=(VK_LAYER_PATH="$CARRY/vkmask" VK_INSTANCE_LAYERS=VK_LAYER_REMASK_vkmask VKMASK_VERBOSE=1)
CLI=("$NODE" --require "$W/preload.cjs" "$W/wasm_exec_node.js" "$W/bin/remask-cli.wasm")
# step (carry.sh) runs each timed step.

M=models/shakespeare.safetensors
if [ "$SMALL" = 1 ]; then
	SCALE=${SCALE:-8}
	FWD=(--shapes 1x32 --iters 1 --validate 1x8)
	PROF=(--shapes 1x32 --iters 1 --validate none --profile 1)
	SM=(--batch 1 --length 32 --iterations 2 --reps 1)
	ST=(--batch 2 --length 32 --iterations 2 --reps 1)
	TESTS='TestPrecisionF16$/matmul$'
else
	SCALE=${SCALE:-1}
	FWD=(--shapes 16x1024,1x256 --iters 10)
	PROF=(--shapes 16x1024,1x256 --iters 3 --validate none --profile 5)
	SM=(--reps 5)
	ST=(--reps 3)
	TESTS='TestPrecisionF16|TestGolden$|TestSubgroupReductions'
fi

step adapter 30 adapter.jsonl "${DAWN[@]}" "$NODE" "$W/adapter.mjs"
step adapter-mask 30 adapter-mask.jsonl "${DAWN[@]}" "${MASK[@]}" "$NODE" "$W/adapter.mjs"
# The Go tests run in engine/gpu (their testdata paths are relative to it).
if [ "${ONLY_TILES:-0}" != 1 ]; then
step gotest 150 gotest.txt bash -c "cd engine/gpu && exec ${DAWN[*]} ${MASK[*]} REMASK_WANT_SUBGROUPS=1 '$NODE' --require '$W/preload.cjs' '$W/wasm_exec_node.js' '$W/bin/gpu.test.wasm' -test.run '$TESTS' -test.v"
for r in $(seq 1 "$ROUNDS"); do
	for p in f32 f16; do
		step "forward-$p-$r" 60 "forward-$p-$r.json" "${DAWN[@]}" "${MASK[@]}" "${CLI[@]}" bench --job forward --backend gpu --precision "$p" "${FWD[@]}" --json
	done
done
fi
# F16_TILES="128x128x16x8x8nw8c2 ...": the 16 x 1024 forward with each tile
# forced (--matmul-tile), f32 and f16 alternately (a forced tile applies to
# every matmul it can run, so only 16 x 1024, where the default is 128x128).
for tl in ${F16_TILES:-}; do
	for p in f32 f16; do
		step "tile-$tl-$p" 60 "tile-$tl-$p.json" "${DAWN[@]}" "${MASK[@]}" "${CLI[@]}" bench --job forward --backend gpu --precision "$p" --shapes "${TILE_SHAPE:-16x1024}" --iters 10 --validate 2x64 --matmul-tile "$tl" --json
	done
done
if [ "${ONLY_TILES:-0}" != 1 ]; then
step forward-f32-nomask 60 forward-f32-nomask.json "${DAWN[@]}" "${CLI[@]}" bench --job forward --backend gpu --precision f32 "${FWD[@]}" --json
for p in f32 f16; do
	step "profile-$p" 60 "profile-$p.json" "${DAWN[@]}" "${MASK[@]}" "${CLI[@]}" bench --job forward --backend gpu --precision "$p" "${PROF[@]}" --json
done
for p in f32 f16; do
	step "small-$p" 60 "small-$p.json" "${DAWN[@]}" "${MASK[@]}" "${CLI[@]}" bench --job small --backend gpu --model "$M" --precision "$p" "${SM[@]}" --json
done
for p in f32 f16; do
	step "standard-$p" 90 "standard-$p.json" "${DAWN[@]}" "${MASK[@]}" "${CLI[@]}" bench --job standard --backend gpu --model "$M" --precision "$p" "${ST[@]}" --json
done
fi
echo "== done in $(elapsed) s"
grep -h 'vkmask:' "$R"/*.err 2>/dev/null | sort | uniq -c | head -n 3
"$NODE" "$W/f16sum.mjs" "$R"
if [ -n "${OUT:-}" ]; then tar czf "$OUT/f16-raw.tar.gz" -C "$W" results && echo "== raw outputs: \$OUT/f16-raw.tar.gz"; fi
