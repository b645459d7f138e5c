#!/usr/bin/env python3
"""Write fork-format checkpoints into testdata/fork/, the fixtures of `remask convert`.

Run from the repository root:

    /usr/bin/python3 tools/train/fork_checkpoints.py

Each NAME.pt is a tiny random model saved with torch.save in the exact layout of the
diffusion-first nanoGPT fork's ckpt.pt (sampler-spec.md 2.1, 2.2): a dict with
'model' (the state_dict, with the fork's parameter names), 'optimizer' (a real
torch.optim.AdamW state_dict after one step), 'model_args' (the [SH] or [D7] field
list), 'iter_num', 'best_val_loss' and 'config' (train.py globals plus the whole
dataset meta dict in config['meta']). [SH] model_args['mode'] is a pickled
`model.ModelMode` member, from tools/train/forkshim/model.py, in both
forms: REDUCE(model.ModelMode, (value,)) as Python <= 3.10 writes it (sh_lm,
sh_judge) and getattr(model.ModelMode, NAME) as Python >= 3.11 does (the others).

For every convertible NAME it also writes NAME.expected.json in the golden schema of
testdata/golden (tokens, logits, critic_logits, sampler{pos,left,right,logits},
evaluation), computed in float64 by our PyTorch model (tools/train/remask_train/
model.py). The [D7] variant runs its LoRA adapters unmerged, as the fork does
(output += scaling * B(A(x))), so the Go converter's merge W + scaling * B @ A is
checked against an independent computation. Sampler neighbours are -1 (zero
vectors) everywhere: fork-trained sampler heads only ever saw zeros (spec Q2).
Golden numbers are rounded to 10 significant digits to keep the files small
(the Go tests compare at 1e-4).

Also written: meta.pkl (the vocabulary of the variant whose checkpoint has no
config['meta']), calibration.json (keyed by Windows paths, spec Q22) and bpe.pt (a
GPT-2-vocabulary checkpoint that remask must refuse).

The optimizer's single step uses a loss over the 1-D parameters only (LayerNorm
weights and biases, judge scalars), so that AdamW keeps state for those alone and
every file stays under 300 KB; the state_dict layout is AdamW's own.

Deterministic: fixed seeds; running it twice gives byte-identical files.
"""

from __future__ import annotations

import contextlib
import copy
import json
import os
import pickle
import sys
from collections import OrderedDict
from typing import Dict, List, Optional

import torch
import torch.nn as nn
import torch.nn.functional as F

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(HERE, "forkshim"))  # `model` = the ModelMode shim

import model as forkmodel  # noqa: E402  (tools/train/forkshim/model.py)
from remask_train.model import (  # noqa: E402
    GPT, GPTConfig, LayerNorm, MLP, ModelMode, ScaledSigmoidHead, SelfAttention, Block,
    apply_rotary)

TEXT_PATH = os.path.join(HERE, "data", "tinyshakespeare.txt")
OUT_DIR = os.path.join(HERE, "..", "..", "testdata", "fork")

SIZES = dict(n_layer=2, n_head=4, n_embd=32, block_size=32)
B, T = 2, 24
MAX_FILE_BYTES = 300 * 1024
MAX_TOTAL_BYTES = 2 * 1024 * 1024
MASKED = [[2, 3, 4, 9, 15, 23], [0, 5, 6, 7, 12, 20, 21]]  # masked columns per row

# The Windows-style key of the [D7] calibration table (the fork's shipped file uses
# such keys, spec 2.7 / Q22); only its basename matches d7_lora.pt.
CALIBRATION_KEY = "out-char-diffusion\\d7_lora.pt"
OTHER_CALIBRATION_KEY = "out-char-diffusion\\ckpt_big_lora_10000.pt"


# ---- vocabularies (spec 2.5) ----------------------------------------------------------


def base_characters(text: str) -> List[str]:
    chars = sorted(set(text))
    if len(chars) != 65:
        raise ValueError(f"{TEXT_PATH}: {len(chars)} distinct characters, want 65")
    return chars


