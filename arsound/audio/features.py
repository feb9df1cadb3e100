"""Log-mel spectrograms in torch (equal to librosa's), the frame/sample alignment rule, and Griffin-Lim.

Letters: B batch, T samples, F frames, M mel bands, K = n_fft // 2 + 1 frequency bins.

``MelSpectrogram`` computes ``log(max(mel_fb @ |STFT(x)|^power, floor))`` with ``torch.stft`` and librosa's
Slaney mel filter bank, on any device and batch. It matches
``librosa.feature.melspectrogram(y=x, sr, n_fft, hop_length=hop, win_length=win, n_mels, fmin, fmax, power,
center, pad_mode)`` (librosa >= 0.10 pads with zeros, ``pad_mode='constant'``, and so do we by default).

Alignment rule (used by the WaveNet conditioning): with ``center=True`` frame ``f`` is the window centred on
sample ``f * hop``, and a clip of ``T`` samples has ``frames_for(T) = T // hop + 1`` frames. A vocoder
conditions sample ``n`` on frame ``n // hop``; so crop clips to ``T = k * hop`` samples (and crops to start at
a multiple of ``hop``), compute ``k + 1`` frames, and use the first ``k``: ``samples_for(k) = k * hop == T``.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn


def preemphasis(x: torch.Tensor, coef: float) -> torch.Tensor:
    """``y[t] = x[t] - coef * x[t - 1]`` along the last dim, with ``x[-1] = 0`` (first-order high-pass).

    Equals ``librosa.effects.preemphasis(x, coef=coef, zi=0)``; torch, so it runs on any device. A vocoder
    that models ``y`` and de-emphasizes its output (LPCNet, Valin & Skoglund 2019) moves its white sampling
    and quantization noise under the low-pass ``1 / (1 - coef z^-1)``, where speech and music keep their energy.
    """
    return x - coef * torch.nn.functional.pad(x, (1, 0))[..., :-1] if coef else x


def deemphasis(y: torch.Tensor, coef: float, state: torch.Tensor | None = None, return_state: bool = False):
    """Inverse of :func:`preemphasis`: ``x[t] = y[t] + coef * x[t - 1]`` along the last dim, from ``x[-1] = 0``
    or from the ``state`` a previous call returned (so a stream de-emphasized in chunks equals the whole:
    ``return_state=True`` gives ``(x, state)``). ``librosa.effects.deemphasis(y, coef=coef, zi=...)``, an IIR
    filter run by scipy on the CPU in float64."""
    if not coef:
        return (y, state) if return_state else y
    import librosa

    z = y.detach().double().cpu().numpy()
    zi = np.zeros(z.shape[:-1] + (1,)) if state is None else state.detach().double().cpu().numpy()
    x, zf = librosa.effects.deemphasis(z, coef=coef, zi=zi, return_zf=True)
    x = torch.from_numpy(np.ascontiguousarray(x)).to(device=y.device, dtype=y.dtype)
    return (x, torch.from_numpy(np.ascontiguousarray(zf))) if return_state else x


# a vocoder's conditioning: c = (log_mel + MEL_SHIFT) / MEL_SCALE, about unit scale (floor 1e-5 -> -2.2)
MEL_SHIFT, MEL_SCALE = 5.0, 3.0


def normalize_mel(log_mel: torch.Tensor) -> torch.Tensor:
    """Natural-log mel (``MelSpectrogram(log=True)``, floor 1e-5) -> a vocoder network's input."""
    return (log_mel + MEL_SHIFT) / MEL_SCALE


def mel_energy(c: torch.Tensor) -> torch.Tensor:
    """A vocoder's conditioning ``c[B, M, F]`` (normalized log of a magnitude mel) -> ``sum mel^2`` per row,
    ``Tensor[B]`` float64: a waveform scaled by ``g`` has its energy scaled by ``g^2`` (floored bins aside)."""
    return (2 * (c.double() * MEL_SCALE - MEL_SHIFT)).exp().sum((-2, -1))


