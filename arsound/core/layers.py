"""Masked and causal layers shared by every model: MADE masks, PixelCNN convolutions, causal 1-D
convolutions with a streaming ring buffer, and gated units.

- :func:`made_masks`, :class:`MaskedLinear`: MADE (Germain et al., ICML 2015).
- :class:`MaskedConv2d`: PixelCNN masks A/B with R->G->B channel groups (van den Oord et al., 2016).
- :class:`CausalConv1d`: WaveNet's dilated causal convolution (van den Oord et al., 2016), with an
  O(1)-per-step streaming path in the spirit of Fast WaveNet (Paine et al., 2016).
- :func:`gated`, :class:`GatedActivation`: ``tanh(a) * sigmoid(b)`` (Gated PixelCNN, WaveNet).

Masks are applied functionally (``F.conv2d(x, self.weight * self.mask)``) and stored as
non-persistent buffers, so checkpoints hold only the weights.
"""
from __future__ import annotations

import math
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .streaming import StreamingModule

__all__ = [
    "made_masks", "made_direct_mask", "MaskedLinear",
    "pixelcnn_mask", "MaskedConv2d",
    "CausalConv1d", "gated", "GatedActivation",
]


# ---- MADE ---------------------------------------------------------------------------------------
def _ranks(in_features: int, order) -> Tensor:
    """``order[i]`` = element generated i-th -> ``rank[d]`` = position of element ``d`` in ``order``."""
    D = in_features
    order = torch.arange(D) if order is None else torch.as_tensor(order, dtype=torch.long).flatten()
    if order.numel() != D or not torch.equal(order.sort().values, torch.arange(D)):
        raise ValueError(f"order must be a permutation of range({D}), got {order.tolist()[:10]}...")
    rank = torch.empty(D, dtype=torch.long)
    rank[order] = torch.arange(D)
    return rank


def made_masks(in_features: int, hidden_sizes: Sequence[int], order=None, *, out_mult: int = 1,
               seed: int | None = None, natural: bool = False) -> list[Tensor]:
    """MADE masks for an MLP ``D -> hidden_sizes... -> out_mult * D`` under any input ordering.

    Degrees: input element ``d`` gets ``m(d) = rank(d) + 1`` in ``1..D`` (``rank`` = its position in
    ``order``; ``order[i]`` is the element generated i-th, ``None`` = ``arange(D)``). Hidden unit
    degrees are drawn in ``[min degree of the layer below, D - 1]`` with a generator seeded by
    ``seed`` (``natural=True``: cycled deterministically instead); the largest degree of each hidden
    layer is set to ``D - 1`` so every hidden unit has an outgoing connection (the minimum rule gives
    every unit an incoming one). Hidden masks allow ``m_l(k) >= m_{l-1}(k')``; the output mask allows
    ``m(d) > m_L(k)``, so the output for ``order[i]`` depends only on the inputs ``order[:i]``.

    Output features are laid out as ``(out_mult, D)``: feature ``p * D + d`` is parameter ``p`` of
    element ``d``, so ``y.view(B, out_mult, D)`` gives per-element parameters.

    Returns one bool mask per layer, shaped like ``nn.Linear`` weights: ``[H1, D], [H2, H1], ...,
    [out_mult * D, H_L]`` (a single ``[out_mult * D, D]`` mask when ``hidden_sizes`` is empty).
    """
    D = in_features
    rank = _ranks(D, order)
    g = torch.Generator()
    g.manual_seed(int(torch.randint(2**62, (1,))) if seed is None else seed)
    deg_in = rank + 1                       # (D,) in 1..D
    degrees = [deg_in]
    for H in hidden_sizes:
        lo = min(int(degrees[-1].min()), max(D - 1, 1))
        hi = max(D - 1, lo)
        if natural:
            m = lo + torch.arange(H) % (hi - lo + 1)
        else:
            m = torch.randint(lo, hi + 1, (H,), generator=g)
        m[m.argmax()] = hi                  # some unit reaches every unit above
        degrees.append(m)
    masks = [cur[:, None] >= prev[None, :] for prev, cur in zip(degrees[:-1], degrees[1:])]
    deg_out = deg_in.repeat(out_mult)       # (out_mult * D,), layout (out_mult, D)
    masks.append(deg_out[:, None] > degrees[-1][None, :])
    return masks


def made_direct_mask(in_features: int, order=None, *, out_mult: int = 1) -> Tensor:
    """Bool mask ``[out_mult * D, D]`` for a direct input->output ``MaskedLinear`` (added to the
    MLP output): output ``p * D + d`` sees input ``d'`` iff ``d'`` comes before ``d`` in ``order``."""
    rank = _ranks(in_features, order)
    return rank.repeat(out_mult)[:, None] > rank[None, :]


