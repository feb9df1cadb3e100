"""Image and binary AR models on the shared core, behind one entry point.

    model = arsound.image.build("made", shape=(1, 28, 28), levels=2, size="small")

``MODELS`` maps a name to ``"module:Class"`` inside this package (imported on first use). Every model
class has a config dataclass with ``shape`` and ``levels`` fields and a ``presets`` dict
``{size: config overrides}`` with at least ``debug`` (seconds on CPU) and ``small``, so tests, recipes,
the CLI and the demo build any model for any data the same way.
"""
from __future__ import annotations

import dataclasses
import importlib

MODELS = {
    "fvsbn": "fvsbn:FVSBN",
    "nade": "nade:NADE",
    "made": "made:MADE",
    "pixelrnn": "pixelrnn:PixelRNN",
    "pixelrnn_diag": "pixelrnn:PixelRNNDiagonal",
    "pixelcnn": "pixelcnn:PixelCNN",
    "gated_pixelcnn": "pixelcnn:GatedPixelCNN",
    "pixelcnnpp": "pixelcnnpp:PixelCNNpp",
    "igpt": "transformer:ImageGPT",
    "sparse_transformer": "transformer:SparseTransformer",
    "image_transformer": "transformer:ImageTransformer",
    "pixelsnail": "pixelsnail:PixelSNAIL",
    "rnn": "rnn:ImageRNN",
}


def model_class(name: str):
    if name not in MODELS:
        raise ValueError(f"unknown image model '{name}'; choose from {sorted(MODELS)}")
    module, cls = MODELS[name].split(":")
    return getattr(importlib.import_module(f"{__name__}.{module}"), cls)


def build(name: str, shape=(1, 28, 28), levels: int = 2, size: str = "small", **overrides):
    """Build model ``name`` for images of ``shape = (C, H, W)`` with ``levels`` gray levels."""
    cls = model_class(name)
    shape = tuple(shape) if isinstance(shape, (tuple, list)) else shape
    if not (isinstance(shape, tuple) and len(shape) == 3 and all(isinstance(s, int) and s >= 1 for s in shape)):
        raise ValueError(f"shape must be (C, H, W) of positive integers, got {shape!r}")
    if isinstance(levels, bool) or not isinstance(levels, int) or levels < 2:
        raise ValueError(f"levels must be an integer >= 2, got {levels!r}")
    if size not in cls.presets:
        raise ValueError(f"unknown size '{size}' for {name}; choose from {sorted(cls.presets)}")
    fields = {f.name for f in dataclasses.fields(cls.config_class)}
    bad = set(overrides) - fields
    if bad:
        raise ValueError(f"{cls.config_class.__name__} has no field(s) {sorted(bad)}")
    cfg = cls.config_class(shape=shape, levels=levels, **{**cls.presets[size], **overrides})
    return cls(cfg)


__all__ = ["MODELS", "build", "model_class"]
