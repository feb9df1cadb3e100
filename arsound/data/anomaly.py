"""The digit sets of likelihood-based anomaly detection (``image/anomaly.py`` scores them): clean test
digits, and FGSM-adversarial, noise-corrupted and held-out-class ones, from the image sets of
:mod:`arsound.data.images`."""
from __future__ import annotations

import torch
from torch import nn

from ..image.anomaly import DigitSets, corrupt, fgsm, quantize, to_unit
from .images import IMAGE_DATASETS, load_images


def infer_dataset(shape) -> str:
    """The digit dataset whose images have ``shape = (C, H, W)``."""
    for name, (_, side) in IMAGE_DATASETS.items():
        if tuple(shape) == (1, side, side):
            return name
    raise ValueError(f"no digit dataset has images of shape {tuple(shape)}; known: "
                     f"{ {n: (1, s, s) for n, (_, s) in IMAGE_DATASETS.items()} }")


def digit_sets(data: str, levels: int, classifier: nn.Module, holdout: int | None = None, eps: float = 0.3,
               rates=(0.01, 0.05), seed: int = 0, limit: int = 0) -> DigitSets:
    """Build the in-distribution and anomaly sets for dataset ``data`` at ``levels``.

    Anomalies (from the in-distribution test images unless said otherwise):
    ``fgsm``: FGSM at ``eps`` against ``classifier``, attacking the continuous gray source image (then
    quantized to ``levels``); ``fgsm_fooled``: those of them that turn a correct prediction wrong;
    ``noise_<rate>``: :func:`corrupt` at each rate; ``holdout_<c>``: test images of class ``holdout``.
    limit: at most this many clean test images (0: all), a seeded random subset.
    """
    native = IMAGE_DATASETS[data][0]
    if levels not in (2, native):
        raise ValueError(f"dataset '{data}' comes with levels=2 or {native}; the model has levels={levels}")
    train, test = (load_images(data, split, native) for split in ("train", "test"))
    keep = (lambda y: torch.ones_like(y, dtype=torch.bool)) if holdout is None else (lambda y: y != holdout)
    is_valid = torch.arange(len(train)) % 10 == 0  # the image_zoo recipe's validation slice
    x_train = quantize(to_unit(train.x, native), levels)
    gen = torch.Generator().manual_seed(seed)
    inside = torch.nonzero(keep(test.y)).flatten()
    if limit and len(inside) > limit:
        inside = inside[torch.randperm(len(inside), generator=gen)[:limit]].sort().values
    gray, y = to_unit(test.x[inside], native), test.y[inside]  # continuous source of the clean images
    clean = quantize(gray, levels)
    anomalies, info = {}, {"clean": len(clean)}
    adv = fgsm(classifier, gray, y, eps, levels)
    pred_clean, pred_adv = classifier.predict(clean), classifier.predict(adv)
    fooled = (pred_clean == y) & (pred_adv != y)
    anomalies["fgsm"] = adv
    if fooled.any():
        anomalies["fgsm_fooled"] = adv[fooled]
    info.update(eps=eps, classifier_clean_acc=float((pred_clean == y).float().mean()),
                classifier_adv_acc=float((pred_adv == y).float().mean()), fgsm_fooled=int(fooled.sum()),
                fgsm_pixels_changed=float((adv != clean).float().flatten(1).sum(1).mean()))
    for rate in rates:
        anomalies[f"noise_{rate:g}"] = corrupt(clean, rate, gen, levels)
    if holdout is not None:
        anomalies[f"holdout_{holdout}"] = quantize(to_unit(test.x[test.y == holdout], native), levels)
    info.update({k: len(v) for k, v in anomalies.items()})
    return DigitSets(x_train[keep(train.y) & ~is_valid], x_train[keep(train.y) & is_valid], clean, anomalies, info)


__all__ = ["digit_sets", "infer_dataset"]
