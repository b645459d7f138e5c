#!/usr/bin/env bash
# abdawn.sh OLD.wasm.xz NEW.wasm.xz MODEL: ab.sh for the browser build: two
# remask CLIs compiled to js/wasm (xz-compressed, as pack.sh makes them), each
# run by Node with Dawn (the npm package webgpu), timed alternately in one
# command by ab.sh (same jobs, rounds and output). Node, dawn.node and the
# webgpu package's files come from CARRY (default .devf16/, `pack.sh f16`).
# JOBS, ROUNDS, SMALL_ARGS, STD_ARGS, FWD_SHAPES as in ab.sh; DAWN_ICD runs
# Dawn on another Vulkan driver (a smoke test here: SwiftShader).
#
#   bash tools/dawn-bench/abdawn.sh old-cli.wasm.xz .devf16/remask-cli.wasm.xz models/shakespeare.safetensors
set -euo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$ROOT/tools/dawn-bench"
[ $# -eq 3 ] || { echo "usage: $0 OLD.wasm.xz NEW.wasm.xz MODEL" >&2; exit 2; }
CARRY=${CARRY:-$ROOT/.devf16}
for f in "$1" "$2"; do [ -f "$f" ] || { echo "abdawn.sh: $f is not a file (an xz-compressed js/wasm remask CLI, as pack.sh makes remask-cli.wasm.xz)" >&2; exit 2; }; done
[ -f "$3" ] || { echo "abdawn.sh: $3 is not a model file" >&2; exit 2; }
for f in node.xz dawn.node.xz webgpu.tar wasm_exec_node.js; do
	[ -e "$CARRY/$f" ] || { echo "abdawn.sh: $CARRY/$f is missing (tools/dawn-bench/pack.sh f16, or CARRY=the folder pack.sh made)" >&2; exit 2; }
done
W=${W:-/tmp/abdawn}
rm -rf "$W" && mkdir -p "$W"
. "$HERE/carry.sh"
unpack_dawn "$CARRY" "$W"
unxz "$1" "$W/old.wasm"
unxz "$2" "$W/new.wasm"
. "$HERE/vulkan-env.sh"
vulkan_env "$CARRY/gl" || exit 2
ICD=()
[ -z "${DAWN_ICD:-}" ] || ICD=(VK_ICD_FILENAMES="$DAWN_ICD" VK_DRIVER_FILES="$DAWN_ICD")
for side in old new; do
	cat >"$W/$side" <<SH
#!/usr/bin/env bash
exec env ${ICD[*]} WEBGPU_MODULE="$W/node_modules/webgpu" XDG_RUNTIME_DIR="\${XDG_RUNTIME_DIR:-$W}" "$W/bin/node" --require "$W/preload.cjs" "$W/wasm_exec_node.js" "$W/$side.wasm" "\$@"
SH
	chmod +x "$W/$side"
done
GL_DEBS="$CARRY/gl" exec bash "$HERE/ab.sh" "$W/old" "$W/new" "$3"
