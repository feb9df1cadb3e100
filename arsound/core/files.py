"""Files: the one place that writes them (atomically), and the folders that ship with arsound.

Every file arsound writes goes through :func:`atomic_write` (or :func:`write_text` / :func:`write_json`): the
bytes go to a hidden temporary file beside the destination, which is renamed over it only once complete, so
an interrupted write never leaves a half-written file under the final name (and an existing file survives
a failed write). :func:`atomic_dir` does the same for a whole folder (a saved model).

``recipes/``, ``benchmarks/``, ``checkpoints/`` and ``demo/`` are not Python packages of arsound: they are folders of
files. :func:`shipped_dir` finds them in a source checkout (beside the ``arsound`` package) and in an
installed wheel (inside it, under ``arsound/_shipped/``); :func:`load_from_path` is the one loader of code
from them by path.
"""
from __future__ import annotations

import importlib.util
import json
import os
import secrets
import shutil
import sys
import types
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Iterator

SHIPPED = ("recipes", "benchmarks", "checkpoints", "demo")
PACKAGE_DIR = Path(__file__).resolve().parents[1]  # the installed or checked-out ``arsound`` folder


def _temp_name(path: Path, kind: str = "tmp") -> Path:
    return path.with_name(f".{path.name}.{kind}-{os.getpid()}-{secrets.token_hex(4)}")


def fsync_dir(path: Path) -> None:
    """Make a rename inside ``path`` durable (a no-op where directories cannot be opened)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@contextmanager
def atomic_write(path: str | Path, mode: str = "w", *, durable: bool = False, **open_kw) -> Iterator[IO]:
    """``with atomic_write(path, "wb") as f:`` write ``f``; ``path`` is replaced only when the block ends
    without an error (the temporary file is removed otherwise). Parent folders are created. ``durable``
    fsyncs the file and the folder (resume state, checkpoints). Permissions follow the umask."""
    if mode not in ("w", "wb"):
        raise ValueError(f"atomic_write writes whole files: mode must be 'w' or 'wb', got {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    try:
        f = open(tmp, mode.replace("w", "x"), **open_kw)
    except OSError as e:  # name the file the caller asked for, not the hidden temporary one
        raise type(e)(e.errno, e.strerror, str(path)) from None
    try:
        with f:
            yield f
            if durable:
                f.flush()
                os.fsync(f.fileno())
        os.replace(tmp, path)
        if durable:
            fsync_dir(path.parent)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def write_text(path: str | Path, text: str) -> Path:
    with atomic_write(path, encoding="utf-8") as f:
        f.write(text)
    return Path(path)


def write_json(path: str | Path, obj, indent: int = 2) -> Path:
    """``obj`` as JSON (UTF-8, a final newline), atomically."""
    return write_text(path, json.dumps(obj, indent=indent, ensure_ascii=False) + "\n")


@contextmanager
def atomic_dir(path: str | Path) -> Iterator[Path]:
    """``with atomic_dir(path) as tmp:`` fill the folder ``tmp``; then it takes ``path``'s place: an existing
    ``path`` is set aside, replaced and only then removed, so ``path`` is never half-written."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _temp_name(path)
    tmp.mkdir()
    try:
        yield tmp
        if path.exists():
            old = _temp_name(path, "old")
            os.rename(path, old)
            try:
                os.rename(tmp, path)
            except BaseException:
                os.rename(old, path)
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, path)
        fsync_dir(path.parent)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


# ---- shipped folders ----------------------------------------------------------------------------------
def shipped_dir(name: str) -> Path:
    """``recipes``, ``benchmarks``, ``checkpoints`` or ``demo``: inside an installed wheel
    (``arsound/_shipped/NAME``) or beside the package in a source checkout (``NAME/`` next to ``arsound/``)."""
    if name not in SHIPPED:
        raise ValueError(f"unknown shipped folder '{name}'; choose from {SHIPPED}")
    for candidate in (PACKAGE_DIR / "_shipped" / name, PACKAGE_DIR.parent / name):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(f"arsound's '{name}' folder is missing (looked in {PACKAGE_DIR / '_shipped'} and "
                            f"{PACKAGE_DIR.parent}); reinstall arsound")


def load_from_path(path: str | Path, name: str) -> types.ModuleType:
    """Import the Python file or package folder at ``path`` as module ``name`` (registered in ``sys.modules``
    so dataclasses and relative imports inside it work). A folder's modules import each other relatively
    (``from .config import Config``)."""
    path = Path(path)
    if path.is_dir():
        init = path / "__init__.py"
        if init.is_file():
            spec = importlib.util.spec_from_file_location(name, init, submodule_search_locations=[str(path)])
        else:  # a plain folder of modules: a package with no code of its own
            module = types.ModuleType(name)
            module.__path__ = [str(path)]
            module.__file__ = None
            sys.modules[name] = module
            return module
    else:
        spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load Python code from {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        sys.modules.pop(name, None)
        raise
    return module
