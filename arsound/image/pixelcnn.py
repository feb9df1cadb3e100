"""PixelCNN and Gated PixelCNN, with fast cached sampling.

- PixelCNN: van den Oord, Kalchbrenner & Kavukcuoglu, "Pixel Recurrent Neural Networks", ICML 2016
  (arXiv:1601.06759), sec. 3.4 / fig. 5: a 7x7 mask-A convolution, residual blocks
  ``2h -> 1x1 -> h -> 3x3 mask B -> h -> 1x1 -> 2h`` and 1x1 mask-B output layers. Stacked masked
  convolutions have a *blind spot*: pixels up and to the right of the current one never reach it.
- Gated PixelCNN: van den Oord et al., "Conditional Image Generation with PixelCNN Decoders",
  NeurIPS 2016 (arXiv:1606.05328): a vertical stack (rows above, any column) feeds a horizontal stack
  (the current row, left of the pixel) through a 1x1 convolution after a one-row down shift, which
  removes the blind spot; units are ``tanh(a) * sigmoid(b)``, optionally plus a class embedding.
- Fast sampling: Ramachandran et al., "Fast Generation for Convolutional Autoregressive Models",
  ICLR 2017 workshop (arXiv:1704.06001). Every layer caches its inputs; a new pixel costs one output
  position per layer (PixelCNN), or one horizontal position per layer plus one vertical *row* per
  layer and image row (Gated PixelCNN): O(layers x kernel) per element instead of a full forward pass.

Colour images use ``C`` channel groups (R -> G -> B for ``C = 3``) in every masked layer, and the
generation order is raster, channel-minor: pixel by pixel, R then G then B of each pixel.

Letters: ``B`` batch, ``C`` image channels, ``H x W`` image, ``h`` hidden channels, ``P`` parameters
of the output distribution per element, ``r`` kernel half-width.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.layers import MaskedConv2d, gated
from ..core.model import Canvas
from .common import ImageModel, image_head, position

__all__ = ["PixelCNNConfig", "PixelCNN", "GatedPixelCNNConfig", "GatedPixelCNN"]


def round_up(n: int, m: int) -> int:
    return -(-n // m) * m


def to_params(out: Tensor, C: int) -> Tensor:
    """Network output ``[B, C*P, H, W]`` laid out ``(C, P)`` -> ``params[B, C, H, W, P]``."""
    return out.unflatten(1, (C, -1)).permute(0, 1, 3, 4, 2)


def gate_groups(a: Tensor, groups: int) -> Tensor:
    """Gated unit respecting channel groups: ``a[B, 2h, ...]`` laid out ``(G, 2, h/G)`` -> ``[B, h, ...]``.

    Each group's first half goes through tanh, its second half through sigmoid, so output group ``g``
    depends only on input group ``g`` (a plain ``chunk(2)`` would mix R's gate into G's).
    """
    return gated(a.unflatten(1, (groups, -1)), dim=2).flatten(1, 2)


def down_shift(x: Tensor) -> Tensor:
    """Row ``i`` of the output is row ``i - 1`` of ``x[B, C, H, W]`` (zeros in row 0)."""
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1]


# ---- cached single-position convolutions (Ramachandran et al. 2017) ----------------------------
def _point(conv: nn.Conv2d) -> tuple[Tensor, Tensor]:
    """A (masked) 1x1 convolution as ``F.linear`` arguments: weight ``[out, in]`` and bias."""
    w = conv.weight * conv.mask if hasattr(conv, "mask") else conv.weight
    return w[:, :, 0, 0], conv.bias


class _WindowCache:
    """One masked conv evaluated at one position at a time from a cache of its inputs.

    ``buf[B, C_in, H + rh, W + 2 rw]`` holds input ``(i, j)`` at ``(i + rh, j + rw)`` (zero padding
    above, left and right). The output at ``(i, j)`` reads rows ``i - rh .. i`` only: the mask zeroes
    every row below the centre (and the centre row right of the centre).
    """

    def __init__(self, conv: MaskedConv2d, B: int, H: int, W: int, like: Tensor) -> None:
        kh, kw = conv.kernel_size
        self.rh, self.rw, self.kw = kh // 2, kw // 2, kw
        self.weight = (conv.weight * conv.mask)[:, :, :self.rh + 1].reshape(conv.out_channels, -1)
        self.bias = conv.bias
        self.buf = like.new_zeros(B, conv.in_channels, H + self.rh, W + 2 * self.rw)

    def fill(self, x: Tensor) -> None:
        """Write a whole input ``x[B, C_in, H, W]`` (e.g. the canvas with its prompt)."""
        H, W = x.shape[-2:]
        self.buf[:, :, self.rh:, self.rw:self.rw + W] = x

    def write(self, i: int, j: int, v: Tensor) -> None:
        self.buf[:, :, i + self.rh, j + self.rw] = v  # v: (B, C_in)

    def __call__(self, i: int, j: int) -> Tensor:
        win = self.buf[:, :, i:i + self.rh + 1, j:j + self.kw]  # (B, C_in, rh+1, kw)
        return F.linear(win.reshape(win.shape[0], -1), self.weight, self.bias)  # (B, C_out)


# ---- PixelCNN -----------------------------------------------------------------------------------
@dataclass
class PixelCNNConfig:
    shape: tuple[int, int, int] = (1, 28, 28)  # (C, H, W)
    levels: int = 2                            # K gray levels; 2 = binary
    channels: int = 32                         # h inside residual blocks, 2h between (rounded up to a multiple of C)
    num_layers: int = 5                        # residual blocks
    first_kernel: int = 7                      # mask-A convolution
    kernel: int = 3                            # mask-B convolution inside each block
    head_channels: int = 64                    # 1x1 output layers


class ResidualBlock(nn.Module):
    """``x + 1x1(relu(kxk_B(relu(1x1(relu(x))))))``: ``[B, 2h, H, W] -> [B, 2h, H, W]``, all mask B."""

    def __init__(self, h: int, kernel: int, groups: int) -> None:
        super().__init__()
        self.conv_in = MaskedConv2d(2 * h, h, 1, "B", groups)
        self.conv = MaskedConv2d(h, h, kernel, "B", groups)
        self.conv_out = MaskedConv2d(h, 2 * h, 1, "B", groups)

    def forward(self, x: Tensor) -> Tensor:
        y = self.conv(F.relu(self.conv_in(F.relu(x))))
        return x + self.conv_out(F.relu(y))


class PixelCNN(ImageModel):
    """PixelCNN: masked convolutions with residual blocks; ``forward(x[B, C, H, W]) -> [B, C, H, W, P]``."""

    config_class = PixelCNNConfig
    presets = {
        "debug": dict(channels=6, num_layers=2, first_kernel=5, kernel=3, head_channels=12),
        "small": dict(channels=16, num_layers=5, first_kernel=7, kernel=3, head_channels=32),
        "base": dict(channels=64, num_layers=12, first_kernel=7, kernel=3, head_channels=256),
    }

    def __init__(self, config: PixelCNNConfig) -> None:
        super().__init__(config)
        self.head = image_head(config.levels)
        C = config.shape[0]
        h = round_up(config.channels, C)
        hc = round_up(config.head_channels, C)
        self.first = MaskedConv2d(C, 2 * h, config.first_kernel, "A", C)
        self.blocks = nn.ModuleList(ResidualBlock(h, config.kernel, C) for _ in range(config.num_layers))
        self.out1 = MaskedConv2d(2 * h, hc, 1, "B", C)
        self.out2 = MaskedConv2d(hc, C * self.head.num_params, 1, "B", C)

    def network(self, h: Tensor) -> Tensor:
        """Scaled input ``h[B, C, H, W]`` in [-1, 1] -> raw output ``[B, C*P, H, W]`` laid out (C, P)."""
        a = self.first(h)  # (B, 2h, H, W)
        for block in self.blocks:
            a = block(a)
        return self.out2(F.relu(self.out1(F.relu(a))))

    def forward(self, x: Tensor) -> Tensor:
        """``x[B, C, H, W]`` levels -> ``params[B, C, H, W, P]``."""
        return to_params(self.network(self.scaled(x)), x.shape[1])

    @contextlib.contextmanager
    def steps(self, canvas: Canvas):
        """The cached step: per position the first layer reads its window of cached pixels, each block
        writes its 1x1 output into the cache of its kxk layer and reads that layer's window back."""
        x = canvas.x
        B, C, H, W = x.shape
        order = canvas.order
        h_in = self.scaled(x)
        first = _WindowCache(self.first, B, H, W, h_in)
        first.fill(h_in)
        mids = [_WindowCache(b.conv, B, H, W, h_in) for b in self.blocks]
        ins = [_point(b.conv_in) for b in self.blocks]
        outs = [_point(b.conv_out) for b in self.blocks]
        o1, o2 = _point(self.out1), _point(self.out2)

        def step(s: int, prev: Tensor | None) -> Tensor:
            if s:  # the pixel just drawn (all its channels, as the canvas holds them now)
                _, i0, j0 = position(order[s - 1], (C, H, W))
                first.write(i0, j0, self.scaled(x[:, :, i0, j0]))
            c, i, j = position(order[s], (C, H, W))
            a = first(i, j)  # (B, 2h)
            for mid, w_in, w_out in zip(mids, ins, outs):
                mid.write(i, j, F.relu(F.linear(F.relu(a), *w_in)))
                a = a + F.linear(F.relu(mid(i, j)), *w_out)
            # channel c's output depends on x[:, :c, i, j], never on x[:, c:, i, j]
            return F.linear(F.relu(F.linear(F.relu(a), *o1)), *o2).view(B, C, -1)[:, c]  # (B, P)

        yield step


