"""Shakespeare data for the trainer: vocabulary, meta dict, splits, windows, masking.

What it is: the char_diffusion data of sampler-spec.md 6.1, reduced to what the
trainer needs. The vocabulary is the fork's (65 characters sorted by code point,
[MASK] = 65, [PAD] = 66); the text is split 90/10 by character index; every
training window starts at the start of a non-blank line and holds block_size
characters, so no window needs [PAD]. Corruption is pure [MASK] at a per-sample
ratio (no 80/10/10 rule), see mask_batch.

What it is not: the fork's streaming data pipeline. Windows are drawn on the fly
from a numpy Generator, so a seed fixes the whole sequence of batches.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Dict, List, Optional, Tuple

import numpy as np
import torch

IGNORE_INDEX = -100
MASK_TOKEN = "[MASK]"
PAD_TOKEN = "[PAD]"
CLS_TOKEN = "[CLS]"
TRAIN_FRACTION = 0.9


@dataclass
class Vocab:
    """The char_diffusion vocabulary: ordinary characters, then [MASK], [PAD]."""

    chars: List[str]

    @property
    def base_size(self) -> int:
        return len(self.chars)

    @property
    def mask_id(self) -> int:
        return len(self.chars)

    @property
    def pad_id(self) -> int:
        return len(self.chars) + 1

    @property
    def size(self) -> int:
        return len(self.chars) + 2

    @property
    def cls_id(self) -> int:
        """[CLS] of the judge: the first id after the LM vocabulary."""
        return len(self.chars) + 2

    def encode(self, text: str) -> np.ndarray:
        stoi = {c: i for i, c in enumerate(self.chars)}
        return np.array([stoi[c] for c in text], dtype=np.uint8)

    def decode(self, ids) -> str:
        out = []
        for i in ids:
            i = int(i)
            if i < self.base_size:
                out.append(self.chars[i])
            elif i == self.mask_id:
                out.append(MASK_TOKEN)
            elif i == self.pad_id:
                out.append(PAD_TOKEN)
            else:
                out.append(CLS_TOKEN)
        return "".join(out)


def build_vocab(text: str) -> Vocab:
    """The distinct characters of text, sorted by code point (spec 2.5)."""
    return Vocab(sorted(set(text)))


def lm_meta(vocab: Vocab, block_size: int, batch_size: int) -> dict:
    """The char_diffusion meta.pkl dict of spec 2.5 ([SH]: no [CLS], no base_vocab_size)."""
    stoi: Dict[str, int] = {c: i for i, c in enumerate(vocab.chars)}
    stoi[MASK_TOKEN] = vocab.mask_id
    stoi[PAD_TOKEN] = vocab.pad_id
    itos: Dict[int, str] = {i: c for c, i in stoi.items()}
    return {
        "dataset_name": "char_diffusion",
        "training_type": "MLM",
        "vocab_size": vocab.size,
        "mask_token_id": vocab.mask_id,
        "pad_token_id": vocab.pad_id,
        "mask_probability": 0.15,
        "ignore_index": IGNORE_INDEX,
        "stoi": stoi,
        "itos": itos,
        "batch_schema": [
            {"name": "x", "dtype": "int64", "shape": [block_size], "role": "input"},
            {"name": "y", "dtype": "int64", "shape": [block_size], "role": "target"},
            {"name": "attention_mask", "dtype": "int64", "shape": [block_size],
             "role": "attention_mask"},
        ],
        "batch_size": batch_size,
        "block_size": block_size,
        "target_size": block_size,
    }


def judge_meta(vocab: Vocab, block_size: int, batch_size: int) -> dict:
    """The judge's meta: the LM vocabulary plus [CLS] (spec 2.5, sequence_scorer)."""
    meta = lm_meta(vocab, block_size, batch_size)
    meta["stoi"][CLS_TOKEN] = vocab.cls_id
    meta["itos"][vocab.cls_id] = CLS_TOKEN
    meta.update({
        "dataset_name": "sequence_scorer",
        "training_type": "SEQUENCE_SCORING",
        "vocab_size": vocab.size + 1,
        "cls_token_id": vocab.cls_id,
        "batch_schema": [
            {"name": "x", "dtype": "int64", "shape": [block_size], "role": "input"},
            {"name": "y", "dtype": "float32", "shape": [], "role": "target"},
        ],
        "target_size": 1,
    })
    return meta


