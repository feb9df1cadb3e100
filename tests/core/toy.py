"""A tiny ARModel for Trainer and checkpoint tests, independent of core.distributions / core.layers.

``Toy`` is a fully visible sigmoid belief net (FVSBN) over ``dim`` binary elements: the logit of
``x_d`` is a logistic regression on ``x_<d`` (a strictly-lower-triangular masked linear layer).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from arsound.core.model import ARModel


@dataclass
class ToyConfig:
    dim: int = 6
    dropout: float = 0.0   # on the inputs: makes training consume the torch RNG
    nan_after: int = 0     # > 0: the training loss is NaN from loss() call nan_after + 1 on


class Toy(ARModel):
    config_class = ToyConfig

    def __init__(self, config: ToyConfig) -> None:
        super().__init__(config)
        D = config.dim
        self.weight = nn.Parameter(0.1 * torch.randn(D, D))
        self.bias = nn.Parameter(torch.zeros(D))
        self.register_buffer("mask", torch.tril(torch.ones(D, D), -1), persistent=False)
        self.calls = 0

    @property
    def event_shape(self):
        return (self.config.dim,)

    def forward(self, x: Tensor) -> Tensor:
        h = F.dropout(x.float(), self.config.dropout, self.training)
        return F.linear(h, self.weight * self.mask, self.bias)  # (B, D) logits

    def log_prob(self, x: Tensor, reduce: bool = True) -> Tensor:
        lp = -F.binary_cross_entropy_with_logits(self(x), x.float(), reduction="none")  # (B, D)
        return lp.sum(1) if reduce else lp

    def loss(self, batch):
        loss, metrics = super().loss(batch)
        if self.training:
            self.calls += 1
            if self.config.nan_after and self.calls > self.config.nan_after:
                loss = loss * float("nan")
        return loss, metrics


@dataclass
class TiedConfig:
    toy: ToyConfig = field(default_factory=ToyConfig)
    hidden: tuple[int, ...] = (5,)


class TiedToy(ARModel):
    """Nested config dataclass, a tuple field and two names for one weight (tied/shared tensors)."""
    config_class = TiedConfig

    def __init__(self, config: TiedConfig) -> None:
        super().__init__(config)
        D, H = config.toy.dim, config.hidden[0]
        self.encode = nn.Linear(D, H)
        self.decode = nn.Linear(H, D)
        self.again = self.encode  # state_dict: encode.weight and again.weight share storage

    def forward(self, x: Tensor) -> Tensor:
        return self.decode(torch.tanh(self.again(x.float())))  # (B, D)


def toy_data(n: int, dim: int = 6, seed: int = 0) -> Tensor:
    """``n`` binary vectors from one fixed random FVSBN (so there is something to learn); ``seed`` picks
    the draws, not the distribution."""
    fixed = torch.Generator().manual_seed(1234)
    w = torch.tril(torch.randn(dim, dim, generator=fixed) * 3, -1)
    b = torch.randn(dim, generator=fixed)
    g = torch.Generator().manual_seed(seed)
    x = torch.zeros(n, dim)
    for d in range(dim):
        p = torch.sigmoid(x @ w[d] + b[d])
        x[:, d] = (torch.rand(n, generator=g) < p).float()
    return x.long()


def toy_trainer(out_dir, steps: int = 40, model_kw: dict | None = None, resume=None, **train_kw):
    """The Trainer set-up shared by in-process and subprocess (kill / resume / DDP) tests: every
    feature on (warm-up + cosine, weight decay, clipping, EMA, dropout, eval, several epochs)."""
    from arsound.core.train import Trainer, TrainConfig

    torch.manual_seed(0)
    model = Toy(ToyConfig(**{"dropout": 0.1, **(model_kw or {})}))
    cfg = TrainConfig(**{**dict(steps=steps, batch_size=8, lr=0.05, weight_decay=0.01, warmup_steps=5,
                                decay="cosine", min_lr_ratio=0.1, grad_clip=1.0, ema_decay=0.9, amp="off",
                                eval_every=10, ckpt_every=5, log_every=3, seed=3, device="cpu",
                                out_dir=str(out_dir), progress=False), **train_kw})
    return Trainer(model, cfg, toy_data(50, seed=1), toy_data(20, seed=2), resume=resume)