# ---- Gated PixelCNN -----------------------------------------------------------------------------
@dataclass
class GatedPixelCNNConfig:
    shape: tuple[int, int, int] = (1, 28, 28)  # (C, H, W)
    levels: int = 2                            # K gray levels; 2 = binary
    channels: int = 32                         # h per stack (rounded up to a multiple of C)
    num_layers: int = 5                        # gated layers after the first
    first_kernel: int = 7                      # first layer: vertical (r+1) x k, horizontal 1 x k (mask A)
    kernel: int = 3                            # later layers (mask B in the horizontal stack)
    head_channels: int = 64                    # 1x1 output layers
    num_classes: int = 0                       # > 0: class-conditional on y LongTensor[B]


class GatedLayer(nn.Module):
    """One gated layer of both stacks.

    v : Tensor[B, C_in, H, W] -> v_pre : Tensor[B, 2h, H, W]; row ``i`` of ``v_pre`` sees rows
        ``i - r .. i`` of ``v`` (the horizontal stack only ever reads it shifted one row down).
    h : Tensor[B, C_in, H, W] -> Tensor[B, h, H, W]: ``[h +] 1x1_B(gate(hconv(h) + v2h(down_shift(v_pre))))``.
    The horizontal pre-activations are laid out ``(G, 2, h/G)`` (see :func:`gate_groups`).
    """

    def __init__(self, c_in: int, h: int, kernel: int, mask_type: str, groups: int, residual: bool) -> None:
        super().__init__()
        self.r, self.groups, self.residual = kernel // 2, groups, residual
        self.vconv = nn.Conv2d(c_in, 2 * h, (self.r + 1, kernel))
        self.hconv = MaskedConv2d(c_in, 2 * h, (1, kernel), mask_type, groups)
        self.v2h = nn.Conv2d(2 * h, 2 * h, 1)
        self.hout = MaskedConv2d(h, h, 1, "B", groups)

    def vertical(self, v: Tensor) -> Tensor:
        r = self.r
        return self.vconv(F.pad(v, (r, r, r, 0)))  # (B, 2h, H, W)

    def horizontal(self, h: Tensor, h_pre: Tensor) -> Tensor:
        g = self.hout(gate_groups(h_pre, self.groups))  # (B, h, ...)
        return h + g if self.residual else g


