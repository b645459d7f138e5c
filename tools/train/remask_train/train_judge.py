"""Stage judge: a sequence scorer initialised from the trained LM (spec 6.5).

Data, made on the fly from the trained LM itself:

  * a window of block_size - 1 characters starting at a line start;
  * r ~ U(0.1, 0.8) per sample, except real_frac (10%) of the samples with r = 0
    (real text, target 0);
  * each position becomes [MASK] with probability r, and the LM fills every
    [MASK] in one parallel pass at temperature 1, sampling from the ordinary
    characters only;
  * x = the fraction of the window's positions that were masked and refilled by
    the LM (the fork's "fraction of masked positions"; a refilled character can
    equal the original), target y = x^4 - 2x^3 + 2x;
  * judge input = [CLS] + window, length block_size.

Loss: MSE between the judge's sigmoid output (read at position 0) and y.

The judge (mode sequence_scorer, vocabulary = the LM's + [CLS], cls_token_id =
the LM's vocab_size) starts from the LM's trunk: every transformer.* tensor is
copied, wte gets the LM's rows for the shared ids, and both the [CLS] row and
cls_embedding start at the mean of the LM's wte rows.
"""

from __future__ import annotations

import os
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from . import data as D
from .model import GPT, GPTConfig, ModelMode
from .train_common import (Clock, Log, Runtime, Trunk, Validator, config_from_model_args,
                           environment, load_checkpoint, make_adamw, plain_config,
                           save_checkpoint, seed_everything, train_loop, update_metrics,
                           use_fused_attention)
from .train_lm import VAL_SEED, gumbel_argmax


def judge_target(x: torch.Tensor) -> torch.Tensor:
    """y = x^4 - 2x^3 + 2x: monotone, y(0) = 0, y(1) = 1 (spec 6.5)."""
    return x.pow(4) - 2 * x.pow(3) + 2 * x


def load_lm(path: str, runtime: Runtime) -> Tuple[GPT, dict]:
    """The LM of a fork-format checkpoint, on the runtime's device, in eval mode."""
    ckpt = load_checkpoint(path)
    cfg = config_from_model_args(ckpt["model_args"])
    if cfg.mode != ModelMode.LANGUAGE_MODEL:
        raise ValueError(f"{path}: mode {cfg.mode.value}, want language_model")
    lm = GPT(cfg)
    lm.load_state_dict(ckpt["model"], strict=True)
    return lm.to(runtime.device).eval(), ckpt


def judge_from_lm(lm: GPT) -> GPT:
    """A sequence scorer with the LM's trunk and vocabulary + [CLS] (see the module doc)."""
    lc = lm.config
    cls_id = lc.vocab_size
    cfg = GPTConfig(
        n_layer=lc.n_layer, n_head=lc.n_head, n_embd=lc.n_embd, block_size=lc.block_size,
        bias=lc.bias, vocab_size=lc.vocab_size + 1, dropout=0.0,
        attention_type="bidirectional", position_encoding=lc.position_encoding,
        mode=ModelMode.SEQUENCE_SCORER, cls_token_id=cls_id,
        mask_token_id=lc.mask_token_id, pad_token_id=lc.pad_token_id)
    judge = GPT(cfg).to(lm.transformer.wte.weight.device)
    src = lm.state_dict()
    with torch.no_grad():
        for name, t in judge.state_dict().items():
            if name == "transformer.wte.weight":
                t[:cls_id].copy_(src[name])
                t[cls_id].copy_(src[name].mean(dim=0))
            elif name.startswith("transformer."):
                t.copy_(src[name])
        judge.cls_embedding.copy_(src["transformer.wte.weight"].mean(dim=0))
    return judge


