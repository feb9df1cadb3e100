"""``recipes/vqvae``: one training step of the debug config on synthetic data in tmp_path, with codebook
health, the reconstruction table and the exported model."""
from __future__ import annotations

import json

import numpy as np
import pytest

from arsound.audio.vqvae import VQVAE
from arsound.cli.train import load_recipe
from arsound.core.checkpoint import load
from arsound.core.config import apply_overrides
from tests.fakes import fake_prepared


def test_recipe_debug_one_step(tmp_path):
    root = tmp_path / "data"
    fake_prepared(root, "chorales", [{"instrument": "organ"}], seconds=0.5)
    recipe = load_recipe("vqvae")
    cfg = recipe.config(debug=True)
    apply_overrides(cfg, [f"--data.root={root}", f"--train.out_dir={tmp_path / 'run'}"])
    result = recipe.main(cfg)
    assert result["steps"] == 1 and len(result["levels"]) == 2
    for row in result["levels"]:
        assert np.isfinite(row["si_sdr_db"]) and row["lsd_db"] > 0 and row["mrstft"] > 0
        assert row["bits_per_s"] == pytest.approx(row["tokens_per_s"] * 4)        # 16 codes: 4 bits
    health = [json.loads(line) for line in (tmp_path / "run" / "health.jsonl").read_text().splitlines()]
    assert any(h["split"] == "valid" and "l1_usage" in h and "l1_dead" in h for h in health)
    model = load(tmp_path / "run" / "model")
    assert isinstance(model, VQVAE) and model.config.preset == "debug"
    assert "SI-SDR" in (tmp_path / "run" / "model" / "README.md").read_text()
    assert (tmp_path / "run" / "reconstruction.md").is_file() and (tmp_path / "run" / "resume.pt").is_file()
