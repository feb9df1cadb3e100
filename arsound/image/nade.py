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
uses the same recursion (:class:`~arsound.image.fvsbn.IncrementalSampler`), ``O(D H)`` per image.

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
from .fvsbn import IncrementalSampler, element_features, num_features
from .pixelcnn import channel_minor_order

__all__ = ["NADEConfig", "NADE"]


@dataclass
class NADEConfig:
    shape: tuple[int, int, int] = (1, 28, 28)  # (C, H, W)
    levels: int = 2                            # K gray levels; 2 = binary
    hidden: int = 500                          # H hidden units shared by all conditionals
    one_hot: bool = True                       # earlier elements enter one-hot (K-1 features) or scaled (1)


class NADE(IncrementalSampler):
    """NADE with tied input weights: ``forward(x[B, C, H, W]) -> params[B, C, H, W, P]`` in ``O(D H)``.

    Parameters: ``W[H, D, F]``, ``c[H]``, ``V[D, P, H]``, ``b[D, P]`` (indexed by element, not by step).
    """

    config_class = NADEConfig
    presets = {"debug": dict(hidden=16), "small": dict(hidden=500), "base": dict(hidden=500)}

    def __init__(self, config: NADEConfig) -> None:
        super().__init__(config)
        self.head = image_head(config.levels)
        D, P, Hd = math.prod(config.shape), self.head.num_params, config.hidden
        Fe = num_features(config.levels, config.one_hot)
        self.D, self.P = D, P
        self.W = nn.Parameter(torch.empty(Hd, D, Fe).uniform_(-1, 1) / math.sqrt(D))
        self.c = nn.Parameter(torch.zeros(Hd))
        self.V = nn.Parameter(torch.empty(D, P, Hd).uniform_(-1, 1) / math.sqrt(Hd))
        self.b = nn.Parameter(torch.zeros(D, P))
        self.register_buffer("order", channel_minor_order(config.shape), persistent=False)

    @property
    def event_shape(self):
        return tuple(self.config.shape)

    def generation_order(self) -> Tensor:
        return self.order.cpu()

    def hidden_preactivations(self, x: Tensor) -> Tensor:
        """``x[B, C, H, W]`` -> ``a[B, D, H]``, step ``i`` of the order in row ``i``: one cumulative sum."""
        x = x.flatten(1)[:, self.order]  # (B, D) in generation order
        f = element_features(x, self.config.levels, self.config.one_hot, self.W.dtype)  # (B, D, F)
        contrib = torch.einsum("bdf,hdf->bdh", f, self.W[:, self.order])  # (B, D, H): step i's term
        a = F.pad(contrib.cumsum(1)[:, :-1], (0, 0, 1, 0))  # exclusive: row i sums the steps before i
        return a + self.c  # (B, D, H)

    def forward(self, x: Tensor) -> Tensor:
        """``x[B, C, H, W]`` levels -> ``params[B, C, H, W, P]``."""
        h = torch.sigmoid(self.hidden_preactivations(x))  # (B, D, H)
        V, b = self.V[self.order], self.b[self.order]  # (D, P, H), (D, P)
        out_o = torch.einsum("bdh,dph->bdp", h, V) + b  # (B, D, P) in generation order
        out = torch.empty_like(out_o)
        out[:, self.order] = out_o  # back to element positions
        return out.view(x.shape[0], *self.event_shape, self.P)

    # ---- incremental sampling: the state is the hidden pre-activation given the elements drawn so far
    def _start(self, n: int) -> Tensor:
        return self.c.expand(n, -1).clone()  # (n, H)

    def _params_at(self, a: Tensor, pos: int) -> Tensor:
        return torch.sigmoid(a) @ self.V[pos].T + self.b[pos]  # (n, P)

    def _update(self, a: Tensor, pos: int, feats: Tensor) -> Tensor:
        return a + feats.to(a.dtype) @ self.W[:, pos].T  # (n, F) @ (F, H)
