"""Music tab: a MusicGenerator hierarchy (``music/generator.py``) sampled, primed or continued from codes.

``generate_music`` returns a :class:`MusicResult`: per clip the WAV of the lowest level sampled, its codes file
(``audio/codes.py``) and a spectrogram picture, and per level the decoding of every level sampled (the players).
``stop_level`` stops at a coarse level (a preview in seconds); the codes file it writes upsamples later.
"""
from __future__ import annotations

import math
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from arsound.audio.codes import load_codes, save_codes
from arsound.audio.io import save_audio
from arsound.music.generator import MusicGenerator

from .common import (DemoError, Interrupted, load_model, output_dir, read_audio, shipped_of_class, spectrogram_image,
                     whole_number)

MUSIC_CLASS = "arsound.music.generator:MusicGenerator"
MAX_CLIPS = 4
MAX_SECONDS = 60.0


def music_models() -> dict[str, str]:
    """The shipped hierarchies (registry entries whose config names a MusicGenerator)."""
    return shipped_of_class(MUSIC_CLASS)


def load_generator(name_or_dir: str) -> MusicGenerator:
    return load_model(name_or_dir, MusicGenerator, "music hierarchy (MusicGenerator)")


def model_info(name_or_dir: str) -> dict:
    """What the controls need: levels (top first), instruments, sample rate, seconds per top token."""
    gen = load_generator(name_or_dir)
    top = gen.priors[str(gen.levels[0])].config
    names = [str(v) for v in top.label_names] or [str(i) for i in range(top.num_labels)]
    return {"levels": gen.levels, "instruments": names, "sample_rate": gen.sample_rate,
            "top_seconds": gen.vqvae.hops[gen.levels[0]] / gen.sample_rate}


@dataclass
class MusicResult:
    clips: list[Path]                       # per clip: the WAV of the lowest level sampled
    codes: list[Path]                       # per clip: its codes file (.npz)
    levels: dict[int, list[Path]]           # level -> per clip: that level's decoding (WAV)
    spectrograms: list                      # per clip: uint8[H, W, 3]
    level: int                              # the level the clips are decoded from
    message: str
    folder: Path
    seconds: dict[int, float] = field(default_factory=dict)   # compute time per level sampled


class Progress:
    """``on_token`` for :meth:`MusicGenerator.generate`: tokens/s and time left per level, sent to ``report(fraction,
    text)`` at most ``every`` seconds; raises :class:`Interrupted` once ``stop`` is set."""

    def __init__(self, report: Callable[[float, str], None] | None, stop: threading.Event | None,
                 every: float = 0.25) -> None:
        self.report, self.stop, self.every = report, stop, every
        self.level, self.t0, self.last = None, 0.0, 0.0
        self.first_token: float | None = None

    def __call__(self, level: int, done: int, total: int) -> None:
        if self.stop is not None and self.stop.is_set():
            raise Interrupted(f"interrupted at level {level} after {done} of {total} tokens; nothing was written")
        now = time.perf_counter()
        if level != self.level:
            self.level, self.t0 = level, now
        if self.report is not None and (now - self.last >= self.every or done == total):
            self.last = now
            rate = done / max(now - self.t0, 1e-9)
            self.report(done / total, f"level {level}: {done}/{total} tokens, {rate:.0f} tokens/s, "
                                      f"{(total - done) / max(rate, 1e-9):.0f} s left")


def _temperatures(temperature, levels: list[int]):
    """One value, or one per level sampled (top first): a list/tuple of numbers (None entries -> 1.0); None or 0:
    each level's default (the model's recipe chose them)."""
    if temperature is None or (not isinstance(temperature, (list, tuple)) and float(temperature) == 0):
        return None
    if isinstance(temperature, (list, tuple)):
        values = [1.0 if t is None else float(t) for t in temperature][:len(levels)]
        values += [values[-1] if values else 1.0] * (len(levels) - len(values))
        return tuple(values)
    return float(temperature)


