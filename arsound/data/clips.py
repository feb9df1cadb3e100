"""Clips of prepared audio sets for training and evaluation: vocoder crops (samples + the log-mel frames of
the whole clip), VQ-VAE tiles, and held-out clips spread over a split.

Alignment for vocoders (``audio/features.py``): a crop of ``T = k * hop`` samples starting at sample ``s``
(a multiple of ``hop``) is conditioned on the ``k`` frames centred on ``s, s + hop, ...`` of the *whole
clip's* centred mel. :class:`VocoderDataset` reads the crop with ``n_fft // 2`` samples of context on each
side (zeros past the file's ends, like centred padding) and takes an uncentred STFT, so training frames
equal the frames ``WaveNet.mel_condition`` computes from a whole clip.

Letters: T samples, M mel bands.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..audio.features import MelSpectrogram, normalize_mel
from ..audio.io import read_span
from .audio import DEFAULT_ROOT, AudioDataset, DataError

# the label a vocoder is conditioned on, per set
LABELS = {"speech": "speaker", "chorales": "instrument", "chorales-2sf": "instrument"}


def open_split(name: str, split: str, root=DEFAULT_ROOT, language: str = "") -> AudioDataset:
    """The prepared ``split`` of set ``name`` labelled by speaker / instrument (speech: of ``language`` only,
    several as ``"en,es"``, all languages when it is empty)."""
    if name not in LABELS:
        raise DataError(f"unknown data.name '{name}'; choose from {sorted(LABELS)}")
    langs = [lang.strip() for lang in language.split(",") if lang.strip()]
    where = {"language": langs} if name == "speech" and langs else None
    return AudioDataset(name, split, root=root, label=LABELS[name], where=where)


@dataclass
class Augment:
    """Random changes of a training crop that a vocoder should follow, drawn from the global torch RNG (so the
    Trainer's resume replays them): a gain uniform in ``gain_db`` (lowered where it would push the peak past
    1), and with probability ``lowpass`` a zero-phase low-pass at a cutoff uniform in ``cutoff`` Hz (a raised-
    cosine edge ``width`` Hz wide, by FFT over the crop): users' audio comes at every level and bandwidth."""
    gain_db: tuple[float, float] = (0.0, 0.0)
    lowpass: float = 0.0
    cutoff: tuple[float, float] = (3000.0, 7000.0)
    width: float = 500.0

    @property
    def active(self) -> bool:
        return self.gain_db != (0.0, 0.0) or self.lowpass > 0

    def __call__(self, wav: Tensor, sr: int) -> Tensor:
        """``wav[T] -> wav[T]``."""
        if self.lowpass > 0 and torch.rand(()).item() < self.lowpass:
            fc = self.cutoff[0] + (self.cutoff[1] - self.cutoff[0]) * torch.rand(()).item()
            f = torch.fft.rfftfreq(wav.shape[-1], 1 / sr)
            edge = ((f - (fc - self.width / 2)) / self.width).clamp(0, 1)
            wav = torch.fft.irfft(torch.fft.rfft(wav) * 0.5 * (1 + torch.cos(math.pi * edge)), n=wav.shape[-1])
        lo, hi = self.gain_db
        if (lo, hi) != (0.0, 0.0):
            db = lo + (hi - lo) * torch.rand(()).item()
            peak = wav.abs().max().clamp_min(1e-8).item()
            wav = wav * min(10 ** (db / 20), 0.999 / peak)
        return wav


