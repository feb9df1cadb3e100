"""Attention for the transformers: sparse masks, one attention op (three paths), a KV cache that keeps only
what its pattern reads.

Masks follow the Sparse Transformer (Child et al., 2019: strided and fixed patterns, here the union
of both heads' sets in one mask), the Image Transformer (Parmar et al., 2018: local 1-D blocks) and
Jukebox's factored attention (Dhariwal et al., 2020, arXiv:2005.00341, ``factored_attention.py``): with the
sequence cut into blocks of ``block`` positions, ``row`` attends within the query's own block, ``column`` to
the same offset in every block, ``prev_row`` to the whole previous block; a stack cycles them so two or three
layers reach every earlier position. Every mask is causal and lets each query attend to itself, so no
softmax row is empty (``prev_row``'s first block sees only itself).

Attention runs on ``F.scaled_dot_product_attention`` with a dense bool mask (True = may attend).
A dense mask rules out the flash backend; for long block-sparse sequences on GPU pass a FlexAttention
``block_mask`` (:func:`flex_block_mask`) and wrap the call in ``torch.compile``. On CPU FlexAttention
runs eagerly (unfused, it materializes the scores and warns) and is tested equal to the dense path;
:func:`attend_reference` is the plain softmax of the definition, the reference of both.

A :class:`KVCache` drops the keys its pattern can no longer read (:func:`earliest_key`): a ``row`` layer
holds at most one block, ``prev_row`` and ``local`` two, the others everything.

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
    "pattern_rows", "earliest_key", "flex_block_mask", "attend", "attend_reference", "KVCache",
    "kv_cache_bytes", "MultiHeadAttention", "TransformerBlock",
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


def _row(i: Tensor, j: Tensor, block: int) -> Tensor:
    _check_pos("row", block=block)
    return j // block == i // block


def _column(i: Tensor, j: Tensor, block: int) -> Tensor:
    _check_pos("column", block=block)
    return (i - j) % block == 0


def _prev_row(i: Tensor, j: Tensor, block: int) -> Tensor:
    _check_pos("prev_row", block=block)
    return (j // block == i // block - 1) | (i == j)


_RULES: dict[str, Callable[..., Tensor]] = {
    "causal": _causal, "local": _local, "strided": _strided, "fixed": _fixed,
    "row": _row, "column": _column, "prev_row": _prev_row,
}
PATTERNS = tuple(_RULES)


def pattern_rows(name: str, q_pos, keys, *, device=None, **kw) -> Tensor:
    """Rows of pattern ``name`` for absolute query positions ``q_pos`` over keys ``keys`` (a count, keys
    ``0..keys-1``, or the absolute key positions).

    Returns ``Tensor[len(q_pos), len(keys)]`` bool (True = may attend). Used by cached decoding.
    """
    if name not in _RULES:
        raise ValueError(f"unknown attention pattern {name!r}; choose one of {PATTERNS}")
    i = torch.as_tensor(q_pos, dtype=torch.long, device=device).reshape(-1, 1)
    j = (torch.arange(keys, device=i.device) if isinstance(keys, int) else
         torch.as_tensor(keys, dtype=torch.long, device=i.device)).reshape(1, -1)
    return (j <= i) & _RULES[name](i, j, **kw)


def earliest_key(name: str, q: int, **kw) -> int:
    """The earliest key position that a query at ``q`` or later can attend to under pattern ``name``: a
    cache may drop every key before it."""
    block = kw.get("block")
    if name == "row":
        return q // block * block
    if name in ("prev_row", "local"):
        return max(0, (q // block - 1) * block)
    return 0


def window(name: str, **kw) -> int | None:
    """Keys a cache of pattern ``name`` must hold for one query at a time (None: all of them)."""
    if name == "row":
        return kw["block"]
    if name in ("prev_row", "local"):
        return 2 * kw["block"]
    return None


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
_COMPILED_FLEX = None


def _flex_attention(device: torch.device):
    """FlexAttention: compiled on CUDA (fused kernels), eager elsewhere (unfused, for tests)."""
    global _COMPILED_FLEX
    from torch.nn.attention.flex_attention import flex_attention

    if device.type != "cuda":
        return flex_attention
    if _COMPILED_FLEX is None:
        _COMPILED_FLEX = torch.compile(flex_attention, dynamic=False)
    return _COMPILED_FLEX


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
        return _flex_attention(q.device)(q, k, v, block_mask=block_mask)
    t, s = q.shape[-2], k.shape[-2]
    if causal and t > 1:
        if mask is None and t == s:
            return F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, is_causal=True)
        c = pattern_rows("causal", torch.arange(s - t, s, device=q.device), s)
        mask = c if mask is None else mask & c
    return F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=dropout)


def attend_reference(q: Tensor, k: Tensor, v: Tensor, mask: Tensor) -> Tensor:
    """The definition, in float64: ``softmax(q k^T / sqrt(d), masked) v`` (the reference of :func:`attend`'s
    SDPA and FlexAttention paths)."""
    scores = (q.double() @ k.double().transpose(-1, -2)) / q.shape[-1] ** 0.5
    return (scores.masked_fill(~mask, float("-inf")).softmax(-1) @ v.double()).to(q.dtype)


# ---- KV cache -----------------------------------------------------------------------------------
class KVCache:
    """Keys and values ``[B, nh, capacity, hs]`` of the absolute positions ``[start, length)``, filled in place.

    ``append(k, v)`` first drops the keys no query from ``length`` on can read under ``pattern``
    (:func:`earliest_key`), then writes ``[B, nh, t, hs]`` and returns views ``[B, nh, length - start, hs]`` of
    every key kept. The buffer starts at the pattern's :func:`window` (one or two blocks for ``row``,
    ``prev_row``, ``local``; ``max_len`` for the others), grows only while a chunk needs more (a prefilled
    prompt) and returns to the window after it; ``max_len`` bounds the positions.
    """

    def __init__(self, batch: int, heads: int, max_len: int, head_dim: int, *, dtype=torch.float32, device=None,
                 pattern: str = "causal", **pattern_kw) -> None:
        self.max_len, self.pattern, self.pattern_kw = max_len, pattern, pattern_kw
        self.base = min(max_len, window(pattern, **pattern_kw) or max_len)
        self.k = torch.zeros(batch, heads, self.base, head_dim, dtype=dtype, device=device)
        self.v = torch.zeros_like(self.k)
        self.start = self.length = 0

    @property
    def capacity(self) -> int:
        return self.k.shape[2]

    def positions(self) -> Tensor:
        """Absolute positions of the kept keys: ``LongTensor[length - start]``."""
        return torch.arange(self.start, self.length, device=self.k.device)

    def _drop_before(self, pos: int) -> None:
        kept, n = self.length - pos, pos - self.start
        if kept > 0:
            self.k[:, :, :kept] = self.k[:, :, n:n + kept].clone()
            self.v[:, :, :kept] = self.v[:, :, n:n + kept].clone()
        self.start = pos

    def append(self, k: Tensor, v: Tensor) -> tuple[Tensor, Tensor]:
        t, end = k.shape[2], self.length + k.shape[2]
        if k.shape != v.shape or k.shape[:2] != self.k.shape[:2] or k.shape[3] != self.k.shape[3]:
            raise ValueError(f"KVCache: got k {tuple(k.shape)}, v {tuple(v.shape)}; "
                             f"expected [B, nh, t, hs] = [{self.k.shape[0]}, {self.k.shape[1]}, t, {self.k.shape[3]}]")
        if end > self.max_len:
            raise RuntimeError(f"KVCache overflow: {self.length} cached + {t} new > capacity {self.max_len}; "
                               f"raise max_len or reset the stream")
        first = earliest_key(self.pattern, self.length, **self.pattern_kw)
        if first > self.start:
            self._drop_before(first)
        if end - self.start > self.capacity or (self.capacity > self.base >= end - self.start):
            # a chunk longer than the window: grow (kept keys copied once); back to the window after it
            size = self.base if end - self.start <= self.base else \
                min(self.max_len, max(end - self.start, 2 * self.capacity))
            kept = self.length - self.start
            grown_k, grown_v = (self.k.new_zeros(*self.k.shape[:2], size, self.k.shape[3]) for _ in range(2))
            grown_k[:, :, :kept], grown_v[:, :, :kept] = self.k[:, :, :kept], self.v[:, :, :kept]
            self.k, self.v = grown_k, grown_v
        lo, hi = self.length - self.start, end - self.start
        self.k[:, :, lo:hi] = k
        self.v[:, :, lo:hi] = v
        self.length = end
        return self.k[:, :, :hi], self.v[:, :, :hi]

    def reset(self) -> None:
        self.start = self.length = 0


def kv_cache_bytes(module: nn.Module) -> int:
    """Bytes held now by the KV caches of every attention layer in ``module`` (inside ``streaming()``)."""
    caches = [m.state["kv"] for m in module.modules() if isinstance(m, MultiHeadAttention) and "kv" in m.state]
    return sum(2 * c.k.numel() * c.k.element_size() for c in caches)


# ---- multi-head attention -----------------------------------------------------------------------
class MultiHeadAttention(StreamingModule):
    """Masked multi-head self-attention with a sparse pattern and a streaming KV cache.

    x : Tensor[B, T, dim] -> Tensor[B, T, dim], ``T <= max_len``.

    ``pattern`` is one of :data:`PATTERNS`, ``pattern_kw`` its parameters (``block=``, ``stride=``,
    ``c=``). Inside ``streaming()`` each call takes the next chunk ``[B, t, dim]``; its keys/values go
    into a :class:`KVCache` in ``self.state`` and its queries use the mask rows of their absolute
    positions, so step-by-step outputs equal the full forward. Positional information is the caller's.
    ``flex=True``: the full forward (not streaming, no dropout) runs FlexAttention with the pattern's
    ``BlockMask`` (made once per length; compiled on CUDA) instead of SDPA with a dense mask (on the CPU
    FlexAttention has no backward: inference only).
    """

    def __init__(self, dim: int, heads: int, pattern: str = "causal", max_len: int = 1024, *,
                 dropout: float = 0.0, flex: bool = False, **pattern_kw) -> None:
        super().__init__()
        if dim % heads:
            raise ValueError(f"dim ({dim}) must be divisible by heads ({heads})")
        pattern_rows(pattern, [0], 1, **pattern_kw)  # fail early on a bad name or kw
        self.dim, self.heads, self.max_len = dim, heads, max_len
        self.pattern, self.pattern_kw = pattern, dict(pattern_kw)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)
        self.dropout, self.flex, self._block_masks = dropout, flex, {}
        self.resid_drop = nn.Dropout(dropout)

    def block_mask(self, T: int, device):
        """The pattern's FlexAttention ``BlockMask`` for length ``T`` (made once)."""
        key = (T, str(device))
        if key not in self._block_masks:
            self._block_masks[key] = flex_block_mask(self.pattern, T, block_size=min(128, max(16, T)),
                                                     device=device, **self.pattern_kw)
        return self._block_masks[key]

    def forward(self, x: Tensor) -> Tensor:
        B, t, _ = x.shape
        q, k, v = rearrange(self.qkv(x), "b t (three h d) -> three b h t d", three=3, h=self.heads)
        start, keys = 0, t
        if self.is_streaming:
            cache = self.state.get("kv")
            if cache is None:
                cache = self.state["kv"] = KVCache(B, self.heads, self.max_len, self.dim // self.heads,
                                                   dtype=k.dtype, device=k.device, pattern=self.pattern,
                                                   **self.pattern_kw)
            start = cache.length
            k, v = cache.append(k, v)                                   # (b, h, s, d), s <= the window
            keys = cache.positions()
        elif t > self.max_len:
            raise ValueError(f"sequence length {t} > max_len {self.max_len}")
        p = self.dropout if self.training else 0.0
        if self.pattern == "causal":
            y = attend(q, k, v, causal=True, dropout=p)
        elif self.flex and not self.is_streaming and not p:
            y = attend(q, k, v, block_mask=self.block_mask(t, x.device))
        else:
            mask = pattern_rows(self.pattern, torch.arange(start, start + t, device=x.device), keys,
                                **self.pattern_kw)                      # (t, s)
            y = attend(q, k, v, mask, dropout=p)
        y = rearrange(y, "b h t d -> b t (h d)")
        return self.resid_drop(self.proj(y))

    def extra_repr(self) -> str:
        kw = "".join(f", {k}={v}" for k, v in self.pattern_kw.items())
        flex = ", flex=True" if self.flex else ""
        return f"dim={self.dim}, heads={self.heads}, pattern={self.pattern}{kw}, max_len={self.max_len}{flex}"


class TransformerBlock(nn.Module):
    """Pre-LN transformer block: ``x + attn(ln(x))``, then ``x + mlp(ln(x))``. ``[B, t, dim] -> [B, t, dim]``."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int, dropout: float, max_len: int,
                 pattern: str, flex: bool = False, **pattern_kw) -> None:
        super().__init__()
        self.ln1, self.ln2 = nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.attn = MultiHeadAttention(dim, heads, pattern, max_len, dropout=dropout, flex=flex, **pattern_kw)
        self.mlp = nn.Sequential(nn.Linear(dim, mlp_ratio * dim), nn.GELU(), nn.Linear(mlp_ratio * dim, dim),
                                 nn.Dropout(dropout))

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))
