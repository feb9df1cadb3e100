"""Distances between a waveform and its resynthesis, all in torch, batched: ``x``, ``y`` are ``Tensor[T]``
or ``[B, T]`` (cut to the shorter) and every metric returns ``Tensor[B]``.

- log-spectral distance (LSD, dB): ``mean_frames sqrt(mean_freq (10 log10 P - 10 log10 P')^2)`` on power
  spectra (``n_fft`` 1024, hop 256, power floor 1e-8); 0 for identical signals, symmetric.
- multi-resolution STFT distance (Yamamoto et al., 2020, arXiv:1910.11480), FFT 512 / 1024 / 2048
  (hop = FFT / 4, Hann window): per resolution spectral convergence ``||S - S'||_F / ||S||_F`` (relative
  to the original ``S``, so not symmetric) + ``mean |log S - log S'|`` (symmetric), averaged.
- scale-invariant SDR (Le Roux et al., 2019, "SDR - half-baked or well done?"), dB, both signals made
  zero-mean.
"""
from __future__ import annotations

import torch
from torch import Tensor

MR_FFTS = (512, 1024, 2048)


def stft_magnitude(x: Tensor, n_fft: int, hop: int) -> Tensor:
    """``[B, T] -> |STFT| [B, K, F]`` (Hann window, centred)."""
    win = torch.hann_window(n_fft, device=x.device)
    return torch.stft(x.float(), n_fft, hop, n_fft, win, center=True, return_complex=True).abs()


def _pair(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    x, y = (x.unsqueeze(0) if x.ndim == 1 else x), (y.unsqueeze(0) if y.ndim == 1 else y)
    T = min(x.shape[-1], y.shape[-1])
    return x[..., :T], y[..., :T]


def log_spectral_distance(x: Tensor, y: Tensor, n_fft: int = 1024, hop: int = 256, floor: float = 1e-8) -> Tensor:
    """LSD in dB between waveforms ``x`` and ``y``: ``Tensor[B]``."""
    x, y = _pair(x, y)
    px = 10 * torch.log10(stft_magnitude(x, n_fft, hop).square().clamp_min(floor))
    py = 10 * torch.log10(stft_magnitude(y, n_fft, hop).square().clamp_min(floor))
    return (px - py).square().mean(dim=1).sqrt().mean(dim=1)


def mr_stft_distance(x: Tensor, y: Tensor, ffts=MR_FFTS, eps: float = 1e-5) -> dict[str, Tensor]:
    """Multi-resolution STFT distance of ``y`` to the original ``x``: ``{"sc", "mag", "total"}``, each
    ``Tensor[B]`` averaged over the resolutions (``total = sc + mag``)."""
    x, y = _pair(x, y)
    sc, mag = 0, 0
    for n in ffts:
        sx, sy = stft_magnitude(x, n, n // 4), stft_magnitude(y, n, n // 4)
        sc = sc + torch.linalg.vector_norm(sx - sy, dim=(1, 2)) / torch.linalg.vector_norm(sx, dim=(1, 2)).clamp_min(eps)
        mag = mag + (sx.clamp_min(eps).log() - sy.clamp_min(eps).log()).abs().mean(dim=(1, 2))
    sc, mag = sc / len(ffts), mag / len(ffts)
    return {"sc": sc, "mag": mag, "total": sc + mag}


def si_sdr(ref: Tensor, est: Tensor, eps: float = 1e-8) -> Tensor:
    """Scale-invariant SDR in dB of ``est`` against ``ref``: ``Tensor[B]``."""
    ref, est = _pair(ref, est)
    ref, est = ref.double(), est.double()
    ref, est = ref - ref.mean(-1, keepdim=True), est - est.mean(-1, keepdim=True)
    alpha = (est * ref).sum(-1, keepdim=True) / (ref.pow(2).sum(-1, keepdim=True) + eps)
    target = alpha * ref
    noise = est - target
    return (10 * torch.log10((target.pow(2).sum(-1) + eps) / (noise.pow(2).sum(-1) + eps))).float()


__all__ = ["MR_FFTS", "log_spectral_distance", "mr_stft_distance", "si_sdr", "stft_magnitude"]
