#!/usr/bin/env python3
"""Measure a shipped model's quality and write its model card.

Runs the `remask` binary (no PyTorch needed):
  * `remask sample --json` with the sampler head on and with --disable-sampler,
    same seed and settings: judge score, self-confidence, critic statistics;
  * `remask score --json` on held-out real text (the last 10% of the training
    text, the trainer's validation split): the same metrics for real text;
  * the fraction of generated words (runs of letters) that occur in the
    training split, for generated and for real held-out text.
  * with --remasking-model FILE, the same samples with remasking self-confidence
    and with the token classifier (`--remasking model`) next to the critic;
  * speed: tokens per CPU-second of `remask sample` (child CPU time, so that a
    shared, busy machine does not distort it; use --threads 1 for one core).
Then it writes a Markdown card (training facts from the trainer's
metrics.json plus the measured table) and a JSON file with every number.
--only-remasking measures just the remasking rows (for a second language model
that a classifier card compares on).

  /usr/bin/python3 tools/train/card.py --remask bin/remask \
      --model /tmp/shakespeare.safetensors --judge /tmp/shakespeare-judge.safetensors \
      --metrics metrics.json --out-card card.md --out-json card.json

The card names this exact command, so every number in it can be re-measured.
"""

import argparse
import json
import os
import re
import resource
import shlex
import subprocess
import sys
import tempfile

WORD = re.compile(r"[A-Za-z]+")


def child_cpu():
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def run_json(cmd):
    """Runs cmd, returns its JSON output with 'cpu_seconds' (the child's CPU time) added."""
    print("+ " + " ".join(shlex.quote(c) for c in cmd), file=sys.stderr, flush=True)
    c0 = child_cpu()
    out = subprocess.run(cmd, check=True, stdout=subprocess.PIPE).stdout
    res = json.loads(out)
    res["cpu_seconds"] = child_cpu() - c0
    return res

# What the card says about each shipped language model (--about).
ABOUT = {
    "flagship": ("Shakespeare (remask)", """A masked-diffusion character-level language model of the diffusion-first nanoGPT fork's
standard shape (6 layers, 6 heads, n_embd 384, block_size 1024, rotary positions,
bidirectional attention, no biases, vocabulary of 65 characters + [MASK] + [PAD]) with a
critic head and a sampler head trained with real neighbour embeddings
(`sampler.neighbors = "embeddings"`), trained by remask's own trainer on
tinyshakespeare (90/10 split). Stored as F16."""),
    "small": ("Shakespeare small (remask)", """The small model, for phones, the CPU backend, software adapters and a page's first run.
A masked-diffusion character-level language model of 4 layers, 6 heads, n_embd 192
(block_size 1024, rotary positions, bidirectional attention, no biases, vocabulary of 65
characters + [MASK] + [PAD]; 1.94M parameters) with a critic head and a sampler head
trained with real neighbour embeddings (`sampler.neighbors = "embeddings"`), trained by
remask's own trainer on tinyshakespeare (90/10 split) with the flagship's recipe
(`shakespeare.safetensors`, 6 x 384). Stored as F16 (3.9 MB)."""),
}


def mean(xs):
    xs = [x for x in xs if x is not None]
    return sum(xs) / len(xs) if xs else None


def word_fraction(texts, vocab):
    words = [w.lower() for t in texts for w in WORD.findall(t)]
    if not words:
        return None, 0
    return sum(w in vocab for w in words) / len(words), len(words)


def summarize_samples(res):
    s = res["samples"]
    crit = [x["critic"] for x in s if x.get("critic")]
    return {
        "judge_score": mean([x.get("judge_score") for x in s]),
        "self_confidence": mean([x.get("self_confidence") for x in s]),
        "critic_mean": mean([c.get("mean") for c in crit]),
        "critic_p10": mean([c.get("p10") for c in crit]),
        "critic_p50": mean([c.get("p50") for c in crit]),
        "critic_p90": mean([c.get("p90") for c in crit]),
        "seconds": res.get("seconds"),
        "tokens_per_second": res.get("tokens_per_second"),
        "cpu_seconds": res.get("cpu_seconds"),
        "tokens_per_cpu_second": (len(s) * len(s[0]["text"]) / res["cpu_seconds"]
                                  if s and res.get("cpu_seconds") else None),
    }


def fmt(x, digits=3):
    return "n/a" if x is None else f"{x:.{digits}f}"


def settings_text(args):
    return (f"{args.num_samples} samples x {args.sequence_length} characters, {args.iterations} iterations, "
            f"seed {args.seed}, default options otherwise (temperature 0.8, top-p 1, critic remasking, linear "
            f"schedule 0.95 -> 0.05); real text: {args.num_samples} windows of {args.sequence_length} characters "
            f"from the held-out last 10% of the training text, each starting at a line start")


