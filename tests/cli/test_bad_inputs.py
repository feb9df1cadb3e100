"""Mistaken or hostile input to the CLI: every case is one line ``arsound VERB: error: ...`` on stderr, exit
status 2, no traceback, and nothing written (no output, no half-written or temporary file). Each class of
mistake is caught once, before any work: outputs (``cli/common.output_file``), devices, temperatures,
inputs that are their own outputs, cut-short audio, runs resumed with other settings."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from arsound.audio.wavenet import WaveNet, WaveNetConfig
from arsound.cli import main
from arsound.core.checkpoint import save_pretrained
from tests.fakes import SR, tiny_vocoder, tone


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Inputs and small models, made once; each case runs in a folder of its own."""
    d = tmp_path_factory.mktemp("inputs")
    sf.write(d / "in.wav", tone(0.3, 330, 0), SR)
    full = (d / "in.wav").read_bytes()
    (d / "cut.wav").write_bytes(full[:len(full) // 2])                     # a copy that stopped half-way
    sf.write(d / "long.wav", np.zeros(601 * SR, np.float32), SR)           # longer than --compare scores
    (d / "a_file").write_text("not a folder")
    (d / "codes.npz").write_text("not an archive")
    save_pretrained(tiny_vocoder(), d / "vocoder")
    torch.manual_seed(0)
    save_pretrained(WaveNet(WaveNetConfig(layers=2, cycles=1, residual_channels=4, gate_channels=8,
                                          skip_channels=8)), d / "wavenet")
    from arsound.image import build

    save_pretrained(build("made", shape=(1, 8, 8), levels=2, size="debug"), d / "made")
    return d


NO_CUDA = pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without CUDA")


def cases(d):
    voc, wn, made = str(d / "vocoder"), str(d / "wavenet"), str(d / "made")
    inp, f = str(d / "in.wav"), str(d / "a_file")
    return {
        "vocode: output under a file": (["vocode", inp, "-o", f"{f}/out.wav", "--model", voc], "is a file, not a folder"),
        "vocode: output is a folder": (["vocode", inp, "-o", "dir.wav", "--model", voc], "is a folder"),
        "vocode: temperature nan": (["vocode", inp, "-o", "o.wav", "--model", voc, "--temperature", "nan"],
                                    "temperature must be a finite number > 0"),
        "vocode: temperature inf": (["vocode", inp, "-o", "o.wav", "--model", voc, "--temperature", "inf"],
                                    "temperature must be a finite number > 0"),
        "vocode: output is the input": (["vocode", "in.wav", "-o", "in.wav", "--model", voc], "is the input file"),
        "vocode: cut-short audio": (["vocode", str(d / "cut.wav"), "-o", "o.wav", "--model", voc], "truncated"),
        "vocode: compare a long file": (["vocode", str(d / "long.wav"), "-o", "o.wav", "--model", voc, "--compare"],
                                        "at most 600 s"),
        "sample: image to .txt": (["sample", "--model", made, "--n", "2", "--out", "s.txt"], "must end in one of ['.png']"),
        "sample: audio to .png": (["sample", "--model", wn, "--out", "s.png", "--seconds", "0.01"], "must end in one of"),
        "sample: output under a file": (["sample", "--model", made, "--out", f"{f}/s.png"], "is a file, not a folder"),
        "sample: more seconds than the disk holds": (["sample", "--model", wn, "--out", "s.wav", "--seconds", "1e9"],
                                                     "GB are free"),
        "sample: audio options on images": (["sample", "--model", made, "--seconds", "2"], "--seconds is for audio"),
        "encode: output under a file": (["encode", inp, "-o", f"{f}/c.npz"], "is a file, not a folder"),
        "decode: not an npz": (["decode", str(d / "codes.npz"), "-o", "o.wav"], "not a readable .npz archive"),
        "train: output under a file": (["train", "image_zoo", "--debug", "--out", f"{f}/run"], "is a file, not a folder"),
        "data: root is a file": (["data", "prepare", "mnist", "--root", f], "is a file"),
        "data: unknown set names them all": (["data", "prepare", "cifar"], "['chorales', 'chorales-2sf', 'digits', 'mnist', 'speech']"),
        "eval: output under a file": (["eval", "--anomaly", "--model", made, "--out", f"{f}/e"], "is a file, not a folder"),
    }


CUDA_CASES = {"vocode: --device cuda": ["vocode", "in.wav", "-o", "o.wav", "--model", "VOC", "--device", "cuda"],
              "sample: --device cuda": ["sample", "--model", "MADE", "--device", "cuda"]}


def check_one_line(argv, needle, cwd, capsys, monkeypatch):
    monkeypatch.chdir(cwd)
    (cwd / "dir.wav").mkdir()
    before = sorted(p.name for p in cwd.iterdir())
    assert main(argv) == 2, argv
    err = capsys.readouterr().err.strip()
    assert err.startswith(f"arsound {argv[0]}: error: ") and "\n" not in err and "Traceback" not in err, err
    assert needle in err, (needle, err)
    assert sorted(p.name for p in cwd.iterdir()) == before                   # nothing written, not even a temp file


@pytest.mark.parametrize("case", list(cases(__import__("pathlib").Path("."))))
def test_one_line_and_nothing_written(case, world, tmp_path, capsys, monkeypatch):
    (tmp_path / "in.wav").write_bytes((world / "in.wav").read_bytes())
    argv, needle = cases(world)[case]
    check_one_line(argv, needle, tmp_path, capsys, monkeypatch)


@NO_CUDA
@pytest.mark.parametrize("case", list(CUDA_CASES))
def test_missing_cuda_is_one_line(case, world, tmp_path, capsys, monkeypatch):
    (tmp_path / "in.wav").write_bytes((world / "in.wav").read_bytes())
    argv = [{"VOC": str(world / "vocoder"), "MADE": str(world / "made")}.get(a, a) for a in CUDA_CASES[case]]
    check_one_line(argv, "CUDA is not available", tmp_path, capsys, monkeypatch)


def test_train_again_with_other_settings_is_refused(tmp_path, capsys):
    """The README's tour once re-ran `make run`'s folder with other settings: it resumed the finished run, trained
    nothing and rewrote the card and results.json with settings never used. Now: one line, nothing touched."""
    run = tmp_path / "run"
    assert main(["train", "image_zoo", "--debug", "--out", str(run)]) == 0
    stamp = {p: p.stat().st_mtime_ns for p in run.rglob("*")}
    results = json.loads((run / "results.json").read_text())
    capsys.readouterr()
    for extra, needle in ((["--train.lr=0.1"], "train.lr 0.001 != 0.1"),
                          (["--model.name=fvsbn"], "model."),
                          (["--data.name=mnist"], "data.name 'digits' != 'mnist'")):
        assert main(["train", "image_zoo", "--debug", "--out", str(run), *extra]) == 2
        err = capsys.readouterr().err.strip()
        assert "\n" not in err and "holds a run with other settings" in err and needle in err, err
        assert "another --out" in err and "resume=False" not in err and len(err) < 400
    assert {p: p.stat().st_mtime_ns for p in run.rglob("*")} == stamp
    assert json.loads((run / "results.json").read_text()) == results
