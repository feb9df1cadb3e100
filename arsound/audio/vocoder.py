"""Vocoding: a waveform (or a log-mel) resynthesized by a mel-conditioned WaveNet (or WaveRNN), and its baseline.

A vocoder is a :class:`~arsound.audio.wavenet.WaveNet` conditioned on 80-band log-mel frames (the vocoder
of Tacotron 2, Shen et al., 2018, arXiv:1712.05884), optionally also on a speaker / instrument id. Its
saved config holds everything vocoding needs: the mel front end (``sample_rate, n_fft, hop_length,
cond_channels, fmin, fmax``), pre-emphasis, the label names, and the sampling temperature and post-filter passes
chosen for it on validation clips, so ``arsound.load(name)`` alone can vocode::

    model = arsound.load("wavenet-speech-en")
    y = vocode(model, wav=x)                     # Tensor[T] -> Tensor[(T // hop) * hop]

``match_level`` scales the output so the energy of its mel equals the input mel's (one gain per clip, from
the mel alone: the vocoder's only input), for models whose sampling noise makes them a few dB too loud or quiet.
``postfilter=k`` goes further, band by band and frame by frame (``features.band_postfilter``, ``k`` passes): the
output's mel is pulled onto the conditioning's, which takes out the sampling noise a small WaveNet leaves in quiet
bands and pauses while keeping the detail inside each band. Left out (``None``), it is the model's choice,
``config.postfilter`` (32 for the shipped WaveNets; 0, off, for models that do not set it, and with
``match_level``); ``postfilter=0`` gives the network's raw output.

The baseline every evaluation reports beside it is Griffin-Lim (``features.griffin_lim``) from the same
mel (:func:`griffin_lim_of`); the metrics are ``audio/metrics.py``'s.

Letters: B batch, T samples, M mel bands, F frames.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Iterator

import soundfile as sf
import torch
from torch import Tensor

from .features import MelSpectrogram, band_postfilter, mel_energy, normalize_mel
from .io import AudioError, audio_info, iter_chunks, read_span, resample_file, save_audio_stream
from .metrics import log_spectral_distance, mr_stft_distance, vocoder_metrics
from .wavenet import WaveNet

BLOCK_FRAMES = 512   # frames of conditioning read at a time from a file (8 s at hop 256 and 16 kHz)


def vocoder_name(model) -> str:
    """What a vocoder is, for tables: ``WaveNet``, ``LP WaveNet`` or ``WaveRNN``."""
    return ("LP " if getattr(model, "is_lp", False) else "") + type(model).__name__


def check_vocoder(model) -> None:
    if not getattr(model, "is_vocoder", False) or not hasattr(model, "generate"):
        raise ValueError(f"{type(model).__name__} is not a mel-conditioned vocoder (a WaveNet or WaveRNN with "
                         "cond_channels > 0); pass a vocoder checkpoint such as wavenet-speech-en")


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
           temperature: float | None = None, greedy: bool = False, seed: int = 0, progress: bool = True,
           precision: str = "fp32", match_level: bool = False, postfilter: int | None = None) -> Tensor:
    """Waveform from a mel-conditioned WaveNet through its cached generator (with a progress bar).

    wav: ``Tensor[T]`` / ``[B, T]`` in [-1, 1] -> its log-mel (the model's front end) -> resynthesized
        ``Tensor[T']`` / ``[B, T']`` with ``T' = (T // hop) * hop``.
    mel: ``Tensor[M, F]`` / ``[B, M, F]`` natural-log mel as the front end makes it -> ``F * hop`` samples.
        Exactly one of ``wav`` / ``mel``.
    g: speaker / instrument (id, name or ``LongTensor[B]``) for models with global conditioning (default 0).
    temperature: default the model's ``config.temperature``.
    precision: a WaveNet's native step's weights, ``"fp32"`` or ``"bf16"`` (``WaveNet.stream``).
    match_level: scale each output row so its mel's energy equals the conditioning's (:func:`level_gain`),
        clipped to [-1, 1].
    postfilter: passes of :func:`~arsound.audio.features.band_postfilter` (0: none), then clipped to [-1, 1];
        it matches the level band by band, so it excludes ``match_level``. Default: :func:`postfilter_passes`.
    """
    check_vocoder(model)
    postfilter = postfilter_passes(model, postfilter, match_level)
    if (wav is None) == (mel is None):
        raise ValueError("vocode needs exactly one of wav or mel")
    if precision != "fp32" and not isinstance(model, WaveNet):
        raise ValueError(f"precision='{precision}' is the WaveNet's native step's; a {vocoder_name(model)} runs "
                         "in fp32")
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
    generator = torch.Generator().manual_seed(seed)  # uniforms drawn on the CPU: the same for vocode_file's pieces
    extra = {} if precision == "fp32" else {"precision": precision}      # WaveRNN's stream has no precision
    pieces = model.stream_waveform(c=c, g=_speakers(model, g, c.shape[0]), temperature=temperature, greedy=greedy,
                                   generator=generator, progress=progress, **extra)
    out = torch.cat(list(pieces), dim=1)
    if match_level:
        out = (out * level_gain(mel_energy(c), mel_energy(model.mel_condition(out)))[:, None]).clamp(-1, 1)
    out = postfilter_output(model, out, c, postfilter)
    return out[0] if squeeze else out


def postfilter_output(model, y: Tensor, c: Tensor, passes: int) -> Tensor:
    """What :func:`vocode` returns for the raw output ``y[B, F * hop]`` of conditioning ``c[B, M, F]`` after
    ``passes`` of :func:`~arsound.audio.features.band_postfilter` (clipped to [-1, 1]; 0: ``y`` itself), so one
    raw draw can be scored at several counts."""
    return band_postfilter(y, c.cpu(), model.mel_spectrogram().cpu(), passes).clamp(-1, 1) if passes else y


def postfilter_passes(model, postfilter: int | None = None, match_level: bool = False) -> int:
    """The band post-filter passes a vocoding runs: ``postfilter`` when given (0: off), else the model's choice,
    ``config.postfilter`` (0 for models without one, and with ``match_level``, which it excludes)."""
    what = "postfilter"
    if postfilter is None:
        postfilter = 0 if match_level else getattr(model.config, "postfilter", 0)
        what = "the model's config.postfilter"
    if isinstance(postfilter, bool) or not isinstance(postfilter, int) or postfilter < 0:
        raise ValueError(f"{what} must be a number of passes >= 0, got {postfilter!r}")
    if postfilter and match_level:
        raise ValueError("postfilter already matches the level, band by band; drop match_level (or pass "
                         "postfilter=0)")
    return postfilter


def level_gain(e_in: Tensor, e_out: Tensor) -> Tensor:
    """The gain that gives an output of mel energy ``e_out`` the input's ``e_in`` (``Tensor[B]`` each, from
    :func:`~arsound.audio.features.mel_energy`): ``sqrt(e_in / e_out)``, 1 for a silent output, float32."""
    return torch.where(e_out > 0, (e_in / e_out.clamp_min(1e-300)).sqrt(), torch.ones_like(e_in)).float()


def griffin_lim_of(wav: Tensor, mel: MelSpectrogram, n_iter: int = 32, postfilter: int = 0) -> Tensor:
    """The baseline: Griffin-Lim (seeded) from ``wav``'s own log-mel, ``[.., T] -> [.., T]``; ``postfilter``:
    then that many passes of :func:`~arsound.audio.features.band_postfilter` (``T`` whole frames of the hop),
    so a post-filtered vocoder is compared with a post-filtered baseline."""
    gl = mel.invert(mel(wav), n_iter=n_iter, length=wav.shape[-1])
    if not postfilter:
        return gl
    F_ = wav.shape[-1] // mel.hop
    c = normalize_mel(mel(wav)[..., :F_])
    return band_postfilter(gl.reshape(-1, wav.shape[-1]), c.reshape(-1, *c.shape[-2:]), mel,
                           postfilter).clamp(-1, 1).reshape(gl.shape)


def compare_with_griffin_lim(model, wav: Tensor, y: Tensor, gl_iters: int = 32,
                             full: bool = False, postfilter: int | None = None) -> tuple[Tensor, dict]:
    """Griffin-Lim (``gl_iters`` iterations) from ``wav``'s mel and both resyntheses scored against ``wav``
    (``[T]``, cut to ``y``'s length): ``(griffin_lim[T'], {"wavenet": {lsd_db, mrstft}, "griffin_lim": ...})``;
    ``full`` adds every measure of :func:`~arsound.audio.metrics.vocoder_metrics` (PESQ, STOI, F0 RMSE, VDE);
    ``postfilter``: the post-filter passes ``y`` had, which Griffin-Lim's output gets too (default: the model's
    choice, as :func:`vocode`'s default)."""
    postfilter = postfilter_passes(model, postfilter)
    ref = wav[..., :y.shape[-1]]
    gl = griffin_lim_of(ref, model.mel_spectrogram().cpu(), gl_iters, postfilter)
    scores = {}
    for name, z in (("wavenet", y), ("griffin_lim", gl)):
        m = (vocoder_metrics(ref, z, model.config.sample_rate) if full else
             {"lsd_db": log_spectral_distance(ref, z), "mrstft": mr_stft_distance(ref, z)["total"]})
        scores[name] = {k: round(v.mean().item(), 4) for k, v in m.items()}
    return gl, scores


