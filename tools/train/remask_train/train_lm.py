"""Stage lm: the masked-diffusion language model with its critic and sampler heads.

One training step (spec 6.2-6.4, with the changes the brief asks for):

  1. x (B, T): windows of the train split starting at line starts.
  2. r ~ U(0, 1] per sample; each position becomes [MASK] with probability r
     (at least one per row). LM loss = cross-entropy at the masked positions.
  3. Sampler head, on h.detach() and REAL neighbour embeddings wte[id].detach():
     a neighbour that is visible in the input gives its true id; a masked one
     gives its true id with probability neighbor_keep (0.5), else a zero vector
     (id -1), mimicking the inference wavefront, where neighbours are often
     tokens filled in an earlier wave; sequence boundaries give zeros. Plain CE
     at the masked positions; only the sampler head gets gradients (spec 6.3).
  4. Critic head, once alpha > 0: every [MASK] is replaced by a draw from the
     detached LM softmax over the ordinary characters; target = 1 where that
     input differs from the original; every position is valid (the windows are
     full, so there is no [PAD]; visible positions have target 0); a second trunk
     pass, not detached; BCE-with-logits weighted by alpha, which ramps linearly
     from 0 at start_critic_iteration to critic_alpha at end_critic_iteration.

What it is not: the fork's trainer. There is no BERT 80/10/10 rule, no loss
modifiers and no stage-based masking; the windows are never padded.
"""

from __future__ import annotations

import hashlib
import os
import time
from typing import Dict, Optional

import numpy as np
import torch
import torch.nn.functional as F

from . import data as D
from . import rmfile
from .model import GPT, GPTConfig, ModelMode
from .train_common import (Clock, Log, Runtime, Trunk, Validator, _to_cpu, environment,
                           load_checkpoint, lr_at, make_adamw, model_args_for, plain_config,
                           rng_states, save_checkpoint, seed_everything, set_rng_states, sync,
                           update_metrics, use_fused_attention, val_marks, write_pickle)

VAL_SEED = 1234            # fixed for every run, so val numbers compare across runs
VAL_RATIOS = (0.15, 0.5, 0.9)


# ---- the losses ----------------------------------------------------------------------


