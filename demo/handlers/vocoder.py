"""Vocoder tab: a clip resynthesized by a mel-conditioned WaveNet beside Griffin-Lim from the same mel, both scored
against the input (log-spectral distance in dB, multi-resolution STFT distance) with a spectrogram each."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from arsound.audio.io import save_audio
from arsound.audio.vocoder import check_vocoder, compare_with_griffin_lim, postfilter_passes, vocode
from arsound.audio.wavenet import WaveNet
from arsound.core.checkpoint import checkpoints_dir, registry

from .common import (DemoError, load_model, output_dir, read_audio, shipped_of_class, spectrogram_image,
                     whole_number)

WAVENET_CLASS = "arsound.audio.wavenet:WaveNet"
MAX_SECONDS = 10.0   # WaveNet draws one sample at a time: longer clips are cut to this (and said so)
MAX_POSTFILTER = 64  # passes of the band post-filter (features.band_postfilter); 32 is what the README measures


def vocoder_models() -> dict[str, str]:
    """The shipped vocoders (WaveNets with mel conditioning), by config only."""
    return shipped_of_class(WAVENET_CLASS)


def examples() -> dict[str, Path]:
    """``{"<vocoder> held-out clip": path}``: the ``heldout.wav`` shipped beside each vocoder."""
    out, root = {}, checkpoints_dir()
    for name, entry in registry().items():
        path = root / entry["path"] / "heldout.wav"
        if path.is_file():
            out[f"{name} held-out clip"] = path
    return out


def load_vocoder(name_or_dir: str) -> WaveNet:
    model = load_model(name_or_dir, WaveNet, "WaveNet vocoder")
    check_vocoder(model)
    return model


@dataclass
class VocodeResult:
    wavenet: Path
    griffin_lim: Path
    scores: dict            # {"wavenet": {"lsd_db", "mrstft"}, "griffin_lim": {...}}
    spectrograms: dict      # {"input" | "wavenet" | "griffin_lim": uint8[H, W, 3]}
    message: str


def vocode_clip(model: str, audio: str | None = None, example: str | None = None, *, temperature: float | None = None,
                seed: int = 0, speaker=None, postfilter=None, out_root) -> VocodeResult:
    """Vocode an upload / recording (``audio``) or a shipped example (a key of :func:`examples`) with ``model``;
    ``postfilter``: passes of the band post-filter on the WaveNet and on Griffin-Lim alike (empty: the model's
    choice, ``postfilter_passes``; 0: off)."""
    voc = load_vocoder(model)
    sr = voc.config.sample_rate
    if audio:
        wav = read_audio(audio, sr)
    elif example:
        known = examples()
        if example not in known:
            raise DemoError(f"unknown example '{example}'; choose from {sorted(known)}")
        wav = read_audio(known[example], sr, what="example")
    else:
        raise DemoError("upload or record a clip, or pick an example")
    note = ""
    if len(wav) > MAX_SECONDS * sr:
        wav, note = wav[:int(MAX_SECONDS * sr)], f" (cut to its first {MAX_SECONDS:.0f} s)"
    if len(wav) < voc.config.hop_length:
        raise DemoError(f"the clip is {len(wav) / sr * 1000:.0f} ms long, shorter than one frame "
                        f"({voc.config.hop_length / sr * 1000:.0f} ms)")
    t = None if temperature in (None, "") or float(temperature) == 0 else float(temperature)   # 0: the model's
    g = None if speaker in (None, "") or not voc.config.num_speakers else speaker
    pf = postfilter_passes(voc) if postfilter is None or str(postfilter).strip() == "" else whole_number(postfilter)
    if pf is None or not 0 <= pf <= MAX_POSTFILTER:
        raise DemoError(f"post-filter passes must be a whole number from 0 to {MAX_POSTFILTER} (empty: the model's), "
                        f"got {postfilter!r}")
    y = vocode(voc, wav=wav, g=g, temperature=t, seed=int(seed), progress=False, postfilter=pf)
    gl, scores = compare_with_griffin_lim(voc, wav, y, postfilter=pf)
    with output_dir(out_root, "vocode") as (tmp, final):
        save_audio(tmp / "wavenet.wav", y, sr)
        save_audio(tmp / "griffin_lim.wav", gl, sr)
    specs = {k: spectrogram_image(v, sr) for k, v in (("input", wav[:len(y)]), ("wavenet", y), ("griffin_lim", gl))}
    w, b = scores["wavenet"], scores["griffin_lim"]
    both = f", both with {pf} post-filter passes" if pf else ""
    message = (f"{len(y) / sr:.2f} s{note} at temperature {voc.config.temperature if t is None else t:g}, seed {seed}"
               f"{both}. "
               f"WaveNet: LSD {w['lsd_db']:.2f} dB, MR-STFT {w['mrstft']:.3f}; Griffin-Lim: LSD {b['lsd_db']:.2f} dB, "
               f"MR-STFT {b['mrstft']:.3f} (lower is closer to the input)")
    return VocodeResult(final / "wavenet.wav", final / "griffin_lim.wav", scores, specs, message)
