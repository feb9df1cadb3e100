"""``arsound eval --anomaly`` end to end on a MADE trained without one digit class, and its user errors."""
from __future__ import annotations

import argparse
import json

import pytest

from arsound.cli.eval import add_parser


def run_eval(argv):
    parser = argparse.ArgumentParser(prog="arsound")
    add_parser(parser.add_subparsers(dest="verb", required=True))
    args, extra = parser.parse_known_args(["eval", *argv])
    return args.func(args, extra)


def test_eval_anomaly_cli_end_to_end(made_run, tmp_path, capsys):
    _, _, model_dir = made_run
    out = tmp_path / "eval"
    assert run_eval(["--anomaly", "--model", str(model_dir), "--out", str(out), "--classifier-steps", "20",
                     "--limit", "60", "--rates", "0.25", "--eps", "0.25"]) == 0
    res = json.loads((out / "anomaly_results.json").read_text())
    assert res["data"] == "digits" and res["holdout"] == 0  # inferred from the shape and the model card
    table = res["models"]["made"]["auroc"]
    assert {"fgsm", "noise_0.25", "holdout_0"} <= set(table)
    assert set(table["noise_0.25"]) == {"nll", "ratio", "typicality"}
    assert (out / "anomaly_nll_made.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (out / "anomaly_table.md").read_text().startswith("| model |")
    assert not list(out.glob("*.tmp*"))
    assert (out / "classifier_digits_2lv_s20_seed0" / "model" / "config.json").is_file()  # cached
    assert "AUROC nll" in capsys.readouterr().out


def test_eval_user_errors(made_run, tmp_path):
    _, _, model_dir = made_run
    with pytest.raises(ValueError, match="pass --anomaly"):
        run_eval(["--model", str(model_dir)])
    with pytest.raises(ValueError, match="--rates"):
        run_eval(["--anomaly", "--model", str(model_dir), "--rates", "a,b", "--out", str(tmp_path)])
    with pytest.raises(ValueError, match="'mnist' has"):
        run_eval(["--anomaly", "--model", str(model_dir), "--data", "mnist", "--out", str(tmp_path)])
