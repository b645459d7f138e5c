"""Tests of the trainer: one --smoke run of both stages, checked against the fork's
checkpoint layout (sampler-spec.md 1.8, 2.1, 2.2, 2.5), plus unit tests of the
losses' building blocks.

Run from the repository root:

    /usr/bin/python3 -m unittest discover -s tools/train
"""

from __future__ import annotations

import json
import math
import os
import pickle
import shutil
import sys
import tempfile
import types
import unittest
import zipfile

import torch

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import train  # noqa: E402
from remask_train import data as D  # noqa: E402
from remask_train import train_classifier, train_judge, train_lm  # noqa: E402
from remask_train.model import GPT, GPTConfig, ModelMode  # noqa: E402
from remask_train.train_common import (Clock, Trunk, config_from_model_args,  # noqa: E402
                                       load_checkpoint, setup_runtime)

# The [SH] model_args fields, in the fork's order (spec 2.2).
SH_MODEL_ARGS = [
    "n_layer", "n_head", "n_embd", "block_size", "bias", "vocab_size", "dropout",
    "attention_type", "position_encoding", "mode", "num_token_classes", "cls_token_id",
    "freeze_transformer", "init_from_checkpoint", "unfreeze_at_iteration",
    "unfreeze_lr_multiplier", "add_critic_head", "critic_alpha", "critic_target_scope",
    "start_critic_iteration", "end_critic_iteration", "add_sampler_head",
    "start_sampler_iteration", "sampler_min_neighbors_ratio", "mask_token_id", "pad_token_id",
]
CKPT_KEYS = {"model", "optimizer", "model_args", "iter_num", "best_val_loss", "config"}


def fork_trunk_keys(n_layer: int) -> list:
    """transformer.* keys of an [SH] rotary model without biases (spec 1.8)."""
    keys = ["transformer.wte.weight", "transformer.ln_f.weight"]
    for i in range(n_layer):
        p = f"transformer.h.{i}."
        keys += [p + "ln_1.weight", p + "attn.c_attn.weight", p + "attn.c_proj.weight",
                 p + "ln_2.weight", p + "mlp.c_fc.weight", p + "mlp.c_proj.weight"]
    return keys


def pickled_globals(path: str) -> bytes:
    """The pickle stream inside a torch.save zip file."""
    with zipfile.ZipFile(path) as z:
        name = next(n for n in z.namelist() if n.endswith("/data.pkl"))
        return z.read(name)


