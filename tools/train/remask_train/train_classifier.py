"""Stage classifier: the external remasking model (a token classifier, spec 6.6).

What remask does with it (`--remasking model`, engine/sampler/remask.go, spec Q13):
at each diffusion iteration it runs the classifier over the predicted sequence
(every position filled) and reads the RAW class-1 logit as the confidence that
the token is right; wrongness = 1 - sigmoid(logit), and the least confident
positions are remasked. So this stage gives the classes that meaning:

  * class 1 logit = log-odds that the token is the original text's token,
  * class 0 logit = log-odds that it is wrong,

each trained with its own binary cross-entropy (not a softmax over the two), so
the class-1 logit alone is calibrated, as remask reads it.

Data, made on the fly, like the judge's: a window of block_size characters at a
line start; r ~ U(0, 1] per sample; each position becomes [MASK] with
probability r; a corrupting language model fills every [MASK] in one parallel
pass, drawing from its LM head over the ordinary characters at a temperature
drawn from U(0.7, 1.0) per sample (remask samples at 0.8 by default); the
target of every position is 1 where the filled token equals the original,
0 where it differs. The corrupting LMs (remask/1 files or fork checkpoints)
are drawn in turn, one per batch, so the classifier learns the mistakes of each
model it will be used with.

The classifier (mode token_classifier, 2 classes, the LM's vocabulary) starts
from a trained LM's trunk (--classifier-init, default OUT/ckpt.pt) with a fresh
Linear(C, 2) head, or from scratch at the --n-layer/--n-head/--n-embd shape.

Validation, on a fixed corrupted val set: the BCE of the class-1 logit, its
accuracy, and the ROC AUC of ranking wrong tokens above right ones, next to the
same AUC for the corrupting LM's own critic (where it has one) on the same
inputs: the question is whether the classifier finds the mistakes better.
"""

from __future__ import annotations

import os
from typing import Optional, Tuple

import numpy as np
import torch
import torch.nn.functional as F

from . import data as D
from . import rmfile
from .model import GPT, GPTConfig, ModelMode
from .train_common import (Clock, Log, Runtime, Trunk, Validator, environment, load_checkpoint,
                           make_adamw, plain_config, save_checkpoint, seed_everything,
                           train_loop, update_metrics, use_fused_attention,
                           config_from_model_args)
from .train_lm import VAL_SEED, gumbel_argmax

TEMPERATURE_RANGE = (0.7, 1.0)


def load_any_lm(path: str, runtime: Runtime) -> GPT:
    """A language model from a remask/1 file or a fork-format checkpoint, eval mode, frozen."""
    if path.endswith(".safetensors"):
        lm, _ = rmfile.read_model(path)
    else:
        ckpt = load_checkpoint(path)
        lm = GPT(config_from_model_args(ckpt["model_args"]))
        lm.load_state_dict(ckpt["model"], strict=True)
    if lm.config.mode != ModelMode.LANGUAGE_MODEL:
        raise ValueError(f"{path}: mode {lm.config.mode.value}, want language_model")
    lm = lm.to(runtime.device).eval()
    for p in lm.parameters():
        p.requires_grad_(False)
    use_fused_attention(lm, runtime)
    return lm


def classifier_config(shape: GPTConfig, vocab: D.Vocab) -> GPTConfig:
    return GPTConfig(
        n_layer=shape.n_layer, n_head=shape.n_head, n_embd=shape.n_embd,
        block_size=shape.block_size, bias=shape.bias, vocab_size=vocab.size, dropout=0.0,
        attention_type="bidirectional", position_encoding=shape.position_encoding,
        mode=ModelMode.TOKEN_CLASSIFIER, num_token_classes=2,
        mask_token_id=vocab.mask_id, pad_token_id=vocab.pad_id)


def classifier_from_lm(lm: GPT, vocab: D.Vocab) -> GPT:
    """A token classifier with lm's trunk (every transformer.* tensor copied) and a new head."""
    clf = GPT(classifier_config(lm.config, vocab)).to(lm.transformer.wte.weight.device)
    src = lm.state_dict()
    with torch.no_grad():
        for name, t in clf.state_dict().items():
            if name.startswith("transformer."):
                t.copy_(src[name])
    return clf


