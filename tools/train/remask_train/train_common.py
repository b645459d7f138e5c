"""What both training stages share: runtime setup, optimiser, schedule, time budget,
fork-format checkpoints and the metrics file.

Portability: the same code runs on the Debian CPU build of PyTorch 1.13 (tests,
--smoke) and on PyTorch 2.x with CUDA (the real run). Every 2.x-only feature
(torch.compile, fused scaled-dot-product attention, fused AdamW, the new TF32
switch) is looked up with hasattr/inspect and skipped where absent.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import math
import os
import pickle
import platform
import random
import sys
import time
from dataclasses import dataclass, fields
from typing import Any, Callable, Dict, List, Optional

import numpy as np
import torch
import torch.nn.functional as F

from .model import GPT, GPTConfig, ModelMode, SelfAttention, apply_rotary, rope_tables

HERE = os.path.dirname(os.path.abspath(__file__))
FORKSHIM = os.path.join(os.path.dirname(HERE), "forkshim")


def fork_model_mode():
    """The fork's pickled enum class, model.ModelMode, from tools/train/forkshim.

    Checkpoints pickle the mode as a member of `model.ModelMode` (spec 2.2); the
    shim module makes that class importable under that exact name.
    """
    if FORKSHIM not in sys.path:
        sys.path.insert(0, FORKSHIM)
    from model import ModelMode as ForkModelMode  # noqa: E402 (the shim's module name is "model")
    return ForkModelMode


# ---- runtime -------------------------------------------------------------------------


@dataclass
class Runtime:
    device: torch.device
    autocast: Callable[[], Any]  # returns a context manager
    compile_available: bool
    sdpa_available: bool
    gpu_name: Optional[str]


def seed_everything(seed: int) -> None:
    """Seed python, numpy's legacy global state and torch (CPU and every CUDA device)."""
    random.seed(seed)
    np.random.seed(seed % (2**32))
    torch.manual_seed(seed)


def setup_runtime(device_name: str) -> Runtime:
    """Pick the device, turn TF32 on, and build the autocast context (bf16 on CUDA only)."""
    if device_name == "auto":
        device_name = "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(device_name)
    gpu_name = None
    if device.type == "cuda":
        gpu_name = torch.cuda.get_device_name(device)
        matmul = torch.backends.cuda.matmul
        try:
            matmul.fp32_precision = "tf32"             # PyTorch >= 2.9
        except (AttributeError, RuntimeError, ValueError):
            matmul.allow_tf32 = True                   # older PyTorch

        def autocast():
            return torch.autocast(device_type="cuda", dtype=torch.bfloat16)
    else:
        def autocast():
            return contextlib.nullcontext()
    return Runtime(
        device=device,
        autocast=autocast,
        compile_available=hasattr(torch, "compile"),
        sdpa_available=hasattr(F, "scaled_dot_product_attention"),
        gpu_name=gpu_name,
    )


def _sdpa_attention_forward(self: SelfAttention, x: torch.Tensor, rope) -> torch.Tensor:
    """SelfAttention.forward with F.scaled_dot_product_attention (flash attention on
    CUDA); the same mathematics as model.py's written-out attention."""
    B, T, C = x.shape
    H, d = self.n_head, C // self.n_head
    q, k, v = self.c_attn(x).split(C, dim=2)              # each (B, T, C)
    q = q.view(B, T, H, d).transpose(1, 2)                # (B, H, T, d)
    k = k.view(B, T, H, d).transpose(1, 2)
    v = v.view(B, T, H, d).transpose(1, 2)
    if rope is not None:
        cos, sin = rope
        # The tables are float32 under autocast; keep q and k in v's dtype so that
        # the fused kernel sees one dtype.
        q = apply_rotary(q, cos, sin).to(v.dtype)
        k = apply_rotary(k, cos, sin).to(v.dtype)
    # Attention dropout as model.py's attn_dropout does it, in training only.
    p = self.attn_dropout.p if self.training else 0.0
    y = F.scaled_dot_product_attention(q, k, v, dropout_p=p, is_causal=self.causal)  # (B, H, T, d)
    y = y.transpose(1, 2).contiguous().view(B, T, C)
    return self.resid_dropout(self.c_proj(y))


