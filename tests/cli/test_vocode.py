"""``arsound vocode`` end to end on a tiny untrained vocoder: WAV and mel inputs, the model's own temperature,
``--compare`` against Griffin-Lim, and one-line errors with nothing written."""
from __future__ import annotations

import argparse
import json
import shutil

import numpy as np
import pytest
import soundfile as sf
import torch

from arsound.audio.metrics import log_spectral_distance
from arsound.audio.vocoder import vocode
from arsound.cli import main as cli_main
from arsound.cli.vocode import add_parser
from arsound.core.checkpoint import load, save_pretrained
from tests.fakes import SR, tiny_vocoder, tone


@pytest.fixture(scope="module")
def saved_vocoder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt") / "tiny"
    save_pretrained(tiny_vocoder(), folder, card={"data": "none (untrained)"})
    return folder


@pytest.fixture(params=["cli.main", "direct"])
def route(request):
    """Through ``arsound.cli.main`` (user errors -> exit 2) or the verb's handler itself (raises)."""
    return request.param


def vocode_cli(argv: list[str], route: str) -> int:
    if route == "cli.main":
        return cli_main(["vocode", *argv])
    p = argparse.ArgumentParser()
    add_parser(p.add_subparsers())
    args, extra = p.parse_known_args(["vocode", *argv])
    return args.func(args, extra)


def test_vocode_end_to_end(saved_vocoder, tmp_path, route):
    src = tmp_path / "in.wav"
    sf.write(src, tone(0.2, 440, 1), SR)                                   # 3200 samples = 12.5 frames
    out = tmp_path / "out.wav"
    assert vocode_cli([str(src), "-o", str(out), "--model", str(saved_vocoder)], route) == 0
    y, sr = sf.read(out)
    assert sr == SR and len(y) == 12 * 256 and np.isfinite(y).all() and np.abs(y).max() > 0
    model = load(saved_vocoder)
    mel = tmp_path / "mel.npy"
    np.save(mel, model.mel_spectrogram()(torch.from_numpy(tone(0.1, 220, 2))).numpy())  # 7 frames
    out2 = tmp_path / "out2.wav"
    assert vocode_cli(["--mel", str(mel), "-o", str(out2), "--model", str(saved_vocoder)], route) == 0
    assert len(sf.read(out2)[0]) == 7 * 256
    # the same seed gives the same audio; the API path equals the CLI path
    y_api = vocode(model, wav=torch.from_numpy(sf.read(src, dtype="float32")[0]), seed=0, progress=False)
    np.testing.assert_allclose(y_api.numpy(), y, atol=1 / 32768 + 1e-6)
    out3 = tmp_path / "out3.wav"                                           # --match-level: vocode(match_level=True)
    assert vocode_cli([str(src), "-o", str(out3), "--model", str(saved_vocoder), "--match-level"], route) == 0
    y_api = vocode(model, wav=torch.from_numpy(sf.read(src, dtype="float32")[0]), progress=False, match_level=True)
    np.testing.assert_allclose(y_api.numpy(), sf.read(out3)[0], atol=2 / 32768 + 1e-6)
    out4 = tmp_path / "out4.wav"                                           # --postfilter 2: vocode(postfilter=2)
    assert vocode_cli([str(src), "-o", str(out4), "--model", str(saved_vocoder), "--postfilter", "2"], route) == 0
    y_api = vocode(model, wav=torch.from_numpy(sf.read(src, dtype="float32")[0]), progress=False, postfilter=2)
    np.testing.assert_allclose(y_api.numpy(), sf.read(out4)[0], atol=2 / 32768 + 1e-6)


