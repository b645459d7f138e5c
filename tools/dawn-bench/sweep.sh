#!/usr/bin/env bash
# sweep.sh REMASK SWEEP_FILE: times kernel variants of the native forward on a
# GPU machine in one command, each against a run with the defaults of the same
# binary (before and after the variants, so a drift of the GPU shows). Each
# line of SWEEP_FILE is "SHAPES FLAGS..." (e.g. "16x1024 --matmul-tile
# 128x128x8x8x8n"); "#" lines and empty lines are skipped. Prints one
# "SWEEP {json}" line per variant and shape (ms per forward, TFLOP/s, ratio to
# the defaults' mean) and a Markdown table. GL_DEBS (default .gl) holds the
# Vulkan loader's .debs for a machine without one; ITERS (default 20);
# BASE_SHAPES (default 16x1024,1x256) the shapes of the defaults' runs.
#
#   bash tools/dawn-bench/sweep.sh bin/remask tools/dawn-bench/sweep-issue15.txt
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
[ $# -eq 2 ] || { echo "usage: $0 REMASK SWEEP_FILE" >&2; exit 2; }
REMASK=$1 FILE=$2
[ -x "$REMASK" ] || { echo "sweep.sh: $REMASK is not an executable remask binary" >&2; exit 2; }
[ -f "$FILE" ] || { echo "sweep.sh: $FILE is not a file" >&2; exit 2; }
. "$HERE/vulkan-env.sh"
vulkan_env "${GL_DEBS:-.gl}" || exit 2
W=$(mktemp -d)
n=0
run() { # run TAG SHAPES FLAGS...: one bench, its JSON to $W/TAG.json
	local tag=$1 shapes=$2
	shift 2
	timeout -k 5 60 "$REMASK" bench --job forward --backend gpu --shapes "$shapes" --iters "${ITERS:-20}" --validate none --json "$@" </dev/null >"$W/$tag.json" 2>"$W/$tag.err" ||
		echo "== $tag ($shapes $*): failed: $(tail -n 2 "$W/$tag.err" | cut -c1-300)"
}
run base0 "${BASE_SHAPES:-16x1024,1x256}"
while read -r shapes flags; do
	case $shapes in '' | \#*) continue ;; esac
	n=$((n + 1))
	printf '%s\t%s\t%s\n' "v$n" "$shapes" "$flags" >>"$W/list.tsv"
	# shellcheck disable=SC2086 # the flags are words
	run "v$n" "$shapes" $flags
done <"$FILE"
run base1 "${BASE_SHAPES:-16x1024,1x256}"
python3 - "$W" <<'PY'
import json, os, sys
w = sys.argv[1]
def load(tag):
    try:
        return {f"{r['batch']}x{r['length']}": r for r in json.load(open(os.path.join(w, tag + ".json")))["results"]}
    except Exception:
        return {}
bases = [load("base0"), load("base1")]
rows = []
for line in open(os.path.join(w, "list.tsv")):
    tag, shapes, flags = line.rstrip("\n").split("\t")
    res = load(tag)
    for shape in shapes.split(","):
        b = [x[shape]["ms_per_forward"] for x in bases if shape in x]
        base = sum(b) / len(b) if b else None
        r = res.get(shape)
        row = {"flags": flags, "shape": shape, "ms": r and round(r["ms_per_forward"], 3), "tflops": r and round(r["tflops"], 1),
               "defaults_ms": [round(x, 3) for x in b], "ratio_to_defaults": r and base and round(r["ms_per_forward"] / base, 3)}
        print("SWEEP " + json.dumps(row))
        rows.append(row)
print("\n| flags | shape | ms | TFLOP/s | defaults ms (before, after) | ratio |\n|---|---|---:|---:|---:|---:|")
for r in sorted(rows, key=lambda r: (r["shape"], r["ratio_to_defaults"] or 9)):
    print(f"| `{r['flags']}` | {r['shape']} | {r['ms'] if r['ms'] is not None else '-'} | {r['tflops'] if r['tflops'] is not None else '-'} | {' / '.join(map(str, r['defaults_ms']))} | {r['ratio_to_defaults'] or '-'} |")
PY
[ -z "${OUT:-}" ] || tar czf "$OUT/sweep-raw.tar.gz" -C "$W" .
