"""FVSBN: the fully visible sigmoid belief network.

Frey, "Graphical Models for Machine Learning and Digital Communication", MIT Press 1998; Gan, Henao,
Carlson & Carin, "Learning Deep Sigmoid Belief Networks with Data Augmentation", AISTATS 2015
(the FVSBN baseline, 97.45 nats on binarized MNIST). Every element is a logistic regression on all
elements generated before it::

    logits_d = b_d + sum_{j before d} W[d, j] f(x_j)

i.e. one linear map whose weight is strictly lower triangular in generation order
(:func:`~arsound.core.layers.made_direct_mask`). For ``K > 2`` levels each element has ``K`` logits
(multinomial logistic regression) and, by default, each earlier element enters as its one-hot code
without level 0 (``K - 1`` indicator features, see :func:`element_features`): for ``K = 2`` that is
the binary ``x_j`` itself, so binary FVSBN is the special case, and the conditional may depend on a
level in any way, not only linearly in its gray value. ``one_hot=False`` feeds the scaled level
instead (one feature per element, ``K - 1`` times fewer weights).

The order is raster over pixels with channels inside a pixel (R -> G -> B), as every image model here.

:class:`IncrementalSampler` (also NADE's) is the cached step, ``O(D x state)`` per element instead of one
full forward pass: the logits of every later element are updated as each element is drawn.

Letters: ``B`` batch, ``D = C*H*W`` elements, ``F`` input features per element, ``P`` parameters per
element.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..core.layers import MaskedLinear, made_direct_mask
from ..core.model import Canvas
from .common import ImageModel, channel_minor_order, image_head, scale_input

__all__ = ["FVSBNConfig", "FVSBN", "IncrementalSampler", "element_features", "num_features"]


def num_features(levels: int, one_hot: bool) -> int:
    """Input features per element: ``K - 1`` indicators, or the one scaled level."""
    return levels - 1 if one_hot else 1


def element_features(x: Tensor, levels: int, one_hot: bool, dtype=torch.float32) -> Tensor:
    """Levels ``x[...]`` in ``[0, K)`` -> float features ``[..., F]``.

    one_hot: ``[x == 1, ..., x == K-1]`` (level 0 is the all-zero code; ``K = 2`` gives ``x`` itself);
    otherwise the level scaled to [-1, 1] (:func:`~arsound.image.common.scale_input`).
    """
    if one_hot:
        return F.one_hot(x.long(), levels)[..., 1:].to(dtype)
    return scale_input(x, levels, dtype).unsqueeze(-1)


class IncrementalSampler(ImageModel):
    """A cached step by an incremental pass: a state holds what the drawn elements contribute so far.

    Subclasses implement ``_start(n) -> state``, ``_params_at(state, pos) -> params[n, P]`` (the
    conditional of element ``pos`` given the elements drawn so far) and ``_update(state, pos,
    feats[n, F]) -> state`` (add element ``pos``'s contribution).
    """

    def _start(self, n: int):
        raise NotImplementedError

    def _params_at(self, state, pos: int) -> Tensor:
        raise NotImplementedError

    def _update(self, state, pos: int, feats: Tensor):
        raise NotImplementedError

    @contextlib.contextmanager
    def steps(self, canvas: Canvas, **cond):
        K, one_hot = self.config.levels, self.config.one_hot
        order = canvas.order
        state = self._start(canvas.n)

        def step(s: int, prev: Tensor | None) -> Tensor:
            nonlocal state
            if s:  # add the element just drawn
                state = self._update(state, order[s - 1], element_features(prev, K, one_hot))
            return self._params_at(state, order[s])  # (n, P)

        yield step


@dataclass
class FVSBNConfig:
    shape: tuple[int, int, int] = (1, 28, 28)  # (C, H, W)
    levels: int = 2                            # K gray levels; 2 = binary
    one_hot: bool = True                       # earlier elements enter one-hot (K-1 features) or scaled (1)


class FVSBN(IncrementalSampler):
    """Logistic regression per element on all earlier elements: ``forward(x[B, C, H, W]) -> [B, C, H, W, P]``.

    Parameters: ``D*P x D*F`` weights (about half of them masked to zero) and ``D*P`` biases.
    """

    config_class = FVSBNConfig
    # no hidden layers: the model's size is fixed by the data (D^2 P F weights); presets are identical
    presets = {"debug": {}, "small": {}, "base": {}}

    def __init__(self, config: FVSBNConfig) -> None:
        super().__init__(config)
        self.head = image_head(config.levels)
        D, P = math.prod(config.shape), self.head.num_params
        self.D, self.P, self.F = D, P, num_features(config.levels, config.one_hot)
        self.linear = MaskedLinear(D * self.F, D * P)  # outputs laid out (P, D), inputs (F, D)
        self.register_buffer("order", channel_minor_order(config.shape), persistent=False)
        self.linear.set_mask(made_direct_mask(D, self.order, out_mult=P).repeat(1, self.F))
        with torch.no_grad():  # start from the independent model (all elements uniform)
            self.linear.weight.zero_()
            self.linear.bias.zero_()

    def generation_order(self) -> Tensor:
        return self.order.cpu()

    def features(self, x: Tensor) -> Tensor:
        """``x[B, C, H, W]`` -> flat input features ``[B, F*D]`` laid out (F, D)."""
        K, one_hot = self.config.levels, self.config.one_hot
        f = element_features(x.flatten(1), K, one_hot, self.linear.weight.dtype)  # (B, D, F)
        return f.transpose(1, 2).flatten(1)

    def forward(self, x: Tensor) -> Tensor:
        """``x[B, C, H, W]`` levels -> ``params[B, C, H, W, P]``."""
        out = self.linear(self.features(x))  # (B, P*D)
        return out.view(x.shape[0], self.P, *self.event_shape).movedim(1, -1)

    # ---- incremental sampling: the state is every element's logits given the elements drawn so far
    def _start(self, n: int) -> tuple[Tensor, Tensor]:
        w = (self.linear.weight * self.linear.mask).view(self.P * self.D, self.F, self.D)  # (P*D, F, D)
        return self.linear.bias.expand(n, -1).clone(), w  # logits (n, P*D), masked weight

    def _params_at(self, state, pos: int) -> Tensor:
        return state[0].view(-1, self.P, self.D)[:, :, pos]  # (n, P)

    def _update(self, state, pos: int, feats: Tensor):
        logits, w = state
        return logits + feats.to(w.dtype) @ w[:, :, pos].T, w  # add element pos's column: (n, F) @ (F, P*D)
