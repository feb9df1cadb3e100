"""Linear prediction from the mel spectrogram alone: the all-pole envelope an LP vocoder's filter carries.

Letters: B batch, T samples, F frames, M mel bands, K = n_fft // 2 + 1 bins, P = order.

Convention (LPCNet, Valin & Skoglund 2019; LP-WaveNet, Hwang et al. 2018): the prediction of sample ``t`` is
``p[t] = sum_{k=1..P} a_k s[t-k]``, the excitation (residual) ``e[t] = s[t] - p[t]`` (:func:`analysis`) and the
synthesis filter ``s[t] = e[t] + p[t]`` (:func:`synthesis`) inverts it exactly. The envelope is
``err / |1 - sum_k a_k exp(-i w k)|^2``.

From a log-mel (the only thing a vocoder sees), per frame: mel -> power spectrum through the filter bank's
pseudo-inverse (clamped at a floor) -> autocorrelation by inverse FFT -> a Gaussian lag window (smooths the
envelope, widens sharp peaks) and a white-noise floor on ``r[0]`` (keeps the system well conditioned) ->
Levinson-Durbin. Between frames the autocorrelations are interpolated linearly and solved per sample: a convex
mix of positive-definite Toeplitz matrices stays positive definite, so every per-sample filter is stable
(interpolating the coefficients themselves would not promise that).
"""
from __future__ import annotations

import functools
import math

import torch

from arsound.audio.features import mel_filterbank


