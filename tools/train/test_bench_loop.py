"""Tests of bench_loop.py, the vectorized PyTorch sampling loop (CPU, a tiny model).

Run from the repository root:

    /usr/bin/python3 -m unittest discover -s tools/train
"""

from __future__ import annotations

import contextlib
import io
import json
import os
import shutil
import tempfile
import unittest

import torch

import bench_loop as BL
from remask_train import rmfile
from remask_train.model import GPT, GPTConfig

# 5 characters, then [MASK] 5, [PAD] 6 and a [CLS] 7 (an id >= base_vocab_size).
VOCAB = {"type": "char", "tokens": ["a", "b", "c", "d", "e", "[MASK]", "[PAD]", "[CLS]"],
         "mask_token_id": 5, "pad_token_id": 6, "cls_token_id": 7, "base_vocab_size": 5}
MASK, PAD, BASE = 5, 6, 5
SOURCE = {"trainer": "test_bench_loop.py", "created": "2025-01-01T00:00:00Z"}


def tiny_model(min_neighbors_ratio: float = 0.1) -> GPT:
    cfg = GPTConfig(n_layer=2, n_head=2, n_embd=32, block_size=64, vocab_size=8, bias=True,
                    attention_type="bidirectional", position_encoding="rotary",
                    cls_token_id=7, add_critic_head=True, add_sampler_head=True,
                    sampler_min_neighbors_ratio=min_neighbors_ratio,
                    mask_token_id=MASK, pad_token_id=PAD)
    torch.manual_seed(11)
    model = GPT(cfg)
    model.reset_parameters(std=0.3)
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() == 1:
                p.add_(0.1 * torch.randn(p.shape))
        # make the sampler head lean on its neighbours, so that a wrong neighbour shows
        w = model.sampler_head.mlp[0].weight
        w[:, :cfg.n_embd] *= 6.0
        w[:, 2 * cfg.n_embd:] *= 6.0
    return model.eval()


class LoopTestBase(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="bench_loop_test_")
        cls.path = os.path.join(cls.tmp, "tiny.safetensors")
        rmfile.write_model(cls.path, tiny_model(), VOCAB, SOURCE, dtype="F32", neighbors="embeddings")
        model, cls.info = rmfile.read_model(cls.path)
        cls.p = BL.prepare(model, cls.info, torch.device("cpu"))

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def run_loop(self, seed=3, **kw):
        args = dict(batch=3, length=24, iterations=5)
        args.update(kw)
        o = BL.LoopOptions(**args)
        gen = torch.Generator().manual_seed(seed)
        trace = []
        with torch.inference_mode():
            tokens, info = BL.generate(self.p, o, gen, trace=trace)
        return o, tokens, info, trace