class SmokeRunTest(unittest.TestCase):
    """Runs `train.py --stage all --smoke` once and checks what it wrote."""

    @classmethod
    def setUpClass(cls):
        cls.out = tempfile.mkdtemp(prefix="remask-train-test-")
        train.main(["--stage", "all", "--smoke", "--out", cls.out, "--device", "cpu"])
        cls.lm = load_checkpoint(os.path.join(cls.out, "ckpt.pt"))
        cls.judge = load_checkpoint(os.path.join(cls.out, "judge_ckpt.pt"))
        with open(os.path.join(cls.out, "metrics.json"), encoding="utf-8") as f:
            cls.metrics = json.load(f)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.out, ignore_errors=True)

    def test_files(self):
        for name in ("ckpt.pt", "meta.pkl", "judge_ckpt.pt", "metrics.json", "train_log.jsonl"):
            self.assertTrue(os.path.isfile(os.path.join(self.out, name)), name)

    def test_lm_checkpoint_layout(self):
        ck = self.lm
        self.assertEqual(set(ck), CKPT_KEYS)
        args = ck["model_args"]
        self.assertEqual(list(args), SH_MODEL_ARGS)
        self.assertEqual(args["mode"].value, "language_model")
        want_args = dict(n_layer=2, n_embd=64, block_size=64, bias=False, vocab_size=67,
                         dropout=0.0, attention_type="bidirectional", position_encoding="rotary",
                         add_critic_head=True, add_sampler_head=True, mask_token_id=65,
                         pad_token_id=66, sampler_min_neighbors_ratio=0.01, cls_token_id=None,
                         start_sampler_iteration=0)
        for k, v in want_args.items():
            self.assertEqual(args[k], v, k)
        self.assertLess(args["start_critic_iteration"], args["end_critic_iteration"])

        # The fork's key set, derived from the spec, not from our model.
        want = fork_trunk_keys(2) + [
            "lm_head.weight", "critic_head.weight",
            "sampler_head.mlp.0.weight", "sampler_head.mlp.2.weight",
            "sampler_head.mlp.3.weight", "sampler_head.mlp.5.weight",
            "sampler_head.output_head.weight"]
        sd = ck["model"]
        self.assertEqual(set(sd), set(want))
        # ... and our model's names and shapes, loaded strictly.
        model = GPT(config_from_model_args(args))
        self.assertEqual(set(sd), set(model.state_dict()))
        model.load_state_dict(sd, strict=True)
        self.assertEqual(tuple(sd["sampler_head.mlp.0.weight"].shape), (64, 3 * 64))
        self.assertEqual(tuple(sd["transformer.wte.weight"].shape), (67, 64))
        # Tied: one storage under both names, on the CPU, float32.
        self.assertEqual(sd["lm_head.weight"].data_ptr(), sd["transformer.wte.weight"].data_ptr())
        for name, t in sd.items():
            self.assertEqual(t.device.type, "cpu", name)
            self.assertEqual(t.dtype, torch.float32, name)
            self.assertFalse(name.startswith("_orig_mod."), name)
        self.assertTrue(ck["optimizer"]["state"], "the smoke run keeps the AdamW state")
        self.assertEqual(ck["iter_num"], self.metrics["lm"]["iters"])

    def test_mode_pickled_as_fork_class(self):
        for name, ck, value in (("ckpt.pt", self.lm, "language_model"),
                                ("judge_ckpt.pt", self.judge, "sequence_scorer")):
            mode = ck["model_args"]["mode"]
            self.assertEqual(type(mode).__module__, "model", name)
            self.assertEqual(type(mode).__qualname__, "ModelMode", name)
            self.assertEqual(mode.value, value, name)
            # The pickle names the class exactly as the fork's does.
            self.assertIn(b"model\nModelMode\n", pickled_globals(os.path.join(self.out, name)))
            # Our own enum never leaks into a checkpoint.
            self.assertNotIn(b"remask_train", pickled_globals(os.path.join(self.out, name)))

    def test_config_and_meta(self):
        cfg = self.lm["config"]
        self.assertEqual(cfg["dataset"], "char_diffusion")
        self.assertEqual(cfg["sampler_neighbors"], "embeddings")
        meta = cfg["meta"]
        with open(os.path.join(self.out, "meta.pkl"), "rb") as f:
            self.assertEqual(pickle.load(f), meta)
        for key in ("dataset_name", "training_type", "vocab_size", "mask_token_id",
                    "pad_token_id", "mask_probability", "ignore_index", "stoi", "itos",
                    "batch_schema", "batch_size", "block_size", "target_size"):
            self.assertIn(key, meta)
        self.assertNotIn("base_vocab_size", meta)
        self.assertEqual((meta["vocab_size"], meta["mask_token_id"], meta["pad_token_id"]),
                         (67, 65, 66))
        self.assertIsInstance(meta["itos"], dict)
        self.assertEqual(meta["itos"][65], "[MASK]")
        self.assertEqual(meta["stoi"]["[PAD]"], 66)
        chars = [meta["itos"][i] for i in range(65)]
        self.assertEqual(chars, sorted(chars))
        self.assertEqual(chars[0], "\n")
        for k, v in cfg.items():
            if k != "meta":
                self.assertIsInstance(v, (int, float, bool, str, list), k)

    def test_judge_checkpoint_layout(self):
        ck = self.judge
        self.assertEqual(set(ck), CKPT_KEYS)
        args = ck["model_args"]
        self.assertEqual(list(args), SH_MODEL_ARGS)
        self.assertEqual((args["vocab_size"], args["cls_token_id"]), (68, 67))
        self.assertFalse(args["add_critic_head"])
        self.assertFalse(args["add_sampler_head"])
        want = fork_trunk_keys(2) + ["sequence_head.base_predictor.weight", "sequence_head.A",
                                     "sequence_head.B", "sequence_head.temperature",
                                     "cls_embedding"]
        self.assertEqual(set(ck["model"]), set(want))
        model = GPT(config_from_model_args(args))
        model.load_state_dict(ck["model"], strict=True)
        self.assertEqual(model.config.mode, ModelMode.SEQUENCE_SCORER)
        meta = ck["config"]["meta"]
        self.assertEqual((meta["vocab_size"], meta["cls_token_id"]), (68, 67))
        self.assertEqual(meta["itos"][67], "[CLS]")

    def test_metrics(self):
        lm, judge = self.metrics["lm"], self.metrics["judge"]
        for key in ("command", "seed", "iters", "wall_seconds", "tokens_seen", "final_losses",
                    "val", "torch_version", "gpu_name", "train_seconds"):
            self.assertIn(key, lm)
        self.assertEqual(sorted(lm["val"]), ["0.15", "0.5", "0.9"])
        for key in ("command", "seed", "iters", "wall_seconds", "val_mse", "val_correlation",
                    "torch_version", "gpu_name"):
            self.assertIn(key, judge)
        self.assertIn("--smoke", lm["command"])

    def test_losses_finite_and_lm_improves(self):
        lm = self.metrics["lm"]
        for k, v in lm["final_losses"].items():
            self.assertTrue(math.isfinite(v), k)
        for ratio, v in lm["val"].items():
            for k in ("lm_ce", "sampler_ce", "critic_bce"):
                self.assertTrue(math.isfinite(v[k]), (ratio, k))
        self.assertTrue(math.isfinite(self.metrics["judge"]["val_mse"]))

        def mean_ce(val):
            return sum(v["lm_ce"] for v in val.values()) / len(val)
        first = mean_ce(lm["val_history"][0]["val"])
        last = mean_ce(lm["val"])
        self.assertEqual(lm["val_history"][0]["iter"], 0)
        self.assertLess(last, first - 0.2, f"val masked CE {first:.3f} -> {last:.3f}")
        with open(os.path.join(self.out, "train_log.jsonl"), encoding="utf-8") as f:
            records = [json.loads(line) for line in f]
        train_lm_losses = [r["losses"]["lm"] for r in records
                           if r.get("event") == "train" and "lm" in r.get("losses", {})]
        self.assertGreaterEqual(len(train_lm_losses), 4)
        self.assertLess(min(train_lm_losses[-3:]), train_lm_losses[0])


