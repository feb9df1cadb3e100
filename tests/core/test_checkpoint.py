"""Saved models: round trips, one-line errors naming the file, atomic writes, registry names."""
import json

import pytest
import torch

import arsound
from arsound.core import checkpoint
from arsound.core.checkpoint import CheckpointError, load, registry, save_pretrained
from tests.core.toy import TiedConfig, TiedToy, Toy, ToyConfig, toy_data

TRUST = ("tests",)  # the toy models live in tests/, outside arsound


def toy(seed=0, **kw):
    torch.manual_seed(seed)
    return Toy(ToyConfig(**kw))


def assert_one_line(err, *needles):
    msg = str(err.value)
    assert "\n" not in msg
    for needle in needles:
        assert str(needle) in msg, msg


def test_round_trip_identical_state_and_outputs(tmp_path):
    model = toy(dim=7)
    out = save_pretrained(model, tmp_path / "m", card={"data": "toy", "steps": 3, "metrics": {"bpd": 0.5}})
    assert sorted(p.name for p in out.iterdir()) == ["README.md", "config.json", "model.safetensors"]
    meta = json.loads((out / "config.json").read_text())
    assert meta == {"class": "tests.core.toy:Toy", "config": {"dim": 7, "dropout": 0.0, "nan_after": 0},
                    "arsound_version": arsound.__version__}
    card = (out / "README.md").read_text()
    assert "toy" in card and "steps" in card and "bpd = 0.5" in card
    rng = torch.get_rng_state()
    loaded = load(out, trusted_modules=TRUST)
    assert torch.equal(rng, torch.get_rng_state())  # loading does not disturb the global RNG
    assert type(loaded) is Toy and loaded.config == model.config and not loaded.training
    assert loaded.state_dict().keys() == model.state_dict().keys()
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())
    x = toy_data(16, dim=7)
    with torch.no_grad():
        assert torch.equal(model.eval().log_prob(x), loaded.log_prob(x))


def test_tied_weights_nested_config_and_card_text(tmp_path):
    model = TiedToy(TiedConfig(ToyConfig(dim=4), hidden=(3,)))
    save_pretrained(model, tmp_path / "t", card="# my card")
    assert (tmp_path / "t" / "README.md").read_text() == "# my card\n"
    loaded = arsound.load(tmp_path / "t", trusted_modules=TRUST)
    assert loaded.config == model.config and isinstance(loaded.config.toy, ToyConfig)
    assert loaded.config.hidden == (3,)
    assert loaded.again.weight is loaded.encode.weight  # still tied
    assert all(torch.equal(v, loaded.state_dict()[k]) for k, v in model.state_dict().items())


def test_run_folder_resolves_to_its_model(tmp_path):
    save_pretrained(toy(), tmp_path / "run" / "model")
    assert isinstance(load(tmp_path / "run", trusted_modules=TRUST), Toy)


def _saved(tmp_path):
    return save_pretrained(toy(), tmp_path / "ckpt")


def _edit_config(path, **changes):
    meta = json.loads((path / "config.json").read_text())
    meta.update(changes)
    (path / "config.json").write_text(json.dumps(meta))


@pytest.mark.parametrize("case", ["missing_dir", "file_not_dir", "no_config", "no_weights", "bad_json",
                                  "truncated_weights", "garbage_weights", "foreign_class", "untrusted_toy",
                                  "no_such_class", "newer_version", "bad_config_field", "missing_key",
                                  "unexpected_key", "shape_mismatch"])
def test_errors_are_one_line_and_name_the_file(case, tmp_path):
    path = _saved(tmp_path)
    target, needles, trust = path, [], TRUST
    if case == "missing_dir":
        target = tmp_path / "nope" / "model"
        needles = [target, "does not exist"]
    elif case == "file_not_dir":
        target = path / "README.md"
        needles = [target]
    elif case == "no_config":
        (path / "config.json").unlink()
        needles = [path / "config.json", "missing"]
    elif case == "no_weights":
        (path / "model.safetensors").unlink()
        needles = [path / "model.safetensors", "missing"]
    elif case == "bad_json":
        (path / "config.json").write_text('{"class": "tests.core.toy:Toy", ')
        needles = [path / "config.json", "invalid JSON"]
    elif case == "truncated_weights":
        data = (path / "model.safetensors").read_bytes()
        (path / "model.safetensors").write_bytes(data[: len(data) - 20])
        needles = [path / "model.safetensors", "corrupt or truncated"]
    elif case == "garbage_weights":
        (path / "model.safetensors").write_bytes(b"\xff" * 64)
        needles = [path / "model.safetensors", "corrupt or truncated"]
    elif case == "foreign_class":
        _edit_config(path, **{"class": "os:system"})
        needles = [path / "config.json", "'os:system' is not part of arsound"]
    elif case == "untrusted_toy":
        trust = ()
        needles = [path / "config.json", "not part of arsound", "trusted_modules"]
    elif case == "no_such_class":
        _edit_config(path, **{"class": "arsound.core.model:NoSuchModel"})
        needles = [path / "config.json", "not found"]
    elif case == "newer_version":
        _edit_config(path, arsound_version="0.3.0")
        needles = [path / "config.json", "newer than the installed 0.2.0", "upgrade"]
    elif case == "bad_config_field":
        _edit_config(path, config={"dim": 6, "colour": "red"})
        needles = [path / "config.json", "colour"]
    elif case == "missing_key":
        _edit_config(path, **{"class": "tests.core.toy:TiedToy"}, config={"toy": {"dim": 6}})
        needles = [path / "model.safetensors", "missing keys", "unexpected keys"]
    elif case == "unexpected_key":
        from safetensors.torch import save_file
        save_file({**toy().state_dict(), "extra": torch.zeros(1)}, str(path / "model.safetensors"))
        needles = [path / "model.safetensors", "unexpected keys ['extra']"]
    elif case == "shape_mismatch":
        _edit_config(path, config={"dim": 5})
        needles = [path / "model.safetensors", "shape mismatch", "weight (6, 6) vs (5, 5)"]
    with pytest.raises(CheckpointError) as err:
        load(target, trusted_modules=trust)
    assert_one_line(err, *needles)


