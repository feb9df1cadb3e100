"""``recipes/anomaly``: the debug config end to end (classifier, density and background models, scores)."""
from __future__ import annotations

import json

from arsound.cli.train import load_recipe


def test_recipe_debug_smoke(tmp_path):
    recipe = load_recipe("anomaly")
    cfg = recipe.Config.debug()
    cfg.train.out_dir = str(tmp_path)
    res = recipe.main(cfg)
    saved = json.loads((tmp_path / "results.json").read_text())
    assert saved["models"]["made"]["auroc"] == res["models"]["made"]["auroc"]
    assert {"ratio_marginal", "ratio_noised", "typicality"} <= set(saved["models"]["made"]["auroc"]["noise_0.25"])
    assert (tmp_path / "nll_made.png").stat().st_size > 0 and (tmp_path / "table.md").is_file()
    assert (tmp_path / "made_background" / "model" / "config.json").is_file()
