"""Sanity tests of the PyTorch model, the remask/1 writer and the goldens.

Run from the repository root:

    /usr/bin/python3 -m unittest discover -s tools/train
"""

from __future__ import annotations

import json
import math
import os
import struct
import tempfile
import unittest

import torch

from remask_train import rmfile
from remask_train.model import GPT, GPTConfig, ModelMode, apply_rotary, rope_tables

HERE = os.path.dirname(os.path.abspath(__file__))
GOLDEN = os.path.join(HERE, "..", "..", "testdata", "golden")

VOCAB_67 = {"type": "char", "tokens": [chr(ord("a") + i % 26) + str(i) for i in range(65)] + ["[MASK]", "[PAD]"],
            "mask_token_id": 65, "pad_token_id": 66, "cls_token_id": None, "base_vocab_size": 65}
SOURCE = {"trainer": "test_model.py", "created": "2025-01-01T00:00:00Z"}


def tiny(**kw) -> GPT:
    """A small random model; kw overrides GPTConfig fields."""
    args = dict(n_layer=2, n_head=2, n_embd=16, block_size=16, vocab_size=67, bias=True,
                attention_type="bidirectional", position_encoding="rotary",
                mask_token_id=65, pad_token_id=66)
    args.update(kw)
    torch.manual_seed(7)
    model = GPT(GPTConfig(**args))
    model.reset_parameters(std=0.3)
    with torch.no_grad():  # make LayerNorm weights and biases non-trivial too
        for name, p in model.named_parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn(p.shape))
    return model.eval()


class RotaryTest(unittest.TestCase):
    def test_rotate_half_by_hand(self):
        # d = 4, base 10000: inv_freq = [1, 1/100]; position 2 gives angles [2, 0.02].
        cos, sin = rope_tables(3, 4, dtype=torch.float64)
        x = torch.tensor([[0.0, 0.0, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0], [1.0, 2.0, 3.0, 4.0]],
                         dtype=torch.float64)
        got = apply_rotary(x, cos, sin)[2].tolist()
        a, b = 2.0, 0.02
        want = [1 * math.cos(a) - 3 * math.sin(a),
                2 * math.cos(b) - 4 * math.sin(b),
                3 * math.cos(a) + 1 * math.sin(a),
                4 * math.cos(b) + 2 * math.sin(b)]
        for g, w in zip(got, want):
            self.assertAlmostEqual(g, w, places=12)
        # Position 0 is the identity.
        self.assertEqual(apply_rotary(x[2:3].expand(3, 4), cos, sin)[0].tolist(), [1.0, 2.0, 3.0, 4.0])

    def test_tables_duplicate_half_width(self):
        cos, sin = rope_tables(5, 8, dtype=torch.float64)
        self.assertTrue(torch.equal(cos[:, :4], cos[:, 4:]))
        self.assertTrue(torch.equal(sin[:, :4], sin[:, 4:]))
        self.assertAlmostEqual(cos[3, 1].item(), math.cos(3 / 10000 ** (2 / 8)), places=14)


class AttentionTest(unittest.TestCase):
    def changed_positions(self, attention: str):
        """Positions whose logits change when the token at column 5 changes."""
        model = tiny(attention_type=attention, add_sampler_head=False)
        idx = torch.randint(0, 65, (1, 10), generator=torch.Generator().manual_seed(3))
        other = idx.clone()
        other[0, 5] = (idx[0, 5] + 1) % 65
        with torch.no_grad():
            d = (model(idx) - model(other)).abs().amax(dim=-1)[0]
        return [t for t in range(10) if d[t] > 1e-6]

    def test_causal_sees_only_the_past(self):
        self.assertEqual(self.changed_positions("causal"), [5, 6, 7, 8, 9])

    def test_bidirectional_sees_everything(self):
        self.assertEqual(self.changed_positions("bidirectional"), list(range(10)))

    def test_non_lm_modes_are_forced_bidirectional(self):
        cfg = GPTConfig(n_layer=1, n_head=2, n_embd=8, block_size=8, vocab_size=10,
                        attention_type="causal", mode=ModelMode.SEQUENCE_SCORER)
        self.assertEqual(cfg.attention_type, "bidirectional")

    def test_unknown_strings_are_refused(self):
        with self.assertRaises(ValueError):
            GPTConfig(attention_type="bidirectonal")
        with self.assertRaises(ValueError):
            GPTConfig(position_encoding="alibi")


