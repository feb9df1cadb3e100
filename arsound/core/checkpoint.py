"""Saved models and resume state.

A saved model is a folder (``../shared/DESIGN.md`` section 2)::

    my_model/
      config.json         {"class": "arsound.image.made:MADE", "config": {...}, "arsound_version": "0.2.0"}
      model.safetensors   the state dict (no pickle)
      README.md           model card: data, steps, metrics, config

``save_pretrained`` writes into a hidden temporary folder and renames it into place
(:func:`~arsound.core.files.atomic_dir`), so a failure never leaves a half-written checkpoint and an
existing one is replaced only once the new one is complete.
``load`` rebuilds ``Model(config_class(**config))`` with ``strict=True``; a bare name resolves through
``checkpoints/registry.json`` (``{"name": {"path": "relative/dir", "description": "..."}}``).

Resume state (model, optimizer, scheduler, EMA, step, RNG, data position) is separate: one
``torch.save`` file written atomically by :func:`save_resume_state` (temp file + ``os.replace``).

Every user-facing problem raises :class:`CheckpointError` with one line: the file, what is wrong,
what to do.
"""
from __future__ import annotations

import dataclasses
import importlib
import json
import os
import platform
import re
from pathlib import Path
from typing import Any

import torch
from safetensors.torch import load_file
from safetensors.torch import save as save_weights
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ..version import __version__
from .config import from_dict
from .device import resolve_device
from .files import atomic_dir, atomic_write, shipped_dir

CONFIG, WEIGHTS, CARD, REGISTRY = "config.json", "model.safetensors", "README.md", "registry.json"


class CheckpointError(ValueError):
    """A checkpoint that cannot be found, read or trusted. The message is one line naming the file."""


def _one_line(e: BaseException | str) -> str:
    return " ".join(str(e).split())


def _major_minor(version: Any) -> tuple[int, int] | None:
    m = re.match(r"\s*(\d+)\.(\d+)", str(version))
    return (int(m.group(1)), int(m.group(2))) if m else None


# ---- registry -------------------------------------------------------------------------------------
def checkpoints_dir() -> Path:
    """The shipped ``checkpoints/`` folder (:func:`~arsound.core.files.shipped_dir`), or
    ``$ARSOUND_CHECKPOINTS`` when set."""
    env = os.environ.get("ARSOUND_CHECKPOINTS")
    if env:
        return Path(env).expanduser()
    return shipped_dir("checkpoints")


def registry(root: str | Path | None = None) -> dict[str, dict]:
    """``{name: {"path": ..., "description": ...}}`` from ``registry.json`` ({} when there is none)."""
    path = Path(root or checkpoints_dir()) / REGISTRY
    if not path.is_file():
        return {}
    try:
        data = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{path}: invalid JSON ({_one_line(e)}); fix or delete the registry") from None
    if not isinstance(data, dict) or not all(isinstance(v, dict) and "path" in v for v in data.values()):
        raise CheckpointError(f'{path}: expected {{"name": {{"path": "dir", "description": "..."}}}}; fix the registry')
    return data


def resolve(path_or_name: str | Path) -> Path:
    """The checkpoint folder for a path or a registry name.

    A string without a path separator that is not an existing folder is a registry name. A run folder
    holding ``model/config.json`` (what :class:`~arsound.core.train.Trainer` writes) resolves to
    ``model/``.
    """
    if not isinstance(path_or_name, (str, os.PathLike)):
        raise CheckpointError(f"a checkpoint is a folder path or a registry name, got {type(path_or_name).__name__} "
                              f"{path_or_name!r}; known names: {sorted(registry())}")
    text = os.fspath(path_or_name)
    path = Path(text).expanduser()
    if not path.exists() and "/" not in text and os.sep not in text:
        root = checkpoints_dir()
        known = registry(root)
        if text not in known:
            raise CheckpointError(f"unknown checkpoint name '{text}' (not a folder either); known names in "
                                  f"{root / REGISTRY}: {sorted(known)}")
        path = Path(known[text]["path"]).expanduser()
        path = path if path.is_absolute() else root / path
        if not path.is_dir():
            raise CheckpointError(f"checkpoint '{text}' points to {path}, which does not exist; "
                                  f"fix {root / REGISTRY} or restore the folder")
    if not path.exists():
        raise CheckpointError(f"no checkpoint at {path}: the folder does not exist; pass a folder with "
                              f"{CONFIG} + {WEIGHTS} or a registry name")
    if not path.is_dir():
        raise CheckpointError(f"{path} is a file; a checkpoint is a folder with {CONFIG} + {WEIGHTS}")
    if not (path / CONFIG).is_file() and (path / "model" / CONFIG).is_file():
        path = path / "model"
    return path