def mel_blocks(model, path, frames: int, block: int = BLOCK_FRAMES) -> Iterator[Tensor]:
    """A vocoder's conditioning for the first ``frames`` frames of an audio file at the model's rate, read
    ``block`` frames at a time: ``Tensor[1, M, <= block]`` each. Frame ``f`` is centred on sample ``f * hop`` of
    the whole file (each block is read with ``n_fft // 2`` samples of context, zeros past the ends, and an
    uncentred STFT), so the blocks equal :meth:`WaveNet.mel_condition` of the whole file."""
    hop, pad = model.config.hop_length, model.config.n_fft // 2
    total = audio_info(Path(path)).frames
    mel = model.mel_spectrogram(center=False).cpu()
    for f0 in range(0, frames, block):
        f1 = min(frames, f0 + block)
        wav = read_span(path, f0 * hop, (f1 - f0) * hop, pad, total)
        yield normalize_mel(mel(wav))[None, :, :f1 - f0]


@torch.no_grad()
def vocode_file(model, src, out, g: int | str | None = None, *, temperature: float | None = None, seed: int = 0,
                progress: bool = True, match_level: bool = False, postfilter: int | None = None) -> int:
    """Vocode an audio file of any length into ``out`` (its log-mel, then the WaveNet), streaming: the input is
    read and the output written a block at a time, so memory does not grow with the length. A file at
    another rate is first resampled into a temporary file (soxr, streaming). Equals :func:`vocode` of the
    whole waveform with the same seed; returns the samples written (whole frames)."""
    check_vocoder(model)
    cfg = model.config
    src = Path(src)
    info = audio_info(src)
    with tempfile.TemporaryDirectory() as tmp:
        if info.samplerate != cfg.sample_rate:
            src = resample_file(src, Path(tmp) / "input.wav", cfg.sample_rate)
            info = audio_info(src)
        frames = info.frames // cfg.hop_length
        if frames < 1:
            raise AudioError(src, f"{info.frames / info.samplerate:.3f} s long, shorter than one frame "
                                  f"({cfg.hop_length} samples)")
        return vocode_frames(model, mel_blocks(model, src, frames), out, g, temperature=temperature, seed=seed,
                             progress=progress, frames=frames, match_level=match_level, postfilter=postfilter)