def batch_schema(block_size: int) -> list:
    return [{"name": "x", "dtype": "int64", "shape": [block_size], "role": "input"},
            {"name": "y", "dtype": "int64", "shape": [block_size], "role": "target"},
            {"name": "attention_mask", "dtype": "int64", "shape": [block_size], "role": "mask"}]


def char_diffusion_meta(chars: List[str], generation: str) -> dict:
    """The char_diffusion meta.pkl dict: [MASK]=base, [PAD]=base+1 and, for [D7],
    [CLS]=base+2. No base_vocab_size key (the fork never writes one)."""
    base = len(chars)
    specials = ["[MASK]", "[PAD]"] + (["[CLS]"] if generation == "d7" else [])
    stoi = {c: i for i, c in enumerate(chars)}
    itos = {i: c for i, c in enumerate(chars)}
    for j, s in enumerate(specials):
        stoi[s] = base + j
        itos[base + j] = s
    meta = {"dataset_name": "char_diffusion", "training_type": "MLM",
            "vocab_size": base + len(specials), "mask_token_id": base, "pad_token_id": base + 1}
    if generation == "d7":
        meta["cls_token_id"] = base + 2
    meta.update({"mask_probability": 0.15, "ignore_index": -100, "stoi": stoi, "itos": itos,
                 "batch_schema": batch_schema(1024), "batch_size": 16, "block_size": 1024,
                 "target_size": 1024})
    return meta


def judge_meta(chars: List[str]) -> dict:
    """The [SH] sequence_scorer meta: mask 65, CLS 66 (the config's id, which is the
    MLM's PAD), PAD 68 = MLM vocab_size + 1, vocab 69; [CLS] is in stoi only and id 67
    has no string at all (spec 2.5, Q9)."""
    base = len(chars)
    stoi = {c: i for i, c in enumerate(chars)}
    itos = {i: c for i, c in enumerate(chars)}
    stoi.update({"[MASK]": base, "[CLS]": base + 1, "[PAD]": base + 3})
    itos.update({base: "[MASK]", base + 3: "[PAD]"})
    return {"dataset_name": "sequence_scorer", "training_type": "SEQUENCE_SCORING",
            "vocab_size": base + 4, "cls_token_id": base + 1, "pad_token_id": base + 3,
            "mask_token_id": base, "stoi": stoi, "itos": itos,
            "batch_schema": batch_schema(1024), "batch_size": 16, "block_size": 1024,
            "target_size": 1}


# ---- the [D7] modules that our [SH] model lacks (spec 1.7) ---------------------------


class LoRA(nn.Module):
    """The fork's LoRA adapter: scaling * B(A(x)), A Linear(in, r), B Linear(r, out)."""

    def __init__(self, n_in: int, n_out: int, rank: int, alpha: float):
        super().__init__()
        self.A = nn.Linear(n_in, rank, bias=False)
        self.B = nn.Linear(rank, n_out, bias=False)
        self.scaling = alpha / rank

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.scaling * self.B(self.A(x))


class D7Attention(SelfAttention):
    """Bidirectional RoPE attention with LoRA on c_attn (lora_qkv) and c_proj (lora_out)."""

    def __init__(self, config: GPTConfig, rank: int, alpha: float):
        super().__init__(config)
        C = config.n_embd
        self.lora_qkv = LoRA(C, 3 * C, rank, alpha)
        self.lora_out = LoRA(C, C, rank, alpha)

    def forward(self, x, rope):
        Bn, Tn, C = x.shape
        H, d = self.n_head, C // self.n_head
        qkv = self.c_attn(x) + self.lora_qkv(x)                  # (B, T, 3C), before the split
        q, k, v = qkv.split(C, dim=2)
        q = q.view(Bn, Tn, H, d).transpose(1, 2)                  # (B, H, T, d)
        k = k.view(Bn, Tn, H, d).transpose(1, 2)
        v = v.view(Bn, Tn, H, d).transpose(1, 2)
        cos, sin = rope
        q, k = apply_rotary(q, cos, sin), apply_rotary(k, cos, sin)
        att = F.softmax((q @ k.transpose(-2, -1)) / (d ** 0.5), dim=-1)
        y = (att @ v).transpose(1, 2).contiguous().view(Bn, Tn, C)
        return self.c_proj(y) + self.lora_out(y)