def use_fused_attention(model: GPT, runtime: Runtime) -> bool:
    """Route every attention layer of model through SDPA where PyTorch has it and the
    device is CUDA (on CPU the written-out attention is kept: it is the reference).
    Only the instances' forward changes; parameters and state_dict names do not."""
    if not (runtime.sdpa_available and runtime.device.type == "cuda"):
        return False
    for m in model.modules():
        if isinstance(m, SelfAttention):
            m.forward = _sdpa_attention_forward.__get__(m, SelfAttention)
    return True


class Trunk:
    """model.encode with the RoPE tables cached per (T, device) and, optionally, the
    blocks + ln_f compiled with torch.compile.

    model.encode rebuilds the tables from float64 angles on every call (on the host),
    which a compiled graph should not contain; the cached tables are the same
    float32 values. Tested equal to model.encode in test_train.py.
    """

    def __init__(self, model: GPT, runtime: Runtime, compile_blocks: bool):
        self.model = model
        self._tables: Dict[tuple, tuple] = {}
        self.compiled = bool(compile_blocks and runtime.compile_available
                             and runtime.device.type == "cuda")
        self._blocks = torch.compile(self._run_blocks) if self.compiled else self._run_blocks

    def _run_blocks(self, x: torch.Tensor, cos: Optional[torch.Tensor],
                    sin: Optional[torch.Tensor]) -> torch.Tensor:
        rope = (cos, sin) if cos is not None else None
        for block in self.model.transformer.h:
            x = block(x, rope)
        return self.model.transformer.ln_f(x)

    def __call__(self, idx: torch.Tensor) -> torch.Tensor:
        """(B, T) ids -> (B, T, C) hidden states after ln_f."""
        cfg = self.model.config
        x = self.model.transformer.drop(self.model.embed(idx))      # (B, T, C) float32
        cos = sin = None
        if cfg.position_encoding == "rotary":
            key = (idx.shape[1], str(x.device), x.dtype)
            if key not in self._tables:
                self._tables[key] = rope_tables(idx.shape[1], cfg.head_size,
                                                device=x.device, dtype=x.dtype)
            cos, sin = self._tables[key]                           # each (T, d)
        return self._blocks(x, cos, sin)


# ---- optimiser and schedule ----------------------------------------------------------


def make_adamw(model: torch.nn.Module, lr: float, weight_decay: float, betas,
               runtime: Runtime) -> torch.optim.Optimizer:
    """AdamW with weight decay on the 2-D weights (matrices, embeddings) only."""
    decay, no_decay = [], []
    for _, p in model.named_parameters():  # tied parameters are listed once
        if not p.requires_grad:
            continue
        (decay if p.dim() >= 2 else no_decay).append(p)
    groups = [{"params": decay, "weight_decay": weight_decay},
              {"params": no_decay, "weight_decay": 0.0}]
    kwargs = dict(lr=lr, betas=tuple(betas))
    if runtime.device.type == "cuda" and "fused" in inspect.signature(torch.optim.AdamW).parameters:
        kwargs["fused"] = True
    return torch.optim.AdamW(groups, **kwargs)


def lr_at(it: int, max_iters: int, lr: float, warmup: int, min_lr: float) -> float:
    """Linear warmup over `warmup` iterations, then cosine from lr to min_lr at max_iters."""
    if it < warmup:
        return lr * (it + 1) / warmup
    if it >= max_iters:
        return min_lr
    progress = (it - warmup) / max(1, max_iters - warmup)
    return min_lr + 0.5 * (1.0 + math.cos(math.pi * progress)) * (lr - min_lr)


class Clock:
    """Wall time since the process started the stage, and the stage's budget."""

    def __init__(self, t0: float, max_seconds: float):
        self.t0 = t0
        self.max_seconds = max_seconds

    def elapsed(self) -> float:
        return time.time() - self.t0

    def left(self) -> float:
        return self.max_seconds - self.elapsed()


