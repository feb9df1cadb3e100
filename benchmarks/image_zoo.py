"""Train every image model at one equal budget on the same real digits and tabulate the results.

    python -m benchmarks.image_zoo --steps 800 --batch 32 --write            # the table in recipes/image_zoo/RESULTS.md
    python -m benchmarks.image_zoo --models fvsbn,nade,made --lr-sweep 1e-3,3e-3,1e-2,3e-2 --write

For each model: the image_zoo recipe (shared Trainer, EMA weights for eval) on the fixed 4,000 / 1,000
MNIST split (binarized), then test NLL in nats/image and bits/dim, parameters, learning rate, training
time and the time to sample 16 images. The budget (steps x batch) is equal for every model; the learning
rate is each model's entry in ``LR``, picked by ``--lr-sweep`` on the validation slice (every 10th
training image), never on the test split. ``--write`` puts ``RESULTS.md``, ``results.json``, sample
grids and learning curves (validation NLL against step, EMA weights) into ``recipes/image_zoo/``.
"""
from __future__ import annotations

import argparse
import csv
import json
import math
import shutil
import statistics
import sys
from pathlib import Path

import torch

from arsound.cli.train import load_recipe
from arsound.core.checkpoint import hardware
from arsound.core.files import atomic_dir, atomic_write, shipped_dir, write_json, write_text
from arsound.core.train import TrainingError
from arsound.image import MODELS

RECIPE = shipped_dir("recipes") / "image_zoo"
# Learning rates from `--lr-sweep 1e-3,3e-3,1e-2,3e-2` at 800 x 32 (recipes/image_zoo/LR_SWEEP.md): the
# shallow models (one hidden layer at most) want a larger step than the deep ones; every other model
# keeps Adam's usual 1e-3.
LR = {"fvsbn": 3e-2, "nade": 3e-2, "made": 1e-2}
DEFAULT_LR = 1e-3


def _mean_std(values: list[float], fmt: str) -> str:
    if len(values) == 1:
        return format(values[0], fmt)
    return f"{format(statistics.mean(values), fmt)} ± {format(statistics.stdev(values), fmt)}"


def table(rows: list[dict]) -> str:
    """One line per model: test NLL and bits/dim as mean ± std over the seeds run (rows with a ``seed``)."""
    models = {}
    for r in rows:
        models.setdefault(r["model"], []).append(r)
    seeds = max(len(v) for v in models.values())
    what = f"mean ± std over {seeds} seeds" if seeds > 1 else "one seed"
    head = (f"| model | params | lr | test NLL (nats/image, {what}) | bits/dim | train (s) | sample 16 (s) |\n"
            "|---|---:|---:|---:|---:|---:|---:|\n")
    lines = []
    for name, rs in sorted(models.items(), key=lambda kv: statistics.mean(r["test_nll_nats"] for r in kv[1])):
        lines.append(f"| {name} | {rs[0]['params']:,} | {rs[0]['lr']:g} | "
                     f"{_mean_std([r['test_nll_nats'] for r in rs], '.2f')} | "
                     f"{_mean_std([r['test_bits_per_dim'] for r in rs], '.4f')} | "
                     f"{statistics.mean(r['train_s'] for r in rs):.0f} | {statistics.mean(r['sample_s'] for r in rs):.1f} |\n")
    return head + "".join(lines)


def sweep_table(rows: list[dict]) -> str:
    lrs = sorted({r["lr"] for r in rows})
    head = "| model | " + " | ".join(f"lr {lr:g}" for lr in lrs) + " |\n|---|" + "---:|" * len(lrs) + "\n"
    out = head
    for name in dict.fromkeys(r["model"] for r in rows):
        by_lr = {r["lr"]: r["valid_nll_nats"] for r in rows if r["model"] == name}
        best = min(by_lr, key=by_lr.get)
        out += f"| {name} | " + " | ".join(
            ("diverged" if math.isinf(by_lr[lr]) else f"**{by_lr[lr]:.2f}**" if lr == best else f"{by_lr[lr]:.2f}")
            if lr in by_lr else "" for lr in lrs) + " |\n"
    return out


def valid_curve(run_dir: Path) -> tuple[list[int], list[float]]:
    """(steps, validation NLL) from a run's ``log.csv``."""
    with open(run_dir / "log.csv", newline="") as f:
        rows = [r for r in csv.DictReader(f) if r["split"] == "valid"]
    return [int(r["step"]) for r in rows], [float(r["nll"]) for r in rows]


