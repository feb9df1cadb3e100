"""``arsound sample`` for audio models: files per clip, conditioning from .npy, speakers; the bench runner's
refusal of an unknown benchmark."""
from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from arsound.cli.bench import run_benchmark
from arsound.cli.sample import load_cond, output_paths, sample_audio
from tests.audio.test_wavenet import C, tiny


def test_sample_audio_writes_wav_files(tmp_path):
    model = tiny("mulaw", local=True, glob=True)
    c = tmp_path / "c.npy"
    np.save(c, np.random.default_rng(0).standard_normal((C, 6)).astype("float32"))
    paths = sample_audio(model, 2, tmp_path / "gen.wav", cond=c, speaker=1, seconds=0.001, progress=False)
    assert paths == output_paths(tmp_path / "gen.wav", 2) == [tmp_path / "gen-0.wav", tmp_path / "gen-1.wav"]
    with pytest.raises(ValueError, match=r"output '.*gen-0.png' must end in one of \['.flac', '.ogg', '.wav'\]"):
        sample_audio(model, 2, tmp_path / "gen.png", cond=c, speaker=1, seconds=0.001, progress=False)
    wav, sr = sf.read(paths[0])
    assert sr == 16000 and wav.shape == (16,) and np.abs(wav).max() <= 1
    assert load_cond(c, 3).shape == (3, C, 6)
    with pytest.raises(ValueError, match="unknown benchmark"):
        run_benchmark("nope", [])