def sync(runtime: Runtime) -> None:
    if runtime.device.type == "cuda":
        torch.cuda.synchronize(runtime.device)


# ---- the training loop ---------------------------------------------------------------


class Validator:
    """Runs a stage's evaluation, times it, keeps its history and logs its line.

    evaluate() -> results; line(it, results) -> the text logged before "  (N.Ns)".
    Each call appends {"iter", "seconds", "val"} to history (metrics' val_history).
    """

    def __init__(self, evaluate: Callable[[], Any], line: Callable[[int, Any], str], log: "Log"):
        self.evaluate = evaluate
        self.line = line
        self.log = log
        self.history: List[dict] = []

    def __call__(self, it: int) -> Any:
        t = time.time()
        res = self.evaluate()
        dt = time.time() - t
        self.history.append({"iter": it, "seconds": round(dt, 3), "val": res})
        self.log(self.line(it, res) + f"  ({dt:.1f}s)", {"event": "val", "iter": it, "val": res})
        return res


def val_marks(val_interval: int, max_iters: int, after: int = 0) -> set:
    """The iterations after which to validate: every val_interval, or (0) at 1/4, 1/2
    and 3/4 of max_iters, those after `after`."""
    if val_interval > 0:
        return set(range(val_interval, max_iters, val_interval))
    return {m for m in (int(max_iters * f) for f in (0.25, 0.5, 0.75)) if m > after}


@dataclass
class LoopResult:
    iters: int
    tokens: int
    stopped_by: str            # "max_iters" or "max_seconds"
    last_loss: Optional[float]  # the mean loss of the last logged interval
    train_seconds: float
    final: Any                 # the final validation's results
    history: List[dict]        # every validation, the first at iter 0

    def metrics(self, args, seed: int, max_iters: int, batch_size: int, block_size: int,
                clock: Clock) -> dict:
        """The metrics keys every single-loss stage writes (the stage adds its own)."""
        return {
            "command": args.command_line, "seed": seed, "iters": self.iters,
            "max_iters": max_iters, "stopped_by": self.stopped_by,
            "batch_size": batch_size, "block_size": block_size, "tokens_seen": self.tokens,
            "train_seconds": round(self.train_seconds, 2),
            "wall_seconds": round(clock.elapsed(), 2),
            "final_loss": self.last_loss, "val": self.final, "val_history": self.history,
        }


