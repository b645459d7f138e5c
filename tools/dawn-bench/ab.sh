#!/usr/bin/env bash
# ab.sh OLD NEW MODEL: two native remask binaries (say, main before and after
# a change) timed in one command on a GPU machine, alternately (old, new, old,
# new, ... ROUNDS times) so that a drift of the GPU shows in both. Jobs: the
# forward (16x1024 and 1x256), the small job (1x256x15) and the standard job
# (16x1024x15), each with sampler head on and off and both critic modes.
# Prints one "AB {json}" line per job (the median over rounds of each side,
# new / old) and a Markdown table. GL_DEBS (default .gl) holds the Vulkan
# loader's .debs for a machine without one; ROUNDS (default 2); JOBS (default
# "forward small standard"); FWD_SHAPES, SMALL_ARGS, STD_ARGS override the
# jobs' sizes (for a smoke test on a software adapter).
#
#   bash tools/dawn-bench/ab.sh old/remask new/remask models/shakespeare.safetensors
set -uo pipefail
HERE=$(cd "$(dirname "$0")" && pwd)
[ $# -eq 3 ] || { echo "usage: $0 OLD NEW MODEL" >&2; exit 2; }
OLD=$1 NEW=$2 MODEL=$3
for b in "$OLD" "$NEW"; do [ -x "$b" ] || { echo "ab.sh: $b is not an executable remask binary" >&2; exit 2; }; done
[ -f "$MODEL" ] || { echo "ab.sh: $MODEL is not a model file" >&2; exit 2; }
. "$HERE/vulkan-env.sh"
vulkan_env "${GL_DEBS:-.gl}" || exit 2
W=$(mktemp -d)
START=$(date +%s)
run() { # run SIDE ROUND JOB ARGS...: one bench, its JSON to $W/SIDE-JOB-ROUND.json
	local side=$1 round=$2 job=$3 bin=$OLD
	shift 3
	[ "$side" = new ] && bin=$NEW
	timeout -k 5 120 "$bin" bench --job "$job" --backend gpu --json "$@" </dev/null >"$W/$side-$job-$round.json" 2>"$W/$side-$job-$round.err" ||
		echo "== $side $job round $round: failed: $(tail -n 2 "$W/$side-$job-$round.err" | cut -c1-300)"
}
for round in $(seq 1 "${ROUNDS:-2}"); do
	for side in old new; do
		for job in ${JOBS:-forward small standard}; do
			case $job in
			forward) run "$side" "$round" forward --shapes "${FWD_SHAPES:-16x1024,1x256}" --iters 10 --validate none ;;
			small) run "$side" "$round" small --model "$MODEL" ${SMALL_ARGS:---reps 5} ;;
			standard) run "$side" "$round" standard --model "$MODEL" ${STD_ARGS:---reps 3} ;;
			esac
		done
		echo "== round $round $side done at $(($(date +%s) - START)) s"
	done
done
python3 - "$W" "${ROUNDS:-2}" <<'PY'
import json, os, statistics, sys
w, rounds = sys.argv[1], int(sys.argv[2])
def load(side, job, r):
    try:
        return json.load(open(os.path.join(w, f"{side}-{job}-{r}.json")))
    except Exception:
        return None
def keyed(rep, job):
    out = {}
    for x in (rep or {}).get("results", []):
        if job == "forward":
            out[f"forward {x['batch']}x{x['length']}"] = (x["ms_per_forward"], "ms", x.get("dispatches_per_forward"), None, None)
        elif x.get("loop") == "device":
            k = f"{job} sampler {'on' if x['sampler'] else 'off'}{' ' + x['compat'] if x.get('compat') else ''}"
            out[k] = (x["seconds"], "s", x.get("dispatches_per_iteration"), x.get("gpu_stage_ms"), x.get("device_host_ms"))
    return out
rows = []
for job in ["forward", "small", "standard"]:
    per = {s: [keyed(load(s, job, r), job) for r in range(1, rounds + 1)] for s in ("old", "new")}
    keys = []
    for s in per.values():
        for d in s:
            keys += [k for k in d if k not in keys]
    for k in keys:
        vals = {s: [d[k][0] for d in per[s] if k in d] for s in per}
        first = {s: next((d[k] for d in per[s] if k in d), None) for s in per}
        med = {s: statistics.median(v) if v else None for s, v in vals.items()}
        unit = next(f[1] for f in first.values() if f)
        row = {"job": k, "unit": unit, "old": med["old"], "new": med["new"], "old_runs": vals["old"], "new_runs": vals["new"],
               "ratio_new_to_old": round(med["new"] / med["old"], 3) if med["old"] and med["new"] else None,
               "dispatches_old": first["old"] and first["old"][2], "dispatches_new": first["new"] and first["new"][2],
               "stages_old_ms": first["old"] and first["old"][3], "stages_new_ms": first["new"] and first["new"][3],
               "host_old_ms": first["old"] and first["old"][4], "host_new_ms": first["new"] and first["new"][4]}
        print("AB " + json.dumps(row))
        rows.append(row)
f = lambda x: "-" if x is None else f"{x:.3f}"
print("\n| job | old | new | new / old | dispatches old / new |\n|---|---:|---:|---:|---:|")
for r in rows:
    print(f"| {r['job']} | {f(r['old'])} {r['unit']} | {f(r['new'])} {r['unit']} | {r['ratio_new_to_old'] or '-'} | {r['dispatches_old'] or '-'} / {r['dispatches_new'] or '-'} |")
stage = [r for r in rows if (r["stages_old_ms"] or r["stages_new_ms"]) and "critic-on-input" not in r["job"]]
if stage:
    print("\n| job | GPU stage | old ms | new ms |\n|---|---|---:|---:|")
    for r in stage:
        so, sn = r["stages_old_ms"] or {}, r["stages_new_ms"] or {}
        for k in dict.fromkeys(list(so) + list(sn)):
            print(f"| {r['job']} | {k} | {f(so.get(k))} | {f(sn.get(k))} |")
host = [r for r in rows if r["host_old_ms"] or r["host_new_ms"]]
if host:
    print("\n| job | host wall time (device_host_ms, first round) | old ms | new ms |\n|---|---|---:|---:|")
    for r in host:
        ho, hn = r["host_old_ms"] or {}, r["host_new_ms"] or {}
        for k in dict.fromkeys(list(ho) + list(hn)):
            print(f"| {r['job']} | {k} | {f(ho.get(k))} | {f(hn.get(k))} |")
PY
