"""Naive vs KV-cached sampling for the attention image models (Image GPT, Sparse Transformer).

    python benchmarks/image_sampling_attention.py                  # small presets, 28x28 binary, batch 1 8 64
    python benchmarks/image_sampling_attention.py --models igpt --batches 1 --budget 60

The naive sampler (``model.sample(..., cached=False)``, the generic ``ARModel.sample``) runs one full
forward pass over all ``T`` positions per element: O(T^2) attention per element. The cached one runs
one position per element through the blocks, each attention layer appending to its KV cache: O(T).
Both draw from the same generator seed, and the script checks that they produce identical images.

Every time in the table is measured end to end, nothing is extrapolated. A naive run that one timed
forward pass predicts to take longer than ``--budget`` seconds at the requested size is instead
measured (naive *and* cached, so the ratio compares like with like) on the smaller ``--fallback``
image; such rows say so in the ``image`` column and give the prediction in the note.
"""
from __future__ import annotations

import argparse
import platform
import time

import torch

from arsound.image import build


def timed(fn) -> tuple[float, torch.Tensor]:
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def one_forward(model, n: int) -> float:
    """Seconds of one full forward pass at batch ``n`` (what each naive step costs, the draw aside)."""
    x = torch.zeros(n, *model.event_shape, dtype=torch.long)
    with torch.no_grad():
        model(x)  # warm-up
        t0 = time.perf_counter()
        model(x)
    return time.perf_counter() - t0


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--models", nargs="+", default=["igpt", "sparse_transformer"])
    ap.add_argument("--batches", nargs="+", type=int, default=[1, 8, 64])
    ap.add_argument("--size", default="small")
    ap.add_argument("--shape", nargs=3, type=int, default=[1, 28, 28])
    ap.add_argument("--fallback", nargs=3, type=int, default=[1, 14, 14],
                    help="image used for rows whose naive run would exceed --budget")
    ap.add_argument("--levels", type=int, default=2)
    ap.add_argument("--budget", type=float, default=180.0, help="longest naive run allowed, seconds")
    ap.add_argument("--threads", type=int, default=torch.get_num_threads())
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    torch.set_num_threads(args.threads)
    machine = f"{platform.machine()} CPU x{torch.get_num_threads()} threads"
    print(f"machine: {platform.platform()} | {platform.processor() or platform.machine()} | "
          f"torch {torch.__version__} | {torch.get_num_threads()} intra-op thread(s) | CPU, float32")
    print(f"preset '{args.size}', {args.levels} levels; naive budget {args.budget:.0f} s per run")
    header = (f"{'model':18s} {'params':>8s} {'image':>8s} {'batch':>5s} {'naive s':>9s} {'cached s':>9s} "
              f"{'ratio':>7s}  {'machine':24s} note")
    print(header)
    print("-" * len(header))
    for name in args.models:
        for n in args.batches:
            shape = tuple(args.shape)
            torch.manual_seed(args.seed)
            model = build(name, shape=shape, levels=args.levels, size=args.size).eval()
            D = torch.Size(shape).numel()
            predicted = one_forward(model, n) * D
            note = ""
            if predicted > args.budget:
                note = f"naive at {'x'.join(map(str, shape[1:]))} predicted {predicted:.0f} s > budget; "
                shape = tuple(args.fallback)
                torch.manual_seed(args.seed)
                model = build(name, shape=shape, levels=args.levels, size=args.size).eval()
            model.sample(1, generator=torch.Generator().manual_seed(0))  # warm-up
            t_fast, fast = timed(lambda: model.sample(n, generator=torch.Generator().manual_seed(args.seed)))
            t_naive, naive = timed(lambda: model.sample(
                n, generator=torch.Generator().manual_seed(args.seed), cached=False))
            note += f"identical samples: {torch.equal(naive, fast)}"
            image = "x".join(map(str, shape[1:])) + ("" if shape[0] == 1 else f"x{shape[0]}")
            print(f"{name:18s} {model.num_parameters():8d} {image:>8s} {n:5d} {t_naive:9.2f} {t_fast:9.2f} "
                  f"{t_naive / t_fast:6.1f}x  {machine:24s} {note}", flush=True)


if __name__ == "__main__":
    main()
