"""Token sets: audio files encoded once by a tokenizer, and the windows a prior trains on.

A token set is a folder: one codes file per audio file (``audio/codes.py``'s format, every level) and
``tokens.json`` naming the tokenizer (name and ``weights_id``), its hops, rate and code count, and every
file's id, length and labels. :class:`TokenSet` refuses a folder made by other tokenizer weights in one line
(stale tokens would train a prior on codes the shipped tokenizer never emits).

:class:`TokenWindows` cuts one level into windows of a prior's context: ``{"x": LongTensor[T]}`` plus
``label`` (``LongTensor[]``, the file's label index), ``start`` / ``total`` (the window's first token and the
file's length in tokens, for timing) and for upsamplers ``upper`` (``LongTensor[T / ratio]``, the codes of
the level above over the window). Training windows start at a random token (a multiple of the ratio; the
global torch RNG, so the Trainer's resume replays them); held-out windows tile each file.

Letters: T tokens of a window, L tokenizer levels.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import Tensor
from torch.utils.data import Dataset
from tqdm.auto import tqdm

from ..audio.chunked import encode_file
from ..audio.codes import CodesFile, load_codes, save_codes
from ..audio.vqvae import VQVAE
from ..core.checkpoint import weights_id
from ..core.files import write_json
from ..core.metrics import LN2

MANIFEST = "tokens.json"


def encode_files(tokenizer: VQVAE, entries: list[dict], out_dir, *, name: str = "", label: str = "",
                 progress: bool = True) -> Path:
    """Encode ``entries`` (``{"id", "path", "labels": {...}}`` each) into ``out_dir``: ``{id}.npz`` per file and
    ``tokens.json``. Files already encoded by the same weights are kept (an interrupted run resumes); the
    manifest is written last, so a folder with one is complete. ``label``: the label the priors take."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    wid = weights_id(tokenizer)
    files = []
    for e in tqdm(entries, desc=f"encode {out.name}", unit="file", disable=not progress, dynamic_ncols=True):
        path = out / f"{e['id']}.npz"
        cf = load_codes(path) if path.is_file() else None
        if cf is None or cf.model_sha256 != wid:
            codes, length = encode_file(tokenizer, e["path"])
            cf = CodesFile(codes=codes, hops=list(tokenizer.hops), sample_rate=tokenizer.config.sample_rate,
                           length=length, model=name, model_sha256=wid,
                           num_codes=tokenizer.config.quantizer.num_codes)
            save_codes(path, cf)
        files.append({"id": e["id"], "codes": path.name, "samples": cf.length,
                      "tokens": [len(c) for c in cf.codes], "labels": e.get("labels", {})})
    classes = sorted({str(f["labels"][label]) for f in files}) if label else []
    write_json(out / MANIFEST, {"tokenizer": name, "weights": wid, "hops": list(tokenizer.hops),
                                "sample_rate": tokenizer.config.sample_rate,
                                "num_codes": tokenizer.config.quantizer.num_codes, "label": label,
                                "classes": classes, "files": files})
    return out


class TokenSet:
    """A token folder read back: ``codes(i)`` is file ``i``'s ``[LongTensor[T_l]]`` per level (cached),
    ``labels(i)`` its label index (-1 without a label). ``classes`` may be given to index labels as another
    split does (a prior's ``label_names``)."""

    def __init__(self, folder, weights: str | None = None, classes: list[str] | None = None) -> None:
        self.folder = Path(folder)
        file = self.folder / MANIFEST
        if not file.is_file():
            raise FileNotFoundError(f"no token set at {self.folder} ({MANIFEST} missing); encode the split first")
        m = json.loads(file.read_text())
        if weights is not None and m["weights"] != weights:
            raise ValueError(f"{self.folder} holds tokens of tokenizer weights {m['weights']}, not {weights}: they "
                             "are stale; encode the split again with this tokenizer")
        self.manifest, self.hops, self.files = m, m["hops"], m["files"]
        self.label = m.get("label", "")
        self.classes = list(classes) if classes is not None else list(m.get("classes", []))
        self._codes: dict[int, list[Tensor]] = {}

    def __len__(self) -> int:
        return len(self.files)

    def codes(self, i: int) -> list[Tensor]:
        if i not in self._codes:
            self._codes[i] = load_codes(self.folder / self.files[i]["codes"]).codes
        return self._codes[i]

    def labels(self, i: int) -> int:
        if not self.label:
            return -1
        value = str(self.files[i]["labels"][self.label])
        if value not in self.classes:
            raise ValueError(f"{self.folder}: label '{value}' of file {self.files[i]['id']} is not one of "
                             f"{self.classes}")
        return self.classes.index(value)


