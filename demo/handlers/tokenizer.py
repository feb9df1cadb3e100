"""Tokenizer tab: an upload encoded by a VQ-VAE and decoded from every level, each with its bitrate, SI-SDR against
the input and a spectrogram (``audio/vqvae_report.reconstruction_report``)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from arsound.audio.io import save_audio
from arsound.audio.vqvae import VQVAE
from arsound.audio.vqvae_report import reconstruction_report

from .common import load_model, output_dir, read_audio, shipped_of_class, spectrogram_image

VQVAE_CLASS = "arsound.audio.vqvae:VQVAE"
MAX_SECONDS = 120.0


def tokenizer_models() -> dict[str, str]:
    return shipped_of_class(VQVAE_CLASS)


@dataclass
class TokenizeResult:
    levels: list[Path]        # per level (0 = finest): the reconstruction
    rows: list[dict]          # per level: hop, tokens_per_s, bits_per_s, si_sdr_db, lsd_db, ...
    spectrograms: list        # per level: uint8[H, W, 3]
    message: str


def reconstruct(model: str, audio: str | None, *, out_root) -> TokenizeResult:
    """Encode ``audio`` with the VQ-VAE ``model`` and decode it from each level."""
    vq = load_model(model, VQVAE, "VQ-VAE tokenizer")
    sr = vq.config.sample_rate
    wav = read_audio(audio, sr, max_seconds=MAX_SECONDS)
    rows, decoded = reconstruction_report(vq, [wav])
    with output_dir(out_root, "tokenize") as (tmp, final):
        for lv, per_file in enumerate(decoded):
            save_audio(tmp / f"level{lv}.wav", per_file[0], sr)
    lines = [f"level {r['level']}: {r['bits_per_s'] / 1000:.1f} kbit/s ({r['tokens_per_s']:.0f} tokens/s), "
             f"SI-SDR {r['si_sdr_db']:.1f} dB" for r in rows]
    return TokenizeResult([final / f"level{lv}.wav" for lv in range(len(decoded))], rows,
                          [spectrogram_image(d[0], sr) for d in decoded],
                          f"{len(wav) / sr:.2f} s at {sr} Hz; " + "; ".join(lines))
