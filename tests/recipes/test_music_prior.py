"""``recipes/music_prior``: one training step of the debug top prior and of an upsampler on synthetic
chorales tokenized by the debug VQ-VAE, with the test bits per token beside the count baselines (and the
shuffled-condition figure for the upsampler), and the tokens encoded once."""
from __future__ import annotations

import math
import re

import pytest
import torch

from arsound.cli.train import load_recipe
from arsound.core.checkpoint import CheckpointError, load
from arsound.core.config import apply_overrides
from arsound.music.generator import MusicGenerator
from arsound.music.prior import TokenPrior
from tests.fakes import fake_prepared


def test_recipe_debug_one_step_each_level_then_assemble(saved_vqvae, tmp_path):
    root = tmp_path / "data"
    fake_prepared(root, "chorales", [{"instrument": "organ"}, {"instrument": "piano"}], seconds=0.5)
    recipe = load_recipe("music_prior")
    for preset in ("top", "middle"):
        cfg = recipe.config(preset, debug=True)
        apply_overrides(cfg, [f"--data.root={root}", f"--data.tokenizer={saved_vqvae}",
                              f"--data.tokens={tmp_path / 'tok'}", f"--train.out_dir={tmp_path / preset}"]
                        + (["--prior.cond_dropout=0.2"] if preset == "middle" else []))
        result = recipe.main(cfg)
        assert result["steps"] == 1
        assert all(math.isfinite(result[k]) for k in ("bits_per_token", "bigram_bits", "unigram_bits"))
        assert result["test_tokens"] == result["test_windows"] * 16
        prior = load(tmp_path / preset / "model")
        assert isinstance(prior, TokenPrior) and prior.config.level == result["level"]
        if preset == "top":
            assert prior.config.num_labels == 2 and prior.config.label_names == ("organ", "piano")
            assert "shuffled_upper_bits" not in result
        else:
            assert prior.config.upper_vocab == 16 and prior.config.ratio == 4
            assert math.isfinite(result["shuffled_upper_bits"]) and prior.config.cond_dropout == 0.2
            assert math.isfinite(result["dropped_upper_bits"])                  # its unconditional branch
        assert "bits / token" in (tmp_path / preset / "model" / "README.md").read_text()
    assert len(list((tmp_path / "tok").glob("chorales-*/test/*.npz"))) == 2                # encoded once, reused
    from recipes.music_prior import assemble

    test_tokens = next((tmp_path / "tok").glob("chorales-*/test"))
    folder = assemble.main([str(tmp_path / "middle" / "model"), str(tmp_path / "top" / "model"), "-o",
                            str(tmp_path / "music"), "--tokenizer", str(saved_vqvae), "--name", "tiny",
                            "--heldout", str(test_tokens), "--pieces", "1", "--guidance", "0", "0.5",
                            "--drafts", "1", "2"])
    gen = load(folder)
    assert isinstance(gen, MusicGenerator) and gen.levels == [1, 0] and gen.config.name == "tiny"
    assert gen.guidances == {1: 0.0, 0: 0.5} and gen.temperatures == {1: 1.0, 0: 1.0} and gen.drafts == {1: 1, 0: 2}
    assert gen.generate(0.05, instrument="piano").audio.shape == (1, 800)
    card = (folder / "README.md").read_text()
    assert "level 1 prior" in card and "without upper codes" in card and "condition dropout 0.2" in card
    # the shipped held-out piece: one file, and the card's figures are what the shipped weights give on it
    assert len(list((folder / "heldout").glob("*.npz"))) == 1 and not (tmp_path / "music.heldout").exists()
    stated = {int(lv): float(b) for lv, b in re.findall(r"level (\d) ([0-9.]+) bits/token", card)}
    assert stated.keys() == {0, 1}
    assert assemble.heldout_bits(gen, folder / "heldout") == pytest.approx(stated, abs=1e-4)
    with pytest.raises(ValueError, match="another tokenizer"):                              # priors of other codes
        assemble.main([str(tmp_path / "top" / "model"), "-o", str(tmp_path / "x"), "--tokenizer", "vqvae-chorales"])

    # split the generator into its levels, warm-start the top level from it (lr 0: the export is the source),
    # join again: same weights, and each level's card line carried or restated with where it started
    split = assemble.main(["--split", str(folder), "-o", str(tmp_path / "split")])
    assert sorted(p.name for p in split.iterdir()) == ["level0", "level1"]
    cfg = recipe.config("top", debug=True)
    apply_overrides(cfg, [f"--data.root={root}", f"--data.tokenizer={saved_vqvae}", f"--data.tokens={tmp_path / 'tok'}",
                          f"--train.out_dir={tmp_path / 'again'}", f"--init={split / 'level1'}", "--train.lr=0"])
    recipe.main(cfg)
    again = assemble.main([str(tmp_path / "again" / "model"), str(split / "level0"), "-o", str(tmp_path / "music2"),
                           "--tokenizer", str(saved_vqvae), "--name", "tiny"])
    gen2 = load(again)
    s1, s2 = gen.state_dict(), gen2.state_dict()
    assert s1.keys() == s2.keys() and all(torch.equal(s1[k], s2[k]) for k in s1)
    card2 = (again / "README.md").read_text()
    line0 = re.search(r"^- \*\*level 0 prior\*\*: .*$", card, re.M).group(0)
    assert line0 in card2 and f"started from {split / 'level1'} (weights " in card2
    with pytest.raises(CheckpointError, match="cannot warm-start"):                         # another level's prior
        apply_overrides(cfg, [f"--init={split / 'level0'}", f"--train.out_dir={tmp_path / 'wrong'}"])
        recipe.main(cfg)
    assert not (tmp_path / "wrong").exists()

    # an upsampler trained without instruments continues with them: the embedding starts at zero (lr 0 keeps
    # it there), the card says so, and it joins the top prior, whose instruments it shares
    cfg = recipe.config("middle", debug=True)
    apply_overrides(cfg, [f"--data.root={root}", f"--data.tokenizer={saved_vqvae}", f"--data.tokens={tmp_path / 'tok'}",
                          f"--train.out_dir={tmp_path / 'labelled'}", f"--init={split / 'level0'}", "--labels=true",
                          "--train.lr=0"])
    recipe.main(cfg)
    labelled = load(tmp_path / "labelled" / "model")
    assert labelled.config.label_names == ("organ", "piano") and not labelled.label_emb.weight.any()
    assert "instrument labels added" in (tmp_path / "labelled" / "model" / "README.md").read_text()
    joined = load(assemble.main([str(split / "level1"), str(tmp_path / "labelled" / "model"), "-o",
                                 str(tmp_path / "music3"), "--tokenizer", str(saved_vqvae)]))
    same = [g.generate(0.05, instrument="piano", seed=1).audio for g in (joined, gen2)]
    assert torch.equal(*same)                                               # the zero embedding adds nothing
    with torch.no_grad():
        joined.priors["0"].label_emb.weight.normal_()
    assert not torch.equal(joined.generate(0.05, instrument="piano", seed=1).audio, same[0])   # but is used