def generate_music(model: str, seconds: float, seed: int = 0, n: int = 1, *, temperature=None, guidance=None,
                   drafts=None, instrument=None, prompt: str | None = None, prompt_seconds: float | None = None,
                   codes: str | None = None,
                   stop_level: int | None = None, out_root, report=None, stop: threading.Event | None = None
                   ) -> MusicResult:
    """``n`` clips of ``seconds`` from the hierarchy ``model`` (a registry name or a folder), seeded.

    prompt: an audio file to continue (its first ``prompt_seconds``, default all). codes: a codes file (.npz) to
    continue or upsample; it must come from this hierarchy's tokenizer. stop_level: the lowest level to sample
    (default: all). temperature: one value or one per level (top first); None or 0: the model's own per level.
    guidance: the upsamplers' upper-code guidance weight (``music/generator.py``); None: the model's own per level.
    drafts: how many drafts each upsampler draws of a clip, keeping the one that follows the level above best; None:
    the model's own per level.
    Files go to a fresh folder under ``out_root`` that appears only when complete.
    """
    if not 1 <= int(n) <= MAX_CLIPS:
        raise DemoError(f"the number of clips must be 1..{MAX_CLIPS}, got {n}")
    if not (seconds and 0 < float(seconds) <= MAX_SECONDS):
        raise DemoError(f"the duration must be in (0, {MAX_SECONDS:.0f}] s, got {seconds}")
    if prompt and codes:
        raise DemoError("continue either an audio clip or a codes file, not both")
    if guidance is not None and not 0 <= float(guidance) < math.inf:
        raise DemoError(f"the guidance must be a finite number >= 0 (0: off), got {guidance}")
    n_drafts = None if drafts is None else whole_number(drafts)
    if drafts is not None and not (n_drafts or 0) >= 1:
        raise DemoError(f"the number of drafts must be a whole number >= 1 (1: off), got {drafts}")
    gen = load_generator(model)
    sr, levels = gen.sample_rate, gen.levels
    stop_level = levels[-1] if stop_level in (None, "") else int(stop_level)
    if stop_level not in levels:
        raise DemoError(f"stop at level: this hierarchy samples levels {levels}, got {stop_level}")
    instrument = None if instrument in (None, "") else instrument
    if instrument is None and gen.priors[str(levels[0])].config.num_labels:
        instrument = model_info(model)["instruments"][0]
    wav = given = None
    if prompt:
        wav = read_audio(prompt, sr, what="audio to continue")
        if prompt_seconds:
            if float(prompt_seconds) > len(wav) / sr + 1e-9:
                raise DemoError(f"the prompt length {float(prompt_seconds):g} s is longer than the clip "
                                f"({len(wav) / sr:.2f} s)")
            wav = wav[:int(round(float(prompt_seconds) * sr))]
    if codes:
        given = gen.check_codes(load_codes(codes), Path(codes).name)
    run = [lv for lv in levels if lv >= stop_level]
    progress = Progress(report, stop)
    t0 = time.perf_counter()
    out = gen.generate(float(seconds), int(n), seed=int(seed), prompt=wav, codes=given, stop_level=stop_level,
                       instrument=instrument, temperature=_temperatures(temperature, run), on_token=progress,
                       guidance=None if guidance is None else float(guidance),
                       drafts=n_drafts, decode=False)
    per_level = {lv: gen.decode(c, lv, out.samples) for lv, c in out.codes.items() if lv in run}
    wall = time.perf_counter() - t0
    with output_dir(out_root, "music") as (tmp, final):
        names = {lv: [f"sample_{i}_level{lv}.wav" for i in range(n)] for lv in per_level}
        for lv, audio in per_level.items():
            for i, name in enumerate(names[lv]):
                save_audio(tmp / name, audio[i], sr)
        clips = [f"sample_{i}.wav" for i in range(n)]
        for i, name in enumerate(clips):
            save_audio(tmp / name, per_level[stop_level][i], sr)
            save_codes(tmp / f"sample_{i}.npz", gen.codes_file(out, i))
    spent = ", ".join(f"level {lv} {s:.1f} s" for lv, s in out.seconds.items())
    message = (f"{n} clip(s) of {out.samples / sr:.2f} s from level {stop_level} in {wall:.1f} s"
               f"{' (' + spent + ')' if spent else ''}; seed {seed}"
               + (f"; guidance {float(guidance):g}" if guidance is not None else "")
               + (f"; drafts {n_drafts}" if n_drafts is not None else ""))
    return MusicResult(clips=[final / c for c in clips], codes=[final / f"sample_{i}.npz" for i in range(n)],
                       levels={lv: [final / x for x in names[lv]] for lv in names},
                       spectrograms=[spectrogram_image(per_level[stop_level][i], sr) for i in range(n)],
                       level=stop_level, message=message, folder=final, seconds=dict(out.seconds))