def gumbel_argmax(logits: torch.Tensor, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """One draw per row from softmax(logits) (the Gumbel-max trick), (..., V) -> (...)."""
    u = torch.rand(logits.shape, device=logits.device, generator=generator).clamp_(min=1e-10)
    return (logits - torch.log(-torch.log(u))).argmax(dim=-1)


def neighbor_ids(x: torch.Tensor, mask: torch.Tensor, keep: float,
                 generator: Optional[torch.Generator] = None):
    """Left and right neighbour ids for the sampler head, each (B, T); -1 = zero vector.

    A neighbour visible in the input gives its true id. A masked neighbour gives its
    true id with probability `keep` and -1 otherwise. Boundaries give -1.
    """
    B, T = x.shape
    left = torch.full_like(x, -1)
    right = torch.full_like(x, -1)
    if T > 1:
        u = torch.rand(2, B, T - 1, device=x.device, generator=generator)
        use_left = ~mask[:, :-1] | (u[0] < keep)                 # neighbour p-1 of p = 1..T-1
        use_right = ~mask[:, 1:] | (u[1] < keep)                 # neighbour p+1 of p = 0..T-2
        left[:, 1:] = torch.where(use_left, x[:, :-1], left[:, 1:])
        right[:, :-1] = torch.where(use_right, x[:, 1:], right[:, :-1])
    return left, right


def step_losses(model: GPT, trunk, x: torch.Tensor, ratio: torch.Tensor, runtime: Runtime,
                neighbor_keep: float, with_critic: bool,
                generator: Optional[torch.Generator] = None) -> Dict[str, torch.Tensor]:
    """The three losses on one batch x (B, T) at per-sample mask ratios (B,).

    Returns scalar tensors 'lm', 'sampler' (means over the masked positions),
    'n_masked', and with_critic 'critic' (mean over all positions) and 'critic_acc'
    (fraction of positions where the critic logit's sign matches the target)."""
    cfg = model.config
    B, T = x.shape
    V, C = cfg.vocab_size, cfg.n_embd
    inp, mask = D.mask_batch(x, ratio, cfg.mask_token_id, generator)
    labels = torch.where(mask, x, torch.full_like(x, D.IGNORE_INDEX)).view(-1)   # (B*T,)

    with runtime.autocast():
        h = trunk(inp)                                              # (B, T, C)
        logits = model.lm_logits(h)                                 # (B, T, V)
    out = {"lm": F.cross_entropy(logits.float().view(-1, V), labels,
                                 ignore_index=D.IGNORE_INDEX),
           "n_masked": mask.sum()}

    # Sampler head: inputs detached, so its loss trains the head alone.
    left, right = neighbor_ids(x, mask, neighbor_keep, generator)
    with runtime.autocast():
        features = torch.cat([model.neighbor_embeddings(left.view(-1)).detach(),
                              h.detach().view(-1, C),
                              model.neighbor_embeddings(right.view(-1)).detach()], dim=-1)
        s_logits = model.sampler_head(features)                      # (B*T, V)
    out["sampler"] = F.cross_entropy(s_logits.float(), labels, ignore_index=D.IGNORE_INDEX)

    if with_critic:
        base = cfg.mask_token_id  # ids below [MASK] are the ordinary characters
        with torch.no_grad():
            drawn = gumbel_argmax(logits.detach()[..., :base].float(), generator)  # (B, T)
        critic_input = torch.where(mask, drawn, x)
        target = (critic_input != x).float()                        # (B, T)
        with runtime.autocast():
            c_logits = model.critic_logits(trunk(critic_input))      # (B, T), second pass
        c_logits = c_logits.float()
        out["critic"] = F.binary_cross_entropy_with_logits(c_logits, target)
        out["critic_acc"] = ((c_logits > 0).float() == target).float().mean()
    return out


def critic_alpha_at(it: int, cfg: GPTConfig) -> float:
    """0 before start_critic_iteration, linear to critic_alpha at end_critic_iteration."""
    s, e = cfg.start_critic_iteration, cfg.end_critic_iteration
    if it < s:
        return 0.0
    if it >= e:
        return cfg.critic_alpha
    return cfg.critic_alpha * (it - s + 1) / max(1, e - s)


# ---- validation ----------------------------------------------------------------------


def val_windows(split: D.Split, n: int) -> torch.Tensor:
    """n fixed windows of the split (the same for every run), (n, T)."""
    rng = np.random.default_rng(VAL_SEED)
    starts = rng.choice(split.starts, size=n, replace=n > len(split.starts))
    return split.gather(np.sort(starts))


@torch.no_grad()
def evaluate(model: GPT, trunk, windows: torch.Tensor, batch: int, runtime: Runtime,
             neighbor_keep: float, with_critic: bool = True) -> Dict[str, dict]:
    """Masked CE of the LM and the sampler head, and the critic's BCE, on fixed windows at
    each fixed ratio; the masks and draws come from a generator with a fixed seed."""
    was_training = model.training
    model.eval()
    results = {}
    for ratio in VAL_RATIOS:
        gen = torch.Generator(device=windows.device)
        gen.manual_seed(VAL_SEED + int(ratio * 1000))
        sums = {"lm": 0.0, "sampler": 0.0, "critic": 0.0, "critic_acc": 0.0}
        n_masked = n_pos = 0
        for i in range(0, windows.shape[0], batch):
            x = windows[i:i + batch]
            r = torch.full((x.shape[0],), ratio, device=x.device)
            out = step_losses(model, trunk, x, r, runtime, neighbor_keep, with_critic, gen)
            m = int(out["n_masked"])
            sums["lm"] += float(out["lm"]) * m
            sums["sampler"] += float(out["sampler"]) * m
            if with_critic:
                sums["critic"] += float(out["critic"]) * x.numel()
                sums["critic_acc"] += float(out["critic_acc"]) * x.numel()
            n_masked += m
            n_pos += x.numel()
        res = {"lm_ce": sums["lm"] / n_masked, "sampler_ce": sums["sampler"] / n_masked,
               "masked_positions": n_masked}
        if with_critic:
            res["critic_bce"] = sums["critic"] / n_pos
            res["critic_acc"] = sums["critic_acc"] / n_pos
        results[f"{ratio:g}"] = res
    model.train(was_training)
    return results


def val_line(it: int, val: Dict[str, dict]) -> str:
    parts = [f"r={k} lm {v['lm_ce']:.4f} sampler {v['sampler_ce']:.4f}"
             + (f" critic {v['critic_bce']:.4f}" if "critic_bce" in v else "")
             for k, v in val.items()]
    return f"val  iter {it:5d}  " + " | ".join(parts)


# ---- time budget ---------------------------------------------------------------------


class Planner:
    """Keeps the run inside its wall-time budget by shortening the schedule.

    Per-iteration times of plain and critic iterations are measured over log
    intervals (after a synchronisation). If the projected end of the run (plus the
    reserve for the final validation and checkpoint) passes the budget, max_iters
    is lowered once and for all, and, while the critic has not started yet, its
    start and end marks move with it. A run that fits is never changed, so it
    stays reproducible; a shortened run is logged and reported in metrics.json.
    """

    CRITIC_COST = 1.9  # critic iteration / plain iteration, until measured

    def __init__(self, clock: Clock, max_iters: int, critic_fracs, reserve: float):
        self.clock = clock
        self.max_iters = max_iters
        self.start_frac, self.end_frac = critic_fracs
        self.reserve = reserve
        self.plain: Optional[float] = None
        self.critic: Optional[float] = None
        self.shortened_from: Optional[int] = None

    def critic_marks(self, max_iters: int):
        return int(self.start_frac * max_iters), max(int(self.end_frac * max_iters),
                                                     int(self.start_frac * max_iters) + 1)

    def observe(self, seconds_per_iter: float, critic: bool) -> None:
        if critic:
            self.critic = seconds_per_iter
        else:
            self.plain = seconds_per_iter

    def remaining_cost(self, it: int, max_iters: int, cfg: GPTConfig, critic_started: bool) -> float:
        if self.plain is None and self.critic is None:
            return 0.0
        a = self.plain if self.plain is not None else self.critic / self.CRITIC_COST
        b = self.critic if self.critic is not None else a * self.CRITIC_COST
        s = cfg.start_critic_iteration if critic_started else self.critic_marks(max_iters)[0]
        n = max(0, max_iters - it)
        n_critic = max(0, max_iters - max(it, s))
        return (n - n_critic) * a + n_critic * b

    def check(self, it: int, cfg: GPTConfig) -> Optional[int]:
        """Returns a new max_iters when the run must be shortened, else None."""
        started = it >= cfg.start_critic_iteration
        budget = self.clock.left() - self.reserve
        if self.remaining_cost(it, self.max_iters, cfg, started) <= budget:
            return None
        lo, hi = it + 1, self.max_iters        # the largest M in [lo, hi) that fits
        while lo < hi:
            mid = (lo + hi + 1) // 2
            if self.remaining_cost(it, mid, cfg, started) <= budget:
                lo = mid
            else:
                hi = mid - 1
        if lo >= self.max_iters:
            return None
        if self.shortened_from is None:
            self.shortened_from = self.max_iters
        self.max_iters = lo
        return lo


# ---- the stage -----------------------------------------------------------------------


def flops_per_token(cfg: GPTConfig, n_trunk_params: int, T: int) -> float:
    """Training FLOPs per token of one trunk pass: 6N for the matrices plus
    12*L*T*C for attention scores and values (forward and backward)."""
    return 6 * n_trunk_params + 12 * cfg.n_layer * T * cfg.n_embd


# The options that define a run: a resumed process must be given the same values
# (train.py's command line of part 1 plus --resume). The stop options, --max-seconds,
# --out, --device, --compile and --save-optimizer are per process.
RUN_KEYS = ("seed", "preset", "n_layer", "n_head", "n_embd", "block_size", "batch_size",
            "lr", "min_lr_ratio", "warmup_iters", "weight_decay", "betas", "grad_clip",
            "critic_start", "critic_end", "neighbor_keep", "val_windows", "val_interval",
            "max_iters", "dropout", "keep_best", "log_interval")
# Per-process options kept out of checkpoint['config'], so that a run stopped and
# resumed writes the same checkpoint as one that was not.
PROCESS_KEYS = ("stop_after_seconds", "stop_at_iter", "resume")
RESUME_FORMAT = "remask-train-resume/1"


def run_settings(args) -> dict:
    return {k: (list(v) if isinstance(v, tuple) else v)
            for k, v in ((k, getattr(args, k)) for k in RUN_KEYS)}


def load_resume(path: str, args, data_sha256: str) -> dict:
    """The state of resume.pt, after checking that it continues this very run."""
    if not os.path.isfile(path):
        raise SystemExit(f"--resume {path}: no such file (a stopped LM run writes OUT/resume.pt)")
    state = load_checkpoint(path)
    if not isinstance(state, dict) or state.get("format") != RESUME_FORMAT:
        raise SystemExit(f"--resume {path}: not a resume file of this trainer "
                         f"(format {state.get('format') if isinstance(state, dict) else None!r}, "
                         f"want {RESUME_FORMAT!r}); ckpt.pt and best.pt cannot be resumed")
    stored, now = state["run"], run_settings(args)
    diff = [f"--{k.replace('_', '-')} {now[k]!r} (the stopped run: {stored.get(k)!r})"
            for k in RUN_KEYS if now[k] != stored.get(k)]
    if diff:
        raise SystemExit(f"--resume {path}: this command does not continue that run: "
                         + "; ".join(diff) + ". Repeat part 1's options, adding --resume.")
    if state["data_sha256"] != data_sha256:
        raise SystemExit(f"--resume {path}: --data {args.data} is not the text the run "
                         "started on (its SHA-256 differs)")
    return state


def file_sha256(path: str) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read()).hexdigest()


