"""PixelSNAIL: residual causal convolutions interleaved with causal self-attention.

Chen, Mishra, Rohaninejad & Abbeel, "PixelSNAIL: An Improved Autoregressive Generative Model",
ICML 2018 (arXiv:1712.09763). ``blocks`` times: a stack of ``res_blocks`` gated residual blocks of
causal convolutions, then an attention block whose keys and values come from the block state, the
original image and a background (position) signal, and whose queries come from the state and the
background; its output enters the state through a gated 1x1 residual unit. Convolutions give local
detail, attention an unbounded receptive field (no blind spot).

Causality per element. The generation order is raster over pixels with the channels inside a pixel
(R, G, B of one pixel before the next), sequence position ``s = (i * W + j) * C + c``.

- Convolutions are core ``MaskedConv2d`` with ``C`` channel groups (one group of ``ch`` features per
  image channel): a mask-A input layer, mask-B layers after it, so the features of element ``s``
  depend on elements ``< s`` only.
- Attention runs over the ``T = H*W*C`` element sequence, each element's ``ch`` group features being
  one position. Key ``j`` sees the state at ``j`` and the image at element ``j - 1`` (the image shifted
  one position right, zero at ``j = 0``), so the inclusive causal mask ``j <= s`` is exact and no row
  of the softmax is empty.

Cached sampling (default): inside ``with model.streaming():`` each element is one step: every masked
convolution is evaluated at that single (pixel, channel group) from a cache of its inputs (after
Ramachandran et al. 2017), and each attention block appends one key/value to a core ``KVCache``.

Letters: ``B`` batch, ``C x H x W`` image, ``ch`` features per element, ``T = C*H*W``, ``P`` params.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from einops import rearrange
from torch import Tensor, nn

from ..core.attention import KVCache, attend
from ..core.layers import MaskedConv2d, gated
from ..core.streaming import StreamingModule
from .common import image_head, pixel_major_order
from .transformer import StepSampler

__all__ = ["PixelSNAILConfig", "PixelSNAIL"]


@dataclass
class PixelSNAILConfig:
    shape: tuple[int, int, int] = (1, 28, 28)  # (C, H, W)
    levels: int = 2                            # K gray levels; 2 = binary
    channels: int = 32                         # ch: features per element (per channel group)
    blocks: int = 2                            # residual stack + attention block, repeated
    res_blocks: int = 2                        # gated residual blocks per stack
    kernel: int = 3                            # mask-B convolutions
    first_kernel: int = 5                      # the mask-A input convolution
    attn_dim: int = 32                         # query / key / value width
    heads: int = 1
    dropout: float = 0.0


def to_seq(h: Tensor, C: int) -> Tensor:
    """Grouped features ``[B, C*ch, H, W]`` -> element sequence ``[B, T, ch]`` (generation order)."""
    B, _, H, W = h.shape
    return h.view(B, C, -1, H, W).permute(0, 3, 4, 1, 2).reshape(B, H * W * C, -1)


def from_seq(s: Tensor, C: int, H: int, W: int) -> Tensor:
    """Inverse of :func:`to_seq`: ``[B, T, ch]`` -> ``[B, C*ch, H, W]``."""
    B = s.shape[0]
    return s.view(B, H, W, C, -1).permute(0, 3, 4, 1, 2).reshape(B, -1, H, W)


class GatedResidual(nn.Module):
    """``h + gate(conv2(elu(conv1(elu(h)))))``, mask-B convs with ``C`` groups: ``[B, C*ch, H, W]`` -> same.

    ``conv2`` lays its ``2 ch`` outputs per group out as ``(a, b)``; the gate ``tanh(a) * sigmoid(b)``
    is taken inside each group so that no channel sees a later one.
    """

    def __init__(self, ch: int, C: int, kernel: int, dropout: float) -> None:
        super().__init__()
        self.C = C
        self.conv1 = MaskedConv2d(C * ch, C * ch, kernel, "B", channel_groups=C)
        self.conv2 = MaskedConv2d(C * ch, 2 * C * ch, kernel, "B", channel_groups=C)
        self.drop = nn.Dropout(dropout)

    def forward(self, h: Tensor) -> Tensor:
        t = self.conv1(F.elu(h))                                      # (B, C*ch, H, W)
        t = self.conv2(self.drop(F.elu(t)))                           # (B, C*2ch, H, W)
        return h + gated(t.unflatten(1, (self.C, -1)), dim=2).flatten(1, 2)


class AttentionBlock(StreamingModule):
    """PixelSNAIL attention over the element sequence, ``h[B, t, ch] -> h[B, t, ch]``.

    img : Tensor[B, t, 1], the scaled image shifted one element right; bg : Tensor[t, 3] positions.
    Keys/values from ``(h, img, bg)``, queries from ``(h, bg)``, inclusive causal mask; the result is
    mixed in by ``h + gate(W1 elu(h) + W2 elu(attn))``. In ``streaming()`` each call takes the next
    ``t`` positions and appends their keys/values to a :class:`KVCache` of ``max_len``.
    """

    def __init__(self, ch: int, attn_dim: int, heads: int, max_len: int) -> None:
        super().__init__()
        if attn_dim % heads:
            raise ValueError(f"attn_dim ({attn_dim}) must be divisible by heads ({heads})")
        self.heads, self.max_len = heads, max_len
        self.kv = nn.Linear(ch + 1 + 3, 2 * attn_dim)
        self.q = nn.Linear(ch + 3, attn_dim)
        self.mix_state = nn.Linear(ch, 2 * ch)
        self.mix_attn = nn.Linear(attn_dim, 2 * ch)

    def forward(self, h: Tensor, img: Tensor, bg: Tensor) -> Tensor:
        B, t, _ = h.shape
        bg = bg.expand(B, t, 3)
        k, v = rearrange(self.kv(F.elu(torch.cat([h, img, bg], -1))), "b t (two h d) -> two b h t d",
                         two=2, h=self.heads)                          # (B, nh, t, hs) each
        q = rearrange(self.q(F.elu(torch.cat([h, bg], -1))), "b t (h d) -> b h t d", h=self.heads)
        if self.is_streaming:
            cache = self.state.get("kv")
            if cache is None:
                cache = self.state["kv"] = KVCache(B, self.heads, self.max_len, k.shape[-1],
                                                   dtype=k.dtype, device=k.device)
            k, v = cache.append(k, v)                                  # (B, nh, s, hs)
        y = rearrange(attend(q, k, v, causal=True), "b h t d -> b t (h d)")
        return h + gated(self.mix_state(F.elu(h)) + self.mix_attn(F.elu(y)), dim=-1)


class SNAILBlock(nn.Module):
    def __init__(self, cfg: PixelSNAILConfig, T: int) -> None:
        super().__init__()
        C = cfg.shape[0]
        self.res = nn.ModuleList(GatedResidual(cfg.channels, C, cfg.kernel, cfg.dropout)
                                 for _ in range(cfg.res_blocks))
        self.attn = AttentionBlock(cfg.channels, cfg.attn_dim, cfg.heads, T)


class _ConvAt:
    """A masked conv evaluated at one (pixel, channel group) at a time from a cache of its inputs.

    ``buf[B, C_in, H + r, W + 2r]`` holds input ``(i, j)`` at ``(i + r, j + r)``; only rows ``i - r .. i``
    are read (the mask zeroes every row below the centre, and every later position in the centre row).
    """

    def __init__(self, conv: MaskedConv2d, B: int, H: int, W: int, like: Tensor) -> None:
        k, G = conv.kernel_size[0], conv.channel_groups
        self.r, self.k, self.gin = k // 2, k, conv.in_channels // G
        w = (conv.weight * conv.mask)[:, :, :self.r + 1]                # (out, in, r+1, k)
        self.weight = w.reshape(G, conv.out_channels // G, -1)         # (G, out/G, in*(r+1)*k)
        self.bias = conv.bias.view(G, -1)
        self.buf = like.new_zeros(B, conv.in_channels, H + self.r, W + 2 * self.r)

    def write(self, i: int, j: int, g: int, v: Tensor) -> None:
        """Input group ``g`` at pixel ``(i, j)``: ``v[B, C_in / G]``."""
        self.buf[:, g * self.gin:(g + 1) * self.gin, i + self.r, j + self.r] = v

    def __call__(self, i: int, j: int, g: int) -> Tensor:
        """Output group ``g`` at pixel ``(i, j)``: ``[B, C_out / G]``."""
        win = self.buf[:, :, i:i + self.r + 1, j:j + self.k]          # (B, C_in, r+1, k)
        return F.linear(win.reshape(win.shape[0], -1), self.weight[g], self.bias[g])


class _StepCache(StreamingModule):
    """Holds the per-stream convolution caches of :meth:`PixelSNAIL.step` (cleared by ``streaming()``)."""


class PixelSNAIL(StepSampler):
    """``forward: x[B, C, H, W] -> params[B, C, H, W, P]``; see the module docstring."""

    config_class = PixelSNAILConfig
    presets = {
        "debug": dict(channels=16, blocks=2, res_blocks=1, kernel=3, first_kernel=3, attn_dim=16, heads=2),
        "small": dict(channels=32, blocks=2, res_blocks=2, attn_dim=32, heads=1),
        "base": dict(channels=128, blocks=8, res_blocks=4, attn_dim=128, heads=1, dropout=0.1),
    }

    def __init__(self, config: PixelSNAILConfig) -> None:
        super().__init__(config)
        C, H, W = config.shape
        T = C * H * W
        for k in (config.kernel, config.first_kernel):
            if k < 1 or k % 2 == 0:
                raise ValueError(f"PixelSNAIL kernels must be odd and >= 1, got {k}")
        self.head = image_head(config.levels)
        ch = config.channels
        self.first = MaskedConv2d(C, C * ch, config.first_kernel, "A", channel_groups=C)
        self.blocks = nn.ModuleList(SNAILBlock(config, T) for _ in range(config.blocks))
        self.out = nn.Linear(ch, self.head.num_params)
        self.cache = _StepCache()
        # (row, col, channel) of every sequence position, and the background signal in [-0.5, 0.5]
        s = torch.arange(T)
        pos = torch.stack([s // (W * C), (s // C) % W, s % C])         # (3, T)
        self.register_buffer("pos_index", pos, persistent=False)
        size = torch.tensor([H, W, C]).view(3, 1)
        self.register_buffer("bg", ((pos + 0.5) / size - 0.5).T.float(), persistent=False)  # (T, 3)
        self.register_buffer("order", pixel_major_order(config.shape), persistent=False)

    def generation_order(self) -> Tensor:
        return self.order.cpu()

    def net(self, z: Tensor) -> Tensor:
        """Scaled image ``z[B, C, H, W]`` in [-1, 1] -> params in sequence order ``[B, T, P]``."""
        C, H, W = self.event_shape
        zs = to_seq(z, C)                                              # (B, T, 1)
        img = F.pad(zs, (0, 0, 1, 0))[:, :-1]                          # (B, T, 1), element s - 1
        h = self.first(z)                                              # (B, C*ch, H, W)
        for block in self.blocks:
            for res in block.res:
                h = res(h)
            h = from_seq(block.attn(to_seq(h, C), img, self.bg), C, H, W)
        return self.out(F.elu(to_seq(h, C)))                           # (B, T, P)

    def forward(self, x: Tensor) -> Tensor:
        C, H, W = self.event_shape
        params = self.net(self.scaled(x))                              # (B, T, P)
        return params.view(x.shape[0], H, W, C, -1).permute(0, 3, 1, 2, 4)  # (B, C, H, W, P)

    def _convs(self, B: int, like: Tensor) -> list[_ConvAt]:
        """The per-stream caches of every masked conv, in the order :meth:`step` uses them."""
        state = self.cache.state
        if "convs" not in state:
            _, H, W = self.event_shape
            convs = [self.first] + [c for b in self.blocks for r in b.res for c in (r.conv1, r.conv2)]
            state["convs"] = [_ConvAt(c, B, H, W, like) for c in convs]
        return state["convs"]

    def step(self, prev: Tensor, s: int) -> Tensor:
        """One cached step inside ``streaming()``: element ``s - 1``'s values ``[B]`` -> params ``[B, P]``."""
        if not self.cache.is_streaming:
            raise RuntimeError("PixelSNAIL.step needs an open `with model.streaming():` block")
        B = prev.shape[0]
        first, *convs = self._convs(B, self.bg)
        zprev = self.scaled(prev) if s else self.bg.new_zeros(B)       # (B,)
        if s:
            first.write(*self.pos_index[:, s - 1].tolist(), zprev[:, None])
        i, j, g = self.pos_index[:, s].tolist()
        h = first(i, j, g)                                             # (B, ch)
        it = iter(convs)
        for block in self.blocks:
            for _ in block.res:
                c1, c2 = next(it), next(it)
                c1.write(i, j, g, F.elu(h))
                t = c1(i, j, g)                                        # (B, ch)
                c2.write(i, j, g, F.elu(t))
                h = h + gated(c2(i, j, g), dim=-1)                     # (B, 2ch) -> (B, ch)
            h = block.attn(h[:, None], zprev.view(B, 1, 1), self.bg[s:s + 1])[:, 0]
        return self.out(F.elu(h))
