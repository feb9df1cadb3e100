"""What several verbs share: refusing leftover arguments, and checking every output before any work."""
from __future__ import annotations

import os
import shutil
from pathlib import Path


def no_extra(extra: list[str]) -> None:
    """Verbs without ``--a.b=value`` overrides refuse what argparse did not recognize."""
    if extra:
        raise ValueError(f"unrecognized arguments: {' '.join(extra)}")


def _writable_folder(folder: Path, what: str) -> None:
    existing = folder
    while not existing.exists():
        existing = existing.parent
    if not existing.is_dir():
        raise ValueError(f"cannot write {what}: '{existing}' is a file, not a folder")
    if not os.access(existing, os.W_OK | os.X_OK):
        raise ValueError(f"cannot write {what}: no permission to write in '{existing}'")


def output_file(path, suffixes=None, inputs=(), size_bytes: int = 0) -> Path:
    """Check an output file before the work that fills it: a known suffix, not a folder, a folder that can
    be written (or created), not one of the ``inputs`` (it would be overwritten), and room on the disk for
    ``size_bytes``. One-line ``ValueError`` otherwise; returns the path."""
    path = Path(path)
    if suffixes is not None and path.suffix.lower() not in suffixes:
        raise ValueError(f"output '{path}' must end in one of {sorted(suffixes)}")
    if path.is_dir():
        raise ValueError(f"output '{path}' is a folder; give a file name")
    _writable_folder(path.parent, f"'{path}'")
    for src in inputs:
        if src is not None and path.exists() and Path(src).exists() and os.path.samefile(path, src):
            raise ValueError(f"output '{path}' is the input file; choose another name (it would be overwritten)")
    if size_bytes:
        existing = path.parent
        while not existing.exists():
            existing = existing.parent
        free = shutil.disk_usage(existing).free
        if size_bytes > free:
            raise ValueError(f"output '{path}' needs about {size_bytes / 1e9:.3g} GB, but {free / 1e9:.3g} GB are "
                             f"free in '{existing}'; ask for less")
    return path


def output_folder(path) -> Path:
    """Check an output folder before any work: not a file, and writable (or creatable)."""
    path = Path(path)
    if path.exists() and not path.is_dir():
        raise ValueError(f"output folder '{path}' is a file")
    _writable_folder(path, f"into '{path}'")
    return path