class PartsTest(unittest.TestCase):
    def setUp(self):
        self.runtime = setup_runtime("cpu")
        torch.manual_seed(0)
        self.cfg = GPTConfig(n_layer=2, n_head=2, n_embd=16, block_size=16, bias=False,
                             vocab_size=67, attention_type="bidirectional",
                             position_encoding="rotary", add_critic_head=True,
                             add_sampler_head=True, mask_token_id=65, pad_token_id=66,
                             start_critic_iteration=0, end_critic_iteration=1)
        self.model = GPT(self.cfg)

    def test_trunk_matches_encode(self):
        idx = torch.randint(0, 67, (3, 16))
        with torch.no_grad():
            want = self.model.encode(idx)
            got = Trunk(self.model, self.runtime, compile_blocks=False)(idx)
        self.assertTrue(torch.equal(got, want))

    def test_neighbor_ids(self):
        x = torch.tensor([[10, 11, 12, 13, 14]])
        mask = torch.tensor([[False, True, True, False, True]])
        left, right = train_lm.neighbor_ids(x, mask, keep=0.0)
        # visible neighbours show their ids, masked ones are zero vectors (-1), boundaries -1
        self.assertEqual(left.tolist(), [[-1, 10, -1, -1, 13]])
        self.assertEqual(right.tolist(), [[-1, -1, 13, -1, -1]])
        left, right = train_lm.neighbor_ids(x, mask, keep=1.0)
        self.assertEqual(left.tolist(), [[-1, 10, 11, 12, 13]])
        self.assertEqual(right.tolist(), [[11, 12, 13, 14, -1]])

    def test_mask_batch(self):
        x = torch.arange(40).view(4, 10) % 60
        inp, mask = D.mask_batch(x, torch.tensor([0.0, 1.0, 0.5, 1e-9]), 65)
        self.assertEqual(mask.sum(dim=1)[[0, 1, 3]].tolist(), [1, 10, 1])  # at least one
        self.assertTrue(torch.equal(inp[mask], torch.full_like(inp[mask], 65)))
        self.assertTrue(torch.equal(inp[~mask], x[~mask]))
        inp, mask = D.mask_batch(x, torch.zeros(4), 65, at_least_one=False)
        self.assertFalse(bool(mask.any()))

    def test_gradient_isolation(self):
        """The sampler loss reaches only the sampler head; the critic and LM losses never
        reach it; the critic loss reaches the trunk (a second pass, not detached)."""
        x = torch.randint(0, 65, (2, 16))
        ratio = torch.tensor([0.5, 0.7])
        trunk = Trunk(self.model, self.runtime, compile_blocks=False)

        def grads(loss_name):
            self.model.zero_grad(set_to_none=True)
            torch.manual_seed(3)
            out = train_lm.step_losses(self.model, trunk, x, ratio, self.runtime, 0.5, True)
            out[loss_name].backward()
            return {n for n, p in self.model.named_parameters()
                    if p.grad is not None and float(p.grad.abs().sum()) > 0}

        sampler = grads("sampler")
        self.assertTrue(sampler)
        self.assertTrue(all(n.startswith("sampler_head.") for n in sampler), sampler)
        for name in ("lm", "critic"):
            g = grads(name)
            self.assertFalse(any(n.startswith("sampler_head.") for n in g), (name, g))
            self.assertIn("transformer.h.0.attn.c_attn.weight", g, name)
        self.assertIn("critic_head.weight", grads("critic"))

    def test_critic_alpha_ramp(self):
        cfg = GPTConfig(vocab_size=67, start_critic_iteration=10, end_critic_iteration=20,
                        critic_alpha=1.0)
        self.assertEqual(train_lm.critic_alpha_at(9, cfg), 0.0)
        self.assertGreater(train_lm.critic_alpha_at(10, cfg), 0.0)
        self.assertLess(train_lm.critic_alpha_at(15, cfg), 1.0)
        self.assertEqual(train_lm.critic_alpha_at(20, cfg), 1.0)

    def test_planner_shortens_only_when_needed(self):
        clock = Clock(t0=0.0, max_seconds=100.0)
        clock.elapsed = lambda: 10.0        # 90 s left
        planner = train_lm.Planner(clock, max_iters=1000, critic_fracs=(0.2, 0.4), reserve=10.0)
        cfg = types.SimpleNamespace(start_critic_iteration=200, end_critic_iteration=400)
        planner.observe(0.05, critic=False)  # plain 0.05 s, critic 0.095 s (estimated)
        # 100 plain + 800 critic iterations left: 5 + 76 = 81 s > 80 s: shorten.
        new = planner.check(100, cfg)
        self.assertIsNotNone(new)
        self.assertLess(new, 1000)
        self.assertLessEqual(planner.remaining_cost(100, new, cfg, False), 80.0)
        self.assertGreater(planner.remaining_cost(100, new + 1, cfg, False), 80.0)
        self.assertEqual(planner.shortened_from, 1000)
        planner.observe(0.01, critic=True)
        self.assertIsNone(planner.check(100, cfg))  # fits now: unchanged

    def test_judge_from_lm(self):
        judge = train_judge.judge_from_lm(self.model)
        self.assertEqual(judge.config.vocab_size, 68)
        self.assertEqual(judge.config.cls_token_id, 67)
        lm_sd, j_sd = self.model.state_dict(), judge.state_dict()
        wte = lm_sd["transformer.wte.weight"]
        self.assertTrue(torch.equal(j_sd["transformer.wte.weight"][:67], wte))
        self.assertTrue(torch.allclose(judge.cls_embedding, wte.mean(dim=0)))
        self.assertTrue(torch.equal(j_sd["transformer.h.1.mlp.c_fc.weight"],
                                    lm_sd["transformer.h.1.mlp.c_fc.weight"]))

    def test_judge_target(self):
        y = train_judge.judge_target(torch.tensor([0.0, 0.5, 1.0], dtype=torch.float64))
        self.assertEqual(y.tolist(), [0.0, 0.5**4 - 2 * 0.5**3 + 1.0, 1.0])

    def test_corrupt(self):
        lm = self.model.eval()
        trunk = Trunk(lm, self.runtime, compile_blocks=False)
        x = torch.randint(0, 65, (8, 15))
        gen = torch.Generator().manual_seed(5)
        inp, y, frac = train_judge.corrupt(lm, trunk, x, self.runtime, 0.5, (0.1, 0.8), 67, gen)
        self.assertEqual(tuple(inp.shape), (8, 16))
        self.assertTrue(bool((inp[:, 0] == 67).all()))
        self.assertTrue(bool((inp[:, 1:] < 65).all()))   # LM fills ordinary characters only
        changed = (inp[:, 1:] != x).float().mean(dim=1)
        self.assertTrue(bool((changed <= frac + 1e-9).all()))
        self.assertTrue(torch.allclose(y, train_judge.judge_target(frac)))


