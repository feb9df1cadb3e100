"""Vocoding: a waveform (or a log-mel) resynthesized by a mel-conditioned WaveNet, and its baseline.

A vocoder is a :class:`~arsound.audio.wavenet.WaveNet` conditioned on 80-band log-mel frames (the vocoder
of Tacotron 2, Shen et al., 2018, arXiv:1712.05884), optionally also on a speaker / instrument id. Its
saved config holds everything vocoding needs: the mel front end (``sample_rate, n_fft, hop_length,
cond_channels, fmin, fmax``), pre-emphasis, the label names and the sampling temperature its recipe chose,
so ``arsound.load(name)`` alone can vocode::

    model = arsound.load("wavenet-speech-en")
    y = vocode(model, wav=x)                     # Tensor[T] -> Tensor[(T // hop) * hop]

The baseline every evaluation reports beside it is Griffin-Lim (``features.griffin_lim``) from the same
mel (:func:`griffin_lim_of`); the metrics are ``audio/metrics.py``'s.

Letters: B batch, T samples, M mel bands, F frames.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .features import MelSpectrogram, normalize_mel
from .metrics import log_spectral_distance, mr_stft_distance


def check_vocoder(model) -> None:
    if not getattr(model, "is_vocoder", False) or not hasattr(model, "generate"):
        raise ValueError(f"{type(model).__name__} is not a mel-conditioned WaveNet (cond_channels > 0); "
                         "pass a vocoder checkpoint such as wavenet-speech-en")


def _speakers(model, g, B: int) -> Tensor | None:
    """``g`` (None, an id or name, or ``LongTensor[B]``) -> ``LongTensor[B]`` on the model's device."""
    if model.config.num_speakers == 0:
        if g is not None:
            raise ValueError("this vocoder has no global conditioning; drop the speaker id")
        return None
    if g is None or isinstance(g, (int, str)):
        g = torch.full((B,), 0 if g is None else model.speaker_index(g), dtype=torch.long)
    g = torch.as_tensor(g, dtype=torch.long).reshape(-1)
    return (g.expand(B) if g.numel() == 1 else g).to(model.device)


@torch.no_grad()
def vocode(model, wav: Tensor | None = None, mel: Tensor | None = None, g: Tensor | int | str | None = None, *,
           temperature: float | None = None, greedy: bool = False, seed: int = 0, progress: bool = True) -> Tensor:
    """Waveform from a mel-conditioned WaveNet through its cached generator (with a progress bar).

    wav: ``Tensor[T]`` / ``[B, T]`` in [-1, 1] -> its log-mel (the model's front end) -> resynthesized
        ``Tensor[T']`` / ``[B, T']`` with ``T' = (T // hop) * hop``.
    mel: ``Tensor[M, F]`` / ``[B, M, F]`` natural-log mel as the front end makes it -> ``F * hop`` samples.
        Exactly one of ``wav`` / ``mel``.
    g: speaker / instrument (id, name or ``LongTensor[B]``) for models with global conditioning (default 0).
    temperature: default the model's ``config.temperature``.
    """
    check_vocoder(model)
    if (wav is None) == (mel is None):
        raise ValueError("vocode needs exactly one of wav or mel")
    cfg = model.config
    if wav is not None:
        squeeze = wav.ndim == 1
        wav = wav.unsqueeze(0) if squeeze else wav
        if wav.ndim != 2 or wav.shape[-1] < cfg.hop_length:
            raise ValueError(f"waveform must be [T] or [B, T] with T >= {cfg.hop_length} samples, "
                             f"got {tuple(wav.shape)}")
        if not torch.isfinite(wav).all():
            raise ValueError("waveform contains NaN/Inf samples")
        c = model.mel_condition(wav)                                        # (B, M, F)
    else:
        squeeze = mel.ndim == 2
        mel = mel.unsqueeze(0) if squeeze else mel
        if mel.ndim != 3 or mel.shape[1] != cfg.cond_channels or mel.shape[-1] < 1:
            raise ValueError(f"mel must be [{cfg.cond_channels}, frames] or [B, {cfg.cond_channels}, frames], "
                             f"got {tuple(mel.shape)}")
        if not torch.isfinite(mel).all():
            raise ValueError("mel contains NaN/Inf values")
        c = normalize_mel(mel.float()).to(model.device)
    temperature = cfg.temperature if temperature is None else temperature
    generator = torch.Generator(device=model.device).manual_seed(seed)
    x = model.generate(c=c, g=_speakers(model, g, c.shape[0]), temperature=temperature, greedy=greedy,
                       generator=generator, progress=progress)
    out = model.decode(x).cpu()
    return out[0] if squeeze else out


def griffin_lim_of(wav: Tensor, mel: MelSpectrogram, n_iter: int = 32) -> Tensor:
    """The baseline: Griffin-Lim (seeded) from ``wav``'s own log-mel, ``[.., T] -> [.., T]``."""
    return mel.invert(mel(wav), n_iter=n_iter, length=wav.shape[-1])


def compare_with_griffin_lim(model, wav: Tensor, y: Tensor, gl_iters: int = 32) -> tuple[Tensor, dict]:
    """Griffin-Lim (``gl_iters`` iterations) from ``wav``'s mel and both resyntheses scored against ``wav``
    (``[T]``, cut to ``y``'s length): ``(griffin_lim[T'], {"wavenet": {lsd_db, mrstft}, "griffin_lim": ...})``."""
    ref = wav[..., :y.shape[-1]]
    gl = griffin_lim_of(ref, model.mel_spectrogram().cpu(), gl_iters)
    scores = {name: {"lsd_db": round(log_spectral_distance(ref, z).mean().item(), 3),
                     "mrstft": round(mr_stft_distance(ref, z)["total"].mean().item(), 4)}
              for name, z in (("wavenet", y), ("griffin_lim", gl))}
    return gl, scores


__all__ = ["check_vocoder", "compare_with_griffin_lim", "griffin_lim_of", "vocode"]