class D7MLP(MLP):
    """c_fc (+ lora_fc) -> GELU -> c_proj (+ lora_proj on the 4C GELU output)."""

    def __init__(self, config: GPTConfig, rank: int, alpha: float):
        super().__init__(config)
        C = config.n_embd
        self.lora_fc = LoRA(C, 4 * C, rank, alpha)
        self.lora_proj = LoRA(4 * C, C, rank, alpha)

    def forward(self, x):
        g = self.gelu(self.c_fc(x) + self.lora_fc(x))
        return self.c_proj(g) + self.lora_proj(g)


class CrossAttention(nn.Module):
    """The guidance cross-attention's parameters (never run at sampling time)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        C = config.n_embd
        self.q = nn.Linear(C, C, bias=config.bias)
        self.k = nn.Linear(C, C, bias=config.bias)
        self.v = nn.Linear(C, C, bias=config.bias)
        self.proj = nn.Linear(C, C, bias=config.bias)


class PlanEncoder(nn.Module):
    """The guidance plan encoder's parameters; wte is the model's own (tied)."""

    def __init__(self, config: GPTConfig, wte: nn.Embedding, plan_tokens: int, depth: int):
        super().__init__()
        C = config.n_embd
        self.plan_emb = nn.Parameter(torch.zeros(plan_tokens, C))
        self.wte = wte
        self.wpe = nn.Embedding(config.block_size, C)
        self.ln_in = LayerNorm(C, config.bias)
        self.layers = nn.ModuleList([Block(config) for _ in range(depth)])
        self.ln_out = LayerNorm(C, config.bias)


def make_d7(cfg: GPTConfig, rank: int, alpha: float, plan_tokens: int, depth: int) -> GPT:
    """Our GPT turned into the [D7] module tree: LoRA everywhere, blocks sharing block
    0's base matrices, guidance modules, and the always-present sequence head."""
    model = GPT(cfg)
    blocks = model.transformer.h
    for blk in blocks:
        blk.attn = D7Attention(cfg, rank, alpha)
        blk.mlp = D7MLP(cfg, rank, alpha)
        blk.cross = CrossAttention(cfg)
        blk.ln_cross = LayerNorm(cfg.n_embd, cfg.bias)
    first = blocks[0]
    for blk in blocks[1:]:  # share_main_matrices
        blk.attn.c_attn = first.attn.c_attn
        blk.attn.c_proj = first.attn.c_proj
        blk.mlp.c_fc = first.mlp.c_fc
        blk.mlp.c_proj = first.mlp.c_proj
    model.sequence_head = ScaledSigmoidHead(cfg)
    model.plan_encoder = PlanEncoder(cfg, model.transformer.wte, plan_tokens, depth)
    return model


# ---- weights, optimizer ---------------------------------------------------------------


def randomize(model: nn.Module, gen: torch.Generator) -> None:
    """N(0, 0.2) matrices, LayerNorm weights 1 + N(0, 0.1), biases N(0, 0.05), judge
    A = 1 + N(0, 0.2), B and temperature N(0, 0.1). LoRA B is non-zero on purpose."""
    ln_weights = {id(m.weight) for m in model.modules() if isinstance(m, LayerNorm)}
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if id(p) in ln_weights:
                p.copy_(1.0 + 0.1 * noise)
            elif name.endswith(".bias"):
                p.copy_(0.05 * noise)
            elif name.endswith("sequence_head.A"):
                p.copy_(1.0 + 0.2 * noise)
            elif name.endswith(("sequence_head.B", "sequence_head.temperature")):
                p.copy_(0.1 * noise)
            else:
                p.copy_(0.2 * noise)


