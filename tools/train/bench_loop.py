"""Time a vectorized PyTorch version of remask's diffusion sampling loop, the
baseline that `remask bench --job standard|small` compares itself with.

The loop is docs/sampling.md's (method `diffusion`, ratio schedule, critic
remasking, quality metrics), written with batched tensor operations over (B, T):
no per-row or per-position Python loops, and no host synchronisation inside an
iteration except ONE per iteration on the sampler-head path (to learn how many
waves to run). It is not bit-exact with remask (PyTorch's RNG, not Philox; top-k
ties broken by torch.topk) but draws from the same distributions.

Per iteration (B samples x T positions, N iterations):

  1. trunk pass on the tokens -> h (B, T, C), LM logits (B, T, V)
     (with --compat critic-on-input also the critic logits, from the same pass);
  2. prediction, one of
       naive      every masked position draws from softmax(logits / temperature)
                  with the special ids excluded (and top-p when < 1);
       wavefront  the sampler head (models with one, --sampler on, neighbours
                  "embeddings"): each masked position's wave is its distance to
                  the nearest unmasked position of its row (a fully masked row
                  first gets its bootstrap positions, the max(1, floor(T *
                  min_neighbors_ratio)) largest raw max-logits rounded to 1/1024,
                  as wave 1); computed with cummax/cummin, then ONE host sync
                  reads the wave histogram and the waves run without further
                  syncs, each a gather + sampler MLP + draw + scatter;
       zeros      sampler head with zero neighbours ("zeros" models): wave order
                  changes nothing, so one pass over every position, no sync;
  3. unless last: critic on the prediction (a second trunk pass; not with
     critic-on-input), per-row top-k of the raw critic logit among the candidates
     (not protected, not [MASK]), k = floor(T * ratio(it + 1)), masked again.

After the loop one trunk pass on the final tokens gives the quality metrics
(self-confidence; critic mean and 10/50/90th percentiles), timed as remask does.

Implementation choices a reader comparing numbers should know:
  * the RoPE tables are cached on the device (model.encode rebuilds them on the
    host per call, a blocking host-to-device copy), via train_common.Trunk;
  * attention: F.scaled_dot_product_attention on CUDA where PyTorch has it
    (--attention auto), else model.py's written-out attention;
  * the sampler head's first Linear(3C, C) is split into its three C x C blocks:
    the h_p block runs once per iteration over the masked positions, the two
    neighbour blocks are precomputed per vocabulary id (V x C tables, the [MASK]
    row zeroed: a masked or missing neighbour is a zero vector). Same function,
    fewer per-wave launches.
  * draws are inverse-CDF with one uniform per position (torch.rand with one
    generator seeded once per run), never torch.multinomial.

    python3 tools/train/bench_loop.py --model models/shakespeare.safetensors --job standard \\
        [--dtype fp32|fp32_tf32|fp16|all] [--sampler on|off|both] [--compat none|critic-on-input|both]

Prints one JSON object with a list of runs.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import math
import os
import statistics
import sys
import time
import warnings
from dataclasses import dataclass
from typing import Callable, Dict, List, Optional, Sequence, Tuple

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from remask_train import rmfile  # noqa: E402
from remask_train.model import GPT  # noqa: E402
from remask_train.train_common import Runtime, Trunk, use_fused_attention  # noqa: E402

JOBS = {"standard": (16, 1024, 15), "small": (1, 256, 15)}
DTYPES = ("fp32", "fp32_tf32", "fp16")
STAGES = ("forward", "sampling", "remasking", "metrics")
STAGE_DEFINITIONS = {
    "forward": "trunk passes of the loop (prediction and critic-on-prediction) with the LM and critic heads",
    "sampling": "prediction: naive draw, or bootstrap + wave indices + the one host sync + every wave",
    "remasking": "candidates, per-row top-k of the critic logit, masking",
    "metrics": "the final trunk pass and the self-confidence and critic statistics",
}


# ---- options and model constants -----------------------------------------------------


@dataclass
class LoopOptions:
    batch: int
    length: int
    iterations: int
    temperature: float = 1.0
    top_p: float = 1.0
    start_ratio: float = 0.95
    end_ratio: float = 0.05
    sampler: bool = True              # use the sampler head when the model has one
    critic_on_input: bool = False     # --compat critic-on-input
    neighbors: Optional[str] = None   # None: the model file's; "embeddings" or "zeros"
    prefix: Sequence[int] = ()        # protected seed ids at positions 0..len-1


def schedule_ratio(i: int, n: int, start: float, end: float) -> float:
    """docs/sampling.md linear schedule: start - i/(N-1)*(start-end), end for N <= 1."""
    if n <= 1:
        return end
    return start - i / (n - 1) * (start - end)


def remask_count(T: int, ratio: float) -> int:
    """k = floor(T * ratio) positions remasked per row (before the min with candidates)."""
    return int(math.floor(float(T) * ratio))


@dataclass
class Prepared:
    """A model on its device with everything the loop reads, computed once."""

    model: GPT
    trunk: Callable[[torch.Tensor], torch.Tensor]
    device: torch.device
    V: int
    C: int
    mask_id: int
    pad_id: Optional[int]
    base_vocab_size: int
    excluded: torch.Tensor            # (V,) bool
    exclusion_bias: torch.Tensor      # (V,) float32: 0 or -inf
    has_critic: bool
    has_sampler: bool
    neighbors: Optional[str]          # the model file's sampler.neighbors
    min_neighbors_ratio: float
    attention: str                    # "sdpa" or "explicit"
    compiled: bool
    # split sampler first layer (None without a sampler head)
    w_h: Optional[torch.Tensor] = None       # (C, C)
    b_0: Optional[torch.Tensor] = None       # (C,) or None
    emb_left: Optional[torch.Tensor] = None  # (V, C), row [MASK] = 0
    emb_right: Optional[torch.Tensor] = None
    mlp_rest: Optional[torch.nn.Module] = None
    output_head: Optional[torch.nn.Module] = None
    quantiles: Optional[torch.Tensor] = None  # (3,) 0.1, 0.5, 0.9 on the device (no upload per call)


def prepare(model: GPT, info: dict, device: torch.device, attention: str = "auto",
            compile_blocks: bool = False) -> Prepared:
    """Move model to device and precompute the loop's constants (not timed)."""
    model = model.to(device).eval()
    cfg = model.config
    vocab = info["vocab"]
    V, C = cfg.vocab_size, cfg.n_embd
    sdpa_available = hasattr(F, "scaled_dot_product_attention")
    runtime = Runtime(device=device, autocast=contextlib.nullcontext,
                      compile_available=hasattr(torch, "compile"),
                      sdpa_available=sdpa_available,
                      gpu_name=torch.cuda.get_device_name(device) if device.type == "cuda" else None)
    if attention not in ("auto", "sdpa", "explicit"):
        raise ValueError(f"attention {attention!r}, want auto, sdpa or explicit")
    used = "explicit"
    if attention in ("auto", "sdpa"):
        if use_fused_attention(model, runtime):
            used = "sdpa"
        elif attention == "sdpa":
            raise ValueError("--attention sdpa needs CUDA and a PyTorch with F.scaled_dot_product_attention")
    trunk = Trunk(model, runtime, compile_blocks=compile_blocks)

    mask_id = vocab["mask_token_id"]
    pad_id = vocab.get("pad_token_id")
    base = vocab["base_vocab_size"]
    excluded = torch.arange(V) >= base
    for sid in (mask_id, pad_id, vocab.get("cls_token_id"), cfg.cls_token_id):
        if sid is not None:
            excluded[sid] = True
    bias = torch.zeros(V).masked_fill(excluded, float("-inf"))
    sampler_meta = info["model"].get("sampler") or {}
    p = Prepared(model=model, trunk=trunk, device=device, V=V, C=C, mask_id=mask_id, pad_id=pad_id,
                 base_vocab_size=base, excluded=excluded.to(device), exclusion_bias=bias.to(device),
                 has_critic=cfg.has_critic, has_sampler=cfg.has_sampler,
                 neighbors=sampler_meta.get("neighbors"),
                 min_neighbors_ratio=float(cfg.sampler_min_neighbors_ratio),
                 attention=used, compiled=trunk.compiled,
                 quantiles=torch.tensor([0.1, 0.5, 0.9], device=device))
    if cfg.has_sampler:
        head = model.sampler_head
        w = head.mlp[0].weight.detach()                       # (C, 3C): [left | h | right]
        wte = model.transformer.wte.weight.detach()           # (V, C)
        with torch.no_grad():
            p.w_h = w[:, C:2 * C].contiguous()
            p.b_0 = None if head.mlp[0].bias is None else head.mlp[0].bias.detach()
            p.emb_left = (wte @ w[:, :C].t()).contiguous()
            p.emb_right = (wte @ w[:, 2 * C:].t()).contiguous()
            p.emb_left[mask_id].zero_()                      # a masked neighbour is a zero vector
            p.emb_right[mask_id].zero_()
        p.mlp_rest = head.mlp[1:]
        p.output_head = head.output_head
    return p


