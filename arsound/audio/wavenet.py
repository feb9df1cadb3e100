"""WaveNet: A Generative Model for Raw Audio (van den Oord et al., 2016, arXiv:1609.03499).

Stacks of dilated causal convolutions with gated units, residual and skip connections predict every
sample from the ones before it::

    x[B, T] -> input embedding / 1x1 -> shift right by one -> L x ResidualLayer -> sum of skips
            -> ReLU, 1x1, ReLU, 1x1 -> params[B, T, P]

    ResidualLayer:  h --CausalConv1d(k, d)--> z (+ cond) -> tanh(z_a) * sigmoid(z_b) = a
                    skip = 1x1(a);  h' = (h + 1x1(a)) * sqrt(0.5)     (the last layer has no h')

Output heads (``core.distributions``): ``"mulaw"`` 256-way categorical over mu-law indices (the paper),
``"mol"`` discretized logistic mixture over ``2^bits`` linear bins (PixelCNN++, Salimans et al. 2017;
Parallel WaveNet, van den Oord et al. 2018), ``"gaussian"`` / ``"gmm"`` on the float waveform (ClariNet,
Ping et al. 2019). ``model.encode(wav)`` / ``model.decode(x)`` convert between waveforms in [-1, 1] and
the model's ``x`` (class indices for the discrete heads, the waveform itself otherwise). With
``preemphasis = a > 0`` the model's signal is ``x[t] - a x[t-1]`` and ``decode`` de-emphasizes (LPCNet's noise
shaping): the white noise of sampling and of 8-bit mu-law lands under the signal's own low-pass tilt.

Linear prediction (``lpc_order = P > 0``; LP-WaveNet, Hwang et al. 2018; LPCNet, Valin & Skoglund 2019): the
all-pole filter of the mel (``lpc.py``, per sample ``a[t]``) carries the spectral envelope and the network
models only the excitation. ``x`` are the mu-law indices of ``e[t] = s[t] - p[t]``, ``p[t] = sum_k a_k[t]
s[t-k]``; the network's input at ``t`` adds ``[p[t], s[t-1]]`` through a 1x1 conv to the embedding of
``x[t-1]``; the signal is ``s[t] = p[t] + mu_law_decode(x[t])`` (the synthesis filter, run inside the cached
generator at O(P) per sample). Training feeds the true waveform as ``s`` (:meth:`WaveNet.targets`); without it the
forward rebuilds ``s`` from ``x`` by the synthesis filter, which is what generation does.

Conditioning (paper, section 2.5): global ``g: LongTensor[B]`` (speaker / instrument id) through an
embedding, local ``c: Tensor[B, C, F]`` (e.g. 80-band log-mel frames) through a learned upsampling network
(per scale: repeat every frame ``s`` times, then a learned smoothing convolution; the scales multiply to
the hop, so sample ``n`` sees frame ``n // hop``). Both are projected by 1x1 convolutions into every gate.
A vocoder's local conditioning is its input's normalized log-mel: the config holds that front end
(:meth:`WaveNet.mel_spectrogram`, :meth:`WaveNet.mel_condition`) and the label names of ``g``.

Generation: :meth:`WaveNet.generate` runs the shared sampling engine (``core.model.run_steps``) with the
cached O(L)-per-sample step of ``wavenet_fast.py`` (Fast WaveNet, Paine et al. 2016, arXiv:1611.09482) inside
``with model.streaming():``; ``method="naive"`` recomputes the whole receptive field for every sample (the
reference). Receptive field (in samples of context): ``(k - 1) * sum(dilations) + 1``, see
:func:`receptive_field`.

Letters: B batch, T samples, F frames, C conditioning channels, R residual, G gate (two halves of
H = G / 2), S skip, L layers, P distribution parameters, U uniforms per sample.
"""
from __future__ import annotations

import contextlib
import json
import math
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.distributions import (DiscretizedLogisticMixture, Gaussian, GaussianMixture, MuLaw, bin_centres,
                                  mu_law_decode, mu_law_encode, nearest_bin)
from ..core.layers import CausalConv1d, gated
from ..core.model import ARModel, Canvas, eval_mode, run_steps
from ..core.sampling import check_temperature, get_uniform, time_major_uniforms
from ..core.streaming import StreamingModule
from .features import MEL_SCALE, MEL_SHIFT, MelFrontEnd, deemphasis, preemphasis

SQRT_HALF = math.sqrt(0.5)
HEADS = ("mulaw", "mol", "gaussian", "gmm")