def test_older_patch_and_same_version_load(tmp_path):
    path = _saved(tmp_path)
    _edit_config(path, arsound_version="0.1.99")
    assert isinstance(load(path, trusted_modules=TRUST), Toy)


def test_failed_save_leaves_nothing_and_keeps_the_old_checkpoint(tmp_path, monkeypatch):
    old = toy(seed=1)
    path = save_pretrained(old, tmp_path / "ckpt")

    def broken(tensors, filename, metadata=None):
        with open(filename, "wb") as f:
            f.write(b"half a file")
        raise OSError("disk full")

    monkeypatch.setattr(checkpoint, "save_file", broken)
    with pytest.raises(OSError, match="disk full"):
        save_pretrained(toy(seed=2), tmp_path / "ckpt")
    with pytest.raises(OSError, match="disk full"):
        save_pretrained(toy(seed=2), tmp_path / "fresh")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]  # no temp dirs, no half-written "fresh"
    loaded = load(path, trusted_modules=TRUST)
    assert torch.equal(loaded.weight, old.weight)
    monkeypatch.undo()
    new = toy(seed=3)
    save_pretrained(new, path)  # a complete save replaces it
    assert torch.equal(load(path, trusted_modules=TRUST).weight, new.weight)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ckpt"]


def test_refuses_to_overwrite_a_folder_that_is_not_a_checkpoint(tmp_path):
    (tmp_path / "notes.txt").write_text("keep me")
    with pytest.raises(CheckpointError) as err:
        save_pretrained(toy(), tmp_path)
    assert_one_line(err, tmp_path, "refusing to overwrite")
    assert (tmp_path / "notes.txt").read_text() == "keep me"


def test_registry_names(tmp_path, monkeypatch):
    monkeypatch.setenv("ARSOUND_CHECKPOINTS", str(tmp_path))
    monkeypatch.chdir(tmp_path)
    with pytest.raises(CheckpointError) as err:  # no registry.json at all
        load("tiny-toy")
    assert_one_line(err, "unknown checkpoint name 'tiny-toy'", tmp_path / "registry.json", "[]")
    model = toy(seed=4)
    save_pretrained(model, tmp_path / "toys" / "tiny")
    (tmp_path / "registry.json").write_text(json.dumps({
        "tiny-toy": {"path": "toys/tiny", "description": "6-bit FVSBN"},
        "gone": {"path": "toys/gone", "description": "deleted"}}))
    assert registry()["tiny-toy"]["description"] == "6-bit FVSBN"
    assert torch.equal(load("tiny-toy", trusted_modules=TRUST).weight, model.weight)
    with pytest.raises(CheckpointError) as err:
        load("tiny_toy")
    assert_one_line(err, "unknown checkpoint name 'tiny_toy'", "['gone', 'tiny-toy']")
    with pytest.raises(CheckpointError) as err:
        load("gone")
    assert_one_line(err, tmp_path / "toys" / "gone", "does not exist")
    (tmp_path / "registry.json").write_text("{oops")
    with pytest.raises(CheckpointError) as err:
        load("tiny-toy")
    assert_one_line(err, tmp_path / "registry.json", "invalid JSON")


def test_repo_registry_is_valid(monkeypatch):
    monkeypatch.delenv("ARSOUND_CHECKPOINTS", raising=False)
    root = checkpoint.checkpoints_dir()
    assert (root / "registry.json").is_file()
    for name, entry in registry(root).items():
        assert (root / entry["path"] / "config.json").is_file(), name
