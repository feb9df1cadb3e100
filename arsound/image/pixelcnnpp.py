"""PixelCNN++ (Salimans, Karpathy, Chen & Kingma, ICLR 2017, arXiv:1701.05517).

Changes from PixelCNN, as in the paper:

- Output: a discretized logistic mixture (``core.distributions.DiscretizedLogisticMixture``) whose
  component is shared by the channels of a pixel, with *linear channel coefficients*: the mean of G is
  ``m_G + a * R`` and the mean of B is ``m_B + b * R + c * G`` (``a, b, c = tanh(.)`` per component,
  R and G scaled to [-1, 1]). In general channel ``c``'s mean adds ``sum_{c' < c} coeff * x_c'``.
- Two causal streams without masks: ``u`` (down-shifted convolutions: rows above) and ``ul``
  (down-right-shifted convolutions: rows above and the left of the current row), so no blind spot.
- Down-sampling (stride-2 convolutions) and up-sampling (transposed convolutions) between
  resolutions, with U-Net-like skip connections from the up pass into the down pass.
- Gated ResNet blocks ``x + a * sigmoid(b)`` with concat_elu nonlinearities and dropout.

Per-element terms. The paper's pixel likelihood is ``log sum_k pi_k prod_c p_c,k(x_c)``. It is split
exactly by the chain rule into one term per channel, as the one-element-at-a-time contract needs:

    log p(x_c | x_<c, context) = log sum_k w_k,c p_c,k(x_c),   log w_k,c = log pi_k + sum_{c' < c} log p_c',k(x_c')

so channel ``c`` is itself a discretized logistic mixture with posterior logits ``w_k,c`` and
channel-adjusted means. :meth:`forward` returns those parameters per element (the generic sampler
draws R, then G from its conditional with the same coefficients, then B), and :meth:`log_prob` hands
the split tensors to the distribution's ``log_prob_from``. Sampling R, G, B this way has exactly the
paper's joint distribution (draw one component, then the three channels).

The number of resolutions adapts to the image: the ``num_resolutions - 1`` halvings are cut to as many
as divide ``H`` and ``W`` (28 x 28 -> 14 -> 7; 2 x 2 -> 1; 1 x 2 or 3 x 3: none).

Letters: ``B`` batch, ``C`` image channels, ``H x W`` image, ``F`` filters, ``M`` mixture components.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.distributions import DiscretizedLogisticMixture
from .common import ImageModel

__all__ = ["PixelCNNppConfig", "PixelCNNpp", "concat_elu"]


@dataclass
class PixelCNNppConfig:
    shape: tuple[int, int, int] = (1, 28, 28)  # (C, H, W)
    levels: int = 2                            # K gray levels; 2 = binary
    channels: int = 32                         # F filters in every stream
    num_resnets: int = 2                       # gated resnets per resolution (up pass; down pass +1 after the first)
    num_resolutions: int = 3                   # at most; fewer when H, W are not divisible by 2**(n - 1)
    num_mixtures: int = 5                      # M logistic components
    dropout: float = 0.5
    log_scale_min: float = -7.0


def concat_elu(x: Tensor) -> Tensor:
    """``elu([x, -x])`` along channels: ``[B, F, H, W] -> [B, 2F, H, W]``."""
    return F.elu(torch.cat([x, -x], 1))


def _down_shift(x: Tensor) -> Tensor:
    return F.pad(x, (0, 0, 1, 0))[:, :, :-1]


def _right_shift(x: Tensor) -> Tensor:
    return F.pad(x, (1, 0, 0, 0))[..., :-1]


class DownShiftedConv2d(nn.Module):
    """Output ``(i, j)`` sees input rows ``i - kh + 1 .. i``, columns ``j - kw // 2 .. j + kw // 2``
    (at stride 1); ``shift_down`` moves the result one row down, so it sees rows above only."""

    def __init__(self, c_in: int, c_out: int, kernel=(2, 3), stride: int = 1, shift_down: bool = False) -> None:
        super().__init__()
        kh, kw = kernel
        self.pad, self.shift_down = ((kw - 1) // 2, (kw - 1) // 2, kh - 1, 0), shift_down
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(F.pad(x, self.pad))
        return _down_shift(x) if self.shift_down else x


class DownRightShiftedConv2d(nn.Module):
    """Output ``(i, j)`` sees input rows ``i - kh + 1 .. i``, columns ``j - kw + 1 .. j``;
    ``shift_right`` moves the result one column right, so it sees columns left of ``j`` only."""

    def __init__(self, c_in: int, c_out: int, kernel=(2, 2), stride: int = 1, shift_right: bool = False) -> None:
        super().__init__()
        kh, kw = kernel
        self.pad, self.shift_right = (kw - 1, 0, kh - 1, 0), shift_right
        self.conv = nn.Conv2d(c_in, c_out, kernel, stride)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv(F.pad(x, self.pad))
        return _right_shift(x) if self.shift_right else x


class DownShiftedDeconv2d(nn.Module):
    """Stride-2 up-sampling ``[B, F, H, W] -> [B, F, 2H, 2W]`` keeping the down-shifted structure."""

    def __init__(self, c_in: int, c_out: int, kernel=(2, 3)) -> None:
        super().__init__()
        self.kernel = kernel
        self.deconv = nn.ConvTranspose2d(c_in, c_out, kernel, stride=2, output_padding=1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.deconv(x)
        kh, kw = self.kernel
        H, W = x.shape[-2:]
        return x[:, :, :H - kh + 1, (kw - 1) // 2:W - (kw - 1) // 2]


class DownRightShiftedDeconv2d(nn.Module):
    """Stride-2 up-sampling ``[B, F, H, W] -> [B, F, 2H, 2W]`` keeping the down-right-shifted structure."""

    def __init__(self, c_in: int, c_out: int, kernel=(2, 2)) -> None:
        super().__init__()
        self.kernel = kernel
        self.deconv = nn.ConvTranspose2d(c_in, c_out, kernel, stride=2, output_padding=1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.deconv(x)
        kh, kw = self.kernel
        H, W = x.shape[-2:]
        return x[:, :, :H - kh + 1, :W - kw + 1]


class GatedResnet(nn.Module):
    """``x + a * sigmoid(b)``, ``a, b`` from two causal convs on concat_elu features (+ ``skip`` inputs).

    x : Tensor[B, F, H, W]; a : Tensor[B, skip * F, H, W] or None -> Tensor[B, F, H, W].
    """

    def __init__(self, filters: int, conv: type, skip: int, dropout: float) -> None:
        super().__init__()
        self.conv_in = conv(2 * filters, filters)
        self.skip = nn.Conv2d(2 * skip * filters, filters, 1) if skip else None
        self.dropout = nn.Dropout(dropout)
        self.conv_out = conv(2 * filters, 2 * filters)

    def forward(self, x: Tensor, a: Tensor | None = None) -> Tensor:
        h = self.conv_in(concat_elu(x))
        if a is not None:
            h = h + self.skip(concat_elu(a))
        a_, b_ = self.conv_out(self.dropout(concat_elu(h))).chunk(2, 1)
        return x + a_ * torch.sigmoid(b_)


def num_downsamplings(H: int, W: int, most: int) -> int:
    """How many times ``H x W`` halves exactly, at most ``most``."""
    d = 0
    while d < most and H % 2 ** (d + 1) == 0 and W % 2 ** (d + 1) == 0:
        d += 1
    return d


class PixelCNNpp(ImageModel):
    """PixelCNN++: ``forward(x[B, C, H, W]) -> params[B, C, H, W, 3M]`` (per-channel conditionals)."""

    config_class = PixelCNNppConfig
    presets = {
        "debug": dict(channels=8, num_resnets=1, num_resolutions=3, num_mixtures=2, dropout=0.1),
        "small": dict(channels=16, num_resnets=1, num_resolutions=3, num_mixtures=5, dropout=0.0),
        "base": dict(channels=160, num_resnets=5, num_resolutions=3, num_mixtures=10, dropout=0.5),
    }

    def __init__(self, config: PixelCNNppConfig) -> None:
        super().__init__(config)
        C, H, W = config.shape
        nf, nr, p = config.channels, config.num_resnets, config.dropout
        M = config.num_mixtures
        self.head = DiscretizedLogisticMixture(config.levels, M, config.log_scale_min)
        self.num_coeffs = C * (C - 1) // 2
        R = num_downsamplings(H, W, config.num_resolutions - 1) + 1
        self.num_scales = R

        def u_block(skip):
            return GatedResnet(nf, DownShiftedConv2d, skip, p)

        def ul_block(skip):
            return GatedResnet(nf, DownRightShiftedConv2d, skip, p)

        # inputs: C channels + a channel of ones that marks the zero padding
        self.u_init = DownShiftedConv2d(C + 1, nf, (2, 3), shift_down=True)
        self.ul_init_up = DownShiftedConv2d(C + 1, nf, (1, 3), shift_down=True)
        self.ul_init_left = DownRightShiftedConv2d(C + 1, nf, (2, 1), shift_right=True)
        self.up_u = nn.ModuleList(nn.ModuleList(u_block(0) for _ in range(nr)) for _ in range(R))
        self.up_ul = nn.ModuleList(nn.ModuleList(ul_block(1) for _ in range(nr)) for _ in range(R))
        self.down_u = nn.ModuleList(DownShiftedConv2d(nf, nf, (2, 3), stride=2) for _ in range(R - 1))
        self.down_ul = nn.ModuleList(DownRightShiftedConv2d(nf, nf, (2, 2), stride=2) for _ in range(R - 1))
        counts = [nr] + [nr + 1] * (R - 1)  # the down pass consumes every stored up-pass output
        self.dn_u = nn.ModuleList(nn.ModuleList(u_block(1) for _ in range(n)) for n in counts)
        self.dn_ul = nn.ModuleList(nn.ModuleList(ul_block(2) for _ in range(n)) for n in counts)
        self.upsample_u = nn.ModuleList(DownShiftedDeconv2d(nf, nf) for _ in range(R - 1))
        self.upsample_ul = nn.ModuleList(DownRightShiftedDeconv2d(nf, nf) for _ in range(R - 1))
        # per pixel: M logits, C x M means, C x M log-scales, C(C-1)/2 x M coefficients
        self.out = nn.Conv2d(nf, M * (1 + 2 * C + self.num_coeffs), 1)

    def network(self, h: Tensor) -> Tensor:
        """Scaled input ``h[B, C, H, W]`` -> raw ``[B, M (1 + 2C + C(C-1)/2), H, W]``; pixel ``(i, j)``
        sees only pixels before it in raster order (all their channels)."""
        x = torch.cat([h, torch.ones_like(h[:, :1])], 1)
        us = [self.u_init(x)]                                   # (B, F, H, W)
        uls = [self.ul_init_up(x) + self.ul_init_left(x)]
        for s in range(self.num_scales):
            for u_block, ul_block in zip(self.up_u[s], self.up_ul[s]):
                us.append(u_block(us[-1]))
                uls.append(ul_block(uls[-1], us[-1]))
            if s + 1 < self.num_scales:                         # halve: (B, F, H/2, W/2)
                us.append(self.down_u[s](us[-1]))
                uls.append(self.down_ul[s](uls[-1]))
        u, ul = us.pop(), uls.pop()
        for s in range(self.num_scales):
            for u_block, ul_block in zip(self.dn_u[s], self.dn_ul[s]):
                u = u_block(u, us.pop())
                ul = ul_block(ul, torch.cat([u, uls.pop()], 1))
            if s + 1 < self.num_scales:                         # double
                u, ul = self.upsample_u[s](u), self.upsample_ul[s](ul)
        return self.out(F.elu(ul))

    def mixture(self, raw: Tensor, h: Tensor, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Per-element ``(logit_probs, means, log_scales)``, each ``[B, C, H, W, M]``.

        raw: network output; h: scaled ``x`` (the values the coefficients multiply); x: levels.
        Means are channel-adjusted, logits are the posterior ``log pi_k + sum_{c'<c} log p_c',k(x_c')``.
        """
        M = self.config.num_mixtures
        C = h.shape[1]
        raw = raw.permute(0, 2, 3, 1)                                      # (B, H, W, ...)
        logits = raw[..., :M]                                              # (B, H, W, M)
        means = raw[..., M:M + C * M].unflatten(-1, (C, M))                # (B, H, W, C, M)
        log_scales = raw[..., M + C * M:M + 2 * C * M].unflatten(-1, (C, M))
        coeffs = torch.tanh(raw[..., M + 2 * C * M:].unflatten(-1, (self.num_coeffs, M)))
        hv = h.permute(0, 2, 3, 1)                                         # (B, H, W, C)
        adjusted, k = [means[..., 0, :]], 0
        for c in range(1, C):
            m = means[..., c, :]
            for c_prev in range(c):
                m = m + coeffs[..., k, :] * hv[..., c_prev, None]
                k += 1
            adjusted.append(m)
        means = torch.stack(adjusted, -2)                                  # (B, H, W, C, M)
        logit_probs = logits.unsqueeze(-2).expand_as(means)
        if C > 1:  # condition the component on the pixel's earlier channels
            xv = x.permute(0, 2, 3, 1).unsqueeze(-1).expand_as(means)      # (B, H, W, C, M)
            comp = self.head.log_prob_from(torch.zeros_like(means).unsqueeze(-1), means.unsqueeze(-1),
                                           log_scales.unsqueeze(-1), xv)  # (B, H, W, C, M) per component
            earlier = torch.cat([torch.zeros_like(comp[..., :1, :]), comp[..., :-1, :].cumsum(-2)], -2)
            logit_probs = logit_probs + earlier
        return tuple(t.permute(0, 3, 1, 2, 4) for t in (logit_probs, means, log_scales))

    def params_from(self, h: Tensor, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """Network on scaled input ``h`` (may require grad), then :meth:`mixture`."""
        return self.mixture(self.network(h), h, x)

    def forward(self, x: Tensor) -> Tensor:
        """``x[B, C, H, W]`` levels -> ``params[B, C, H, W, 3M]`` = [logit_probs, means, log_scales]."""
        return torch.cat(self.params_from(self.scaled(x), x), -1)

    def log_prob(self, x: Tensor, reduce: bool = True) -> Tensor:
        parts = self.params_from(self.scaled(x), x)
        lp = self.head.log_prob_from(*parts, x)  # (B, C, H, W)
        return lp.flatten(1).sum(1) if reduce else lp