def band_postfilter(y: torch.Tensor, c: torch.Tensor, front_end: "MelSpectrogram", passes: int = 8,
                    max_gain: float = 10.0) -> torch.Tensor:
    """A vocoder's output with its mel bands matched to its conditioning, frame by frame: ``passes`` times, each
    STFT bin of ``y`` is scaled by the filter-bank-weighted mean of its bands' ratios (conditioning mel /
    output mel, at most ``max_gain``; bins no band covers stay), then resynthesized (inverse STFT, ``y``'s
    phases). Only the mel is used, so it is a vocoder stage, not a reference: it removes what the bands say is
    too loud (the noise a small WaveNet's sampling puts in quiet bands and pauses) and raises what is too quiet,
    keeping the detail inside each band. Each pass reaches ``n_fft // hop`` frames of context either side.

    y: ``[B, T]`` with ``T = F * hop``; c: ``[B, M, F]`` the normalized log-mel conditioning (frame ``f``
    centred on sample ``f * hop``; the STFT's last frame, centred on sample ``T`` and half outside the output,
    takes frame ``F - 1``'s gains); front_end: the vocoder's :class:`MelSpectrogram` (centred). Returns
    ``[B, T]`` float32.
    """
    fe, (B, T), F_ = front_end, y.shape, c.shape[-1]
    if passes < 0 or T != F_ * fe.hop or c.shape[0] != B or c.shape[1] != fe.n_mels:
        raise ValueError(f"band_postfilter: y[B, F * {fe.hop}] and c[B, {fe.n_mels}, F] with passes >= 0, got "
                         f"{tuple(y.shape)}, {tuple(c.shape)}, passes={passes}")
    target = (c.float() * MEL_SCALE - MEL_SHIFT).exp().clamp_min(fe.floor)         # [B, M, F] magnitude mel
    fb, y = fe.fb.to(y.device), y.float()
    cover = fb.sum(0)[None, :, None]                                                # [1, K, 1]
    for _ in range(passes):
        S = torch.stft(y, fe.n_fft, fe.hop, fe.win, fe.window, center=True, pad_mode=fe.pad_mode,
                       return_complex=True)                                         # [B, K, F + 1]
        mag = S.abs() if fe.power == 1 else S.abs().square()
        ratio = target / (fb @ mag[..., :F_]).clamp_min(fe.floor)                   # [B, M, F]
        gain = (fb.t() @ ratio) / cover.clamp_min(1e-12)                            # [B, K, F]
        gain = torch.where(cover > 0, gain if fe.power == 1 else gain.sqrt(), 1.0).clamp(max=max_gain)
        gain = torch.cat([gain, gain[..., -1:]], -1)                                # [B, K, F + 1]
        y = torch.istft(S * gain, fe.n_fft, fe.hop, fe.win, fe.window, center=True, length=T)
    return y


def mel_filterbank(sr: int, n_fft: int, n_mels: int, fmin: float = 0.0, fmax: float | None = None) -> torch.Tensor:
    """librosa's Slaney-style (area-normalized) mel filter bank, ``Tensor[M, K]`` float32."""
    import librosa  # cheap: filters.mel is plain numpy, no numba compilation

    fb = librosa.filters.mel(sr=sr, n_fft=n_fft, n_mels=n_mels, fmin=fmin, fmax=fmax, htk=False, norm="slaney")
    return torch.from_numpy(np.asarray(fb, dtype=np.float32))