# ---- vectorized pieces ---------------------------------------------------------------


def draw(logits: torch.Tensor, exclusion_bias: torch.Tensor, temperature: float, top_p: float,
         gen: torch.Generator) -> torch.Tensor:
    """One token per row of logits (n, V): excluded ids get probability 0, then
    temperature, top-p (sorted descending, ties lower id first; rank r kept iff r == 0
    or the cumulative probability of ranks < r is <= top_p), then the first id in id
    order whose cumulative probability exceeds u * total, u ~ U[0, 1). No host sync."""
    z = logits.float()
    if temperature != 1.0:
        z = z / temperature
    z = z + exclusion_bias
    probs = torch.softmax(z, dim=-1)
    if top_p < 1.0:
        sp, si = torch.sort(probs, dim=-1, descending=True, stable=True)
        before = torch.cumsum(sp, dim=-1) - sp
        keep = before <= top_p
        keep[:, 0] = True
        probs = torch.zeros_like(probs).scatter_(-1, si, sp * keep)
    cdf = torch.cumsum(probs, dim=-1)
    total = cdf[:, -1:].contiguous()
    u = torch.rand((probs.shape[0], 1), generator=gen, device=probs.device)
    first_above = torch.searchsorted(cdf, u * total, right=True)
    # u * total can round up to total: fall back to the last id with probability > 0
    last_positive = torch.searchsorted(cdf, total, right=False)
    return torch.minimum(first_above, last_positive).squeeze(-1)


