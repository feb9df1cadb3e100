"""Shared by every tab: model discovery and caching, checked uploads, atomic output folders, spectrogram pictures.

Every problem a user can cause is a :class:`DemoError` (or one of :data:`USER_ERRORS`) with a one-line message;
the app shows :func:`one_line` of it and keeps serving. A request writes its files into a hidden folder that is
renamed into place only when everything is written (``core/files.atomic_dir``), so an error leaves nothing
half-written in the output folder.
"""
from __future__ import annotations

import json
import math
import secrets
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import numpy as np
import soundfile as sf
import torch

import arsound
from arsound.core.checkpoint import CheckpointError, checkpoints_dir, registry

MAX_UPLOAD_SECONDS = 600.0   # longer uploads are refused before decoding
SILENCE_PEAK = 1e-4          # a clip whose peak is below this is "silent"


class DemoError(ValueError):
    """Something the user can fix; ``str(e)`` is one line."""


class Interrupted(Exception):
    """The user pressed the interrupt button."""


USER_ERRORS = (ValueError, FileNotFoundError, CheckpointError, sf.LibsndfileError, Interrupted)


def whole_number(x) -> int | None:
    """``x`` (a number or its text) as an int when it is a finite whole number, else None."""
    try:
        f = float(x)
    except (TypeError, ValueError):
        return None
    return int(f) if math.isfinite(f) and f == int(f) else None


def one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or type(e).__name__
    return text if len(text) <= 400 else text[:397] + "..."


# ---- models -------------------------------------------------------------------------------------------------
def shipped_of_class(prefix: str) -> dict[str, str]:
    """``{name: description}`` of registry checkpoints whose saved class starts with ``prefix`` (e.g.
    ``arsound.music.generator:MusicGenerator``), read from their config.json only (no weights loaded)."""
    out = {}
    root = checkpoints_dir()
    for name, entry in registry().items():
        folder = Path(entry["path"]).expanduser()
        folder = folder if folder.is_absolute() else root / folder
        try:
            cls = json.loads((folder / "config.json").read_text()).get("class", "")
        except (OSError, ValueError):
            continue
        if cls.startswith(prefix):
            out[name] = entry.get("description", "")
    return out


_MODELS: dict[str, torch.nn.Module] = {}
_MODELS_LOCK = threading.Lock()


def load_model(name_or_dir: str, kind: type | tuple[type, ...], what: str) -> torch.nn.Module:
    """``arsound.load`` once per process (cached); a model of another kind is refused in one line."""
    key = str(name_or_dir).strip()
    if not key:
        raise DemoError(f"choose a {what}")
    with _MODELS_LOCK:
        model = _MODELS.get(key)
        if model is None:
            model = arsound.load(key)
            if not isinstance(model, kind):
                raise DemoError(f"'{key}' holds a {type(model).__name__}, not a {what}")
            _MODELS[key] = model
    return model


# ---- uploads ------------------------------------------------------------------------------------------------
def read_audio(path, sr: int, max_seconds: float = MAX_UPLOAD_SECONDS, what: str = "upload") -> torch.Tensor:
    """An uploaded or recorded file as mono ``Tensor[T]`` at ``sr``; refuses (one line) a missing file, a file that
    is not audio, one longer than ``max_seconds`` (before decoding it) and silence."""
    from arsound.audio.io import audio_info, load_audio

    if not path:
        raise DemoError(f"no {what}: upload or record a clip first")
    path = Path(path)
    info = audio_info(path)                                      # not audio / truncated: AudioError, one line
    if info.duration > max_seconds:
        raise DemoError(f"the {what} is {info.duration / 60:.1f} min long; the demo takes at most "
                        f"{max_seconds / 60:.0f} min (cut it first)")
    wav, _ = load_audio(path, sr=sr, as_tensor=True)
    wav = wav.clamp(-1, 1)
    if float(wav.abs().max()) < SILENCE_PEAK:
        raise DemoError(f"the {what} is silent (peak {float(wav.abs().max()):.1e}); upload a clip with sound")
    return wav


# ---- outputs ------------------------------------------------------------------------------------------------
@contextmanager
def output_dir(root, kind: str) -> Iterator[tuple[Path, Path]]:
    """``with output_dir(root, "music") as (tmp, final):`` write files into ``tmp``; they appear under ``final``
    (``root/kind-TIME-XXXX``) only when the block ends without an error."""
    from arsound.core.files import atomic_dir

    final = Path(root) / f"{kind}-{time.strftime('%Y%m%d-%H%M%S')}-{secrets.token_hex(3)}"
    with atomic_dir(final) as tmp:
        yield tmp, final


def spectrogram_image(wav, sr: int, height: int = 160, width: int = 480) -> np.ndarray:
    """A log-magnitude spectrogram picture ``uint8[height, width, 3]`` (low frequencies at the bottom, 80 dB range,
    magma colours) of ``wav[T]``."""
    from matplotlib import colormaps
    from PIL import Image

    x = torch.as_tensor(wav, dtype=torch.float32).reshape(-1)
    n_fft = 512 if sr <= 16000 else 1024
    x = torch.nn.functional.pad(x, (0, max(0, n_fft - len(x))))
    spec = torch.stft(x, n_fft, n_fft // 4, window=torch.hann_window(n_fft), return_complex=True).abs()
    db = 20 * torch.log10(spec.clamp_min(1e-5))
    db = (db - db.max() + 80).clamp_min(0) / 80                                # [F, frames] in [0, 1]
    rgb = (colormaps["magma"](db.flip(0).numpy())[..., :3] * 255).astype(np.uint8)
    return np.asarray(Image.fromarray(rgb).resize((width, height), Image.BILINEAR))


def seconds_of(path) -> float:
    return sf.info(str(path)).duration
