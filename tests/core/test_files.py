"""``core/files.py``: writes are all-or-nothing (an error keeps the old file and leaves no temp file behind),
folders swap in whole, shipped folders are found, code loads from a path with relative imports."""
from __future__ import annotations

import os

import pytest

from arsound.core.files import atomic_dir, atomic_write, load_from_path, shipped_dir, write_json, write_text


def test_atomic_write_is_all_or_nothing(tmp_path):
    path = tmp_path / "sub" / "out.txt"
    write_text(path, "first")
    with pytest.raises(RuntimeError, match="boom"):
        with atomic_write(path) as f:
            f.write("second, half written")
            raise RuntimeError("boom")
    assert path.read_text() == "first" and sorted(os.listdir(path.parent)) == ["out.txt"]
    write_json(path, {"a": [1, "é"]})
    assert path.read_text() == '{\n  "a": [\n    1,\n    "é"\n  ]\n}\n'
    mask = os.umask(0o022)
    os.umask(mask)
    assert path.stat().st_mode & 0o777 == 0o666 & ~mask                 # not mkstemp's 0600
    with pytest.raises(ValueError, match="whole files"):
        with atomic_write(path, "a"):
            pass


def test_atomic_dir_swaps_in_whole(tmp_path):
    folder = tmp_path / "model"
    with atomic_dir(folder) as tmp:
        (tmp / "a").write_text("1")
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(folder) as tmp:
            (tmp / "b").write_text("2")
            raise KeyboardInterrupt
    assert sorted(os.listdir(folder)) == ["a"] and sorted(os.listdir(tmp_path)) == ["model"]
    with atomic_dir(folder) as tmp:
        (tmp / "b").write_text("2")
    assert sorted(os.listdir(folder)) == ["b"] and sorted(os.listdir(tmp_path)) == ["model"]


def test_shipped_folders_and_loading_code_by_path(tmp_path):
    for name in ("recipes", "benchmarks", "checkpoints"):
        assert shipped_dir(name).is_dir()
    assert (shipped_dir("checkpoints") / "registry.json").is_file()
    with pytest.raises(ValueError, match="unknown shipped folder"):
        shipped_dir("tests")
    pkg = tmp_path / "recipe"
    pkg.mkdir()
    (pkg / "config.py").write_text("VALUE = 41\n")
    (pkg / "train.py").write_text("from .config import VALUE\n\ndef main():\n    return VALUE + 1\n")
    load_from_path(pkg, "some_recipe_pkg")
    import importlib

    assert importlib.import_module("some_recipe_pkg.train").main() == 42
    script = tmp_path / "bench.py"
    script.write_text("def main(argv):\n    return len(argv)\n")
    assert load_from_path(script, "some_bench").main(["a", "b"]) == 2


def test_a_refused_write_names_the_file_asked_for(tmp_path, monkeypatch):
    """The file system's refusal (permissions, a full disk) names the output, not the hidden temporary file."""
    import builtins

    real_open = builtins.open

    def refusing(file, mode="r", *a, **kw):
        if "x" in mode:
            raise PermissionError(13, "Permission denied", str(file))
        return real_open(file, mode, *a, **kw)

    monkeypatch.setattr(builtins, "open", refusing)
    with pytest.raises(PermissionError) as err:
        write_text(tmp_path / "out.txt", "x")
    assert err.value.filename == str(tmp_path / "out.txt") and os.listdir(tmp_path) == []