class LoopInvariantsTest(LoopTestBase):
    def check_run(self, **kw):
        prefix = kw.get("prefix", ())
        o, tokens, info, trace = self.run_loop(**kw)
        B, T, N = o.batch, o.length, o.iterations
        L = len(prefix)
        self.assertEqual(tokens.shape, (B, T))
        self.assertFalse(bool((tokens == MASK).any()), "a [MASK] survived the loop")
        self.assertTrue(bool((tokens < BASE).all()), "a special id was sampled")
        self.assertEqual(len(trace), N)
        want_input = torch.full((B, T), MASK, dtype=torch.long)
        want_input[:, :L] = torch.tensor(list(prefix), dtype=torch.long)
        for it, tr in enumerate(trace[:-1]):
            pred = tr["pred"]
            self.assertTrue(torch.equal(tr["input"], want_input), f"iteration {it}: input")
            self.assertFalse(bool((pred == MASK).any()), f"iteration {it}: prediction keeps a [MASK]")
            if L:
                self.assertTrue(torch.equal(pred[:, :L], want_input[:, :L]), "protected prefix changed")
                self.assertFalse(bool(tr["selected"][:, :L].any()), "a protected position was remasked")
            # filled positions keep their input token
            kept = want_input != MASK
            self.assertTrue(torch.equal(pred[kept], want_input[kept]))
            ratio = BL.schedule_ratio(it + 1, N, o.start_ratio, o.end_ratio)
            k = BL.remask_count(T, ratio)
            self.assertEqual(tr["k"], k)
            self.assertEqual(tr["candidates"].tolist(), [T - L] * B)
            self.assertEqual(tr["remasked"].tolist(), [min(k, T - L)] * B)
            self.assertEqual(tr["selected"].sum(dim=1).tolist(), [min(k, T - L)] * B)
            want_input = pred.masked_fill(tr["selected"], MASK)
        self.assertTrue(torch.equal(trace[-1]["pred"], tokens))
        kept = want_input != MASK        # the last iteration fills masks only
        self.assertTrue(torch.equal(tokens[kept], want_input[kept]))
        return o, tokens, info, trace

    def test_sampler_wavefront(self):
        o, _, info, _ = self.check_run(sampler=True)
        self.assertEqual(info["path"], "wavefront")
        self.assertGreater(info["waves"], 0)
        self.assertEqual(len(info["waves_per_iteration"]), o.iterations)
        self.assertEqual(sum(info["waves_per_iteration"]), info["waves"])
        self.assertGreaterEqual(info["waves_per_iteration"][0], 2)   # bootstrap seeds, then their neighbours
        self.assertEqual(info["host_syncs"], o.iterations)

    def test_naive(self):
        _, _, info, _ = self.check_run(sampler=False)
        self.assertEqual(info["path"], "naive")
        self.assertEqual(info["waves"], 0)
        self.assertEqual(info["host_syncs"], 0)

    def test_zero_neighbours(self):
        _, _, info, _ = self.check_run(sampler=True, neighbors="zeros")
        self.assertEqual(info["path"], "zeros")
        self.assertEqual(info["host_syncs"], 0)

    def test_prefix_and_critic_on_input_and_top_p(self):
        for sampler in (True, False):
            self.check_run(sampler=sampler, prefix=(0, 1, 2, 3), critic_on_input=True, top_p=0.7)

    def test_small_ratio_and_one_iteration(self):
        # k = floor(T * ratio) <= 0 remasks nothing; N = 1 never remasks.
        self.check_run(length=8, iterations=3, start_ratio=0.05, end_ratio=0.05)
        self.check_run(iterations=1)

    def test_selection_is_top_k_of_the_critic_on_the_prediction(self):
        _, _, _, trace = self.run_loop(sampler=True, batch=2, length=32, iterations=4)
        model = self.p.model
        with torch.inference_mode():
            for tr in trace[:-1]:
                critic = model.critic_logits(model.encode(tr["pred"]))
                sel = tr["selected"]
                for b in range(sel.shape[0]):
                    chosen, rest = critic[b][sel[b]], critic[b][~sel[b]]
                    if len(chosen) and len(rest):
                        self.assertGreaterEqual(float(chosen.min()), float(rest.max()) - 1e-6)

    def test_trunk_passes(self):
        calls = []
        real = self.p.trunk

        def counting(idx):
            calls.append(1)
            return real(idx)

        self.p.trunk = counting
        try:
            for critic_on_input, want in ((False, 2 * 5 - 1 + 1), (True, 5 + 1)):
                for sampler in (True, False):
                    calls.clear()
                    _, _, info, _ = self.run_loop(sampler=sampler, critic_on_input=critic_on_input)
                    self.assertEqual(len(calls), want, (critic_on_input, sampler))
                    self.assertEqual(info["trunk_passes"], want)
        finally:
            self.p.trunk = real

    def test_deterministic(self):
        a = self.run_loop(seed=5)[1]
        b = self.run_loop(seed=5)[1]
        c = self.run_loop(seed=6)[1]
        self.assertTrue(torch.equal(a, b))
        self.assertFalse(torch.equal(a, c))

    def test_metrics(self):
        _, tokens, info, _ = self.run_loop()
        m = {k: float(v) for k, v in info["metrics"].items()}
        model = self.p.model
        with torch.inference_mode():
            h = model.encode(tokens)
            probs = torch.softmax(model.lm_logits(h), dim=-1).gather(-1, tokens.unsqueeze(-1))
            conf = torch.log(probs + 1e-10).mean()
            crit = torch.sigmoid(model.critic_logits(h)).reshape(-1)
            q = torch.quantile(crit, torch.tensor([0.1, 0.5, 0.9]))
        self.assertAlmostEqual(m["self_confidence"], float(conf), places=5)
        self.assertAlmostEqual(m["critic_mean"], float(crit.mean()), places=5)
        for name, want in zip(("critic_p10", "critic_p50", "critic_p90"), q.tolist()):
            self.assertAlmostEqual(m[name], want, places=5)