def adamw_step(model: nn.Module) -> dict:
    """nanoGPT's two AdamW groups (decay for matrices, none for vectors), one step.

    The loss touches only the 1-D parameters, so only they get AdamW state (small
    files); the step does move them, and the checkpoint holds the moved values.
    """
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    nodecay = [p for p in params if p.dim() < 2]
    opt = torch.optim.AdamW([{"params": decay, "weight_decay": 0.1},
                             {"params": nodecay, "weight_decay": 0.0}],
                            lr=1e-3, betas=(0.9, 0.95))
    loss = sum((p ** 2).sum() for p in nodecay)
    loss.backward()
    opt.step()
    opt.zero_grad(set_to_none=True)
    return opt.state_dict()


# ---- model_args and config (spec 2.1, 2.2) --------------------------------------------


@contextlib.contextmanager
def mode_pickled_by_value():
    """Pickle ModelMode members as Python <= 3.10 does: REDUCE(model.ModelMode, (value,)).

    Python >= 3.11 pickles them as getattr(model.ModelMode, NAME) instead; fork
    checkpoints exist in both forms, so the fixtures use both.
    """
    cls = forkmodel.ModelMode
    cls.__reduce_ex__ = lambda self, protocol: (self.__class__, (self._value_,))
    try:
        yield
    finally:
        del cls.__reduce_ex__


def sh_model_args(cfg: GPTConfig, *, with_attention_fields: bool = True, **training) -> dict:
    """[SH] train.py's model_args, field for field; 'mode' is a forkshim ModelMode."""
    args = OrderedDict(n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd,
                       block_size=cfg.block_size, bias=cfg.bias, vocab_size=cfg.vocab_size,
                       dropout=0.0)
    if with_attention_fields:
        args["attention_type"] = cfg.attention_type
        args["position_encoding"] = cfg.position_encoding
    args.update(mode=forkmodel.ModelMode(cfg.mode.value), num_token_classes=cfg.num_token_classes,
                cls_token_id=cfg.cls_token_id, freeze_transformer=False,
                init_from_checkpoint=None, unfreeze_at_iteration=None,
                unfreeze_lr_multiplier=0.1, add_critic_head=cfg.add_critic_head,
                critic_alpha=0.5, critic_target_scope="masked_and_ignore",
                start_critic_iteration=training.get("start_critic_iteration", 0),
                end_critic_iteration=training.get("end_critic_iteration", 0),
                add_sampler_head=cfg.add_sampler_head,
                start_sampler_iteration=training.get("start_sampler_iteration", 0),
                sampler_min_neighbors_ratio=cfg.sampler_min_neighbors_ratio,
                mask_token_id=cfg.mask_token_id, pad_token_id=cfg.pad_token_id)
    return dict(args)


def train_config(dataset: str, cfg: GPTConfig, meta: Optional[dict], **extra) -> dict:
    """A representative subset of train.py's globals, plus config['meta']."""
    c = {"out_dir": "out-" + dataset.replace("_", "-"), "eval_interval": 250, "log_interval": 10,
         "eval_iters": 20, "always_save_checkpoint": True, "init_from": "scratch",
         "dataset": dataset, "gradient_accumulation_steps": 1, "batch_size": 16,
         "block_size": cfg.block_size, "n_layer": cfg.n_layer, "n_head": cfg.n_head,
         "n_embd": cfg.n_embd, "dropout": 0.0, "bias": cfg.bias, "learning_rate": 1e-3,
         "max_iters": 5000, "weight_decay": 0.1, "beta1": 0.9, "beta2": 0.95, "grad_clip": 1.0,
         "decay_lr": True, "warmup_iters": 100, "lr_decay_iters": 5000, "min_lr": 1e-4,
         "backend": "nccl", "device": "cuda", "dtype": "bfloat16", "compile": False,
         "masking_ratios": [0.95, 0.5, 0.1]}
    c.update(extra)
    if meta is not None:
        c["meta"] = meta
    return c


