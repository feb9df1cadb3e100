"""The checkpoints that ship in checkpoints/: every registry entry loads strictly by name and has a
model card, every image checkpoint reproduces the test NLL its card states, every vocoder the figures of
its shipped held-out example, and every music hierarchy the bits per token of its held-out piece."""
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


def _vocoders() -> list[str]:
    return [n for n in NAMES if (checkpoints_dir() / registry()[n]["path"] / "heldout.wav").is_file()]


@pytest.mark.parametrize("name", _vocoders())
def test_vocoder_reproduces_its_shipped_example(name):
    """``arsound vocode heldout.wav --compare`` on the shipped held-out clip gives the card's figures (the
    WaveNet's within 5 %: a float rounding on another CPU can change one draw and the rest of the sequence;
    Griffin-Lim is seeded numpy, within 0.05 dB)."""
    from arsound.audio.io import load_audio
    from arsound.audio.vocoder import compare_with_griffin_lim, vocode

    folder = checkpoints_dir() / registry()[name]["path"]
    card = (folder / "README.md").read_text()
    line = re.search(r"shipped example .*?(?:WaveNet|WaveRNN) LSD ([0-9.]+) dB, MR-STFT ([0-9.]+); Griffin-Lim LSD "
                     r"([0-9.]+) dB.*?--compare(?: --speaker (\S+))?\n", card)
    model = arsound.load(name)  # the config alone holds the front end, label names and temperature
    wav, _ = load_audio(folder / "heldout.wav", sr=model.config.sample_rate, as_tensor=True)
    y = vocode(model, wav=wav, g=line.group(4), progress=False)
    scores = compare_with_griffin_lim(model, wav, y)[1]
    assert scores["wavenet"]["lsd_db"] == pytest.approx(float(line.group(1)), rel=0.05)
    assert scores["wavenet"]["mrstft"] == pytest.approx(float(line.group(2)), rel=0.05)
    assert scores["griffin_lim"]["lsd_db"] == pytest.approx(float(line.group(3)), abs=0.05)


def _music() -> list[str]:
    return [n for n in NAMES if (checkpoints_dir() / registry()[n]["path"] / "heldout").is_dir()]


@pytest.mark.parametrize("name", _music())
def test_music_hierarchy_reproduces_its_heldout_bits(name):
    """Every level's prior gives the card's bits per token on the shipped held-out test piece (``heldout/``,
    the tokenizer's codes of it), and the generator makes a clip of the asked length."""
    from recipes.music_prior.assemble import heldout_bits

    folder = checkpoints_dir() / registry()[name]["path"]
    card = (folder / "README.md").read_text()
    line = re.search(r"held-out example.*", card).group(0)
    stated = {int(lv): float(b) for lv, b in re.findall(r"level (\d) ([0-9.]+) bits/token", line)}
    gen = arsound.load(name)
    assert stated.keys() == set(gen.levels)
    assert heldout_bits(gen, folder / "heldout") == pytest.approx(stated, abs=2e-3)
    assert gen.generate(0.1, seed=0).audio.shape == (1, 1600)