class PiecesTest(LoopTestBase):
    def test_draw_excludes_special_ids(self):
        gen = torch.Generator().manual_seed(1)
        logits = torch.zeros(4000, 8)
        logits[:, BASE:] = 30.0          # excluded ids would win every draw
        logits[:, 2] = -5.0
        for top_p in (1.0, 0.5):
            got = BL.draw(logits, self.p.exclusion_bias, 1.0, top_p, gen)
            self.assertTrue(bool((got < BASE).all()))
        self.assertEqual(self.p.excluded.tolist(), [False] * 5 + [True] * 3)

    def test_draw_distribution_and_top_p(self):
        gen = torch.Generator().manual_seed(2)
        probs = torch.tensor([0.45, 0.35, 0.2, 0.0])
        logits = torch.log(probs).expand(20000, 4)
        bias = torch.zeros(4)
        got = BL.draw(logits, bias, 1.0, 1.0, gen)
        freq = torch.bincount(got, minlength=4).float() / len(got)
        self.assertEqual(int(freq[3] * len(got)), 0)
        for f, p in zip(freq.tolist(), probs.tolist()):
            self.assertAlmostEqual(f, p, delta=0.015)
        # top_p 0.6 keeps ranks 0 and 1 (cumulative before rank 1 = 0.45 <= 0.6), drops rank 2 (0.8)
        got = BL.draw(logits, bias, 1.0, 0.6, gen)
        freq = torch.bincount(got, minlength=4).float() / len(got)
        self.assertEqual(freq[2:].sum().item(), 0.0)
        self.assertAlmostEqual(freq[0].item(), 0.45 / 0.8, delta=0.015)
        # a tiny top_p keeps the top token only
        got = BL.draw(logits[:100], bias, 1.0, 0.01, gen)
        self.assertTrue(bool((got == 0).all()))
        # temperature sharpens
        got = BL.draw(logits, bias, 0.05, 1.0, gen)
        self.assertGreater((got == 0).float().mean().item(), 0.99)

    def test_bootstrap_rounding_and_ties(self):
        # row 0 fully masked: max-logits 1, 3, 3.0001 (= 3 at 1/1024), 2 -> k = 1 takes position 1
        logits = torch.zeros(2, 4, 8)
        for t, v in enumerate([1.0, 3.0, 3.0001, 2.0]):
            logits[0, t, 3] = v
            logits[1, t, 3] = v
        masked = torch.tensor([[True] * 4, [True, True, False, True]])
        seeds, full = BL.bootstrap_seeds(logits, masked, 0.01)
        self.assertEqual(full.tolist(), [True, False])
        self.assertEqual(seeds.tolist(), [[False, True, False, False], [False] * 4])
        seeds, _ = BL.bootstrap_seeds(logits, masked, 0.5)    # k = 2
        self.assertEqual(seeds[0].tolist(), [False, True, True, False])

    def test_wave_index_matches_a_simulation(self):
        gen = torch.Generator().manual_seed(4)
        B, T = 40, 17
        masked = torch.rand(B, T, generator=gen) < 0.8
        masked[0] = True                 # fully masked rows
        masked[1] = True
        masked[2] = False                # no masks
        masked[3, :] = True
        masked[3, T - 1] = False         # one filled position at the end
        logits = torch.randn(B, T, 8, generator=gen)
        seeds, full = BL.bootstrap_seeds(logits, masked, 0.15)
        got = BL.wave_index(masked, seeds, full)
        for b in range(B):
            m, s = masked[b].tolist(), seeds[b].tolist()
            filled = [not x for x in m]
            want = [0] * T
            w = 0
            while not all(filled):
                w += 1
                wave = [t for t in range(T) if not filled[t] and (
                    (t > 0 and filled[t - 1]) or (t + 1 < T and filled[t + 1]))]
                if not wave:             # no eligible position: the bootstrap
                    self.assertTrue(all(m) and w == 1)
                    wave = [t for t in range(T) if s[t]]
                for t in wave:
                    want[t] = w
                    filled[t] = True
            self.assertEqual(got[b].tolist(), want, f"row {b}: mask {m}")

    def test_wavefront_against_per_position_reference(self):
        """At a near-zero temperature every wave draws the sampler head's argmax; check
        each filled position against model.sampler_logits fed the neighbours that a
        wave-by-wave, position-by-position fill would have seen at its wave."""
        p, model = self.p, self.p.model
        gen = torch.Generator().manual_seed(8)
        B, T = 6, 20
        tokens = torch.randint(0, BASE, (B, T), generator=gen)
        masked = torch.rand(B, T, generator=gen) < 0.7
        masked[0] = True                 # bootstrap rows
        masked[1] = True
        masked[2] = False
        tokens = tokens.masked_fill(masked, MASK)
        o = BL.LoopOptions(batch=B, length=T, iterations=1, temperature=1e-3)
        with torch.inference_mode():
            h = p.trunk(tokens)
            logits = model.lm_logits(h)
            pred, n_waves = BL.wavefront(p, o, tokens, tokens == MASK, h, logits, gen)
            self.assertFalse(bool((pred == MASK).any()))
            self.assertTrue(torch.equal(pred[~masked], tokens[~masked]))
            max_waves = 0
            k_boot = max(1, int(T * p.min_neighbors_ratio))
            for b in range(B):
                filled = [not x for x in masked[b].tolist()]
                if all(filled):
                    continue
                w = 0
                while not all(filled):
                    w += 1
                    wave = [t for t in range(T) if not filled[t] and (
                        (t > 0 and filled[t - 1]) or (t + 1 < T and filled[t + 1]))]
                    if not wave:         # bootstrap: largest rounded max-logit, lower position on ties
                        conf = [round(float(logits[b, t].max()) * 1024) / 1024 for t in range(T)]
                        wave = sorted(sorted(range(T), key=lambda t: -conf[t])[:k_boot])
                    left = [int(pred[b, t - 1]) if t > 0 and filled[t - 1] else -1 for t in wave]
                    right = [int(pred[b, t + 1]) if t + 1 < T and filled[t + 1] else -1 for t in wave]
                    ref = model.sampler_logits(h[b, wave], torch.tensor(left), torch.tensor(right))
                    ref = ref + p.exclusion_bias
                    for i, t in enumerate(wave):
                        got = int(pred[b, t])
                        self.assertLess(got, BASE)
                        self.assertGreaterEqual(float(ref[i, got]), float(ref[i].max()) - 1e-2,
                                                f"row {b} position {t} wave {w}")
                    for t in wave:
                        filled[t] = True
                max_waves = max(max_waves, w)
            self.assertEqual(n_waves, max_waves)

    def test_split_first_layer_matches_the_sampler_head(self):
        p, model = self.p, self.p.model
        gen = torch.Generator().manual_seed(5)
        n = 50
        h = torch.randn(n, p.C, generator=gen)
        left = torch.randint(0, 8, (n,), generator=gen)     # includes [MASK] = zero vector
        right = torch.randint(0, 8, (n,), generator=gen)
        with torch.inference_mode():
            want = model.sampler_logits(h, torch.where(left == MASK, -1, left),
                                        torch.where(right == MASK, -1, right))
            x = torch.nn.functional.linear(h, p.w_h, p.b_0) + p.emb_left[left] + p.emb_right[right]
            got = BL.sampler_from_first_layer(p, x)
        self.assertLess((got - want).abs().max().item(), 1e-4)

    def test_schedule(self):
        self.assertAlmostEqual(BL.schedule_ratio(0, 15, 0.95, 0.05), 0.95)
        self.assertAlmostEqual(BL.schedule_ratio(14, 15, 0.95, 0.05), 0.05)
        self.assertEqual(BL.schedule_ratio(0, 1, 0.95, 0.05), 0.05)
        self.assertEqual(BL.remask_count(1024, BL.schedule_ratio(1, 15, 0.95, 0.05)), 906)


