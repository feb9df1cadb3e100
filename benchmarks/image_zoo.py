"""Train every image model at one equal budget on the same real digits and tabulate the results.

    python -m benchmarks.image_zoo [--steps 1500] [--models made,pixelcnn] [--data mnist]

For each model: the image_zoo recipe (shared Trainer, EMA weights for eval) on the fixed 4,000 / 1,000
MNIST split (binarized), then test NLL in nats/image and bits/dim, parameters, training time and the
time to sample 16 images. Writes ``recipes/image_zoo/RESULTS.md`` and sample grids under
``recipes/image_zoo/samples/``; prints the table and the machine.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import platform
import shutil
import sys
from pathlib import Path

import torch

from arsound.image import MODELS

ROOT = Path(__file__).resolve().parents[1]
RECIPE = ROOT / "recipes" / "image_zoo"


def load_recipe():
    spec = importlib.util.spec_from_file_location("image_zoo_recipe", RECIPE / "config.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {torch.get_num_threads()} torch threads, torch {torch.__version__}"


def table(rows: list[dict]) -> str:
    head = "| model | params | test NLL (nats/image) | bits/dim | train (s) | sample 16 (s) |\n|---|---:|---:|---:|---:|---:|\n"
    return head + "".join(
        f"| {r['model']} | {r['params']:,} | {r['test_nll_nats']:.2f} | {r['test_bits_per_dim']:.4f} | "
        f"{r['train_s']:.0f} | {r['sample_s']:.1f} |\n" for r in sorted(rows, key=lambda r: r["test_nll_nats"]))


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated registry names")
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--batch", type=int, default=64)
    p.add_argument("--size", default="small")
    p.add_argument("--data", default="mnist")
    p.add_argument("--out", default="runs/image_zoo_bench")
    p.add_argument("--write", action="store_true", help="write RESULTS.md and sample grids into recipes/image_zoo/")
    args = p.parse_args(argv)
    recipe = load_recipe()
    rows = []
    for name in args.models.split(","):
        cfg = recipe.Config()
        cfg.model.name, cfg.model.size, cfg.data.name = name, args.size, args.data
        cfg.train.steps, cfg.train.batch_size = args.steps, args.batch
        cfg.train.eval_every = cfg.train.ckpt_every = max(args.steps // 4, 1)
        cfg.train.out_dir = f"{args.out}/{name}"
        cfg.samples = 16
        rows.append(recipe.main(cfg))
        print(table(rows), flush=True)
    text = (f"Budget: {args.steps} steps x batch {args.batch} per model, preset '{args.size}', "
            f"{args.data} (binarized), EMA weights. Machine: {machine()}.\n"
            f"Command: `python -m benchmarks.image_zoo {' '.join(argv if argv is not None else sys.argv[1:])}`\n\n" + table(rows))
    print(text)
    if args.write:
        (RECIPE / "samples").mkdir(exist_ok=True)
        for r in rows:
            shutil.copy(Path(args.out) / r["model"] / "samples.png", RECIPE / "samples" / f"{r['model']}.png")
        (RECIPE / "RESULTS.md").write_text(text)
        (RECIPE / "results.json").write_text(json.dumps(rows, indent=2) + "\n")
    return rows


if __name__ == "__main__":
    main()
