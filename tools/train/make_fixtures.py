#!/usr/bin/env python3
"""Write the golden fixtures in testdata/golden/: tiny random models and their outputs.

Run from the repository root (./build.sh goldens does exactly this):

    /usr/bin/python3 tools/train/make_fixtures.py

For every variant NAME it writes NAME.safetensors (a remask/1 model file with
random weights) and NAME.json (input token ids and the outputs of our PyTorch
model, computed in float64 from exactly the weights stored in the file). The Go
backends are tested against these files. The output is deterministic: running
this twice gives byte-identical files (fixed seeds, fixed `created` date).
The files are never edited by hand; change this script and regenerate.
"""

from __future__ import annotations

import argparse
import copy
import json
import os
import sys
from typing import List, Optional

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from remask_train.model import GPT, GPTConfig, LayerNorm, ModelMode  # noqa: E402
from remask_train import rmfile  # noqa: E402

HERE = os.path.dirname(os.path.abspath(__file__))
TEXT_PATH = os.path.join(HERE, "data", "tinyshakespeare.txt")
DEFAULT_OUT = os.path.join(HERE, "..", "..", "testdata", "golden")

CREATED = "2025-01-01T00:00:00Z"  # fixed, so that regenerating is byte-identical
SIZES = dict(n_layer=2, n_head=4, n_embd=32, block_size=32)
B, T = 2, 24
MAX_JSON_BYTES = 300 * 1024

LM = ModelMode.LANGUAGE_MODEL
JUDGE = ModelMode.SEQUENCE_SCORER
CLASSIFIER = ModelMode.TOKEN_CLASSIFIER

# Each variant exercises a different path of the backends.
VARIANTS = [
    dict(name="lm_rope_bidir_bias", mode=LM, position_encoding="rotary",
         attention_type="bidirectional", bias=True, critic=True, sampler=True,
         neighbors="embeddings", dtype="F32"),
    dict(name="lm_abs_causal_nobias", mode=LM, position_encoding="absolute",
         attention_type="causal", bias=False, critic=True, sampler=False, dtype="F32"),
    dict(name="lm_nopos_f16", mode=LM, position_encoding="none",
         attention_type="bidirectional", bias=True, critic=False, sampler=False, dtype="F16"),
    dict(name="lm_d7_bf16", mode=LM, position_encoding="rotary",
         attention_type="bidirectional", bias=False, critic=True, sampler=True,
         neighbors="zeros", dtype="BF16", cls="own", calibration=True),
    dict(name="judge_cls", mode=JUDGE, position_encoding="rotary",
         attention_type="bidirectional", bias=True, dtype="F32", cls="pad"),
    dict(name="classifier", mode=CLASSIFIER, position_encoding="rotary",
         attention_type="bidirectional", bias=False, dtype="F32", num_token_classes=2),
]


# ---- vocabulary and inputs -----------------------------------------------------------


def base_characters(text: str) -> List[str]:
    """The fork's char vocabulary: the distinct characters sorted by code point."""
    chars = sorted(set(text))
    if len(chars) != 65:
        raise ValueError(f"{TEXT_PATH}: {len(chars)} distinct characters, want 65 (Shakespeare)")
    return chars


def make_vocab(chars: List[str], cls: Optional[str]):
    """The vocab object and the model's cls_token_id.

    ids 0..64 characters, [MASK]=65, [PAD]=66; cls "own" adds [CLS]=67 ([D7]);
    cls "pad" makes the model's CLS the PAD id 66 (the [SH] judges' alias, spec
    Q9): the vocab then has no CLS of its own (its special ids are distinct)
    and the model swaps cls_embedding in wherever id 66 appears.
    """
    base = len(chars)
    tokens = chars + ["[MASK]", "[PAD]"]
    vocab_cls, model_cls = None, None
    if cls == "own":
        tokens.append("[CLS]")
        vocab_cls = model_cls = base + 2
    elif cls == "pad":
        model_cls = base + 1
    vocab = {"type": "char", "tokens": tokens, "mask_token_id": base, "pad_token_id": base + 1,
             "cls_token_id": vocab_cls, "base_vocab_size": base}
    return vocab, model_cls


