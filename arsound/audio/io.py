"""Audio files in and out: load (mono mixdown, soxr resampling), atomic save, level normalization, streaming.

Waveforms are float32 in ``[-1, 1]``: ``[T]`` for mono, ``[C, T]`` (channels first, like torch) otherwise.
Every problem with a file is an :class:`AudioError` (a ``ValueError``) whose one-line message names the
file and what is wrong with it, so the CLI prints it as a user error:

    cannot read audio 'x.wav': no such file
    cannot read audio 'x.wav': 0.12 s long, need at least 1.00 s

Formats: whatever libsndfile reads (WAV, FLAC, OGG/Vorbis, AIFF, ...); saving picks the container from the
extension (``.wav`` / ``.flac`` / ``.ogg``) and writes a temporary file that is renamed into place, so an
interrupted save never leaves a half-written file under the final name.
"""
from __future__ import annotations

import contextlib
import re
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf
import soxr
import torch

from ..core.files import atomic_write

# extension -> (libsndfile container, default subtype)
SAVE_FORMATS = {".wav": ("WAV", "PCM_16"), ".flac": ("FLAC", "PCM_16"), ".ogg": ("OGG", "VORBIS")}
RESAMPLE_QUALITY = "HQ"  # soxr's high quality (librosa's 'soxr_hq')


class AudioError(ValueError):
    """A file that cannot be used as audio; ``str(e)`` is one line naming the file and the problem."""

    def __init__(self, path, problem: str, verb: str = "read"):
        self.path, self.problem = str(path), problem
        super().__init__(f"cannot {verb} audio '{path}': {problem}")


def audio_info(path: Path) -> sf._SoundFileInfo:
    if not path.exists():
        raise AudioError(path, "no such file")
    if not path.is_file():
        raise AudioError(path, "not a file")
    try:
        info = sf.info(str(path))
    except (sf.LibsndfileError, RuntimeError) as e:  # not audio, truncated header, unknown format
        reason = str(e).split(":")[-1].strip().rstrip(".") or "unknown format"
        raise AudioError(path, f"not a readable audio file ({reason})") from None
    # a data chunk cut short (a copy or download that stopped): libsndfile reads what is there, silently
    cut = re.search(r"^data\s*:\s*(\d+) \(should be (\d+)\)", info.extra_info, re.M)
    if cut and 0 < int(cut.group(1)) < 0xFFFFFFFF and int(cut.group(1)) > int(cut.group(2)):
        raise AudioError(path, f"truncated: its header promises {int(cut.group(1)):,} bytes of samples but the file "
                               f"holds {int(cut.group(2)):,}; copy or export it again")
    return info


def _check_finite(path, x: np.ndarray) -> None:
    if not np.isfinite(x).all():
        bad = int((~np.isfinite(x)).sum())
        raise AudioError(path, f"contains {bad} NaN/Inf samples")


def resample(wav: np.ndarray, orig_sr: int, sr: int) -> np.ndarray:
    """Resample ``[T]`` or ``[C, T]`` float32 with soxr (HQ); the output has ``round(T * sr / orig_sr)`` samples."""
    if orig_sr == sr:
        return wav
    y = soxr.resample(np.ascontiguousarray(wav.T), orig_sr, sr, quality=RESAMPLE_QUALITY)  # soxr wants [T, C]
    return np.ascontiguousarray(y.T, dtype=np.float32)


def load_audio(path, sr: int | None = None, mono: bool = True, min_seconds: float | None = None,
               as_tensor: bool = False) -> tuple[np.ndarray | torch.Tensor, int]:
    """Read ``path`` -> ``(wav, sr)``; ``wav`` float32 ``[T]`` (``mono``) or ``[C, T]``.

    ``sr=None`` keeps the file's rate, otherwise resamples with soxr. ``mono`` averages the channels.
    Raises :class:`AudioError` for a missing / unreadable / empty file, NaN or Inf samples, or audio
    shorter than ``min_seconds``. ``as_tensor`` returns a ``torch.Tensor`` instead of an ndarray.
    """
    path = Path(path)
    info = audio_info(path)
    if info.frames == 0:
        raise AudioError(path, "empty (0 samples)")
    try:
        x, file_sr = sf.read(str(path), dtype="float32", always_2d=True)  # [T, C]
    except (sf.LibsndfileError, RuntimeError) as e:
        raise AudioError(path, f"decoding failed ({str(e).split(':')[-1].strip().rstrip('.')})") from None
    if len(x) == 0:
        raise AudioError(path, "empty (0 samples)")
    _check_finite(path, x)
    wav = x.mean(axis=1) if mono else np.ascontiguousarray(x.T)  # [T] or [C, T]
    if sr is not None and sr != file_sr:
        wav = resample(wav, file_sr, sr)
    else:
        sr = file_sr
    if min_seconds is not None and wav.shape[-1] < min_seconds * sr:
        raise AudioError(path, f"{wav.shape[-1] / sr:.2f} s long, need at least {min_seconds:.2f} s")
    wav = wav.astype(np.float32, copy=False)
    return (torch.from_numpy(wav) if as_tensor else wav), int(sr)


