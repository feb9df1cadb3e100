"""The equal-budget zoo benchmark runs end to end on a tiny budget, trains every model at its own
learning rate, and its tables and curves come from what the runs logged."""
import csv

import torch

from benchmarks import image_zoo


def test_zoo_table_and_curves_from_the_runs(tmp_path):
    out = tmp_path / "zoo"
    rows = image_zoo.main(["--models", "fvsbn,made", "--steps", "4", "--batch", "8", "--size", "debug",
                           "--data", "digits", "--out", str(out)])
    assert [r["model"] for r in rows] == ["fvsbn", "made"]
    assert [r["lr"] for r in rows] == [image_zoo.LR["fvsbn"], image_zoo.LR["made"]]
    for r in rows:
        steps, nll = image_zoo.valid_curve(out / r["model"])
        assert steps == [1, 2, 3, 4]  # eval every steps // 8 (at least 1) steps
        assert abs(nll[-1] - r["valid_nll_nats"]) < 1e-3  # log.csv keeps 6 significant digits
        with open(out / r["model"] / "log.csv", newline="") as f:
            assert sum(row["split"] == "valid" for row in csv.DictReader(f)) == 4
    assert (out / "curves.png").stat().st_size > 1000
    table = image_zoo.table(rows).splitlines()
    assert len(table) == 4 and table[2].startswith(f"| {min(rows, key=lambda r: r['test_nll_nats'])['model']} |")


def test_lr_sweep_marks_the_best_validation_nll(tmp_path):
    rows = image_zoo.main(["--models", "fvsbn", "--steps", "3", "--batch", "8", "--size", "debug", "--data", "digits",
                           "--lr-sweep", "1e-3,1e-1", "--out", str(tmp_path)])
    assert [r["lr"] for r in rows] == [1e-3, 1e-1]
    best = min(rows, key=lambda r: r["valid_nll_nats"])
    assert f"**{best['valid_nll_nats']:.2f}**" in image_zoo.sweep_table(rows)


def test_ship_copies_the_trained_model_and_registers_it(tmp_path):
    import argparse
    import json

    import arsound

    out = tmp_path / "zoo"
    image_zoo.main(["--models", "made", "--steps", "2", "--batch", "8", "--size", "debug", "--data", "digits",
                    "--out", str(out)])
    dest = tmp_path / "checkpoints"
    dest.mkdir()
    (dest / "registry.json").write_text(json.dumps({"other": {"path": "other", "description": "kept"}}))
    args = argparse.Namespace(data="digits", steps=2, batch=8)
    image_zoo.ship(["made"], out, args, dest=dest)
    registry = json.loads((dest / "registry.json").read_text())
    assert set(registry) == {"other", "made-digits"} and "test NLL" in registry["made-digits"]["description"]
    card = (dest / "made-digits" / "README.md").read_text()
    assert card.startswith("# made-digits\n") and 'arsound.load("made-digits")' in card
    x = torch.randint(0, 2, (3, 1, 8, 8))
    trained = arsound.load(out / "made" / "model")
    assert torch.equal(arsound.load(dest / "made-digits").log_prob(x), trained.log_prob(x))