# Masked columns per row: runs, a masked first column and a masked last column,
# so that sampler neighbours hit the boundaries and other masks.
MASKED = [[2, 3, 4, 9, 15, 23], [0, 5, 6, 7, 12, 20, 21]]


def make_tokens(text: str, chars: List[str], vocab: dict, cls: Optional[int],
                variant: dict) -> List[List[int]]:
    """B x T ids: two Shakespeare snippets with [MASK] at MASKED, plus the CLS column
    or stray CLS ids the variant needs."""
    stoi = {c: i for i, c in enumerate(chars)}
    rows = [[stoi[c] for c in text[start:start + T]] for start in (0, 1000)]
    mask = vocab["mask_token_id"]
    for r, cols in enumerate(MASKED):
        for c in cols:
            rows[r][c] = mask
    if variant["mode"] == JUDGE:
        for r in rows:
            r[0] = cls            # judges read position 0, which holds CLS
    elif cls is not None:
        rows[0][0] = cls          # exercise the CLS swap at the start ...
        rows[1][10] = cls         # ... and in the middle of a row
        rows[1][T - 1] = vocab["pad_token_id"]
    return rows


def sampler_neighbors(tokens: List[List[int]], mask_id: int, neighbors: str):
    """For every flat position b*T+t: the left and right neighbour ids, -1 for none.

    "embeddings": the input id at t-1 / t+1 when it exists and is not the mask id;
    "zeros": always -1 (the fork's behaviour, spec Q2).
    """
    pos, left, right = [], [], []
    for b, row in enumerate(tokens):
        for t in range(len(row)):
            pos.append(b * len(row) + t)
            if neighbors == "zeros":
                left.append(-1)
                right.append(-1)
                continue
            left.append(row[t - 1] if t > 0 and row[t - 1] != mask_id else -1)
            right.append(row[t + 1] if t + 1 < len(row) and row[t + 1] != mask_id else -1)
    return pos, left, right


# ---- weights -------------------------------------------------------------------------


def randomize(model: GPT, gen: torch.Generator) -> None:
    """Non-degenerate random weights: N(0, 0.2) matrices and embeddings, LayerNorm
    weights 1 + N(0, 0.1), biases N(0, 0.05), judge A = 1 + N(0, 0.2), B N(0, 0.1)."""
    ln_weights = {id(m.weight) for m in model.modules() if isinstance(m, LayerNorm)}
    with torch.no_grad():
        for name, p in model.named_parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float32)
            if id(p) in ln_weights:
                p.copy_(1.0 + 0.1 * noise)
            elif name.endswith(".bias"):
                p.copy_(0.05 * noise)
            elif name == "sequence_head.A":
                p.copy_(1.0 + 0.2 * noise)
            elif name in ("sequence_head.B", "sequence_head.temperature"):
                p.copy_(0.1 * noise)
            else:
                p.copy_(0.2 * noise)


def round_to(model: GPT, dtype: str) -> None:
    """Round every parameter to the storage dtype (kept in float32), so that the
    expected outputs come from exactly the weights in the file."""
    storage = rmfile.DTYPES[dtype][0]
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(p.to(storage).to(torch.float32))


# ---- outputs -------------------------------------------------------------------------