@torch.no_grad()
def vocode_frames(model, blocks: Iterator[Tensor], out, g: int | str | None = None, *,
                  temperature: float | None = None, seed: int = 0, progress: bool = True,
                  frames: int | None = None, match_level: bool = False, postfilter: int | None = None) -> int:
    """Vocode conditioning given as blocks ``[1, M, F_i]`` of normalized log-mel frames (:func:`mel_blocks`;
    ``frames`` in all, if known, for the progress bar) into the audio file ``out``, a piece at a time;
    returns the samples written. ``match_level``: as :func:`vocode`'s, in a second pass (the raw output
    goes to a temporary float WAV, its mel energy is measured a block at a time, then it is scaled into
    ``out``), so memory still does not grow with the length. The measurement reads the raw output clipped to
    [-1, 1] (``read_span``), so it differs from :func:`vocode`'s only where the network's output exceeds that.
    ``postfilter``: as :func:`vocode`'s, in a second pass over the raw output and the conditioning (kept in
    temporary files), a block at a time with enough frames of context that it equals :func:`vocode`'s (and the
    same default, :func:`postfilter_passes`)."""
    postfilter = postfilter_passes(model, postfilter, match_level)
    cfg = model.config
    temperature = cfg.temperature if temperature is None else temperature
    generator = torch.Generator().manual_seed(seed)  # uniforms drawn on the CPU: the same values as vocode()'s
    e_in = torch.zeros(1, dtype=torch.float64)

    def counted(blocks, mel_file):
        nonlocal e_in
        for c in blocks:
            e_in = e_in + mel_energy(c).cpu()
            if mel_file is not None:
                mel_file.write(c[0].t().float().cpu().numpy().tobytes())        # frame-major float32
            yield c

    if not (match_level or postfilter):
        pieces = model.stream_waveform(1, c=blocks, g=_speakers(model, g, 1), temperature=temperature,
                                       generator=generator, progress=progress,
                                       expected=None if frames is None else frames * cfg.hop_length)
        return save_audio_stream([out], pieces, cfg.sample_rate)
    with tempfile.TemporaryDirectory() as tmp:
        raw, mels, n = Path(tmp) / "raw.wav", Path(tmp) / "mel.f32", 0
        with open(mels, "wb") as mf, sf.SoundFile(str(raw), "w", cfg.sample_rate, 1, "FLOAT", format="WAV") as f:
            pieces = model.stream_waveform(1, c=counted(blocks, mf if postfilter else None), g=_speakers(model, g, 1),
                                           temperature=temperature, generator=generator, progress=progress,
                                           expected=None if frames is None else frames * cfg.hop_length)
            for y in pieces:
                f.write(y[0].float().numpy())
                n += y.shape[-1]
        if postfilter:
            return save_audio_stream([out], postfiltered_blocks(model, raw, mels, postfilter), cfg.sample_rate)
        e_out = sum(mel_energy(c) for c in mel_blocks(model, raw, n // cfg.hop_length))
        gain = level_gain(e_in, e_out).item()
        block = BLOCK_FRAMES * cfg.hop_length
        return save_audio_stream([out], (torch.from_numpy(x)[None] * gain
                                         for x in iter_chunks(raw, block / cfg.sample_rate)), cfg.sample_rate)


def postfiltered_blocks(model, raw, mels, passes: int, block: int = BLOCK_FRAMES) -> Iterator[Tensor]:
    """:func:`~arsound.audio.features.band_postfilter` of a long output, ``block`` frames at a time: the raw
    output (a float WAV of ``F * hop`` samples) and its conditioning (``F`` frames of ``M`` float32, frame-major,
    in the file ``mels``) are read with ``4 passes + 4`` frames of context either side (each pass reaches
    ``n_fft // hop`` frames), so the blocks equal the whole output filtered at once. Yields ``[1, t]`` pieces."""
    import numpy as np

    cfg, fe = model.config, model.mel_spectrogram().cpu()
    hop, M = cfg.hop_length, cfg.cond_channels
    c_all = np.memmap(mels, dtype=np.float32, mode="r").reshape(-1, M)              # [F, M]
    F_ = len(c_all)
    ctx = passes * -(-fe.n_fft // hop) + 4
    with sf.SoundFile(str(raw)) as f:
        for f0 in range(0, F_, block):
            f1 = min(F_, f0 + block)
            a, b = max(0, f0 - ctx), min(F_, f1 + ctx)
            f.seek(a * hop)
            y = torch.from_numpy(f.read((b - a) * hop, dtype="float32"))[None]
            c = torch.from_numpy(np.array(c_all[a:b])).t()[None]
            y = band_postfilter(y, c, fe, passes).clamp(-1, 1)
            yield y[:, (f0 - a) * hop:(f1 - a) * hop]


__all__ = ["check_vocoder", "compare_with_griffin_lim", "griffin_lim_of", "level_gain", "mel_blocks",
           "postfilter_output", "postfilter_passes", "postfiltered_blocks", "vocode", "vocode_file", "vocode_frames",
           "vocoder_name"]