# ---- inputs and expected outputs ------------------------------------------------------


def make_tokens(text: str, chars: List[str], mask_id: int, cls_id: Optional[int],
                pad_id: Optional[int], judge: bool) -> List[List[int]]:
    stoi = {c: i for i, c in enumerate(chars)}
    rows = [[stoi[c] for c in text[start:start + T]] for start in (0, 1000)]
    for r, cols in enumerate(MASKED):
        for c in cols:
            rows[r][c] = mask_id
    if judge:
        for r in rows:
            r[0] = cls_id
        rows[1][T - 1] = pad_id
    elif cls_id is not None:
        rows[0][0] = cls_id
        rows[1][10] = cls_id
        rows[1][T - 1] = pad_id
    return rows


def rounded(x):
    if isinstance(x, list):
        return [rounded(v) for v in x]
    return float(f"{x:.10g}")


def expected_outputs(model: GPT, tokens: List[List[int]]) -> dict:
    ref = copy.deepcopy(model).double().eval()
    cfg = ref.config
    idx = torch.tensor(tokens, dtype=torch.long)
    out = {}
    with torch.no_grad():
        h = ref.encode(idx)                                    # (B, T, C)
        if cfg.mode == ModelMode.SEQUENCE_SCORER:
            out["evaluation"] = rounded(ref.judge(h).tolist())
            return out
        out["logits"] = rounded(ref.lm_logits(h).tolist())
        if cfg.has_critic:
            out["critic_logits"] = rounded(ref.critic_logits(h).tolist())
        if cfg.has_sampler:
            n = B * T
            pos = list(range(n))
            none = torch.full((n,), -1, dtype=torch.long)
            logits = ref.sampler_logits(h.reshape(n, cfg.n_embd), none, none)
            out["sampler"] = {"pos": pos, "left": [-1] * n, "right": [-1] * n,
                              "logits": rounded(logits.tolist())}
    return out


# ---- the variants ---------------------------------------------------------------------


def save(path: str, ckpt: dict) -> None:
    """torch.save, then a self-check: the file loads back (with the forkshim
    ModelMode) to the same keys, model_args and state dict."""
    torch.save(ckpt, path)
    size = os.path.getsize(path)
    if size > MAX_FILE_BYTES:
        raise ValueError(f"{path}: {size} bytes, over the {MAX_FILE_BYTES} limit")
    back = torch.load(path)
    if list(back) != list(ckpt) or back["model_args"] != ckpt["model_args"]:
        raise AssertionError(f"{path}: the checkpoint dict differs after loading it back")
    if list(back["model"]) != list(ckpt["model"]) or not all(
            torch.equal(back["model"][k], v) for k, v in ckpt["model"].items()):
        raise AssertionError(f"{path}: the state dict differs after loading it back")


def write_json(path: str, obj: dict) -> None:
    with open(path, "w", encoding="utf-8") as f:
        f.write(json.dumps(obj, separators=(",", ":")) + "\n")