def table_rows(rows, with_speed=False):
    """The Markdown table of measured rows (name -> summary dict)."""
    head = "| text | judge score | self-confidence | critic mean | critic p10 / p50 / p90 | words found in training text |"
    sep = "| --- | --- | --- | --- | --- | --- |"
    if with_speed:
        head, sep = head + " chars per CPU-s |", sep + " --- |"
    out = [head, sep]
    for name, r in rows.items():
        wf = "n/a" if r["word_fraction"] is None else f"{100 * r['word_fraction']:.1f}% of {r['words']}"
        line = (f"| {name} | {fmt(r['judge_score'])} | {fmt(r['self_confidence'])} | {fmt(r['critic_mean'], 4)} | "
                f"{fmt(r['critic_p10'], 4)} / {fmt(r['critic_p50'], 4)} / {fmt(r['critic_p90'], 4)} | {wf} |")
        if with_speed:
            line += f" {fmt(r.get('tokens_per_cpu_second'), 1)} |"
        out.append(line)
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--remask", default="bin/remask", help="the remask binary")
    ap.add_argument("--model", required=True, help="the language model (remask/1)")
    ap.add_argument("--judge", required=True, help="the judge (remask/1)")
    ap.add_argument("--metrics", required=True, help="the trainer's metrics.json")
    ap.add_argument("--text", default="tools/train/data/tinyshakespeare.txt", help="the training text")
    ap.add_argument("--num-samples", type=int, default=16)
    ap.add_argument("--sequence-length", type=int, default=256)
    ap.add_argument("--iterations", type=int, default=15)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--backend", default="cpu", help="remask --backend (the cards measure the CPU backend)")
    ap.add_argument("--about", choices=sorted(ABOUT), default="flagship", help="which model's description heads the card")
    ap.add_argument("--remasking-model", help="a token classifier: also measure --remasking self and --remasking model")
    ap.add_argument("--only-remasking", action="store_true",
                    help="measure only the remasking rows (critic, self, model) and write only --out-json")
    ap.add_argument("--out-card", help="Markdown card of the language model")
    ap.add_argument("--out-judge-card", help="Markdown card of the judge")
    ap.add_argument("--out-json", required=True, help="every measured number")
    args = ap.parse_args()

    with open(args.text, encoding="utf-8") as f:
        text = f.read()
    n = int(0.9 * len(text))  # the trainer's 90/10 split by character index
    train, val = text[:n], text[n:]
    vocab = {w.lower() for w in WORD.findall(train)}
    with open(args.metrics) as f:
        metrics = json.load(f)

    common = ["--model", args.model, "--judge", args.judge, "--num-samples", str(args.num_samples),
              "--sequence-length", str(args.sequence_length), "--threads", str(args.threads),
              "--backend", args.backend, "--json"]
    sample = [args.remask, "sample"] + common + ["--iterations", str(args.iterations), "--seed", str(args.seed)]
    on = run_json(sample)
    remasking = {}
    if args.remasking_model:
        remasking["critic (--remasking critic)"] = on
        remasking["self-confidence (--remasking self)"] = run_json(sample + ["--remasking", "self"])
        remasking["token classifier (--remasking model)"] = run_json(
            sample + ["--remasking", "model", "--remasking-model", args.remasking_model])
    if args.only_remasking:
        rows = {}
        for name, res in remasking.items():
            r = summarize_samples(res)
            r["word_fraction"], r["words"] = word_fraction([x["text"] for x in res["samples"]], vocab)
            rows[name] = r
        this_cmd = "/usr/bin/python3 tools/train/card.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
        with open(args.out_json, "w") as f:
            json.dump({"command": this_cmd, "settings": settings_text(args), "remasking_rows": rows,
                       "samples": {k: [x["text"] for x in v["samples"]] for k, v in remasking.items()}}, f, indent=1)
        print(json.dumps(rows, indent=1))
        return
    if not args.out_card:
        ap.error("--out-card is required unless --only-remasking")
    off = run_json(sample + ["--disable-sampler"])
    with tempfile.NamedTemporaryFile("w", suffix=".txt", delete=False, encoding="utf-8") as tf:
        tf.write(val)
        val_path = tf.name
    try:
        real = run_json([args.remask, "score"] + common + ["--text-file", val_path])
    finally:
        os.unlink(val_path)

    rows = {}
    for name, res in (("sampler head on", on), ("sampler head off (--disable-sampler)", off)):
        r = summarize_samples(res)
        r["word_fraction"], r["words"] = word_fraction([s["text"] for s in res["samples"]], vocab)
        rows[name] = r
    rem_rows = {}
    for name, res in remasking.items():
        r = summarize_samples(res)
        r["word_fraction"], r["words"] = word_fraction([x["text"] for x in res["samples"]], vocab)
        rem_rows[name] = r
    rm = real["mean"]
    r = {k: rm.get(k) for k in ("judge_score", "self_confidence", "critic_mean", "critic_p10", "critic_p50", "critic_p90")}
    r["word_fraction"], r["words"] = word_fraction([w["text"] for w in real["windows"]], vocab)
    rows["held-out real text"] = r

    this_cmd = "/usr/bin/python3 tools/train/card.py " + " ".join(shlex.quote(a) for a in sys.argv[1:])
    lm, jd = metrics.get("lm", {}), metrics.get("judge", {})
    ce = lm.get("val", {})

    def ce_at(r):
        v = ce.get(str(r)) or ce.get(f"{r}") or {}
        return v.get("lm_ce") if isinstance(v, dict) else v

    def sce_at(r):
        v = ce.get(str(r)) or {}
        return v.get("sampler_ce") if isinstance(v, dict) else None

    table = table_rows(rows)
    settings = settings_text(args)
    speed = ""
    if on.get("cpu_seconds"):
        r = rows["sampler head on"]
        speed = (f"\n\nSpeed (CPU backend, `--threads {args.threads}`): {fmt(r['tokens_per_cpu_second'], 1)} "
                 f"characters per CPU-second of `remask sample` with the judge as the metric "
                 f"({args.num_samples} x {args.sequence_length} characters, {args.iterations} iterations, "
                 f"critic remasking; {fmt(r['cpu_seconds'], 1)} CPU-s). CPU time, not wall time: "
                 f"the machine was shared while measuring.")
    rem_table = ""
    if rem_rows:
        rem_table = "\n\n### Remasking: critic, self-confidence and the token classifier (`" + \
            os.path.basename(args.remasking_model) + "`), same samples otherwise\n\n" + "\n".join(
                table_rows(rem_rows, with_speed=True))

    title, about = ABOUT[args.about]
    card = f"""# {title}

{about}

## Training

- command: `python3 {lm.get('command', 'tools/train/train.py --stage lm')}` (then `remask convert ckpt.pt --dtype f16`)
- steps: {lm.get('iters')} x {lm.get('batch_size')} x {lm.get('block_size')} tokens ({lm.get('tokens_seen')} tokens), seed {lm.get('seed')}
- wall time: {lm.get('wall_seconds', lm.get('train_seconds'))} s on {lm.get('gpu_name')} (PyTorch {lm.get('torch_version')})
- validation masked cross-entropy (nats/char) at mask ratio 0.15 / 0.5 / 0.9: {fmt(ce_at(0.15))} / {fmt(ce_at(0.5))} / {fmt(ce_at(0.9))}
  (sampler head: {fmt(sce_at(0.15))} / {fmt(sce_at(0.5))} / {fmt(sce_at(0.9))})

## Measured quality

`{this_cmd}`

{settings}. Judge score = 1 - judge evaluation (higher = more human-like); critic = the
model's critic probability that a character is wrong (lower = more confident).

{chr(10).join(table)}{speed}{rem_table}
"""
    judge_card = f"""# Shakespeare judge (remask)

A sequence scorer (judge) for the Shakespeare model: the same trunk shape, initialised from
the language model, vocabulary 68 (+ [CLS] = 67, cls_embedding), trained to predict
y = x^4 - 2x^3 + 2x of the fraction x of characters replaced by the language model
(10% real windows, target 0). `remask sample` reports judge score = 1 - output.

- command: `python3 {jd.get('command', 'tools/train/train.py --stage judge')}`
- steps: {jd.get('iters')} x {jd.get('batch_size')} x {jd.get('block_size')}, seed {jd.get('seed')}
- wall time: {jd.get('wall_seconds', jd.get('train_seconds'))} s on {jd.get('gpu_name')}
- validation: MSE {fmt((jd.get('val') or {}).get('mse'), 4)} (predicting the mean: {fmt((jd.get('val') or {}).get('baseline_mse'), 4)}), correlation {fmt((jd.get('val') or {}).get('correlation'), 3)}, mean output on real text {fmt((jd.get('val') or {}).get('mean_pred_real_text'), 3)}, on LM-corrupted text {fmt((jd.get('val') or {}).get('mean_pred_synthetic'), 3)}

## Scores it gives (measured with `{this_cmd}`)

{settings}.

{chr(10).join(table)}
"""
    with open(args.out_card, "w") as f:
        f.write(card)
    if args.out_judge_card:
        with open(args.out_judge_card, "w") as f:
            f.write(judge_card)
    with open(args.out_json, "w") as f:
        json.dump({"command": this_cmd, "settings": settings, "rows": rows, "remasking_rows": rem_rows,
                   "samples_on": [s["text"] for s in on["samples"]],
                   "samples_off": [s["text"] for s in off["samples"]]}, f, indent=1)
    print(card)


if __name__ == "__main__":
    main()