class TokenWindows(Dataset):
    """Windows of ``context`` tokens of ``level`` (see the module docstring). ``upper``: hand over the level
    above (upsamplers, ``ratio`` tokens of this level per token above); ``labelled``: hand over the label;
    ``random_start``: training windows (default: only for the ``train`` folder name)."""

    def __init__(self, tokens: TokenSet, level: int, context: int, *, upper: bool = False, labelled: bool = False,
                 random_start: bool = False) -> None:
        if not 0 <= level < len(tokens.hops) or (upper and level + 1 >= len(tokens.hops)):
            raise ValueError(f"level {level}{' with an upper level' if upper else ''} is not in a tokenizer with "
                             f"{len(tokens.hops)} levels")
        self.tokens, self.level, self.context, self.upper, self.labelled = tokens, level, context, upper, labelled
        self.ratio = tokens.hops[level + 1] // tokens.hops[level] if upper else 1
        if context % self.ratio:
            raise ValueError(f"context {context} must be a multiple of the hop ratio {self.ratio}")
        self.random_start = random_start
        lengths = [f["tokens"][level] // self.ratio * self.ratio for f in tokens.files]
        self.windows = [(f, k * context) for f, n in enumerate(lengths) for k in range(max(1, n // context))
                        if n >= context]
        if not self.windows:
            raise ValueError(f"no file of {tokens.folder} has {context} tokens at level {level}")
        self.lengths = lengths

    def __len__(self) -> int:
        return len(self.windows)

    def __getitem__(self, i: int) -> dict:
        f, start = self.windows[i]
        n, T, r = self.lengths[f], self.context, self.ratio
        if self.random_start:
            start = int(torch.randint((n - T) // r + 1, (1,))) * r
        codes = self.tokens.codes(f)
        item = {"x": codes[self.level][start:start + T], "start": torch.tensor(start), "total": torch.tensor(n)}
        if self.upper:
            item["upper"] = codes[self.level + 1][start // r:(start + T) // r]
        if self.labelled:
            item["label"] = torch.tensor(self.tokens.labels(f))
        return item


@torch.no_grad()
def bits_per_token(model, windows: TokenWindows, indices: list[int], batch: int,
                   upper_from=None) -> float:
    """Mean bits per token of ``model`` (a ``TokenPrior``) over ``windows[indices]``, ``batch`` windows at a time;
    ``upper_from(i)`` swaps in other upper codes for window ``i``."""
    total, count = 0.0, 0
    for s in range(0, len(indices), batch):
        items = [windows[i] for i in indices[s:s + batch]]
        if upper_from is not None:
            for i, item in zip(indices[s:s + batch], items):
                item["upper"] = upper_from(i)
        b = {k: torch.stack([it[k] for it in items]) for k in items[0]}
        x = b.pop("x")
        total -= float(model.log_prob(x, **b).sum())
        count += x.numel()
    return total / count / LN2


def shuffled_upper(windows: TokenWindows):
    """The upper codes of the same offset in the next file (a different piece): a window's condition swapped."""
    files = sorted({f for f, _ in windows.windows})

    def upper_from(i: int):
        f, start = windows.windows[i]
        other = files[(files.index(f) + 1) % len(files)]
        T, r = windows.context, windows.ratio
        start = min(start, windows.lengths[other] - T)
        return windows.tokens.codes(other)[windows.level + 1][start // r:(start + T) // r]

    return upper_from


def dropped_upper(windows: TokenWindows):
    """No upper codes at all (a row of -1): the level as an upsampler trained with condition dropout models it
    alone, the unconditional branch of its guidance."""
    def upper_from(i: int):
        return torch.full((windows.context // windows.ratio,), -1, dtype=torch.long)

    return upper_from


__all__ = ["MANIFEST", "TokenSet", "TokenWindows", "bits_per_token", "dropped_upper", "encode_files",
           "shuffled_upper"]