def train_loop(stage: str, model: torch.nn.Module, optimizer: torch.optim.Optimizer,
               loss_at: Callable[[int], torch.Tensor], validator: Validator, args, *,
               max_iters: int, lr: float, warmup_iters: int, tokens_per_step: int,
               loss_label: str, loss_key: str, rate_in_record: bool,
               runtime: Runtime, clock: Clock, log: "Log") -> LoopResult:
    """The loop of a stage with one loss and a fixed max_iters (judge, classifier).

    Validates at iteration 0 and keeps 1.5x its time + 10 s in reserve for the final
    validation and checkpoint; stops at max_iters or when the clock's budget left
    falls under the reserve. Each iteration sets the scheduled lr (warmup then
    cosine to lr * args.min_lr_ratio), takes loss_at(it), steps the optimiser with
    args.grad_clip, logs the mean loss every args.log_interval iterations and at the
    end, validates at val_marks(args.val_interval, ...) and once more at the end.
    """
    t_val = time.time()
    validator(0)
    reserve = 1.5 * (time.time() - t_val) + 10.0
    marks = val_marks(args.val_interval, max_iters)

    model.train()
    it, tokens = 0, 0
    stopped_by = "max_iters"
    acc, n_acc = 0.0, 0
    last_loss = None
    t_interval = t_loop = time.time()
    while it < max_iters:
        if clock.left() < reserve:
            stopped_by = "max_seconds"
            log(f"{stage}: time budget reached at iter {it} ({clock.elapsed():.0f}s)",
                {"event": "time_budget", "iter": it})
            break
        it_lr = lr_at(it, max_iters, lr, warmup_iters, lr * args.min_lr_ratio)
        for g in optimizer.param_groups:
            g["lr"] = it_lr
        loss = loss_at(it)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if args.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.grad_clip)
        optimizer.step()
        acc = acc + loss.detach()
        n_acc += 1
        tokens += tokens_per_step
        it += 1
        if it % args.log_interval == 0 or it == max_iters:
            last_loss = float(acc) / n_acc
            dt = time.time() - t_interval
            tps = n_acc * tokens_per_step / dt
            log(f"{stage} iter {it:5d}  {loss_label} {last_loss:.5f}  lr {it_lr:.2e}  "
                f"{tps / 1e3:.0f}k tok/s  {clock.elapsed():.0f}s",
                {"event": "train", "iter": it, "losses": {loss_key: last_loss}, "lr": it_lr,
                 **({"tokens_per_s": tps} if rate_in_record else {}),
                 "elapsed": clock.elapsed()})
            acc, n_acc = 0.0, 0
            t_interval = time.time()
        if it in marks and it < max_iters:
            validator(it)
            t_interval = time.time()

    sync(runtime)
    train_seconds = time.time() - t_loop
    final = validator(it)
    return LoopResult(iters=it, tokens=tokens, stopped_by=stopped_by, last_loss=last_loss,
                      train_seconds=train_seconds, final=final, history=validator.history)


# ---- checkpoints ---------------------------------------------------------------------


def _to_cpu(obj, memo: Dict[tuple, torch.Tensor]):
    """Copy every tensor in a nested state to the CPU, keeping tensors that share
    storage (tied weights) shared, so torch.save stores them once."""
    if isinstance(obj, torch.Tensor):
        key = (obj.data_ptr(), obj.dtype, tuple(obj.shape), tuple(obj.stride()), obj.device.type)
        if key not in memo:
            memo[key] = obj.detach().to("cpu", copy=True) if obj.device.type != "cpu" \
                else obj.detach().clone()
        return memo[key]
    if isinstance(obj, dict):
        return type(obj)((k, _to_cpu(v, memo)) for k, v in obj.items())
    if isinstance(obj, (list, tuple)):
        return type(obj)(_to_cpu(v, memo) for v in obj)
    return obj


def model_args_for(config: GPTConfig) -> dict:
    """The [SH] model_args dict (spec 2.2), in the fork's field order, with the mode
    as a pickled member of the fork's model.ModelMode."""
    ForkModelMode = fork_model_mode()
    c = config
    return {
        "n_layer": c.n_layer, "n_head": c.n_head, "n_embd": c.n_embd,
        "block_size": c.block_size, "bias": c.bias, "vocab_size": c.vocab_size,
        "dropout": c.dropout, "attention_type": c.attention_type,
        "position_encoding": c.position_encoding,
        "mode": ForkModelMode(c.mode.value),
        "num_token_classes": c.num_token_classes, "cls_token_id": c.cls_token_id,
        "freeze_transformer": False, "init_from_checkpoint": None,
        "unfreeze_at_iteration": None, "unfreeze_lr_multiplier": 0.1,
        "add_critic_head": c.add_critic_head, "critic_alpha": c.critic_alpha,
        "critic_target_scope": c.critic_target_scope,
        "start_critic_iteration": c.start_critic_iteration,
        "end_critic_iteration": c.end_critic_iteration,
        "add_sampler_head": c.add_sampler_head,
        "start_sampler_iteration": c.start_sampler_iteration,
        "sampler_min_neighbors_ratio": c.sampler_min_neighbors_ratio,
        "mask_token_id": c.mask_token_id, "pad_token_id": c.pad_token_id,
    }


