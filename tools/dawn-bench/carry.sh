# carry.sh: sourced by h200.sh, f16.sh and abdawn.sh on a GPU machine without
# network: unpacking what pack.sh put in the carry folder, and the timed
# steps of h200.sh and f16.sh.

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

# step NAME LIMIT OUTFILE CMD...: runs CMD in ROOT with a timeout of LIMIT·SCALE
# seconds or what is left of BUDGET (counted by the caller's elapsed), its
# stdout to R/OUTFILE and stderr to R/NAME.err, records it in R/steps.jsonl
# and prints its status (and the error's tail); a step that would get less
# than 15 s is skipped, saying so.
step() {
	local name=$1 limit=$2 outf=$3 left t s rc
	shift 3
	left=$((BUDGET - $(elapsed)))
	if [ "$left" -lt 15 ]; then
		echo "{\"step\":\"$name\",\"rc\":\"skipped\",\"seconds\":null}" >>"$R/steps.jsonl"
		echo "== $name: skipped ($left s of the budget left)"
		return
	fi
	limit=$((limit * SCALE))
	t=$((limit < left ? limit : left))
	s=$(date +%s)
	(cd "$ROOT" && timeout -k 5 "$t" "$@" </dev/null) >"$R/$outf" 2>"$R/$name.err"
	rc=$?
	echo "{\"step\":\"$name\",\"rc\":$rc,\"seconds\":$(($(date +%s) - s)),\"limit\":$t}" >>"$R/steps.jsonl"
	echo "== $name: rc $rc in $(($(date +%s) - s)) s (limit $t s)"
	[ $rc -eq 0 ] || tail -n 6 "$R/$name.err" | cut -c1-400
}
