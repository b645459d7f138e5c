#!/usr/bin/env python3
"""Train the shipped Shakespeare models: the masked-diffusion LM (with critic and
sampler heads) and its judge, as fork-format checkpoints.

Run from the repository root, one stage per command (each ends with a checkpoint):

    PYTHONUNBUFFERED=1 python3 tools/train/train.py --stage lm    --out out/shakespeare
    PYTHONUNBUFFERED=1 python3 tools/train/train.py --stage judge --out out/shakespeare

The small model (4 layers x 192, about 3.9 MB as F16) and its remasking model
(a token classifier started from the small model's trunk, taught to find the
mistakes of the corrupting LMs):

    python3 tools/train/train.py --preset small --stage lm --out out/small
    python3 tools/train/train.py --preset small --stage classifier --out out/small \
        --corrupt-lm models/shakespeare.safetensors --corrupt-lm out/small/ckpt.pt

--stage lm writes ckpt.pt (LM + critic + sampler, spec 2.1/2.2 [SH] layout),
meta.pkl, metrics.json (section "lm") and train_log.jsonl; --stage judge reads
ckpt.pt and writes judge_ckpt.pt and the "judge" section of metrics.json.
`remask convert` turns the checkpoints into remask/1 files.

--smoke trains a tiny model for a few dozen iterations (every code path, < 60 s
on a laptop CPU); tools/train/test_train.py runs it.

Reproducibility: python, numpy and torch are seeded from --seed (the judge stage
uses --seed + 1); the batches, masks and draws follow from it. On the CPU a run
is repeatable bit for bit. On CUDA some kernels (attention and matmul backward,
index/scatter-add in the embedding backward) are not deterministic, so two runs
agree only up to rounding that grows over training. A run that would overrun
--max-seconds shortens its schedule (logged, and in metrics.json as
shortened_from); that decision depends on the measured speed.
"""

import time

T0 = time.time()  # the stage's budget counts from here, before torch is imported

import argparse  # noqa: E402
import os  # noqa: E402
import shlex  # noqa: E402
import sys  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from remask_train import train_classifier, train_judge, train_lm  # noqa: E402
from remask_train.train_common import Clock, Log, setup_runtime  # noqa: E402

DATA = os.path.join(HERE, "data", "tinyshakespeare.txt")

# The shipped model (the fork's standard char shape) and its budget on one H100.
# Measured on one H100 80GB HBM3 (PyTorch 2.11, bf16, compiled blocks, flash
# attention): 28.8 ms per LM iteration without the critic pass, 52.2 ms with it
# (1.26M tokens/s, about 229 TFLOP/s counting both trunk passes), ~30 s to compile;
# 7000 iterations took 372 s of wall time. The judge runs at 40 ms per iteration,
# and its val MSE was best near 1800 iterations (it overfits the training text later).
FULL = dict(n_layer=6, n_head=6, n_embd=384, block_size=1024, batch_size=64,
            lm_max_iters=7000, lm_max_seconds=420.0, warmup_iters=100,
            judge_batch_size=64, judge_max_iters=1800, judge_max_seconds=180.0,
            judge_warmup_iters=50, lr=1e-3, judge_lr=3e-4, val_windows=128,
            judge_val_windows=512, log_interval=50,
            classifier_batch_size=32, classifier_max_iters=3000, classifier_max_seconds=180.0,
            classifier_warmup_iters=50, classifier_lr=1e-3, classifier_val_windows=64)
# The small model for phones, CPU backends and the page's first run: about 1.95M
# parameters (3.9 MB as F16); its LM stage and classifier fit a few GPU minutes.
SMALL = dict(FULL, n_layer=4, n_head=6, n_embd=192, lr=2e-3, lm_max_iters=8000,
             lm_max_seconds=180.0, classifier_max_iters=2500, classifier_max_seconds=120.0)
# Every code path at toy size; fits a CPU minute.
SMOKE = dict(n_layer=2, n_head=4, n_embd=64, block_size=64, batch_size=8,
             lm_max_iters=32, lm_max_seconds=120.0, warmup_iters=4,
             judge_batch_size=8, judge_max_iters=12, judge_max_seconds=60.0,
             judge_warmup_iters=2, lr=2e-3, judge_lr=1e-3, val_windows=8,
             judge_val_windows=16, log_interval=4,
             classifier_batch_size=4, classifier_max_iters=8, classifier_max_seconds=60.0,
             classifier_warmup_iters=2, classifier_lr=1e-3, classifier_val_windows=8)
PRESETS = {"full": FULL, "small": SMALL, "smoke": SMOKE}


