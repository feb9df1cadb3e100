"""Pictures of image batches: sample grids as PNG."""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import torch

from ..core.files import atomic_write


def grid(x: torch.Tensor, levels: int, nrow: int | None = None, pad: int = 1) -> np.ndarray:
    """``x: LongTensor[B, C, H, W]`` in ``[0, levels)`` -> float array ``[rows*(H+pad), cols*(W+pad), C]`` in [0, 1]."""
    B, C, H, W = x.shape
    nrow = nrow or math.ceil(math.sqrt(B))
    ncol = math.ceil(B / nrow)
    img = np.ones((ncol * (H + pad) + pad, nrow * (W + pad) + pad, C), dtype=np.float32)
    vals = (x.detach().cpu().float() / max(levels - 1, 1)).permute(0, 2, 3, 1).numpy()
    for i in range(B):
        r, c = divmod(i, nrow)
        img[pad + r * (H + pad): pad + r * (H + pad) + H, pad + c * (W + pad): pad + c * (W + pad) + W] = vals[i]
    return img


def save_grid(x: torch.Tensor, levels: int, path, nrow: int | None = None, scale: int = 4) -> Path:
    """Write a PNG grid of ``x`` (upscaled ``scale`` times, nearest) atomically to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img = grid(x, levels, nrow).repeat(scale, 0).repeat(scale, 1)
    with atomic_write(path, "wb") as f:
        if img.shape[-1] == 1:
            plt.imsave(f, img[..., 0], cmap="gray", vmin=0, vmax=1, format="png")
        else:
            plt.imsave(f, img, format="png")
    return Path(path)