@torch.no_grad()
def corrupt(lm: GPT, lm_trunk, x: torch.Tensor, runtime: Runtime, real_frac: float,
            ratio_range, cls_id: int, generator: Optional[torch.Generator] = None):
    """LM-refilled windows: x (B, T-1) -> (judge input (B, T), target y (B,), x fraction (B,))."""
    cfg = lm.config
    B = x.shape[0]
    lo, hi = ratio_range
    u = torch.rand(2, B, device=x.device, generator=generator)
    r = torch.where(u[0] < real_frac, torch.zeros_like(u[1]), lo + (hi - lo) * u[1])   # (B,)
    inp, mask = D.mask_batch(x, r, cfg.mask_token_id, generator, at_least_one=False)
    with runtime.autocast():
        logits = lm.lm_logits(lm_trunk(inp))                          # (B, T-1, V)
    drawn = gumbel_argmax(logits[..., :cfg.mask_token_id].float(), generator)  # ordinary chars
    filled = torch.where(mask, drawn, x)
    frac = mask.float().mean(dim=1)                                   # (B,)
    cls = torch.full((B, 1), cls_id, dtype=x.dtype, device=x.device)
    return torch.cat([cls, filled], dim=1), judge_target(frac), frac


def judge_scores(judge: GPT, trunk, inp: torch.Tensor, runtime: Runtime) -> torch.Tensor:
    """Judge output in (0, 1), (B, T) -> (B,); the head runs in float32."""
    with runtime.autocast():
        h = trunk(inp)                                                # (B, T, C)
    return judge.judge(h.float())


def pearson(a: torch.Tensor, b: torch.Tensor) -> float:
    a = a.double() - a.double().mean()
    b = b.double() - b.double().mean()
    den = float(a.norm() * b.norm())
    return float((a * b).sum()) / den if den > 0 else float("nan")


@torch.no_grad()
def evaluate(judge: GPT, trunk, inputs: torch.Tensor, y: torch.Tensor, batch: int,
             runtime: Runtime) -> dict:
    """MSE, correlation and reference numbers on the fixed corrupted val set."""
    was = judge.training
    judge.eval()
    pred = torch.cat([judge_scores(judge, trunk, inputs[i:i + batch], runtime)
                      for i in range(0, inputs.shape[0], batch)])
    judge.train(was)
    real = y == 0
    return {
        "mse": float(F.mse_loss(pred, y)),
        "correlation": pearson(pred, y),
        "baseline_mse": float(((y - y.mean()) ** 2).mean()),  # predicting the mean target
        "mean_pred_real_text": float(pred[real].mean()) if bool(real.any()) else None,
        "mean_pred_synthetic": float(pred[~real].mean()) if bool((~real).any()) else None,
        "samples": int(y.numel()),
    }


