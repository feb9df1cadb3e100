"""Vocoder recipes, metrics, data alignment and ``arsound vocode`` on tiny synthetic data in tmp_path."""
from __future__ import annotations

import argparse
import json

import numpy as np
import pytest
import soundfile as sf
import torch

from arsound.audio.features import preemphasis
from arsound.audio.io import load_audio
from arsound.audio.vocoder import (SETTINGS_FILE, MelSpec, VocoderData, VocoderDataset, VocoderModel,
                                   add_vocode_parser, build_vocoder, compare_with_griffin_lim,
                                   log_spectral_distance, mel_module, mr_stft_distance, normalize_mel, vocode)
from arsound.cli import load_recipe
from arsound.core.checkpoint import CheckpointError, load, save_pretrained
from arsound.core.config import apply_overrides

SR = 16000


def tone(seconds: float, f0: float, seed: int) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    return (0.4 * np.sin(2 * np.pi * f0 * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


def fake_prepared(root, name: str, labels: list[dict], seconds: float = 0.5) -> None:
    """A prepared-dataset folder like ``arsound data prepare`` writes: WAVs + manifest.json, 2 files per split
    and label set."""
    files = []
    for j, lab in enumerate(labels):
        for s, split in enumerate(("train", "train", "valid", "test")):
            fid = f"{j}_{s}"
            wav = tone(seconds, 220 * (j + 1) + 30 * s, seed=10 * j + s)
            path = root / name / "wav" / f"{fid}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, wav, SR, subtype="PCM_16")
            files.append({"id": fid, "path": f"wav/{fid}.wav", "sha256": "", "samples": len(wav),
                          "duration": len(wav) / SR, "split": split, "labels": lab, "licence": "test",
                          "credit": "synthetic test tones"})
    manifest = {"name": name, "sample_rate": SR, "settings": {}, "credits": ["synthetic"], "files": files}
    (root / name / "manifest.json").write_text(json.dumps(manifest))


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    fake_prepared(root, "speech", [{"language": "en", "speaker": "a"}, {"language": "es", "speaker": "b"}])
    fake_prepared(root, "chorales", [{"instrument": "organ"}, {"instrument": "strings"}])
    return root


# ---- recipes ----------------------------------------------------------------------------------------
@pytest.mark.parametrize("recipe,data", [("vocoder_mulaw", "speech"), ("vocoder_mol", "chorales")])
def test_recipe_debug_one_step(recipe, data, data_root, tmp_path):
    module = load_recipe(recipe)
    cfg = module.Config.debug()
    apply_overrides(cfg, [f"--data.name={data}", f"--data.root={data_root}", f"--train.out_dir={tmp_path / 'run'}"])
    result = module.main(cfg)
    assert result["steps"] == 1
    assert np.isfinite(result["nll_bits_per_sample"]) and result["nll_bits_per_sample"] > 0
    for side in ("model", "griffin_lim"):
        assert np.isfinite(result[side]["lsd_db"]) and result[side]["mrstft"] > 0
    folder = tmp_path / "run" / "model"
    model = load(folder)
    # speech/en is one speaker (no global conditioning); the chorales here have 2 instruments
    assert model.config.num_speakers == (0 if data == "speech" else 2)
    assert model.config.head == ("mulaw" if recipe == "vocoder_mulaw" else "mol")
    settings = json.loads((folder / SETTINGS_FILE).read_text())
    assert settings["mel"]["hop"] == model.config.hop_length == 256
    # the temperature was chosen on valid clips among the debug sweep, and vocode uses it by default
    assert [r["temperature"] for r in result["temperature_sweep_valid"]] == [1.0, 0.5]
    assert settings["temperature"] == result["temperature"] == min(
        result["temperature_sweep_valid"], key=lambda r: r["lsd_db"])["temperature"]
    assert model.config.preemphasis == (0.85 if recipe == "vocoder_mulaw" else 0.0)
    assert "NLL" in (folder / "README.md").read_text()
    assert (tmp_path / "run" / "examples" / "0_wavenet.wav").is_file()
    # the shipped example: its card figures are what `arsound vocode heldout.wav --compare` prints
    ex = result["heldout_example"]
    wav = load_audio(folder / "heldout.wav", sr=SR, as_tensor=True)[0]
    g = None if ex["speaker"] is None else settings["classes"].index(ex["speaker"])
    y = vocode(model, wav=wav, g=g, settings=settings, temperature=settings["temperature"], progress=False)
    assert compare_with_griffin_lim(model, wav, y, settings)[1] == {k: ex[k] for k in ("wavenet", "griffin_lim")}
    assert f"{ex['wavenet']['lsd_db']:.2f} dB" in (folder / "README.md").read_text()


def test_recipe_unknown_data_name_is_one_line(data_root, tmp_path):
    from arsound.data.audio import DataError

    module = load_recipe("vocoder_mulaw")
    cfg = module.Config.debug()
    apply_overrides(cfg, ["--data.name=birdsong", f"--data.root={data_root}", f"--train.out_dir={tmp_path / 'run'}"])
    with pytest.raises(DataError, match=r"^unknown data.name 'birdsong'; choose from \['chorales', 'speech'\]$"):
        module.main(cfg)
    assert not (tmp_path / "run").exists()


def test_recipe_warm_start(data_root, tmp_path):
    """init= copies a saved vocoder's weights (lr 0, no EMA: the export equals the source); another
    architecture is refused with one line naming the difference."""
    module = load_recipe("vocoder_mulaw")

    def run(out, *extra):
        cfg = module.Config.debug()
        apply_overrides(cfg, [f"--data.root={data_root}", f"--train.out_dir={tmp_path / out}", *extra])
        return module.main(cfg)

    run("src")
    run("ft", f"--init={tmp_path / 'src' / 'model'}", "--train.lr=0")
    src, ft = load(tmp_path / "src" / "model"), load(tmp_path / "ft" / "model")
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), ft.state_dict().values()))
    assert "warm start" in (tmp_path / "ft" / "model" / "README.md").read_text()
    fresh = load(tmp_path / "src" / "model")  # a different init would not match: the copy is real
    run("other", "--train.lr=0", "--train.seed=1")
    other = load(tmp_path / "other" / "model")
    assert not all(torch.equal(a, b) for a, b in zip(fresh.state_dict().values(), other.state_dict().values()))
    with pytest.raises(CheckpointError, match=r"cannot warm-start.*residual_channels 4 != 6"):
        run("bad", f"--init={tmp_path / 'src' / 'model'}", "--model.residual_channels=6")
    assert not (tmp_path / "bad").exists()