class VocoderDataset(Dataset):
    """``ds[i] -> {"x": LongTensor[T], "c": Tensor[M, T // hop], ("s": Tensor[T]), ("g": LongTensor[])}`` from a
    prepared split.

    ``targets(wav[T + 1], c)`` makes the model's targets from the crop with one sample of context before it
    (``WaveNet.targets``: ``x``, and an LP model's signal ``s``), ``c`` is the normalized log-mel of the crop
    (frames of the whole clip, see the module docstring) by ``mel`` (the model's front end, ``center=False``),
    ``g`` the label index when ``with_label``. Train crops are random (global torch RNG, so the Trainer's resume
    replays them); other splits take the middle crop. ``augment`` (an :class:`Augment`) changes each crop,
    context included, before its mel and targets are made.
    """

    def __init__(self, base: AudioDataset, split: str, segment_frames: int, mel: MelSpectrogram, targets,
                 with_label: bool, random_crop: bool | None = None, augment: Augment | None = None) -> None:
        if mel.center:
            raise ValueError("VocoderDataset needs the front end with center=False (crops carry their context)")
        self.base = base
        self.segment = segment_frames * mel.hop
        self.hop, self.pad = mel.hop, mel.n_fft // 2
        self.mel, self.targets, self.with_label = mel, targets, with_label
        self.augment = augment if augment is not None and augment.active else None
        self.random_crop = split == "train" if random_crop is None else random_crop

    @property
    def classes(self) -> list:
        return self.base.classes

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict:
        e = self.base.items[i]
        slots = max(0, e["samples"] - self.segment) // self.hop + 1
        pick = int(torch.randint(slots, (1,))) if self.random_crop else slots // 2
        wav = read_span(self.base.base / e["path"], pick * self.hop, self.segment, self.pad, e["samples"])
        if self.augment is not None:
            wav = self.augment(wav, self.base.sample_rate)
        with torch.no_grad():
            c = normalize_mel(self.mel(wav))[:, :self.segment // self.hop]   # (M, k)
        # one sample of context, so a pre-emphasized model's first target sees its true predecessor
        with torch.no_grad():
            item = {**self.targets(wav[self.pad - 1:self.pad + self.segment], c), "c": c}
        if self.with_label:
            item["g"] = torch.tensor(self.base._index[e["labels"][self.base.label]], dtype=torch.long)
        return item


def _spread(n_items: int, n: int) -> list[int]:
    """``n`` indices spread evenly over ``range(n_items)`` (all of them when ``n`` is 0 or larger)."""
    if not n or n >= n_items:
        return list(range(n_items))
    return sorted({round(j * (n_items - 1) / max(1, n - 1)) for j in range(n)}) if n > 1 else [0]


def heldout_clips(ds: AudioDataset, n: int, seconds: float, hop: int) -> tuple[Tensor, Tensor, list]:
    """``n`` clips of ``ds`` spread over its file list: ``(wav[n, T], label[n], ids)``, ``T`` whole frames of
    ``hop``, each the middle of its file (zero-padded when shorter)."""
    T = max(1, int(seconds * ds.sample_rate) // hop) * hop
    wavs, labels, ids = [], [], []
    for i in _spread(len(ds), n):
        e = ds.items[i]
        start = max(0, (e["samples"] - T) // 2 // hop * hop)
        wavs.append(read_span(ds.base / e["path"], start, T, 0, e["samples"]))
        labels.append(ds._index[e["labels"][ds.label]])
        ids.append(e["id"])
    return torch.stack(wavs), torch.tensor(labels, dtype=torch.long), ids


def heldout_files(ds: AudioDataset, seconds: float, files: int = 0) -> tuple[list[Tensor], list[str]]:
    """The middle ``seconds`` of each file of ``ds`` (all files, or ``files`` spread over the list)."""
    wavs, ids = [], []
    for i in _spread(len(ds), files):
        e = ds.items[i]
        T = min(e["samples"], int(seconds * ds.sample_rate))
        wavs.append(read_span(ds.base / e["path"], (e["samples"] - T) // 2, T, 0, e["samples"]))
        ids.append(e["id"])
    return wavs, ids


class ClipDataset(Dataset):
    """``ds[i] -> Tensor[segment]``: every file of a split cut into consecutive ``segment``-sample tiles; a
    training item is a tile shifted by a random offset (global torch RNG, so the Trainer's resume replays
    it), held-out items are the tiles themselves. An epoch visits every tile of the training split once."""

    def __init__(self, base: AudioDataset, split: str, segment: int, random_offset: bool | None = None) -> None:
        self.base, self.segment = base, segment
        self.random_offset = split == "train" if random_offset is None else random_offset
        self.tiles = [(f, k) for f, e in enumerate(base.items) for k in range(max(1, e["samples"] // segment))]

    @property
    def sample_rate(self) -> int:
        return self.base.sample_rate

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, i: int) -> Tensor:
        f, k = self.tiles[i]
        e = self.base.items[f]
        start = k * self.segment
        if self.random_offset:
            start += int(torch.randint(self.segment, (1,)))
        start = max(0, min(start, e["samples"] - self.segment))
        return read_span(self.base.base / e["path"], start, self.segment, 0, e["samples"])  # zeros past the end


__all__ = ["LABELS", "ClipDataset", "VocoderDataset", "heldout_clips", "heldout_files",
           "open_split"]
