#!/usr/bin/env bash
# pack.sh: prepares the carry folder that h200.sh reads on a GPU machine
# without network (default .devcarry/, ignored by git): it builds bin/remask
# (native, stripped), the same CLI for js/wasm and the npm package
# (./build.sh package), and copies Node (`command -v node`), Go's
# wasm_exec_node.js + wasm_exec.js, the webgpu package's index.js,
# package.json and linux-x64 dawn.node (from WEBGPU, an unpacked webgpu
# package or its npm tarball), the model and the Vulkan loader's .debs
# (GL_DEBS), xz-compressed, and prints the sizes.
#
#   tools/dawn-bench/pack.sh                 # the flagship model
#   MODEL=models/shakespeare-small.safetensors tools/dawn-bench/pack.sh
#
# `pack.sh f16` prepares f16.sh's carry instead (default .devf16/): Node,
# dawn.node, the js/wasm CLI, engine/gpu's tests compiled to js/wasm
# (gpu.test.wasm) and the vkmask layer (vkmask/build.sh); no native binary, no
# npm package and no model (f16.sh reads the models from the tree), so that the
# carry plus the tree stay under a lent machine's 64 MiB.
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
cd "$ROOT"
MODE=${1:-all}
case $MODE in all | f16) ;; *) echo "pack.sh: unknown mode $MODE (want: nothing, or f16)"; exit 2 ;; esac
if [ "$MODE" = f16 ]; then CARRY=${CARRY:-$ROOT/.devf16}; else CARRY=${CARRY:-$ROOT/.devcarry}; fi
MODEL=${MODEL:-models/shakespeare.safetensors}
WEBGPU=${WEBGPU:-$ROOT/tools/dawn-go-test/node_modules/webgpu}
GL_DEBS=${GL_DEBS:-$ROOT/.gl}
if [ ! -e "$WEBGPU" ]; then
	echo "pack.sh: $WEBGPU is missing: ./build.sh test installs it there (the version of wasm/js/package.json's peer dependency), or WEBGPU=an unpacked webgpu folder or its npm tarball"
	exit 1
fi
if ! ls "$GL_DEBS"/*.deb >/dev/null 2>&1; then
	echo "pack.sh: no .deb files in $GL_DEBS: put the Vulkan loader's amd64 packages there (apt-get download libvulkan1 libx11-6 libxext6 libxcb1 libxau6 libxdmcp6 libbsd0 libmd0), or GL_DEBS=that folder"
	exit 1
fi
[ -f "$MODEL" ] || { echo "pack.sh: $MODEL is missing (MODEL=path)"; exit 1; }
mkdir -p "$CARRY/gl"
TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

GOOS=js GOARCH=wasm go build -ldflags "-s -w" -o "$TMP/remask-cli.wasm" ./tools/remask
FILES=(node dawn.node remask-cli.wasm)
if [ "$MODE" = f16 ]; then
	echo "== building (js/wasm CLI, engine/gpu tests in js/wasm, the vkmask layer)"
	GOOS=js GOARCH=wasm go test -c -ldflags "-s -w" -o "$TMP/gpu.test.wasm" ./engine/gpu/
	tools/dawn-bench/vkmask/build.sh "$CARRY/vkmask" >/dev/null
	FILES+=(gpu.test.wasm)
else
	echo "== building (native, js/wasm CLI, npm package)"
	go build -ldflags "-s -w" -o "$TMP/remask" ./tools/remask
	./build.sh package >/dev/null
	tgz=$(ls wasm/js/dist/remask-*.tgz)
	[ "$(echo "$tgz" | wc -l)" = 1 ] || { echo "pack.sh: want one wasm/js/dist/remask-*.tgz, found: $tgz"; exit 1; }
	cp "$tgz" "$CARRY/remask-pkg.tgz"
	cp "$MODEL" "$TMP/model.safetensors"
	FILES+=(remask model.safetensors)
fi
cp "$(go env GOROOT)/lib/wasm/wasm_exec_node.js" "$(go env GOROOT)/lib/wasm/wasm_exec.js" "$CARRY/"

echo "== webgpu from $WEBGPU"
if [ -d "$WEBGPU" ]; then WG=$WEBGPU; else
	mkdir -p "$TMP/wg" && tar xzf "$WEBGPU" -C "$TMP/wg" package/index.js package/package.json package/dist/linux-x64/dawn.node
	WG=$TMP/wg/package
fi
tar cf "$CARRY/webgpu.tar" -C "$WG" index.js package.json
cp "$WG/dist/linux-x64/dawn.node" "$TMP/dawn.node"
cp "$(command -v node)" "$TMP/node"
# Their symbols and debug info are a fifth of them; Node and Dawn run without.
if command -v strip >/dev/null 2>&1; then strip "$TMP/node" "$TMP/dawn.node"; fi
rm -f "$CARRY"/gl/*.deb
cp "$GL_DEBS"/*.deb "$CARRY/gl/"

echo "== xz (in parallel)"
for f in "${FILES[@]}"; do
	xz -T1 -9 -c "$TMP/$f" >"$CARRY/$f.xz" &
done
wait
(cd "$CARRY" && ls -lR)
echo "== carry $CARRY: $(du -sb "$CARRY" | cut -f1) bytes ($(du -sh "$CARRY" | cut -f1)); model $MODEL; node $(node --version)"
