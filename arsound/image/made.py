"""MADE: Masked Autoencoder for Distribution Estimation (Germain et al., ICML 2015).

An MLP whose weight masks make output ``d`` depend only on inputs that precede ``d`` in an ordering.
One pass gives every conditional ``p(x_d | x_<d)``; sampling needs one pass per element.

Several masks (``num_masks > 1``) give order-agnostic, connectivity-agnostic training: each training
step uses the next mask set, and at test time the model is the *mixture* of the mask-specific models,
``log p(x) = log mean_m p_m(x)`` (log-mean-exp of likelihoods, never averaged logits, which would not
be a normalized model).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..core.layers import MaskedLinear, made_masks
from .common import ImageModel, image_head


@dataclass
class MADEConfig:
    shape: tuple[int, int, int] = (1, 28, 28)  # (C, H, W)
    levels: int = 2                            # K gray levels; 2 = binary
    hidden: tuple[int, ...] = (500,)
    num_masks: int = 1                         # > 1: order-agnostic training, test-time mask ensemble
    natural_order: bool = True                 # mask 0 uses raster order; the others random orders
    seed: int = 0                              # seeds the orderings and hidden-unit degrees


class MADE(ImageModel):
    config_class = MADEConfig
    # "small": one random order (seeded), chosen on the validation slice over raster order and 4 / 8 masks
    # (recipes/image_zoo/VARIANTS.md: 94.4 vs 120.1 nats at 800 x 32)
    presets = {"debug": dict(hidden=(32,)), "small": dict(hidden=(500,), natural_order=False),
               "base": dict(hidden=(1000, 1000), num_masks=8)}

    def __init__(self, config: MADEConfig) -> None:
        super().__init__(config)
        self.head = image_head(config.levels)
        D = math.prod(config.shape)
        self.D, P = D, self.head.num_params
        sizes = [D, *config.hidden, D * P]
        self.layers = nn.ModuleList(MaskedLinear(i, o) for i, o in zip(sizes[:-1], sizes[1:]))
        g = torch.Generator().manual_seed(config.seed)
        orders, masks = [], []
        for m in range(config.num_masks):
            order = torch.arange(D) if (m == 0 and config.natural_order) else torch.randperm(D, generator=g)
            orders.append(order)
            masks.append(made_masks(D, list(config.hidden), order, out_mult=P, seed=config.seed + m))
        self.register_buffer("orders", torch.stack(orders), persistent=False)  # (M, D)
        for i in range(len(self.layers)):  # per layer, the masks of every set: (M, out, in)
            self.register_buffer(f"masks_{i}", torch.stack([ms[i] for ms in masks]), persistent=False)
        # which mask set is in use: a persistent buffer, so checkpoints and exact resume keep it
        self.register_buffer("mask_index", torch.zeros((), dtype=torch.long))
        self._applied = -1  # the mask set currently copied into the layers

    def set_mask(self, m: int) -> None:
        """Use mask set ``m`` (and its ordering) for the next passes."""
        self.mask_index.fill_(m)
        self._apply_masks()

    def _apply_masks(self) -> None:
        m = int(self.mask_index)
        if m != self._applied:  # also after load_state_dict restored another mask_index
            for i, layer in enumerate(self.layers):
                layer.set_mask(getattr(self, f"masks_{i}")[m])
            self._applied = m

    def generation_order(self) -> Tensor:
        return self.orders[int(self.mask_index)].cpu()

    def forward(self, x: Tensor) -> Tensor:
        """``x[B, C, H, W]`` levels -> params ``[B, C, H, W, P]`` under the current mask set."""
        self._apply_masks()
        h = self.scaled(x).flatten(1)
        for i, layer in enumerate(self.layers):
            h = layer(h)
            if i < len(self.layers) - 1:
                h = torch.relu(h)
        return h.view(x.shape[0], self.head.num_params, *self.event_shape).movedim(1, -1)

    def log_prob(self, x: Tensor, reduce: bool = True, **cond) -> Tensor:
        """With several masks and ``reduce=True`` in eval mode: the log-mean-exp mask ensemble."""
        if not reduce or self.training or self.config.num_masks == 1:
            return super().log_prob(x, reduce)
        current = int(self.mask_index)
        lps = []
        for m in range(self.config.num_masks):
            self.set_mask(m)
            lps.append(super().log_prob(x))
        self.set_mask(current)
        return torch.logsumexp(torch.stack(lps), 0) - math.log(self.config.num_masks)

    def loss(self, batch):
        if self.training and self.config.num_masks > 1:  # next mask set each training step
            self.set_mask((int(self.mask_index) + 1) % self.config.num_masks)
        return super().loss(batch)
