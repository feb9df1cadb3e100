"""The checkpoints that ship in checkpoints/: every registry entry loads strictly by name and has a
model card, and every image checkpoint reproduces the test NLL its card states."""
import json
import re
from pathlib import Path

import pytest

import arsound
from arsound.core.checkpoint import checkpoints_dir, registry
from arsound.core.train import evaluate
from arsound.data import load_images

NAMES = sorted(json.loads((Path(__file__).resolve().parents[1] / "checkpoints" / "registry.json").read_text()))


def test_registry_lists_every_shipped_folder():
    folders = {p.parent.name for p in checkpoints_dir().glob("*/config.json")}
    assert folders == set(NAMES) == set(registry())


@pytest.mark.parametrize("name", NAMES)
def test_loads_by_name_with_a_model_card(name):
    model = arsound.load(name)
    card = (checkpoints_dir() / registry()[name]["path"] / "README.md").read_text()
    assert card.startswith(f"# {name}\n") and f"{sum(p.numel() for p in model.parameters()):,} parameters" in card


@pytest.mark.parametrize("name", [n for n in NAMES if n.endswith("-mnist")])
def test_image_checkpoint_reproduces_its_test_nll(name):
    card = (checkpoints_dir() / registry()[name]["path"] / "README.md").read_text()
    stated = float(re.search(r"\*\*test NLL\*\*: ([0-9.]+) nats/image", card).group(1))
    test = load_images("mnist", "test", 2)
    assert evaluate(arsound.load(name), test.x, batch_size=250)["nll"] == pytest.approx(stated, abs=0.01)