def plot_curves(runs: dict[str, Path], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    lows, finals = [], []
    for i, (name, run_dir) in enumerate(runs.items()):
        steps, nll = valid_curve(run_dir)
        ax.plot(steps, nll, marker="o", ms=3, label=name, color=f"C{i % 10}", ls="-" if i < 10 else "--")
        lows.append(min(nll))
        finals.append(nll[-1])
    # linear scale; the first evals of slow starters can sit above the top, the end of every curve is shown
    ax.set_ylim(0.95 * min(lows), 1.3 * max(finals))
    ax.set(xlabel="training step", ylabel="validation NLL (nats/image, EMA weights)", title=title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, ncol=2)
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, dpi=110, format="png")
    plt.close(fig)


def ship(names: list[str], out: Path, args, dest: Path | None = None) -> None:
    """Copy the models an earlier run trained (``out/NAME/model``, figures in ``out/NAME/results.json``) to
    ``dest/NAME-DATA/`` and register them in ``dest/registry.json``."""
    dest = dest or shipped_dir("checkpoints")
    registry_path = dest / "registry.json"
    registry = json.loads(registry_path.read_text())
    for name in names:
        if not (out / name / "results.json").is_file():
            raise SystemExit(f"image_zoo: no finished run of {name} in {out / name}; train it first (without --ship)")
        r = json.loads((out / name / "results.json").read_text())
        ckpt = f"{name.replace('_', '-')}-{args.data}"
        dst = dest / ckpt
        with atomic_dir(dst) as tmp:
            shutil.copytree(out / name / "model", tmp, dirs_exist_ok=True)
            card = (tmp / "README.md").read_text().replace("# model\n", f"# {ckpt}\n", 1)
            card = card.replace('arsound.load("path/to/model")', f'arsound.load("{ckpt}")', 1)
            card += (f"\n## Use\n\n```bash\narsound sample --model {ckpt} --n 64 --out samples.png\n"
                     f"arsound eval --anomaly --model {ckpt} --out runs/eval_{ckpt}\n```\n\n"
                     f"Trained by `python -m benchmarks.image_zoo --steps {args.steps} --batch {args.batch}` "
                     f"(recipes/image_zoo/RESULTS.md).\n")
            (tmp / "README.md").write_text(card)
        registry[ckpt] = {"path": ckpt, "description": (
            f"{name} ({r['params']:,} params) on binarized {args.data} digits, {args.steps} steps x {args.batch}: "
            f"test NLL {r['test_nll_nats']:.2f} nats/image; arsound sample --model {ckpt}")}
        print(f"shipped {dst}")
    write_json(registry_path, registry)


