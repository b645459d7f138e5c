#!/usr/bin/env bash
# build.sh OUTDIR: builds the vkmask layer (vkmask.c: Dawn sees another GPU
# vendor, so that it offers shader-f16 on NVIDIA; for measurements only) into
# OUTDIR/libvkmask.so with its loader manifest OUTDIR/vkmask.json, and prints
# the two variables that enable it:
#   VK_LAYER_PATH=OUTDIR VK_INSTANCE_LAYERS=VK_LAYER_REMASK_vkmask
set -euo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${1:?usage: build.sh OUTDIR}
mkdir -p "$OUT"
OUT=$(cd "$OUT" && pwd)
${CC:-cc} -O2 -Wall -Wextra -Werror -fPIC -shared -fvisibility=hidden -o "$OUT/libvkmask.so" "$HERE/vkmask.c" -lpthread
cat >"$OUT/vkmask.json" <<JSON
{
  "file_format_version": "1.1.2",
  "layer": {
    "name": "VK_LAYER_REMASK_vkmask",
    "type": "GLOBAL",
    "library_path": "./libvkmask.so",
    "api_version": "1.3.0",
    "implementation_version": "1",
    "description": "remask measurement layer: reports another PCI vendor ID (tools/dawn-bench/vkmask)"
  }
}
JSON
echo "VK_LAYER_PATH=$OUT VK_INSTANCE_LAYERS=VK_LAYER_REMASK_vkmask"