class GatedPixelCNN(ImageModel):
    """Gated PixelCNN (no blind spot, optional class conditioning): ``forward(x, y=None) -> [B, C, H, W, P]``."""

    config_class = GatedPixelCNNConfig
    presets = {
        "debug": dict(channels=6, num_layers=2, first_kernel=5, kernel=3, head_channels=12),
        "small": dict(channels=16, num_layers=5, first_kernel=7, kernel=3, head_channels=32),
        "base": dict(channels=64, num_layers=12, first_kernel=7, kernel=3, head_channels=256),
    }

    def __init__(self, config: GatedPixelCNNConfig) -> None:
        super().__init__(config)
        self.head = image_head(config.levels)
        C = config.shape[0]
        h = round_up(config.channels, C)
        hc = round_up(config.head_channels, C)
        self.hidden = h
        layers = [GatedLayer(C, h, config.first_kernel, "A", C, residual=False)]
        layers += [GatedLayer(h, h, config.kernel, "B", C, residual=True) for _ in range(config.num_layers)]
        self.layers = nn.ModuleList(layers)
        # per layer, a bias for the vertical and one for the horizontal pre-activations
        self.embed = nn.Embedding(config.num_classes, len(layers) * 4 * h) if config.num_classes else None
        self.out1 = MaskedConv2d(h, hc, 1, "B", C)
        self.out2 = MaskedConv2d(hc, C * self.head.num_params, 1, "B", C)

    def class_bias(self, y, B: int) -> Tensor | None:
        """Labels ``y`` (LongTensor[B], or one label for all) -> ``[B, L, 2, 2h]`` (vertical, horizontal)."""
        k = self.config.num_classes
        if not k:
            if y is not None:
                raise ValueError("this GatedPixelCNN is unconditional (num_classes=0); drop y or rebuild "
                                 "with num_classes > 0")
            return None
        if y is None:
            raise ValueError(f"this GatedPixelCNN is class-conditional (num_classes={k}): pass y=LongTensor[B]")
        y = torch.as_tensor(y, device=self.embed.weight.device).long().expand(B)
        if int(y.min()) < 0 or int(y.max()) >= k:
            raise ValueError(f"class labels y must lie in [0, {k}), got range [{int(y.min())}, {int(y.max())}]")
        return self.embed(y).view(B, len(self.layers), 2, -1)

    def network(self, h: Tensor, y=None) -> Tensor:
        """Scaled input ``h[B, C, H, W]`` in [-1, 1] -> raw output ``[B, C*P, H, W]`` laid out (C, P)."""
        cond = self.class_bias(y, h.shape[0])
        v = hz = h
        for n, layer in enumerate(self.layers):
            v_pre = layer.vertical(v)  # (B, 2h, H, W)
            if cond is not None:
                v_pre = v_pre + cond[:, n, 0, :, None, None]
            h_pre = layer.hconv(hz) + layer.v2h(down_shift(v_pre))  # (B, 2h, H, W)
            if cond is not None:
                h_pre = h_pre + cond[:, n, 1, :, None, None]
            hz = layer.horizontal(hz, h_pre)  # (B, h, H, W)
            v = gated(v_pre, 1)
        return self.out2(F.relu(self.out1(F.relu(hz))))

    def forward(self, x: Tensor, y=None) -> Tensor:
        """``x[B, C, H, W]`` levels (+ labels ``y[B]``) -> ``params[B, C, H, W, P]``."""
        return to_params(self.network(self.scaled(x), y), x.shape[1])

    @contextlib.contextmanager
    def steps(self, canvas: Canvas, y=None):
        """The cached step: the vertical stack once per image row (each layer convolves its cached last
        ``r + 1`` rows), the horizontal stack once per element (each layer reads its cached ``1 x k``
        window)."""
        x = canvas.x
        B, C, H, W = x.shape
        L, G = len(self.layers), C
        order = canvas.order
        cond = self.class_bias(y, B)
        h_in = self.scaled(x)
        # vertical caches: layer n's input rows, zero-padded r above and r left / right
        vbufs = [h_in.new_zeros(B, layer.vconv.in_channels, H + layer.r, W + 2 * layer.r) for layer in self.layers]
        r0 = self.layers[0].r
        vbufs[0][:, :, r0:, r0:r0 + W] = h_in
        hwins = [_WindowCache(layer.hconv, B, H, W, h_in) for layer in self.layers]
        hwins[0].fill(h_in)
        v2h = [_point(layer.v2h) for layer in self.layers]
        hout = [_point(layer.hout) for layer in self.layers]
        o1, o2 = _point(self.out1), _point(self.out2)

        def vertical_row(i: int) -> list[Tensor]:
            """``v_pre`` of image row ``i`` for every layer: ``[B, 2h, W]`` each (fills the next caches)."""
            rows = []
            for n, layer in enumerate(self.layers):
                vp = layer.vconv(vbufs[n][:, :, i:i + layer.r + 1])[:, :, 0]  # (B, 2h, W)
                if cond is not None:
                    vp = vp + cond[:, n, 0, :, None]
                rows.append(vp)
                if n + 1 < L:
                    r = self.layers[n + 1].r
                    vbufs[n + 1][:, :, i + r, r:r + W] = gated(vp, 1)
            return rows

        def to_horizontal(rows: list[Tensor]) -> list[Tensor]:
            """``v2h(v_pre)`` of the row above (+ class bias): ``[B, W, 2h]`` per layer."""
            out = []
            for n, vp in enumerate(rows):
                t = F.linear(vp.transpose(1, 2), *v2h[n])  # (B, W, 2h)
                out.append(t if cond is None else t + cond[:, n, 1, None, :])
            return out

        # row 0 sees only the zero row the down shift brings in
        vh = to_horizontal([h_in.new_zeros(B, 2 * self.hidden, W) for _ in range(L)])

        def step(s: int, prev: Tensor | None) -> Tensor:
            nonlocal vh
            c, i, j = position(order[s], (C, H, W))
            if s:  # the pixel just drawn (all its channels, as the canvas holds them now)
                _, i0, j0 = position(order[s - 1], (C, H, W))
                hwins[0].write(i0, j0, self.scaled(x[:, :, i0, j0]))
            if i > 0 and j == 0 and c == 0:  # a new row: the vertical stack takes the finished one
                vbufs[0][:, :, i - 1 + r0, r0:r0 + W] = self.scaled(x[:, :, i - 1])
                vh = to_horizontal(vertical_row(i - 1))
            hz = None
            for n, (win, layer) in enumerate(zip(hwins, self.layers)):
                if n:
                    win.write(i, j, hz)
                g = F.linear(gate_groups(win(i, j) + vh[n][:, j], G), *hout[n])  # (B, h)
                hz = hz + g if layer.residual else g
            # channel c's output depends on x[:, :c, i, j], never on x[:, c:, i, j]
            return F.linear(F.relu(F.linear(F.relu(hz), *o1)), *o2).view(B, C, -1)[:, c]  # (B, P)

        yield step
