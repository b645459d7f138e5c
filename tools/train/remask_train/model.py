"""Our own PyTorch implementation of the diffusion-first nanoGPT fork's [SH] model.

This is the architecture of sampler-spec.md section 1 (the [SH] branch), written
from the specification, with the fork's exact state_dict names so that weights
move between the fork, this module and remask/1 files without renaming:

    transformer.wte, transformer.wpe (absolute positions only),
    transformer.h.{i}.{ln_1, attn.c_attn, attn.c_proj, ln_2, mlp.c_fc, mlp.c_proj},
    transformer.ln_f, lm_head (tied to wte for language models),
    critic_head, sampler_head.{mlp, output_head},
    sequence_head.{base_predictor, A, B, temperature}, cls_embedding.

What it is: the trunk (embeddings, pre-LN blocks, ln_f) and every head, as
separate methods (encode, lm_logits, critic_logits, sampler_logits, judge), so
that the golden-fixture generator and a later trainer can call exactly the
part they need. What it is not: a trainer. There is no loss, no optimiser and
none of the fork's hidden training-time side computations (spec Q6).

Differences from the fork, on purpose:
  * sampler_logits feeds REAL neighbour embeddings (wte rows) where the caller
    passes an id, and zeros where it passes -1; the fork always fed zeros by
    accident (spec 4.5.2, Q2). Passing -1 everywhere reproduces the fork.
  * cls_embedding exists in every mode when cls_token_id is set (the [D7]
    rule, and what remask/1 files describe), not only for judges.
  * attention_type and position_encoding are checked: unknown strings are an
    error instead of silently meaning "causal" / "no positions".
  * RoPE tables are computed in the activation dtype from float64 angles, per
    forward, and are not module state (the fork's buffers were non-persistent
    anyway, so checkpoints are unaffected).

Shapes use B = batch, T = sequence length, C = n_embd, H = n_head,
d = C / H (head size), V = vocab_size, K = num_token_classes.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass
from typing import Optional, Tuple

import torch
import torch.nn as nn
import torch.nn.functional as F

ROPE_BASE = 10000.0
LAYER_NORM_EPS = 1e-5

ATTENTION_TYPES = ("bidirectional", "causal")
POSITION_ENCODINGS = ("rotary", "absolute", "none")


class ModelMode(enum.Enum):
    """What the model computes; the values are the fork's pickled enum values."""

    LANGUAGE_MODEL = "language_model"
    TOKEN_CLASSIFIER = "token_classifier"
    SEQUENCE_SCORER = "sequence_scorer"


@dataclass
class GPTConfig:
    """The fork's [SH] model_args, field for field (spec 1.1, 2.2).

    Training-only fields (dropout, critic_*, start_*_iteration, pad_token_id)
    are kept so that a fork checkpoint's model_args can be passed straight in
    and a later trainer can read them; inference ignores them.
    """

    n_layer: int = 12
    n_head: int = 12
    n_embd: int = 768
    block_size: int = 1024
    bias: bool = True
    vocab_size: int = 50304
    dropout: float = 0.0
    attention_type: str = "causal"
    position_encoding: str = "absolute"
    mode: ModelMode = ModelMode.LANGUAGE_MODEL
    num_token_classes: int = 2
    cls_token_id: Optional[int] = None
    add_critic_head: bool = False
    add_sampler_head: bool = False
    sampler_min_neighbors_ratio: float = 0.01
    mask_token_id: Optional[int] = None
    pad_token_id: Optional[int] = None
    critic_alpha: float = 0.5
    critic_target_scope: str = "masked_and_ignore"
    start_critic_iteration: int = 0
    end_critic_iteration: int = 0
    start_sampler_iteration: int = 0

    def __post_init__(self) -> None:
        if isinstance(self.mode, str):
            self.mode = ModelMode(self.mode)
        if self.n_embd % self.n_head != 0:
            raise ValueError(
                f"n_embd {self.n_embd} is not a multiple of n_head {self.n_head}")
        if (self.n_embd // self.n_head) % 2 != 0 and self.position_encoding == "rotary":
            raise ValueError(
                f"rotary positions need an even head size, got {self.n_embd // self.n_head}")
        if self.attention_type not in ATTENTION_TYPES:
            raise ValueError(
                f"attention_type {self.attention_type!r}, want one of {ATTENTION_TYPES}")
        if self.position_encoding not in POSITION_ENCODINGS:
            raise ValueError(
                f"position_encoding {self.position_encoding!r}, want one of {POSITION_ENCODINGS}")
        # The fork forces bidirectional attention for the non-LM modes (spec 1.1).
        if self.mode != ModelMode.LANGUAGE_MODEL:
            self.attention_type = "bidirectional"
        if self.add_sampler_head and self.mode == ModelMode.LANGUAGE_MODEL:
            if self.attention_type != "bidirectional":
                raise ValueError("the sampler head needs bidirectional attention")
            if self.mask_token_id is None:
                raise ValueError("the sampler head needs mask_token_id")
        if self.cls_token_id is not None and not 0 <= self.cls_token_id < self.vocab_size:
            raise ValueError(
                f"cls_token_id {self.cls_token_id} outside the vocabulary of {self.vocab_size}")

    @property
    def head_size(self) -> int:
        return self.n_embd // self.n_head

    @property
    def has_critic(self) -> bool:
        return self.mode == ModelMode.LANGUAGE_MODEL and self.add_critic_head

    @property
    def has_sampler(self) -> bool:
        return self.mode == ModelMode.LANGUAGE_MODEL and self.add_sampler_head


class LayerNorm(nn.Module):
    """LayerNorm with eps 1e-5 and an optional bias (PyTorch's has no bias switch)."""

    def __init__(self, ndim: int, bias: bool):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(ndim))
        self.bias = nn.Parameter(torch.zeros(ndim)) if bias else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return F.layer_norm(x, self.weight.shape, self.weight, self.bias, LAYER_NORM_EPS)