def bootstrap_seeds(logits: torch.Tensor, masked: torch.Tensor, ratio: float) -> Tuple[torch.Tensor, torch.Tensor]:
    """(seeds (B, T) bool, fully masked rows (B,) bool): in every fully masked row
    (the only rows with masks but no eligible position) the max(1, floor(T * ratio))
    positions with the largest raw max-logit rounded to 1/1024, ties to the lower
    position (stable sort)."""
    B, T = masked.shape
    full = masked.all(dim=1)
    k = min(T, max(1, int(math.floor(float(T) * ratio))))
    conf = torch.round(logits.float().amax(dim=-1) * 1024.0) / 1024.0      # (B, T)
    top = torch.sort(conf, dim=1, descending=True, stable=True).indices[:, :k]
    seeds = torch.zeros_like(masked).scatter_(1, top, True)
    return seeds & full.unsqueeze(1), full


def wave_index(masked: torch.Tensor, seeds: torch.Tensor, full: torch.Tensor) -> torch.Tensor:
    """The wave (1-based) in which the wavefront fills each masked position, 0 for
    unmasked ones, (B, T) long.

    A wave fills the masked positions next to a filled one, so a masked position's
    wave is its distance to the nearest unmasked position of its row; in a fully
    masked row the bootstrap seeds are wave 1 and the rest 1 + the distance to the
    nearest seed."""
    B, T = masked.shape
    pos = torch.arange(T, device=masked.device).unsqueeze(0).expand(B, T)
    src = ~masked | seeds
    far = 2 * T + 2
    left = torch.where(src, pos, torch.full_like(pos, -far)).cummax(dim=1).values
    right = torch.where(src, pos, torch.full_like(pos, 3 * far)).flip(1).cummin(dim=1).values.flip(1)
    dist = torch.minimum(pos - left, right - pos)
    wave = (dist + full.long().unsqueeze(1)).clamp(max=T + 1)
    return wave.masked_fill(~masked, 0)


