"""NADE: the Neural Autoregressive Distribution Estimator.

Larochelle & Murray, "The Neural Autoregressive Distribution Estimator", AISTATS 2011; categorical
outputs as in Uria, Côté, Gregor, Murray & Larochelle, "Neural Autoregressive Distribution
Estimation", JMLR 2016 (and DocNADE's softmax outputs). With ``order`` the generation order and
``f(x_j)`` the features of element ``j``::

    a_i = c + sum_{k < i} W[:, order[k]] f(x_order[k])       # (H,)  shared ("tied") input weights
    h_i = sigmoid(a_i)
    params_i = b[order[i]] + V[order[i]] h_i                 # (P,)  logit (K = 2) or K logits

Because ``a_{i+1} = a_i + W[:, order[i]] f(x_order[i])``, all ``D`` hidden vectors cost one exclusive
cumulative sum, ``O(D H)`` per example, instead of ``D`` separate ``O(D H)`` matrix products; sampling
uses the same recursion as its cached step (:class:`~arsound.image.fvsbn.IncrementalSampler`), ``O(D H)`` per image.

Input features per element are those of FVSBN (:func:`~arsound.image.fvsbn.element_features`): the
``K - 1`` indicators of the level by default (the binary ``x`` itself for ``K = 2``), or the scaled
level with ``one_hot=False``. The order is raster over pixels, channels inside a pixel.

Letters: ``B`` batch, ``D = C*H*W`` elements, ``H`` hidden units, ``F`` features, ``P`` parameters.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .common import image_head
from .common import channel_minor_order
from .fvsbn import IncrementalSampler, element_features, num_features

__all__ = ["NADEConfig", "NADE"]


@dataclass
class NADEConfig:
    shape: tuple[int, int, int] = (1, 28, 28)  # (C, H, W)
    levels: int = 2                            # K gray levels; 2 = binary
    hidden: int = 500                          # H hidden units shared by all conditionals
    one_hot: bool = True                       # earlier elements enter one-hot (K-1 features) or scaled (1)


def _contract(x: Tensor, w: Tensor) -> Tensor:
    """Per-step products: ``x[B, I, D]``, ``w[I, O, D]`` -> ``[B, O, D]`` (``sum_i x[b, i, d] w[i, o, d]``)."""
    if w.shape[0] == 1:
        return x * w[0]  # binary data: one feature, a broadcast product
    return torch.einsum("bid,iod->bod", x, w)


class NADE(IncrementalSampler):
    """NADE with tied input weights: ``forward(x[B, C, H, W]) -> params[B, C, H, W, P]`` in ``O(D H)``.

    Parameters: ``W[F, H, D]``, ``c[H]``, ``V[H, P, D]``, ``b[P, D]`` (indexed by element, not by step).
    The ``[B, H, D]`` hidden tensor dominates the cost, so it is laid out with the steps last (a fast
    cumulative sum), made by one product on the step-shifted inputs (``c`` enters as a constant input
    of step 0) and read by one product.
    """

    config_class = NADEConfig
    # the papers' binarized-MNIST NADE has 500 hidden units; training touches a [B, H, D] tensor, so
    # "small" halves H to stay near the other models' step time on CPU
    presets = {"debug": dict(hidden=16), "small": dict(hidden=250), "base": dict(hidden=500)}

    def __init__(self, config: NADEConfig) -> None:
        super().__init__(config)
        self.head = image_head(config.levels)
        D, P, Hd = math.prod(config.shape), self.head.num_params, config.hidden
        Fe = num_features(config.levels, config.one_hot)
        self.D, self.P = D, P
        self.W = nn.Parameter(torch.empty(Fe, Hd, D).uniform_(-1, 1) / math.sqrt(D))
        self.c = nn.Parameter(torch.zeros(Hd))
        self.V = nn.Parameter(torch.empty(Hd, P, D).uniform_(-1, 1) / math.sqrt(Hd))
        self.b = nn.Parameter(torch.zeros(P, D))
        order = channel_minor_order(config.shape)
        self.register_buffer("order", order, persistent=False)
        self.register_buffer("step_of", torch.argsort(order), persistent=False)  # element -> its step

    def generation_order(self) -> Tensor:
        return self.order.cpu()

    def hidden_preactivations(self, x: Tensor) -> Tensor:
        """``x[B, C, H, W]`` -> ``a[B, H, D]``, step ``i`` of the order in column ``i``: one cumulative sum."""
        K, one_hot = self.config.levels, self.config.one_hot
        B, Fe = x.shape[0], self.W.shape[0]
        f = element_features(x.flatten(1)[:, self.order], K, one_hot, self.W.dtype).transpose(1, 2)  # (B, F, D)
        # column i of the product holds step i-1's term, column 0 holds c (a constant input 1 with
        # weights c), so the cumulative sum is exclusive and includes c
        one = F.pad(f.new_ones(B, 1, 1), (0, 0, 0, Fe - 1))  # (B, F, 1)
        c = F.pad(self.c.view(1, -1, 1), (0, 0, 0, 0, 0, Fe - 1))  # (F, H, 1)
        f_prev = torch.cat([one, f[..., :-1]], -1)  # (B, F, D)
        W_prev = torch.cat([c, self.W[..., self.order[:-1]]], -1)  # (F, H, D)
        return _contract(f_prev, W_prev).cumsum(-1)  # (B, H, D)

    def forward(self, x: Tensor) -> Tensor:
        """``x[B, C, H, W]`` levels -> ``params[B, C, H, W, P]``."""
        h = torch.sigmoid(self.hidden_preactivations(x))  # (B, H, D)
        out = _contract(h, self.V[..., self.order]) + self.b[:, self.order]  # (B, P, D) by step
        return out[..., self.step_of].view(x.shape[0], self.P, *self.event_shape).movedim(1, -1)

    # ---- incremental sampling: the state is the hidden pre-activation given the elements drawn so far
    def _start(self, n: int) -> Tensor:
        return self.c.expand(n, -1).clone()  # (n, H)

    def _params_at(self, a: Tensor, pos: int) -> Tensor:
        return torch.sigmoid(a) @ self.V[..., pos] + self.b[:, pos]  # (n, P)

    def _update(self, a: Tensor, pos: int, feats: Tensor) -> Tensor:
        return a + feats.to(a.dtype) @ self.W[..., pos]  # (n, F) @ (F, H)