def rope_tables(T: int, head_size: int, device=None, dtype=torch.float32,
                base: float = ROPE_BASE) -> Tuple[torch.Tensor, torch.Tensor]:
    """cos and sin tables for positions 0..T-1, each (T, d).

    inv_freq[i] = 1 / base^(2i/d) for i < d/2, angle(p, i) = p * inv_freq[i];
    the half-width tables are concatenated with themselves, so feature j uses
    frequency j mod d/2 (spec 1.4). Angles are formed in float64 and the
    tables rounded once to dtype.
    """
    half = head_size // 2
    inv_freq = 1.0 / (base ** (torch.arange(half, dtype=torch.float64) * 2.0 / head_size))
    pos = torch.arange(T, dtype=torch.float64)
    angles = torch.outer(pos, inv_freq)           # (T, d/2)
    angles = torch.cat([angles, angles], dim=-1)  # (T, d)
    return angles.cos().to(device=device, dtype=dtype), angles.sin().to(device=device, dtype=dtype)


def rotate_half(x: torch.Tensor) -> torch.Tensor:
    """(x1, x2) -> (-x2, x1) over the last dimension split in two halves."""
    half = x.shape[-1] // 2
    return torch.cat([-x[..., half:], x[..., :half]], dim=-1)


def apply_rotary(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor) -> torch.Tensor:
    """Rotate-half RoPE: x' = x*cos + rotate_half(x)*sin.

    x is (..., T, d), cos and sin (T, d). For j < d/2 this is
    x'[j] = x[j] c - x[j+d/2] s and x'[j+d/2] = x[j+d/2] c + x[j] s.
    """
    return x * cos + rotate_half(x) * sin


class SelfAttention(nn.Module):
    """Multi-head self-attention, written out (no fused SDPA: torch 1.13 has none)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        C = config.n_embd
        self.n_head = config.n_head
        self.causal = config.attention_type == "causal"
        self.c_attn = nn.Linear(C, 3 * C, bias=config.bias)
        self.c_proj = nn.Linear(C, C, bias=config.bias)
        self.attn_dropout = nn.Dropout(config.dropout)
        self.resid_dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor,
                rope: Optional[Tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        B, T, C = x.shape
        H, d = self.n_head, C // self.n_head
        q, k, v = self.c_attn(x).split(C, dim=2)              # each (B, T, C)
        q = q.view(B, T, H, d).transpose(1, 2)                # (B, H, T, d)
        k = k.view(B, T, H, d).transpose(1, 2)
        v = v.view(B, T, H, d).transpose(1, 2)
        if rope is not None:
            cos, sin = rope
            q = apply_rotary(q, cos, sin)
            k = apply_rotary(k, cos, sin)
        att = (q @ k.transpose(-2, -1)) * (1.0 / math.sqrt(d))  # (B, H, T, T)
        if self.causal:
            # key j is visible to query i iff j <= i
            future = torch.ones(T, T, dtype=torch.bool, device=x.device).triu(1)
            att = att.masked_fill(future, float("-inf"))
        att = F.softmax(att, dim=-1)
        att = self.attn_dropout(att)
        y = att @ v                                           # (B, H, T, d)
        y = y.transpose(1, 2).contiguous().view(B, T, C)      # heads concatenated in order
        return self.resid_dropout(self.c_proj(y))


class MLP(nn.Module):
    """Linear(C, 4C) -> exact (erf) GELU -> Linear(4C, C)."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        C = config.n_embd
        self.c_fc = nn.Linear(C, 4 * C, bias=config.bias)
        self.gelu = nn.GELU()
        self.c_proj = nn.Linear(4 * C, C, bias=config.bias)
        self.dropout = nn.Dropout(config.dropout)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.dropout(self.c_proj(self.gelu(self.c_fc(x))))