def test_vocode_uses_the_chosen_temperature_and_compares(saved_vocoder, tmp_path, route, capsys):
    folder = tmp_path / "tuned"
    shutil.copytree(saved_vocoder, folder)
    meta = json.loads((folder / "config.json").read_text())
    meta["config"]["temperature"] = 0.5
    (folder / "config.json").write_text(json.dumps(meta))
    src, out = tmp_path / "in.wav", tmp_path / "out.wav"
    sf.write(src, tone(0.2, 440, 1), SR)
    assert vocode_cli([str(src), "-o", str(out), "--model", str(folder), "--compare"], route) == 0
    wav = torch.from_numpy(sf.read(src, dtype="float32")[0])
    model = load(folder)
    y = torch.from_numpy(sf.read(out, dtype="float32")[0])
    for T, same in ((0.5, True), (1.0, False)):
        ref = vocode(model, wav=wav, temperature=T, seed=0, progress=False)
        assert torch.allclose(ref, y, atol=1 / 32768 + 1e-6) == same
    # --compare wrote Griffin-Lim beside it and printed both distances to the input
    gl = torch.from_numpy(sf.read(tmp_path / "out_griffin_lim.wav", dtype="float32")[0])
    assert gl.shape == y.shape
    lines = {ln.split()[0]: ln.split()[1:] for ln in capsys.readouterr().out.splitlines() if ln.strip()}
    lsd = float(lines["WaveNet"][0])
    assert lsd == pytest.approx(log_spectral_distance(wav[:len(y)], y).item(), abs=0.05)
    assert float(lines["Griffin-Lim"][0]) == pytest.approx(log_spectral_distance(wav[:len(y)], gl).item(), abs=0.05)


def test_vocode_runs_the_models_postfilter_by_default(saved_vocoder, tmp_path, route, capsys):
    """A model whose config chose post-filter passes gets them from the CLI unless told otherwise (``--postfilter
    0``: raw; ``--match-level`` alone: level matched, not filtered); ``--compare`` filters Griffin-Lim alike."""
    folder = tmp_path / "filtered"
    shutil.copytree(saved_vocoder, folder)
    meta = json.loads((folder / "config.json").read_text())
    meta["config"]["postfilter"] = 2
    (folder / "config.json").write_text(json.dumps(meta))
    src = tmp_path / "in.wav"
    sf.write(src, tone(0.2, 440, 1), SR)
    wav = torch.from_numpy(sf.read(src, dtype="float32")[0])
    model = load(folder)
    for flags, kw in (([], dict(postfilter=2)), (["--postfilter", "0"], dict(postfilter=0)),
                      (["--match-level"], dict(match_level=True, postfilter=0))):
        out = tmp_path / f"out{len(flags)}{''.join(flags)}.wav"
        assert vocode_cli([str(src), "-o", str(out), "--model", str(folder), *flags], route) == 0
        ref = vocode(model, wav=wav, progress=False, **kw)
        np.testing.assert_allclose(ref.numpy(), sf.read(out)[0], atol=2 / 32768 + 1e-6)
    assert not np.allclose(sf.read(tmp_path / "out0.wav")[0], sf.read(tmp_path / "out2--postfilter0.wav")[0])
    capsys.readouterr()
    assert vocode_cli([str(src), "-o", str(tmp_path / "cmp.wav"), "--model", str(folder), "--compare"], route) == 0
    printed = capsys.readouterr().out
    assert "WaveNet + post-filter 2 " in printed and "Griffin-Lim + post-filter 2 " in printed


def _bad_inputs(tmp_path):
    not_audio = tmp_path / "text.wav"
    not_audio.write_text("hello")
    short = tmp_path / "short.wav"
    sf.write(short, np.zeros(100, np.float32), SR)
    nan = tmp_path / "nan.wav"
    sf.write(nan, np.full(4000, np.nan, np.float32), SR, subtype="FLOAT")
    bad_mel = tmp_path / "bad_mel.npy"
    np.save(bad_mel, np.zeros((3, 10), np.float32))
    nan_mel = tmp_path / "nan_mel.npy"
    np.save(nan_mel, np.full((80, 4), np.nan, np.float32))
    ok = tmp_path / "ok.wav"
    sf.write(ok, tone(0.1, 440, 3), SR)
    return {"unreadable": [str(not_audio)], "missing": [str(tmp_path / "nope.wav")], "too short": [str(short)],
            "nan audio": [str(nan)], "wrong mel shape": ["--mel", str(bad_mel)], "nan mel": ["--mel", str(nan_mel)],
            "two inputs": [str(ok), "--mel", str(bad_mel)], "no input": [],
            "compare without audio": ["--mel", str(nan_mel), "--compare"],
            "speaker without speakers": [str(ok), "--speaker", "organ"],
            "negative post-filter": [str(ok), "--postfilter", "-1"],
            "post-filter and match-level": [str(ok), "--postfilter", "2", "--match-level"]}


