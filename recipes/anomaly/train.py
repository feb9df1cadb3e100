"""Train the anomaly recipe (``config.py``): the FGSM target, each density model (and its background
model), then the scores of every anomaly set."""
from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import torch

from arsound.core.train import Trainer, evaluate
from arsound.data.anomaly import digit_sets
from arsound.data.images import IMAGE_DATASETS, load_images
from arsound.image import MODELS, build
from arsound.image.anomaly import (PixelMarginal, corrupt, evaluate_anomaly, markdown_table, quantize, to_unit,
                                   train_classifier, write_outputs)

from .config import BACKGROUNDS, Config


class _Noised(torch.utils.data.Dataset):
    """Training images with a fresh ``rate`` fraction of pixels corrupted at every draw (Ren et al.'s
    perturbed inputs for the background model; uses the global torch RNG, which the Trainer seeds and
    saves)."""

    def __init__(self, x: torch.Tensor, rate: float, levels: int) -> None:
        self.x, self.rate, self.levels = x, rate, levels

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> torch.Tensor:
        return corrupt(self.x[i:i + 1], self.rate, None, self.levels)[0]


def _check(cfg: Config) -> list[str]:
    if cfg.background not in BACKGROUNDS:
        raise ValueError(f"background must be one of {BACKGROUNDS}, got '{cfg.background}'")
    if not 0 <= cfg.holdout <= 9:
        raise ValueError(f"holdout must be a digit class 0..9, got {cfg.holdout}")
    models = [m for m in cfg.models if m in MODELS]
    if not models:
        raise ValueError(f"none of models {cfg.models} is registered; choose from {sorted(MODELS)}")
    return models


def main(cfg: Config) -> dict:
    models = _check(cfg)
    skipped = sorted(set(cfg.models) - set(models))
    if skipped:
        print(f"skipping unregistered models {skipped}")
    out = Path(cfg.train.out_dir)
    name, levels, seed = cfg.data.name, cfg.data.levels, cfg.train.seed
    native = IMAGE_DATASETS[name][0]
    progress = cfg.train.progress

    # the FGSM target: trained on every class, cached under out_dir
    t0 = time.perf_counter()
    train = load_images(name, "train", native)
    classifier = train_classifier(quantize(to_unit(train.x, native), levels), train.y, levels,
                                  out / f"classifier_{name}_{levels}lv_s{cfg.classifier_steps}_seed{seed}",
                                  steps=cfg.classifier_steps, seed=seed, device=cfg.train.device, progress=progress)
    sets = digit_sets(name, levels, classifier, cfg.holdout, cfg.eps, cfg.noise_rates, seed, cfg.limit)
    classifier_s = time.perf_counter() - t0
    refs = {}
    if cfg.background in ("marginal", "both"):
        refs["marginal"] = PixelMarginal.fit(sets.train, levels)

    reports, runs = {}, {}
    card = {"data": f"{name} train split without class {cfg.holdout}, {levels} levels", "holdout_class": cfg.holdout}
    for m in models:
        t0 = time.perf_counter()
        model = build(m, shape=sets.train.shape[1:], levels=levels, size=cfg.size)
        settings = {"data": dataclasses.asdict(cfg.data), "holdout": cfg.holdout}
        trainer = Trainer(model, dataclasses.replace(cfg.train, out_dir=str(out / m)), sets.train, sets.valid,
                          card=card, settings=settings)
        trainer.fit()
        if not trainer.is_main:  # under torchrun only rank 0 scores and writes
            return {}
        density = trainer.eval_model
        model_refs = {k: v.to(trainer.device) for k, v in refs.items()}
        if cfg.background in ("noised", "both"):
            bg_cfg = dataclasses.replace(cfg.train, out_dir=str(out / f"{m}_background"))
            bg = Trainer(build(m, shape=sets.train.shape[1:], levels=levels, size=cfg.size), bg_cfg,
                         _Noised(sets.train, cfg.background_noise, levels), sets.valid,
                         settings={**settings, "background_noise": cfg.background_noise},
                         card={**card, "data": card["data"] + f", {cfg.background_noise:g} of pixels flipped "
                               "afresh at every draw (likelihood-ratio background)"})
            bg.fit()
            model_refs["noised"] = bg.eval_model
        train_s = time.perf_counter() - t0
        reports[m] = evaluate_anomaly(density, sets, model_refs, progress=progress)
        runs[m] = {"params": density.num_parameters(), "train_s": round(train_s, 1),
                   "score_s": round(time.perf_counter() - t0 - train_s, 1),
                   "test_nll_nats": evaluate(density, sets.clean.to(trainer.device))["nll"]}

    results = {"config": dataclasses.asdict(cfg), "sets": sets.info, "classifier_s": round(classifier_s, 1),
               "reference": {"marginal": "per-pixel independent categorical fit on the in-distribution training "
                             "images", "noised": f"same architecture trained on training images with "
                             f"{cfg.background_noise:g} of pixels flipped"}, "runs": runs}
    results = write_outputs(out, results, reports)
    print(markdown_table(reports), end="")
    print(f"classifier accuracy clean {sets.info['classifier_clean_acc']:.3f}, FGSM eps {cfg.eps:g}: "
          f"{sets.info['classifier_adv_acc']:.3f}; wrote {out / 'results.json'}, {out / 'table.md'}, "
          f"{out}/nll_<model>.png")
    return results
