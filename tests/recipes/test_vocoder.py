"""``recipes/vocoder`` (both presets) on tiny synthetic data in tmp_path: one training step, the final report,
the shipped example, warm starts, and ``score.py`` over a whole split."""
from __future__ import annotations

import json
import runpy
import shutil
import sys
from dataclasses import replace

import numpy as np
import pytest
import torch

from arsound.audio.io import load_audio
from arsound.audio.vocoder import compare_with_griffin_lim, vocode
from arsound.audio.wavenet import WaveNet
from arsound.cli.train import load_recipe
from arsound.core.checkpoint import CheckpointError, load, save_pretrained
from arsound.core.config import apply_overrides
from arsound.core.files import shipped_dir
from tests.fakes import SR, fake_prepared, tiny_vocoder


@pytest.fixture(scope="module")
def data_root(tmp_path_factory):
    root = tmp_path_factory.mktemp("data")
    fake_prepared(root, "speech", [{"language": "en", "speaker": "a"}, {"language": "es", "speaker": "b"}])
    fake_prepared(root, "chorales", [{"instrument": "organ"}, {"instrument": "strings"}])
    return root


@pytest.mark.parametrize("preset,data", [("mulaw", "speech"), ("mol", "chorales"), ("lp", "speech"),
                                         ("wavernn", "chorales")])
def test_recipe_debug_one_step(preset, data, data_root, tmp_path):
    recipe = load_recipe("vocoder")
    cfg = recipe.config(preset, debug=True)
    apply_overrides(cfg, [f"--data.name={data}", f"--data.root={data_root}", f"--train.out_dir={tmp_path / 'run'}"])
    if preset == "lp":                                          # with the level and bandwidth augmentation
        apply_overrides(cfg, ["--data.gain_db=-30,0", "--data.lowpass=0.5"])
        assert cfg.data.gain_db == (-30.0, 0.0)
    result = recipe.main(cfg)
    assert result["steps"] == 1
    assert np.isfinite(result["nll_bits_per_sample"]) and result["nll_bits_per_sample"] > 0
    for side in ("model", "griffin_lim"):
        assert np.isfinite(result[side]["lsd_db"]) and result[side]["mrstft"] > 0
    folder = tmp_path / "run" / "model"
    model = load(folder)
    # speech/en is one speaker (no global conditioning); the chorales here have 2 instruments
    assert model.config.num_speakers == (0 if data == "speech" else 2)
    assert model.config.speaker_names == (() if data == "speech" else ("organ", "strings"))
    assert type(model).__name__ == ("WaveRNN" if preset == "wavernn" else "WaveNet")
    if preset != "wavernn":
        assert model.config.head == ("mol" if preset == "mol" else "mulaw")
        assert model.config.lpc_order == (16 if preset == "lp" else 0)
    # the saved config holds the whole front end: nothing beside config.json + weights is needed to vocode
    assert (model.config.hop_length, model.config.cond_channels, model.config.n_fft) == (256, 80, 1024)
    assert sorted(p.name for p in folder.iterdir()) == ["README.md", "config.json", "heldout.wav", "model.safetensors"]
    # the temperature was chosen on valid clips among the debug sweep, and vocode uses it by default
    assert [r["temperature"] for r in result["temperature_sweep_valid"]] == [1.0, 0.5]
    assert model.config.temperature == result["temperature"] == min(
        result["temperature_sweep_valid"], key=lambda r: r["lsd_db"])["temperature"]
    # then the band post-filter passes, on the same valid clips at that temperature: stored, and vocode's default
    assert [r["postfilter"] for r in result["postfilter_sweep_valid"]] == [0, 2]
    assert model.config.postfilter == result["postfilter"] == min(
        result["postfilter_sweep_valid"], key=lambda r: r["lsd_db"])["postfilter"]
    assert result["postfilter_sweep_valid"][0]["lsd_db"] != result["postfilter_sweep_valid"][1]["lsd_db"]
    assert "band post-filter" in (folder / "README.md").read_text()
    assert getattr(model.config, "preemphasis", 0.0) == (0.85 if preset == "mulaw" else 0.0)
    assert "NLL" in (folder / "README.md").read_text()
    assert (tmp_path / "run" / "examples" / "0_wavenet.wav").is_file()
    # the shipped example: its card figures are what `arsound vocode heldout.wav --compare` prints
    ex = result["heldout_example"]
    wav = load_audio(folder / "heldout.wav", sr=SR, as_tensor=True)[0]
    y = vocode(model, wav=wav, g=ex["speaker"], progress=False)
    assert compare_with_griffin_lim(model, wav, y)[1] == {k: ex[k] for k in ("wavenet", "griffin_lim")}
    assert f"{ex['wavenet']['lsd_db']:.2f} dB" in (folder / "README.md").read_text()