def test_vocode_errors_are_one_line(saved_vocoder, tmp_path, capsys, route):
    cases = {k: (v, tmp_path / f"{k.replace(' ', '_')}.wav") for k, v in _bad_inputs(tmp_path).items()}
    cases["bad output extension"] = ([str(tmp_path / "ok.wav")], tmp_path / "out.mp3")
    for case, (argv, out) in cases.items():
        argv = [*argv, "-o", str(out), "--model", str(saved_vocoder)]
        if route == "cli.main":
            assert vocode_cli(argv, route) == 2, case
            message = capsys.readouterr().err.strip()
        else:
            with pytest.raises((ValueError, FileNotFoundError)) as e:
                vocode_cli(argv, route)
            message = str(e.value)
        assert message and "\n" not in message, (case, message)
        assert not out.exists(), case
        assert not [p for p in tmp_path.iterdir() if p.name.startswith(f".{out.name}")], case  # no temp leftovers


def test_speaker_by_name_or_id(tmp_path):
    """A multi-instrument vocoder takes ``--speaker organ`` or ``--speaker 1``; the same instrument gives the
    same audio either way, an unknown one is refused naming the choices."""
    folder = tmp_path / "two"
    save_pretrained(tiny_vocoder(num_speakers=2, names=("choir", "organ")), folder)
    src = tmp_path / "in.wav"
    sf.write(src, tone(0.1, 440, 3), SR)
    outs = [tmp_path / f"{s}.wav" for s in ("organ", "1", "choir")]
    for spec, out in zip(("organ", "1", "choir"), outs):
        assert cli_main(["vocode", str(src), "-o", str(out), "--model", str(folder), "--speaker", spec]) == 0
    a, b, c = (sf.read(o)[0] for o in outs)
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    with pytest.raises(ValueError, match=r"speaker must be an id in \[0, 2\) or one of \['choir', 'organ'\], got 'flute'"):
        vocode_cli([str(src), "-o", str(tmp_path / "x.wav"), "--model", str(folder), "--speaker", "flute"], "direct")


def _peak_mb(args: list[str], cwd) -> float:
    """Peak resident memory (VmHWM) of ``arsound ARGS`` run in a fresh process."""
    import subprocess
    import sys

    code = ("import sys; from arsound.cli import main; rc = main(sys.argv[1:]); "
            "print([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]); sys.exit(rc)")
    r = subprocess.run([sys.executable, "-c", code, *args], cwd=cwd, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-2000:]
    return int(r.stdout.split("VmHWM:")[1].split()[0]) / 1024


def test_vocode_memory_does_not_grow_with_the_length(saved_vocoder, tmp_path):
    """The input is read and the output written a block at a time: 4x the audio costs no more memory (the
    whole-clip path grew about 350 bytes per sample: 67 MB for these 12 extra seconds)."""
    for seconds in (4, 16):
        sf.write(tmp_path / f"in{seconds}.wav", np.tile(tone(1.0, 330, seconds), seconds), SR)
    short, long = (_peak_mb(["vocode", f"in{s}.wav", "-o", f"out{s}.wav", "--model", str(saved_vocoder)], tmp_path)
                   for s in (4, 16))
    assert sf.info(tmp_path / "out16.wav").frames == 16 * SR // 256 * 256
    assert long - short < 20, (short, long)