def parse_args(argv=None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                 formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    ap.add_argument("--stage", choices=("lm", "judge", "classifier", "all"), required=True,
                    help="lm: LM + critic + sampler heads; judge: needs the LM's ckpt.pt; "
                         "classifier: the remasking model (token classifier); all: lm then judge")
    ap.add_argument("--out", default="out/shakespeare", help="output folder")
    ap.add_argument("--data", default=DATA, help="training text (split 90/10 by character)")
    ap.add_argument("--seed", type=int, default=1337)
    ap.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    ap.add_argument("--preset", choices=sorted(PRESETS), default="full",
                    help="full: the 6x384 flagship; small: 4x192 (3.9 MB); smoke: a toy CPU run")
    ap.add_argument("--smoke", action="store_true", help="tiny config for a CPU smoke test (= --preset smoke)")
    ap.add_argument("--max-seconds", type=float, default=None,
                    help="wall-time budget of the stage, checkpoint included "
                         f"(default lm {FULL['lm_max_seconds']:g}, judge {FULL['judge_max_seconds']:g})")
    ap.add_argument("--max-iters", type=int, default=None,
                    help=f"iterations of the stage (default lm {FULL['lm_max_iters']}, "
                         f"judge {FULL['judge_max_iters']})")
    g = ap.add_argument_group("model (default: the fork's standard char shape)")
    g.add_argument("--n-layer", type=int)
    g.add_argument("--n-head", type=int)
    g.add_argument("--n-embd", type=int)
    g.add_argument("--block-size", type=int)
    g = ap.add_argument_group("optimisation")
    g.add_argument("--batch-size", type=int, help="LM batch (windows of block_size)")
    g.add_argument("--lr", type=float, help="LM peak learning rate")
    g.add_argument("--min-lr-ratio", type=float, default=0.1, help="final lr / peak lr")
    g.add_argument("--warmup-iters", type=int)
    g.add_argument("--weight-decay", type=float, default=0.1, help="on 2-D weights only")
    g.add_argument("--betas", type=float, nargs=2, default=[0.9, 0.99])
    g.add_argument("--grad-clip", type=float, default=1.0, help="0 disables")
    g.add_argument("--dropout", type=float, default=0.0,
                   help="LM stage: dropout on the embeddings, attention weights and residual "
                        "branches, in training only (validation and inference run without it)")
    g.add_argument("--compile", dest="compile", action="store_true", default=True,
                   help="torch.compile the transformer blocks (CUDA, PyTorch 2.x only)")
    g.add_argument("--no-compile", dest="compile", action="store_false")
    g = ap.add_argument_group("heads")
    g.add_argument("--critic-start", type=float, default=0.2,
                   help="start_critic_iteration as a fraction of max_iters")
    g.add_argument("--critic-end", type=float, default=0.4,
                   help="end_critic_iteration as a fraction of max_iters")
    g.add_argument("--neighbor-keep", type=float, default=0.5,
                   help="sampler training: chance that a masked neighbour still shows its true id")
    g = ap.add_argument_group("judge")
    g.add_argument("--lm-ckpt", default=None, help="LM checkpoint (default OUT/ckpt.pt)")
    g.add_argument("--judge-batch-size", type=int)
    g.add_argument("--judge-lr", type=float)
    g.add_argument("--judge-warmup-iters", type=int)
    g.add_argument("--judge-ratio", type=float, nargs=2, default=[0.1, 0.8],
                   help="mask ratio range of synthetic samples")
    g.add_argument("--judge-real-frac", type=float, default=0.1,
                   help="fraction of samples left as real text (target 0)")
    g = ap.add_argument_group("classifier (the remasking model)")
    g.add_argument("--corrupt-lm", action="append", default=None, metavar="FILE",
                   help="a language model (remask/1 .safetensors or fork ckpt.pt) whose mistakes "
                        "the classifier learns; repeat for several (used in turn, one per batch)")
    g.add_argument("--classifier-init", default=None,
                   help="LM whose trunk the classifier starts from (default OUT/ckpt.pt if present, "
                        "else scratch at --n-layer/--n-head/--n-embd)")
    g.add_argument("--classifier-batch-size", type=int)
    g.add_argument("--classifier-lr", type=float)
    g.add_argument("--classifier-warmup-iters", type=int)
    g.add_argument("--classifier-val-windows", type=int)
    g = ap.add_argument_group("evaluation, logging, output")
    g.add_argument("--val-windows", type=int, help="LM val windows per mask ratio")
    g.add_argument("--judge-val-windows", type=int, help="judge val samples")
    g.add_argument("--val-interval", type=int, default=0,
                   help="validate every N iterations (0: at 25%%, 50%% and 75%% of the run)")
    g.add_argument("--log-interval", type=int)
    g.add_argument("--keep-best", action="store_true",
                   help="LM stage: at each validation, write OUT/best.pt (no optimizer) when the "
                        "mean val masked CE over the ratios 0.15/0.5/0.9 improves; needs --val-interval")
    g = ap.add_argument_group("a run in several processes (LM stage)")
    g.add_argument("--stop-at-iter", type=int, default=None, metavar="N",
                   help="end this process after iteration N, writing OUT/resume.pt; the schedule "
                        "stays that of --max-iters")
    g.add_argument("--stop-after-seconds", type=float, default=None, metavar="S",
                   help="end this process at the first iteration boundary S seconds after it "
                        "started, writing OUT/resume.pt; the schedule stays that of --max-iters")
    g.add_argument("--resume", default=None, metavar="FILE",
                   help="continue the run stopped in FILE (OUT/resume.pt); give the stopped "
                        "run's options again (they are checked)")
    g.add_argument("--init-weights", default=None, metavar="FILE",
                   help="LM stage: start from the weights of FILE (ckpt.pt or best.pt of a run of "
                        "the same shape) with a fresh AdamW and a fresh schedule of --max-iters; "
                        "for continuing a run whose resume.pt was lost")
    g.add_argument("--save-optimizer", dest="save_optimizer", action="store_true", default=True,
                   help="store the AdamW state under 'optimizer' (3x the weights' size)")
    g.add_argument("--no-save-optimizer", dest="save_optimizer", action="store_false",
                   help="store an empty dict under 'optimizer' (a smaller file)")
    args = ap.parse_args(argv)

    if args.smoke:
        args.preset = "smoke"
    args.smoke = args.preset == "smoke"
    preset = PRESETS[args.preset]
    for key in ("n_layer", "n_head", "n_embd", "block_size", "batch_size", "warmup_iters",
                "lr", "judge_batch_size", "judge_lr", "judge_warmup_iters", "val_windows",
                "judge_val_windows", "log_interval", "classifier_batch_size", "classifier_lr",
                "classifier_warmup_iters", "classifier_val_windows"):
        if getattr(args, key) is None:
            setattr(args, key, preset[key])
    if args.stage != "lm":
        given = [name for name, value in (("--dropout", args.dropout != 0.0),
                                          ("--keep-best", args.keep_best),
                                          ("--stop-at-iter", args.stop_at_iter is not None),
                                          ("--stop-after-seconds", args.stop_after_seconds is not None),
                                          ("--resume", args.resume is not None),
                                          ("--init-weights", args.init_weights is not None)) if value]
        if given:
            ap.error(f"{', '.join(given)}: only for --stage lm (a stopped LM writes no ckpt.pt "
                     "for a later stage to read)")
    if args.init_weights is not None and args.resume is not None:
        ap.error("--init-weights and --resume: give one (--resume continues a run with its "
                 "optimizer and schedule; --init-weights starts a new run from a checkpoint's weights)")
    if not 0.0 <= args.dropout < 1.0:
        ap.error(f"--dropout {args.dropout}: want 0 <= P < 1")
    if args.keep_best and args.val_interval <= 0:
        ap.error("--keep-best needs --val-interval N > 0 (validating at 25/50/75% of the run "
                 "is too coarse to pick the best iteration)")
    if args.stop_at_iter is not None and args.stop_at_iter < 1:
        ap.error(f"--stop-at-iter {args.stop_at_iter}: want N >= 1")
    if args.stop_after_seconds is not None and args.stop_after_seconds <= 0:
        ap.error(f"--stop-after-seconds {args.stop_after_seconds}: want S > 0")
    args.preset_name = args.preset
    args.preset = preset
    words = sys.argv if argv is None else ["tools/train/train.py"] + list(argv)
    args.command_line = " ".join(shlex.quote(a) for a in words)
    return args


def stage_args(args: argparse.Namespace, stage: str) -> argparse.Namespace:
    """Resolve --max-iters / --max-seconds for one stage."""
    a = argparse.Namespace(**vars(args))
    p = args.preset
    if stage == "lm":
        a.max_iters = args.max_iters if args.max_iters is not None else p["lm_max_iters"]
        a.max_seconds = args.max_seconds if args.max_seconds is not None else p["lm_max_seconds"]
    elif stage == "judge":
        a.judge_max_iters = args.max_iters if args.max_iters is not None else p["judge_max_iters"]
        a.max_seconds = args.max_seconds if args.max_seconds is not None else p["judge_max_seconds"]
    else:
        a.classifier_max_iters = (args.max_iters if args.max_iters is not None
                                  else p["classifier_max_iters"])
        a.max_seconds = (args.max_seconds if args.max_seconds is not None
                         else p["classifier_max_seconds"])
    a.preset = args.preset_name
    del a.preset_name
    return a


def main(argv=None) -> int:
    args = parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    runtime = setup_runtime(args.device)
    log = Log(os.path.join(args.out, "train_log.jsonl"))
    t0 = T0 if argv is None else time.time()  # in-process callers (tests): from now
    for stage in (("lm", "judge") if args.stage == "all" else (args.stage,)):
        a = stage_args(args, stage)
        clock = Clock(t0, a.max_seconds)
        log(f"== stage {stage}: {args.command_line}", {"event": "stage", "stage": stage,
                                                        "command": args.command_line})
        if stage == "lm":
            train_lm.run(a, runtime, clock, log)
        elif stage == "judge":
            train_judge.run(a, runtime, clock, log)
        else:
            train_classifier.run(a, runtime, clock, log)
        t0 = time.time()
    return 0


if __name__ == "__main__":
    sys.exit(main())