def lm_run(out: str, *extra: str) -> None:
    train.main(["--stage", "lm", "--smoke", "--out", out, "--device", "cpu", *extra])


def tensors_equal(a, b) -> bool:
    """Nested dicts/lists of tensors and plain values, compared bit for bit."""
    if isinstance(a, torch.Tensor):
        return isinstance(b, torch.Tensor) and a.dtype == b.dtype and torch.equal(a, b)
    if isinstance(a, dict):
        return isinstance(b, dict) and set(a) == set(b) and all(tensors_equal(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(tensors_equal(x, y) for x, y in zip(a, b))
    return a == b


class InitWeightsTest(unittest.TestCase):
    """--init-weights: a new run starts from an earlier run's weights (a checkpoint or its
    remask/1 file), so its validation at iteration 0 equals the earlier run's final one;
    a checkpoint of another shape is refused with the option's name."""

    def test_init_weights(self):
        tmp = tempfile.mkdtemp(prefix="remask-train-init-")
        self.addCleanup(shutil.rmtree, tmp, ignore_errors=True)
        src, dst = os.path.join(tmp, "src"), os.path.join(tmp, "dst")
        lm_run(src, "--no-save-optimizer")
        lm_run(dst, "--init-weights", os.path.join(src, "ckpt.pt"), "--max-iters", "4")
        with open(os.path.join(src, "metrics.json"), encoding="utf-8") as f:
            final = json.load(f)["lm"]["val"]
        with open(os.path.join(dst, "metrics.json"), encoding="utf-8") as f:
            started = json.load(f)["lm"]["val_history"][0]
        self.assertEqual(started["iter"], 0)
        for ratio, res in final.items():
            self.assertEqual(started["val"][ratio]["lm_ce"], res["lm_ce"], ratio)
        cfg = load_checkpoint(os.path.join(dst, "ckpt.pt"))["config"]
        self.assertEqual(cfg["init_from"], "weights")
        self.assertEqual(cfg["init_weights"], os.path.join(src, "ckpt.pt"))
        self.assertEqual(cfg["init_weights_iter"], load_checkpoint(os.path.join(src, "ckpt.pt"))["iter_num"])
        with self.assertRaises(SystemExit) as e:
            lm_run(os.path.join(tmp, "bad"), "--init-weights", os.path.join(src, "ckpt.pt"),
                   "--n-embd", "32")
        self.assertIn("--init-weights", str(e.exception))
        junk = os.path.join(tmp, "junk.pt")
        with open(junk, "w", encoding="utf-8") as f:
            f.write("not a checkpoint\n")
        with self.assertRaises(SystemExit) as e:
            lm_run(os.path.join(tmp, "junk"), "--init-weights", junk)
        self.assertIn("not a readable checkpoint", str(e.exception))


class SplitRunTest(unittest.TestCase):
    """--stop-after-seconds / --stop-at-iter / --resume, --dropout and --keep-best.

    On the CPU a smoke run repeats bit for bit (fixed seeds, deterministic kernels),
    so a run stopped twice and resumed must write exactly the checkpoints of the run
    that was not stopped. (On CUDA, where some kernels are nondeterministic, the same
    holds only up to rounding.)"""

    OPTS = ["--dropout", "0.1", "--keep-best", "--val-interval", "8"]

    @classmethod
    def setUpClass(cls):
        cls.tmp = tempfile.mkdtemp(prefix="remask-train-split-")
        cls.whole = os.path.join(cls.tmp, "whole")
        cls.split = os.path.join(cls.tmp, "split")
        cls.plain = os.path.join(cls.tmp, "plain")
        lm_run(cls.whole, *cls.OPTS)
        resume = os.path.join(cls.split, "resume.pt")
        # Part 1 stops at the first iteration boundary (iteration 0, after the first
        # validation); part 2 stops after iteration 10 (inside the critic's ramp, 6->12,
        # between validations and log lines); part 3 finishes.
        lm_run(cls.split, *cls.OPTS, "--stop-after-seconds", "1e-6")
        cls.resume_after_part1 = os.path.isfile(resume)
        lm_run(cls.split, *cls.OPTS, "--resume", resume, "--stop-at-iter", "10")
        cls.part2 = load_checkpoint(resume)
        lm_run(cls.split, *cls.OPTS, "--resume", resume)
        lm_run(cls.plain)   # dropout 0, the default
        cls.m = {}
        for name in ("whole", "split", "plain"):
            with open(os.path.join(getattr(cls, name), "metrics.json"), encoding="utf-8") as f:
                cls.m[name] = json.load(f)["lm"]

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.tmp, ignore_errors=True)

    def ckpt(self, run: str, name: str = "ckpt.pt") -> dict:
        return load_checkpoint(os.path.join(getattr(self, run), name))

    def test_stopped_and_resumed_equals_uninterrupted(self):
        self.assertTrue(self.resume_after_part1)
        self.assertEqual(self.part2["iter"], 10)
        for name in ("ckpt.pt", "best.pt"):
            a, b = self.ckpt("whole", name), self.ckpt("split", name)
            self.assertTrue(tensors_equal(a["model"], b["model"]), name)
            self.assertTrue(tensors_equal(a["optimizer"], b["optimizer"]), name)
            self.assertEqual((a["iter_num"], a["best_val_loss"]), (b["iter_num"], b["best_val_loss"]))
            self.assertEqual(pickle.dumps(a["model_args"]), pickle.dumps(b["model_args"]))
            per_process = {"out", "command_line"}  # stop/resume options are not stored at all
            for k in ("stop_at_iter", "stop_after_seconds", "resume"):
                self.assertNotIn(k, b["config"])
            self.assertEqual({k: v for k, v in a["config"].items() if k not in per_process},
                             {k: v for k, v in b["config"].items() if k not in per_process})
        self.assertTrue(self.ckpt("split")["optimizer"]["state"])
        w, s = self.m["whole"], self.m["split"]
        self.assertEqual(w["val"], s["val"])
        self.assertEqual([h["val"] for h in w["val_history"]], [h["val"] for h in s["val_history"]])
        self.assertEqual(w["final_losses"], s["final_losses"])
        self.assertEqual((w["iters"], w["tokens_seen"]), (s["iters"], s["tokens_seen"]))
        self.assertEqual([p["iters"] for p in s["parts"]], [[0, 0], [0, 10], [10, 32]])
        self.assertEqual([p["stopped_by"] for p in s["parts"]],
                         ["stop_after_seconds", "stop_at_iter", "max_iters"])
        self.assertTrue(s["finished"])
        self.assertIsNone(s["shortened_from"])
        # The spent resume file is removed once the run is finished.
        self.assertFalse(os.path.exists(os.path.join(self.split, "resume.pt")))

        def train_records(run):
            with open(os.path.join(getattr(self, run), "train_log.jsonl"), encoding="utf-8") as f:
                return [(r["iter"], r["losses"], r["lr"]) for r in map(json.loads, f)
                        if r.get("event") == "train"]
        self.assertEqual(train_records("whole"), train_records("split"))

    def test_resume_refuses_another_run(self):
        out = os.path.join(self.tmp, "refuse")
        lm_run(out, *self.OPTS, "--stop-at-iter", "2")
        resume = os.path.join(out, "resume.pt")
        with self.assertRaises(SystemExit) as e:
            lm_run(out, *self.OPTS, "--resume", resume, "--lr", "0.01")
        self.assertIn("--lr 0.01", str(e.exception))
        with self.assertRaises(SystemExit) as e:
            lm_run(out, "--resume", os.path.join(self.whole, "ckpt.pt"))
        self.assertIn("not a resume file", str(e.exception))
        with self.assertRaises(SystemExit) as e:
            lm_run(out, *self.OPTS, "--resume", resume, "--stop-at-iter", "2")
        self.assertIn("already at iteration 2", str(e.exception))

    def test_stop_options_only_for_the_lm_stage(self):
        for extra in (["--dropout", "0.1"], ["--resume", "x.pt"], ["--stop-at-iter", "3"],
                      ["--keep-best", "--val-interval", "4"]):
            with self.assertRaises(SystemExit):
                train.parse_args(["--stage", "all", "--smoke", *extra])
        with self.assertRaises(SystemExit):
            train.parse_args(["--stage", "lm", "--smoke", "--keep-best"])  # no --val-interval

    def test_dropout(self):
        plain, drop = self.m["plain"], self.m["whole"]
        self.assertEqual(self.ckpt("plain")["model_args"]["dropout"], 0.0)
        self.assertEqual(self.ckpt("whole")["model_args"]["dropout"], 0.1)
        # The same initial weights, and validation without dropout: the same val at iter 0.
        self.assertEqual(plain["val_history"][0]["val"], drop["val_history"][0]["val"])
        # Dropout changes training.
        self.assertNotEqual(plain["val"], drop["val"])
        self.assertFalse(tensors_equal(self.ckpt("plain")["model"], self.ckpt("whole")["model"]))

    def test_dropout_only_in_training(self):
        runtime = setup_runtime("cpu")
        idx = torch.randint(0, 67, (2, 16), generator=torch.Generator().manual_seed(3))
        for p in (0.0, 0.3):
            torch.manual_seed(0)
            cfg = GPTConfig(n_layer=2, n_head=2, n_embd=16, block_size=16, bias=False,
                            vocab_size=67, dropout=p, attention_type="bidirectional",
                            position_encoding="rotary", mask_token_id=65)
            model = GPT(cfg)
            trunk = Trunk(model, runtime, compile_blocks=False)
            with torch.no_grad():
                model.eval()
                e1, e2 = trunk(idx), trunk(idx)
                model.train()
                t1, t2 = trunk(idx), trunk(idx)
            self.assertTrue(torch.equal(e1, e2), p)       # validation is deterministic
            if p == 0.0:
                self.assertTrue(torch.equal(t1, e1))      # dropout 0: training = eval, bit for bit
            else:
                self.assertFalse(torch.equal(t1, t2))     # dropout > 0 draws new masks
                self.assertFalse(torch.equal(t1, e1))

    def test_keep_best(self):
        m = self.m["whole"]
        history = m["val_history"]
        scores = [train_lm.mean_lm_ce(h["val"]) for h in history]
        i = min(range(len(scores)), key=lambda j: (scores[j], j))   # the first best
        self.assertEqual([h["iter"] for h in history], [0, 8, 16, 24, 32])
        self.assertEqual(m["best"]["iter"], history[i]["iter"])
        self.assertEqual(m["best"]["mean_val_lm_ce"], scores[i])
        best = self.ckpt("whole", "best.pt")
        self.assertEqual(set(best), CKPT_KEYS)
        self.assertEqual(best["optimizer"], {})
        self.assertEqual(best["iter_num"], history[i]["iter"])
        # best.pt holds the weights that scored it: validate them again.
        model = GPT(config_from_model_args(best["model_args"]))
        model.load_state_dict(best["model"], strict=True)
        runtime = setup_runtime("cpu")
        corpus = D.load_corpus(train.DATA)
        val = D.Split(corpus.val_ids, 64, corpus.newline_id, runtime.device)
        res = train_lm.evaluate(model, Trunk(model, runtime, compile_blocks=False),
                                train_lm.val_windows(val, 8), 8, runtime, 0.5)
        self.assertEqual(train_lm.mean_lm_ce(res), scores[i])
        self.assertFalse(os.path.exists(os.path.join(self.plain, "best.pt")))
        self.assertNotIn("best", self.m["plain"])



class ClassifierStageTest(unittest.TestCase):
    """`--stage classifier --smoke`: the remasking model (token classifier) from a smoke LM."""

    @classmethod
    def setUpClass(cls):
        cls.out = tempfile.mkdtemp(prefix="remask-train-clf-")
        train.main(["--stage", "lm", "--smoke", "--out", cls.out, "--device", "cpu",
                    "--no-save-optimizer"])
        lm = os.path.join(cls.out, "ckpt.pt")
        train.main(["--stage", "classifier", "--smoke", "--out", cls.out, "--device", "cpu",
                    "--corrupt-lm", lm, "--no-save-optimizer"])
        cls.ck = load_checkpoint(os.path.join(cls.out, "classifier_ckpt.pt"))
        cls.lm = load_checkpoint(lm)
        with open(os.path.join(cls.out, "metrics.json"), encoding="utf-8") as f:
            cls.metrics = json.load(f)

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.out, ignore_errors=True)

    def test_checkpoint(self):
        args = self.ck["model_args"]
        self.assertEqual(args["mode"].value, "token_classifier")
        self.assertEqual(type(args["mode"]).__module__, "model")
        self.assertEqual(args["num_token_classes"], 2)
        self.assertEqual(args["vocab_size"], 67)
        sd = self.ck["model"]
        self.assertEqual(set(sd), set(fork_trunk_keys(2) + ["lm_head.weight"]))
        self.assertEqual(tuple(sd["lm_head.weight"].shape), (2, 64))
        # started from the LM's trunk: the embedding moved from it, but the head is new
        self.assertEqual(sd["transformer.wte.weight"].shape, self.lm["model"]["transformer.wte.weight"].shape)
        GPT(config_from_model_args(args)).load_state_dict(sd, strict=True)

    def test_metrics(self):
        m = self.metrics["classifier"]
        self.assertEqual(m["iters"], 8)
        val = m["val"]["ckpt.pt"]
        for k in ("bce", "accuracy", "auc", "critic_auc", "wrong_fraction"):
            self.assertTrue(math.isfinite(val[k]), k)
        self.assertIn("--stage classifier", m["command"])

    def test_needs_a_corrupting_lm(self):
        with self.assertRaisesRegex(ValueError, "--corrupt-lm"):
            train.main(["--stage", "classifier", "--smoke", "--out", self.out, "--device", "cpu"])


