"""The wheel is installable for real: built without network (hatchling from the dev extra), it carries the
package, the recipes, the benchmarks and the shipped checkpoints, and once installed into a folder of its
own (dependencies from this environment) the CLI works from another directory with no source checkout:
sampling a shipped image model, vocoding, encoding / decoding, and a recipe's debug training run."""
from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def installed(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("wheel")
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check", "-q"]
    subprocess.run([*pip, "wheel", str(REPO), "--no-deps", "--no-build-isolation", "-w", str(tmp / "dist")],
                   check=True, capture_output=True, timeout=300)
    (wheel,) = (tmp / "dist").glob("arsound-*.whl")
    subprocess.run([*pip, "install", "--no-deps", "--target", str(tmp / "site"), str(wheel)], check=True,
                   capture_output=True, timeout=300)
    work = tmp / "elsewhere"
    work.mkdir()
    return wheel, tmp / "site", work


def test_wheel_contents(installed):
    wheel, _, _ = installed
    names = set(zipfile.ZipFile(wheel).namelist())
    for f in ("arsound/cli/__init__.py", "arsound/core/files.py", "arsound/_shipped/recipes/vocoder/config.py",
              "arsound/_shipped/recipes/image_zoo/train.py", "arsound/_shipped/benchmarks/wavenet_generation.py",
              "arsound/_shipped/checkpoints/registry.json",
              "arsound/_shipped/checkpoints/wavenet-speech-en/model.safetensors",
              "arsound/_shipped/checkpoints/wavenet-speech-en/heldout.wav", "arsound/_shipped/demo/app.py",
              "arsound/_shipped/demo/handlers/music.py"):
        assert f in names, f
    assert not [n for n in names if "__pycache__" in n or n.startswith(("tests/", "recipes/", "checkpoints/"))]


def run(installed, *args, code: str | None = None):
    _, site, work = installed
    env = {**os.environ, "PYTHONPATH": str(site), "PYTHONNOUSERSITE": "1"}
    cmd = [sys.executable, "-c", code] if code else [sys.executable, "-m", "arsound", *args]
    return subprocess.run(cmd, cwd=work, env=env, capture_output=True, text=True, timeout=300)


def test_cli_from_another_directory(installed):
    _, site, work = installed
    where = run(installed, code="import arsound; from arsound.core.files import shipped_dir; "
                                "print(arsound.__file__); print(shipped_dir('recipes'))").stdout.split()
    assert where[0].startswith(str(site)) and where[1] == str(site / "arsound" / "_shipped" / "recipes")
    r = run(installed, "sample", "--model", "pixelsnail-mnist", "--n", "2", "--out", "s.png")
    assert r.returncode == 0, r.stderr
    assert (work / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    heldout = site / "arsound" / "_shipped" / "checkpoints" / "wavenet-speech-en" / "heldout.wav"
    x, sr = sf.read(heldout, dtype="float32")
    sf.write(work / "in.wav", x[:sr // 5], sr)                                  # 0.2 s keeps the test short
    r = run(installed, "vocode", "in.wav", "-o", "out.wav", "--compare")         # the default vocoder, by name
    assert r.returncode == 0, r.stderr
    assert sf.info(work / "out.wav").frames == (sr // 5) // 256 * 256 and "Griffin-Lim" in r.stdout
    for args in (("encode", "in.wav", "-o", "codes.npz"), ("decode", "codes.npz", "-o", "dec.wav", "--level", "2")):
        r = run(installed, *args)
        assert r.returncode == 0, r.stderr
    assert sf.info(work / "dec.wav").frames == sr // 5
    r = run(installed, "train", "image_zoo", "--debug", "--out", "run")
    assert r.returncode == 0, r.stderr
    assert (work / "run" / "model" / "config.json").is_file() and (work / "run" / "samples.png").is_file()