def sampler_from_first_layer(p: Prepared, x: torch.Tensor) -> torch.Tensor:
    """The sampler head after its first Linear: SiLU, LN, Linear, SiLU, LN, output."""
    return p.output_head(p.mlp_rest(x))


def wavefront(p: Prepared, o: LoopOptions, tokens: torch.Tensor, masked: torch.Tensor,
              h: torch.Tensor, logits: torch.Tensor, gen: torch.Generator) -> Tuple[torch.Tensor, int]:
    """Fill every mask of tokens with the sampler head, wave by wave; returns
    (prediction, number of waves). One host sync (the wave histogram)."""
    B, T = tokens.shape
    C = p.C
    seeds, full = bootstrap_seeds(logits, masked, p.min_neighbors_ratio)
    wave = wave_index(masked, seeds, full).view(-1)
    counts = torch.zeros(T + 2, dtype=torch.long, device=tokens.device)
    counts.scatter_add_(0, wave, torch.ones_like(wave))
    cl = counts.tolist()                                  # THE host sync of this iteration
    n_waves = max((w for w in range(1, T + 2) if cl[w] > 0), default=0)
    if n_waves == 0:
        return tokens, 0
    order = torch.argsort(wave)[cl[0]:]                  # masked positions (flat b*T+t), by wave
    padpos = order + 2 * torch.div(order, T, rounding_mode="floor") + 1   # in the (B, T+2) copy
    left_at, right_at = padpos - 1, padpos + 1
    hh = F.linear(h.reshape(B * T, C).index_select(0, order), p.w_h, p.b_0)   # h block, once
    pad = torch.full((B, T + 2), p.mask_id, dtype=tokens.dtype, device=tokens.device)
    pad[:, 1:T + 1] = tokens
    pad = pad.view(-1)
    start = 0
    for w in range(1, n_waves + 1):
        n = cl[w]
        if n == 0:
            continue
        sl = slice(start, start + n)
        x = hh[sl]
        x = x + F.embedding(pad[left_at[sl]], p.emb_left) + F.embedding(pad[right_at[sl]], p.emb_right)
        tok = draw(sampler_from_first_layer(p, x), p.exclusion_bias, o.temperature, o.top_p, gen)
        pad[padpos[sl]] = tok
        start += n
    return pad.view(B, T + 2)[:, 1:T + 1], n_waves