def test_presets_and_their_refusal():
    recipe = load_recipe("vocoder")
    assert set(recipe.presets) == {"mulaw", "mol", "lp", "wavernn", "mulaw-gpu", "lp-gpu"}
    assert recipe.config("mol").model.bits == 16 and recipe.config().model.head == "mulaw"
    for name in ("mulaw", "lp"):                  # at GPU scale: deeper (receptive field 1,021), same widths, bf16
        small, big = recipe.config(name), recipe.config(f"{name}-gpu")
        assert big.model == replace(small.model, layers=16) and WaveNet(big.model).receptive_field == 1021
        assert big.train.amp == "auto" and big.train.batch_size == 32 and big.data.segment_frames == 16
        assert recipe.config(f"{name}-gpu", debug=True).model == recipe.config(name, debug=True).model
    choices = r"\['lp', 'lp-gpu', 'mol', 'mulaw', 'mulaw-gpu', 'wavernn'\]"
    with pytest.raises(ValueError, match=rf"recipe 'vocoder' has no preset 'lpcnet'; choose from {choices}"):
        recipe.config("lpcnet")


def test_recipe_unknown_data_name_is_one_line(data_root, tmp_path):
    from arsound.data.audio import DataError

    recipe = load_recipe("vocoder")
    cfg = recipe.Config.debug()
    apply_overrides(cfg, ["--data.name=birdsong", f"--data.root={data_root}", f"--train.out_dir={tmp_path / 'run'}"])
    names = r"\['chorales', 'chorales-2sf', 'speech'\]"
    with pytest.raises(DataError, match=rf"^unknown data.name 'birdsong'; choose from {names}$"):
        recipe.main(cfg)
    assert not (tmp_path / "run").exists()


def test_recipe_warm_start(data_root, tmp_path):
    """init= copies a saved vocoder's weights (lr 0, no EMA: the export equals the source); another
    architecture is refused with one line naming the difference."""
    recipe = load_recipe("vocoder")

    def run(out, *extra):
        cfg = recipe.Config.debug()
        apply_overrides(cfg, [f"--data.root={data_root}", f"--train.out_dir={tmp_path / out}", *extra])
        return recipe.main(cfg)

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
    tuned = tmp_path / "tuned"                # a shipped vocoder's sampling settings do not block a warm start
    meta = json.loads((tmp_path / "src" / "model" / "config.json").read_text())
    meta["config"].update(temperature=0.3, postfilter=32)
    shutil.copytree(tmp_path / "src" / "model", tuned)
    (tuned / "config.json").write_text(json.dumps(meta))
    run("ft2", f"--init={tuned}", "--train.lr=0")
    ft2 = load(tmp_path / "ft2" / "model")
    assert all(torch.equal(a, b) for a, b in zip(src.state_dict().values(), ft2.state_dict().values()))


def test_score_script_whole_split_per_label(data_root, tmp_path, monkeypatch, capsys):
    """recipes/vocoder/score.py: every test file once, per-instrument means that match the per-clip lines,
    and with two seeds two different draws whose mean is the reported figure."""
    save_pretrained(tiny_vocoder(num_speakers=2, names=("organ", "strings")), tmp_path / "m", card={})
    script = shipped_dir("recipes") / "vocoder" / "score.py"
    monkeypatch.setattr(sys, "argv", ["score.py", str(tmp_path / "m"), "--data", "chorales", "--root", str(data_root),
                                      "--seconds", "0.1", "--seeds", "0", "1", "--json", str(tmp_path / "s.json"),
                                      "--plot", str(tmp_path / "s.png")])
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
    # each clip's LSD, the error by frequency (0 .. 8 kHz in 513 bins), and the picture of both
    assert out["per_clip"]["id"] == sorted(per_clip) and out["per_clip"]["wavenet_lsd_db"] == pytest.approx(
        [per_clip[i] for i in out["per_clip"]["id"]], abs=0.01)
    curve = out["error_by_frequency"]
    assert len(curve["hz"]) == len(curve["wavenet_db"]) == len(curve["griffin_lim_db"]) == 513
    assert curve["hz"][0] == 0 and curve["hz"][-1] == 8000 and min(curve["wavenet_db"]) >= 0
    assert (tmp_path / "s.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_held_out_voices_are_scored_apart(tmp_path):
    """Speech trained on some languages without a speaker label: the voices it never heard (June, only French here)
    are scored in a report of their own, and the card says so."""
    root = tmp_path / "data"
    fake_prepared(root, "speech", [{"language": "en", "speaker": "allison"}, {"language": "es", "speaker": "allison"},
                                   {"language": "fr", "speaker": "june"}])
    recipe = load_recipe("vocoder")
    cfg = recipe.config("lp", debug=True)
    apply_overrides(cfg, [f"--data.root={root}", f"--train.out_dir={tmp_path / 'run'}", "--data.language=en,es",
                          "--data.speaker_embedding=false"])
    result = recipe.main(cfg)
    unseen = result["unseen_voices"]
    assert unseen["languages"] == "fr,it,ru" and unseen["clips"] == ["2_3"]   # the French test file, the only one
    assert np.isfinite(unseen["model"]["lsd_db"]) and np.isfinite(unseen["griffin_lim"]["lsd_db"])
    model = load(tmp_path / "run" / "model")
    assert model.config.num_speakers == 0
    card = (tmp_path / "run" / "model" / "README.md").read_text()
    assert "unseen voices (fr,it,ru, 1 test clips" in card and "speech (en,es)" in card
