"""Sampling helpers kept outside the networks: logit filters and inverse-CDF draws.

Every draw in arsound goes through a uniform ``u`` in (0, 1). Callers may inject ``u`` (pre-drawn
uniforms, as nv-wavenet's tests do) so that two code paths (naive vs cached, CPU vs GPU) produce the
same samples exactly; otherwise ``u`` comes from ``generator``.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

# Uniforms are clamped to [EPS, 1 - EPS] so inverse CDFs stay finite.
EPS = 1e-7


def uniform(shape, *, generator: torch.Generator | None = None, device=None, dtype=torch.float32) -> Tensor:
    """``Tensor[shape]`` of uniforms in (0, 1) drawn from ``generator`` (or the global RNG) on ``device``; a
    generator on another device draws there and the draw moves (a CPU seed gives the same uniforms on a GPU)."""
    if generator is not None and device is None:
        device = generator.device
    if generator is not None and torch.device(device) != generator.device:
        u = torch.rand(shape, generator=generator, device=generator.device, dtype=dtype)
        return u.clamp_(EPS, 1 - EPS).to(device)
    u = torch.rand(shape, generator=generator, device=device, dtype=dtype)
    return u.clamp_(EPS, 1 - EPS)


def get_uniform(u: Tensor | None, shape, *, generator=None, device=None, dtype=torch.float32) -> Tensor:
    """Return injected ``u`` (checked against ``shape``) or a fresh draw."""
    if u is None:
        return uniform(shape, generator=generator, device=device, dtype=dtype)
    if tuple(u.shape) != tuple(shape):
        raise ValueError(f"injected uniforms have shape {tuple(u.shape)}, expected {tuple(shape)}")
    return u.clamp(EPS, 1 - EPS)


def time_major_uniforms(steps: int, n: int, U: int, *, generator=None, device=None) -> Tensor:
    """Fresh uniforms of ``steps`` steps of ``n`` streams, drawn time-major ``(steps, n, U)`` (on the CPU generator a
    run in pieces then draws the same values as one run), returned as a ``[n, steps, U]`` view on ``device``."""
    dev = generator.device if generator is not None else device
    return get_uniform(None, (steps, n, U), generator=generator, device=dev).to(device).transpose(0, 1)


def check_temperature(temperature: float) -> float:
    """The one check of a sampling temperature: a finite number > 0 (NaN and inf included), else one-line
    ``ValueError``."""
    if not (isinstance(temperature, (int, float)) and math.isfinite(temperature) and temperature > 0):
        raise ValueError(f"temperature must be a finite number > 0, got {temperature!r} (greedy decoding takes "
                         "the mode instead)")
    return float(temperature)


def filter_logits(logits: Tensor, temperature: float = 1.0, top_k: int | None = None,
                  top_p: float | None = None) -> Tensor:
    """Temperature, top-k and nucleus (top-p) filtering of ``logits[..., K]``; removed classes get -inf."""
    check_temperature(temperature)
    logits = logits / temperature
    if top_k is not None and top_k < logits.shape[-1]:
        if top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p is not None and top_p < 1.0:
        if not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        sorted_logits, idx = torch.sort(logits, dim=-1, descending=True)
        probs = F.softmax(sorted_logits, dim=-1)
        # drop a class when the mass strictly before it already reaches top_p (the top class always stays)
        drop = (probs.cumsum(-1) - probs) >= top_p
        sorted_logits = sorted_logits.masked_fill(drop, float("-inf"))
        logits = torch.empty_like(logits).scatter_(-1, idx, sorted_logits)
    return logits


def inverse_cdf(probs: Tensor, u: Tensor) -> Tensor:
    """Index ``k`` with ``cdf[k-1] <= u < cdf[k]`` for ``probs[..., K]`` and ``u[...]``: LongTensor[...]."""
    cdf = probs.cumsum(-1)
    idx = torch.searchsorted(cdf.contiguous(), (u * cdf[..., -1]).unsqueeze(-1).contiguous(), right=True)
    return idx.squeeze(-1).clamp_(max=probs.shape[-1] - 1)


def sample_logits(logits: Tensor, u: Tensor | None = None, *, generator=None, temperature: float = 1.0,
                  top_k: int | None = None, top_p: float | None = None) -> Tensor:
    """Draw class indices from ``logits[..., K]`` by inverse CDF: LongTensor[...]."""
    logits = filter_logits(logits, temperature, top_k, top_p)
    # float32 whatever the logits dtype: bf16/fp16 uniforms are too coarse (bf16 never exceeds 0.996)
    u = get_uniform(u, logits.shape[:-1], generator=generator, device=logits.device, dtype=torch.float32)
    return inverse_cdf(F.softmax(logits.float(), dim=-1), u.float())