def quality_metrics(p: Prepared, tokens: torch.Tensor) -> Dict[str, torch.Tensor]:
    """docs/sampling.md quality metrics from one trunk pass, as device tensors (no sync):
    self-confidence over non-[MASK] positions, and the critic's sigmoid mean and
    10/50/90th percentiles (linear interpolation) over non-[MASK], non-[PAD] ones."""
    h = p.trunk(tokens)
    logits = p.model.lm_logits(h).float()
    valid = tokens != p.mask_id
    probs = torch.softmax(logits, dim=-1).gather(-1, tokens.unsqueeze(-1)).squeeze(-1)
    conf = torch.log(probs + 1e-10)
    out = {"self_confidence": (conf * valid).sum() / valid.sum().clamp(min=1)}
    if p.has_critic:
        c = torch.sigmoid(p.model.critic_logits(h).float()).reshape(-1)
        ok = valid.reshape(-1)
        if p.pad_id is not None:
            ok = ok & (tokens.reshape(-1) != p.pad_id)
        n = ok.sum()
        out["critic_mean"] = (c * ok).sum() / n.clamp(min=1)
        srt = torch.sort(torch.where(ok, c, torch.full_like(c, float("inf")))).values
        at = (n - 1).clamp(min=0).float() * p.quantiles
        lo = at.floor().long()
        hi = at.ceil().long()
        vals = srt[lo] + (srt[hi] - srt[lo]) * (at - lo.float())
        out["critic_p10"], out["critic_p50"], out["critic_p90"] = vals[0], vals[1], vals[2]
    return out


# ---- the loop ------------------------------------------------------------------------


class StageTimer:
    """Wall time per stage, with a device synchronisation at every boundary."""

    def __init__(self, sync: Callable[[], None]):
        self.sync = sync
        self.seconds = {s: 0.0 for s in STAGES}
        self.sync()
        self.last = time.perf_counter()

    def mark(self, stage: str) -> None:
        self.sync()
        now = time.perf_counter()
        self.seconds[stage] += now - self.last
        self.last = now


def _noop(_stage: str) -> None:
    pass


def prediction_path(p: Prepared, o: LoopOptions) -> str:
    if not (o.sampler and p.has_sampler):
        return "naive"
    neighbors = o.neighbors or p.neighbors or "embeddings"
    if neighbors not in ("embeddings", "zeros"):
        raise ValueError(f"neighbors {neighbors!r}, want embeddings or zeros")
    return "wavefront" if neighbors == "embeddings" else "zeros"