def expected_outputs(model: GPT, tokens: List[List[int]], vocab: dict,
                     neighbors: Optional[str]) -> dict:
    """The golden outputs, computed in float64 from the model's (stored) weights."""
    ref = copy.deepcopy(model).double().eval()
    cfg = ref.config
    idx = torch.tensor(tokens, dtype=torch.long)
    out = {}
    with torch.no_grad():
        h = ref.encode(idx)                                   # (B, T, C)
        if cfg.mode != JUDGE:
            out["logits"] = ref.lm_logits(h).tolist()         # (B, T, V or K)
        if cfg.has_critic:
            out["critic_logits"] = ref.critic_logits(h).tolist()
        if cfg.has_sampler:
            pos, left, right = sampler_neighbors(tokens, vocab["mask_token_id"], neighbors)
            hp = h.reshape(-1, cfg.n_embd)[torch.tensor(pos)]
            logits = ref.sampler_logits(hp, torch.tensor(left), torch.tensor(right))
            out["sampler"] = {"pos": pos, "left": left, "right": right, "logits": logits.tolist()}
        if cfg.mode == JUDGE:
            out["evaluation"] = ref.judge(h).tolist()
    return out


def build_variant(v: dict, seed: int, text: str, chars: List[str], out_dir: str) -> dict:
    vocab, cls_id = make_vocab(chars, v.get("cls"))
    cfg = GPTConfig(
        **SIZES,
        bias=v["bias"],
        vocab_size=len(vocab["tokens"]),
        attention_type=v["attention_type"],
        position_encoding=v["position_encoding"],
        mode=v["mode"],
        num_token_classes=v.get("num_token_classes", 2),
        cls_token_id=cls_id,
        add_critic_head=v.get("critic", False),
        add_sampler_head=v.get("sampler", False),
        mask_token_id=vocab["mask_token_id"],
        pad_token_id=vocab["pad_token_id"],
    )
    gen = torch.Generator().manual_seed(seed)
    model = GPT(cfg)
    randomize(model, gen)
    round_to(model, v["dtype"])

    calibration = None
    if v.get("calibration"):
        calibration = sorted(torch.rand(100, generator=gen, dtype=torch.float64).tolist())

    name = v["name"]
    model_file = f"{name}.safetensors"
    source = {"trainer": "tools/train/make_fixtures.py (random weights, golden fixture)",
              "dataset": "tinyshakespeare (vocabulary only)", "created": CREATED}
    card = (f"# {name}\n\nGolden test fixture for remask: random weights (seed {seed}), "
            "not a trained model. Regenerate with `./build.sh goldens`; never edit by hand.\n")
    rmfile.write_model(os.path.join(out_dir, model_file), model, vocab, source, dtype=v["dtype"],
                       neighbors=v.get("neighbors"), critic_calibration=calibration, card=card)

    tokens = make_tokens(text, chars, vocab, cls_id, v)
    golden = {"model": model_file, "kind": cfg.mode.value, "tokens": tokens}
    golden.update(expected_outputs(model, tokens, vocab, v.get("neighbors")))

    # Self-check: the file read back gives the same outputs bit for bit.
    loaded, _ = rmfile.read_model(os.path.join(out_dir, model_file))
    again = expected_outputs(loaded, tokens, vocab, v.get("neighbors"))
    for key, val in again.items():
        if val != golden[key]:
            raise AssertionError(f"{name}: {key} differs after reading {model_file} back")

    text_json = json.dumps(golden, separators=(",", ":")) + "\n"
    if len(text_json) > MAX_JSON_BYTES:
        raise ValueError(f"{name}.json: {len(text_json)} bytes, over the {MAX_JSON_BYTES} limit")
    with open(os.path.join(out_dir, f"{name}.json"), "w", encoding="utf-8") as f:
        f.write(text_json)
    return golden


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--out", default=DEFAULT_OUT, help="output folder (default testdata/golden)")
    args = ap.parse_args(argv)
    torch.manual_seed(0)  # nothing should draw from the global RNG; fixed anyway
    with open(TEXT_PATH, encoding="utf-8") as f:
        text = f.read()
    chars = base_characters(text)
    os.makedirs(args.out, exist_ok=True)
    for i, v in enumerate(VARIANTS):
        build_variant(v, 1000 + i, text, chars, args.out)
        for ext in ("safetensors", "json"):
            path = os.path.join(args.out, f"{v['name']}.{ext}")
            print(f"{os.path.relpath(path)}: {os.path.getsize(path)} bytes")
    return 0


if __name__ == "__main__":
    sys.exit(main())
