"""Codes files: a tokenized waveform as a versioned ``.npz`` (no pickle).

Fields: ``format`` (``"arsound-vqvae-codes"``), ``version``, ``sample_rate``, ``length`` (samples of the
original), ``hops``, ``model`` (name or folder) and ``model_sha256`` (of its weights, so stale codes are
caught), ``num_codes``, and ``codes_0 .. codes_{L-1}`` (one array per level: uint8 when every code of the file
fits, as a 256-code book's do, else uint16), zip-compressed: the chorale token sets take 24 MB instead of 60.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ..core.files import atomic_write

CODES_FORMAT, CODES_VERSION = "arsound-vqvae-codes", 1


@dataclass
class CodesFile:
    """A tokenized waveform: ``codes[l] : LongTensor[T_l]`` per level, ``hops[l]``, the sample rate, the
    original length in samples and the model that made it (name or folder, and ``core.checkpoint.weights_id``:
    the first 16 hex digits of its weights file's sha256)."""
    codes: list[Tensor]
    hops: list[int]
    sample_rate: int
    length: int
    model: str
    model_sha256: str = ""
    num_codes: int = 0


def save_codes(path, cf: CodesFile) -> Path:
    """Write ``cf`` to ``path`` (.npz) atomically: ``format``, ``version``, ``sample_rate``, ``length``,
    ``hops``, ``model``, ``model_sha256``, ``num_codes``, ``codes_0 .. codes_{L-1}`` (uint8 when every code fits,
    else uint16), compressed."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"codes file '{path}' must end in .npz")
    arrays = {"format": np.array(CODES_FORMAT), "version": np.array(CODES_VERSION),
              "sample_rate": np.array(cf.sample_rate), "length": np.array(cf.length),
              "hops": np.array(cf.hops, dtype=np.int64), "model": np.array(cf.model),
              "model_sha256": np.array(cf.model_sha256), "num_codes": np.array(cf.num_codes)}
    codes = [torch.as_tensor(c) for c in cf.codes]
    for l, c in enumerate(codes):
        if c.numel() and (int(c.min()) < 0 or int(c.max()) > 65535):
            raise ValueError(f"level {l} codes do not fit uint16")
    small = all(not c.numel() or int(c.max()) < 256 for c in codes)
    for l, c in enumerate(codes):
        arrays[f"codes_{l}"] = c.numpy().astype(np.uint8 if small else np.uint16)
    with atomic_write(path, "wb") as f:
        np.savez_compressed(f, **arrays)
    return path


def load_codes(path) -> CodesFile:
    """Read a codes file; a missing, foreign, corrupt or newer-version file raises one-line ``ValueError``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"codes file '{path}' does not exist")
    what = f"'{path}' is not an arsound codes file"
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except Exception:  # not a zip, truncated, pickled objects...
        raise ValueError(f"{what} (not a readable .npz archive of arrays); make one with `arsound encode`") from None
    if "format" not in data or str(data["format"]) != CODES_FORMAT or "version" not in data:
        raise ValueError(f"{what} (no '{CODES_FORMAT}' format tag); make one with `arsound encode`")
    version = int(data["version"])
    if version > CODES_VERSION:
        raise ValueError(f"'{path}' is codes format version {version}, newer than this arsound reads "
                         f"({CODES_VERSION}); upgrade arsound")
    try:
        hops = [int(h) for h in data["hops"]]
        codes = [torch.from_numpy(data[f"codes_{l}"].astype(np.int64)) for l in range(len(hops))]
        cf = CodesFile(codes=codes, hops=hops, sample_rate=int(data["sample_rate"]), length=int(data["length"]),
                       model=str(data["model"]), model_sha256=str(data.get("model_sha256", "")),
                       num_codes=int(data.get("num_codes", 0)))
    except (KeyError, ValueError, TypeError) as e:
        raise ValueError(f"'{path}' is a damaged codes file (missing or bad field {e}); encode again") from None
    return cf


__all__ = ["CODES_FORMAT", "CODES_VERSION", "CodesFile", "load_codes", "save_codes"]