def generate(p: Prepared, o: LoopOptions, gen: torch.Generator,
             timer: Optional[StageTimer] = None, trace: Optional[List[dict]] = None) -> Tuple[torch.Tensor, dict]:
    """Run the sampling loop plus the quality metrics.

    Returns (tokens (B, T), info) with info = {"waves", "waves_per_iteration"
    (wavefront only), "trunk_passes", "host_syncs", "path", "metrics" (device
    tensors)}. trace, when given, receives one dict per iteration (device tensors;
    reading them syncs, so for tests only): it, k, ratio, input, pred, remasked
    (B,), candidates (B,), selected (B, T); the last iteration's has pred only.
    timer, when given, synchronises at every stage boundary (instrumented rep)."""
    if not p.has_critic:
        raise ValueError("remasking=critic needs a model with a critic head")
    if o.temperature <= 0:
        raise ValueError(f"temperature {o.temperature} must be > 0")
    if not 0.0 < o.top_p <= 1.0:
        raise ValueError(f"top_p {o.top_p} must be in (0, 1]")
    B, T, N = o.batch, o.length, o.iterations
    mark = timer.mark if timer is not None else _noop
    dev = p.device
    mask = p.mask_id
    path = prediction_path(p, o)
    model = p.model
    tokens = torch.full((B, T), mask, dtype=torch.long, device=dev)
    protected = torch.zeros((B, T), dtype=torch.bool, device=dev)
    if len(o.prefix):
        if len(o.prefix) > T:
            raise ValueError(f"seed of {len(o.prefix)} tokens longer than the sequence ({T})")
        tokens[:, :len(o.prefix)] = torch.tensor(list(o.prefix), dtype=torch.long, device=dev)
        protected[:, :len(o.prefix)] = True
    passes = waves = syncs = 0
    waves_per_iteration: List[int] = []
    for it in range(N):
        last = it == N - 1
        h = p.trunk(tokens)
        passes += 1
        logits = model.lm_logits(h)                                       # (B, T, V)
        critic = model.critic_logits(h) if (o.critic_on_input and not last) else None
        mark("forward")

        masked = tokens == mask
        if path == "wavefront":
            pred, nw = wavefront(p, o, tokens, masked, h, logits, gen)
            waves += nw
            waves_per_iteration.append(nw)
            syncs += 1
        else:
            if path == "zeros":   # sampler(0, h_p, 0) at every position; wave order changes nothing
                logits_p = sampler_from_first_layer(p, F.linear(h, p.w_h, p.b_0))
            else:
                logits_p = logits
            drawn = draw(logits_p.reshape(B * T, p.V), p.exclusion_bias, o.temperature, o.top_p, gen)
            pred = torch.where(masked, drawn.view(B, T), tokens)
        mark("sampling")

        if last:
            tokens = pred
            break
        if not o.critic_on_input:
            h2 = p.trunk(pred)                  # the critic scores the prediction
            passes += 1
            critic = model.critic_logits(h2)
            mark("forward")
        ratio = schedule_ratio(it + 1, N, o.start_ratio, o.end_ratio)
        k = min(T, remask_count(T, ratio))
        cand = (pred != mask) & ~protected
        if k > 0:
            score = critic.float().masked_fill(~cand, float("-inf"))
            top_v, top_i = torch.topk(score, k, dim=1)
            sel = torch.zeros_like(cand).scatter_(1, top_i, top_v > float("-inf"))
            new_tokens = pred.masked_fill(sel, mask)
        else:
            sel = torch.zeros_like(cand)
            new_tokens = pred
        if trace is not None:
            trace.append({"it": it, "k": k, "ratio": ratio, "input": tokens, "pred": pred,
                          "remasked": sel.sum(dim=1), "candidates": cand.sum(dim=1), "selected": sel})
        tokens = new_tokens
        mark("remasking")

    if trace is not None:
        trace.append({"it": N - 1, "k": 0, "ratio": None, "input": None, "pred": tokens,
                      "remasked": torch.zeros(B, dtype=torch.long, device=dev),
                      "candidates": None, "selected": None})
    metrics = quality_metrics(p, tokens)
    passes += 1
    mark("metrics")
    return tokens, {"waves": waves, "waves_per_iteration": waves_per_iteration, "trunk_passes": passes,
                    "host_syncs": syncs, "path": path, "metrics": metrics}


# ---- benchmark -----------------------------------------------------------------------


def set_tf32(device: torch.device, on: bool) -> None:
    if device.type != "cuda":
        return
    matmul = torch.backends.cuda.matmul
    try:
        matmul.fp32_precision = "tf32" if on else "ieee"      # PyTorch >= 2.9
    except (AttributeError, RuntimeError, ValueError):
        matmul.allow_tf32 = on
    try:
        torch.backends.cudnn.allow_tf32 = on
    except (AttributeError, RuntimeError):
        pass


def dtype_context(device: torch.device, dtype: str):
    if dtype == "fp16":
        return torch.autocast(device_type="cuda", dtype=torch.float16)
    return contextlib.nullcontext()


def decode(info: dict, ids: List[int]) -> str:
    toks = info["vocab"]["tokens"]
    return "".join(toks[i] if len(toks[i]) == 1 else "?" for i in ids)


def count_syncs(p: Prepared, o: LoopOptions, gen: torch.Generator) -> Tuple[Optional[int], List[str]]:
    """Host syncs of one generation seen by torch.cuda.set_sync_debug_mode (CUDA only),
    and where they happened."""
    if p.device.type != "cuda" or not hasattr(torch.cuda, "set_sync_debug_mode"):
        return None, []
    torch.cuda.synchronize()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        torch.cuda.set_sync_debug_mode("warn")
        try:
            generate(p, o, gen)
        finally:
            torch.cuda.set_sync_debug_mode(0)
    torch.cuda.synchronize()
    hits = [w for w in caught if "synchroniz" in str(w.message).lower()]
    sites = sorted({f"{os.path.basename(w.filename)}:{w.lineno}" for w in hits})
    return len(hits), sites


