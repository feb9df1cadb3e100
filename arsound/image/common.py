"""What every image model shares: the base class (event shape, generation order, network input), the
output distribution for K levels, and the two raster orders.

Images are integer levels ``x[B, C, H, W]`` in ``[0, K)``; networks see them as the bin centres in
[-1, 1] (:func:`~arsound.core.distributions.bin_centres`) in the dtype of their parameters.
"""
from __future__ import annotations

import torch
from torch import Tensor

from ..core.distributions import Bernoulli, Categorical, bin_centres
from ..core.model import ARModel


def image_head(levels: int):
    """Bernoulli for binary images, a K-way categorical otherwise."""
    if levels < 2:
        raise ValueError(f"levels must be >= 2, got {levels}")
    return Bernoulli() if levels == 2 else Categorical(levels)


def scale_input(x: Tensor, levels: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Integer levels ``[0, K)`` -> floats in ``[-1, 1]`` (the one place images become network input)."""
    return bin_centres(x, levels, dtype)


def channel_minor_order(shape) -> Tensor:
    """Raster order over pixels, channels within a pixel: indices into ``x[0].flatten()`` of (C, H, W)."""
    C, H, W = shape
    HW = H * W
    return (torch.arange(HW)[:, None] + HW * torch.arange(C)[None, :]).flatten()


def pixel_major_order(shape) -> Tensor:
    """The same raster order as a sequence: position ``s = (i * W + j) * C + c`` holds element ``(c, i, j)``."""
    C, H, W = shape
    return torch.arange(C * H * W).view(C, H, W).permute(1, 2, 0).flatten()


def position(pos: int, shape) -> tuple[int, int, int]:
    """Index ``pos`` into ``x[0].flatten()`` of ``(C, H, W)`` -> ``(c, i, j)``."""
    _, H, W = shape
    return pos // (H * W), (pos // W) % H, pos % W


class ImageModel(ARModel):
    """An AR model over images of ``config.shape = (C, H, W)`` with ``config.levels`` levels, generated in
    raster order, channels inside a pixel (R -> G -> B)."""

    @property
    def event_shape(self) -> tuple[int, int, int]:
        return tuple(self.config.shape)

    def generation_order(self) -> Tensor:
        return channel_minor_order(self.config.shape)

    def scaled(self, x: Tensor) -> Tensor:
        """Levels -> the network's input in [-1, 1], in the parameters' dtype."""
        return scale_input(x, self.config.levels, self.dtype)
