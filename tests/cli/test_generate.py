"""``arsound generate`` end to end on a debug hierarchy trained in the test session: clips, codes, previews and
settings written; the same seed gives the same files; upsampling a top level and continuing a prompt keep the
given codes; every bad input is one line with nothing written."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from arsound.audio.codes import CodesFile, load_codes, save_codes
from tests.fakes import SR, music


def cli(argv):
    from arsound.cli import main

    return main(argv)


def test_generate_end_to_end(saved_music, tmp_path):
    args = ["generate", "--model", str(saved_music), "--seconds", "0.1", "--n", "2", "--seed", "3",
            "--instrument", "piano", "--temperature", "1.0", "0.9", "--top-k", "0", "8", "--every-level"]
    assert cli(args + ["-o", str(tmp_path / "a")]) == 0
    out = tmp_path / "a"
    assert sorted(p.name for p in out.iterdir()) == [
        "sample_0.npz", "sample_0.wav", "sample_0_level0.wav", "sample_0_level1.wav",
        "sample_1.npz", "sample_1.wav", "sample_1_level0.wav", "sample_1_level1.wav", "settings.json"]
    for i in (0, 1):
        y, sr = sf.read(out / f"sample_{i}.wav", dtype="float32")
        assert sr == SR and len(y) == 1600 and np.abs(y).max() > 0
        cf = load_codes(out / f"sample_{i}.npz")
        assert [len(c) for c in cf.codes] == [400, 100] and cf.length == 1600 and cf.model == "tiny-vqvae"
    settings = json.loads((out / "settings.json").read_text())
    assert settings["seed"] == 3 and settings["temperature"] == [1.0, 0.9] and settings["top_k"] == [None, 8]
    assert settings["samples"] == 1600 and settings["rtf"] > 0 and set(settings["level_seconds"]) == {"1", "0"}
    # the same seed: the same files, byte for byte; another seed: other clips
    assert cli(args + ["-o", str(tmp_path / "b")]) == 0
    for name in ("sample_0.wav", "sample_1.wav", "sample_1.npz"):
        assert (out / name).read_bytes() == (tmp_path / "b" / name).read_bytes()
    args[args.index("--seed") + 1] = "4"
    assert cli(args + ["-o", str(tmp_path / "c")]) == 0
    assert (out / "sample_0.wav").read_bytes() != (tmp_path / "c" / "sample_0.wav").read_bytes()


def test_piece_position_is_recorded(saved_music, tmp_path):
    """--piece-seconds / --offset reach the generator (its windows' timing: tests/music/test_generator.py) and
    settings.json, so the run can be repeated."""
    args = ["generate", "--model", str(saved_music), "--seconds", "0.1", "--instrument", "organ",
            "--piece-seconds", "0.5", "--offset", "0.2", "-o", str(tmp_path / "a")]
    assert cli(args) == 0
    settings = json.loads((tmp_path / "a" / "settings.json").read_text())
    assert settings["piece_seconds"] == 0.5 and settings["offset_seconds"] == 0.2 and settings["samples"] == 1600


def test_guidance_reaches_the_upsampler_and_is_recorded(saved_music, tmp_path):
    """--guidance (upper-code guidance: tests/music/test_generator.py) changes the upsampled level only and is
    written to settings.json; without it the model's own per level is recorded."""
    args = ["generate", "--model", str(saved_music), "--seconds", "0.1", "--instrument", "organ", "--seed", "2"]
    assert cli(args + ["-o", str(tmp_path / "plain")]) == 0
    assert cli(args + ["--guidance", "2", "-o", str(tmp_path / "guided")]) == 0
    plain, guided = (load_codes(tmp_path / d / "sample_0.npz") for d in ("plain", "guided"))
    assert torch.equal(plain.codes[1], guided.codes[1]) and not torch.equal(plain.codes[0], guided.codes[0])
    assert json.loads((tmp_path / "plain" / "settings.json").read_text())["guidance"] == [0.0, 0.0]
    assert json.loads((tmp_path / "guided" / "settings.json").read_text())["guidance"] == 2.0


def test_drafts_reach_the_upsampler_and_are_recorded(saved_music, tmp_path):
    """--drafts (tests/music/test_generator.py) changes the upsampled level only and is written to settings.json;
    without it the model's own per level is recorded."""
    args = ["generate", "--model", str(saved_music), "--seconds", "0.1", "--instrument", "organ", "--seed", "2"]
    assert cli(args + ["-o", str(tmp_path / "plain")]) == 0
    assert cli(args + ["--drafts", "1", "3", "-o", str(tmp_path / "drafted")]) == 0
    plain, drafted = (load_codes(tmp_path / d / "sample_0.npz") for d in ("plain", "drafted"))
    assert torch.equal(plain.codes[1], drafted.codes[1]) and not torch.equal(plain.codes[0], drafted.codes[0])
    assert json.loads((tmp_path / "plain" / "settings.json").read_text())["drafts"] == [1, 1]
    assert json.loads((tmp_path / "drafted" / "settings.json").read_text())["drafts"] == [1, 3]


def test_top_level_preview_then_upsample(saved_music, tmp_path):
    assert cli(["generate", "--model", str(saved_music), "--seconds", "0.05", "--levels", "1", "--instrument",
                "organ", "-o", str(tmp_path / "top")]) == 0
    top = load_codes(tmp_path / "top" / "sample_0.npz")
    assert [len(c) for c in top.codes] == [0, 50]
    # no --temperature: the model's own for each level sampled, recorded
    assert json.loads((tmp_path / "top" / "settings.json").read_text())["temperature"] == [1.0]
    assert len(sf.read(tmp_path / "top" / "sample_0.wav")[0]) == 800
    assert cli(["generate", "--model", str(saved_music), "--codes", str(tmp_path / "top" / "sample_0.npz"),
                "--instrument", "organ", "-o", str(tmp_path / "up")]) == 0
    up = load_codes(tmp_path / "up" / "sample_0.npz")
    assert torch.equal(up.codes[1], top.codes[1]) and len(up.codes[0]) == 200


def test_prompt_is_kept_and_continued(saved_music, vqvae, tmp_path):
    x = music(0.2, 5)
    sf.write(tmp_path / "p.wav", x.numpy(), SR, subtype="FLOAT")
    assert cli(["generate", "--model", str(saved_music), "--seconds", "0.12", "--prompt", str(tmp_path / "p.wav"),
                "--prompt-seconds", "0.05", "--instrument", "organ", "-o", str(tmp_path / "o")]) == 0
    cf = load_codes(tmp_path / "o" / "sample_0.npz")
    whole = 800 // 16 * 16
    enc = vqvae.encode(x[None, :whole])
    for level, hop in ((0, 4), (1, 16)):
        assert torch.equal(cf.codes[level][:whole // hop], enc[level][0])
    assert cf.length == round(0.12 * SR)


def bad_cases(saved_music, saved_vqvae, tmp_path):
    short = tmp_path / "short.wav"
    sf.write(short, music(0.0005, 1).numpy(), SR)          # 8 samples: less than one top-level token (16)
    foreign = tmp_path / "foreign.npz"
    save_codes(foreign, CodesFile(codes=[torch.zeros(8, dtype=torch.long), torch.zeros(2, dtype=torch.long)],
                                  hops=[4, 16], sample_rate=SR, length=32, model="other",
                                  model_sha256="0123456789abcdef", num_codes=16))
    m = ["--model", str(saved_music)]
    return {
        "seconds 0": (m + ["--seconds", "0", "--instrument", "organ"], "--seconds must be > 0"),
        "unknown instrument": (m + ["--seconds", "0.1", "--instrument", "banjo"], "unknown instrument 'banjo'"),
        "short prompt": (m + ["--seconds", "0.1", "--prompt", str(short), "--instrument", "organ"],
                         "shorter than one top-level token"),
        "foreign codes": (m + ["--codes", str(foreign), "--instrument", "organ"], "not by this generator"),
        "not a hierarchy": (["--model", str(saved_vqvae), "--seconds", "0.1"], "not a MusicGenerator"),
        "bad level": (m + ["--seconds", "0.1", "--levels", "3", "--instrument", "organ"], "--levels 3"),
        "bad top-p": (m + ["--seconds", "0.1", "--top-p", "0"], "--top-p must be in"),
        "missing prompt": (m + ["--seconds", "0.1", "--prompt", str(tmp_path / "nope.wav")], "does not exist"),
        "too many temperatures": (m + ["--seconds", "0.1", "--temperature", "1", "1", "1", "--instrument", "organ"],
                                  "one per level"),
        "negative guidance": (m + ["--seconds", "0.1", "--guidance", "-1"], "--guidance must be >= 0"),
        "no drafts": (m + ["--seconds", "0.1", "--drafts", "0"], "--drafts must be >= 1"),
        "offset without piece": (m + ["--seconds", "0.1", "--offset", "1"], "--offset needs --piece-seconds"),
        "clip outside piece": (m + ["--seconds", "0.1", "--piece-seconds", "0.3", "--offset", "0.25"],
                               "does not fit in --piece-seconds 0.3"),
    }


@pytest.mark.parametrize("case", ["seconds 0", "unknown instrument", "short prompt", "foreign codes",
                                  "not a hierarchy", "bad level", "bad top-p", "missing prompt",
                                  "too many temperatures", "negative guidance", "no drafts", "offset without piece",
                                  "clip outside piece"])
def test_bad_input_is_one_line_and_writes_nothing(case, saved_music, saved_vqvae, tmp_path, capsys):
    argv, message = bad_cases(saved_music, saved_vqvae, tmp_path)[case]
    out = tmp_path / "out"
    assert cli(["generate", *argv, "-o", str(out)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("arsound generate: error:") and message in err[0], err
    assert not out.exists() or not any(out.iterdir())