def run_one(p: Prepared, info: dict, job: str, B: int, T: int, N: int, dtype: str, sampler: str,
            compat: str, args) -> dict:
    dev = p.device
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    set_tf32(dev, dtype != "fp32")
    o = LoopOptions(batch=B, length=T, iterations=N, temperature=args.temperature, top_p=args.top_p,
                    start_ratio=args.start_ratio, end_ratio=args.end_ratio, sampler=sampler == "on",
                    critic_on_input=compat == "critic-on-input",
                    neighbors=None if args.neighbors == "model" else args.neighbors,
                    prefix=args.prefix_ids)
    gen = torch.Generator(device=dev)
    gen.manual_seed(args.seed)
    times = []
    with torch.inference_mode(), dtype_context(dev, dtype):
        for _ in range(args.warmup):
            generate(p, o, gen)
        sync()
        for _ in range(args.reps):
            sync()
            t0 = time.perf_counter()
            tokens, gi = generate(p, o, gen)
            sync()
            times.append(time.perf_counter() - t0)
        metrics = {k: float(v) for k, v in gi["metrics"].items()}
        sample = decode(info, tokens[0, :min(T, 120)].tolist())
        timer = StageTimer(sync)
        generate(p, o, gen, timer=timer)
        stages = dict(timer.seconds)
        stages["total"] = sum(timer.seconds.values())
        measured, sites = count_syncs(p, o, gen)
    med = statistics.median(times)
    path = gi["path"]
    return {
        "job": job, "B": B, "T": T, "N": N, "dtype": dtype, "sampler": sampler, "sampler_path": path,
        "compat": compat,
        "seconds": med, "seconds_min": min(times), "seconds_all": times,
        "tokens_per_second": B * T / med,
        "trunk_passes_per_generation": gi["trunk_passes"],
        "waves": gi["waves"],
        "waves_per_iteration": gi["waves_per_iteration"],
        "host_syncs_per_iteration": 1 if path == "wavefront" else 0,
        "host_syncs_per_generation": gi["host_syncs"],
        "host_syncs_measured_per_generation": measured,
        "host_sync_sites": sites,
        "stages": stages,
        "stages_measured_with_syncs": True,
        "metrics": metrics,
        "sample_head": sample,
        "attention": p.attention,
        "compiled": p.compiled,
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "torch_version": torch.__version__,
    }


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="models/shakespeare.safetensors")
    ap.add_argument("--job", choices=sorted(JOBS), default="standard")
    ap.add_argument("--batch", type=int, help="override the job's B")
    ap.add_argument("--length", type=int, help="override the job's T")
    ap.add_argument("--iterations", type=int, help="override the job's N")
    ap.add_argument("--dtype", choices=DTYPES + ("all",), default=None,
                    help="fp32 (TF32 off), fp32_tf32, fp16 (torch.autocast float16, CUDA only), all; "
                         "default fp32_tf32 on CUDA, fp32 on a CPU")
    ap.add_argument("--sampler", choices=("on", "off", "both"), default="on")
    ap.add_argument("--compat", choices=("none", "critic-on-input", "both"), default="none")
    ap.add_argument("--neighbors", choices=("model", "embeddings", "zeros"), default="model",
                    help="sampler-head neighbour mode; model = the file's sampler.neighbors")
    ap.add_argument("--temperature", type=float, default=1.0)
    ap.add_argument("--top-p", type=float, default=1.0)
    ap.add_argument("--start-ratio", type=float, default=0.95)
    ap.add_argument("--end-ratio", type=float, default=0.05)
    ap.add_argument("--seed-text", default="", help="protected prefix (characters of the vocabulary)")
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--attention", choices=("auto", "sdpa", "explicit"), default="auto",
                    help="auto: F.scaled_dot_product_attention on CUDA where available")
    ap.add_argument("--compile", action="store_true", help="torch.compile the trunk blocks (CUDA, PyTorch 2.x)")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args(argv)
    if args.reps < 1:
        ap.error("--reps must be >= 1")
    if args.warmup < 0:
        ap.error("--warmup must be >= 0")
    dev = torch.device(args.device)
    if args.dtype is None:
        args.dtype = "fp32_tf32" if dev.type == "cuda" else "fp32"
    if dev.type != "cuda" and args.dtype == "fp16":
        ap.error("--dtype fp16 is torch.autocast(float16) on CUDA; on a CPU use fp32")
    if dev.type == "cuda" and not torch.cuda.is_available():
        ap.error("--device cuda but torch.cuda.is_available() is False")
    return ap, args