def sh_variant(name: str, seed: int, text: str, chars: List[str], *, mode: ModelMode,
               meta: dict, embed_meta: bool, iter_num: int, training: dict,
               compiled: bool = False, with_attention_fields: bool = True,
               causal_mask_buffers: bool = False, mode_by_value: bool = False,
               **cfg_fields) -> None:
    cfg = GPTConfig(**SIZES, vocab_size=meta["vocab_size"], mode=mode,
                    mask_token_id=meta["mask_token_id"], pad_token_id=meta["pad_token_id"],
                    **cfg_fields)
    gen = torch.Generator().manual_seed(seed)
    model = GPT(cfg)
    if causal_mask_buffers:
        # [SH] causal attention without SDPA (torch < 2.0) registers a persistent
        # causal mask `attn.bias` (1, 1, block_size, block_size) (spec 1.8).
        bs = cfg.block_size
        for blk in model.transformer.h:
            blk.attn.register_buffer("bias", torch.tril(torch.ones(bs, bs)).view(1, 1, bs, bs))
    randomize(model, gen)
    optimizer = adamw_step(model)
    sd = model.state_dict()
    if compiled:
        sd = OrderedDict(("_orig_mod." + k, v) for k, v in sd.items())
    ckpt = {"model": sd, "optimizer": optimizer,
            "model_args": sh_model_args(cfg, with_attention_fields=with_attention_fields, **training),
            "iter_num": iter_num, "best_val_loss": 1.5 + seed / 1000.0,
            "config": train_config(meta["dataset_name"], cfg, meta if embed_meta else None,
                                   attention_type=cfg.attention_type,
                                   position_encoding=cfg.position_encoding)}
    with mode_pickled_by_value() if mode_by_value else contextlib.nullcontext():
        save(os.path.join(OUT_DIR, name + ".pt"), ckpt)
    judge = mode == ModelMode.SEQUENCE_SCORER
    tokens = make_tokens(text, chars, meta["mask_token_id"],
                         cfg.cls_token_id if judge else None, meta["pad_token_id"], judge)
    golden = {"model": name + ".pt", "kind": mode.value, "tokens": tokens}
    golden.update(expected_outputs(model, tokens))
    write_json(os.path.join(OUT_DIR, name + ".expected.json"), golden)


def d7_variant(name: str, seed: int, text: str, chars: List[str]) -> List[float]:
    meta = char_diffusion_meta(chars, "d7")
    rank, alpha, plan_tokens, depth_factor = 4, 8.0, 4, 0.5
    cfg = GPTConfig(**SIZES, vocab_size=meta["vocab_size"], bias=True,
                    attention_type="bidirectional", position_encoding="rotary",
                    mode=ModelMode.LANGUAGE_MODEL, cls_token_id=meta["cls_token_id"],
                    add_critic_head=True, mask_token_id=meta["mask_token_id"],
                    pad_token_id=meta["pad_token_id"])
    gen = torch.Generator().manual_seed(seed)
    model = make_d7(cfg, rank, alpha, plan_tokens, max(1, round(cfg.n_layer * depth_factor)))
    randomize(model, gen)
    optimizer = adamw_step(model)
    model_args = dict(
        n_layer=cfg.n_layer, n_head=cfg.n_head, n_embd=cfg.n_embd, block_size=cfg.block_size,
        bias=cfg.bias, vocab_size=cfg.vocab_size, dropout=0.0,
        use_guidance=True, plan_tokens=plan_tokens, plan_encoder_depth_factor=depth_factor,
        cond_dropout_prob=0.1,
        use_lora_attn=True, use_lora_mlp=True, lora_rank=rank, lora_alpha=alpha,
        lora_dropout=0.0, share_main_matrices=True,
        cls_token_id=cfg.cls_token_id, freeze_transformer=False, init_from_checkpoint=None,
        unfreeze_at_iteration=None, unfreeze_lr_multiplier=0.1,
        add_critic_head=True, critic_alpha=0.5, critic_target_scope="masked_and_ignore",
        start_critic_iteration=1000, end_critic_iteration=2000,
        mask_token_id=cfg.mask_token_id, pad_token_id=cfg.pad_token_id)
    ckpt = {"model": model.state_dict(), "optimizer": optimizer, "model_args": model_args,
            "iter_num": 3000, "best_val_loss": torch.tensor(1.25),
            "config": train_config("char_diffusion", cfg, meta, model_mode="language_model",
                                   use_lora_attn=True, use_lora_mlp=True, lora_rank=rank)}
    save(os.path.join(OUT_DIR, name + ".pt"), ckpt)
    tokens = make_tokens(text, chars, meta["mask_token_id"], meta["cls_token_id"],
                         meta["pad_token_id"], judge=False)
    golden = {"model": name + ".pt", "kind": "language_model", "tokens": tokens}
    golden.update(expected_outputs(model, tokens))
    write_json(os.path.join(OUT_DIR, name + ".expected.json"), golden)
    return sorted(torch.rand(100, generator=gen, dtype=torch.float64).tolist())


