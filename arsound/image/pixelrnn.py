"""PixelRNN: Row LSTM and Diagonal BiLSTM.

van den Oord, Kalchbrenner & Kavukcuoglu, "Pixel Recurrent Neural Networks", ICML 2016
(arXiv:1601.06759), sec. 3.1-3.2 and fig. 4-5. Both models are::

    x -> 7x7 conv, mask A -> [2h] -> L x (2h + 1x1_B(LSTM layer -> h)) -> ReLU, 1x1_B -> ReLU, 1x1_B -> params

- **Row LSTM** (sec. 3.1) runs top to bottom, one whole row per step. With ``a_i`` the input row and
  ``(h_{i-1}, c_{i-1})`` the previous row's state, ``[o, f, i, g] = K_ss * h_{i-1} + K_is * a_i``, where
  ``K_is`` is a ``1 x k`` mask-B convolution along the row (computed for all rows at once) and
  ``K_ss`` a 1-D ``k``-wide convolution of the previous row's hidden state;
  ``c_i = s(f) c_{i-1} + s(i) tanh(g)``, ``h_i = s(o) tanh(c_i)``. Its context is a triangle: with
  ``L`` layers and a first kernel of half-width ``r``, output ``(i, j)`` sees the current row's pixels
  ``j - L - r .. j - 1`` and row ``i - m`` (``m >= 1``) in columns ``j - L - r - m .. j + r - 1 + m``.
- **Diagonal BiLSTM** (sec. 3.2) skews the map (row ``i`` shifted right by ``i``) so each diagonal is
  a column, then runs an LSTM along the columns: ``K_is`` is a 1x1 mask-B convolution and ``K_ss`` a
  ``2 x 1`` convolution of the previous column, so ``(i, j)`` reads the states at ``(i, j-1)`` and
  ``(i-1, j)``. A second LSTM runs on the mirrored map (right to left); its output is shifted down one
  row before it is added, so ``(i, j)`` sees every earlier pixel in a single layer, but one: as
  written, nothing in row ``i - 1`` sees its last pixel (mask A puts no position to its right) and
  row ``i`` carries it only rightwards, so outputs ``(i, j < W - 1 - r)`` miss ``x[i - 1, W - 1]`` at
  any depth. ``full_context=True`` (default) runs the layers on one extra zero column on the right,
  dropped at the output: that column sees the row's last pixel and the right-to-left LSTM carries it
  to the whole next row. (Tested by gradient both ways.)

Colour images use ``C`` channel groups (R -> G -> B) in every masked convolution; the LSTM gates are
laid out ``(G, 4, h/G)`` so each hidden unit's four gates and its cell stay in one group. The states
of earlier rows / pixels (all channels) may feed any group. Generation order: raster, channel-minor.

Letters: ``B`` batch, ``C`` image channels, ``H x W`` image, ``h`` LSTM channels, ``G`` channel groups
(``= C``), ``P`` parameters per element, ``N`` positions along one step (a row or a skewed column).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.layers import MaskedConv2d
from ..core.model import Canvas
from .common import ImageModel, image_head, position
from .pixelcnn import round_up, to_params

__all__ = ["RowLSTMConfig", "PixelRNN", "DiagonalBiLSTMConfig", "PixelRNNDiagonal", "skew", "unskew"]


def lstm_cell(z: Tensor, c: Tensor, groups: int, dim: int = 1) -> tuple[Tensor, Tensor]:
    """One LSTM update at many positions: pre-activations ``z`` with ``4h`` channels at ``dim`` laid out
    ``(G, 4, h/G)`` (gates o, f, i, g) and the previous cell ``c`` (``h`` channels at ``dim``) -> new
    ``(h, c)``, shaped like ``c``; e.g. ``z[B, 4h, N], c[B, h, N]`` or ``z[B, N, 4h], c[B, N, h]``."""
    o, f, i, g = z.unflatten(dim, (groups, 4, -1)).unbind(dim + 1)  # each with (G, h/G) at dim
    c = torch.sigmoid(f) * c.unflatten(dim, (groups, -1)) + torch.sigmoid(i) * torch.tanh(g)
    h = torch.sigmoid(o) * torch.tanh(c)
    return h.flatten(dim, dim + 1), c.flatten(dim, dim + 1)


def forget_bias_(bias: Tensor, groups: int, value: float = 1.0) -> None:
    """Set the forget-gate part of a ``(G, 4, h/G)``-laid-out bias (a common LSTM initialization)."""
    with torch.no_grad():
        bias.view(groups, 4, -1)[:, 1] = value


def skew(x: Tensor) -> Tensor:
    """Channels last: ``x[B, H, W, C] -> [B, H, W + H - 1, C]`` with row ``i`` shifted right by ``i``
    (zeros elsewhere): the diagonals of ``x`` become columns."""
    B, H, W, C = x.shape
    flat = F.pad(x, (0, 0, 0, H)).flatten(1, 2)  # (B, H*(W+H), C), rows padded with H zeros
    return flat[:, :H * (W + H - 1)].view(B, H, W + H - 1, C)


def unskew(y: Tensor) -> Tensor:
    """Inverse of :func:`skew`: ``y[B, H, W + H - 1, C] -> [B, H, W, C]`` (row ``i`` read from column ``i``)."""
    B, H, S, C = y.shape
    W = S - H + 1
    flat = F.pad(y.flatten(1, 2), (0, 0, 0, H))  # (B, H*(W+H), C)
    return flat.view(B, H, W + H, C)[:, :, :W]


def _point(conv: MaskedConv2d) -> tuple[Tensor, Tensor]:
    """A masked 1x1 convolution as ``F.linear`` arguments (for channels-last maps): ``[out, in]``, bias."""
    return (conv.weight * conv.mask)[:, :, 0, 0], conv.bias


# ---- layers -------------------------------------------------------------------------------------
class RowLSTM(nn.Module):
    """Row LSTM layer: ``a[B, c_in, H, W] -> h[B, h, H, W]``, row ``i`` from rows ``<= i`` (mask B in-row)."""

    def __init__(self, c_in: int, h: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.h, self.groups = h, groups
        self.input_to_state = MaskedConv2d(c_in, 4 * h, (1, kernel), "B", groups)
        self.state_to_state = nn.Conv1d(h, 4 * h, kernel, padding=kernel // 2, bias=False)
        forget_bias_(self.input_to_state.bias, groups)

    def step(self, z_row: Tensor, state: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
        """One row: input-to-state ``z_row[B, 4h, W]`` and the previous row's ``(h, c)`` -> this row's."""
        h_prev, c_prev = state
        return lstm_cell(z_row + self.state_to_state(h_prev), c_prev, self.groups)

    def zero_state(self, like: Tensor, W: int) -> tuple[Tensor, Tensor]:
        z = like.new_zeros(like.shape[0], self.h, W)
        return z, z

    def forward(self, a: Tensor) -> Tensor:
        z = self.input_to_state(a)  # (B, 4h, H, W), all rows at once
        state = self.zero_state(a, a.shape[-1])
        rows = []
        # rows outermost and contiguous; unbind, not z[:, :, i], so backward fills one gradient buffer
        for z_row in z.permute(2, 0, 1, 3).contiguous().unbind(0):  # (B, 4h, W) each
            state = self.step(z_row, state)
            rows.append(state[0])
        return torch.stack(rows, 2)  # (B, h, H, W)


class DiagonalBiLSTM(nn.Module):
    """Diagonal BiLSTM layer: ``a[B, c_in, H, W] -> [B, h, H, W]``.

    Left to right, ``(i, j)`` reads the states at ``(i, j-1)`` and ``(i-1, j)``, so it sees ``a`` at
    every ``(i' <= i, j' <= j)``; the right-to-left direction (the same on the mirrored map) sees
    ``(i' <= i, j' >= j)`` and is shifted down one row before the sum. Both directions run in one loop
    over the skewed columns, channels last, their states side by side ``(2, h)``; the state-to-state
    ``2 x 1`` convolution (grouped by direction) is applied as one block-diagonal matrix product.
    """

    def __init__(self, c_in: int, h: int, groups: int) -> None:
        super().__init__()
        self.h, self.groups = h, groups
        self.input_to_state = MaskedConv2d(c_in, 4 * h, 1, "B", groups)            # left to right
        self.input_to_state_reverse = MaskedConv2d(c_in, 4 * h, 1, "B", groups)    # right to left
        self.state_to_state = nn.Conv1d(2 * h, 8 * h, 2, groups=2, bias=False)     # rows (r-1, r), previous column
        forget_bias_(self.input_to_state.bias, groups)
        forget_bias_(self.input_to_state_reverse.bias, groups)

    def state_weight(self) -> Tensor:
        """The grouped ``2 x 1`` convolution as one ``[8h, 4h]`` matrix on ``[h_{r-1} (2h), h_r (2h)]``."""
        w = self.state_to_state.weight  # (8h, h, 2): (direction, 4h) x h x tap
        h = self.h
        return torch.cat([torch.block_diag(w[:4 * h, :, k], w[4 * h:, :, k]) for k in (0, 1)], 1)

    def forward(self, a: Tensor) -> Tensor:
        h, G = self.h, self.groups
        a = a.permute(0, 2, 3, 1)  # (B, H, W, c_in)
        z = torch.cat([F.linear(a, *_point(self.input_to_state)),
                       F.linear(a.flip(2), *_point(self.input_to_state_reverse))], -1)  # (B, H, W, 2*4h)
        z = skew(z).permute(2, 0, 1, 3).contiguous()  # (S, B, H, 8h): one skewed column per step
        S, B, H, _ = z.shape
        w_ss = self.state_weight()  # (8h, 4h)
        hs = cs = a.new_zeros(B, H, 2 * h)  # states of both directions, laid out (2, h)
        cols = []
        for z_col in z.unbind(0):  # (B, H, 8h), gates laid out (2, G, 4, h/G)
            prev = torch.cat([F.pad(hs, (0, 0, 1, 0))[:, :H], hs], -1)  # (B, H, 4h): rows r-1 and r
            hs, cs = lstm_cell(z_col + F.linear(prev, w_ss), cs, 2 * G, dim=2)
            cols.append(hs)
        out = unskew(torch.stack(cols, 2))  # (B, H, W, 2h)
        left_to_right, right_to_left = out[..., :h], out[..., h:].flip(2)
        y = left_to_right + F.pad(right_to_left, (0, 0, 0, 0, 1, 0))[:, :H]  # right-to-left one row down
        return y.permute(0, 3, 1, 2)  # (B, h, H, W)


# ---- models -------------------------------------------------------------------------------------
@dataclass
class RowLSTMConfig:
    shape: tuple[int, int, int] = (1, 28, 28)  # (C, H, W)
    levels: int = 2                            # K gray levels; 2 = binary
    hidden: int = 16                           # h LSTM channels, 2h between layers (rounded up to a multiple of C)
    num_layers: int = 7                        # LSTM layers (residual)
    first_kernel: int = 7                      # mask-A convolution
    kernel: int = 3                            # input-to-state 1 x k (mask B) and state-to-state k
    head_channels: int = 32                    # 1x1 output layers


@dataclass
class DiagonalBiLSTMConfig:
    shape: tuple[int, int, int] = (1, 28, 28)  # (C, H, W)
    levels: int = 2                            # K gray levels; 2 = binary
    hidden: int = 16                           # h LSTM channels per direction (rounded up to a multiple of C)
    num_layers: int = 7                        # BiLSTM layers (residual)
    first_kernel: int = 7                      # mask-A convolution
    head_channels: int = 32                    # 1x1 output layers
    full_context: bool = True                  # one extra right column: no pixel missed (see module doc)


# Paper, binarized MNIST (table 4): Diagonal BiLSTM, 1 layer with h = 32: 80.75 nats; 7 layers with
# h = 16: 79.20 (CIFAR-10: 12 layers, h = 128, 1024-unit output layers). "small" is sized for about
# 2,000 CPU steps at batch 64 on 28x28. A Diagonal BiLSTM layer costs about 2.5 Row LSTM layers
# (W + H - 1 sequential columns, two directions) but sees the whole context: its "small" has 1 layer.
PRESETS = {
    "debug": dict(hidden=6, num_layers=1, first_kernel=5, head_channels=12),
    "small": dict(hidden=16, num_layers=2, first_kernel=7, head_channels=32),
    "base": dict(hidden=16, num_layers=7, first_kernel=7, head_channels=32),
}


class _PixelRNNBase(ImageModel):
    """First mask-A layer, residual LSTM layers, 1x1 mask-B outputs; subclasses build ``self.lstms``."""

    def __init__(self, config) -> None:
        super().__init__(config)
        self.head = image_head(config.levels)
        C = config.shape[0]
        self.hidden = h = round_up(config.hidden, C)
        hc = round_up(config.head_channels, C)
        self.first = MaskedConv2d(C, 2 * h, config.first_kernel, "A", C)
        self.lstms = nn.ModuleList(self.make_layer(2 * h, h, C) for _ in range(config.num_layers))
        self.ups = nn.ModuleList(MaskedConv2d(h, 2 * h, 1, "B", C) for _ in range(config.num_layers))
        self.out1 = MaskedConv2d(2 * h, hc, 1, "B", C)
        self.out2 = MaskedConv2d(hc, C * self.head.num_params, 1, "B", C)

    def make_layer(self, c_in: int, h: int, groups: int) -> nn.Module:
        raise NotImplementedError

    def output(self, a: Tensor) -> Tensor:
        """``a[B, 2h, ...] -> [B, C*P, ...]`` laid out (C, P)."""
        return self.out2(F.relu(self.out1(F.relu(a))))

    def network(self, x: Tensor) -> Tensor:
        """Scaled input ``x[B, C, H, W]`` in [-1, 1] -> raw output ``[B, C*P, H, W]`` laid out (C, P)."""
        a = self.first(x)  # (B, 2h, H, W)
        for lstm, up in zip(self.lstms, self.ups):
            a = a + up(lstm(a))
        return self.output(a)

    def forward(self, x: Tensor) -> Tensor:
        """``x[B, C, H, W]`` levels -> ``params[B, C, H, W, P]``."""
        return to_params(self.network(self.scaled(x)), x.shape[1])


class PixelRNN(_PixelRNNBase):
    """PixelRNN with Row LSTM layers; the cached step recomputes only the current row per element."""

    config_class = RowLSTMConfig
    presets = dict(PRESETS)

    def make_layer(self, c_in: int, h: int, groups: int) -> nn.Module:
        return RowLSTM(c_in, h, self.config.kernel, groups)

    def row(self, xp: Tensor, i: int, states: list) -> tuple[Tensor, list]:
        """Row ``i`` of the network from the scaled input padded with ``r`` zero rows above and below,
        ``xp[B, C, H + 2r, W]`` (only rows ``i - r .. i`` matter), and the previous row's LSTM states
        (one ``(h, c)`` per layer): ``raw[B, C*P, W]`` and this row's states."""
        r = self.first.kernel_size[0] // 2
        a = self.first(xp[:, :, i:i + 2 * r + 1])[:, :, r:r + 1]  # (B, 2h, 1, W); rows below i masked out
        new = []
        for lstm, up, state in zip(self.lstms, self.ups, states):
            hc = lstm.step(lstm.input_to_state(a)[:, :, 0], state)  # (B, h, W) each
            new.append(hc)
            a = a + up(hc[0].unsqueeze(2))
        return self.output(a)[:, :, 0], new

    @contextlib.contextmanager
    def steps(self, canvas: Canvas):
        """The cached step: every layer's state of the finished rows is kept and only the current row is
        recomputed per element, ``O(W)`` instead of a full ``O(H W)`` pass."""
        C, H, W = self.event_shape
        n, r = canvas.n, self.first.kernel_size[0] // 2
        order = canvas.order
        xp = F.pad(self.scaled(canvas.x), (0, 0, r, r))  # (n, C, H + 2r, W)
        states = [lstm.zero_state(xp, W) for lstm in self.lstms]

        def step(s: int, prev: Tensor | None) -> Tensor:
            nonlocal states
            if s:  # the element just drawn
                c0, i0, j0 = position(order[s - 1], (C, H, W))
                xp[:, c0, i0 + r, j0] = self.scaled(prev)
            c, i, j = position(order[s], (C, H, W))
            if i > 0 and j == 0 and c == 0:  # the finished row's states feed the next row
                states = self.row(xp, i - 1, states)[1]
            return self.row(xp, i, states)[0].view(n, C, -1, W)[:, c, :, j]  # (n, P)

        yield step


class PixelRNNDiagonal(_PixelRNNBase):
    """PixelRNN with Diagonal BiLSTM layers (full context in every layer); naive sampling."""

    config_class = DiagonalBiLSTMConfig
    presets = {**PRESETS, "small": {**PRESETS["small"], "num_layers": 1}}

    def make_layer(self, c_in: int, h: int, groups: int) -> nn.Module:
        return DiagonalBiLSTM(c_in, h, groups)

    def network(self, x: Tensor) -> Tensor:
        """As the base, on ``x`` with one zero column appended on the right when ``full_context``."""
        W = x.shape[-1]
        return super().network(F.pad(x, (0, int(self.config.full_context))))[..., :W]
