"""``arsound <verb>``: a CLI of a few verbs (after descript-audio-codec's ``dac/__main__.py``).

    arsound train RECIPE [--debug] [--out DIR] [--seed N] [--device D] [--a.b=value ...]
    arsound sample --model NAME_OR_DIR [--n N] [--out FILE] [--seed N] [--device D]
    arsound sample --model WAVENET [--seconds S] [--speaker ID] [--cond mel.npy] --out out.wav
    arsound bench wavenet [--quick] [--device cpu]
    arsound vocode in.wav -o out.wav [--model NAME]   |   arsound vocode --mel mel.npy -o out.wav
    arsound encode in.wav -o codes.npz [--model NAME_OR_DIR]   |   arsound decode codes.npz -o out.wav [--level L]
    arsound data prepare NAME [--root DIR] [--limit N] [--force]
    arsound eval --anomaly --model DIR_OR_NAME [--holdout C] [--out DIR]

User errors (bad arguments, missing or corrupt files, a diverging run) print one line
``arsound: error: ...`` and exit non-zero; set ``ARSOUND_DEBUG=1`` for the traceback.
"""
from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from pathlib import Path

import torch

from .audio.vocoder import add_vocode_parser
from .audio.vqvae import add_decode_parser, add_encode_parser
from .audio.cli_helpers import add_audio_sample_args, add_bench_parser, cmd_sample_audio, is_audio_model
from .core.checkpoint import CheckpointError
from .core.config import apply_overrides
from .core.train import TrainingError
from .data.prepare import add_data_parser
from .image.eval_cli import add_eval_parser

USER_ERRORS = (ValueError, FileNotFoundError, CheckpointError, TrainingError)
RECIPES_DIR = Path(__file__).resolve().parents[1] / "recipes"


# ---- recipes ----------------------------------------------------------------------------------------
def load_recipe(name_or_path: str):
    """A recipe is a folder with ``config.py`` defining ``Config`` (with ``debug()``) and ``main(cfg)``."""
    path = Path(name_or_path)
    if not path.exists():
        path = RECIPES_DIR / name_or_path
    if path.is_dir():
        path = path / "config.py"
    if not path.is_file():
        known = sorted(p.parent.name for p in RECIPES_DIR.glob("*/config.py"))
        raise FileNotFoundError(f"no recipe '{name_or_path}' (looked for {path}); known recipes: {known}")
    spec = importlib.util.spec_from_file_location(f"arsound_recipe_{path.parent.name}", path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up while the file runs
    spec.loader.exec_module(module)
    for attr in ("Config", "main"):
        if not hasattr(module, attr):
            raise ValueError(f"recipe {path} defines no '{attr}'")
    return module


def cmd_train(args, extra: list[str]) -> int:
    recipe = load_recipe(args.recipe)
    cfg = recipe.Config.debug() if args.debug else recipe.Config()
    apply_overrides(cfg, extra)
    for flag, key in (("out", "out_dir"), ("seed", "seed"), ("device", "device")):
        if getattr(args, flag) is not None:
            setattr(cfg.train, key, getattr(args, flag))
    recipe.main(cfg)
    return 0


# ---- sampling ---------------------------------------------------------------------------------------
def cmd_sample(args, extra: list[str]) -> int:
    if extra:
        raise ValueError(f"unrecognized arguments: {' '.join(extra)}")
    from . import load

    if args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    model = load(args.model, device=args.device)
    if is_audio_model(model):
        return cmd_sample_audio(model, args)
    generator = torch.Generator(device=args.device).manual_seed(args.seed)
    x = model.sample(args.n, generator=generator, temperature=args.temperature, progress=True)
    out = Path(args.out)
    if len(model.event_shape) == 3:  # images (B, C, H, W)
        from .image.plot import save_grid

        save_grid(x, model.config.levels, out)
    else:
        raise ValueError(f"sampling {type(model).__name__} to a file is not supported yet")
    print(f"wrote {args.n} samples to {out}")
    return 0


# ---- entry point ------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="arsound", description="Autoregressive audio and image generation.")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")

    t = sub.add_parser("train", help="train a recipe", description="Train a recipe from recipes/ (a name or a path). "
                       "Any other --a.b=value overrides the recipe's config, e.g. --train.steps=500.")
    t.add_argument("recipe", help="recipe name (folder under recipes/) or path to its folder or config.py")
    t.add_argument("--debug", action="store_true", help="use the recipe's tiny debug config")
    t.add_argument("--out", help="output folder (overrides train.out_dir)")
    t.add_argument("--seed", type=int, help="random seed (overrides train.seed)")
    t.add_argument("--device", help="cpu, cuda, cuda:1 ... (overrides train.device)")
    t.set_defaults(func=cmd_train)

    s = sub.add_parser("sample", help="draw samples from a trained model",
                       description="Draw samples from a model folder or a registry name and write them to a file.")
    s.add_argument("--model", required=True, help="model folder (config.json + model.safetensors) or registry name")
    s.add_argument("--n", type=int, default=16, help="number of samples (default 16)")
    s.add_argument("--out", default="samples.png", help="output file (PNG grid for image models)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="cpu")
    s.add_argument("--temperature", type=float, default=1.0)
    add_audio_sample_args(s)
    s.set_defaults(func=cmd_sample)
    add_bench_parser(sub)

    add_data_parser(sub)
    add_eval_parser(sub)
    add_vocode_parser(sub)
    add_encode_parser(sub)
    add_decode_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    try:
        return args.func(args, extra)
    except USER_ERRORS as e:
        if os.environ.get("ARSOUND_DEBUG"):
            raise
        print(f"arsound {args.verb}: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("arsound: interrupted", file=sys.stderr)
        return 130