class MelSpectrogram(nn.Module):
    """``Tensor[B, T]`` (or ``[T]``) waveform -> ``Tensor[B, M, F]`` (or ``[M, F]``) (log-)mel spectrogram.

    ``power`` 1 gives a magnitude, 2 a power mel spectrogram; ``log`` applies ``log(clamp(mel, floor))``
    (natural log). The filter bank and window are non-persistent buffers: they follow ``.to(device)`` and
    are never saved in checkpoints (they are rebuilt from the arguments).
    """

    def __init__(self, sr: int = 16000, n_fft: int = 1024, hop: int = 256, win: int | None = 1024, n_mels: int = 80,
                 fmin: float = 0.0, fmax: float | None = None, power: float = 1.0, log: bool = True,
                 floor: float = 1e-5, center: bool = True, pad_mode: str = "constant"):
        super().__init__()
        win = win or n_fft
        if win > n_fft:
            raise ValueError(f"win ({win}) must be <= n_fft ({n_fft})")
        if power not in (1, 2, 1.0, 2.0):
            raise ValueError(f"power must be 1 (magnitude) or 2 (power), got {power}")
        self.sr, self.n_fft, self.hop, self.win, self.n_mels = sr, n_fft, hop, win, n_mels
        self.fmin, self.fmax, self.power, self.log, self.floor = fmin, fmax, float(power), log, floor
        self.center, self.pad_mode = center, pad_mode
        self.register_buffer("window", torch.hann_window(win, periodic=True), persistent=False)  # librosa 'hann'
        self.register_buffer("fb", mel_filterbank(sr, n_fft, n_mels, fmin, fmax), persistent=False)  # (M, K)

    def frames_for(self, samples: int) -> int:
        """Number of frames for ``samples`` samples: ``T // hop + 1`` centred, ``1 + (T - n_fft) // hop`` not."""
        if self.center:
            return samples // self.hop + 1
        return max(0, 1 + (samples - self.n_fft) // self.hop)

    def samples_for(self, frames: int) -> int:
        """Samples conditioned by ``frames`` frames when sample ``n`` uses frame ``n // hop``: ``frames * hop``."""
        return frames * self.hop

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        squeeze = x.dim() == 1
        x = x.unsqueeze(0) if squeeze else x  # (B, T)
        if x.dim() != 2:
            raise ValueError(f"expected a waveform [T] or [B, T], got shape {tuple(x.shape)}")
        spec = torch.stft(x, self.n_fft, hop_length=self.hop, win_length=self.win, window=self.window,
                          center=self.center, pad_mode=self.pad_mode, return_complex=True)  # (B, K, F)
        mag = spec.abs() if self.power == 1 else spec.real.square() + spec.imag.square()
        mel = torch.matmul(self.fb, mag)  # (M, K) @ (B, K, F) -> (B, M, F)
        if self.log:
            mel = torch.log(torch.clamp(mel, min=self.floor))
        return mel[0] if squeeze else mel

    @torch.no_grad()
    def invert(self, mel: torch.Tensor, n_iter: int = 32, length: int | None = None) -> torch.Tensor:
        """Griffin-Lim waveform for a (log-)mel made by this module: ``[M, F] -> [T]``, ``[B, M, F] -> [B, T]``."""
        return griffin_lim(mel, sr=self.sr, n_fft=self.n_fft, hop=self.hop, win=self.win, fmin=self.fmin,
                           fmax=self.fmax, power=self.power, log=self.log, center=self.center,
                           pad_mode=self.pad_mode, n_iter=n_iter, length=length)

    def extra_repr(self) -> str:
        return (f"sr={self.sr}, n_fft={self.n_fft}, hop={self.hop}, win={self.win}, n_mels={self.n_mels}, "
                f"fmin={self.fmin}, fmax={self.fmax}, power={self.power:g}, log={self.log}, center={self.center}")


def griffin_lim(mel: torch.Tensor, *, sr: int = 16000, n_fft: int = 1024, hop: int = 256, win: int | None = 1024,
                fmin: float = 0.0, fmax: float | None = None, power: float = 1.0, log: bool = True,
                center: bool = True, pad_mode: str = "constant", n_iter: int = 32,
                length: int | None = None, seed: int = 0) -> torch.Tensor:
    """Baseline vocoder: ``librosa.feature.inverse.mel_to_audio``'s two steps, NNLS mel inversion
    (``mel_to_stft``) + ``librosa.griffinlim`` from random phases drawn with ``seed`` (reproducible).

    ``mel``: ``Tensor[M, F]`` or ``[B, M, F]`` with the same settings it was computed with (``log=True``
    undoes the natural log). Returns float32 ``Tensor[T]`` / ``[B, T]`` on ``mel``'s device, with
    ``T = (F - 1) * hop`` (centred) unless ``length`` is given. Runs on the CPU in numpy; slow but simple.
    """
    import librosa

    m = mel.detach().float().cpu().numpy()
    if log:
        m = np.exp(m)
    stft = librosa.feature.inverse.mel_to_stft(m, sr=sr, n_fft=n_fft, power=power, fmin=fmin, fmax=fmax)
    y = librosa.griffinlim(stft, n_iter=n_iter, hop_length=hop, win_length=win, n_fft=n_fft, center=center,
                           dtype=np.float32, length=length, pad_mode=pad_mode, random_state=seed)
    return torch.from_numpy(np.ascontiguousarray(y, dtype=np.float32)).to(mel.device)


class MelFrontEnd:
    """What a mel-conditioned vocoder (WaveNet, WaveRNN) shares, read from its ``config``: the front end
    (``sample_rate, n_fft, hop_length, cond_channels, fmin, fmax``) and the label names of its global
    conditioning (``num_speakers, speaker_names``). Mixed into ``nn.Module`` models (``self.device``)."""

    @property
    def is_vocoder(self) -> bool:
        """Conditioned on log-mel frames (``cond_channels`` bands, ``hop_length`` hop)."""
        return self.config.cond_channels > 0

    def mel_spectrogram(self, center: bool = True) -> MelSpectrogram:
        """The front end of the config: waveform ``[B, T]`` -> natural-log mel ``[B, cond_channels, frames]``."""
        cfg = self.config
        return MelSpectrogram(sr=cfg.sample_rate, n_fft=cfg.n_fft, hop=cfg.hop_length, win=cfg.n_fft,
                              n_mels=cfg.cond_channels, fmin=cfg.fmin, fmax=cfg.fmax, power=1.0, log=True,
                              center=center).to(self.device)

    def mel_condition(self, wav: torch.Tensor) -> torch.Tensor:
        """Waveform ``[B, T]`` -> the network's local conditioning ``c[B, cond_channels, T // hop]``: the
        normalized log-mel of the whole clip, frame ``f`` centred on sample ``f * hop``, so sample ``n``
        is conditioned on frame ``n // hop`` (the module docstring)."""
        frames = wav.shape[-1] // self.config.hop_length
        return normalize_mel(self.mel_spectrogram()(wav.to(self.device, torch.float32))[..., :frames])

    def check_frames(self, c: torch.Tensor) -> None:
        """Local conditioning (or a block of it) is ``c[B, cond_channels, frames]`` of finite numbers."""
        C = self.config.cond_channels
        if c.ndim != 3 or c.shape[1] != C:
            raise ValueError(f"local conditioning must be c[B, {C}, frames], got {tuple(c.shape)}")
        if not torch.isfinite(c).all():
            raise ValueError(f"local conditioning contains {int((~torch.isfinite(c)).sum())} NaN/Inf values")

    def speaker_index(self, spec: int | str) -> int:
        """A speaker / instrument id or name (``config.speaker_names``) -> its index; ``ValueError`` if unknown."""
        names, n = [str(s) for s in self.config.speaker_names], self.config.num_speakers
        if str(spec) in names:
            return names.index(str(spec))
        if not str(spec).lstrip("-").isdigit() or not 0 <= int(spec) < n:
            raise ValueError(f"speaker must be an id in [0, {n})" + (f" or one of {names}" if names else "")
                             + f", got '{spec}'")
        return int(spec)