def run(recipe, name: str, lr: float, args, out_dir: str, samples: int, seed: int = 0, options: str = "") -> dict:
    cfg = recipe.Config()
    cfg.model.name, cfg.model.size, cfg.model.options, cfg.data.name = name, args.size, options, args.data
    cfg.train.steps, cfg.train.batch_size, cfg.train.lr, cfg.train.seed = args.steps, args.batch, lr, seed
    cfg.train.eval_every = max(args.steps // 8, 1)
    cfg.train.ckpt_every = max(args.steps // 4, 1)
    cfg.train.out_dir = out_dir
    cfg.samples = samples
    return recipe.main(cfg)


def run_dir(out: str, name: str, seed: int) -> Path:
    """Seed 0 trains into ``OUT/NAME`` (what ``--ship`` copies), other seeds into ``OUT/NAME_seedS``."""
    return Path(out) / (name if seed == 0 else f"{name}_seed{seed}")


def variants_table(rows: list[dict]) -> str:
    out = "| model | options | validation NLL (nats/image) | test NLL |\n|---|---|---:|---:|\n"
    by = {}
    for r in rows:
        by.setdefault((r["model"], r["options"]), []).append(r)
    best = min(by, key=lambda k: statistics.mean(r["valid_nll_nats"] for r in by[k]))
    for key, rs in by.items():
        v = _mean_std([r["valid_nll_nats"] for r in rs], ".2f")
        out += (f"| {key[0]} | {key[1] or '(preset)'} | {'**' + v + '**' if key == best else v} | "
                f"{_mean_std([r['test_nll_nats'] for r in rs], '.2f')} |\n")
    return out


def main(argv=None) -> list[dict]:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--models", default=",".join(MODELS), help="comma-separated registry names")
    p.add_argument("--steps", type=int, default=800)
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--size", default="small")
    p.add_argument("--data", default="mnist")
    p.add_argument("--lr-sweep", help="comma-separated learning rates: tabulate validation NLL per model and lr")
    p.add_argument("--threads", type=int, default=1, help="torch threads (default 1)")
    p.add_argument("--out", default="runs/image_zoo_bench")
    p.add_argument("--write", action="store_true", help="write the tables, sample grids and curves into recipes/image_zoo/")
    p.add_argument("--ship", default="", help="do not train: copy these models (comma-separated), trained by an "
                   "earlier run in --out, to checkpoints/ with a model card and a registry entry")
    p.add_argument("--tag", default="", help="with --write: suffix the written files (RESULTS_TAG.md, ...) so they "
                   "sit beside the main table")
    p.add_argument("--seeds", default="0", help="comma-separated training seeds (initial weights and data order); "
                   "the table gives mean ± std over them")
    p.add_argument("--collect", action="store_true", help="do not train: tabulate the runs an earlier invocation "
                   "(or several in parallel, each with its --models) left in --out")
    p.add_argument("--variants", help="semicolon-separated config options to compare on the validation slice, "
                   "e.g. 'natural_order=true;natural_order=false,num_masks=8' (with --seeds)")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    names = args.models.split(",")
    unknown = [n for n in names if n not in MODELS]
    if unknown:
        p.error(f"unknown models {unknown}; known: {', '.join(MODELS)}")
    if args.ship:
        return ship(args.ship.split(","), Path(args.out), args)
    recipe = load_recipe("image_zoo")
    seeds = [int(v) for v in args.seeds.split(",")]
    command = f"`python -m benchmarks.image_zoo {' '.join(argv if argv is not None else sys.argv[1:])}`"
    budget = (f"Budget: {args.steps} steps x batch {args.batch} per model, preset '{args.size}', {args.data} "
              f"(binarized), EMA weights. Machine: {hardware()}.\nCommand: {command}\n\n")

    if args.lr_sweep:
        rows = []
        for name in names:
            for lr in (float(v) for v in args.lr_sweep.split(",")):
                try:
                    rows.append(run(recipe, name, lr, args, f"{args.out}/sweep/{name}_lr{lr:g}", samples=4))
                except TrainingError as e:  # a diverging learning rate is a result of the sweep, not a crash
                    print(f"{name} at lr {lr:g}: {e}", flush=True)
                    rows.append({"model": name, "lr": lr, "valid_nll_nats": math.inf})
                print(sweep_table(rows), flush=True)
        text = budget + "Validation NLL (nats/image, 400 images of the training split), best per model in bold:\n\n" + sweep_table(rows)
        print(text)
        if args.write:
            write_text(RECIPE / "LR_SWEEP.md", text)
        return rows

    if args.variants:
        rows = []
        for name in names:
            for options in args.variants.split(";"):
                for seed in seeds:
                    rows.append(run(recipe, name, LR.get(name, DEFAULT_LR), args,
                                    f"{args.out}/variants/{name}_{options or 'preset'}_seed{seed}", 4, seed, options))
                print(variants_table(rows), flush=True)
        text = (budget + f"Validation NLL (nats/image, 400 images of the training split; mean ± std over seeds "
                f"{args.seeds}), best in bold; the test NLL only for the record:\n\n" + variants_table(rows))
        print(text)
        if args.write:
            write_text(RECIPE / f"VARIANTS{'_' + args.tag if args.tag else ''}.md", text)
        return rows

    rows = []
    for name in names:
        for seed in seeds:
            folder = run_dir(args.out, name, seed)
            if args.collect:
                rows.append({**json.loads((folder / "results.json").read_text()), "lr": LR.get(name, DEFAULT_LR)})
                continue
            rows.append(run(recipe, name, LR.get(name, DEFAULT_LR), args, str(folder), 16, seed))
            print(table(rows), flush=True)
    text = budget + table(rows)
    print(text)
    curves = Path(args.out) / "curves.png"
    plot_curves({name: run_dir(args.out, name, seeds[0]) for name in names}, curves,
                f"{args.steps} steps x {args.batch}, {args.data}, seed {seeds[0]}")
    print(f"learning curves: {curves}")
    if args.write:
        tag = f"_{args.tag}" if args.tag else ""
        (RECIPE / "samples").mkdir(exist_ok=True)
        for name in names:
            shutil.copy(run_dir(args.out, name, seeds[0]) / "samples.png", RECIPE / "samples" / f"{name}{tag}.png")
        shutil.copy(curves, RECIPE / f"curves{tag}.png")
        write_text(RECIPE / f"RESULTS{tag}.md", text)
        write_json(RECIPE / f"results{tag}.json", rows)
    return rows


if __name__ == "__main__":
    main()
