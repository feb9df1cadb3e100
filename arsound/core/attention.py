"""Attention for the image / sparse transformers: sparse masks, one attention op, a KV cache.

Masks follow the Sparse Transformer (Child et al., 2019: strided and fixed patterns, here the union
of both heads' sets in one mask) and the Image Transformer (Parmar et al., 2018: local 1-D blocks).
Every mask is causal and lets each query attend to itself, so no softmax row is empty.

Attention runs on ``F.scaled_dot_product_attention`` with a dense bool mask (True = may attend).
A dense mask rules out the flash backend; for long block-sparse sequences on GPU pass a FlexAttention
``block_mask`` (:func:`flex_block_mask`) and wrap the call in ``torch.compile``. On CPU FlexAttention
runs eagerly (unfused, it materializes the scores and warns) and is tested equal to the dense path.

Einops letters used in this file:
    b - batch
    h - heads (nh)
    t - query positions (this call)
    s - key positions (cache included)
    d - head size (hs)
    e - model width (dim = h * d)
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from .streaming import StreamingModule

__all__ = [
    "PATTERNS", "causal_mask", "local_mask", "strided_mask", "fixed_mask", "pattern_mask",
    "pattern_rows", "flex_block_mask", "attend", "KVCache", "MultiHeadAttention",
]


# ---- mask rules: (query index i, key index j) -> allowed, before the causal j <= i ---------------
def _check_pos(name: str, **kw: int) -> None:
    for k, v in kw.items():
        if int(v) < 1:
            raise ValueError(f"{name}: {k} must be >= 1, got {v}")


def _causal(i: Tensor, j: Tensor) -> Tensor:
    return torch.ones_like(i == j)


def _local(i: Tensor, j: Tensor, block: int) -> Tensor:
    _check_pos("local", block=block)
    return j // block >= i // block - 1


def _strided(i: Tensor, j: Tensor, stride: int) -> Tensor:
    _check_pos("strided", stride=stride)
    return (i - j < stride) | ((i - j) % stride == 0)


def _fixed(i: Tensor, j: Tensor, stride: int, c: int = 1) -> Tensor:
    _check_pos("fixed", stride=stride, c=c)
    if c > stride:
        raise ValueError(f"fixed: c must be <= stride, got c={c}, stride={stride}")
    return (j // stride == i // stride) | (j % stride >= stride - c)


_RULES: dict[str, Callable[..., Tensor]] = {
    "causal": _causal, "local": _local, "strided": _strided, "fixed": _fixed,
}
PATTERNS = tuple(_RULES)


def pattern_rows(name: str, q_pos, num_keys: int, *, device=None, **kw) -> Tensor:
    """Rows of pattern ``name`` for absolute query positions ``q_pos`` over keys ``0..num_keys-1``.

    Returns ``Tensor[len(q_pos), num_keys]`` bool (True = may attend). Used by cached decoding.
    """
    if name not in _RULES:
        raise ValueError(f"unknown attention pattern {name!r}; choose one of {PATTERNS}")
    i = torch.as_tensor(q_pos, dtype=torch.long, device=device).reshape(-1, 1)
    j = torch.arange(num_keys, device=i.device).reshape(1, -1)
    return (j <= i) & _RULES[name](i, j, **kw)


def pattern_mask(name: str, T: int, *, device=None, **kw) -> Tensor:
    """Full ``Tensor[T, T]`` bool mask of pattern ``name`` in :data:`PATTERNS`; ``kw`` as the builders."""
    return pattern_rows(name, torch.arange(T, device=device), T, **kw)


def causal_mask(T: int, *, device=None) -> Tensor:
    """``j <= i``."""
    return pattern_mask("causal", T, device=device)


def local_mask(T: int, block: int, *, device=None) -> Tensor:
    """Image Transformer local 1-D: positions are cut into blocks of ``block``; query ``i`` attends
    to ``j <= i`` with ``j // block >= i // block - 1`` (its own block and the whole previous one)."""
    return pattern_mask("local", T, block=block, device=device)


def strided_mask(T: int, stride: int, *, device=None) -> Tensor:
    """Sparse Transformer strided: ``j <= i`` and (``i - stride < j`` or ``(i - j) % stride == 0``),
    i.e. the last ``stride`` positions ("row") plus every ``stride``-th one before ("column")."""
    return pattern_mask("strided", T, stride=stride, device=device)


def fixed_mask(T: int, stride: int, c: int = 1, *, device=None) -> Tensor:
    """Sparse Transformer fixed: ``j <= i`` and (``j // stride == i // stride`` (same block) or
    ``j % stride >= stride - c`` (the last ``c`` "summary" positions of every block))."""
    return pattern_mask("fixed", T, stride=stride, c=c, device=device)


def flex_block_mask(name: str, T: int, *, block_size: int = 128, device="cpu", **kw):
    """The same pattern as a FlexAttention ``BlockMask`` for ``attend(..., block_mask=...)``."""
    from torch.nn.attention.flex_attention import create_block_mask

    if name not in _RULES:
        raise ValueError(f"unknown attention pattern {name!r}; choose one of {PATTERNS}")
    rule = _RULES[name]
    pattern_rows(name, [0], 1, **kw)  # validate kw here, not inside the traced mask_mod

    def mask_mod(b, h, q, k):
        return (k <= q) & rule(q, k, **kw)

    return create_block_mask(mask_mod, None, None, T, T, device=device, BLOCK_SIZE=block_size)


