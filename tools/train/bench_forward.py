"""Time the PyTorch trunk forward of our model (remask_train.model.GPT.encode)
at remask bench's shapes, for comparison with `remask bench --job forward`.

The standard shape: 6 layers, 6 heads, 384 wide, block 1024, vocabulary 67,
rotary positions, bidirectional attention; inputs 16 x 1024 and 1 x 256.
Modes: fp32 (strict fp32 matmuls, TF32 off: the same arithmetic as remask's
f32 WGSL kernels, which have no tensor cores), fp32_tf32 (TF32 tensor cores
allowed for matmuls, torch.backends.cuda.matmul.allow_tf32 = True) and fp16
autocast.
FLOPs are counted as remask does (tools/remask/bench.go forwardFLOP): per
layer 24·B·T·C² + 4·B·T²·C. Prints one JSON object.

    python3 tools/train/bench_forward.py [--iters 20] [--shapes 16x1024,1x256]
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import torch

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from remask_train.model import GPT, GPTConfig  # noqa: E402


def flops(cfg: GPTConfig, B: int, T: int) -> float:
    C = cfg.n_embd
    attn = 4.0 * B * T * T * C
    if cfg.attention_type == "causal":
        attn /= 2
    return cfg.n_layer * (24.0 * B * T * C * C + attn)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--iters", type=int, default=20)
    ap.add_argument("--shapes", default="16x1024,1x256")
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = ap.parse_args()
    dev = torch.device(args.device)
    cfg = GPTConfig(n_layer=6, n_head=6, n_embd=384, block_size=1024, vocab_size=67, bias=True,
                    attention_type="bidirectional", position_encoding="rotary")
    torch.manual_seed(1)
    model = GPT(cfg).to(dev).eval()
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    results = []
    for mode in ("fp32", "fp32_tf32", "fp16_autocast"):
        if dev.type == "cuda":
            torch.backends.cuda.matmul.allow_tf32 = mode != "fp32"
            torch.backends.cudnn.allow_tf32 = mode != "fp32"
        for item in args.shapes.split(","):
            B, T = (int(x) for x in item.split("x"))
            idx = torch.randint(0, cfg.vocab_size, (B, T), device=dev)
            ctx = (torch.autocast(device_type=dev.type, dtype=torch.float16)
                   if mode == "fp16_autocast" and dev.type == "cuda" else torch.autocast(device_type="cpu", enabled=False))
            with torch.no_grad(), ctx:
                for _ in range(3):
                    model.encode(idx)
                sync()
                t0 = time.perf_counter()
                for _ in range(args.iters):
                    model.encode(idx)
                sync()
                el = time.perf_counter() - t0
            ms = el * 1000 / args.iters
            g = flops(cfg, B, T) / 1e9
            results.append({"mode": mode, "batch": B, "length": T, "iters": args.iters, "ms_per_forward": ms,
                            "gflop_per_forward": g, "tflops": g / ms, "device": str(dev),
                            "device_name": torch.cuda.get_device_name(dev) if dev.type == "cuda" else "cpu"})
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
