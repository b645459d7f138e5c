#!/usr/bin/env bash
# issue15.sh: issue 15's measurement in one command on a GPU machine without
# network, from the repository root, with the carry folder of pack.sh:
#   1. sweep.sh: every kernel variant of tools/dawn-bench/sweep-issue15.txt
#      against the native binary's defaults (forward);
#   2. the fastest attention variant and the fastest matmul layout at
#      16 x 1024 that beat the defaults by 2% or more become BEST_FLAGS;
#   3. h200.sh with the rest of TOTAL seconds: native vs Dawn (CLI wasm and
#      npm package), the BEST_FLAGS runs, PyTorch's forward and loops.
#
#   TOTAL=560 bash tools/dawn-bench/issue15.sh
set -uo pipefail
ROOT=$(cd "$(dirname "$0")/../.." && pwd)
HERE="$ROOT/tools/dawn-bench"
CARRY=${CARRY:-$ROOT/.devcarry}
TOTAL=${TOTAL:-560}
START=$(date +%s)
W=$(mktemp -d)
[ -e "$CARRY/remask.xz" ] || { echo "issue15.sh: $CARRY/remask.xz is missing (run tools/dawn-bench/pack.sh)"; exit 2; }
if command -v xz >/dev/null 2>&1; then xz -dc "$CARRY/remask.xz" >"$W/remask"; else
	python3 -c 'import lzma,shutil,sys; shutil.copyfileobj(lzma.open(sys.argv[1]), open(sys.argv[2], "wb"), 1 << 20)' "$CARRY/remask.xz" "$W/remask"
fi
chmod +x "$W/remask"
GL_DEBS="$CARRY/gl" ITERS=${ITERS:-10} bash "$HERE/sweep.sh" "$W/remask" "${SWEEP_FILE:-$HERE/sweep-issue15.txt}" | tee "$W/sweep.txt"
[ -z "${OUT:-}" ] || cp "$W/sweep.txt" "$OUT/sweep.txt"
BEST=$(python3 - "$W/sweep.txt" <<'PY'
import json, os, sys
best = {}
for line in open(sys.argv[1]):
    if not line.startswith("SWEEP "):
        continue
    r = json.loads(line[6:])
    if r["shape"] != os.environ.get("BEST_SHAPE", "16x1024") or not r["ratio_to_defaults"] or r["ratio_to_defaults"] > 0.98:
        continue
    kind = r["flags"].split()[0]
    if kind not in best or r["ratio_to_defaults"] < best[kind]["ratio_to_defaults"]:
        best[kind] = r
print(" ".join(r["flags"] for r in best.values()))
PY
)
echo "== sweep done in $(($(date +%s) - START)) s; BEST_FLAGS=${BEST:-none}"
BUDGET=$((TOTAL - ($(date +%s) - START))) BEST_FLAGS=$BEST bash "$HERE/h200.sh"