class ClassifierPartsTest(unittest.TestCase):
    def test_class_semantics(self):
        """Class 1 = right, class 0 = wrong; each logit its own BCE (remask reads the raw class-1 logit)."""
        right = torch.tensor([[1.0, 0.0, 1.0]])
        good = torch.stack([torch.where(right > 0, -20.0, 20.0), torch.where(right > 0, 20.0, -20.0)], -1)
        self.assertLess(float(train_classifier.class_losses(good, right)), 1e-6)
        self.assertGreater(float(train_classifier.class_losses(-good, right)), 10.0)

    def test_roc_auc(self):
        wrong = torch.tensor([0.0, 0.0, 1.0, 1.0])
        self.assertEqual(train_classifier.roc_auc(torch.tensor([0.1, 0.2, 0.3, 0.4]), wrong), 1.0)
        self.assertEqual(train_classifier.roc_auc(torch.tensor([0.4, 0.3, 0.2, 0.1]), wrong), 0.0)
        self.assertEqual(train_classifier.roc_auc(torch.tensor([0.5, 0.5, 0.5, 0.5]), wrong), 0.5)
        self.assertAlmostEqual(train_classifier.roc_auc(torch.tensor([0.1, 0.3, 0.2, 0.4]), wrong), 0.75)

    def test_corrupt_targets(self):
        torch.manual_seed(0)
        cfg = GPTConfig(n_layer=1, n_head=2, n_embd=16, block_size=32, bias=False, vocab_size=67,
                        attention_type="bidirectional", position_encoding="rotary",
                        mask_token_id=65, pad_token_id=66)
        lm = GPT(cfg).eval()
        rt = setup_runtime("cpu")
        x = torch.randint(0, 65, (4, 32))
        filled, right = train_classifier.corrupt(lm, Trunk(lm, rt, False), x, rt)
        self.assertTrue(torch.equal(right, (filled == x).float()))
        self.assertTrue(bool((filled < 65).all()), "no [MASK] or [PAD] left in the filled input")


if __name__ == "__main__":
    unittest.main()