def test_evaluate_runs_every_set_and_target(saved_music, vqvae, tmp_path):
    """The music evaluation end to end on the debug hierarchy and synthetic chorales: every set gets every figure."""
    import json

    from arsound.core.checkpoint import weights_id
    from arsound.data.audio import AudioDataset
    from arsound.music.tokens import encode_files
    from recipes.music_prior import evaluate

    root = tmp_path / "data"
    fake_prepared(root, "chorales", [{"instrument": "organ"}, {"instrument": "piano"}], seconds=0.5)
    ds = AudioDataset("chorales", "train", root=root)
    encode_files(vqvae, [{"id": e["id"], "path": ds.base / e["path"], "labels": e["labels"]} for e in ds.items],
                 tmp_path / "tok" / f"chorales-{weights_id(vqvae)}" / "train", progress=False)
    result = evaluate.main(["--model", str(saved_music), "--clips", "2", "--seconds", "0.3", "--batch", "1",
                            "--root", str(root), "--tokens", str(tmp_path / "tok"), "--out", str(tmp_path / "eval")])
    assert set(result["sets"]) == {"real test", "real train", "VQ-VAE test (level 0)", "real level-1 codes, upsampled",
                                   "generated", "bigram tokens (level 0)", "noise"}
    assert all(math.isfinite(v) for r in result["sets"].values() for v in r.values())
    assert abs(result["sets"]["real test"]["frechet"]) < 1e-6 and len(result["targets"]) == 4
    key = result["targets"]["key clarity: generated within 10% of real"]            # met or missed, never rounded
    assert result["targets_met"]["key clarity: generated within 10% of real"] == (0.9 <= key <= 1.1)
    assert f"| {key:.3f} | 0.9 - 1.1 | {'met' if 0.9 <= key <= 1.1 else 'missed'} |" in \
        (tmp_path / "eval" / "table.md").read_text()
    assert all(r["frechet_sd"] >= 0 and r["key_clarity_se"] >= 0 for r in result["sets"].values())
    test = AudioDataset("chorales", "test", root=root)
    mix = [e["labels"]["instrument"] for e in test.items][:2]
    assert result["generated_instruments"] == {k: mix.count(k) for k in mix}      # the reference's own mix
    saved = json.loads((tmp_path / "eval" / "results.json").read_text())
    assert saved["clips"] == 2 and saved["guidance"] == [0.0, 0.0]        # the model's own: none
    assert saved["contrast"] == "reversed" and saved["drafts"] == [1, 1]
    assert (tmp_path / "eval" / "spectrograms.png").stat().st_size > 1000
    assert len(list((tmp_path / "eval" / "examples").glob("generated_*.wav"))) == 2


