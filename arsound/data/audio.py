"""Prepared audio datasets: read a ``manifest.json`` and serve clips as ``(Tensor[T], label)``.

Datasets are made once by ``arsound data prepare NAME`` (see :mod:`arsound.data.prepare`) into
``ROOT/NAME/`` (default root ``data_cache/``): 16 kHz mono 16-bit WAVs plus ``manifest.json``::

    {"name", "sample_rate", "settings", "credits", "split_rule",
     "files":  [{"id", "path", "sha256", "samples", "duration", "split", "labels", "licence", "credit",
                 "source", "source_sha256"}, ...],
     "failed": [{"id", "source", "source_sha256", "error"}, ...], "skipped": [...]}

Splits are fixed by a hash of the piece / prompt name (:func:`split_for`), never by file order, so every
machine and every ``--limit`` agree, and all renderings of one piece (or one prompt in every language)
share a split.

    ds = AudioDataset("speech", "train", where={"language": "en"}, segment=16000, label="speaker")
    wav, y = ds[0]          # Tensor[16000] float32 in [-1, 1], LongTensor[] index into ds.classes
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch.utils.data import Dataset

DEFAULT_ROOT = "data_cache"
SAMPLE_RATE = 16000
SPLITS = ("train", "valid", "test")
SPLIT_RULE = "int(sha256(key)[:8 bytes]) % 100: < 80 train, < 90 valid, else test"


class DataError(ValueError):
    """A dataset that cannot be prepared or loaded; ``str(e)`` is one line saying what to do."""


def split_for(key: str) -> str:
    """Fixed 80/10/10 split of a piece or prompt name (stable across machines, Python versions and orders)."""
    h = int.from_bytes(hashlib.sha256(key.encode("utf-8")).digest()[:8], "big") % 100
    return "train" if h < 80 else "valid" if h < 90 else "test"


def sha256_file(path, chunk: int = 1 << 20) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()


def manifest_path(name: str, root=DEFAULT_ROOT) -> Path:
    return Path(root) / name / "manifest.json"


def read_manifest(name: str, root=DEFAULT_ROOT) -> dict:
    """The manifest of prepared dataset ``name``; a clear :class:`DataError` if it is missing or corrupt."""
    path = manifest_path(name, root)
    if not path.is_file():
        raise DataError(f"no prepared '{name}' data at {path}: run `arsound data prepare {name} --root {root}`")
    try:
        return json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise DataError(f"{path} is corrupt ({e}): run `arsound data prepare {name} --force`") from None


def verify(name: str, root=DEFAULT_ROOT) -> list[str]:
    """Paths (relative to ``ROOT/NAME``) whose file is missing or whose sha256 differs from the manifest."""
    base = Path(root) / name
    return [e["path"] for e in read_manifest(name, root)["files"]
            if not (base / e["path"]).is_file() or sha256_file(base / e["path"]) != e["sha256"]]


def _matches(value, wanted) -> bool:
    return value in wanted if isinstance(wanted, (list, tuple, set)) else value == wanted


class AudioDataset(Dataset):
    """Clips of a prepared dataset: ``ds[i] -> (wav Tensor[T] float32, y LongTensor[])``.

    ``where`` keeps files whose labels match (e.g. ``{"language": "en"}`` for the single-speaker speech
    set; a list or tuple value keeps any of its values: ``{"language": ["en", "it"]}``). ``label`` names the
    label to return as a class index into ``self.classes`` (sorted over all splits, so indices agree between
    splits); ``y = -1`` without one. ``segment`` crops (random with
    ``random_crop``, else the start) or zero-pads every clip to that many samples; crops start at a
    multiple of ``align`` (use the mel hop, so frames stay aligned). Only the cropped part is read.
    ``verify`` checks every file's sha256 first.
    """

    def __init__(self, name: str, split: str = "train", root=DEFAULT_ROOT, segment: int | None = None,
                 label: str | None = None, where: dict | None = None, random_crop: bool = True, align: int = 1,
                 verify: bool = False, generator: torch.Generator | None = None):
        if split not in SPLITS:
            raise DataError(f"unknown split '{split}'; choose from {list(SPLITS)}")
        manifest = read_manifest(name, root)
        self.base, self.sample_rate = Path(root) / name, int(manifest["sample_rate"])
        files = [e for e in manifest["files"]
                 if all(_matches(e["labels"].get(k), v) for k, v in (where or {}).items())]
        if label is not None:
            missing = [e["id"] for e in files if label not in e["labels"]]
            if missing:
                raise DataError(f"label '{label}' is not in the manifest of '{name}' (e.g. file {missing[0]})")
            self.classes = sorted({e["labels"][label] for e in files}, key=str)
        else:
            self.classes = []
        self.items = [e for e in files if e["split"] == split]
        if not self.items:
            matching = f" matching {where}" if where else ""
            raise DataError(f"no '{split}' files in '{name}' under {self.base}{matching}")
        if verify:
            bad = [e["path"] for e in self.items if sha256_file(self.base / e["path"]) != e["sha256"]]
            if bad:
                raise DataError(f"{len(bad)} files in {self.base} differ from the manifest (e.g. {bad[0]}): "
                                f"run `arsound data prepare {name}` again")
        self.label, self.segment, self.random_crop = label, segment, random_crop
        self.align, self.generator = max(1, align), generator
        self._index = {c: i for i, c in enumerate(self.classes)}

    def __len__(self) -> int:
        return len(self.items)

    @property
    def seconds(self) -> float:
        return sum(e["duration"] for e in self.items)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        e = self.items[i]
        start, stop = 0, None
        if self.segment is not None and e["samples"] > self.segment:
            slots = (e["samples"] - self.segment) // self.align + 1
            pick = int(torch.randint(slots, (1,), generator=self.generator)) if self.random_crop else 0
            start, stop = pick * self.align, pick * self.align + self.segment
        x, _ = sf.read(str(self.base / e["path"]), start=start, stop=stop, dtype="float32", always_2d=True)
        wav = torch.from_numpy(np.ascontiguousarray(x.mean(axis=1)))  # [T]
        if self.segment is not None and len(wav) < self.segment:
            wav = torch.nn.functional.pad(wav, (0, self.segment - len(wav)))
        y = self._index[e["labels"][self.label]] if self.label is not None else -1
        return wav, torch.tensor(y, dtype=torch.long)
