"""Devices and precision: ``--device`` strings resolved (with one clear line when the device is not there),
the autocast dtype of ``--train.amp``, and one CPU thread for step-by-step sampling loops."""
from __future__ import annotations

import warnings
from contextlib import contextmanager, nullcontext

import torch

SINGLE_THREAD_MAX_BATCH = 64     # CPU: below this a step's matmuls are too small to share between threads


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


@contextmanager
def num_threads(n: int):
    """Run a block with ``n`` intra-op threads (the native WaveNet step spreads its streams over them), then
    restore torch's setting."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@contextmanager
def step_threads(device: torch.device, batch: int):
    """Run a step-by-step sampling loop with one intra-op thread on CPU for small batches.

    A cached step is a hundred or so tiny ops; MKL splits even an ``[8, 64] @ [64, 128]`` matmul across
    threads, and the thread hand-offs cost far more than the work (4-10x slower with 2 threads on a busy
    2-core machine: WaveNet's step loop, the music priors').
    """
    before = torch.get_num_threads()
    single = torch.device(device).type == "cpu" and batch <= SINGLE_THREAD_MAX_BATCH and before > 1
    if single:
        torch.set_num_threads(1)
    try:
        yield
    finally:
        if single:
            torch.set_num_threads(before)