def config_from_model_args(model_args: dict) -> GPTConfig:
    """GPTConfig from a fork model_args dict (fork-only fields dropped, mode by value)."""
    names = {f.name for f in fields(GPTConfig)}
    kw = {k: v for k, v in model_args.items() if k in names}
    mode = kw.get("mode", ModelMode.LANGUAGE_MODEL)
    kw["mode"] = ModelMode(getattr(mode, "value", mode))
    return GPTConfig(**kw)


def plain_config(values: dict) -> dict:
    """The fork keeps only int/float/bool/str/list globals in checkpoint['config']."""
    return {k: v for k, v in values.items() if isinstance(v, (int, float, bool, str, list))}


def save_checkpoint(path: str, model: GPT, optimizer: Optional[torch.optim.Optimizer],
                    iter_num: int, best_val_loss: float, config: dict) -> int:
    """Write a fork-format checkpoint (spec 2.1) atomically; returns its size in bytes.

    optimizer None stores an empty dict under 'optimizer' (readers ignore it; it
    keeps the file small enough to bring back from a lent machine).
    """
    memo: Dict[tuple, torch.Tensor] = {}
    ckpt = {
        "model": _to_cpu(model.state_dict(), memo),
        "optimizer": _to_cpu(optimizer.state_dict(), memo) if optimizer is not None else {},
        "model_args": model_args_for(model.config),
        "iter_num": int(iter_num),
        "best_val_loss": float(best_val_loss),
        "config": config,
    }
    tmp = path + ".tmp"
    torch.save(ckpt, tmp)
    os.replace(tmp, path)
    return os.path.getsize(path)


def load_checkpoint(path: str) -> dict:
    """torch.load a fork-format checkpoint on the CPU (needs model.ModelMode: the shim)."""
    fork_model_mode()
    kwargs = {"map_location": "cpu"}
    if "weights_only" in inspect.signature(torch.load).parameters:
        kwargs["weights_only"] = False  # the pickled enum is not a plain tensor
    return torch.load(path, **kwargs)


def rng_states(runtime: Runtime, sampler: np.random.Generator) -> dict:
    """Every random stream of a training process: python's, numpy's global state, torch's
    CPU generator, the CUDA generator of the runtime's device, and the data sampler's."""
    return {
        "python": random.getstate(),
        "numpy": np.random.get_state(),
        "torch": torch.get_rng_state(),
        "cuda": (torch.cuda.get_rng_state(runtime.device) if runtime.device.type == "cuda"
                 else None),
        "sampler": sampler.bit_generator.state,
    }


def set_rng_states(states: dict, runtime: Runtime, sampler: np.random.Generator) -> None:
    """The inverse of rng_states. A CPU run's state has no CUDA generator: resuming it on
    CUDA leaves that generator as seeded (and the reverse ignores the stored one)."""
    random.setstate(states["python"])
    np.random.set_state(states["numpy"])
    torch.set_rng_state(states["torch"])
    if states.get("cuda") is not None and runtime.device.type == "cuda":
        torch.cuda.set_rng_state(states["cuda"], runtime.device)
    sampler.bit_generator.state = states["sampler"]


def write_pickle(path: str, obj) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f)


# ---- metrics -------------------------------------------------------------------------


def environment() -> dict:
    return {
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
        "cuda_version": torch.version.cuda,
    }


def update_metrics(path: str, section: str, values: dict) -> None:
    """Merge values under metrics[section] in the JSON file at path (other stages' sections kept)."""
    metrics = {}
    if os.path.exists(path):
        with open(path, encoding="utf-8") as f:
            metrics = json.load(f)
    metrics["format"] = "remask-train-metrics/1"
    metrics[section] = values
    tmp = path + ".tmp"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(metrics, f, indent=1, sort_keys=True)
        f.write("\n")
    os.replace(tmp, path)


class Log:
    """Prints one line per record and appends it as JSON to a log file."""

    def __init__(self, path: Optional[str]):
        self.path = path

    def __call__(self, text: str, record: Optional[dict] = None) -> None:
        print(text, flush=True)
        if self.path and record is not None:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(json.dumps(record, sort_keys=True) + "\n")
