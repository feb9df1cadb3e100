"""Devices and precision: ``--device`` strings resolved (with one clear line when the device is not there)
and the autocast dtype of ``--train.amp``."""
from __future__ import annotations

import warnings
from contextlib import nullcontext

import torch


def resolve_device(spec: str | torch.device, local_rank: int | None = None) -> torch.device:
    """``auto`` (CUDA when available), ``cpu``, ``cuda``, ``cuda:N`` -> a device that exists here, or one line
    saying why not (CUDA missing, no such GPU, a typo)."""
    spec = str(spec)
    if spec == "auto":
        spec = "cuda" if torch.cuda.is_available() else "cpu"
    try:
        device = torch.device(spec)
    except RuntimeError:
        raise ValueError(f"unknown device '{spec}'; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise ValueError(f"device '{spec}' requested but CUDA is not available; use --device cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise ValueError(f"device '{spec}' requested but there are {torch.cuda.device_count()} GPUs")
        device = torch.device("cuda", local_rank if local_rank is not None else
                              device.index if device.index is not None else torch.cuda.current_device())
        torch.cuda.set_device(device)
    return device


def resolve_amp(amp: str, device: torch.device) -> torch.dtype | None:
    """The autocast dtype for ``amp`` on ``device``, or None for float32."""
    if amp == "off":
        return None
    cuda_bf16 = device.type == "cuda" and torch.cuda.is_bf16_supported()
    if amp == "auto":
        return torch.bfloat16 if cuda_bf16 else None
    if device.type == "cpu" or cuda_bf16:
        return torch.bfloat16
    warnings.warn(f"amp='bf16' is not supported on {device}; training in float32")
    return None


def autocast(device: torch.device, dtype: torch.dtype | None):
    return torch.autocast(device.type, dtype=dtype) if dtype is not None else nullcontext()
