"""Naive vs cached sampling for PixelCNN and Gated PixelCNN (Ramachandran et al. 2017).

    python benchmarks/image_sampling.py                      # small presets, 28x28 binary, batch 1 8 64
    python benchmarks/image_sampling.py --threads 1 --naive-steps 50

The naive sampler (``model.sample(..., cached=False)``, the generic ``ARModel.sample``) runs one full
forward pass per element; the cached one computes one position per layer per element (plus one row
per layer per image row for the Gated PixelCNN's vertical stack). Both draw from the same generator
seed, and where both run to the end the script checks that they produce identical images.

By default every number is measured end to end. ``--naive-steps N`` instead times only the first N
steps of the naive loop (a full forward pass plus the draw, exactly what each naive step does) and
extrapolates linearly to all D steps; such rows are marked ``(extrapolated from N/D steps)``.
Paper anchor (PixelCNN++, K40): 2x at batch 1, 10x at 8, 61x at 64, 183x at 256.
"""
from __future__ import annotations

import argparse
import platform
import time

import torch

from arsound.core.model import Canvas, run_steps
from arsound.image import build


def naive_partial(model, n: int, steps: int, seed: int) -> float:
    """Seconds for the first ``steps`` steps of the naive sampler (forward + draw), as ``sample(cached=False)``."""
    canvas = Canvas(model, n, generator=torch.Generator().manual_seed(seed))
    t0 = time.perf_counter()
    run_steps(model, canvas, model.naive_steps(canvas), limit=steps)
    return time.perf_counter() - t0


def timed(fn) -> tuple[float, torch.Tensor]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["pixelcnn", "gated_pixelcnn"])
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 8, 64])
    ap.add_argument("--size", default="small")
    ap.add_argument("--shape", nargs=3, type=int, default=[1, 28, 28])
    ap.add_argument("--levels", type=int, default=2)
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--naive-steps", type=int, default=0,
                    help="time only this many naive steps and extrapolate (0: measure the whole naive run)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    D = args.shape[0] * args.shape[1] * args.shape[2]
    print(f"machine: {platform.platform()} | {platform.processor() or platform.machine()} | "
          f"torch {torch.__version__} | {torch.get_num_threads()} intra-op thread(s) | CPU, float32")
    print(f"images: {tuple(args.shape)}, {args.levels} levels, preset '{args.size}', {D} elements each")
    rows = []
    header = f"{'model':16s} {'params':>8s} {'batch':>5s} {'naive s':>10s} {'cached s':>9s} {'speed-up':>8s}  note"
    print(header)
    print("-" * len(header))
    for name in args.models:
        torch.manual_seed(args.seed)
        model = build(name, shape=tuple(args.shape), levels=args.levels, size=args.size).eval()
        model.sample(1, generator=torch.Generator().manual_seed(0))  # warm-up
        for n in args.batches:
            t_fast, fast = timed(lambda: model.sample(n, generator=torch.Generator().manual_seed(args.seed)))
            if args.naive_steps and args.naive_steps < D:
                t_naive = naive_partial(model, n, args.naive_steps, args.seed) * D / args.naive_steps
                note = f"naive extrapolated from {args.naive_steps}/{D} steps"
            else:
                t_naive, naive = timed(lambda: model.sample(
                    n, generator=torch.Generator().manual_seed(args.seed), cached=False))
                note = f"identical samples: {torch.equal(naive, fast)}"
            rows.append((name, n, t_naive, t_fast))
            print(f"{name:16s} {model.num_parameters():8d} {n:5d} {t_naive:10.2f} {t_fast:9.2f} "
                  f"{t_naive / t_fast:7.1f}x  {note}", flush=True)


if __name__ == "__main__":
    main()
