#!/usr/bin/env python3
"""Write the model card of the remasking model (token classifier).

Composes, without running anything: the trainer's metrics.json (section
"classifier": training facts and the offline AUC next to each corrupting LM's
critic) and the remasking tables that card.py measured with
--remasking-model (its --out-json files: one per language model the classifier
was compared on).

  /usr/bin/python3 tools/train/classifier_card.py --metrics runs/small/metrics.json \
      --measured small=small.json --measured shakespeare=flag.json --out-card card.md
"""

import argparse
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from card import fmt, table_rows  # noqa: E402


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--metrics", required=True, help="the trainer's metrics.json with a 'classifier' section")
    ap.add_argument("--measured", action="append", default=[], metavar="LABEL=JSON",
                    help="card.py --out-json of a run with --remasking-model (repeatable)")
    ap.add_argument("--names", default="", help="LABEL=text pairs, comma-separated, naming the val sets")
    ap.add_argument("--out-card", required=True)
    args = ap.parse_args()

    with open(args.metrics) as f:
        c = json.load(f)["classifier"]
    names = dict(kv.split("=", 1) for kv in args.names.split(",") if kv)
    auc = ["| corrupting language model | classifier AUC | the LM's own critic AUC | classifier BCE | accuracy | wrong tokens |",
           "| --- | --- | --- | --- | --- | --- |"]
    for k, v in c["val"].items():
        auc.append(f"| {names.get(k, k)} | {fmt(v['auc'], 4)} | {fmt(v.get('critic_auc'), 4)} | {fmt(v['bce'], 4)} | "
                   f"{fmt(v['accuracy'], 3)} | {100 * v['wrong_fraction']:.1f}% |")
    measured = []
    for item in args.measured:
        label, path = item.split("=", 1)
        with open(path) as f:
            m = json.load(f)
        measured.append(f"### With {label}\n\n`{m['command']}`\n\n{m['settings']}.\n\n"
                        + "\n".join(table_rows(m["remasking_rows"], with_speed=True)))
    n, h, e = c["shape"]
    card = f"""# Shakespeare remasker (remask)

The remasking model for `--remasking model`: a token classifier that reads a
sequence and gives, per character, the log-odds that it is right (class 1) or
wrong (class 0). {n} layers, {h} heads, n_embd {e}, block_size {c['block_size']}, rotary positions,
bidirectional attention, vocabulary 67 (the language models' own), {c['params']:,} parameters,
stored as F16; started from the trunk of the small model `shakespeare-small`.

remask reads the raw class-1 logit as the confidence (sampler-spec Q13), so each
class logit was trained with its own binary cross-entropy and the class-1 logit
alone is a calibrated log-odds.

## Training

- command: `python3 {c['command']}` (then `remask convert classifier_ckpt.pt --dtype f16`)
- data: windows of {c['block_size']} characters of the training split, a fraction r ~ U(0, 1] masked and
  refilled in one pass by a corrupting language model at a temperature in U({c['temperature_range'][0]}, {c['temperature_range'][1]});
  the corrupting models, in turn: {', '.join(names.get(os.path.basename(p), os.path.basename(p)) for p in c['corrupt_lms'])}
- steps: {c['iters']} x {c['batch_size']} x {c['block_size']}, seed {c['seed']}; {c['train_seconds']} s of training on {c['gpu_name']}

## Validation: does it find the wrong characters?

64 held-out windows per corrupting model, corrupted as in training; AUC = the
probability that a wrong character is ranked as less likely right than a right
one (0.5 = chance).

{chr(10).join(auc)}

## Measured in sampling

The same samples as the language model's card, remasked by its critic, by
self-confidence, and by this model (`--remasking model --remasking-model
shakespeare-remasker.safetensors`); judge = `shakespeare-judge`. The judge was
trained on the same kind of corruption that this classifier learns to find, so
its score may favour this remasker; the share of words found in the training text
is the independent check. Means over 8 or 16 samples move by several hundredths
from sample to sample: read small differences as ties.

{(chr(10) + chr(10)).join(measured)}
"""
    with open(args.out_card, "w") as f:
        f.write(card)
    print(card)


if __name__ == "__main__":
    main()
