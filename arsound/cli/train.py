"""``arsound train RECIPE [--preset P] [--debug] [--out DIR] [--seed N] [--device D] [--a.b=value ...]``.

A recipe is a folder of ``recipes/`` (shipped with arsound, :func:`~arsound.core.files.shipped_dir`) or any
folder given by path, holding ``config.py`` (a ``Config`` dataclass with ``Config.debug()``, optionally
``PRESETS = {name: () -> Config}``) and ``train.py`` (``main(cfg)``); its modules import each other
relatively (``from .config import Config``).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..core.config import apply_overrides
from ..core.device import resolve_device
from ..core.files import load_from_path, shipped_dir
from .common import output_folder


@dataclass
class Recipe:
    name: str
    folder: Path
    Config: type
    main: Callable
    presets: dict

    def config(self, preset: str | None = None, debug: bool = False):
        """The recipe's config: its default, a preset, or (``debug``) the tiny debug one of either."""
        if preset is not None and preset not in self.presets:
            raise ValueError(f"recipe '{self.name}' has no preset '{preset}'; "
                             + (f"choose from {sorted(self.presets)}" if self.presets else "it has none"))
        if debug:
            return self.Config.debug(preset) if preset is not None else self.Config.debug()
        return self.presets[preset]() if preset is not None else self.Config()


def load_recipe(name_or_path: str | Path) -> Recipe:
    """The recipe named ``name_or_path`` (a folder of the shipped ``recipes/``) or at that path."""
    path = Path(name_or_path)
    if path.is_file() and path.name == "config.py":
        path = path.parent
    if not path.is_dir():
        root = shipped_dir("recipes")
        path = root / str(name_or_path)
        if not (path / "config.py").is_file():
            known = sorted(p.parent.name for p in root.glob("*/config.py"))
            raise FileNotFoundError(f"no recipe '{name_or_path}' (looked in {root}); known recipes: {known}")
    package = load_from_path(path, f"arsound_recipe_{path.name}")
    try:
        config = importlib.import_module(f"{package.__name__}.config")
        train = importlib.import_module(f"{package.__name__}.train")
    except ModuleNotFoundError as e:
        raise FileNotFoundError(f"recipe {path} has no {e.name.rsplit('.', 1)[-1]}.py; a recipe folder holds "
                                "config.py (Config) and train.py (main)") from None
    for module, attr in ((config, "Config"), (train, "main")):
        if not hasattr(module, attr):
            raise ValueError(f"recipe {path}: {Path(module.__file__).name} defines no '{attr}'")
    return Recipe(path.name, path, config.Config, train.main, dict(getattr(config, "PRESETS", {})))


def cmd_train(args, extra: list[str]) -> int:
    recipe = load_recipe(args.recipe)
    cfg = recipe.config(args.preset, args.debug)
    apply_overrides(cfg, extra)
    for flag, key in (("out", "out_dir"), ("seed", "seed"), ("device", "device")):
        if getattr(args, flag) is not None:
            setattr(cfg.train, key, getattr(args, flag))
    output_folder(cfg.train.out_dir)
    resolve_device(cfg.train.device)
    recipe.main(cfg)
    return 0


def add_parser(subparsers) -> None:
    t = subparsers.add_parser("train", help="train a recipe", description="Train a recipe from recipes/ (a name or "
                              "a path). Any other --a.b=value overrides the recipe's config, e.g. --train.steps=500.")
    t.add_argument("recipe", help="recipe name (folder under recipes/) or path to a recipe folder (or its config.py)")
    t.add_argument("--preset", help="one of the recipe's named configs (e.g. vocoder: mulaw, mol)")
    t.add_argument("--debug", action="store_true", help="use the recipe's tiny debug config")
    t.add_argument("--out", help="output folder (overrides train.out_dir)")
    t.add_argument("--seed", type=int, help="random seed (overrides train.seed)")
    t.add_argument("--device", help="cpu, cuda, cuda:1 ... (overrides train.device)")
    t.set_defaults(func=cmd_train)