# ---- the attention op ---------------------------------------------------------------------------
def attend(q: Tensor, k: Tensor, v: Tensor, mask: Tensor | None = None, *, causal: bool = False,
           dropout: float = 0.0, block_mask=None) -> Tensor:
    """Scaled dot-product attention: ``softmax(q k^T / sqrt(d) + mask) v``.

    q : Tensor[B, nh, t, hs]; k, v : Tensor[B, nh, s, hs] -> Tensor[B, nh, t, hs]
    mask : bool ``[t, s]`` (or broadcastable to ``[B, nh, t, s]``), True = may attend.
    causal : the ``t`` queries are the *last* ``t`` of the ``s`` positions (bottom-right aligned, as
        in cached decoding); combined with ``mask`` when both are given.
    block_mask : a FlexAttention ``BlockMask`` (from :func:`flex_block_mask`) instead of a mask.
    """
    if block_mask is not None:
        if mask is not None or causal or dropout:
            raise ValueError("attend: block_mask excludes mask, causal and dropout")
        from torch.nn.attention.flex_attention import flex_attention
        return flex_attention(q, k, v, block_mask=block_mask)
    t, s = q.shape[-2], k.shape[-2]
    if causal and t > 1:
        if mask is None and t == s:
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
        c = pattern_rows("causal", torch.arange(s - t, s, device=q.device), s)
        mask = c if mask is None else mask & c
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)


# ---- KV cache -----------------------------------------------------------------------------------
class KVCache:
    """Preallocated keys and values ``[B, nh, max_len, hs]`` filled in place.

    ``append(k, v)`` writes ``[B, nh, t, hs]`` at ``length`` and returns views ``[B, nh, length, hs]``
    of everything cached so far. No reallocation, no concatenation.
    """

    def __init__(self, batch: int, heads: int, max_len: int, head_dim: int, *,
                 dtype=torch.float32, device=None) -> None:
        self.k = torch.zeros(batch, heads, max_len, head_dim, dtype=dtype, device=device)
        self.v = torch.zeros_like(self.k)
        self.length = 0

    @property
    def max_len(self) -> int:
        return self.k.shape[2]

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        t, end = k.shape[2], self.length + k.shape[2]
        if k.shape != v.shape or k.shape[:2] != self.k.shape[:2] or k.shape[3] != self.k.shape[3]:
            raise ValueError(f"KVCache: got k {tuple(k.shape)}, v {tuple(v.shape)}; "
                             f"expected [B, nh, t, hs] = [{self.k.shape[0]}, {self.k.shape[1]}, t, {self.k.shape[3]}]")
        if end > self.max_len:
            raise RuntimeError(f"KVCache overflow: {self.length} cached + {t} new > capacity {self.max_len}; "
                               f"raise max_len or reset the stream")
        self.k[:, :, self.length:end] = k
        self.v[:, :, self.length:end] = v
        self.length = end
        return self.k[:, :, :end], self.v[:, :, :end]

    def reset(self) -> None:
        self.length = 0


# ---- multi-head attention -----------------------------------------------------------------------
class MultiHeadAttention(StreamingModule):
    """Masked multi-head self-attention with a sparse pattern and a streaming KV cache.

    x : Tensor[B, T, dim] -> Tensor[B, T, dim], ``T <= max_len``.

    ``pattern`` is one of :data:`PATTERNS`, ``pattern_kw`` its parameters (``block=``, ``stride=``,
    ``c=``). Inside ``streaming()`` each call takes the next chunk ``[B, t, dim]``; its keys/values go
    into a :class:`KVCache` in ``self.state`` and its queries use the mask rows of their absolute
    positions, so step-by-step outputs equal the full forward. Positional information is the caller's.
    """

    def __init__(self, dim: int, heads: int, pattern: str = "causal", max_len: int = 1024, *,
                 dropout: float = 0.0, **pattern_kw) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be divisible by heads ({heads})")
        pattern_rows(pattern, [0], 1, **pattern_kw)  # fail early on a bad name or kw
        self.dim, self.heads, self.max_len = dim, heads, max_len
        self.pattern, self.pattern_kw = pattern, dict(pattern_kw)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.dropout = dropout
        self.resid_drop = nn.Dropout(dropout)

    def forward(self, x: Tensor) -> Tensor:
        B, t, _ = x.shape
        q, k, v = rearrange(self.qkv(x), "b t (three h d) -> three b h t d", three=3, h=self.heads)
        start = 0
        if self.is_streaming:
            cache = self.state.get("kv")
            if cache is None:
                cache = self.state["kv"] = KVCache(B, self.heads, self.max_len, self.dim // self.heads,
                                                   dtype=k.dtype, device=k.device)
            start = cache.length
            k, v = cache.append(k, v)                                   # (b, h, s, d)
        elif t > self.max_len:
            raise ValueError(f"sequence length {t} > max_len {self.max_len}")
        p = self.dropout if self.training else 0.0
        if self.pattern == "causal":
            y = attend(q, k, v, causal=True, dropout=p)
        else:
            mask = pattern_rows(self.pattern, torch.arange(start, start + t, device=x.device),
                                start + t, **self.pattern_kw)           # (t, s)
            y = attend(q, k, v, mask, dropout=p)
        y = rearrange(y, "b h t d -> b t (h d)")
        return self.resid_drop(self.proj(y))

    def extra_repr(self) -> str:
        kw = "".join(f", {k}={v}" for k, v in self.pattern_kw.items())
        return f"dim={self.dim}, heads={self.heads}, pattern={self.pattern}{kw}, max_len={self.max_len}"
