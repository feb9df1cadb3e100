"""Native kernels compiled at first use: a C source shipped in the package is built with the system's C compiler
(``$CC``, else ``gcc`` / ``cc`` / ``clang``; ``-O3 -march=native``) into a per-user cache and loaded with ctypes.
Where no compiler is found, ``ARSOUND_NATIVE=0`` is set or the build fails, :func:`library` returns None and the
caller keeps its PyTorch path (a warning says why, once).

The cache (``$ARSOUND_CACHE/native``, default ``~/.cache/arsound/native``) keys each build by the source, the
compiler, the flags and the CPU, so an edited source or another machine builds afresh; a build is written to a
temporary name and renamed, so concurrent processes only ever load whole files.
"""
from __future__ import annotations

import ctypes
import hashlib
import os
import platform
import shutil
import subprocess
import tempfile
import warnings
from functools import lru_cache
from pathlib import Path

FLAGS = ("-O3", "-march=native", "-fPIC", "-shared", "-std=c11", "-pthread")


def cache_dir() -> Path:
    return Path(os.environ.get("ARSOUND_CACHE") or Path.home() / ".cache" / "arsound") / "native"


def compiler() -> str | None:
    """The C compiler to use, or None."""
    return os.environ.get("CC") or shutil.which("gcc") or shutil.which("cc") or shutil.which("clang")


def _cpu() -> str:
    """What -march=native depends on: the machine and its CPU flags."""
    flags = ""
    try:
        with open("/proc/cpuinfo") as f:
            flags = next((line for line in f if line.startswith(("flags", "Features"))), "")
    except OSError:
        pass
    return platform.machine() + platform.processor() + flags


@lru_cache(maxsize=None)
def library(source: str | Path) -> ctypes.CDLL | None:
    """The shared library built from C file ``source`` (cached), or None where native code is unavailable."""
    if os.environ.get("ARSOUND_NATIVE", "1") == "0":
        return None
    cc = compiler()
    if cc is None:
        warnings.warn("no C compiler found (set CC): native kernels are off, the PyTorch path runs", stacklevel=2)
        return None
    src = Path(source)
    key = hashlib.sha256(src.read_bytes() + " ".join((cc, *FLAGS, _cpu())).encode()).hexdigest()[:16]
    out = cache_dir() / f"{src.stem}-{key}.so"
    if not out.is_file():
        out.parent.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=out.parent) as tmp:
            built = Path(tmp) / out.name
            proc = subprocess.run([cc, *FLAGS, str(src), "-o", str(built), "-lm"], capture_output=True, text=True)
            if proc.returncode:
                last = (proc.stderr.strip().splitlines() or ["no message"])[-1]
                warnings.warn(f"building {src.name} failed ({last}): the PyTorch path runs", stacklevel=2)
                return None
            os.replace(built, out)
    return ctypes.CDLL(str(out))


def ptr(t) -> ctypes.c_void_p:
    """A contiguous CPU tensor's data pointer for a ctypes call (None -> NULL)."""
    return ctypes.c_void_p(None if t is None else t.data_ptr())


__all__ = ["cache_dir", "compiler", "library", "ptr"]