class HeadsTest(unittest.TestCase):
    def test_lm_head_is_tied(self):
        model = tiny()
        self.assertIs(model.lm_head.weight, model.transformer.wte.weight)
        idx = torch.randint(0, 67, (2, 6))
        with torch.no_grad():
            h = model.encode(idx)
            self.assertTrue(torch.allclose(model.lm_logits(h), h @ model.transformer.wte.weight.t()))
            model.transformer.wte.weight.add_(1.0)  # one Parameter: the head moves with it
        self.assertTrue(torch.equal(model.lm_head.weight, model.transformer.wte.weight))

    def test_classifier_head_is_not_tied(self):
        model = tiny(mode=ModelMode.TOKEN_CLASSIFIER, num_token_classes=3)
        self.assertEqual(tuple(model.lm_head.weight.shape), (3, 16))
        self.assertEqual(tuple(model(torch.zeros(2, 5, dtype=torch.long)).shape), (2, 5, 3))

    def test_sampler_neighbors(self):
        model = tiny(add_sampler_head=True)
        h = torch.randn(3, 16)
        wte = model.transformer.wte.weight
        left, right = torch.tensor([-1, 4, 7]), torch.tensor([2, -1, 7])
        with torch.no_grad():
            got = model.sampler_logits(h, left, right)
            zero = torch.zeros(16)
            feats = torch.stack([torch.cat([zero, h[0], wte[2]]),
                                 torch.cat([wte[4], h[1], zero]),
                                 torch.cat([wte[7], h[2], wte[7]])])
            want = model.sampler_head(feats)
        self.assertTrue(torch.allclose(got, want))

    def test_cls_swap_and_judge(self):
        model = tiny(mode=ModelMode.SEQUENCE_SCORER, cls_token_id=66)
        idx = torch.tensor([[66, 3, 4], [5, 66, 66]])
        with torch.no_grad():
            x = model.embed(idx)
            self.assertTrue(torch.equal(x[0, 0], model.cls_embedding))
            self.assertTrue(torch.equal(x[1, 2], model.cls_embedding))
            self.assertTrue(torch.equal(x[0, 1], model.transformer.wte.weight[3]))
            h = model.encode(idx)
            sh = model.sequence_head
            want = torch.sigmoid(sh.A * (h[:, 0] @ sh.base_predictor.weight[0]) + sh.B)
            self.assertTrue(torch.allclose(model.judge(h), want))


class RMFileTest(unittest.TestCase):
    def round_trip(self, model, vocab, dtype, **kw):
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "m.safetensors")
            meta = rmfile.write_model(path, model, vocab, SOURCE, dtype=dtype, **kw)
            with open(path, "rb") as f:
                (n,) = struct.unpack("<Q", f.read(8))
            self.assertEqual(n % 8, 0, "header length must be a multiple of 8")
            tensors, metadata, names = rmfile.read_safetensors(path)
            loaded, info = rmfile.read_model(path)
        self.assertEqual(metadata["format"], "remask/1")
        self.assertEqual(json.loads(metadata["model"]), meta)
        self.assertEqual(info["vocab"], vocab)
        self.assertEqual(info["source"], SOURCE)
        self.assertEqual(info["dtype"], dtype)
        self.assertEqual(names, [n for n, _ in rmfile.expected_tensors(meta)])
        storage = rmfile.DTYPES[dtype][0]
        state = model.state_dict()
        for name in names:
            self.assertEqual(tensors[name].dtype, storage, name)
            self.assertTrue(torch.equal(tensors[name], state[name].to(storage)), name)
        return meta, names, loaded

    def test_round_trip_every_dtype(self):
        model = tiny(add_critic_head=True, add_sampler_head=True)
        for dtype in ("F32", "F16", "BF16"):
            with self.subTest(dtype=dtype):
                meta, names, loaded = self.round_trip(model, VOCAB_67, dtype, neighbors="zeros")
                self.assertNotIn("lm_head.weight", names)
                self.assertEqual(meta["heads"], {"critic": True, "sampler": True})
                self.assertIs(loaded.lm_head.weight, loaded.transformer.wte.weight)
                if dtype == "F32":
                    idx = torch.randint(0, 67, (2, 7))
                    with torch.no_grad():
                        self.assertTrue(torch.equal(model(idx), loaded(idx)))

    def test_tensor_sets_per_kind(self):
        judge = tiny(mode=ModelMode.SEQUENCE_SCORER, cls_token_id=66, bias=False)
        # CLS aliased with PAD (spec Q9): the vocab keeps distinct special ids.
        meta, names, _ = self.round_trip(judge, VOCAB_67, "F32")
        self.assertEqual(meta["cls_token_id"], 66)
        self.assertIn("sequence_head.temperature", names)
        self.assertIn("cls_embedding", names)
        self.assertFalse([n for n in names if n.endswith(".bias")])
        self.assertNotIn("heads", meta)

        clf = tiny(mode=ModelMode.TOKEN_CLASSIFIER, position_encoding="absolute")
        meta, names, _ = self.round_trip(clf, VOCAB_67, "F32")
        self.assertIn("lm_head.weight", names)
        self.assertIn("transformer.wpe.weight", names)
        self.assertEqual(meta["num_token_classes"], 2)

    def test_bf16_bytes_are_the_top_half_of_f32(self):
        t = torch.tensor([1.0, -2.5, 3.140625])  # exactly representable in bf16
        with tempfile.TemporaryDirectory() as d:
            path = os.path.join(d, "t.safetensors")
            rmfile.write_safetensors(path, [("t", t)], "BF16", {"format": "remask/1"})
            with open(path, "rb") as f:
                data = f.read()
        (n,) = struct.unpack("<Q", data[:8])
        # Little-endian f32 bytes are [lo lo hi hi]; bf16 keeps the high half.
        want = b"".join(struct.pack("<f", v)[2:] for v in t.tolist())
        self.assertEqual(data[8 + n:], want)

    def test_writer_refuses_a_wrong_state(self):
        model = tiny(add_sampler_head=True)
        with tempfile.TemporaryDirectory() as d:
            with self.assertRaises(ValueError):  # sampler head without a neighbours mode
                rmfile.write_model(os.path.join(d, "x"), model, VOCAB_67, SOURCE)
            with self.assertRaises(ValueError):  # special ids must be distinct
                bad = dict(VOCAB_67, pad_token_id=65)
                rmfile.write_model(os.path.join(d, "x"), model, bad, SOURCE, neighbors="zeros")
            with self.assertRaises(ValueError):  # vocab of the wrong size
                bad = dict(VOCAB_67, tokens=VOCAB_67["tokens"][:-1])
                rmfile.write_model(os.path.join(d, "x"), model, bad, SOURCE, neighbors="zeros")