def test_crop_mel_equals_whole_clip_frames(data_root):
    """Training crops are conditioned on exactly the frames vocode() computes from the whole clip."""
    mel = MelSpec()
    ds = VocoderDataset(VocoderData(name="chorales", root=str(data_root), segment_frames=4), "valid", mel,
                        lambda w: w, with_label=True)
    item = ds[0]
    e = ds.base.items[0]
    wav = torch.from_numpy(sf.read(ds.base.base / e["path"], dtype="float32")[0])
    whole = normalize_mel(mel_module(mel, SR)(wav))                       # (M, T // hop + 1), centred
    pick = ((e["samples"] - ds.segment) // mel.hop + 1) // 2               # the middle crop of a held-out split
    assert item["c"].shape == (80, 4)
    torch.testing.assert_close(item["c"], whole[:, pick:pick + 4], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(item["x"], wav[pick * mel.hop:(pick + 4) * mel.hop])
    assert item["g"].item() == 0
    # a pre-emphasized target sees its true predecessor: the crop's x equals the whole file's, sliced
    pre = VocoderDataset(VocoderData(name="chorales", root=str(data_root), segment_frames=4), "valid", mel,
                         lambda w: preemphasis(w, 0.85), with_label=True)[0]
    torch.testing.assert_close(pre["x"], preemphasis(wav, 0.85)[pick * mel.hop:(pick + 4) * mel.hop])


# ---- metrics ----------------------------------------------------------------------------------------
def test_metrics_sanity():
    g = torch.Generator().manual_seed(0)
    x = torch.from_numpy(tone(0.5, 330, 0))
    noise = 0.3 * torch.randn(x.shape, generator=g)
    assert log_spectral_distance(x, x).item() == 0
    assert log_spectral_distance(x, noise).item() > 10
    same = mr_stft_distance(x, x)
    assert all(v.item() == 0 for v in same.values())
    a, b = mr_stft_distance(x, noise), mr_stft_distance(noise, x)
    assert a["total"].item() > 1 and b["total"].item() > 1
    torch.testing.assert_close(a["mag"], b["mag"])                        # log-magnitude term is symmetric
    torch.testing.assert_close(log_spectral_distance(x, noise), log_spectral_distance(noise, x))
    # spectral convergence is relative to the original: a quieter copy is closer than a louder one
    assert mr_stft_distance(x, 0.5 * x)["sc"].item() == pytest.approx(0.5, abs=1e-4)
    assert mr_stft_distance(x, 1.5 * x)["sc"].item() == pytest.approx(0.5, abs=1e-4)
    # batched == one by one
    both = log_spectral_distance(torch.stack([x, x]), torch.stack([x, noise]))
    torch.testing.assert_close(both[1], log_spectral_distance(x, noise)[0])


# ---- vocode -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_vocoder(tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt") / "tiny"
    torch.manual_seed(0)
    spec = VocoderModel(layers=2, cycles=1, kernel_size=2, residual_channels=4, gate_channels=8, skip_channels=8)
    model = build_vocoder(spec, MelSpec(), num_speakers=0, sample_rate=SR)
    save_pretrained(model, folder, card={"data": "none (untrained)"})
    (folder / SETTINGS_FILE).write_text(json.dumps({"mel": vars(MelSpec()), "classes": []}))
    return folder


def test_score_script_whole_split_per_label(data_root, tmp_path, monkeypatch, capsys):
    """recipes/vocoder_mulaw/score.py: every test file once, per-instrument means that match the per-clip lines,
    and with two seeds two different draws whose mean is the reported figure."""
    import runpy
    import sys
    from pathlib import Path

    torch.manual_seed(0)
    spec = VocoderModel(layers=2, cycles=1, kernel_size=2, residual_channels=4, gate_channels=8, skip_channels=8)
    save_pretrained(build_vocoder(spec, MelSpec(), num_speakers=2, sample_rate=SR), tmp_path / "m", card={})
    script = Path(__file__).parents[2] / "recipes" / "vocoder_mulaw" / "score.py"
    monkeypatch.setattr(sys, "argv", ["score.py", str(tmp_path / "m"), "--data", "chorales", "--root", str(data_root),
                                      "--seconds", "0.1", "--seeds", "0", "1", "--json", str(tmp_path / "s.json")])
    runpy.run_path(str(script), run_name="__main__")
    lines = capsys.readouterr().out.splitlines()
    per_clip = {ln.split()[0]: float(ln.split()[3]) for ln in lines if ln.split()[1:3] == ["LSD", "WaveNet"]}
    out = json.loads((tmp_path / "s.json").read_text())
    assert out["clips"] == 2 and set(per_clip) == {"0_3", "1_3"}   # fake_prepared: one test file per instrument
    assert out["per_label"]["organ"]["clips"] == out["per_label"]["strings"]["clips"] == 1
    assert out["per_label"]["organ"]["wavenet_lsd_db"] == pytest.approx(per_clip["0_3"], abs=0.01)
    assert out["per_label"]["strings"]["wavenet_lsd_db"] == pytest.approx(per_clip["1_3"], abs=0.01)
    assert out["wavenet"]["lsd_db"] == pytest.approx(sum(per_clip.values()) / 2, abs=0.01)
    assert 0 <= out["wavenet_lower_lsd_fraction"] <= 1
    s0, s1 = out["wavenet_lsd_db_per_seed"]
    assert s0 != s1 and out["wavenet"]["lsd_db"] == pytest.approx((s0 + s1) / 2, abs=1e-4)
    assert any(ln.startswith("WaveNet LSD per seed: 0 ") for ln in lines)


def _subparsers(parser):
    return next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))


