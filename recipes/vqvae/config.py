"""Hierarchical VQ-VAE tokenizer recipe (Jukebox style: 3 levels, each with its own encoder, EMA codebook
and decoder), on the rendered Bach chorales by default. Trained by the shared Trainer (resume, EMA, eval);
every eval reports codebook health per level, the end a reconstruction table per level on the test split
(``train.py``).

    arsound train vqvae --data.root=/path/to/data_cache --out runs/vqvae_chorales
    arsound train vqvae --debug
    arsound train vqvae --model.quantizer.num_codes=512 --train.steps=6000
"""
from __future__ import annotations

from dataclasses import dataclass, field

from arsound.audio.vqvae import VQVAEConfig
from arsound.core.train import TrainConfig


@dataclass
class VQData:
    name: str = "chorales"
    root: str = "data_cache"
    segment: int = 8192                # training crop in samples (a multiple of the largest hop)


@dataclass
class VQEval:
    batches: int = 0                   # eval batches for codebook health (0: the whole valid set)
    final_split: str = "test"
    seconds: float = 20.0              # per held-out file in the final table (the middle part)
    files: int = 0                     # held-out files in the final table (0: all)
    examples: int = 2                  # example WAVs written per level


@dataclass
class Config:
    model: VQVAEConfig = field(default_factory=lambda: VQVAEConfig.from_preset("small"))
    data: VQData = field(default_factory=VQData)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=6000, batch_size=8, lr=1e-3, warmup_steps=100, min_lr_ratio=0.1, grad_clip=1.0, eval_every=500,
        eval_batches=20, ckpt_every=50, ema_decay=0.99, log_every=25, amp="off", out_dir="runs/vqvae"))
    eval: VQEval = field(default_factory=lambda: VQEval(batches=40))

    @classmethod
    def debug(cls) -> "Config":
        cfg = cls(model=VQVAEConfig.from_preset("debug"), data=VQData(segment=1024),
                  eval=VQEval(batches=1, seconds=0.2, files=1, examples=1))
        cfg.train = TrainConfig(steps=1, batch_size=2, lr=1e-3, eval_every=1, eval_batches=1, ckpt_every=1,
                                ema_decay=0.0, amp="off", out_dir="runs/vqvae_debug", progress=False)
        return cfg