def save_audio(path, wav, sr: int, subtype: str | None = None) -> Path:
    """Write ``wav`` (``[T]`` or ``[C, T]``, ndarray or Tensor, in [-1, 1]) to ``path`` atomically.

    The container follows the extension (.wav / .flac / .ogg); ``subtype`` defaults to 16-bit PCM
    (Vorbis for .ogg), e.g. ``subtype="FLOAT"`` keeps 32-bit floats in a WAV. Integer subtypes clip
    to [-1, 1]; normalize first (:func:`normalize_peak`) if the signal may exceed it.
    """
    path = Path(path)
    ext = path.suffix.lower()
    if ext not in SAVE_FORMATS:
        raise AudioError(path, f"unsupported extension '{path.suffix}' (use one of {sorted(SAVE_FORMATS)})", "save")
    fmt, default_subtype = SAVE_FORMATS[ext]
    subtype = subtype or default_subtype
    if isinstance(wav, torch.Tensor):
        wav = wav.detach().cpu().numpy()
    x = np.asarray(wav, dtype=np.float32)
    if x.ndim not in (1, 2) or x.shape[-1] == 0:
        raise AudioError(path, f"expected a non-empty [T] or [C, T] waveform, got shape {tuple(x.shape)}", "save")
    if not np.isfinite(x).all():
        raise AudioError(path, "waveform contains NaN/Inf", "save")
    if not subtype.startswith(("FLOAT", "DOUBLE")):
        x = np.clip(x, -1.0, 1.0)
    with atomic_write(path, "wb") as f:
        sf.write(f, x.T if x.ndim == 2 else x, int(sr), format=fmt, subtype=subtype)  # soundfile wants [T, C]
    return path


def resample_file(src, dst, sr: int, block_seconds: float = 10.0) -> Path:
    """Write ``src`` (mono mixdown) resampled to ``sr`` into ``dst`` (32-bit float WAV), a block at a time
    (soxr's streaming resampler: the same samples as resampling the whole file, memory one block)."""
    src, dst = Path(src), Path(dst)
    info = audio_info(src)
    stream = soxr.ResampleStream(info.samplerate, sr, 1, dtype="float32", quality=RESAMPLE_QUALITY)
    block = max(1, int(block_seconds * info.samplerate))
    with sf.SoundFile(str(dst), "w", sr, 1, "FLOAT", format="WAV") as out:
        blocks = sf.blocks(str(src), blocksize=block, dtype="float32", always_2d=True)
        for i, x in enumerate(blocks):
            _check_finite(src, x)
            last = (i + 1) * block >= info.frames
            out.write(stream.resample_chunk(np.ascontiguousarray(x.mean(axis=1)), last=last))
    return dst


def read_span(path, start: int, length: int, pad: int = 0, total: int | None = None) -> torch.Tensor:
    """Samples ``[start - pad, start + length + pad)`` of a file (mono mixdown, clipped to [-1, 1]) as
    ``Tensor[length + 2 pad]``, zeros where the span reaches past either end of the file's ``total`` samples.
    Only that span is read, so any length of file costs the span's memory."""
    if total is None:
        total = audio_info(Path(path)).frames
    lo, hi = max(0, start - pad), min(total, start + length + pad)
    x, _ = sf.read(str(path), start=lo, stop=hi, dtype="float32", always_2d=True)
    _check_finite(path, x)
    x = torch.from_numpy(np.ascontiguousarray(x.mean(axis=1)))
    return torch.nn.functional.pad(x, (lo - (start - pad), (start + length + pad) - hi)).clamp_(-1, 1)


