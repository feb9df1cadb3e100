"""Images tab: a grid of samples from a shipped image model, completions of a half-drawn digit (the top half kept,
the rest sampled), and the likelihood of an uploaded digit (NLL in nats, bits/dim, and where it falls among the
test digits' NLLs: the anomaly-detection use)."""
from __future__ import annotations

import math
import threading
from dataclasses import dataclass

import numpy as np
import torch

from arsound.image.common import ImageModel
from arsound.image.plot import grid

from .common import DemoError, load_model, shipped_of_class

IMAGE_CLASS = "arsound.image."
MAX_COUNT = 64
SCALE = 4                   # pictures are shown 4x (nearest)
TEST_DIGITS = 500           # the test set the score is placed in: the first 500 held-out MNIST digits


def image_models() -> dict[str, str]:
    return shipped_of_class(IMAGE_CLASS)


def load_image_model(name_or_dir: str) -> ImageModel:
    return load_model(name_or_dir, ImageModel, "image model")


def picture(x: torch.Tensor, levels: int, nrow: int | None = None) -> np.ndarray:
    """``LongTensor[B, 1, H, W]`` -> a grid picture ``uint8[h, w]`` (``SCALE`` times, nearest)."""
    g = grid(x, levels, nrow)[..., 0]
    return (g.repeat(SCALE, 0).repeat(SCALE, 1) * 255).round().astype(np.uint8)


def sample_grid(model: str, seed: int = 0, temperature: float = 1.0, count: int = 16) -> np.ndarray:
    """``count`` samples of ``model`` as one grid picture (the same seed gives the same grid)."""
    if not 1 <= int(count) <= MAX_COUNT:
        raise DemoError(f"the count must be 1..{MAX_COUNT}, got {count}")
    m = load_image_model(model)
    gen = torch.Generator(device=m.device).manual_seed(int(seed))
    x = m.sample(int(count), generator=gen, temperature=float(temperature))
    return picture(x, m.config.levels)


def to_digit(image, shape: tuple[int, int, int], levels: int) -> torch.Tensor:
    """A drawing or an upload (RGBA / RGB / gray array, or the sketchpad's ``{"composite": ...}``) -> the model's
    levels ``LongTensor[1, C, H, W]``: ink is bright (as in MNIST) whatever the picture's background."""
    from PIL import Image

    if isinstance(image, dict):
        image = image.get("composite")
    if image is None:
        raise DemoError("draw or upload a digit first")
    a = np.asarray(image, dtype=np.float32)
    if a.ndim == 3 and a.shape[-1] == 4:                       # transparent background: compose on white
        alpha = a[..., 3:] / 255
        a = a[..., :3] * alpha + 255 * (1 - alpha)
    if a.ndim == 3:
        a = a[..., :3].mean(-1)
    if a.ndim != 2 or min(a.shape) < 4:
        raise DemoError(f"expected a picture of a digit, got an array of shape {tuple(np.shape(image))}")
    if a.mean() > 127:                                         # dark ink on a light page: invert
        a = 255 - a
    if a.max() < 32:
        raise DemoError("the picture is blank; draw a digit")
    _, H, W = shape
    small = np.asarray(Image.fromarray(a.clip(0, 255).astype(np.uint8)).resize((W, H), Image.LANCZOS), np.float32)
    x = np.floor(small / 256 * levels).clip(0, levels - 1) if levels > 2 else (small >= 128)
    return torch.from_numpy(np.asarray(x, dtype=np.int64))[None, None]


def complete(model: str, image, seed: int = 0, n: int = 8, temperature: float = 1.0) -> np.ndarray:
    """Keep the top half of the digit, sample the rest ``n`` times: a picture of [kept half, completions...]."""
    if not 1 <= int(n) <= MAX_COUNT - 1:
        raise DemoError(f"the number of completions must be 1..{MAX_COUNT - 1}, got {n}")
    m = load_image_model(model)
    x = to_digit(image, m.event_shape, m.config.levels)
    prompt = x.clone()
    prompt[..., x.shape[-2] // 2:, :] = -1                      # rows of the bottom half: sampled
    gen = torch.Generator(device=m.device).manual_seed(int(seed))
    out = m.sample(int(n), prompt=prompt.to(m.device), generator=gen, temperature=float(temperature))
    shown = torch.cat([prompt.clamp_min(0).cpu(), out.cpu()])
    return picture(shown, m.config.levels, nrow=min(len(shown), 8))


_TEST_NLL: dict[str, torch.Tensor] = {}
_TEST_LOCK = threading.Lock()


def test_nlls(model: str) -> torch.Tensor:
    """NLLs (nats) of the first ``TEST_DIGITS`` test digits under ``model``, computed once per process."""
    from arsound.data.images import load_images

    with _TEST_LOCK:
        if model not in _TEST_NLL:
            m = load_image_model(model)
            shape = tuple(m.event_shape)
            if shape not in ((1, 28, 28), (1, 8, 8)):
                raise DemoError(f"'{model}' models {shape} images; scoring needs an MNIST (28x28) or digits (8x8) "
                                "model")
            data = "mnist" if shape[-1] == 28 else "digits"
            x = load_images(data, "test", m.config.levels).x[:TEST_DIGITS]
            with torch.no_grad():
                _TEST_NLL[model] = torch.cat([-m.log_prob(b.to(m.device)).cpu() for b in x.split(100)])
        return _TEST_NLL[model]


@dataclass
class Score:
    nll: float               # nats
    bits_per_dim: float
    percentile: float        # share of the test digits with a lower NLL (%)
    digit: np.ndarray        # what was scored, as the model sees it
    message: str


def score(model: str, image) -> Score:
    """The digit's negative log-likelihood under ``model`` and its place among the test digits'."""
    m = load_image_model(model)
    x = to_digit(image, m.event_shape, m.config.levels)
    with torch.no_grad():
        nll = float(-m.log_prob(x.to(m.device))[0])
    ref = test_nlls(model)
    pct = float((ref < nll).float().mean() * 100)
    bpd = nll / (x.numel() * math.log(2))
    verdict = "typical" if pct <= 95 else "unusual (above 95% of test digits: a candidate anomaly)"
    msg = (f"NLL {nll:.1f} nats ({bpd:.3f} bits/dim); higher than {pct:.0f}% of {len(ref)} test digits "
           f"(median {float(ref.median()):.1f} nats): {verdict}")
    return Score(nll, bpd, pct, picture(x, m.config.levels), msg)