class Block(nn.Module):
    """Pre-LN transformer block: x += attn(ln_1(x)); x += mlp(ln_2(x))."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.ln_1 = LayerNorm(config.n_embd, config.bias)
        self.attn = SelfAttention(config)
        self.ln_2 = LayerNorm(config.n_embd, config.bias)
        self.mlp = MLP(config)

    def forward(self, x: torch.Tensor,
                rope: Optional[Tuple[torch.Tensor, torch.Tensor]]) -> torch.Tensor:
        x = x + self.attn(self.ln_1(x), rope)
        x = x + self.mlp(self.ln_2(x))
        return x


class SamplerHead(nn.Module):
    """MLP over [left_emb, h_p, right_emb] (3C) then an untied Linear(C, V) output."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        C = config.n_embd
        self.mlp = nn.Sequential(
            nn.Linear(3 * C, C, bias=config.bias),   # mlp.0
            nn.SiLU(),                               # mlp.1
            LayerNorm(C, config.bias),               # mlp.2
            nn.Linear(C, C, bias=config.bias),       # mlp.3
            nn.SiLU(),                               # mlp.4
            LayerNorm(C, config.bias),               # mlp.5
        )
        self.output_head = nn.Linear(C, config.vocab_size, bias=False)

    def forward(self, features: torch.Tensor) -> torch.Tensor:
        """features (N, 3C) -> logits (N, V)."""
        return self.output_head(self.mlp(features))