@torch.no_grad()
def corrupt(lm: GPT, lm_trunk, x: torch.Tensor, runtime: Runtime,
            generator: Optional[torch.Generator] = None) -> Tuple[torch.Tensor, torch.Tensor]:
    """x (B, T) -> (the LM-filled sequence (B, T), right (B, T) float: 1 = original token)."""
    cfg = lm.config
    B = x.shape[0]
    r = D.ratio_uniform01(B, x.device, generator)
    inp, mask = D.mask_batch(x, r, cfg.mask_token_id, generator)
    lo, hi = TEMPERATURE_RANGE
    temp = lo + (hi - lo) * torch.rand(B, 1, 1, device=x.device, generator=generator)
    with runtime.autocast():
        logits = lm.lm_logits(lm_trunk(inp))                          # (B, T, V)
    drawn = gumbel_argmax(logits[..., :cfg.mask_token_id].float() / temp, generator)
    filled = torch.where(mask, drawn, x)
    return filled, (filled == x).float()


def class_losses(logits: torch.Tensor, right: torch.Tensor) -> torch.Tensor:
    """BCE of the class-1 logit against right plus BCE of the class-0 logit against wrong."""
    logits = logits.float()
    return (F.binary_cross_entropy_with_logits(logits[..., 1], right)
            + F.binary_cross_entropy_with_logits(logits[..., 0], 1.0 - right))


