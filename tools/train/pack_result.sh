#!/bin/sh
# Pack an LM run's results for the trip back from a lent machine, whose files come
# back at most 16 MiB each, 8 files and 64 MiB in all.
#
#   tools/train/pack_result.sh REMASK RUN_DIR DEST
#
# REMASK is a remask binary (go build -o bin/remask ./tools/remask), RUN_DIR the
# trainer's --out, DEST the folder to fill ($OUT on the lent machine). For each of
# RUN_DIR/best.pt and RUN_DIR/ckpt.pt that exists, `remask convert --dtype f16`
# writes NAME.safetensors (22.5 MB for the 6x384 model), split into 15 MiB pieces
# DEST/NAME.safetensors.part-aa, -ab. Where a checkpoint does not convert, the
# first such one is split as it is (DEST/NAME.pt.part-*; 45 MB when saved without
# its optimizer) and later ones are left behind (two would pass the 64 MiB).
# metrics.json is copied, and SHA256SUMS lists every whole file. Put the pieces
# back together with
#
#   cat DIR/best.safetensors.part-* > best.safetensors && grep ' best.safetensors$' DIR/SHA256SUMS | sha256sum -c
#
# resume.pt (135 MB with the optimizer) cannot come back this way: it stays on the
# lent machine, which keeps it only while it is warm.
set -eu
if [ $# -ne 3 ]; then
	echo "usage: $0 REMASK RUN_DIR DEST" >&2
	exit 2
fi
remask=$1 run=$2 dest=$3
mkdir -p "$dest"
: >"$dest/SHA256SUMS"
for name in best ckpt; do
	ckpt="$run/$name.pt"
	[ -f "$ckpt" ] || continue
	st="$run/$name.safetensors"
	if [ -x "$remask" ] && "$remask" convert "$ckpt" -o "$st" --dtype f16 --force; then
		whole=$st
	elif [ -z "${raw_done:-}" ]; then
		echo "pack_result: $ckpt did not convert; splitting the checkpoint itself" >&2
		whole=$ckpt
		raw_done=1
	else
		echo "pack_result: $ckpt did not convert and is left behind (a second raw checkpoint would not fit)" >&2
		continue
	fi
	(cd "$(dirname "$whole")" && sha256sum "$(basename "$whole")") >>"$dest/SHA256SUMS"
	split -b 15M "$whole" "$dest/$(basename "$whole").part-"
done
if [ -f "$run/metrics.json" ]; then
	cp "$run/metrics.json" "$dest/metrics.json"
fi
ls -l "$dest"