# ---- goldens against an independent, deliberately naive forward pass --------------------


def naive_forward(t, meta, tokens):
    """Every golden output recomputed from the raw tensors with per-head, per-position
    loops and written-out formulas: shares no code with GPT, so a bug in one shows."""
    f = {k: v.to(torch.float64) for k, v in t.items()}
    C, H, L = meta["n_embd"], meta["n_head"], meta["n_layer"]
    d = C // H
    bias = meta["bias"]

    def ln(x, p):
        mu = x.mean(-1, keepdim=True)
        var = ((x - mu) ** 2).mean(-1, keepdim=True)
        y = (x - mu) / torch.sqrt(var + 1e-5) * f[p + ".weight"]
        return y + f[p + ".bias"] if bias else y

    def lin(x, p, has_bias=None):
        y = x @ f[p + ".weight"].t()
        return y + f[p + ".bias"] if (bias if has_bias is None else has_bias) else y

    def rope(v, pos):  # v (d,), pairs j and j + d/2
        out = v.clone()
        for j in range(d // 2):
            a = pos / 10000 ** (2 * j / d)
            out[j] = v[j] * math.cos(a) - v[j + d // 2] * math.sin(a)
            out[j + d // 2] = v[j + d // 2] * math.cos(a) + v[j] * math.sin(a)
        return out

    results = []
    for row in tokens:
        T = len(row)
        x = torch.stack([f["cls_embedding"] if row[i] == meta["cls_token_id"] else f["transformer.wte.weight"][row[i]]
                         for i in range(T)])
        if meta["position_encoding"] == "absolute":
            x = x + f["transformer.wpe.weight"][:T]
        for layer in range(L):
            p = f"transformer.h.{layer}."
            qkv = lin(ln(x, p + "ln_1"), p + "attn.c_attn")
            heads = []
            for hh in range(H):
                q = qkv[:, hh * d:(hh + 1) * d]
                k = qkv[:, C + hh * d:C + (hh + 1) * d]
                v = qkv[:, 2 * C + hh * d:2 * C + (hh + 1) * d]
                if meta["position_encoding"] == "rotary":
                    q = torch.stack([rope(q[i], i) for i in range(T)])
                    k = torch.stack([rope(k[i], i) for i in range(T)])
                out = torch.zeros(T, d, dtype=torch.float64)
                for i in range(T):
                    keys = range(i + 1) if meta["attention"] == "causal" else range(T)
                    s = torch.tensor([float(q[i] @ k[j]) / math.sqrt(d) for j in keys], dtype=torch.float64)
                    w = torch.exp(s - s.max())
                    w = w / w.sum()
                    out[i] = sum(w[n] * v[j] for n, j in enumerate(keys))
                heads.append(out)
            x = x + lin(torch.cat(heads, dim=1), p + "attn.c_proj")
            u = lin(ln(x, p + "ln_2"), p + "mlp.c_fc")
            u = 0.5 * u * (1 + torch.erf(u / math.sqrt(2)))
            x = x + lin(u, p + "mlp.c_proj")
        results.append(ln(x, "transformer.ln_f"))
    return torch.stack(results), f


class GoldenTest(unittest.TestCase):
    def test_goldens_match_a_naive_forward(self):
        names = sorted(n[:-5] for n in os.listdir(GOLDEN) if n.endswith(".json")) if os.path.isdir(GOLDEN) else []
        if not names:
            self.skipTest(f"no goldens in {GOLDEN}: run tools/train/make_fixtures.py")
        for name in names:
            with self.subTest(golden=name):
                with open(os.path.join(GOLDEN, name + ".json")) as fh:
                    g = json.load(fh)
                tensors, metadata, _ = rmfile.read_safetensors(os.path.join(GOLDEN, g["model"]))
                meta = json.loads(metadata["model"])
                self.assertEqual(g["kind"], meta["kind"])
                h, f = naive_forward(tensors, meta, g["tokens"])
                tol = dict(rtol=1e-9, atol=1e-9)
                if meta["kind"] == "language_model":
                    want = h @ f["transformer.wte.weight"].t()
                    self.assertTrue(torch.allclose(torch.tensor(g["logits"], dtype=torch.float64), want, **tol))
                if meta["kind"] == "token_classifier":
                    want = h @ f["lm_head.weight"].t()
                    self.assertTrue(torch.allclose(torch.tensor(g["logits"], dtype=torch.float64), want, **tol))
                heads = meta.get("heads") or {}
                self.assertEqual("critic_logits" in g, bool(heads.get("critic")))
                self.assertEqual("sampler" in g, bool(heads.get("sampler")))
                if heads.get("critic"):
                    want = (h @ f["critic_head.weight"][0])
                    self.assertTrue(torch.allclose(torch.tensor(g["critic_logits"], dtype=torch.float64), want, **tol))
                if heads.get("sampler"):
                    s = g["sampler"]
                    B, T = len(g["tokens"]), len(g["tokens"][0])
                    self.assertEqual(s["pos"], list(range(B * T)))
                    wte = f["transformer.wte.weight"]
                    zero = torch.zeros(meta["n_embd"], dtype=torch.float64)
                    rows = []
                    for p, lft, rgt in zip(s["pos"], s["left"], s["right"]):
                        b, t = divmod(p, T)
                        if meta["sampler"]["neighbors"] == "zeros":
                            self.assertEqual((lft, rgt), (-1, -1))
                        else:
                            ids, mask = g["tokens"][b], 65
                            self.assertEqual(lft, ids[t - 1] if t > 0 and ids[t - 1] != mask else -1)
                            self.assertEqual(rgt, ids[t + 1] if t + 1 < T and ids[t + 1] != mask else -1)
                        rows.append(torch.cat([wte[lft] if lft >= 0 else zero, h[b, t], wte[rgt] if rgt >= 0 else zero]))
                    x = torch.stack(rows)
                    bias = meta["bias"]
                    for i in (0, 3):
                        x = x @ f[f"sampler_head.mlp.{i}.weight"].t()
                        if bias:
                            x = x + f[f"sampler_head.mlp.{i}.bias"]
                        x = x * torch.sigmoid(x)
                        mu = x.mean(-1, keepdim=True)
                        x = (x - mu) / torch.sqrt(((x - mu) ** 2).mean(-1, keepdim=True) + 1e-5)
                        x = x * f[f"sampler_head.mlp.{i + 2}.weight"]
                        if bias:
                            x = x + f[f"sampler_head.mlp.{i + 2}.bias"]
                    want = x @ f["sampler_head.output_head.weight"].t()
                    self.assertTrue(torch.allclose(torch.tensor(s["logits"], dtype=torch.float64), want, **tol))
                if meta["kind"] == "sequence_scorer":
                    z = f["sequence_head.A"] * (h[:, 0] @ f["sequence_head.base_predictor.weight"][0]) + f["sequence_head.B"]
                    want = 1 / (1 + torch.exp(-z))
                    self.assertTrue(torch.allclose(torch.tensor(g["evaluation"], dtype=torch.float64), want, **tol))


if __name__ == "__main__":
    unittest.main()