def levinson(r: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Levinson-Durbin: autocorrelation ``r`` ``Tensor[..., P + 1]`` -> predictor ``a`` ``Tensor[..., P]`` and the
    prediction-error power ``err`` ``Tensor[...]``, solving the Toeplitz normal equations
    ``sum_j a_j r[|i - j|] = r[i]`` (i = 1..P). Batched over the leading dims; computed in float64."""
    r = r.double()
    order = r.shape[-1] - 1
    a = r.new_zeros(r.shape[:-1] + (order,))
    err = r[..., 0].clone()
    for i in range(order):
        # reflection coefficient k_i = (r[i+1] - sum_j a_j r[i-j]) / err
        acc = r[..., i + 1] - (a[..., :i] * r[..., 1:i + 1].flip(-1)).sum(-1)
        k = acc / err
        a_prev = a[..., :i].clone()
        a[..., :i] = a_prev - k.unsqueeze(-1) * a_prev.flip(-1)
        a[..., i] = k
        err = err * (1 - k * k)
    return a, err


def lag_window(order: int, sr: int, bandwidth: float = 60.0) -> torch.Tensor:
    """Gaussian lag window ``w[k] = exp(-0.5 (2 pi bandwidth k / sr)^2)``, ``Tensor[P + 1]`` float64 (as in
    speech codecs: each envelope peak is widened to about ``bandwidth`` Hz)."""
    k = torch.arange(order + 1, dtype=torch.float64)
    return torch.exp(-0.5 * (2 * math.pi * bandwidth * k / sr) ** 2)


def autocorrelation_from_power(power: torch.Tensor, order: int, sr: int, n_fft: int, bandwidth: float = 60.0,
                               noise_floor: float = 1e-4) -> torch.Tensor:
    """One-sided power spectrum ``Tensor[..., K]`` -> lag-windowed autocorrelation ``Tensor[..., P + 1]`` (float64)
    with ``r[0]`` raised by ``noise_floor`` (white noise at -40 dB re. the frame's power by default)."""
    r = torch.fft.irfft(power.double(), n=n_fft, dim=-1)[..., :order + 1]
    r = r * lag_window(order, sr, bandwidth).to(r.device)
    r[..., 0] = r[..., 0] * (1 + noise_floor) + 1e-12  # the tiny constant: a silent frame stays solvable
    return r


@functools.lru_cache(maxsize=8)
def _pinv(sr: int, n_fft: int, n_mels: int, fmin: float, fmax: float | None) -> torch.Tensor:
    """The mel filter bank's pseudo-inverse ``Tensor[K, M]`` (float64), made once per front end."""
    return torch.linalg.pinv(mel_filterbank(sr, n_fft, n_mels, fmin, fmax).double())


def mel_to_power(log_mel: torch.Tensor, *, sr: int, n_fft: int, fmin: float = 0.0, fmax: float | None = None,
                 power: float = 1.0, log: bool = True, floor: float = 1e-5) -> torch.Tensor:
    """(Log-)mel ``Tensor[..., M, F]`` -> power spectrum ``Tensor[..., F, K]`` through the filter bank's
    pseudo-inverse; ``power`` is the mel's (1: magnitude, 2: power), ``floor`` clamps the inverted spectrum."""
    inv = _pinv(sr, n_fft, log_mel.shape[-2], fmin, fmax).to(log_mel.device)  # (K, M)
    mel = log_mel.double().exp() if log else log_mel.double()
    spec = (inv @ mel).clamp_min(floor)  # (..., K, F): |X|^power
    return (spec ** (2.0 / power)).transpose(-1, -2)


def frame_autocorrelation(log_mel: torch.Tensor, *, sr: int, n_fft: int, order: int = 16, fmin: float = 0.0,
                          fmax: float | None = None, power: float = 1.0, log: bool = True, floor: float = 1e-5,
                          bandwidth: float = 60.0, noise_floor: float = 1e-4) -> torch.Tensor:
    """(Log-)mel ``Tensor[..., M, F]`` -> per-frame autocorrelation ``Tensor[..., F, P + 1]`` (float64)."""
    spec = mel_to_power(log_mel, sr=sr, n_fft=n_fft, fmin=fmin, fmax=fmax, power=power, log=log, floor=floor)
    return autocorrelation_from_power(spec, order, sr, n_fft, bandwidth, noise_floor)


def lpc_from_mel(log_mel: torch.Tensor, *, sr: int, n_fft: int, order: int = 16, **kw) -> tuple[torch.Tensor,
                                                                                                torch.Tensor]:
    """Per-frame LPC of a (log-)mel: ``Tensor[..., M, F]`` -> ``a`` ``Tensor[..., F, P]``, ``err`` ``Tensor[..., F]``
    (float64). ``kw``: the mel's ``fmin``, ``fmax``, ``power``, ``log``, ``floor`` and the ``bandwidth`` /
    ``noise_floor`` of :func:`autocorrelation_from_power`."""
    return levinson(frame_autocorrelation(log_mel, sr=sr, n_fft=n_fft, order=order, **kw))


def per_sample(r: torch.Tensor, hop: int, samples: int, start: int = 0) -> torch.Tensor:
    """Frame autocorrelations ``Tensor[..., F, P + 1]`` -> per-sample ``Tensor[..., T, P + 1]`` of samples
    ``start .. start + samples``: frame ``f`` is centred on sample ``f * hop`` (the centred-STFT rule of
    :mod:`arsound.audio.features`); sample ``n`` mixes frames ``n // hop`` and ``n // hop + 1`` linearly (the last
    frame held past its centre)."""
    frames = r.shape[-2]
    pos = torch.arange(start, start + samples, dtype=torch.float64, device=r.device) / hop
    lo = pos.floor().long().clamp(max=frames - 1)
    hi = (lo + 1).clamp(max=frames - 1)
    w = (pos - lo).clamp(0, 1).unsqueeze(-1)
    return r[..., lo, :] * (1 - w) + r[..., hi, :] * w


def lpc_per_sample(log_mel: torch.Tensor, hop: int, samples: int, *, sr: int, n_fft: int, order: int = 16,
                   **kw) -> torch.Tensor:
    """Per-sample predictor ``Tensor[..., T, P]`` (float64) for ``samples`` samples of the audio a (log-)mel
    ``Tensor[..., M, F]`` describes, each a stable all-pole filter (see the module docstring)."""
    r = frame_autocorrelation(log_mel, sr=sr, n_fft=n_fft, order=order, **kw)
    return levinson(per_sample(r, hop, samples))[0]


def predict(s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """``p[t] = sum_k a[t, k - 1] s[t - k]`` (zeros before the start): ``s`` ``Tensor[..., T]``, ``a``
    ``Tensor[..., T, P]`` -> ``Tensor[..., T]``. Vectorized: training sees every sample's prediction at once."""
    order = a.shape[-1]
    past = torch.nn.functional.pad(s, (order, 0)).unfold(-1, order, 1)[..., :-1, :]  # (..., T, P): s[t-P..t-1]
    return (past.flip(-1) * a.to(s.dtype)).sum(-1)


def analysis(s: torch.Tensor, a: torch.Tensor) -> torch.Tensor:
    """Excitation ``e = s - predict(s, a)``: ``Tensor[..., T]``."""
    return s - predict(s, a)


def synthesis(e: torch.Tensor, a: torch.Tensor, history: torch.Tensor | None = None) -> torch.Tensor:
    """The all-pole filter ``s[t] = e[t] + sum_k a[t, k - 1] s[t - k]``, sample by sample (it is recursive):
    ``e`` ``Tensor[..., T]``, ``a`` ``Tensor[..., T, P]``; ``history`` ``Tensor[..., P]`` the samples before
    the start, oldest first (zeros by default). Inverts :func:`analysis` exactly (up to rounding)."""
    order = a.shape[-1]
    past = e.new_zeros(e.shape[:-1] + (order,)) if history is None else history.to(e.dtype).clone()
    coef = a.to(e.dtype).flip(-1)  # coef[..., t, j] multiplies past[..., j] (past is oldest first)
    out = torch.empty_like(e)
    for t in range(e.shape[-1]):
        out[..., t] = e[..., t] + (coef[..., t, :] * past).sum(-1)
        past = torch.cat([past[..., 1:], out[..., t:t + 1]], -1)
    return out


def envelope_db(a: torch.Tensor, err: torch.Tensor, n_fft: int) -> torch.Tensor:
    """All-pole power envelope in dB, ``10 log10(err / |A(e^{iw})|^2)`` on ``n_fft // 2 + 1`` bins:
    ``a`` ``Tensor[..., P]``, ``err`` ``Tensor[...]`` -> ``Tensor[..., K]``."""
    poly = torch.cat([torch.ones_like(a[..., :1]), -a], -1)
    response = torch.fft.rfft(poly, n=n_fft, dim=-1).abs().square()
    return 10 * torch.log10(err.unsqueeze(-1).clamp_min(1e-30) / response)