@pytest.fixture(params=["cli.main", "direct"])
def route(request, monkeypatch):
    """``cli.main`` (wired into arsound's parser here until arsound/cli.py does it) or cmd_vocode directly."""
    from arsound import cli

    if request.param == "cli.main" and "vocode" not in _subparsers(cli.build_parser()).choices:
        original = cli.build_parser

        def build_parser():
            parser = original()
            add_vocode_parser(_subparsers(parser))
            return parser

        monkeypatch.setattr(cli, "build_parser", build_parser)
    return request.param


def vocode_cli(argv: list[str], route: str) -> int:
    """``arsound vocode ...``: through arsound.cli.main (user errors -> exit 2) or the handler itself."""
    from arsound import cli

    if route == "cli.main":
        return cli.main(["vocode", *argv])
    p = argparse.ArgumentParser()
    add_vocode_parser(p.add_subparsers())
    args, extra = p.parse_known_args(["vocode", *argv])
    return args.func(args, extra)


def test_vocode_end_to_end(tiny_vocoder, tmp_path, route):
    src = tmp_path / "in.wav"
    sf.write(src, tone(0.2, 440, 1), SR)                                   # 3200 samples = 12.5 frames
    out = tmp_path / "out.wav"
    assert vocode_cli([str(src), "-o", str(out), "--model", str(tiny_vocoder)], route) == 0
    y, sr = sf.read(out)
    assert sr == SR and len(y) == 12 * 256 and np.isfinite(y).all() and np.abs(y).max() > 0
    mel = tmp_path / "mel.npy"
    np.save(mel, mel_module(MelSpec(), SR)(torch.from_numpy(tone(0.1, 220, 2))).numpy())  # 7 frames
    out2 = tmp_path / "out2.wav"
    assert vocode_cli(["--mel", str(mel), "-o", str(out2), "--model", str(tiny_vocoder)], route) == 0
    assert len(sf.read(out2)[0]) == 7 * 256
    # the same seed gives the same audio; the API path equals the CLI path
    model = load(tiny_vocoder)
    y_api = vocode(model, wav=torch.from_numpy(sf.read(src, dtype="float32")[0]), seed=0, progress=False)
    np.testing.assert_allclose(y_api.numpy(), y, atol=1 / 32768 + 1e-6)


def test_vocode_uses_the_chosen_temperature_and_compares(tiny_vocoder, tmp_path, route, capsys):
    import shutil

    folder = tmp_path / "tuned"
    shutil.copytree(tiny_vocoder, folder)
    settings = json.loads((folder / SETTINGS_FILE).read_text())
    (folder / SETTINGS_FILE).write_text(json.dumps({**settings, "temperature": 0.5}))
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
            "compare without audio": ["--mel", str(nan_mel), "--compare"]}


def test_vocode_errors_are_one_line(tiny_vocoder, tmp_path, capsys, route):
    cases = {k: (v, tmp_path / f"{k.replace(' ', '_')}.wav") for k, v in _bad_inputs(tmp_path).items()}
    cases["bad output extension"] = ([str(tmp_path / "ok.wav")], tmp_path / "out.mp3")
    for case, (argv, out) in cases.items():
        argv = [*argv, "-o", str(out), "--model", str(tiny_vocoder)]
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