class MaskedLinear(nn.Linear):
    """``nn.Linear`` whose weight is multiplied by a fixed mask: ``y = x @ (W * M).T + b``.

    x : Tensor[..., in_features] -> Tensor[..., out_features]; mask : Tensor[out_features, in_features].
    """

    def __init__(self, in_features: int, out_features: int, bias: bool = True) -> None:
        super().__init__(in_features, out_features, bias)
        self.register_buffer("mask", torch.ones(out_features, in_features), persistent=False)

    @torch.no_grad()
    def set_mask(self, mask: Tensor) -> None:
        if tuple(mask.shape) != tuple(self.weight.shape):
            raise ValueError(f"mask shape {tuple(mask.shape)} != weight shape {tuple(self.weight.shape)}")
        self.mask.copy_(mask)

    def forward(self, x: Tensor) -> Tensor:
        return F.linear(x, self.weight * self.mask, self.bias)


# ---- PixelCNN -----------------------------------------------------------------------------------
def _pair(k) -> tuple[int, int]:
    return (k, k) if isinstance(k, int) else tuple(k)


def pixelcnn_mask(out_channels: int, in_channels: int, kernel_size, mask_type: str = "B",
                  channel_groups: int = 1) -> Tensor:
    """Bool mask ``[out_channels, in_channels, kH, kW]`` for :class:`MaskedConv2d` (see its drawing)."""
    if mask_type not in ("A", "B"):
        raise ValueError(f"mask_type must be 'A' or 'B', got {mask_type!r}")
    kh, kw = _pair(kernel_size)
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"kernel_size must be odd, got {(kh, kw)}")
    G = channel_groups
    if in_channels % G or out_channels % G:
        raise ValueError(f"in_channels ({in_channels}) and out_channels ({out_channels}) "
                         f"must be divisible by channel_groups ({G})")
    ci, cj = kh // 2, kw // 2
    mask = torch.zeros(out_channels, in_channels, kh, kw, dtype=torch.bool)
    mask[:, :, :ci, :] = True                # rows above
    mask[:, :, ci, :cj] = True               # left in the centre row
    g_out = torch.arange(out_channels) // (out_channels // G)
    g_in = torch.arange(in_channels) // (in_channels // G)
    rule = g_in[None, :] < g_out[:, None] if mask_type == "A" else g_in[None, :] <= g_out[:, None]
    mask[:, :, ci, cj] = rule                # centre pixel: by channel group
    return mask