class Split:
    """One split of the text as ids, plus the line starts where a window of a given
    length fits. The ids live on `device` so that windows are gathered there."""

    def __init__(self, ids: np.ndarray, window: int, newline_id: int, device: torch.device):
        if len(ids) < window:
            raise ValueError(f"split of {len(ids)} characters is shorter than a window of {window}")
        self.ids = torch.from_numpy(ids.astype(np.int64)).to(device)  # (N,)
        self.window = window
        self.starts = line_starts(ids, window, newline_id)         # (S,) int64
        if len(self.starts) == 0:
            raise ValueError(f"no line start leaves room for a window of {window}")
        self._offsets = torch.arange(window, device=device)       # (L,)

    def gather(self, starts: np.ndarray) -> torch.Tensor:
        """Windows at the given start offsets, (B,) -> (B, L) int64 on the split's device."""
        s = torch.from_numpy(np.asarray(starts, dtype=np.int64)).to(self.ids.device)
        return self.ids[s.unsqueeze(1) + self._offsets]

    def sample(self, rng: np.random.Generator, batch: int) -> torch.Tensor:
        """batch windows starting at uniformly drawn line starts, (B, L)."""
        return self.gather(self.starts[rng.integers(0, len(self.starts), size=batch)])


def line_starts(ids: np.ndarray, window: int, newline_id: int) -> np.ndarray:
    """Offsets i that start a non-blank line (i == 0 or ids[i-1] is a newline, and
    ids[i] is not) and leave room for `window` ids."""
    nl = ids == newline_id
    starts = np.flatnonzero(np.concatenate([[True], nl[:-1]]) & ~nl)
    return starts[starts + window <= len(ids)].astype(np.int64)


@dataclass
class Corpus:
    vocab: Vocab
    train_ids: np.ndarray  # (N_train,) uint8
    val_ids: np.ndarray    # (N_val,) uint8
    newline_id: int


def load_corpus(path: str) -> Corpus:
    """The text at path as ids, split 90/10 by character index (spec 6.1)."""
    with open(path, encoding="utf-8") as f:
        text = f.read()
    vocab = build_vocab(text)
    if "\n" not in vocab.chars:
        raise ValueError(f"{path}: no newline, cannot find line starts")
    ids = vocab.encode(text)
    n_train = int(len(ids) * TRAIN_FRACTION)
    return Corpus(vocab, ids[:n_train], ids[n_train:], vocab.chars.index("\n"))


# ---- masking -------------------------------------------------------------------------


def mask_batch(x: torch.Tensor, ratio: torch.Tensor, mask_id: int,
               generator: Optional[torch.Generator] = None,
               at_least_one: bool = True) -> Tuple[torch.Tensor, torch.Tensor]:
    """Pure-[MASK] corruption at per-sample ratios.

    x (B, T) ids, ratio (B,) in [0, 1]. Each position is masked independently
    with probability ratio[b]; with at_least_one, a row that drew no mask gets
    one at a uniform position. Returns (input (B, T) with [MASK], mask (B, T) bool).
    """
    B, T = x.shape
    u = torch.rand(B, T, device=x.device, generator=generator)
    mask = u < ratio.unsqueeze(1)
    if at_least_one:
        forced = torch.randint(0, T, (B,), device=x.device, generator=generator)
        none = ~mask.any(dim=1)                                    # (B,)
        mask[torch.arange(B, device=x.device), forced] |= none
    return torch.where(mask, torch.full_like(x, mask_id), x), mask


def ratio_uniform01(B: int, device, generator: Optional[torch.Generator] = None) -> torch.Tensor:
    """r ~ U(0, 1] per sample, (B,)."""
    return 1.0 - torch.rand(B, device=device, generator=generator)
