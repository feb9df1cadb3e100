"""Likelihood units. All models report nats; these turn nats into bits per dimension / sample.

bits/dim = NLL_nats / (D * ln 2), with D the number of modelled elements (pixels x channels, or
audio samples).
"""
from __future__ import annotations

import math

import torch

LN2 = math.log(2.0)


def nats_to_bits(nats):
    """Nats -> bits (works on floats and tensors)."""
    return nats / LN2


def bits_to_nats(bits):
    return bits * LN2


def bits_per_dim(nll_nats, num_dims: int):
    """Per-example NLL in nats (float or ``Tensor[B]``) -> bits per dimension."""
    if num_dims <= 0:
        raise ValueError(f"num_dims must be positive, got {num_dims}")
    return nll_nats / (num_dims * LN2)


def bits_per_sample(nll_nats, num_samples: int):
    """Audio spelling of :func:`bits_per_dim`: NLL in nats of a clip of ``num_samples`` samples."""
    return bits_per_dim(nll_nats, num_samples)


def num_dims(x: torch.Tensor) -> int:
    """Elements per example of a batch ``x`` of shape ``(B, ...)``."""
    return int(x[0].numel())