class MaskedConv2d(nn.Conv2d):
    """PixelCNN masked convolution, same-size output.

    x : Tensor[B, C_in, H, W] -> Tensor[B, C_out, H, W]

    Spatial masks (5x5; ``c`` is the centre pixel, whose channel connections follow the groups)::

        mask A            mask B
        1 1 1 1 1         1 1 1 1 1
        1 1 1 1 1         1 1 1 1 1
        1 1 0 0 0         1 1 1 0 0      centre: A excludes it (1 group), B includes it
        0 0 0 0 0         0 0 0 0 0
        0 0 0 0 0         0 0 0 0 0

    With ``channel_groups = G`` the input and output channels are each split into ``G`` contiguous
    groups (R, G, B for ``G = 3``); at the centre pixel input group ``i`` feeds output group ``j`` iff
    ``i < j`` (A) or ``i <= j`` (B)::

        centre, G = 3     A: in R G B      B: in R G B
                     out R    0 0 0              1 0 0
                     out G    1 0 0              1 1 0
                     out B    1 1 0              1 1 1

    Use mask A in the first layer (sees the image) and B after it. For per-channel outputs lay the last
    layer's channels out as ``(G, P)``: ``y.view(B, G, P, H, W)``.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size, mask_type: str = "B",
                 channel_groups: int = 1, dilation: int = 1, bias: bool = True) -> None:
        kh, kw = _pair(kernel_size)
        padding = (dilation * (kh // 2), dilation * (kw // 2))
        super().__init__(in_channels, out_channels, (kh, kw), padding=padding, dilation=dilation, bias=bias)
        self.mask_type, self.channel_groups = mask_type, channel_groups
        mask = pixelcnn_mask(out_channels, in_channels, (kh, kw), mask_type, channel_groups)
        self.register_buffer("mask", mask.to(self.weight.dtype), persistent=False)

    def forward(self, x: Tensor) -> Tensor:
        return self._conv_forward(x, self.weight * self.mask, self.bias)

    def extra_repr(self) -> str:
        return f"{super().extra_repr()}, mask_type={self.mask_type}, channel_groups={self.channel_groups}"


# ---- causal 1-D convolution ---------------------------------------------------------------------
class CausalConv1d(StreamingModule):
    """Dilated causal convolution: output ``t`` sees inputs ``t - m * dilation`` for ``m = 0..k-1``.

    x : Tensor[B, C_in, T] -> Tensor[B, C_out, T] (left padding ``(k - 1) * dilation`` with zeros).
    Receptive field: ``(k - 1) * dilation + 1``.

    Streaming (inside ``with streaming(model):``): each call with a chunk ``[B, C_in, t]`` returns the
    outputs the full forward gives at those times. The last ``L = (k - 1) * dilation`` inputs live in a
    ring buffer ``state["buf"]: [B, C_in, L]``; input time ``tau`` sits in slot ``tau % L``. A single
    step gathers the ``k - 1`` past taps by index and writes one slot: O(k) work, independent of ``L``.
    Chunks ``t > 1`` convolve ``[buffer in time order, chunk]`` once (O(L + t)).

    ``weight : Parameter[C_out, C_in, k]`` has ``nn.Conv1d``'s shape and init, so weight norm
    (``torch.nn.utils.parametrizations.weight_norm``) applies and can be folded later.
    """

    def __init__(self, in_channels: int, out_channels: int, kernel_size: int, dilation: int = 1,
                 bias: bool = True) -> None:
        super().__init__()
        if kernel_size < 1 or dilation < 1:
            raise ValueError(f"kernel_size and dilation must be >= 1, got {kernel_size}, {dilation}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size, self.dilation = kernel_size, dilation
        self.weight = nn.Parameter(torch.empty(out_channels, in_channels, kernel_size))
        self.bias = nn.Parameter(torch.empty(out_channels)) if bias else None
        # offsets of the k - 1 past taps from the current time: -(k-1)d, ..., -d
        taps = -dilation * torch.arange(kernel_size - 1, 0, -1)
        self.register_buffer("tap_offsets", taps, persistent=False)
        self.reset_parameters()

    def reset_parameters(self) -> None:  # as nn.Conv1d
        nn.init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_channels * self.kernel_size)
            nn.init.uniform_(self.bias, -bound, bound)

    @property
    def context(self) -> int:
        """Number of past inputs each output needs: ``(k - 1) * dilation``."""
        return (self.kernel_size - 1) * self.dilation

    @property
    def receptive_field(self) -> int:
        return self.context + 1

    def forward(self, x: Tensor) -> Tensor:
        if self.is_streaming:
            return self.step(x[..., 0]).unsqueeze(-1) if x.shape[-1] == 1 else self._chunk(x)
        return F.conv1d(F.pad(x, (self.context, 0)), self.weight, self.bias, dilation=self.dilation)

    def _buffer(self, x: Tensor) -> Tensor:
        buf = self.state.get("buf")
        if buf is None:
            buf = x.new_zeros(x.shape[0], self.in_channels, self.context)
            self.state.update(buf=buf, pos=0)
        return buf

    def step(self, x: Tensor) -> Tensor:
        """One time step inside ``streaming()``: ``x[B, C_in] -> y[B, C_out]``."""
        if not self.is_streaming:
            raise RuntimeError("CausalConv1d.step needs an open `with streaming(model):` block")
        L = self.context
        if L == 0:
            return F.linear(x, self.weight[:, :, 0], self.bias)
        buf = self._buffer(x)                                   # (B, C, L)
        pos = self.state["pos"]
        taps = buf[:, :, (self.tap_offsets + pos) % L]          # (B, C, k-1), oldest first
        window = torch.cat([taps, x.unsqueeze(-1)], -1)         # (B, C, k)
        y = F.linear(window.flatten(1), self.weight.flatten(1), self.bias)
        buf[:, :, pos % L] = x
        self.state["pos"] = pos + 1
        return y

    def _chunk(self, x: Tensor) -> Tensor:
        L, t = self.context, x.shape[-1]
        if L == 0:
            return F.conv1d(x, self.weight, self.bias)
        buf = self._buffer(x)
        pos = self.state["pos"]
        idx = torch.arange(pos - L, pos, device=buf.device) % L  # past L times, oldest first
        y = F.conv1d(torch.cat([buf[:, :, idx], x], -1), self.weight, self.bias, dilation=self.dilation)
        n = min(t, L)                                            # keep the last n inputs
        buf[:, :, torch.arange(pos + t - n, pos + t, device=buf.device) % L] = x[..., t - n:]
        self.state["pos"] = pos + t
        return y

    def extra_repr(self) -> str:
        return (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
                f"dilation={self.dilation}, bias={self.bias is not None}")


# ---- gated units --------------------------------------------------------------------------------
def gated(x: Tensor, dim: int = 1) -> Tensor:
    """``tanh(a) * sigmoid(b)`` with ``a, b = x.chunk(2, dim)``: ``[.., 2C, ..] -> [.., C, ..]``."""
    if x.shape[dim] % 2:
        raise ValueError(f"gated: size {x.shape[dim]} of dim {dim} is odd; need 2 * channels")
    a, b = x.chunk(2, dim)
    return torch.tanh(a) * torch.sigmoid(b)


class GatedActivation(nn.Module):
    """Module form of :func:`gated`."""

    def __init__(self, dim: int = 1) -> None:
        super().__init__()
        self.dim = dim

    def forward(self, x: Tensor) -> Tensor:
        return gated(x, self.dim)