# ---- save -----------------------------------------------------------------------------------------
def _weights_for_saving(model: nn.Module) -> dict[str, torch.Tensor]:
    """Detached CPU tensors; tied/shared or partial-view tensors are cloned (safetensors refuses them)."""
    out, seen = {}, set()
    for name, t in model.state_dict().items():
        t = t.detach().cpu()
        storage = t.untyped_storage()
        whole = storage.nbytes() == t.numel() * t.element_size()
        if storage.data_ptr() in seen or not whole or not t.is_contiguous():
            t = t.clone(memory_format=torch.contiguous_format)
        seen.add(t.untyped_storage().data_ptr())
        out[name] = t
    return out


def _format_value(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    if isinstance(v, dict):
        return ", ".join(f"{k} = {_format_value(x)}" for k, x in v.items())
    return str(v)


def model_card(model: nn.Module, card: str | dict | None, title: str) -> str:
    """The README.md text: ``card`` verbatim when it is a string, else generated (from a dict of
    entries such as data, steps, metrics)."""
    if isinstance(card, str):
        return card if card.endswith("\n") else card + "\n"
    cls = type(model)
    n = sum(p.numel() for p in model.parameters())
    lines = [f"# {title}", "", f"`{cls.__module__}:{cls.__qualname__}`, {n:,} parameters, "
             f"saved by arsound {__version__}.", "", "```python", "import arsound",
             f'model = arsound.load("path/to/{title}")', "```", ""]
    if card:
        lines += ["## Training", ""] + [f"- **{k}**: {_format_value(v)}" for k, v in card.items()] + [""]
    lines += ["## Config", "", "```json", json.dumps(dataclasses.asdict(model.config), indent=2), "```", ""]
    return "\n".join(lines)


def card_entries(text: str) -> dict[str, str]:
    """The ``- **key**: value`` entries of a model card written by :func:`model_card` (its README.md text)."""
    return {m.group(1): m.group(2) for m in re.finditer(r"^- \*\*(.+?)\*\*: (.*)$", text, re.M)}


def weights_id(model: nn.Module) -> str:
    """The first 16 hex digits of the sha256 of the model's weights as ``save_pretrained`` writes them: equal to
    the hash of its ``model.safetensors`` file, computed from the model in memory (so codes and token files can
    name the exact tokenizer they came from)."""
    import hashlib

    return hashlib.sha256(save_weights(_weights_for_saving(model), metadata={"format": "pt"})).hexdigest()[:16]


def save_file(tensors: dict[str, torch.Tensor], filename: str, metadata: dict | None = None) -> None:
    """``safetensors.torch.save_file``, but the file gets the umask's permissions (safetensors makes it 0600)."""
    Path(filename).write_bytes(save_weights(tensors, metadata=metadata))


def save_pretrained(model: nn.Module, path: str | Path, card: str | dict | None = None) -> Path:
    """Write ``model`` to folder ``path`` (config.json + model.safetensors + README.md), atomically.

    ``model`` needs a dataclass ``model.config`` (and a ``config_class`` to be loadable). An existing
    checkpoint at ``path`` is replaced only after the new one is complete; any other existing,
    non-empty folder is refused. Returns ``path``.
    """
    if isinstance(model, DistributedDataParallel):
        model = model.module
    path = Path(path).expanduser()
    config = getattr(model, "config", None)
    if not dataclasses.is_dataclass(config) or isinstance(config, type):
        raise CheckpointError(f"cannot save {type(model).__name__} to {path}: model.config must be a dataclass "
                              "instance (models are built as Model(cfg))")
    if path.exists() and not (path.is_dir() and ((path / CONFIG).is_file() or not any(path.iterdir()))):
        raise CheckpointError(f"{path} exists and is not an arsound checkpoint; refusing to overwrite it, "
                              "choose another path")
    cls = type(model)
    meta = {"class": f"{cls.__module__}:{cls.__qualname__}", "config": dataclasses.asdict(config),
            "arsound_version": __version__}
    try:
        meta_text = json.dumps(meta, indent=2) + "\n"
    except (TypeError, ValueError) as e:
        raise CheckpointError(f"cannot save {path}: the config of {cls.__name__} is not JSON ({_one_line(e)}); "
                              "use plain ints/floats/strings/lists in config dataclasses") from None
    weights = _weights_for_saving(model)
    with atomic_dir(path) as tmp:
        (tmp / CONFIG).write_text(meta_text)
        save_file(weights, str(tmp / WEIGHTS), metadata={"format": "pt"})
        (tmp / CARD).write_text(model_card(model, card, path.name))
        with open(tmp / WEIGHTS, "rb") as f:
            os.fsync(f.fileno())
    return path


def hardware() -> str:
    """The machine in words, for model cards and benchmark tables: CPU model, cores, torch, threads."""
    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {os.cpu_count()} CPU cores (shared), torch {torch.__version__}, {torch.get_num_threads()} thread(s)"


# ---- load -----------------------------------------------------------------------------------------
def _read_meta(file: Path) -> dict:
    if not file.is_file():
        raise CheckpointError(f"{file}: missing; {file.parent} is not an arsound checkpoint "
                              f"(expected {CONFIG} + {WEIGHTS})")
    try:
        meta = json.loads(file.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise CheckpointError(f"{file}: invalid JSON ({_one_line(e)}); the checkpoint is corrupt, "
                              "re-export it") from None
    if not isinstance(meta, dict) or not isinstance(meta.get("config"), dict) or "class" not in meta:
        raise CheckpointError(f'{file}: expected {{"class": ..., "config": {{...}}, "arsound_version": ...}}; '
                              "the checkpoint is corrupt, re-export it")
    return meta


def _check_version(meta: dict, file: Path) -> None:
    saved, installed = meta.get("arsound_version", "0.0"), __version__
    mm = _major_minor(saved)
    if mm is None:
        raise CheckpointError(f"{file}: unreadable arsound_version {saved!r}; re-export the checkpoint")
    if mm > _major_minor(installed):
        raise CheckpointError(f"{file}: written by arsound {saved}, newer than the installed {installed}; "
                              "upgrade arsound to load it")


def _import_class(spec: Any, file: Path, trusted_modules: tuple[str, ...]) -> type:
    if not isinstance(spec, str) or ":" not in spec:
        raise CheckpointError(f"{file}: 'class' must look like 'module.path:ClassName', got {spec!r}")
    module, qualname = spec.split(":", 1)
    allowed = ("arsound", *trusted_modules)
    if not any(module == a or module.startswith(a + ".") for a in allowed):
        raise CheckpointError(f"{file}: class '{spec}' is not part of arsound; refusing to import it "
                              f"(pass trusted_modules=('{module.split('.')[0]}',) only if you trust this file)")
    try:
        obj = importlib.import_module(module)
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except (ImportError, AttributeError) as e:
        raise CheckpointError(f"{file}: class '{spec}' not found ({_one_line(e)}); it may need a newer arsound "
                              "or the checkpoint is corrupt") from None
    if not (isinstance(obj, type) and issubclass(obj, nn.Module)
            and dataclasses.is_dataclass(getattr(obj, "config_class", None))):
        raise CheckpointError(f"{file}: '{spec}' is not a model class with a dataclass config_class")
    return obj


def _check_keys(model: nn.Module, state: dict[str, torch.Tensor], file: Path) -> None:
    expected = model.state_dict()
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    shapes = [f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}" for k, v in expected.items()
              if k in state and state[k].shape != v.shape]
    problems = [f"{what} {items[:5]}{' ...' if len(items) > 5 else ''}"
                for what, items in (("missing keys", missing), ("unexpected keys", unexpected),
                                    ("shape mismatch (file vs model)", shapes)) if items]
    if problems:
        raise CheckpointError(f"{file}: weights do not fit {type(model).__name__}: {'; '.join(problems)}; "
                              "was it saved from a different config or version?")


def load(path_or_name: str | Path, device: str | torch.device = "cpu", *,
         trusted_modules: tuple[str, ...] = ()) -> nn.Module:
    """Rebuild a saved model (in eval mode) from a folder or a ``checkpoints/registry.json`` name.

    Only classes under ``arsound.`` are imported, plus modules listed in ``trusted_modules``.
    Loading does not disturb the global torch RNG.
    """
    device = resolve_device(device)
    folder = resolve(path_or_name)
    file = folder / CONFIG
    meta = _read_meta(file)
    _check_version(meta, file)
    cls = _import_class(meta["class"], file, tuple(trusted_modules))
    try:
        upgrade = getattr(cls, "upgrade_config", None)  # a class that reads an older saved layout
        config = from_dict(cls.config_class, upgrade(meta["config"], folder) if upgrade else meta["config"])
    except (TypeError, ValueError, KeyError) as e:
        raise CheckpointError(f"{file}: config does not fit {cls.config_class.__name__} ({_one_line(e)}); "
                              "was it saved by a different arsound version?") from None
    weights = folder / WEIGHTS
    if not weights.is_file():
        raise CheckpointError(f"{weights}: missing; the checkpoint is incomplete, re-export it")
    try:
        state = load_file(str(weights), device="cpu")
    except Exception as e:  # safetensors raises its own error types for every kind of corruption
        raise CheckpointError(f"{weights}: cannot read weights ({_one_line(e)}); the file is corrupt or "
                              "truncated, re-export or re-download it") from None
    with torch.random.fork_rng(devices=[]):
        try:
            model = cls(config)
        except Exception as e:
            raise CheckpointError(f"{file}: cannot build {cls.__name__} from its config ({_one_line(e)})") from None
    _check_keys(model, state, weights)
    model.load_state_dict(state, strict=True)
    return model.to(device).eval()


def warm_start(model: nn.Module, source: str | Path,
               ignore: tuple[str, ...] = ("temperature", "postfilter", "cond_dropout"),
               added: tuple[str, ...] = ()) -> list[str]:
    """Copy the weights of the saved model ``source`` (folder or registry name) into ``model`` (fine-tuning or
    a new schedule on trained weights: the optimizer, schedule and EMA start fresh). Class and config must
    match, but for the config fields in ``ignore`` (settings of sampling or training, not of the weights) and
    those in ``added`` that the source leaves empty: a conditioning ``model`` has and the source lacks (say,
    instrument labels, ``added=("num_labels", "label_names")``). Every weight of the source must fit
    ``model``; the ones it lacks start at zero, so a conditioning that is summed in (an embedding) adds
    nothing until training moves it. Returns the names of those new weights."""
    src = load(source)
    a, b = (dataclasses.asdict(m.config) if dataclasses.is_dataclass(getattr(m, "config", None)) else {}
            for m in (src, model))
    diff = [f"{k} {a.get(k)!r} != {b.get(k)!r}" for k in sorted(set(a) | set(b))
            if k not in ignore and a.get(k) != b.get(k) and not (k in added and not a.get(k))]
    if type(src) is not type(model) or diff:
        raise CheckpointError(f"{source}: cannot warm-start, its model differs from the recipe's "
                              f"({', '.join(diff[:4]) or type(src).__name__}); pass the same --model.* settings")
    have, want = src.state_dict(), model.state_dict()
    lost = [k for k, v in have.items() if k not in want or want[k].shape != v.shape]
    if lost:
        raise CheckpointError(f"{source}: cannot warm-start, {len(lost)} of its weights do not fit the recipe's "
                              f"model ({', '.join(lost[:3])})")
    new = [k for k in want if k not in have]
    model.load_state_dict({**have, **{k: torch.zeros_like(want[k]) for k in new}})
    return new


# ---- resume state ---------------------------------------------------------------------------------
def save_resume_state(state: dict, path: str | Path) -> None:
    """``torch.save(state)`` to a temp file, fsync, then ``os.replace``: ``path`` is always whole."""
    with atomic_write(path, "wb", durable=True) as f:
        torch.save(state, f)


def load_resume_state(path: str | Path) -> dict:
    """Read what :func:`save_resume_state` wrote (``weights_only``: no arbitrary pickle)."""
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"no resume state at {path}; start a fresh run (resume=False)")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: cannot read resume state ({_one_line(e)[:300]}); delete it to start "
                              "over") from None
    if not isinstance(state, dict) or "step" not in state:
        raise CheckpointError(f"{path}: not an arsound resume state; delete it to start over")
    return state