class CLITest(LoopTestBase):
    def cli(self, *argv):
        out, err = io.StringIO(), io.StringIO()
        code = 0
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = BL.main(list(argv))
            except SystemExit as e:
                code = e.code
        return code, out.getvalue(), err.getvalue()

    def test_json(self):
        code, out, err = self.cli("--model", self.path, "--device", "cpu", "--batch", "2", "--length", "12",
                                  "--iterations", "3", "--reps", "2", "--warmup", "1",
                                  "--dtype", "all", "--sampler", "both", "--compat", "both")
        self.assertEqual(code, 0, err)
        doc = json.loads(out)
        self.assertEqual(doc["device"], "cpu")
        self.assertIn("torch_version", doc)
        runs = doc["runs"]
        self.assertEqual(len(runs), 4)   # CPU: fp32 only, x 2 samplers x 2 compat
        self.assertEqual({(r["sampler"], r["compat"]) for r in runs},
                         {(s, c) for s in ("on", "off") for c in ("none", "critic-on-input")})
        fields = ("job", "B", "T", "N", "dtype", "sampler", "compat", "seconds", "seconds_min",
                  "tokens_per_second", "trunk_passes_per_generation", "waves",
                  "host_syncs_per_iteration", "device_name", "torch_version", "stages",
                  "stages_measured_with_syncs", "metrics")
        for r in runs:
            for f in fields:
                self.assertIn(f, r)
            self.assertEqual((r["job"], r["B"], r["T"], r["N"], r["dtype"]), ("standard", 2, 12, 3, "fp32"))
            self.assertTrue(r["stages_measured_with_syncs"])
            self.assertEqual(set(r["stages"]), set(BL.STAGES) | {"total"})
            self.assertGreater(r["seconds"], 0)
            self.assertLessEqual(r["seconds_min"], r["seconds"])
            self.assertAlmostEqual(r["tokens_per_second"], 2 * 12 / r["seconds"])
            self.assertEqual(len(r["seconds_all"]), 2)
            want_passes = 3 + 1 if r["compat"] == "critic-on-input" else 2 * 3 - 1 + 1
            self.assertEqual(r["trunk_passes_per_generation"], want_passes)
            if r["sampler"] == "on":
                self.assertEqual(r["sampler_path"], "wavefront")
                self.assertGreater(r["waves"], 0)
                self.assertEqual(r["host_syncs_per_iteration"], 1)
            else:
                self.assertEqual(r["sampler_path"], "naive")
                self.assertEqual(r["waves"], 0)
                self.assertEqual(r["host_syncs_per_iteration"], 0)
            self.assertIsNone(r["host_syncs_measured_per_generation"])   # CPU

    def test_seed_text_and_job_small(self):
        code, out, err = self.cli("--model", self.path, "--device", "cpu", "--job", "small", "--length", "16",
                                  "--iterations", "2", "--reps", "1", "--warmup", "0", "--seed-text", "abc")
        self.assertEqual(code, 0, err)
        r = json.loads(out)["runs"][0]
        self.assertEqual((r["job"], r["B"], r["T"], r["N"]), ("small", 1, 16, 2))
        self.assertTrue(r["sample_head"].startswith("abc"))

    def test_fp16_on_cpu_refused(self):
        code, out, err = self.cli("--model", self.path, "--device", "cpu", "--dtype", "fp16")
        self.assertEqual(code, 2)
        self.assertIn("fp16", err)
        self.assertIn("CUDA", err)
        self.assertEqual(out, "")


if __name__ == "__main__":
    unittest.main()