def bpe_variant(name: str, seed: int) -> None:
    """A GPT-2-vocabulary checkpoint (nanoGPT's BPE 'shakespeare' dataset: no meta,
    vocab_size 50304), with n_embd 1 to stay small. remask must refuse it."""
    cfg = GPTConfig(n_layer=1, n_head=1, n_embd=1, block_size=32, vocab_size=50304, bias=False,
                    attention_type="causal", position_encoding="absolute")
    gen = torch.Generator().manual_seed(seed)
    model = GPT(cfg)
    randomize(model, gen)
    optimizer = adamw_step(model)
    ckpt = {"model": model.state_dict(), "optimizer": optimizer,
            "model_args": sh_model_args(cfg), "iter_num": 100, "best_val_loss": 4.5,
            "config": train_config("shakespeare", cfg, None)}
    save(os.path.join(OUT_DIR, name + ".pt"), ckpt)


def main() -> int:
    torch.manual_seed(0)  # nothing should draw from the global RNG; fixed anyway
    with open(TEXT_PATH, encoding="utf-8") as f:
        text = f.read()
    chars = base_characters(text)
    os.makedirs(OUT_DIR, exist_ok=True)
    sh_meta = char_diffusion_meta(chars, "sh")
    LM = ModelMode.LANGUAGE_MODEL

    sh_variant("sh_lm", 2001, text, chars, mode=LM, meta=sh_meta, embed_meta=True,
               iter_num=250, training=dict(start_sampler_iteration=1000,
                                           start_critic_iteration=0, end_critic_iteration=200),
               mode_by_value=True,
               bias=True, attention_type="bidirectional", position_encoding="rotary",
               add_critic_head=True, add_sampler_head=True)
    sh_variant("sh_lm_abs_causal", 2002, text, chars, mode=LM, meta=sh_meta, embed_meta=False,
               iter_num=150, training=dict(start_critic_iteration=100, end_critic_iteration=300),
               with_attention_fields=False, causal_mask_buffers=True,
               bias=False, attention_type="causal", position_encoding="absolute",
               add_critic_head=True)
    with open(os.path.join(OUT_DIR, "meta.pkl"), "wb") as f:
        pickle.dump(sh_meta, f)
    sh_variant("sh_lm_compiled", 2003, text, chars, mode=LM, meta=sh_meta, embed_meta=True,
               iter_num=5000, training=dict(start_sampler_iteration=1000), compiled=True,
               bias=False, attention_type="bidirectional", position_encoding="rotary",
               add_sampler_head=True)
    sh_variant("sh_judge", 2004, text, chars, mode=ModelMode.SEQUENCE_SCORER,
               meta=judge_meta(chars), embed_meta=True, iter_num=2000, training={},
               mode_by_value=True,
               bias=True, attention_type="bidirectional", position_encoding="rotary",
               cls_token_id=66)
    sh_variant("sh_classifier", 2005, text, chars, mode=ModelMode.TOKEN_CLASSIFIER,
               meta=sh_meta, embed_meta=True, iter_num=800, training={},
               bias=False, attention_type="bidirectional", position_encoding="rotary",
               num_token_classes=2)
    table = d7_variant("d7_lora", 2006, text, chars)
    other = [min(1.0, v * 1.1) for v in table]
    write_json(os.path.join(OUT_DIR, "calibration.json"),
               {OTHER_CALIBRATION_KEY: other, CALIBRATION_KEY: table})
    bpe_variant("bpe", 2007)

    total = 0
    for fname in sorted(os.listdir(OUT_DIR)):
        size = os.path.getsize(os.path.join(OUT_DIR, fname))
        total += size
        print(f"testdata/fork/{fname}: {size} bytes")
    print(f"total: {total} bytes")
    if total > MAX_TOTAL_BYTES:
        raise ValueError(f"testdata/fork: {total} bytes, over the {MAX_TOTAL_BYTES} limit")
    return 0


if __name__ == "__main__":
    sys.exit(main())