def roc_auc(score_wrong: torch.Tensor, wrong: torch.Tensor) -> float:
    """Probability that a random wrong token scores above a random right one (ties half)."""
    s = score_wrong.double().flatten()
    w = wrong.flatten().bool()
    n_pos, n_neg = int(w.sum()), int((~w).sum())
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = torch.argsort(s)
    ranks = torch.empty_like(s)
    ranks[order] = torch.arange(1, s.numel() + 1, device=s.device, dtype=s.dtype)
    # average ranks over ties
    uniq, inv, counts = torch.unique(s, return_inverse=True, return_counts=True)
    sums = torch.zeros_like(uniq).index_add_(0, inv, ranks)
    ranks = (sums / counts.to(s.dtype))[inv]
    return float((ranks[w].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@torch.no_grad()
def evaluate(clf: GPT, trunk, sets, batch: int, runtime: Runtime) -> dict:
    """Per corrupting LM: BCE, accuracy and AUC of the classifier (and the LM critic's AUC)."""
    was = clf.training
    clf.eval()
    out = {}
    for name, (inp, right, critic_auc) in sets.items():
        logits = []
        for i in range(0, inp.shape[0], batch):
            with runtime.autocast():
                logits.append(clf.lm_logits(trunk(inp[i:i + batch])).float())
        lg = torch.cat(logits)                                        # (N, T, 2)
        conf = lg[..., 1]
        out[name] = {
            "bce": float(F.binary_cross_entropy_with_logits(conf, right)),
            "accuracy": float(((conf > 0).float() == right).float().mean()),
            "auc": roc_auc(-conf, 1.0 - right),
            "critic_auc": critic_auc,
            "wrong_fraction": float(1.0 - right.mean()),
        }
    clf.train(was)
    return out


def run(args, runtime: Runtime, clock: Clock, log: Log) -> dict:
    """Train the token classifier and write classifier_ckpt.pt and metrics.json's 'classifier'."""
    seed = args.seed + 2
    seed_everything(seed)
    rng = np.random.default_rng(seed)
    corpus = D.load_corpus(args.data)
    vocab = corpus.vocab

    lm_paths = list(args.corrupt_lm or [])
    if not lm_paths:
        raise ValueError("--stage classifier needs at least one --corrupt-lm (a language model "
                         "whose mistakes the classifier learns to find)")
    lms = [load_any_lm(p, runtime) for p in lm_paths]
    for p, lm in zip(lm_paths, lms):
        if lm.config.vocab_size != vocab.size or lm.config.mask_token_id != vocab.mask_id:
            raise ValueError(f"{p}: vocabulary of {lm.config.vocab_size} (mask "
                             f"{lm.config.mask_token_id}), want {vocab.size} (mask {vocab.mask_id})")
    lm_trunks = [Trunk(lm, runtime, compile_blocks=False) for lm in lms]

    init = args.classifier_init
    if init is None and os.path.exists(os.path.join(args.out, "ckpt.pt")):
        init = os.path.join(args.out, "ckpt.pt")
    if init:
        clf = classifier_from_lm(load_any_lm(init, runtime), vocab)
    else:
        shape = GPTConfig(n_layer=args.n_layer, n_head=args.n_head, n_embd=args.n_embd,
                          block_size=args.block_size, bias=False, vocab_size=vocab.size,
                          attention_type="bidirectional", position_encoding="rotary")
        clf = GPT(classifier_config(shape, vocab)).to(runtime.device)
    T = clf.config.block_size
    B = args.classifier_batch_size
    train = D.Split(corpus.train_ids, T, corpus.newline_id, runtime.device)
    val = D.Split(corpus.val_ids, T, corpus.newline_id, runtime.device)
    fused = use_fused_attention(clf, runtime)
    trunk = Trunk(clf, runtime, compile_blocks=args.compile)
    eval_trunk = Trunk(clf, runtime, compile_blocks=False)
    optimizer = make_adamw(clf, args.classifier_lr, args.weight_decay, args.betas, runtime)

    # Fixed val sets, one per corrupting LM, with that LM's critic AUC on the same input.
    vrng = np.random.default_rng(VAL_SEED)
    vx = val.gather(np.sort(vrng.choice(val.starts, size=args.classifier_val_windows,
                                        replace=args.classifier_val_windows > len(val.starts))))
    sets = {}
    for k, (p, lm, lt) in enumerate(zip(lm_paths, lms, lm_trunks)):
        gen = torch.Generator(device=runtime.device)
        gen.manual_seed(VAL_SEED + k)
        parts = [corrupt(lm, lt, vx[i:i + B], runtime, gen) for i in range(0, vx.shape[0], B)]
        inp = torch.cat([q[0] for q in parts])
        right = torch.cat([q[1] for q in parts])
        critic_auc = None
        if lm.config.has_critic:
            with torch.no_grad():
                crit = []
                for i in range(0, inp.shape[0], B):
                    with runtime.autocast():
                        crit.append(lm.critic_logits(lt(inp[i:i + B])).float())
            critic_auc = roc_auc(torch.cat(crit), 1.0 - right)
        sets[os.path.basename(p)] = (inp, right, critic_auc)

    n_params = sum(p.numel() for p in clf.parameters())
    log(f"classifier: {n_params / 1e6:.2f}M parameters ({clf.config.n_layer}x{clf.config.n_embd}, "
        f"init {init or 'scratch'}), corrupting LMs {lm_paths}, batch {B}x{T}, "
        f"max_iters {args.classifier_max_iters}, fused attention {fused}, compiled {trunk.compiled}",
        {"event": "start", "stage": "classifier", "params": n_params})

    def val_line(it: int, res: dict) -> str:
        return f"val  iter {it:5d}  " + " | ".join(
            f"{k}: bce {v['bce']:.4f} acc {v['accuracy']:.4f} auc {v['auc']:.4f}"
            + (f" (critic auc {v['critic_auc']:.4f})" if v["critic_auc"] is not None else "")
            for k, v in res.items())

    def loss_at(it: int) -> torch.Tensor:
        k = it % len(lms)
        inp, right = corrupt(lms[k], lm_trunks[k], train.sample(rng, B), runtime)
        with runtime.autocast():
            logits = clf.lm_logits(trunk(inp))
        return class_losses(logits, right)

    max_iters = args.classifier_max_iters
    res = train_loop("classifier", clf, optimizer, loss_at,
                     Validator(lambda: evaluate(clf, eval_trunk, sets, B, runtime), val_line, log),
                     args, max_iters=max_iters, lr=args.classifier_lr,
                     warmup_iters=args.classifier_warmup_iters, tokens_per_step=B * T,
                     loss_label="loss", loss_key="bce2", rate_in_record=False,
                     runtime=runtime, clock=clock, log=log)
    it, final = res.iters, res.final

    meta = D.lm_meta(vocab, T, B)
    config = plain_config(vars(args))
    config.update({
        "dataset": "token_classifier", "init_from": "lm" if init else "scratch",
        "model_mode": "token_classifier", "trainer": "tools/train/train.py",
        "classes": "0 = wrong (differs from the text), 1 = right; each logit trained by its own BCE",
        "meta": meta,
    })
    path = os.path.join(args.out, "classifier_ckpt.pt")
    os.makedirs(args.out, exist_ok=True)
    mean_bce = sum(v["bce"] for v in final.values()) / len(final)
    size = save_checkpoint(path, clf, optimizer if args.save_optimizer else None, it, mean_bce, config)
    log(f"classifier: wrote {path} ({size / 1e6:.1f} MB); iter {it}, {clock.elapsed():.0f}s",
        {"event": "saved", "path": path, "bytes": size})

    metrics = res.metrics(args, seed, max_iters, B, T, clock)
    metrics.update({
        "params": n_params,
        "init": init, "corrupt_lms": lm_paths, "temperature_range": list(TEMPERATURE_RANGE),
        "shape": [clf.config.n_layer, clf.config.n_head, clf.config.n_embd],
        "compiled": trunk.compiled, "fused_attention": fused,
        "device": str(runtime.device), "gpu_name": runtime.gpu_name, "smoke": bool(args.smoke),
    })
    metrics.update(environment())
    update_metrics(os.path.join(args.out, "metrics.json"), "classifier", metrics)
    return metrics