def save_audio_stream(paths, pieces, sr: int) -> int:
    """Write waveform pieces ``[B, t]`` (Tensors in [-1, 1]) to ``B`` files (row ``b`` to ``paths[b]``, 16-bit
    PCM, Vorbis for .ogg) as they come, so a stream of any length costs one piece of memory. Atomic: nothing
    appears under any path until the last piece is written, and an error leaves none. Returns the samples
    written per file."""
    paths = [Path(p) for p in paths]
    for path in paths:
        if path.suffix.lower() not in SAVE_FORMATS:
            raise AudioError(path, f"unsupported extension '{path.suffix}' (use one of {sorted(SAVE_FORMATS)})", "save")
    n = 0
    with contextlib.ExitStack() as stack:
        outs = []
        for path in paths:
            fmt, subtype = SAVE_FORMATS[path.suffix.lower()]
            f = stack.enter_context(atomic_write(path, "wb"))
            outs.append(stack.enter_context(sf.SoundFile(f, "w", sr, 1, subtype, format=fmt)))
        for y in pieces:
            if not torch.isfinite(y).all():
                raise AudioError(paths[0], "waveform contains NaN/Inf", "save")
            for out, row in zip(outs, y):
                out.write(row.detach().cpu().float().clamp(-1, 1).numpy())
            n += y.shape[-1]
    return n


# ---- levels -----------------------------------------------------------------------------------------
def _peak(x):
    return x.abs().amax(dim=-1, keepdim=True) if isinstance(x, torch.Tensor) else np.abs(x).max(-1, keepdims=True)


def _rms(x):
    if isinstance(x, torch.Tensor):
        return x.pow(2).mean(dim=-1, keepdim=True).sqrt()
    return np.sqrt(np.mean(np.square(x, dtype=np.float64), axis=-1, keepdims=True)).astype(x.dtype)


def normalize_peak(wav, peak: float = 0.95):
    """Scale each row (last axis) so its largest ``|sample|`` equals ``peak``; silent rows stay silent."""
    p = _peak(wav)
    gain = peak / (p + (p == 0))  # silent -> gain irrelevant (x == 0)
    return wav * gain


def normalize_loudness(wav, target_db: float = -20.0, max_peak: float | None = 1.0):
    """Scale each row to an RMS level of ``target_db`` dBFS (RMS loudness, not LUFS; full-scale sine = -3 dB).

    With ``max_peak`` the gain is capped so that no sample exceeds it (quiet-but-peaky signals then land
    below the target). Silent rows stay silent.
    """
    rms = _rms(wav)
    gain = 10.0 ** (target_db / 20.0) / (rms + (rms == 0))
    if max_peak is not None:
        p = _peak(wav)
        cap = max_peak / (p + (p == 0))
        gain = torch.minimum(gain, cap) if isinstance(wav, torch.Tensor) else np.minimum(gain, cap)
    return wav * gain


def trim_silence(wav: np.ndarray, sr: int, top_db: float = 40.0, frame: int = 1024, hop: int = 256,
                 fade_seconds: float = 0.05) -> np.ndarray:
    """Cut leading/trailing parts quieter than ``top_db`` below the loudest frame (frame RMS), ``[T] -> [T']``.

    Cheap numpy version of ``librosa.effects.trim`` (no numba); a short linear fade-out avoids a click where
    a reverb tail is cut. All-silent input is returned unchanged.
    """
    if len(wav) < frame:
        return wav
    frames = np.lib.stride_tricks.sliding_window_view(wav, frame)[::hop]  # (F, frame)
    power = np.mean(np.square(frames, dtype=np.float64), axis=1)
    if power.max() <= 0:
        return wav
    db = 10 * np.log10(np.maximum(power, 1e-20) / power.max())
    loud = np.flatnonzero(db > -top_db)
    start, stop = loud[0] * hop, min(len(wav), loud[-1] * hop + frame)
    out = wav[start:stop].copy()
    n = min(len(out), int(fade_seconds * sr))
    if n > 0:
        out[-n:] *= np.linspace(1.0, 0.0, n, dtype=out.dtype)
    return out


# ---- streaming --------------------------------------------------------------------------------------
def iter_chunks(path, seconds: float, overlap: float = 0.0, mono: bool = True) -> Iterator[np.ndarray]:
    """Stream ``path`` in blocks of ``seconds`` (at the file's own rate) without loading it whole.

    Block ``i`` starts at sample ``i * (n - m)`` with ``n = round(seconds * sr)``, ``m = round(overlap * sr)``;
    each block is float32 ``[n]`` (``[C, n]`` if not ``mono``), the last one possibly shorter.
    """
    path = Path(path)
    info = audio_info(path)
    if info.frames == 0:
        raise AudioError(path, "empty (0 samples)")
    n, m = int(round(seconds * info.samplerate)), int(round(overlap * info.samplerate))
    if n <= 0 or not 0 <= m < n:
        raise ValueError(f"need 0 <= overlap < seconds and at least one sample per block; got seconds={seconds}, "
                         f"overlap={overlap} at {info.samplerate} Hz")
    for block in sf.blocks(str(path), blocksize=n, overlap=m, dtype="float32", always_2d=True):  # [n, C]
        _check_finite(path, block)
        yield block.mean(axis=1) if mono else np.ascontiguousarray(block.T)