def test_instrument_batches_group_by_instrument_within_the_batch_size():
    from recipes.music_prior.evaluate import instrument_batches

    asked = ["piano", "organ", "piano", "piano", "choir", "piano"]
    assert instrument_batches(asked, 3) == [("piano", [0, 2, 3]), ("piano", [5]), ("organ", [1]), ("choir", [4])]
    assert instrument_batches([None] * 3, 2) == [(None, [0, 1]), (None, [2])]


def test_choose_temperature_on_valid(saved_music, tmp_path):
    """The temperature sweeps on the validation split: every candidate scored, the lowest Frechet chosen; the top
    level keeps the model's own (here 1) unless its own sweep is asked for; then the guidance and drafts sweeps."""
    from recipes.music_prior import choose_temperature

    root = tmp_path / "data"
    fake_prepared(root, "chorales", [{"instrument": "organ"}, {"instrument": "piano"}], seconds=0.5)
    r = choose_temperature.main(["--model", str(saved_music), "--clips", "2", "--seconds", "0.2", "--batch", "1",
                                 "--temperatures", "1", "0.5", "--root", str(root), "--out", str(tmp_path / "t.json")])
    assert set(r["sweep"]) == {"1.0", "0.5"} and r["reference_clips"] == 2
    best = min(r["sweep"], key=lambda t: r["sweep"][t]["frechet"])
    assert r["chosen"] == [1.0, float(best)]                          # the debug hierarchy: levels 1 and 0
    assert (tmp_path / "t.json").is_file()
    r = choose_temperature.main(["--model", str(saved_music), "--clips", "2", "--seconds", "0.2", "--batch", "1",
                                 "--temperatures", "1", "--top-temperatures", "1", "0.5", "--root", str(root)])
    assert set(r["top_sweep"]) == {"1.0", "0.5"}
    top = min(r["top_sweep"], key=lambda t: r["top_sweep"][t]["frechet"])
    assert r["chosen"] == [float(top), 1.0] and r["top_sweep"]["1.0"] != r["top_sweep"]["0.5"]
    # the guidance sweep at the model's own temperatures (no value: no temperature sweep): the weights whose
    # Frechet distance is within one bootstrap sd of the lowest and instrument accuracy within 0.1 of the best,
    # then the highest key clarity; then the drafts sweep at the weight chosen, the same top codes and rule
    r = choose_temperature.main(["--model", str(saved_music), "--clips", "2", "--seconds", "0.2", "--batch", "1",
                                 "--temperatures", "--guidances", "0", "2", "--drafts", "1", "3", "--root", str(root)])
    assert r["sweep"] == {} and r["top_sweep"] == {} and r["chosen"] == [1.0, 1.0]
    g = r["guidance_sweep"]
    assert set(g) == {"0.0", "2.0"} and g["0.0"]["frechet"] != g["2.0"]["frechet"]
    low = min(g.values(), key=lambda f: f["frechet"])
    keeps = max(f["instrument_accuracy"] for f in g.values()) - 0.1
    close = [w for w in g if g[w]["frechet"] <= low["frechet"] + low["frechet_sd"]]
    near = [w for w in close if g[w]["instrument_accuracy"] >= keeps - 1e-9] or close
    assert all(0 <= f["instrument_accuracy"] <= 1 for f in g.values())
    w = float(max(near, key=lambda w: g[w]["key_clarity"]))
    assert r["chosen_guidance"] == [0.0, w] and r["contrast"] == "reversed"
    d = r["draft_sweep"]
    assert set(d) == {"1", "3"} and d["1"]["frechet"] != d["3"]["frechet"]
    same = [k for k in d["1"] if k != "seconds"]                   # one draft at the chosen weight: that row again
    assert {k: d["1"][k] for k in same} == {k: g[str(w)][k] for k in same}
    assert r["chosen_drafts"] == [1, choose_temperature.keeps_the_sound({int(k): v for k, v in d.items()})]
