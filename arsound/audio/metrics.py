"""Distances between a waveform and its resynthesis, all in torch, batched: ``x``, ``y`` are ``Tensor[T]``
or ``[B, T]`` (cut to the shorter) and every metric returns ``Tensor[B]``.

- log-spectral distance (LSD, dB): ``mean_frames sqrt(mean_freq (10 log10 P - 10 log10 P')^2)`` on power
  spectra (``n_fft`` 1024, hop 256, power floor 1e-8); 0 for identical signals, symmetric.
- multi-resolution STFT distance (Yamamoto et al., 2020, arXiv:1910.11480), FFT 512 / 1024 / 2048
  (hop = FFT / 4, Hann window): per resolution spectral convergence ``||S - S'||_F / ||S||_F`` (relative
  to the original ``S``, so not symmetric) + ``mean |log S - log S'|`` (symmetric), averaged.
- scale-invariant SDR (Le Roux et al., 2019, "SDR - half-baked or well done?"), dB, both signals made
  zero-mean.
- wideband PESQ (ITU-T P.862.2, the ``pesq`` package; -0.5..4.64, higher is better) and STOI (Taal et al., 2011,
  the ``pystoi`` package; 0..1): speech measures, from the ``metrics`` extra (``pip install 'arsound[metrics]'``).
- F0 RMSE (cents, over frames voiced in both) and voicing decision error (the fraction of frames voiced in one
  and not the other), from librosa's pYIN (Mauch & Dixon, 2014) on both signals: for speech and music.
"""
from __future__ import annotations

import math

import numpy as np
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


def log_spectral_distance(x: Tensor, y: Tensor, n_fft: int = 1024, hop: int = 256, floor_db: float = 80.0) -> Tensor:
    """LSD in dB of waveform ``y`` against the reference ``x``: ``Tensor[B]`` (the RMS over frequency of the
    log-power difference, averaged over frames).

    Empty bands: powers more than ``floor_db`` below the reference's strongest STFT bin (per clip) are raised to
    that floor in both spectrograms, so bands the reference leaves empty (band-limited or quiet input) are scored
    only on what the output puts there above the floor, never on the depth of the reference's silence, and the
    figure does not depend on the clip's level (a gain on both leaves it unchanged).
    """
    return log_power_difference(x, y, n_fft, hop, floor_db).square().mean(dim=1).sqrt().mean(dim=1)


def log_power_difference(x: Tensor, y: Tensor, n_fft: int = 1024, hop: int = 256, floor_db: float = 80.0) -> Tensor:
    """``Tensor[B, K, F]``: the log-power difference in dB (reference ``x`` minus ``y``) per STFT bin and frame, with
    :func:`log_spectral_distance`'s floor; that LSD is its RMS over bins (dim 1), averaged over frames."""
    x, y = _pair(x, y)
    px, py = stft_magnitude(x, n_fft, hop).square(), stft_magnitude(y, n_fft, hop).square()
    floor = (px.amax(dim=(1, 2), keepdim=True) * 10 ** (-floor_db / 10)).clamp_min(1e-30)  # [B, 1, 1]
    lx, ly = (10 * torch.log10(torch.maximum(p, floor)) for p in (px, py))
    return lx - ly


def log_spectral_error_by_bin(x: Tensor, y: Tensor, n_fft: int = 1024, hop: int = 256,
                              floor_db: float = 80.0) -> Tensor:
    """``Tensor[B, K]``: the RMS over frames of :func:`log_power_difference` per frequency bin (``k * sr / n_fft``
    Hz), so a picture shows where in frequency a vocoder's LSD comes from."""
    return log_power_difference(x, y, n_fft, hop, floor_db).square().mean(dim=2).sqrt()


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


def _numpy_pairs(x: Tensor, y: Tensor):
    x, y = _pair(x, y)
    return zip(x.detach().double().cpu().numpy(), y.detach().double().cpu().numpy())


def _speech_package(name: str):
    try:
        return __import__(name)
    except ImportError:
        raise ImportError(f"the '{name}' package is missing: pip install 'arsound[metrics]'") from None


def pesq_wb(x: Tensor, y: Tensor, sr: int = 16000) -> Tensor:
    """Wideband PESQ of ``y`` against the reference ``x`` at 16 kHz (resample first): ``Tensor[B]``; NaN for a
    clip PESQ refuses (shorter than 0.25 s, or no speech found in the reference)."""
    if sr != 16000:
        raise ValueError(f"wideband PESQ is defined at 16 kHz, got {sr} Hz")
    pesq = _speech_package("pesq")
    out = []
    for a, b in _numpy_pairs(x, y):
        try:
            out.append(pesq.pesq(sr, a, b, "wb"))
        except (pesq.PesqError, ValueError):
            out.append(float("nan"))
    return torch.tensor(out)


def stoi(x: Tensor, y: Tensor, sr: int) -> Tensor:
    """Short-time objective intelligibility of ``y`` against ``x`` (resampled to 10 kHz inside): ``Tensor[B]``."""
    pystoi = _speech_package("pystoi")
    return torch.tensor([float(pystoi.stoi(a, b, sr, extended=False)) for a, b in _numpy_pairs(x, y)])


def f0_errors(x: Tensor, y: Tensor, sr: int, fmin: float = 60.0, fmax: float = 1000.0,
              hop: int = 256) -> dict[str, Tensor]:
    """pYIN F0 of both signals (frames of 1024 samples at 16 kHz, scaled with ``sr``): ``{"f0_rmse_cents",
    "vde"}``, each ``Tensor[B]``; the RMSE is over frames voiced in both (NaN where there are none)."""
    import librosa

    frame = 1 << max(8, round(math.log2(1024 * sr / 16000)))
    rmse, vde = [], []
    for a, b in _numpy_pairs(x, y):
        (fa, va, _), (fb, vb, _) = (librosa.pyin(z, fmin=fmin, fmax=fmax, sr=sr, frame_length=frame,
                                                 hop_length=hop) for z in (a, b))
        both = va & vb
        cents = 1200 * np.log2(fb[both] / fa[both])
        rmse.append(float(np.sqrt(np.mean(cents ** 2))) if both.any() else float("nan"))
        vde.append(float(np.mean(va != vb)))
    return {"f0_rmse_cents": torch.tensor(rmse), "vde": torch.tensor(vde)}


def vocoder_metrics(x: Tensor, y: Tensor, sr: int, speech: bool = True) -> dict[str, Tensor]:
    """Every distance of a resynthesis ``y`` to the original ``x``, each ``Tensor[B]``: ``lsd_db``, ``mrstft``,
    ``f0_rmse_cents``, ``vde`` and, with ``speech`` and the ``metrics`` extra installed, ``pesq`` (16 kHz only)
    and ``stoi``."""
    out = {"lsd_db": log_spectral_distance(x, y), "mrstft": mr_stft_distance(x, y)["total"], **f0_errors(x, y, sr)}
    if speech and speech_measures_installed():
        if sr == 16000:
            out["pesq"] = pesq_wb(x, y, sr)
        out["stoi"] = stoi(x, y, sr)
    return out


def speech_measures_installed() -> bool:
    """Whether the ``metrics`` extra (``pesq``, ``pystoi``) is installed."""
    import importlib.util

    return all(importlib.util.find_spec(n) is not None for n in ("pesq", "pystoi"))


__all__ = ["MR_FFTS", "f0_errors", "log_power_difference", "log_spectral_distance", "log_spectral_error_by_bin",
           "mr_stft_distance", "pesq_wb", "si_sdr", "speech_measures_installed", "stft_magnitude", "stoi",
           "vocoder_metrics"]