def main(argv=None) -> int:
    ap, args = parse_args(argv)
    dev = torch.device(args.device)
    B, T, N = JOBS[args.job]
    B = args.batch if args.batch is not None else B
    T = args.length if args.length is not None else T
    N = args.iterations if args.iterations is not None else N
    if min(B, T, N) < 1:
        ap.error(f"batch, length and iterations must be >= 1 (got {B}, {T}, {N})")
    notes = []
    t0 = time.perf_counter()
    model, info = rmfile.read_model(args.model)
    load_seconds = time.perf_counter() - t0
    if T > model.config.block_size:
        ap.error(f"--length {T} exceeds the model's block_size {model.config.block_size}")
    chars = {t: i for i, t in enumerate(info["vocab"]["tokens"][:info["vocab"]["base_vocab_size"]])}
    missing = sorted({c for c in args.seed_text if c not in chars})
    if missing:
        ap.error(f"--seed-text has characters outside the vocabulary: {missing}")
    args.prefix_ids = [chars[c] for c in args.seed_text]
    p = prepare(model, info, dev, attention=args.attention, compile_blocks=args.compile)

    dtypes = list(DTYPES) if args.dtype == "all" else [args.dtype]
    if dev.type != "cuda" and args.dtype == "all":
        dtypes = ["fp32"]
        notes.append("on a CPU --dtype all runs fp32 only (fp32_tf32 is the same there, fp16 needs CUDA)")
    samplers = ["on", "off"] if args.sampler == "both" else [args.sampler]
    compats = ["none", "critic-on-input"] if args.compat == "both" else [args.compat]
    if not p.has_sampler and "on" in samplers:
        notes.append("the model has no sampler head: --sampler on runs the naive path")
    runs = []
    for dtype in dtypes:
        for sampler in samplers:
            for compat in compats:
                runs.append(run_one(p, info, args.job, B, T, N, dtype, sampler, compat, args))
    out = {
        "benchmark": "bench_loop.py: vectorized PyTorch diffusion sampling loop (remask bench baseline)",
        "model": args.model,
        "model_stored_dtype": info["dtype"],
        "model_load_seconds": load_seconds,
        "device": str(dev),
        "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu",
        "torch_version": torch.__version__,
        "options": {"temperature": args.temperature, "top_p": args.top_p,
                    "start_ratio": args.start_ratio, "end_ratio": args.end_ratio,
                    "schedule_mode": "ratio", "remasking": "critic", "seed": args.seed,
                    "seed_text": args.seed_text, "reps": args.reps, "warmup": args.warmup,
                    "neighbors": args.neighbors, "model_neighbors": p.neighbors,
                    "attention": p.attention, "compile": p.compiled},
        "timing": "seconds = median over reps of one generation (loop + metrics), "
                  "torch.cuda.synchronize before and after each",
        "stage_definitions": STAGE_DEFINITIONS,
        "host_syncs": "wavefront: one per iteration (the wave histogram, .tolist()); naive and zeros: none; "
                      "host_syncs_measured_per_generation counts torch.cuda.set_sync_debug_mode warnings "
                      "over a whole extra generation (null on CPU)",
        "notes": notes,
        "runs": runs,
    }
    print(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