def run(args, runtime: Runtime, clock: Clock, log: Log) -> dict:
    """Train the judge and write judge_ckpt.pt and the 'judge' section of metrics.json."""
    seed = args.seed + 1  # a stream of its own, independent of the LM stage's
    seed_everything(seed)
    rng = np.random.default_rng(seed)
    lm_path = args.lm_ckpt or os.path.join(args.out, "ckpt.pt")
    lm, lm_ckpt = load_lm(lm_path, runtime)
    use_fused_attention(lm, runtime)
    lm_trunk = Trunk(lm, runtime, compile_blocks=False)
    for p in lm.parameters():
        p.requires_grad_(False)

    corpus = D.load_corpus(args.data)
    vocab = corpus.vocab
    meta = lm_ckpt["config"].get("meta", {})
    want = {c: i for i, c in enumerate(vocab.chars)}
    got = {k: v for k, v in meta.get("stoi", {}).items() if v < vocab.base_size}
    if got and got != want:
        raise ValueError(f"{lm_path}: its vocabulary differs from that of {args.data}")
    T = lm.config.block_size
    B = args.judge_batch_size
    if vocab.cls_id != lm.config.vocab_size:
        raise ValueError(f"{lm_path}: vocab_size {lm.config.vocab_size}, want {vocab.cls_id}")
    train = D.Split(corpus.train_ids, T - 1, corpus.newline_id, runtime.device)
    val = D.Split(corpus.val_ids, T - 1, corpus.newline_id, runtime.device)

    judge = judge_from_lm(lm)
    fused = use_fused_attention(judge, runtime)
    trunk = Trunk(judge, runtime, compile_blocks=args.compile)
    eval_trunk = Trunk(judge, runtime, compile_blocks=False)
    optimizer = make_adamw(judge, args.judge_lr, args.weight_decay, args.betas, runtime)
    ratio_range = tuple(args.judge_ratio)

    # The fixed validation set: val windows corrupted once with a fixed generator.
    vrng = np.random.default_rng(VAL_SEED)
    vstarts = np.sort(vrng.choice(val.starts, size=args.judge_val_windows,
                                  replace=args.judge_val_windows > len(val.starts)))
    gen = torch.Generator(device=runtime.device)
    gen.manual_seed(VAL_SEED)
    vx = val.gather(vstarts)
    parts = [corrupt(lm, lm_trunk, vx[i:i + B], runtime, args.judge_real_frac, ratio_range,
                     vocab.cls_id, gen) for i in range(0, vx.shape[0], B)]
    v_in = torch.cat([p[0] for p in parts])
    v_y = torch.cat([p[1] for p in parts])

    n_params = sum(p.numel() for p in judge.parameters())
    log(f"judge: {n_params / 1e6:.2f}M parameters from {lm_path} (iter {lm_ckpt.get('iter_num')}), "
        f"vocab {judge.config.vocab_size}, cls {vocab.cls_id}, batch {B}x{T}, "
        f"max_iters {args.judge_max_iters}, fused attention {fused}, compiled {trunk.compiled}",
        {"event": "start", "stage": "judge", "params": n_params})

    def val_line(it: int, res: dict) -> str:
        return (f"val  iter {it:5d}  judge mse {res['mse']:.5f}  corr {res['correlation']:.4f}  "
                f"(baseline mse {res['baseline_mse']:.5f}, real text -> "
                f"{res['mean_pred_real_text']})")

    def loss_at(it: int) -> torch.Tensor:
        inp, y, _ = corrupt(lm, lm_trunk, train.sample(rng, B), runtime, args.judge_real_frac,
                            ratio_range, vocab.cls_id)
        return F.mse_loss(judge_scores(judge, trunk, inp, runtime), y)

    max_iters = args.judge_max_iters
    res = train_loop("judge", judge, optimizer, loss_at,
                     Validator(lambda: evaluate(judge, eval_trunk, v_in, v_y, B, runtime),
                               val_line, log),
                     args, max_iters=max_iters, lr=args.judge_lr,
                     warmup_iters=args.judge_warmup_iters, tokens_per_step=B * T,
                     loss_label="mse", loss_key="mse", rate_in_record=True,
                     runtime=runtime, clock=clock, log=log)
    it, final = res.iters, res.final

    jmeta = D.judge_meta(vocab, T, B)
    config = plain_config(vars(args))
    config.update({
        "dataset": "sequence_scorer", "init_from": "lm", "model_mode": "sequence_scorer",
        "trainer": "tools/train/train.py", "lm_checkpoint": os.path.basename(lm_path),
        "judge_target": "x^4 - 2x^3 + 2x, x = fraction of positions masked and refilled by the LM",
        "meta": jmeta,
    })
    path = os.path.join(args.out, "judge_ckpt.pt")
    os.makedirs(args.out, exist_ok=True)
    size = save_checkpoint(path, judge, optimizer if args.save_optimizer else None,
                           it, final["mse"], config)
    log(f"judge: wrote {path} ({size / 1e6:.1f} MB); iter {it}, val mse {final['mse']:.5f}, "
        f"corr {final['correlation']:.4f}, {clock.elapsed():.0f}s",
        {"event": "saved", "path": path, "bytes": size})

    metrics = res.metrics(args, seed, max_iters, B, T, clock)
    metrics.update({
        "val_mse": final["mse"],
        "val_correlation": final["correlation"],
        "params": n_params,
        "lm_checkpoint": lm_path,
        "lm_iter_num": lm_ckpt.get("iter_num"),
        "compiled": trunk.compiled, "fused_attention": fused,
        "device": str(runtime.device), "gpu_name": runtime.gpu_name,
        "smoke": bool(args.smoke),
    })
    metrics.update(environment())
    update_metrics(os.path.join(args.out, "metrics.json"), "judge", metrics)
    return metrics
