"""The plain RNN over pixels: :class:`~arsound.core.rnn.RecurrentNet` reading the image as one sequence in
raster order (channels inside a pixel), the lecture notes' "MNIST pixel by pixel" before PixelRNN's masked
LSTMs. One hidden state carries everything above and to the left, so, unlike the Row LSTM's triangle, its
context is the whole past, but through a single vector; a learned position embedding tells it where rows end.

Letters: B batch, C channels, H x W image, D = C*H*W elements (the sequence), P parameters per element.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import Tensor

from ..core.model import Canvas
from ..core.rnn import RecurrentConfig
from .common import ImageModel, channel_minor_order, image_head

__all__ = ["ImageRNNConfig", "ImageRNN"]


@dataclass
class ImageRNNConfig(RecurrentConfig):
    shape: tuple[int, int, int] = (1, 28, 28)  # (C, H, W)
    levels: int = 2                            # K gray levels; 2 = binary
    position: bool = True                      # rows end: the network needs to know where it is


class ImageRNN(ImageModel):
    """``forward(x[B, C, H, W]) -> params[B, C, H, W, P]``: the sequence ``x.flatten(1)[:, order]`` through the
    recurrent network, scattered back to the image layout."""

    config_class = ImageRNNConfig
    presets = {"debug": dict(hidden=16, embed=8), "small": {}, "base": dict(hidden=256, layers=2, embed=64)}

    def __init__(self, config: ImageRNNConfig) -> None:
        super().__init__(config)
        self.head = image_head(config.levels)
        D = config.shape[0] * config.shape[1] * config.shape[2]
        self.net = config.net(config.levels, D, self.head.num_params)
        self.register_buffer("order", channel_minor_order(config.shape), persistent=False)

    def generation_order(self) -> Tensor:
        return self.order.cpu()

    def forward(self, x: Tensor) -> Tensor:
        B = x.shape[0]
        seq = self.net(x.flatten(1)[:, self.order].long())                   # (B, D, P) in generation order
        out = torch.empty_like(seq).index_copy_(1, self.order, seq)           # back to x.flatten(1)'s layout
        return out.view(B, *self.event_shape, -1)

    @contextlib.contextmanager
    def steps(self, canvas: Canvas):
        """The cached step: one cell update per element, the state carrying the image drawn so far."""
        yield self.net.stepper(canvas.n)