def wavenet_dilations(layers: int, cycles: int) -> list[int]:
    """``cycles`` repetitions of ``1, 2, 4, ..., 2^(layers / cycles - 1)``."""
    if layers < 1 or cycles < 1 or layers % cycles:
        raise ValueError(f"layers ({layers}) must be a positive multiple of cycles ({cycles})")
    return [2 ** i for i in range(layers // cycles)] * cycles


def receptive_field(layers: int, cycles: int, kernel_size: int = 2) -> int:
    """Samples one output sees: ``(k - 1) * sum(dilations) + 1``; e.g. 30 layers, 3 cycles: 3070 (k=2),
    6139 (k=3). A WaveNet predicts sample ``t`` from samples ``t - rf .. t - 1``."""
    if kernel_size < 2:
        raise ValueError(f"kernel_size must be >= 2, got {kernel_size}")
    return (kernel_size - 1) * sum(wavenet_dilations(layers, cycles)) + 1


@dataclass
class WaveNetConfig:
    # output distribution
    head: str = "mulaw"                       # "mulaw" | "mol" | "gaussian" | "gmm"
    bits: int = 8                             # "mulaw": 2^bits classes (mu = 2^bits - 1); "mol": 8 or 16
    num_mixtures: int = 10                    # "mol" / "gmm"
    log_scale_min: float | None = None        # None: -7 (8-bit mol), -16 (16-bit mol), -9 (gaussian, gmm)
    # network
    layers: int = 20
    cycles: int = 2
    kernel_size: int = 2
    residual_channels: int = 64
    gate_channels: int = 128                  # dilated conv outputs: tanh half + sigmoid half
    skip_channels: int = 128
    dropout: float = 0.0
    weight_norm: bool = False                 # folded into plain weights for cached generation
    # local conditioning c[B, cond_channels, frames]; 0 = none. A vocoder's c is the normalized log-mel of
    # its input: features.MelSpectrogram(sample_rate, n_fft, hop_length, n_mels=cond_channels, fmin, fmax)
    cond_channels: int = 0
    hop_length: int = 256                     # samples per conditioning frame
    upsample_scales: tuple[int, ...] = (4, 4, 4, 4)  # must multiply to hop_length
    n_fft: int = 1024                         # vocoder front end: STFT size (and Hann window)
    fmin: float = 0.0                         # vocoder front end: mel band edges in Hz
    fmax: float | None = 8000.0
    # global conditioning g[B] in [0, num_speakers); 0 = none
    num_speakers: int = 0
    speaker_dim: int = 16
    speaker_names: tuple[str, ...] = ()       # what the ids are (speakers, instruments), if known
    # data and sampling
    preemphasis: float = 0.0                  # model y[t] = x[t] - a x[t-1] (encode), de-emphasize in decode
    lpc_order: int = 0                        # > 0: LP WaveNet (mu-law excitation, all-pole filter from the mel)
    sample_rate: int = 16000
    length: int = 16000                       # samples drawn by sample() without local conditioning
    temperature: float = 1.0                  # default sampling temperature (a vocoder recipe picks it on valid clips)
    postfilter: int = 0                       # a vocoder's default band post-filter passes (vocoder.postfilter_passes)


class ResidualLayer(nn.Module):
    """``h[B, R, T], cond[B, G, T or 1] -> (h'[B, R, T] or None, skip[B, S, T])``."""

    def __init__(self, R: int, G: int, S: int, kernel_size: int, dilation: int, dropout: float,
                 last: bool) -> None:
        super().__init__()
        self.dropout = dropout
        self.conv = CausalConv1d(R, G, kernel_size, dilation)
        self.skip = nn.Conv1d(G // 2, S, 1)
        self.res = None if last else nn.Conv1d(G // 2, R, 1)  # the last layer's h' would be unused

    def forward(self, h: Tensor, cond: Tensor | None = None) -> tuple[Tensor | None, Tensor]:
        z = self.conv(F.dropout(h, self.dropout, self.training))  # (B, G, T)
        if cond is not None:
            z = z + cond
        a = gated(z)                                               # (B, H, T)
        h = None if self.res is None else (h + self.res(a)) * SQRT_HALF
        return h, self.skip(a)


class ConditionUpsampler(nn.Module):
    """``c[B, C, F] -> Tensor[B, C, F * prod(scales)]``: per scale ``s`` every frame is repeated ``s``
    times and smoothed by a learned depthwise convolution of width ``2s + 1`` (initialised to a box
    average), so sample ``n`` is conditioned on frame ``n // hop`` and its neighbours."""

    def __init__(self, channels: int, scales: Sequence[int]) -> None:
        super().__init__()
        self.scales = tuple(int(s) for s in scales)
        self.convs = nn.ModuleList(nn.Conv1d(channels, channels, 2 * s + 1, padding=s, groups=channels, bias=False)
                                   for s in self.scales)
        for conv, s in zip(self.convs, self.scales):
            nn.init.constant_(conv.weight, 1.0 / (2 * s + 1))

    @property
    def scale(self) -> int:
        return math.prod(self.scales)

    def forward(self, c: Tensor) -> Tensor:
        for s, conv in zip(self.scales, self.convs):
            c = conv(c.repeat_interleave(s, dim=-1))
        return c


class WaveNet(MelFrontEnd, ARModel, StreamingModule):
    """WaveNet on waveforms ``(B, T)``; see the module docstring.

    forward(x[B, T], c=None, g=None) -> params[B, T, P]; x are class indices (``"mulaw"``, ``"mol"``) or
    floats in [-1, 1] (``"gaussian"``, ``"gmm"``); use :meth:`encode` / :meth:`decode` for waveforms.
    Inside ``with model.streaming():`` each call takes the next chunk ``x[B, t]`` and returns the same
    params as the full forward at those times, from the cached generator (``wavenet_fast.py``; inference
    only, no gradients). ``c`` (for the whole stream) and ``g`` are read on the first call.

    Letters as in the module docstring; ``presets`` maps a name to config overrides.
    """

    config_class = WaveNetConfig
    sample_unit = "sample"
    presets = {
        "debug": dict(layers=4, cycles=2, residual_channels=8, gate_channels=16, skip_channels=16, length=800),
        # nv-wavenet "medium": 20 layers, R = 64, S = 128, 256-way mu-law, max dilation 512
        "medium": dict(head="mulaw", layers=20, cycles=2, kernel_size=2, residual_channels=64,
                       gate_channels=128, skip_channels=128),
        # r9y9/wavenet_vocoder mixture of logistics, 16-bit
        "mol24": dict(head="mol", bits=16, num_mixtures=10, layers=24, cycles=4, kernel_size=3,
                      residual_channels=128, gate_channels=256, skip_channels=128),
    }

    def __init__(self, config: WaveNetConfig) -> None:
        super().__init__(config)
        cfg = config
        self.dilations = wavenet_dilations(cfg.layers, cfg.cycles)
        if cfg.kernel_size < 2:
            raise ValueError(f"kernel_size must be >= 2, got {cfg.kernel_size}")
        if cfg.gate_channels % 2:
            raise ValueError(f"gate_channels must be even (tanh and sigmoid halves), got {cfg.gate_channels}")
        self.head = self._make_head(cfg)
        R, G, S, L = cfg.residual_channels, cfg.gate_channels, cfg.skip_channels, cfg.layers
        self.lp_input = None
        if cfg.lpc_order:
            if cfg.lpc_order < 0 or cfg.head != "mulaw" or cfg.cond_channels < 1 or cfg.preemphasis:
                raise ValueError(f"lpc_order {cfg.lpc_order}: linear prediction needs lpc_order > 0, the 'mulaw' head, "
                                 f"mel conditioning (cond_channels > 0) and no preemphasis; got head '{cfg.head}', "
                                 f"cond_channels {cfg.cond_channels}, preemphasis {cfg.preemphasis}")
            self.lp_input = nn.Conv1d(2, R, 1)                      # [p[t], s[t-1]] -> the residual input
        # input: an embedding of the class index (mu-law) or a 1x1 conv of the sample value in [-1, 1]
        if cfg.head == "mulaw":
            self.embed = nn.Embedding(2 ** cfg.bits, R)
        else:
            self.input_conv = nn.Conv1d(1, R, 1)
        self.layers = nn.ModuleList(ResidualLayer(R, G, S, cfg.kernel_size, d, cfg.dropout, last=i == L - 1)
                                    for i, d in enumerate(self.dilations))
        self.out1 = nn.Conv1d(S, S, 1)
        self.out2 = nn.Conv1d(S, self.head.num_params, 1)
        # conditioning: one 1x1 projection into all L gates at once, (B, C, T) -> (B, L * G, T)
        self.upsample = self.cond_proj = None
        if cfg.cond_channels > 0:
            self.upsample = ConditionUpsampler(cfg.cond_channels, cfg.upsample_scales)
            if self.upsample.scale != cfg.hop_length:
                raise ValueError(f"upsample_scales {tuple(cfg.upsample_scales)} multiply to {self.upsample.scale}, "
                                 f"but hop_length is {cfg.hop_length}; choose scales whose product is the hop")
            self.cond_proj = nn.Conv1d(cfg.cond_channels, L * G, 1, bias=False)
        self.speaker_embed = self.speaker_proj = None
        if cfg.num_speakers > 0:
            self.speaker_embed = nn.Embedding(cfg.num_speakers, cfg.speaker_dim)
            self.speaker_proj = nn.Linear(cfg.speaker_dim, L * G, bias=False)
        if cfg.weight_norm:
            wn = nn.utils.parametrizations.weight_norm
            for m in self.modules():
                if isinstance(m, CausalConv1d) or (isinstance(m, nn.Conv1d) and m.groups == 1):
                    wn(m)

    @staticmethod
    def _make_head(cfg: WaveNetConfig):
        if cfg.head not in HEADS:
            raise ValueError(f"unknown head '{cfg.head}'; choose from {HEADS}")
        if cfg.head == "mulaw":
            return MuLaw(2 ** cfg.bits - 1)
        if cfg.head == "mol":
            if cfg.bits not in (8, 16):
                raise ValueError(f"'mol' head needs bits 8 or 16, got {cfg.bits}")
            lsm = cfg.log_scale_min if cfg.log_scale_min is not None else (-7.0 if cfg.bits == 8 else -16.0)
            return DiscretizedLogisticMixture(2 ** cfg.bits, cfg.num_mixtures, lsm)
        lsm = cfg.log_scale_min if cfg.log_scale_min is not None else -9.0
        bounds = (-1.0, 1.0)  # draws clipped to the waveform's range
        return Gaussian(lsm, bounds) if cfg.head == "gaussian" else GaussianMixture(cfg.num_mixtures, lsm, bounds)

    # ---- shapes and conversions -------------------------------------------------------------------
    @property
    def event_shape(self) -> tuple[int, ...]:
        return (self.config.length,)

    @property
    def receptive_field(self) -> int:
        """Params at ``t`` depend on ``x[t - receptive_field : t]`` (and on the conditioning)."""
        return (self.config.kernel_size - 1) * sum(self.dilations) + 1

    def encode(self, wav: Tensor) -> Tensor:
        """Waveform in [-1, 1] ``(B, T)`` -> the model's ``x``: mu-law indices (``"mulaw"``), linear bins
        ``round((wav + 1) / 2 * (K - 1))`` (``"mol"``) or the waveform itself. Out of range: ValueError.
        With ``config.preemphasis = a`` the model's signal is ``features.preemphasis(wav, a)`` clipped to
        [-1, 1], whose first sample assumes ``wav[-1] = 0`` (pass one sample of context and drop it)."""
        if wav.is_floating_point() and wav.numel() and (wav.abs().max() > 1):
            raise ValueError(f"waveform must lie in [-1, 1], got max |x| = {wav.abs().max().item():.4f}; "
                             "normalize it first (arsound.audio.io.normalize_peak)")
        if self.config.preemphasis:
            wav = preemphasis(wav.float(), self.config.preemphasis).clamp_(-1, 1)
        if self.config.head == "mulaw":
            return mu_law_encode(wav, 2 ** self.config.bits - 1)
        if self.config.head == "mol":
            return nearest_bin(wav.double(), 2 ** self.config.bits)
        return wav.to(self.dtype)

    def decode(self, x: Tensor, emphasis: bool = True) -> Tensor:
        """The model's ``x`` -> waveform in [-1, 1] (float32), de-emphasized along the last dim if the model
        is pre-emphasized (``emphasis=False``: not; a caller decoding a stream in pieces carries the
        de-emphasis state itself, ``features.deemphasis``)."""
        if self.is_lp:
            raise ValueError("an LP WaveNet's x is the excitation: its waveform is synthesize(x, c), or "
                             "stream_waveform(...) while generating")
        if self.config.head == "mulaw":
            y = mu_law_decode(x, 2 ** self.config.bits - 1).float()
        elif self.config.head == "mol":
            y = bin_centres(x, 2 ** self.config.bits, torch.float64).float()
        else:
            y = x.float().clamp(-1, 1)
        if emphasis and self.config.preemphasis:
            y = deemphasis(y, self.config.preemphasis).clamp_(-1, 1)
        return y

    def decode_stream(self, pieces: Iterator[Tensor]) -> Iterator[Tensor]:
        """Waveform pieces ``[B, t]`` (CPU) of :meth:`stream`'s pieces, the de-emphasis carried from piece to
        piece (so they equal :meth:`decode` of the whole)."""
        state = None
        for x in pieces:
            y = self.decode(x, emphasis=False).cpu()
            if self.config.preemphasis:
                y, state = deemphasis(y, self.config.preemphasis, state, return_state=True)
                y = y.clamp_(-1, 1)
            yield y

    # ---- linear prediction ------------------------------------------------------------------------
    @property
    def is_lp(self) -> bool:
        """An LP WaveNet: ``x`` is the excitation, the mel's all-pole filter makes the signal."""
        return self.config.lpc_order > 0

    def lpc(self, c: Tensor, T: int, start: int = 0) -> Tensor:
        """Per-sample predictors ``a[B, T, P]`` (model dtype) of samples ``start .. start + T`` from the normalized
        log-mel ``c[B, C, F]`` (frame ``f`` centred on sample ``f * hop``; :func:`lpc.lpc_per_sample`)."""
        from .lpc import frame_autocorrelation, levinson, per_sample

        cfg = self.config
        log_mel = c.double() * MEL_SCALE - MEL_SHIFT                 # undo normalize_mel
        r = frame_autocorrelation(log_mel, sr=cfg.sample_rate, n_fft=cfg.n_fft, order=cfg.lpc_order, fmin=cfg.fmin,
                                  fmax=cfg.fmax, power=1.0, log=True)
        return levinson(per_sample(r, cfg.hop_length, T, start))[0].to(self.dtype)

    def targets(self, wav: Tensor, c: Tensor) -> dict[str, Tensor]:
        """Teacher-forcing targets of a crop: ``wav[..., T + 1]`` (one sample of context first) and its conditioning
        ``c[..., C, F]`` -> ``{"x": [..., T]}``, and for an LP model also ``{"s": [..., T]}`` (the true signal the
        network sees; the excitation is taken with zero history before the crop, as generation starts)."""
        if not self.is_lp:
            return {"x": self.encode(wav)[..., 1:]}
        s = wav[..., 1:].to(self.dtype)
        a = self.lpc(c if c.ndim == 3 else c[None], s.shape[-1]).reshape(*s.shape, -1)
        from .lpc import analysis

        return {"x": self.encode(analysis(s, a).clamp(-1, 1)), "s": s}

    def synthesize(self, x: Tensor, c: Tensor | None = None, a: Tensor | None = None) -> Tensor:
        """LP model: excitation indices ``x[B, T]`` -> the signal ``s[B, T]`` (model dtype) through the synthesis
        filter of the predictors ``a[B, T, P]`` (default ``lpc(c)``), from zero history (recursive: O(T P))."""
        from .lpc import synthesis

        e = mu_law_decode(x, 2 ** self.config.bits - 1).to(self.dtype)
        return synthesis(e, self.lpc(c, x.shape[-1]) if a is None else a)

    def lp_features(self, s: Tensor, a: Tensor) -> Tensor:
        """``[p[t], s[t-1]]`` of every sample: ``Tensor[B, 2, T]`` from ``s[B, T]`` and ``a[B, T, P]``."""
        from .lpc import predict

        return torch.stack([predict(s, a), F.pad(s, (1, -1))], 1)

    def silence(self) -> Tensor:
        """``x`` of the value 0.0 (padding of generated items past their length)."""
        return self.encode(torch.zeros(1))[0]

    def input_value(self, x: Tensor) -> Tensor:
        """``x`` -> the scalar fed to the input 1x1 conv (heads other than ``"mulaw"``): [-1, 1], model dtype."""
        if self.config.head == "mol":
            return bin_centres(x, 2 ** self.config.bits, self.dtype)
        return x.to(self.dtype)

    # ---- the vocoder's front end: features.MelFrontEnd (is_vocoder, mel_spectrogram, mel_condition, speaker_index)
    @classmethod
    def upgrade_config(cls, config: dict, folder) -> dict:
        """Vocoders saved by arsound 0.1 kept their front end, label names and chosen temperature in a
        ``vocoder.json`` beside ``config.json``; read them into the config (``core.checkpoint.load``)."""
        legacy = Path(folder) / "vocoder.json"
        if not legacy.is_file() or "n_fft" in config:
            return config
        settings = json.loads(legacy.read_text())
        mel = settings["mel"]
        if mel["hop"] != config.get("hop_length", 256) or mel["n_mels"] != config.get("cond_channels", 0):
            raise ValueError(f"{legacy}: hop {mel['hop']} / {mel['n_mels']} mels do not fit config.json")
        return {**config, "n_fft": mel["n_fft"], "fmin": mel["fmin"], "fmax": mel["fmax"],
                "speaker_names": list(settings.get("classes", [])), "temperature": settings.get("temperature", 1.0)}

    # ---- conditioning -----------------------------------------------------------------------------
    def upsample_cond(self, c: Tensor, T: int) -> Tensor:
        """``c[B, C, F] -> Tensor[B, C, T]`` (needs ``F * hop >= T``; extra samples are cut)."""
        cfg = self.config
        self.check_frames(c)
        if c.shape[-1] * cfg.hop_length < T:
            raise ValueError(f"{c.shape[-1]} conditioning frames x hop {cfg.hop_length} = "
                             f"{c.shape[-1] * cfg.hop_length} samples, fewer than the {T} asked for")
        return self.upsample(c.to(self.dtype))[..., :T]

    def global_cond(self, g: Tensor) -> Tensor:
        """``g: LongTensor[B] -> Tensor[B, L * G]``, the speaker term of every gate."""
        n = self.config.num_speakers
        if g.ndim != 1 or g.is_floating_point():
            raise ValueError(f"global conditioning must be g: LongTensor[B], got {g.dtype} {tuple(g.shape)}")
        if g.numel() and (g.min() < 0 or g.max() >= n):
            raise ValueError(f"speaker ids must lie in [0, {n}), got {g.min().item()}..{g.max().item()}")
        return self.speaker_proj(self.speaker_embed(g))

    def check_cond(self, c: Tensor | None, g: Tensor | None, local: bool | None = None) -> None:
        """The conditioning this model needs, no more (``local``: whether ``c`` is given, when it is not a tensor)."""
        cfg = self.config
        local = c is not None if local is None else local
        if (not local) != (self.cond_proj is None):
            raise ValueError(f"this WaveNet {'needs' if not local else 'takes no'} local conditioning "
                             f"(cond_channels={cfg.cond_channels}): c[B, C, frames], CLI --cond FILE.npy")
        if (g is None) != (self.speaker_embed is None):
            raise ValueError(f"this WaveNet {'needs' if g is None else 'takes no'} global conditioning "
                             f"(num_speakers={cfg.num_speakers}): g = LongTensor[B] of ids, CLI --speaker ID")

    def project_cond(self, c_up: Tensor | None, g: Tensor | None) -> Tensor | None:
        """Gate conditioning for all layers: ``Tensor[B, L * G, T]`` (local, plus global) or
        ``[B, L * G, 1]`` (global only) or None. ``c_up`` is :meth:`upsample_cond`'s output."""
        out = None if c_up is None else self.cond_proj(c_up)
        if g is not None:
            gc = self.global_cond(g).unsqueeze(-1)
            out = gc if out is None else out + gc
        return out

    # ---- network ----------------------------------------------------------------------------------
    def network(self, x: Tensor, cond: Tensor | None, lp: Tensor | None = None) -> Tensor:
        """``x[B, T]``, projected conditioning ``[B, L * G, T or 1]`` (and for an LP model ``lp[B, 2, T]``,
        :meth:`lp_features`) -> params ``[B, T, P]``."""
        if self.config.head == "mulaw":
            h = self.embed(x).transpose(1, 2)                       # (B, R, T)
        else:
            h = self.input_conv(self.input_value(x).unsqueeze(1))   # (B, R, T)
        h = F.pad(h, (1, -1))                                       # shift: t sees x[< t]
        if self.lp_input is not None:
            h = h + self.lp_input(lp)                               # p[t], s[t-1]: known before x[t]
        G = self.config.gate_channels
        skips = 0
        for i, layer in enumerate(self.layers):
            h, s = layer(h, None if cond is None else cond[:, i * G:(i + 1) * G])
            skips = skips + s
        skips = skips * math.sqrt(1.0 / len(self.layers))
        params = self.out2(F.relu(self.out1(F.relu(skips))))     # (B, P, T)
        return params.transpose(1, 2)

    def forward(self, x: Tensor, c: Tensor | None = None, g: Tensor | None = None, s: Tensor | None = None) -> Tensor:
        """Teacher-forced params ``[B, T, P]``; inside ``streaming()`` the next chunk's (see class doc). ``s``: an
        LP model's signal ``[B, T]`` (default: synthesized from ``x``, as generation makes it)."""
        if self.is_streaming:
            return self._stream_forward(x, c, g)
        self.check_cond(c, g)
        c_up = None if c is None else self.upsample_cond(c, x.shape[1])
        lp = None
        if self.is_lp:
            a = self.lpc(c, x.shape[1])
            s = self.synthesize(x, a=a) if s is None else s.to(self.dtype)
            lp = self.lp_features(s, a)
        return self.network(x, self.project_cond(c_up, g), lp)

    def _stream_forward(self, x: Tensor, c: Tensor | None, g: Tensor | None) -> Tensor:
        from .wavenet_fast import CachedWaveNet, FrameCond, step_threads

        with torch.inference_mode(), step_threads(x.device, x.shape[0]):
            eng = self.state.get("engine")
            if eng is None:  # first chunk: the conditioning of the whole stream, upsampled as steps reach it
                self.check_cond(c, g)
                frames = None if c is None else FrameCond(self, c)
                eng = self.state["engine"] = CachedWaveNet(self, x.shape[0], frames, g)
                self.state["prev"] = None
            out = []
            for t in range(x.shape[1]):
                out.append(eng.step(self.state["prev"]).clone())
                self.state["prev"] = x[:, t]
            out = torch.stack(out, 1)                               # (B, t, P)
        return out.clone()  # a normal tensor again (inference tensors refuse in-place use outside)

    # ---- generation -------------------------------------------------------------------------------
    def _lengths(self, n, c: Tensor | None, g: Tensor | None, length: int | None) -> Tensor:
        if n is not None and not isinstance(n, int):
            lengths = torch.as_tensor(list(n) if not isinstance(n, Tensor) else n, dtype=torch.long).flatten().cpu()
        else:
            B = n if n is not None else (c.shape[0] if c is not None else g.shape[0] if g is not None else 1)
            T = length if length is not None else (
                c.shape[-1] * self.config.hop_length if c is not None else self.config.length)
            lengths = torch.full((B,), int(T), dtype=torch.long)
        if lengths.numel() == 0 or lengths.min() < 1:
            raise ValueError(f"need at least one stream and lengths >= 1, got {lengths.tolist()}")
        for name, v in (("c", c), ("g", g)):
            if v is not None and v.shape[0] != lengths.numel():
                raise ValueError(f"{name} has batch {v.shape[0]} but {lengths.numel()} streams were asked for")
        return lengths

    @torch.no_grad()
    def generate(self, n: int | Sequence[int] | Tensor | None = None, c: Tensor | None = None,
                 g: Tensor | None = None, *, length: int | None = None, temperature: float = 1.0,
                 greedy: bool = False, generator: torch.Generator | None = None, uniforms: Tensor | None = None,
                 prompt: Tensor | None = None, method: str = "auto", precision: str = "fp32",
                 progress: bool = False) -> Tensor:
        """Generate ``x[B, T_max]`` (use :meth:`decode` for waveforms; :meth:`stream` for any length).

        n: number of streams (each ``length`` long, else ``c``'s frames x hop, else ``config.length``),
            or per-stream lengths ``[l_1, ..., l_B]``; items past their length hold :meth:`silence`.
        c: ``Tensor[B, C, F]`` local conditioning; g: ``LongTensor[B]`` speaker ids.
        temperature, greedy: as the head's ``sample`` / ``mode``.
        generator / uniforms: randomness, drawn time-major (``T x B x U``; on the CPU generator a run in
            pieces draws the same values); pre-drawn ``uniforms[B, T_max, U]`` make two runs (or the naive
            and cached paths) draw identical samples.
        prompt: ``x[B or 1, T_p]``, ``T_p <= T_max``; entries ``>= 0`` (discrete) or not NaN are kept.
        method: ``"cached"`` (O(L) per sample, per-layer ring buffers, :meth:`stream`'s pieces joined),
            ``"native"`` (the same step fused in C, ``wavenet_step.c``), ``"graph"`` (the step without host
            synchronisation, one CUDA graph per sample on CUDA, ``wavenet_graph.py``), ``"auto"`` (on CUDA the
            fused Triton kernel where it covers the call, :meth:`triton_covers`, else the graph where it covers
            the call; on the CPU native where it covers the call, see :meth:`stream`; else cached), ``"naive"``
            (recomputes the receptive field for every sample;
            the reference) or
            ``"triton"`` (one fused kernel per block of steps, ``wavenet_triton.py``; mu-law head, no prompt;
            CUDA, or Triton's interpreter on the CPU for testing).
        precision: the native step's weights, ``"fp32"`` or ``"bf16"`` (see :meth:`stream`).
        """
        if method not in ("auto", "cached", "native", "graph", "naive", "triton"):
            raise ValueError(f"unknown method '{method}'; choose auto, cached, native, graph, naive or triton")
        if method == "auto" and precision == "fp32" and self.triton_covers(prompt, self.device):
            method = "triton"
        if method in ("auto", "cached", "native", "graph"):
            return torch.cat(list(self.stream(n, c, g, length=length, temperature=temperature, greedy=greedy,
                                              generator=generator, uniforms=uniforms, prompt=prompt,
                                              progress=progress, method=method, precision=precision)), dim=1)
        if precision != "fp32":
            raise ValueError(f"precision='{precision}' is the native step's; use method='native' or 'auto'")
        if method == "triton":
            from . import wavenet_triton

            if not wavenet_triton.available():
                raise ValueError("method='triton' needs the triton package (pip install triton)")
            if not self.triton_covers(prompt):
                raise ValueError("method='triton' covers the 'mulaw' head without a prompt or linear prediction; "
                                 "use method='cached'")
        B, lengths, c, g, uniforms, prompt, order = self._prepare(n, c, g, length, temperature, greedy, uniforms,
                                                                  prompt)
        T = int(lengths.max())
        if uniforms is None and not greedy:
            uniforms = time_major_uniforms(T, B, self.head.num_uniforms, generator=generator,
                                           device=self.device)[order]
        c_up = None if c is None else self.upsample_cond(c, T)
        if method == "triton":
            from .wavenet_triton import run_triton

            with eval_mode(self):
                x = run_triton(self, lengths, c_up, g, uniforms, greedy, temperature, progress)
        else:
            canvas = Canvas(self, B, prompt, None, temperature, greedy, uniforms, shape=(T,), order=torch.arange(T))
            a = self.lpc(c, T) if self.is_lp else None
            x = run_steps(self, canvas, self.naive_steps(canvas, c_up=c_up, g=g, a=a), progress=progress)
        x = self._pad_silence(x, lengths, 0)
        return torch.empty_like(x).index_copy_(0, order, x)  # back to the caller's order

    def triton_covers(self, prompt: Tensor | None = None, device: torch.device | str | None = None) -> bool:
        """Whether the fused Triton generator runs this call: a mu-law head without linear prediction or a prompt
        (and, with ``device``, on CUDA with triton installed: where ``method="auto"`` takes it in :meth:`generate`;
        :meth:`stream`'s pieces stay on the cached step)."""
        ok = self.config.head == "mulaw" and prompt is None and not self.is_lp
        if device is not None:
            from . import wavenet_triton

            ok = ok and torch.device(device).type == "cuda" and wavenet_triton.available()
        return ok

    def stream_waveform(self, *args, **kw) -> Iterator[Tensor]:
        """:meth:`stream`'s pieces as waveform pieces ``[B, t]`` (CPU, float32): de-emphasized
        (:meth:`decode_stream`), or for an LP model the synthesis filter's output ``p + e``, taken from the
        generator's loop."""
        if not self.is_lp:
            yield from self.decode_stream(self.stream(*args, **kw))
            return
        yield from self.stream(*args, waveform=True, **kw)

    @torch.no_grad()
    def stream(self, n: int | Sequence[int] | Tensor | None = None, c=None, g: Tensor | None = None, *,
               length: int | None = None, temperature: float = 1.0, greedy: bool = False,
               generator: torch.Generator | None = None, uniforms: Tensor | None = None,
               prompt: Tensor | None = None, chunk: int = 8192, progress: bool = False,
               expected: int | None = None, waveform: bool = False, method: str = "auto",
               precision: str = "fp32") -> Iterator[Tensor]:
        """Cached generation in pieces: yields ``x[B, t]`` (``t <= chunk``), which concatenated are
        :meth:`generate`'s result for the same arguments. ``c`` is a ``Tensor[B, C, F]`` or an iterable of
        ``[B, C, F_i]`` frame blocks, consumed as generation reaches them (then every stream runs until the
        frames end; ``expected`` then gives the progress bar its total). Memory: the cached state, one piece
        and one window of conditioning, whatever the length. ``waveform`` (LP models): yield the signal
        ``s = p + e`` (CPU, float32) instead of ``x`` (:meth:`stream_waveform`). ``method``: ``"cached"`` (the
        PyTorch step), ``"native"`` (the fused C step, ``wavenet_fast.NativeWaveNet``: mu-law or mixture head, no
        linear prediction, no prompt, streams of one length, CPU float32; streams spread over
        ``torch.get_num_threads()`` threads), ``"graph"`` (``wavenet_graph.GraphWaveNet``: the step with every
        position on the device, captured as one CUDA graph on CUDA, run eagerly elsewhere; the same coverage,
        float32 on any device) or ``"auto"`` (on CUDA the graph where it covers the call, on the CPU native
        where it covers the call and builds; else cached). ``precision``: the native step's weights, ``"fp32"``
        or ``"bf16"`` (the big matrices in bfloat16: half the bytes per step; ``benchmarks/wavenet_precision.py``
        measures what it costs).
        """
        from .wavenet_fast import FrameCond, NativeWaveNet, stream_generate
        from .wavenet_graph import GraphWaveNet

        if method not in ("auto", "cached", "native", "graph"):
            raise ValueError(f"unknown method '{method}'; choose auto, cached, native or graph")
        if chunk < 1:
            raise ValueError(f"chunk must be >= 1 sample, got {chunk}")
        blocks = c is not None and not isinstance(c, Tensor)
        if blocks and (n is not None and not isinstance(n, int) or length is not None or uniforms is not None):
            raise ValueError("conditioning given as blocks sets the length: drop per-stream lengths, length and "
                             "uniforms")
        B, lengths, frames, g, uniforms, prompt, order = self._prepare(
            n, None if blocks else c, g, length, temperature, greedy, uniforms, prompt, blocks=blocks)
        frames = c if blocks else frames                           # blocks, or the sorted tensor
        cond = None if frames is None else FrameCond(self, frames)
        covers = NativeWaveNet.covers(self, prompt, lengths, self.device)
        if method == "native" and not covers:
            raise ValueError("method='native' covers the mu-law and mixture heads without linear prediction or a "
                             "prompt, streams of one length, float32 on the CPU; use method='cached'")
        if method == "graph" and not GraphWaveNet.covers(self, prompt, lengths):
            raise ValueError("method='graph' covers the mu-law and mixture heads without linear prediction or a "
                             "prompt, streams of one length, float32; use method='cached'")
        NativeWaveNet.check_precision(precision)
        engine = method
        if method == "auto":
            engine = ("graph" if self.device.type == "cuda" and GraphWaveNet.covers(self, prompt, lengths) else
                      "native" if covers and NativeWaveNet.available() else "cached")
        if precision != "fp32" and engine != "native":
            raise ValueError(f"precision='{precision}' is the native step's, which does not run this call; "
                             "use precision='fp32'")
        kernel = {"native": partial(NativeWaveNet, threads=torch.get_num_threads(), precision=precision),
                  "graph": GraphWaveNet}.get(engine)
        with eval_mode(self):
            t = 0
            for x in stream_generate(self, B, lengths, cond, g, temperature=temperature, greedy=greedy,
                                     generator=generator, uniforms=uniforms, prompt=prompt, chunk=chunk,
                                     progress=progress, expected=expected, kernel=kernel):
                x = self._pad_silence(x, lengths, t)
                t += x.shape[1]
                if self.is_lp:                                      # the loop's predictions of this piece
                    p = self.state["engine"].take_predictions(B)
                    if waveform:                                    # s = p + e
                        x = (p + self.state["engine"].levels[x]).float().clamp_(-1, 1).cpu()
                yield torch.empty_like(x).index_copy_(0, order.to(x.device), x)  # back to the caller's order

    def _prepare(self, n, c, g, length, temperature, greedy, uniforms, prompt, blocks: bool = False):
        """Validate and move the arguments of :meth:`generate` / :meth:`stream`, streams sorted longest first
        (a finished stream leaves the cached batch): ``(B, lengths, c, g, uniforms, prompt, order)``, ``order``
        mapping sorted rows to the given ones; ``lengths`` None when ``blocks`` of conditioning set them."""
        if not greedy:
            check_temperature(temperature)
        self.check_cond(c, g, local=True if blocks else None)
        if prompt is not None and self.is_lp:
            raise ValueError("an LP WaveNet takes no prompt (its x is the excitation of a filter that starts at rest)")
        dev = self.device
        if blocks:
            lengths, T = None, None
            B = g.shape[0] if g is not None else (n if isinstance(n, int) else 1)
            order = torch.arange(B, device=dev)
        else:
            lengths = self._lengths(n, c, g, length)
            B, T = lengths.numel(), int(lengths.max())
            order = torch.argsort(lengths, descending=True, stable=True).to(dev)
            lengths = lengths.to(dev)[order]
        sort = (lambda v: None if v is None else v.to(dev)[order])
        if uniforms is not None and not greedy:
            uniforms = sort(get_uniform(uniforms, (B, T, self.head.num_uniforms), device=dev))
        if prompt is not None:
            prompt = prompt.to(dev)
            prompt = prompt.unsqueeze(0) if prompt.ndim == 1 else prompt
            if T is not None and prompt.shape[-1] > T:
                raise ValueError(f"prompt is {prompt.shape[-1]} samples long, longer than the {T} to generate")
            prompt = sort(prompt.expand(B, -1))
            if T is not None:
                unknown = -1 if self.head.discrete else float("nan")
                prompt = F.pad(prompt, (0, T - prompt.shape[-1]), value=unknown)  # (B, T)
        return B, lengths, sort(c), sort(g), uniforms, prompt, order

    def _pad_silence(self, x: Tensor, lengths: Tensor | None, t0: int) -> Tensor:
        """Samples of ``x`` (steps ``t0 ..``) past each stream's length hold :meth:`silence`."""
        if lengths is None:
            return x
        t = torch.arange(t0, t0 + x.shape[1], device=x.device)
        return x.masked_fill_(t[None, :] >= lengths[:, None], self.silence().item())

    @contextlib.contextmanager
    def naive_steps(self, canvas: Canvas, c_up: Tensor | None = None, g: Tensor | None = None,
                    lengths: Tensor | None = None, a: Tensor | None = None):
        """The reference step: the network over the last ``receptive_field`` samples of the canvas (an LP model,
        predictors ``a[B, T, P]``: over the whole prefix, its signal synthesized again from ``x`` every step)."""
        cond = self.project_cond(c_up, g)                          # (B, L * G, T or 1): pointwise, once
        rf = self.receptive_field

        def step(t: int, prev: Tensor | None) -> Tensor:
            t0 = 0 if a is not None else max(0, t - rf)            # x[t - rf : t] and a start slot
            ct = None if cond is None else (cond[..., t0:t + 1] if cond.shape[-1] > 1 else cond)
            lp = None
            if a is not None:                                      # s[t] is not known yet: 0 (p[t] never reads it)
                s = F.pad(self.synthesize(canvas.x[:, :t], a=a[:, :t]), (0, 1))
                lp = self.lp_features(s, a[:, :t + 1])
            return self.network(canvas.x[:, t0:t + 1], ct, lp)[:, -1]  # (B, P)

        yield step

    @contextlib.contextmanager
    def steps(self, canvas: Canvas, c: Tensor | None = None, g: Tensor | None = None,
              lengths: Tensor | None = None):
        """The cached step (``wavenet_fast.CachedWaveNet``) over one canvas, streams sorted by ``lengths``,
        longest first (:meth:`stream` runs it piece by piece)."""
        from .wavenet_fast import FrameCond, cached_steps, step_threads

        # inference_mode: cheaper per op than no_grad; the engine's buffers never leave the block
        with self.streaming(), torch.inference_mode(), step_threads(self.device, canvas.n):
            yield cached_steps(self, canvas.n, lengths, None if c is None else FrameCond(self, c), g)

    @torch.no_grad()
    def sample(self, n: int, prompt: Tensor | None = None, generator: torch.Generator | None = None,
               temperature: float = 1.0, greedy: bool = False, uniforms: Tensor | None = None,
               progress: bool = False, cached: bool = True, **cond) -> Tensor:
        """ARModel's ``sample`` through :meth:`generate`: ``x[n, T]`` (``c``, ``g``, ``length`` or ``method``
        passed through ``cond``; ``cached=False`` is ``method="naive"``)."""
        opts = {k: cond.pop(k) for k in ("length", "method") if k in cond}
        opts.setdefault("method", "auto" if cached else "naive")
        return self.generate(n, cond.pop("c", None), cond.pop("g", None), prompt=prompt, generator=generator,
                             temperature=temperature, greedy=greedy, uniforms=uniforms, progress=progress,
                             **opts, **cond)


__all__ = ["WaveNet", "WaveNetConfig", "ResidualLayer", "ConditionUpsampler", "receptive_field",
           "wavenet_dilations"]