class ScaledSigmoidHead(nn.Module):
    """The judge head: sigmoid(A * (w . h0) + B); temperature is the fork's dead parameter."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.base_predictor = nn.Linear(config.n_embd, 1, bias=False)
        self.A = nn.Parameter(torch.ones(1))
        self.B = nn.Parameter(torch.zeros(1))
        self.temperature = nn.Parameter(torch.zeros(1))  # unused in forward (spec Q29)

    def forward(self, h0: torch.Tensor) -> torch.Tensor:
        """h0 (B, C), the hidden state at position 0 -> (B,) in (0, 1)."""
        return torch.sigmoid(self.A * self.base_predictor(h0).squeeze(-1) + self.B)


class GPT(nn.Module):
    """The [SH] model: trunk plus the heads that config.mode and the add_* flags ask for."""

    def __init__(self, config: GPTConfig):
        super().__init__()
        self.config = config
        C = config.n_embd
        modules = dict(
            wte=nn.Embedding(config.vocab_size, C),
            drop=nn.Dropout(config.dropout),
            h=nn.ModuleList([Block(config) for _ in range(config.n_layer)]),
            ln_f=LayerNorm(C, config.bias),
        )
        if config.position_encoding == "absolute":
            modules["wpe"] = nn.Embedding(config.block_size, C)
        self.transformer = nn.ModuleDict(modules)

        if config.cls_token_id is not None:
            self.cls_embedding = nn.Parameter(torch.zeros(C))

        if config.mode == ModelMode.LANGUAGE_MODEL:
            self.lm_head = nn.Linear(C, config.vocab_size, bias=False)
            self.lm_head.weight = self.transformer.wte.weight  # tied: one Parameter
            if config.add_critic_head:
                self.critic_head = nn.Linear(C, 1, bias=False)
            if config.add_sampler_head:
                self.sampler_head = SamplerHead(config)
        elif config.mode == ModelMode.TOKEN_CLASSIFIER:
            self.lm_head = nn.Linear(C, config.num_token_classes, bias=False)  # untied
        elif config.mode == ModelMode.SEQUENCE_SCORER:
            self.sequence_head = ScaledSigmoidHead(config)

        self.reset_parameters()

    def reset_parameters(self, std: float = 0.02) -> None:
        """GPT-2 style init: N(0, std) weights, zero biases, unit LayerNorm weights,
        residual projections scaled by 1/sqrt(2 * n_layer); judge A=1, B=0."""
        for name, p in self.named_parameters():
            if name.endswith(".bias"):
                nn.init.zeros_(p)
            elif p.dim() >= 2:
                s = std
                if name.endswith("c_proj.weight"):
                    s = std / math.sqrt(2 * self.config.n_layer)
                nn.init.normal_(p, mean=0.0, std=s)
        for m in self.modules():
            if isinstance(m, LayerNorm):
                nn.init.ones_(m.weight)
        if hasattr(self, "cls_embedding"):
            nn.init.normal_(self.cls_embedding, mean=0.0, std=std)
        if hasattr(self, "sequence_head"):
            nn.init.ones_(self.sequence_head.A)
            nn.init.zeros_(self.sequence_head.B)
            nn.init.zeros_(self.sequence_head.temperature)

    # ---- trunk ---------------------------------------------------------------

    def embed(self, idx: torch.Tensor) -> torch.Tensor:
        """Token (+ absolute position) embeddings with the CLS swap, (B, T) -> (B, T, C)."""
        cfg = self.config
        B, T = idx.shape
        if T > cfg.block_size:
            raise ValueError(f"sequence length {T} exceeds block_size {cfg.block_size}")
        x = self.transformer.wte(idx)                              # (B, T, C)
        if cfg.cls_token_id is not None:
            is_cls = (idx == cfg.cls_token_id).unsqueeze(-1)       # (B, T, 1)
            x = torch.where(is_cls, self.cls_embedding.to(x.dtype), x)
        if cfg.position_encoding == "absolute":
            pos = torch.arange(T, device=idx.device)
            x = x + self.transformer.wpe(pos)                      # (T, C) broadcast
        return x

    def encode(self, idx: torch.Tensor) -> torch.Tensor:
        """The trunk: h = ln_f(blocks(embed(idx))), (B, T) -> (B, T, C).

        No attention mask is taken: inference never passes one (spec 1.3).
        """
        cfg = self.config
        x = self.transformer.drop(self.embed(idx))
        rope = None
        if cfg.position_encoding == "rotary":
            rope = rope_tables(idx.shape[1], cfg.head_size, device=x.device, dtype=x.dtype)
        for block in self.transformer.h:
            x = block(x, rope)
        return self.transformer.ln_f(x)

    # ---- heads ---------------------------------------------------------------

    def lm_logits(self, h: torch.Tensor) -> torch.Tensor:
        """lm_head over every position: (B, T, V) for a language model, (B, T, K) for a classifier."""
        if not hasattr(self, "lm_head"):
            raise ValueError(f"a {self.config.mode.value} model has no lm_head")
        return self.lm_head(h)

    def critic_logits(self, h: torch.Tensor) -> torch.Tensor:
        """Critic logit per position (larger = more likely wrong), (B, T, C) -> (B, T)."""
        if not hasattr(self, "critic_head"):
            raise ValueError("this model has no critic head")
        return self.critic_head(h).squeeze(-1)

    def neighbor_embeddings(self, ids: torch.Tensor) -> torch.Tensor:
        """wte[id] for each id, a zero vector where id == -1, (N,) -> (N, C)."""
        wte = self.transformer.wte.weight
        present = ids >= 0
        rows = wte[ids.clamp(min=0)]
        return rows * present.unsqueeze(-1).to(rows.dtype)

    def sampler_logits(self, h_at_pos: torch.Tensor, left_ids: torch.Tensor,
                       right_ids: torch.Tensor) -> torch.Tensor:
        """Sampler head at N positions.

        h_at_pos (N, C) are trunk outputs; left_ids and right_ids (N,) are the
        neighbour token ids whose wte rows fill the left and right thirds of the
        input, or -1 for a zero vector. Returns (N, V).
        """
        if not hasattr(self, "sampler_head"):
            raise ValueError("this model has no sampler head")
        if left_ids.shape != right_ids.shape or left_ids.shape[0] != h_at_pos.shape[0]:
            raise ValueError(
                f"sampler inputs disagree: h {tuple(h_at_pos.shape)}, "
                f"left {tuple(left_ids.shape)}, right {tuple(right_ids.shape)}")
        features = torch.cat([self.neighbor_embeddings(left_ids).to(h_at_pos.dtype),
                              h_at_pos,
                              self.neighbor_embeddings(right_ids).to(h_at_pos.dtype)], dim=-1)
        return self.sampler_head(features)

    def judge(self, h: torch.Tensor) -> torch.Tensor:
        """Judge evaluation from position 0: sigmoid(A*(w.h[:,0])+B), (B, T, C) -> (B,)."""
        if not hasattr(self, "sequence_head"):
            raise ValueError(f"a {self.config.mode.value} model has no sequence head")
        return self.sequence_head(h[:, 0, :])

    def forward(self, idx: torch.Tensor) -> torch.Tensor:
        """The mode's main output for every position: LM/classifier logits, or judge scores (B,)."""
        h = self.encode(idx)
        if self.config.mode == ModelMode.SEQUENCE_SCORER:
            return self.judge(h)
        return self.lm_logits(h)