def mean_lm_ce(val: Dict[str, dict]) -> float:
    """The keep-best score: the LM's val masked CE averaged over the three ratios."""
    return sum(v["lm_ce"] for v in val.values()) / len(val)


def run(args, runtime: Runtime, clock: Clock, log: Log) -> dict:
    """Train the LM stage and write ckpt.pt, meta.pkl and the 'lm' section of metrics.json.

    A stop point (--stop-at-iter, --stop-after-seconds) ends the process early with
    OUT/resume.pt instead of ckpt.pt; --resume continues from such a file. Such a
    split run keeps its schedule (max_iters, critic marks, validation marks): the
    planner never shortens it, and --max-seconds, per process, then stops it
    resumably like a stop point. --keep-best writes OUT/best.pt at each new best
    mean val masked CE.
    """
    seed_everything(args.seed)
    rng = np.random.default_rng(args.seed)
    corpus = D.load_corpus(args.data)
    data_sha = file_sha256(args.data)
    resume = load_resume(args.resume, args, data_sha) if args.resume else None
    split = resume is not None or args.stop_at_iter is not None or args.stop_after_seconds is not None
    if args.stop_at_iter is not None and resume is not None and args.stop_at_iter <= resume["iter"]:
        raise SystemExit(f"--stop-at-iter {args.stop_at_iter}: the resumed run is already at "
                         f"iteration {resume['iter']}")
    vocab = corpus.vocab
    T, B = args.block_size, args.batch_size
    train = D.Split(corpus.train_ids, T, corpus.newline_id, runtime.device)
    val = D.Split(corpus.val_ids, T, corpus.newline_id, runtime.device)
    windows = val_windows(val, args.val_windows)

    planner = Planner(clock, args.max_iters, (args.critic_start, args.critic_end), reserve=10.0)
    c_start, c_end = planner.critic_marks(args.max_iters)
    cfg = GPTConfig(
        n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd, block_size=T,
        bias=False, vocab_size=vocab.size, dropout=args.dropout,
        attention_type="bidirectional", position_encoding="rotary",
        mode=ModelMode.LANGUAGE_MODEL, add_critic_head=True, add_sampler_head=True,
        sampler_min_neighbors_ratio=0.01, mask_token_id=vocab.mask_id, pad_token_id=vocab.pad_id,
        critic_alpha=1.0, critic_target_scope="masked_and_ignore",
        start_critic_iteration=c_start, end_critic_iteration=c_end, start_sampler_iteration=0)
    model = GPT(cfg).to(runtime.device)
    fused = use_fused_attention(model, runtime)
    trunk = Trunk(model, runtime, compile_blocks=args.compile)
    eval_trunk = Trunk(model, runtime, compile_blocks=False)
    init_from, init_iter = "scratch", None
    if args.init_weights is not None:
        # A new run from an earlier run's weights (its optimizer state and schedule are not
        # continued): the way on when a split run's resume.pt was lost. A remask/1 file (.safetensors,
        # e.g. pack_result.sh's F16 best) or a checkpoint of this trainer.
        if not os.path.isfile(args.init_weights):
            raise SystemExit(f"--init-weights {args.init_weights}: no such file (give a ckpt.pt, a "
                             "best.pt or a remask/1 .safetensors of an LM of the same shape)")
        try:
            if args.init_weights.endswith(".safetensors"):
                start_model, _ = rmfile.read_model(args.init_weights)
                state, start_iter = start_model.state_dict(), None
            else:
                start = load_checkpoint(args.init_weights)
                state, start_iter = start.get("model"), start.get("iter_num")
        except Exception as e:  # a file that is not a checkpoint: name it, no traceback
            raise SystemExit(f"--init-weights {args.init_weights}: not a readable checkpoint or remask/1 "
                             f"file ({type(e).__name__}: {e}); give a ckpt.pt, a best.pt or a .safetensors "
                             "written by this trainer or remask convert")
        try:
            model.load_state_dict(state)
        except (TypeError, RuntimeError) as e:
            raise SystemExit(f"--init-weights {args.init_weights}: its weights do not fit this "
                             f"model ({e}); give the same --n-layer/--n-head/--n-embd/--block-size")
        init_from, init_iter = "weights", start_iter
    optimizer = make_adamw(model, args.lr, args.weight_decay, args.betas, runtime)

    n_params = sum(p.numel() for p in model.parameters())
    n_trunk = sum(p.numel() for n, p in model.named_parameters()
                  if n.startswith("transformer.h."))
    fpt = flops_per_token(cfg, n_trunk, T)
    log(f"lm: {n_params / 1e6:.2f}M parameters ({n_trunk / 1e6:.2f}M in the blocks), "
        f"vocab {vocab.size}, batch {B}x{T}, max_iters {args.max_iters}, "
        f"critic {c_start}->{c_end}, dropout {args.dropout:g}, init {args.init_weights or 'scratch'}, device {runtime.device}"
        f"{' (' + runtime.gpu_name + ')' if runtime.gpu_name else ''}, "
        f"fused attention {fused}, compiled {trunk.compiled}, "
        f"train windows {len(train.starts)}, val windows {windows.shape[0]}",
        {"event": "start", "stage": "lm", "params": n_params, "max_iters": args.max_iters})

    meta = D.lm_meta(vocab, T, B)
    os.makedirs(args.out, exist_ok=True)

    def ckpt_config() -> dict:
        config = plain_config({k: v for k, v in vars(args).items() if k not in PROCESS_KEYS})
        config.update({
            "dataset": "char_diffusion", "init_from": init_from, "model_mode": "language_model",
            "trainer": "tools/train/train.py", "max_iters": planner.max_iters,
            "sampler_neighbors": "embeddings",  # remask extension: trained with real neighbours
            "meta": meta,
        })
        if init_iter is not None:  # (config["init_weights"] is --init-weights, from args)
            config["init_weights_iter"] = int(init_iter)
        return config

    validate = Validator(
        lambda: evaluate(model, eval_trunk, windows, B, runtime, args.neighbor_keep), val_line, log)
    best = {"score": None, "iter": None, "val": None}
    best_path = os.path.join(args.out, "best.pt")

    def after_validation(it: int, res: Dict[str, dict]) -> None:
        """--keep-best: write best.pt (no optimizer) when the mean val masked CE improves."""
        if not args.keep_best:
            return
        score = mean_lm_ce(res)
        if best["score"] is not None and not score < best["score"]:
            return
        best.update(score=score, iter=it, val=res)
        size = save_checkpoint(best_path, model, None, it, score, ckpt_config())
        log(f"lm: best so far at iter {it} (mean val masked CE {score:.4f}): wrote {best_path} "
            f"({size / 1e6:.1f} MB)", {"event": "best", "iter": it, "score": score})

    model.train()
    it = 0
    tokens = 0
    train_seconds_before = 0.0
    parts = []
    last = {}
    acc: Dict[str, torch.Tensor] = {}
    n_in_interval, n_critic_in_interval = 0, 0
    if resume is None:
        t_val = time.time()
        after_validation(0, validate(0))
        val_seconds = time.time() - t_val
    else:
        model.load_state_dict(resume["model"])
        optimizer.load_state_dict(resume["optimizer"])
        it, tokens = resume["iter"], resume["tokens"]
        planner.max_iters = resume["max_iters"]
        cfg.start_critic_iteration, cfg.end_critic_iteration = resume["critic_marks"]
        planner.plain, planner.critic = resume["planner"]["plain"], resume["planner"]["critic"]
        validate.history = resume["val_history"]
        best.update(resume["best"])
        train_seconds_before = resume["train_seconds"]
        parts = resume["parts"]
        last = resume["last"]
        acc = {k: v.to(runtime.device) for k, v in resume["acc"].items()}
        n_in_interval, n_critic_in_interval = resume["n_in_interval"]
        val_seconds = resume["val_seconds"]
        set_rng_states(resume["rng"], runtime, rng)
        log(f"lm: resumed {args.resume} at iter {it} of {planner.max_iters} "
            f"(part {len(parts) + 1}; critic {cfg.start_critic_iteration}->"
            f"{cfg.end_critic_iteration}; best so far: iter {best['iter']})",
            {"event": "resume", "iter": it, "path": args.resume})
    planner.reserve = 1.5 * val_seconds + 10.0
    marks = val_marks(args.val_interval, planner.max_iters)
    it_start = it

    stopped_by = "max_iters"
    projected = False
    t_interval = time.time()
    t_loop = time.time()
    while it < planner.max_iters:
        if args.stop_at_iter is not None and it >= args.stop_at_iter:
            stopped_by = "stop_at_iter"
            break
        if args.stop_after_seconds is not None and clock.elapsed() >= args.stop_after_seconds:
            stopped_by = "stop_after_seconds"
            break
        if clock.left() < planner.reserve:
            stopped_by = "max_seconds"
            log(f"lm: time budget reached at iter {it} ({clock.elapsed():.0f}s)",
                {"event": "time_budget", "iter": it})
            break
        lr = lr_at(it, planner.max_iters, args.lr, args.warmup_iters, args.lr * args.min_lr_ratio)
        for g in optimizer.param_groups:
            g["lr"] = lr
        alpha = critic_alpha_at(it, cfg)
        x = train.sample(rng, B)                                       # (B, T)
        ratio = D.ratio_uniform01(B, runtime.device)
        out = step_losses(model, trunk, x, ratio, runtime, args.neighbor_keep, alpha > 0)
        loss = out["lm"] + out["sampler"]
        if alpha > 0:
            loss = loss + alpha * out["critic"]
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if args.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        optimizer.step()

        for k in ("lm", "sampler", "critic"):
            if k in out:  # summed on the device; read back at log time only
                acc[k] = acc.get(k, 0) + out[k].detach()
        acc["loss"] = acc.get("loss", 0) + loss.detach()
        n_in_interval += 1
        n_critic_in_interval += int(alpha > 0)
        tokens += B * T
        it += 1

        if it % args.log_interval == 0 or it == planner.max_iters:
            vals = {k: float(v) / (n_critic_in_interval if k == "critic" else n_in_interval)
                    for k, v in acc.items()}                          # float() synchronises
            dt = time.time() - t_interval
            tps = n_in_interval * B * T / dt
            flops = (n_in_interval + n_critic_in_interval) * B * T * fpt / dt
            last = dict(vals, iter=it, alpha=alpha, lr=lr)
            log(f"iter {it:5d}  loss {vals['loss']:.4f}  lm {vals['lm']:.4f}  "
                f"critic {vals.get('critic', float('nan')):.4f}  sampler {vals['sampler']:.4f}  "
                f"alpha {alpha:.2f}  lr {lr:.2e}  {tps / 1e3:.0f}k tok/s  "
                f"{flops / 1e12:.1f} TFLOP/s  {clock.elapsed():.0f}s",
                {"event": "train", "iter": it, "losses": vals, "alpha": alpha, "lr": lr,
                 "tokens_per_s": tps, "elapsed": clock.elapsed()})
            # The first interval of a process holds compilation and warm-up: not a rate.
            if it > it_start + args.log_interval and n_critic_in_interval in (0, n_in_interval):
                planner.observe(dt / n_in_interval, critic=n_critic_in_interval > 0)
                new = None if split else planner.check(it, cfg)
                if split and not projected:
                    projected = True  # once a process: where this speed takes the run
                    end = clock.elapsed() + planner.remaining_cost(it, planner.max_iters, cfg,
                                                                   it >= cfg.start_critic_iteration)
                    log(f"lm: at the speed measured, max_iters {planner.max_iters} would be "
                        f"reached at ~{end:.0f}s of this process (--max-seconds "
                        f"{clock.max_seconds:g}, reserve {planner.reserve:.0f}s"
                        + (f", --stop-after-seconds {args.stop_after_seconds:g}"
                           if args.stop_after_seconds is not None else "") + ")",
                        {"event": "projection", "iter": it, "seconds": end})
                if new is not None:
                    if it < cfg.start_critic_iteration:
                        cfg.start_critic_iteration, cfg.end_critic_iteration = planner.critic_marks(new)
                    marks = val_marks(args.val_interval, new, it)
                    log(f"lm: projected past the time budget: max_iters {planner.shortened_from}"
                        f" -> {new}, critic {cfg.start_critic_iteration}->{cfg.end_critic_iteration}",
                        {"event": "shorten", "iter": it, "max_iters": new})
            acc = {}
            n_in_interval = n_critic_in_interval = 0
            t_interval = time.time()
        if it in marks and it < planner.max_iters:
            after_validation(it, validate(it))
            t_interval = time.time()

    sync(runtime)
    train_seconds = train_seconds_before + time.time() - t_loop
    part = {"iters": [it_start, it], "stopped_by": stopped_by,
            "wall_seconds": round(clock.elapsed(), 2),
            "train_seconds": round(time.time() - t_loop, 2), "command": args.command_line}
    parts = parts + [part]
    metrics = {
        "command": args.command_line,
        "seed": args.seed,
        "iters": it,
        "max_iters_requested": args.max_iters,
        "max_iters_final": planner.max_iters,
        "shortened_from": planner.shortened_from,
        "stopped_by": stopped_by,
        "finished": False,
        "batch_size": B, "block_size": T,
        "dropout": args.dropout,
        "tokens_seen": tokens,
        "train_seconds": round(train_seconds, 2),
        "wall_seconds": round(sum(p["wall_seconds"] for p in parts), 2),
        "tokens_per_second": round(tokens / max(train_seconds, 1e-9), 1),
        "params": n_params,
        "flops_per_token_one_pass": fpt,
        "critic_iterations": [cfg.start_critic_iteration, cfg.end_critic_iteration],
        "final_losses": {k: last.get(k) for k in ("loss", "lm", "critic", "sampler")},
        "val_history": validate.history,
        "parts": parts,
        "compiled": trunk.compiled, "fused_attention": fused,
        "device": str(runtime.device), "gpu_name": runtime.gpu_name,
        "smoke": bool(args.smoke),
    }
    if args.keep_best:
        metrics["best"] = {"iter": best["iter"], "mean_val_lm_ce": best["score"],
                           "val": best["val"], "path": "best.pt"}
    metrics.update(environment())
    metrics_path = os.path.join(args.out, "metrics.json")

    if split and it < planner.max_iters:
        # A split run that has not reached max_iters: save everything needed to go on.
        resume_path = os.path.join(args.out, "resume.pt")
        memo: Dict[tuple, torch.Tensor] = {}
        state = {
            "format": RESUME_FORMAT, "run": run_settings(args), "data_sha256": data_sha,
            "model": _to_cpu(model.state_dict(), memo),
            "optimizer": _to_cpu(optimizer.state_dict(), memo),
            "model_args": model_args_for(cfg),
            "iter": it, "tokens": tokens, "max_iters": planner.max_iters,
            "critic_marks": [cfg.start_critic_iteration, cfg.end_critic_iteration],
            "planner": {"plain": planner.plain, "critic": planner.critic},
            "val_history": validate.history, "val_seconds": val_seconds, "best": dict(best),
            "train_seconds": train_seconds, "parts": parts, "last": last,
            "acc": _to_cpu(acc, {}), "n_in_interval": [n_in_interval, n_critic_in_interval],
            "rng": rng_states(runtime, rng),
        }
        tmp = resume_path + ".tmp"
        torch.save(state, tmp)
        os.replace(tmp, resume_path)
        size = os.path.getsize(resume_path)
        log(f"lm: stopped ({stopped_by}) at iter {it} of {planner.max_iters}: wrote {resume_path} "
            f"({size / 1e6:.1f} MB); continue with the same options and --resume {resume_path}; "
            f"{clock.elapsed():.0f}s",
            {"event": "stopped", "iter": it, "stopped_by": stopped_by, "path": resume_path,
             "bytes": size})
        metrics["resume"] = resume_path
        update_metrics(metrics_path, "lm", metrics)
        write_pickle(os.path.join(args.out, "meta.pkl"), meta)
        return metrics

    final_val = validate(it)
    after_validation(it, final_val)
    best_val_loss = mean_lm_ce(final_val)
    ckpt_path = os.path.join(args.out, "ckpt.pt")
    size = save_checkpoint(ckpt_path, model, optimizer if args.save_optimizer else None,
                           it, best_val_loss, ckpt_config())
    write_pickle(os.path.join(args.out, "meta.pkl"), meta)
    log(f"lm: wrote {ckpt_path} ({size / 1e6:.1f} MB), meta.pkl; iter {it}, "
        f"best_val_loss {best_val_loss:.4f}, {clock.elapsed():.0f}s",
        {"event": "saved", "path": ckpt_path, "bytes": size})

    own_resume = os.path.join(args.out, "resume.pt")
    if args.resume and os.path.isfile(own_resume) and os.path.samefile(args.resume, own_resume):
        os.remove(own_resume)  # spent: resuming it again would only redo the later parts
        log(f"lm: removed the spent {own_resume}", {"event": "removed", "path": own_resume})
    metrics.update({"finished": True, "val": final_val, "val_history": validate.history,
                    "best_val_loss": best_val_loss})
    if args.keep_best:
        metrics["best"] = {"iter": best["iter"], "mean_val_lm_ce": best["score"],
                           "val": best["val"], "path": "best.pt"}
    update_metrics(metrics_path, "lm", metrics)
    return metrics
