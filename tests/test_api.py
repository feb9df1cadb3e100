"""The Python API a newcomer meets first: ``import arsound`` reaches every subpackage and lists the shipped
models, its docstring's example runs, and wrong arguments are one-line errors, never silent garbage."""
from __future__ import annotations

import os
import re

import numpy as np
import pytest
import torch

import arsound
from arsound.audio.vocoder import vocode
from tests.fakes import tiny_vocoder, tone


def test_import_arsound_reaches_everything_and_lists_the_shipped_models():
    names = arsound.list_models()
    assert {"wavenet-speech-en", "pixelsnail-mnist", "vqvae-chorales"} <= set(names)
    assert all(isinstance(v, str) and v for v in names.values())
    assert "made" in arsound.image.MODELS and arsound.audio.__name__ == "arsound.audio"
    assert arsound.core.__name__ == "arsound.core" and arsound.data.load_images
    for name in re.findall(r'arsound\.load\("([^"]+)"\)', arsound.__doc__):   # the docstring's example loads
        assert name in names


@pytest.mark.parametrize("kw,needle", [(dict(shape=(28, 28)), "shape must be (C, H, W)"),
                                       (dict(shape=(1, 0, 4)), "shape must be (C, H, W)"),
                                       (dict(levels=2.5), "levels must be an integer >= 2"),
                                       (dict(levels=1), "levels must be an integer >= 2")])
def test_build_refuses_bad_shapes_and_levels(kw, needle):
    with pytest.raises(ValueError, match=re.escape(needle)):
        arsound.image.build("made", **kw)


def test_bad_calls_are_one_line():
    model = arsound.image.build("made", shape=(1, 4, 4), size="debug")
    for n in (0, -1):
        with pytest.raises(ValueError, match="the number of examples to sample must be >= 1"):
            model.sample(n)
    with pytest.raises(arsound.CheckpointError, match="a checkpoint is a folder path or a registry name, got int"):
        arsound.load(123)
    for t in (float("nan"), float("inf"), 0.0, -1.0):
        with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
            model.sample(2, temperature=t)


def test_no_silent_garbage_from_the_vocoder():
    """NaN temperature or NaN conditioning used to come out as full-scale DC with no error."""
    model = tiny_vocoder()
    wav = torch.from_numpy(tone(0.05, 330, 0))
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        vocode(model, wav=wav, temperature=float("nan"), progress=False)
    c = torch.zeros(1, 80, 4)
    c[0, 3, 2] = float("nan")
    for method in ("cached", "naive"):
        with pytest.raises(ValueError, match="local conditioning contains 1 NaN/Inf values"):
            model.generate(c=c, method=method)


def test_written_files_follow_the_umask(tmp_path):
    """WAVs, codes files and checkpoints used to be created 0600 (mkstemp)."""
    from arsound.audio.codes import CodesFile, save_codes
    from arsound.audio.io import save_audio

    mask = os.umask(0o022)
    try:
        save_audio(tmp_path / "a.wav", np.zeros(100, np.float32), 16000)
        save_codes(tmp_path / "c.npz", CodesFile([torch.zeros(3, dtype=torch.long)], [4], 16000, 12, "m"))
        arsound.save_pretrained(tiny_vocoder(), tmp_path / "m")
    finally:
        os.umask(mask)
    for p in (tmp_path / "a.wav", tmp_path / "c.npz", tmp_path / "m" / "model.safetensors", tmp_path / "m" / "config.json"):
        assert p.stat().st_mode & 0o777 == 0o644, p
