# carry.sh: sourced by h200.sh, f16.sh and abdawn.sh on a GPU machine without
# network, to unpack what pack.sh put in the carry folder.

# unxz SRC DST: xz when there is one, else Python's lzma.
unxz() {
	if command -v xz >/dev/null 2>&1; then xz -dc "$1" >"$2"; else
		python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"), 1 << 20)' "$1" "$2"
	fi
}

# unpack_dawn CARRY W: Node as W/bin/node, the webgpu package (dawn.node,
# index.js, package.json) as W/node_modules/webgpu, and Go's
# wasm_exec_node.js (and wasm_exec.js, where carried) with
# tools/dawn-go-test/preload.cjs in W: what running a js/wasm build under
# Node with Dawn takes.
unpack_dawn() {
	local carry=$1 w=$2 root
	root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
	mkdir -p "$w/bin" "$w/node_modules/webgpu/dist/linux-x64"
	unxz "$carry/node.xz" "$w/bin/node" &
	unxz "$carry/dawn.node.xz" "$w/node_modules/webgpu/dist/linux-x64/dawn.node" &
	wait
	tar xf "$carry/webgpu.tar" -C "$w/node_modules/webgpu"
	cp "$carry/wasm_exec_node.js" "$root/tools/dawn-go-test/preload.cjs" "$w/"
	[ ! -e "$carry/wasm_exec.js" ] || cp "$carry/wasm_exec.js" "$w/"
	chmod +x "$w/bin/node"
}
