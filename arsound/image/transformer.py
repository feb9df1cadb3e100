"""Decoder-only transformers over the elements of an image: Image GPT, Sparse Transformer, Image Transformer.

- Image GPT: Chen et al., "Generative Pretraining from Pixels", ICML 2020: a GPT-2 style pre-LN
  transformer with dense causal attention over the raster sequence.
- Sparse Transformer: Child, Gray, Radford & Sutskever, "Generating Long Sequences with Sparse
  Transformers", 2019 (arXiv:1904.10509), sec. 4: layers alternate the *strided* pattern (the previous
  ``l`` positions and every ``l``-th one before them) and the *fixed* pattern (the own block of ``l``
  and the last ``c`` positions of every earlier block), ``l`` about ``sqrt(T)``; two layers reach every
  earlier position.
- Image Transformer: Parmar et al., "Image Transformer", ICML 2018 (arXiv:1802.05751), sec. 3.2,
  local 1-D attention: the raster sequence is cut into query blocks of ``block`` positions; a query
  attends (causally) to its own block and to the whole previous (memory) block.

All three are one :class:`PixelTransformer` differing only in config (``attention`` cycles over the
layers). The sequence is raster over pixels with the channels inside a pixel (R, G, B of one pixel
before the next pixel), ``T = H * W * C``; :meth:`generation_order` maps it to ``x[0].flatten()``.
Input position ``s`` holds a learned start vector (``s = 0``) or the embedding of element ``s - 1``,
plus the factorized learned position embedding ``row[i] + col[j] + channel[c]`` of element ``s``, so
output ``s`` sees exactly the elements before it.

Sampling is KV-cached by default: inside ``with model.streaming():`` every new element is one step
``[B, 1, dim]`` through the blocks, each :class:`~arsound.core.attention.MultiHeadAttention` appending
to its :class:`~arsound.core.attention.KVCache` (O(T) per element instead of a full forward pass).
``sample(..., cached=False)`` takes the naive step instead.

Letters: ``B`` batch, ``C x H x W`` image, ``T = C*H*W`` sequence, ``P`` parameters per element.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..core.attention import TransformerBlock
from ..core.model import Canvas
from .common import ImageModel, image_head, pixel_major_order

__all__ = [
    "TransformerConfig", "ImageGPTConfig", "SparseTransformerConfig", "ImageTransformerConfig",
    "PixelTransformer", "ImageGPT", "SparseTransformer", "ImageTransformer",
    "StepSampler",
]


class StepSampler(ImageModel):
    """A cached step through single sequence positions inside ``streaming()``: subclasses implement
    :meth:`step`, ``step(prev, s)`` receiving the values of element ``order[s - 1]`` (zeros, to be ignored,
    at ``s = 0``) and returning the parameters of element ``order[s]``."""

    def step(self, prev: Tensor, s: int) -> Tensor:
        """``prev[B]`` -> ``params[B, P]`` of sequence position ``s``."""
        raise NotImplementedError

    @contextlib.contextmanager
    def steps(self, canvas: Canvas):
        zeros = canvas.flat.new_zeros(canvas.n)
        with self.streaming():
            yield lambda s, prev: self.step(zeros if prev is None else prev, s)  # (n, P)


@dataclass
class TransformerConfig:
    shape: tuple[int, int, int] = (1, 28, 28)   # (C, H, W)
    levels: int = 2                             # K gray levels; 2 = binary
    dim: int = 128                              # model width
    layers: int = 4
    heads: int = 4
    mlp_ratio: int = 4                          # MLP hidden = mlp_ratio * dim
    dropout: float = 0.0
    attention: tuple[str, ...] = ("causal",)   # cycled over layers: causal | strided | fixed | local
    stride: int = 0                             # strided/fixed l; 0: one row of elements, W*C
    summary: int = 1                            # fixed c: summary positions per block (clipped to l)
    block: int = 0                              # local block; 0: one row of elements, W*C


@dataclass
class ImageGPTConfig(TransformerConfig):
    attention: tuple[str, ...] = ("causal",)


@dataclass
class SparseTransformerConfig(TransformerConfig):
    attention: tuple[str, ...] = ("strided", "fixed")


@dataclass
class ImageTransformerConfig(TransformerConfig):
    attention: tuple[str, ...] = ("local",)


class PixelTransformer(StepSampler):
    """Decoder-only transformer over ``T = C*H*W`` elements; ``forward: x[B, C, H, W] -> params[B, C, H, W, P]``."""

    config_class = TransformerConfig
    presets: dict = {}

    def __init__(self, config: TransformerConfig) -> None:
        super().__init__(config)
        C, H, W = config.shape
        T = self.T = C * H * W
        self.head = image_head(config.levels)
        row = W * C  # elements per image row
        self.stride = config.stride or row
        self.block_size = config.block or row
        kw = {"causal": {}, "strided": dict(stride=self.stride),
              "fixed": dict(stride=self.stride, c=min(config.summary, self.stride)),
              "local": dict(block=self.block_size)}
        for p in config.attention:
            if p not in kw:
                raise ValueError(f"unknown attention pattern {p!r} in config.attention; choose from {sorted(kw)}")
        patterns = [config.attention[k % len(config.attention)] for k in range(config.layers)]
        d = config.dim
        self.tok_emb = nn.Embedding(config.levels, d)
        self.start = nn.Parameter(torch.zeros(1, 1, d))
        self.row_emb, self.col_emb, self.chan_emb = nn.Embedding(H, d), nn.Embedding(W, d), nn.Embedding(C, d)
        self.drop = nn.Dropout(config.dropout)
        self.blocks = nn.ModuleList(TransformerBlock(d, config.heads, config.mlp_ratio, config.dropout, T, p, **kw[p])
                                    for p in patterns)
        self.ln_f = nn.LayerNorm(d)
        self.out = nn.Linear(d, self.head.num_params)
        # (row, col, channel) of every sequence position
        s = torch.arange(T)
        self.register_buffer("pos_index", torch.stack([s // row, (s // C) % W, s % C]), persistent=False)
        self.register_buffer("order", pixel_major_order(config.shape), persistent=False)
        self._init_weights()

    def _init_weights(self) -> None:
        """GPT-2: N(0, 0.02), zero biases, residual projections scaled by 1/sqrt(2 * layers)."""
        for m in self.modules():
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)
        for b in self.blocks:
            for w in (b.attn.proj.weight, b.mlp[2].weight):
                nn.init.normal_(w, std=0.02 / math.sqrt(2 * len(self.blocks)))

    def generation_order(self) -> Tensor:
        return self.order.cpu()

    def patterns(self) -> list[tuple[str, dict]]:
        """Attention pattern and its parameters, per layer."""
        return [(b.attn.pattern, b.attn.pattern_kw) for b in self.blocks]

    def position(self, s) -> Tensor:
        """Factorized position embedding of sequence positions ``s`` (slice or index): ``[len, dim]``."""
        i, j, c = self.pos_index[:, s]
        return self.row_emb(i) + self.col_emb(j) + self.chan_emb(c)

    def to_sequence(self, x: Tensor) -> Tensor:
        """``x[B, C, H, W] -> [B, T]`` in generation order."""
        return x.permute(0, 2, 3, 1).reshape(x.shape[0], -1)

    def embed(self, x: Tensor) -> Tensor:
        """Shifted input ``[B, T, dim]``: position ``s`` holds element ``s - 1`` (start vector at 0)."""
        seq = self.to_sequence(x)                                      # (B, T)
        tok = self.tok_emb(seq[:, :-1])                                # (B, T-1, dim)
        h = torch.cat([self.start.expand(x.shape[0], 1, -1), tok], 1)  # (B, T, dim)
        return self.drop(h + self.position(slice(None)))

    def body(self, h: Tensor) -> Tensor:
        """``h[B, t, dim] -> params[B, t, P]`` (in streaming, ``t`` positions after the cached ones)."""
        for block in self.blocks:
            h = block(h)
        return self.out(self.ln_f(h))

    def forward(self, x: Tensor) -> Tensor:
        C, H, W = self.event_shape
        params = self.body(self.embed(x))                              # (B, T, P)
        return params.view(x.shape[0], H, W, C, -1).permute(0, 3, 1, 2, 4)  # (B, C, H, W, P)

    def step(self, prev: Tensor, s: int) -> Tensor:
        """One cached step inside ``streaming()``: element ``s - 1``'s values ``[B]`` -> params ``[B, P]``."""
        if s == 0:
            h = self.start.expand(prev.shape[0], 1, -1)                # (B, 1, dim)
        else:
            h = self.tok_emb(prev)[:, None]                            # (B, 1, dim)
        return self.body(self.drop(h + self.position(slice(s, s + 1))))[:, 0]


class ImageGPT(PixelTransformer):
    """Image GPT (Chen et al. 2020): dense causal attention."""

    config_class = ImageGPTConfig
    presets = {
        "debug": dict(dim=32, layers=2, heads=2),
        "small": dict(dim=64, layers=2, heads=2),
        "base": dict(dim=512, layers=24, heads=8),  # iGPT-S geometry
    }


class SparseTransformer(PixelTransformer):
    """Sparse Transformer (Child et al. 2019): layers alternate strided and fixed attention."""

    config_class = SparseTransformerConfig
    presets = {
        "debug": dict(dim=32, layers=2, heads=2),
        "small": dict(dim=64, layers=2, heads=2, summary=2),
        "base": dict(dim=256, layers=32, heads=8, summary=4, dropout=0.1),
    }


class ImageTransformer(PixelTransformer):
    """Image Transformer (Parmar et al. 2018): local 1-D block attention (own + previous block)."""

    config_class = ImageTransformerConfig
    presets = {
        "debug": dict(dim=32, layers=2, heads=2),
        "small": dict(dim=64, layers=2, heads=2, block=84),  # 3 rows of 28
        "base": dict(dim=512, layers=12, heads=8, block=112, dropout=0.1),
    }
