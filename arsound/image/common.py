"""What every image model shares: the output distribution for K levels and the input scaling."""
from __future__ import annotations

from torch import Tensor

from ..core.distributions import Bernoulli, Categorical


def image_head(levels: int):
    """Bernoulli for binary images, a K-way categorical otherwise."""
    if levels < 2:
        raise ValueError(f"levels must be >= 2, got {levels}")
    return Bernoulli() if levels == 2 else Categorical(levels)


def scale_input(x: Tensor, levels: int) -> Tensor:
    """Integer levels ``[0, K)`` -> floats in ``[-1, 1]`` (the one place images become network input)."""
    return x.float() * (2.0 / (levels - 1)) - 1.0
