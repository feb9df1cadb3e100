"""Hierarchical VQ-VAE audio tokenizer, Jukebox style (Dhariwal et al., 2020, arXiv:2005.00341).

L levels, each with its OWN encoder, quantizer and decoder, so every level's decoder reconstructs audio
alone: level ``l`` turns a waveform into one code per ``hops[l]`` samples. An encoder is a 1-D conv, then
per downsampling step a strided conv (kernel ``2 s``, stride ``s``) followed by a dilated residual stack
(dilations ``g^0 .. g^(depth-1)``), then a conv to the code width; the decoder mirrors it with transposed
convs. Quantization is :class:`arsound.core.quantize.VectorQuantizer` (EMA codebook, data init, dead-code
restarts). Loss per level: ``mse_weight * MSE + stft_weight * MR-STFT`` (``metrics.mr_stft_distance``,
FFT 2048 / 1024 / 512) + commitment; all levels are summed and each is reported.

    model = VQVAE(VQVAEConfig.from_preset("small"))
    codes = model.encode(wav)              # wav Tensor[B, T] -> [LongTensor[B, T_l] per level], T_l = ceil(T / hop_l)
    y = model.decode(codes[1], level=1)    # -> Tensor[B, T_l * hop_l]

Long audio: ``audio/chunked.py`` encodes and decodes in windows (codes equal whole-file encoding);
codes files: ``audio/codes.py`` (versioned ``.npz``); the CLI verbs ``arsound encode`` / ``arsound decode``:
``cli/codes.py``.

Letters: B batch, T samples, C channels (width), D code width, L levels, T_l codes at level l.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Iterable

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.quantize import QuantizerConfig, VectorQuantizer
from .metrics import mr_stft_distance

PRESETS = ("jukebox", "small", "debug")


@dataclass
class VQVAEConfig:
    sample_rate: int = 16000
    hops: tuple[int, ...] = (8, 32, 128)   # samples per code, one per level (each a power of `stride`)
    stride: int = 2                        # of every down / up sampling step
    width: int = 32                        # C, channels of the conv stacks
    depth: int = 3                         # residual blocks after each down / before each up sampling step
    dilation_growth: int = 3
    quantizer: QuantizerConfig = field(default_factory=lambda: QuantizerConfig(num_codes=512, dim=64))
    mse_weight: float = 100.0              # waveform MSE weight (about 1 / signal power, like Jukebox's l2)
    stft_weight: float = 1.0               # multi-resolution STFT distance weight
    stft_ffts: tuple[int, ...] = (2048, 1024, 512)
    preset: str = ""                       # the preset this config came from (informational)

    @classmethod
    def from_preset(cls, name: str) -> "VQVAEConfig":
        """``jukebox`` (3 levels, hops 8/32/128 at 44.1 kHz, 2048 codes x 64 dims; defined, not trained here),
        ``small`` (CPU-trainable, 16 kHz, 3 levels, hops 8/32/128, 256 codes x 32, width 32) or ``debug``."""
        if name == "jukebox":
            return cls(sample_rate=44100, hops=(8, 32, 128), stride=2, width=32, depth=4, dilation_growth=3,
                       quantizer=QuantizerConfig(num_codes=2048, dim=64, commitment=0.02, decay=0.99), preset=name)
        if name == "small":
            return cls(sample_rate=16000, hops=(8, 32, 128), stride=2, width=32, depth=2,
                       dilation_growth=3, quantizer=QuantizerConfig(num_codes=256, dim=32, commitment=0.02,
                                                                    decay=0.99), preset=name)
        if name == "debug":
            return cls(sample_rate=16000, hops=(4, 16), stride=4, width=8, depth=1, dilation_growth=3,
                       quantizer=QuantizerConfig(num_codes=16, dim=8), stft_ffts=(256, 128), preset=name)
        raise ValueError(f"unknown VQ-VAE preset '{name}'; choose from {PRESETS}")


def downsampling_steps(hop: int, stride: int) -> int:
    n = round(math.log(hop, stride)) if hop > 1 else 0
    if stride < 2 or stride % 2 or stride ** n != hop or n < 1:
        raise ValueError(f"VQ-VAE hop {hop} must be a power (>= 1) of an even stride, got stride {stride}")
    return n


def check_vqvae_config(cfg: VQVAEConfig) -> None:
    if not cfg.hops or list(cfg.hops) != sorted(set(cfg.hops)):
        raise ValueError(f"VQ-VAE hops must be strictly increasing, got {tuple(cfg.hops)}")
    for h in cfg.hops:
        downsampling_steps(h, cfg.stride)
    if cfg.width < 1 or cfg.depth < 0 or cfg.dilation_growth < 1:
        raise ValueError(f"VQ-VAE needs width >= 1, depth >= 0, dilation_growth >= 1; got {cfg.width}, "
                         f"{cfg.depth}, {cfg.dilation_growth}")
    if cfg.quantizer.num_codes > 65536:
        raise ValueError(f"VQ-VAE codes are stored as uint16: num_codes must be <= 65536, got {cfg.quantizer.num_codes}")


# ---- networks -------------------------------------------------------------------------------------
class ResBlock(nn.Module):
    """``x + conv1(relu(conv3_dilated(relu(x))))``, ``Tensor[B x C x T] -> Tensor[B x C x T]``."""

    def __init__(self, width: int, dilation: int) -> None:
        super().__init__()
        self.conv = nn.Conv1d(width, width, 3, padding=dilation, dilation=dilation)
        self.mix = nn.Conv1d(width, width, 1)
        self.dilation = dilation

    def forward(self, x: Tensor) -> Tensor:
        return x + self.mix(F.relu(self.conv(F.relu(x))))


def res_stack(width: int, depth: int, growth: int, reverse: bool = False) -> list[nn.Module]:
    dilations = [growth ** i for i in range(depth)]
    return [ResBlock(width, d) for d in (reversed(dilations) if reverse else dilations)]


class Encoder(nn.Module):
    """``Tensor[B x 1 x T] -> Tensor[B x D x T / hop]`` (``T`` a multiple of ``hop``)."""

    def __init__(self, cfg: VQVAEConfig, hop: int) -> None:
        super().__init__()
        s, n = cfg.stride, downsampling_steps(hop, cfg.stride)
        layers: list[nn.Module] = [nn.Conv1d(1, cfg.width, 3, padding=1)]
        for _ in range(n):
            layers += [nn.Conv1d(cfg.width, cfg.width, 2 * s, stride=s, padding=s // 2),
                       *res_stack(cfg.width, cfg.depth, cfg.dilation_growth)]
        layers += [nn.ReLU(), nn.Conv1d(cfg.width, cfg.quantizer.dim, 3, padding=1)]
        self.net = nn.Sequential(*layers)
        # receptive field in samples: (k - 1) * dilation * (input samples per step) summed over the convs
        rf, jump = 1 + 2, 1
        for _ in range(n):
            rf += (2 * s - 1) * jump
            jump *= s
            rf += sum(2 * cfg.dilation_growth ** i * jump for i in range(cfg.depth))
        self.receptive_field = rf + 2 * jump

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class Decoder(nn.Module):
    """``Tensor[B x D x T_l] -> Tensor[B x 1 x T_l * hop]``."""

    def __init__(self, cfg: VQVAEConfig, hop: int) -> None:
        super().__init__()
        s, n = cfg.stride, downsampling_steps(hop, cfg.stride)
        layers: list[nn.Module] = [nn.Conv1d(cfg.quantizer.dim, cfg.width, 3, padding=1)]
        for _ in range(n):
            layers += [*res_stack(cfg.width, cfg.depth, cfg.dilation_growth, reverse=True),
                       nn.ConvTranspose1d(cfg.width, cfg.width, 2 * s, stride=s, padding=s // 2)]
        layers += [nn.ReLU(), nn.Conv1d(cfg.width, 1, 3, padding=1)]
        self.net = nn.Sequential(*layers)
        # receptive field in codes (an upper bound): each conv's span in code units, + 1 per transposed conv
        rf, rate = 1 + 2, 1  # rate: samples of the current layer per code
        for _ in range(n):
            rf += sum(2 * cfg.dilation_growth ** i / rate for i in range(cfg.depth))
            rf += 1 + 2 / rate
            rate *= s
        self.receptive_field = math.ceil(rf + 2 / rate)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


@dataclass
class LevelOutput:
    """One level of :meth:`VQVAE.forward`."""
    x_hat: Tensor                          # Tensor[B x T], the level's reconstruction
    codes: Tensor                          # LongTensor[B x T_l]
    commit_loss: Tensor                    # scalar
    perplexity: Tensor
    usage: Tensor
    used: Tensor
    dead: Tensor


class VQVAE(nn.Module):
    """Jukebox-style hierarchical VQ-VAE; ``VQVAE(VQVAEConfig(...))``. See the module docstring."""

    config_class = VQVAEConfig

    def __init__(self, config: VQVAEConfig) -> None:
        super().__init__()
        check_vqvae_config(config)
        self.config = config
        self.encoders = nn.ModuleList(Encoder(config, h) for h in config.hops)
        self.quantizers = nn.ModuleList(VectorQuantizer(config.quantizer) for _ in config.hops)
        self.decoders = nn.ModuleList(Decoder(config, h) for h in config.hops)

    @property
    def levels(self) -> int:
        return len(self.config.hops)

    @property
    def hops(self) -> tuple[int, ...]:
        return tuple(self.config.hops)

    @property
    def max_hop(self) -> int:
        return max(self.config.hops)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def encoder_margin(self) -> int:
        """Context (samples, a multiple of the largest hop) that chunked encoding keeps on each side of a
        window: at least every level's encoder receptive field."""
        rf = max(e.receptive_field for e in self.encoders)
        return math.ceil(rf / self.max_hop) * self.max_hop

    def decoder_margin(self, level: int) -> int:
        """Context (codes) that chunked decoding keeps on each side of a window at ``level``."""
        return self.decoders[level].receptive_field

    def _pad(self, x: Tensor) -> tuple[Tensor, int]:
        """``x : [B x T]`` -> ``[B x 1 x T']`` zero-padded at the end to a multiple of the largest hop."""
        if x.ndim == 1:
            x = x.unsqueeze(0)
        if x.ndim != 2:
            raise ValueError(f"VQ-VAE input must be a waveform [T] or [B, T], got shape {tuple(x.shape)}")
        T = x.shape[-1]
        pad = (-T) % self.max_hop
        return F.pad(x.float(), (0, pad)).unsqueeze(1), T

    def forward(self, x: Tensor) -> list[LevelOutput]:
        """``x : Tensor[B x T]`` (T a multiple of the largest hop) -> one :class:`LevelOutput` per level."""
        xp, T = self._pad(x)
        outs = []
        for enc, vq, dec in zip(self.encoders, self.quantizers, self.decoders):
            q = vq(enc(xp))                                                 # z_q (B, D, T_l)
            x_hat = dec(q.z_q).squeeze(1)[:, :T]                            # (B, T)
            outs.append(LevelOutput(x_hat, q.codes, q.commit_loss, q.perplexity, q.usage, q.used, q.dead))
        return outs

    def loss(self, batch) -> tuple[Tensor, dict[str, Tensor]]:
        """Sum over levels of ``mse_weight * MSE + stft_weight * MR-STFT + commitment``; metrics per level
        (``l0_mse``, ``l0_stft``, ``l0_commit``, ``l0_perplexity``, ``l0_usage``, ``l0_used``, ``l0_dead``)."""
        x = batch[0] if isinstance(batch, (list, tuple)) else batch["x"] if isinstance(batch, dict) else batch
        x = x.float()
        cfg, total, metrics = self.config, 0.0, {}
        for l, o in enumerate(self(x)):
            mse = F.mse_loss(o.x_hat.float(), x)
            stft = mr_stft_distance(x, o.x_hat.float(), ffts=cfg.stft_ffts)["total"].mean()
            total = total + cfg.mse_weight * mse + cfg.stft_weight * stft + o.commit_loss
            metrics.update({f"l{l}_mse": mse.detach(), f"l{l}_stft": stft.detach(),
                            f"l{l}_commit": o.commit_loss.detach(), f"l{l}_perplexity": o.perplexity,
                            f"l{l}_usage": o.usage, f"l{l}_used": o.used, f"l{l}_dead": o.dead})
        return total, metrics

    @torch.no_grad()
    def encode(self, x: Tensor, levels: Iterable[int] | None = None) -> list[Tensor]:
        """``x : Tensor[B x T]`` (or ``[T]``) -> ``[LongTensor[B x T_l]]``, ``T_l = ceil(T / max_hop) *
        max_hop / hop_l`` (the input is zero-padded to a multiple of the largest hop), one per level
        (``levels`` picks some; the list then holds only those)."""
        xp, _ = self._pad(x.to(self.device))
        levels = range(self.levels) if levels is None else levels
        return [self.quantizers[l].encode(self.encoders[l](xp)) for l in levels]

    @torch.no_grad()
    def decode(self, codes: Tensor, level: int) -> Tensor:
        """``codes : LongTensor[B x T_l]`` (or ``[T_l]``) at ``level`` -> waveform ``Tensor[B x T_l * hop_l]``."""
        if not 0 <= level < self.levels:
            raise ValueError(f"level {level} out of range: this VQ-VAE has levels 0..{self.levels - 1}")
        squeeze = codes.ndim == 1
        codes = codes.unsqueeze(0) if squeeze else codes
        K = self.config.quantizer.num_codes
        if codes.numel() and (int(codes.min()) < 0 or int(codes.max()) >= K):
            raise ValueError(f"codes must lie in [0, {K}), got values in [{int(codes.min())}, {int(codes.max())}]")
        y = self.decoders[level](self.quantizers[level].embed(codes.long().to(self.device))).squeeze(1)
        return y[0] if squeeze else y

    def health(self) -> dict[str, float]:
        """Every level's :class:`~arsound.core.quantize.CodebookHealth` from the running usage buffers."""
        out = {}
        for l, vq in enumerate(self.quantizers):
            out.update(vq.health().as_dict(f"l{l}_"))
        return out

    def reset_usage(self) -> None:
        for vq in self.quantizers:
            vq.reset_usage()


__all__ = ["PRESETS", "VQVAEConfig", "VQVAE", "LevelOutput", "Encoder", "Decoder", "ResBlock"]
