"""Hierarchical VQ-VAE audio tokenizer, Jukebox style (Dhariwal et al., 2020, arXiv:2005.00341).

L levels, each with its OWN encoder, quantizer and decoder, so every level's decoder reconstructs audio
alone: level ``l`` turns a waveform into one code per ``hops[l]`` samples. An encoder is a 1-D conv, then
per downsampling step a strided conv (kernel ``2 s``, stride ``s``) followed by a dilated residual stack
(dilations ``g^0 .. g^(depth-1)``), then a conv to the code width; the decoder mirrors it with transposed
convs. Quantization is :class:`arsound.core.quantize.VectorQuantizer` (EMA codebook, data init, dead-code
restarts). Loss per level: ``mse_weight * MSE + stft_weight * MR-STFT`` (``vocoder.mr_stft_distance``,
FFT 2048 / 1024 / 512) + commitment; all levels are summed and each is reported.

    model = VQVAE(VQVAEConfig.from_preset("small"))
    codes = model.encode(wav)              # wav Tensor[B, T] -> [LongTensor[B, T_l] per level], T_l = ceil(T / hop_l)
    y = model.decode(codes[1], level=1)    # -> Tensor[B, T_l * hop_l]

Long audio: :func:`encode_chunked` / :func:`encode_file` encode windows with a context margin of at least
the encoder's receptive field on both sides (aligned to the largest hop) and keep only the centre codes,
so the codes equal whole-file encoding; :func:`decode_chunked` decodes windows with a context margin
and crossfades them. Codes files: :func:`save_codes` / :func:`load_codes` (versioned ``.npz``).

CLI (wired in ``arsound/cli.py``)::

    arsound encode in.wav -o codes.npz [--model NAME_OR_DIR]
    arsound decode codes.npz -o out.wav [--level L] [--model NAME_OR_DIR]

Letters: B batch, T samples, C channels (width), D code width, L levels, T_l codes at level l.
"""
from __future__ import annotations

import hashlib
import math
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..core.checkpoint import CheckpointError
from ..core.quantize import QuantizerConfig, VectorQuantizer
from .vocoder import mr_stft_distance

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


# ---- metrics --------------------------------------------------------------------------------------
def si_sdr(ref: Tensor, est: Tensor, eps: float = 1e-8) -> Tensor:
    """Scale-invariant SDR in dB (Le Roux et al., 2019) of ``est`` against ``ref`` (``[T]`` or ``[B, T]``,
    cut to the shorter; both made zero-mean): ``Tensor[B]``."""
    ref, est = (ref.unsqueeze(0) if ref.ndim == 1 else ref), (est.unsqueeze(0) if est.ndim == 1 else est)
    T = min(ref.shape[-1], est.shape[-1])
    ref, est = ref[..., :T].double(), est[..., :T].double()
    ref, est = ref - ref.mean(-1, keepdim=True), est - est.mean(-1, keepdim=True)
    alpha = (est * ref).sum(-1, keepdim=True) / (ref.pow(2).sum(-1, keepdim=True) + eps)
    target = alpha * ref
    noise = est - target
    return (10 * torch.log10((target.pow(2).sum(-1) + eps) / (noise.pow(2).sum(-1) + eps))).float()


# ---- chunked encode / decode ------------------------------------------------------------------------
def _trim_heap() -> None:
    """Hand freed heap pages back to the OS (glibc ``malloc_trim``; a no-op elsewhere). Without it, glibc
    keeps the fragmented arena of every window's activations and the resident set grows with the file
    length (measured: 1.3 GB instead of 0.3 GB for 10 minutes), although nothing is retained."""
    global _LIBC
    if _LIBC is None:
        try:
            import ctypes

            _LIBC = ctypes.CDLL("libc.so.6")
            _LIBC.malloc_trim.argtypes = [ctypes.c_size_t]
        except (OSError, AttributeError):
            _LIBC = False
    if _LIBC:
        _LIBC.malloc_trim(0)


_LIBC = None


def _blocks_of(wav: Tensor, block: int, step: int) -> Iterator[Tensor]:
    """``wav[T]`` in blocks of ``block`` samples starting every ``step`` (like ``io.iter_chunks``)."""
    start = 0
    while True:
        yield wav[start:start + block]
        if start + block >= len(wav):
            return
        start += step


@torch.no_grad()
def encode_chunked(model: VQVAE, blocks: Iterable, length: int, chunk: int, margin: int | None = None,
                   progress: bool = False) -> list[Tensor]:
    """Codes of a mono waveform of ``length`` samples given as overlapping ``blocks`` (ndarray or Tensor):
    block ``i`` holds samples ``[i * chunk, i * chunk + chunk + 2 * margin)`` (the last may be shorter) —
    exactly what ``io.iter_chunks(path, (chunk + 2 margin) / sr, overlap=2 margin / sr)`` yields. Each
    block is encoded whole and only its centre codes are kept (block 0 keeps ``[0, chunk + margin)``,
    block ``i`` keeps ``[i chunk + margin, (i + 1) chunk + margin)``, the block that reaches the end keeps
    the rest), so with ``margin >= model.encoder_margin()`` the result equals ``model.encode`` of the
    whole waveform. ``chunk`` and ``margin`` must be multiples of the largest hop. Returns
    ``[LongTensor[T_l]]`` per level. Memory: one block of activations."""
    H = model.max_hop
    margin = model.encoder_margin() if margin is None else margin
    if chunk <= 0 or chunk % H or margin % H:
        raise ValueError(f"chunk ({chunk}) and margin ({margin}) must be multiples of the largest hop {H}, chunk > 0")
    total = math.ceil(length / H) * H                                      # padded length, as model.encode pads
    parts: list[list[Tensor]] = [[] for _ in model.hops]
    bar = tqdm(total=max(1, math.ceil(max(length - margin, 1) / chunk)), desc="encode", unit="chunk",
               disable=not progress, dynamic_ncols=True)
    for i, b in enumerate(blocks):
        b = torch.as_tensor(np.asarray(b, dtype=np.float32) if not isinstance(b, Tensor) else b).float()
        start = i * chunk
        end = start + len(b)
        at_end = end >= length
        keep_lo = 0 if i == 0 else start + margin
        keep_hi = total if at_end else start + chunk + margin
        if keep_lo < keep_hi:
            codes = model.encode(b.clamp(-1, 1).unsqueeze(0))              # pads the block to a multiple of H
            for l, h in enumerate(model.hops):
                parts[l].append(codes[l][0, (keep_lo - start) // h:(keep_hi - start) // h].clone().cpu())
            del codes
            _trim_heap()
        bar.update(1)
        if at_end:
            break
    bar.close()
    return [torch.cat(p) for p in parts]


@dataclass
class DecodeStats:
    seams: list[int]                        # sample positions where windows meet


@torch.no_grad()
def decode_chunked(model: VQVAE, codes: Tensor, level: int, chunk: int = 512, margin: int | None = None,
                   crossfade: int | None = None, progress: bool = False) -> tuple[Tensor, DecodeStats]:
    """Waveform ``Tensor[T_l * hop]`` of ``codes : LongTensor[T_l]`` at ``level``, decoded in windows of
    ``chunk`` codes with ``margin`` codes of context on each side (default the decoder's receptive field)
    and a linear crossfade of ``crossfade`` samples (default ``hop``; at most ``2 margin hop`` and one
    window) centred on each seam. Memory: one window of activations plus the output."""
    hop = model.hops[level]
    margin = model.decoder_margin(level) if margin is None else margin
    X = hop if crossfade is None else crossfade
    X = min(X, 2 * margin * hop, chunk * hop)
    X -= X % 2
    n = codes.shape[-1]
    T = n * hop
    out = torch.zeros(T)
    seams, windows = [], math.ceil(n / chunk)
    for i in tqdm(range(windows), desc="decode", unit="chunk", disable=not progress, dynamic_ncols=True):
        c0, c1 = i * chunk, min(n, (i + 1) * chunk)
        lo, hi = max(0, c0 - margin), min(n, c1 + margin)
        y = model.decode(codes[lo:hi], level).cpu()                      # samples from lo * hop
        a = c0 * hop - (X // 2 if i > 0 else 0)
        b = c1 * hop + (X // 2 if i < windows - 1 else 0)
        w = torch.ones(b - a)
        if i > 0:
            seams.append(c0 * hop)
        if i > 0 and X:
            w[:X] = (torch.arange(X) + 0.5) / X
        if i < windows - 1 and X:
            w[-X:] = 1 - (torch.arange(X) + 0.5) / X
        out[a:b] += w * y[a - lo * hop:b - lo * hop]
        del y
        _trim_heap()
    return out, DecodeStats(seams=seams)


def seam_jump(y: Tensor, seams: list[int]) -> float:
    """Mean ``|y[s] - y[s - 1]|`` at the seams over the mean ``|y[t] - y[t - 1]|`` everywhere (1.0: the
    seams look like any other sample step)."""
    if not seams:
        return float("nan")
    d = (y[1:] - y[:-1]).abs()
    at = torch.stack([d[s - 1] for s in seams])
    return float(at.mean() / d.mean().clamp_min(1e-12))


def encode_file(model: VQVAE, path, chunk_seconds: float = 10.0, progress: bool = False) -> tuple[list[Tensor], int]:
    """Codes of audio file ``path`` (mono mixdown) read in chunks: ``([LongTensor[T_l]], length)``.
    A file at another sample rate is loaded whole and resampled first (soxr), then encoded in the same
    chunks; the network's activations stay bounded either way."""
    from .io import AudioError, _open_info, iter_chunks, load_audio

    info = _open_info(Path(path))
    if info.frames == 0:
        raise AudioError(path, "empty (0 samples)")
    sr, H, margin = model.config.sample_rate, model.max_hop, model.encoder_margin()
    chunk = max(H, int(chunk_seconds * sr) // H * H)
    if info.samplerate == sr:
        length = info.frames
        blocks = iter_chunks(path, (chunk + 2 * margin) / sr, overlap=2 * margin / sr)
    else:
        wav, _ = load_audio(path, sr=sr, as_tensor=True)
        length = len(wav)
        blocks = _blocks_of(wav, chunk + 2 * margin, chunk)
    return encode_chunked(model, blocks, length, chunk, margin, progress=progress), length


# ---- codes files ------------------------------------------------------------------------------------
CODES_FORMAT, CODES_VERSION = "arsound-vqvae-codes", 1


@dataclass
class CodesFile:
    """A tokenized waveform: ``codes[l] : LongTensor[T_l]`` per level, ``hops[l]``, the sample rate, the
    original length in samples and the model that made it (name or folder, and its weights' sha256)."""
    codes: list[Tensor]
    hops: list[int]
    sample_rate: int
    length: int
    model: str
    model_sha256: str = ""
    num_codes: int = 0


def weights_sha256(folder) -> str:
    """sha256 of ``folder/model.safetensors`` (first 16 hex digits), the model id stored in codes files."""
    h = hashlib.sha256()
    with open(Path(folder) / "model.safetensors", "rb") as f:
        while block := f.read(1 << 20):
            h.update(block)
    return h.hexdigest()[:16]


def save_codes(path, cf: CodesFile) -> Path:
    """Write ``cf`` to ``path`` (.npz) atomically: ``format``, ``version``, ``sample_rate``, ``length``,
    ``hops``, ``model``, ``model_sha256``, ``num_codes``, ``codes_0 .. codes_{L-1}`` (uint16)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise ValueError(f"codes file '{path}' must end in .npz")
    arrays = {"format": np.array(CODES_FORMAT), "version": np.array(CODES_VERSION),
              "sample_rate": np.array(cf.sample_rate), "length": np.array(cf.length),
              "hops": np.array(cf.hops, dtype=np.int64), "model": np.array(cf.model),
              "model_sha256": np.array(cf.model_sha256), "num_codes": np.array(cf.num_codes)}
    for l, c in enumerate(cf.codes):
        c = torch.as_tensor(c)
        if c.numel() and (int(c.min()) < 0 or int(c.max()) > 65535):
            raise ValueError(f"level {l} codes do not fit uint16")
        arrays[f"codes_{l}"] = c.numpy().astype(np.uint16)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
    return path


def load_codes(path) -> CodesFile:
    """Read a codes file; a missing, foreign, corrupt or newer-version file raises one-line ``ValueError``."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"codes file '{path}' does not exist")
    what = f"'{path}' is not an arsound codes file"
    try:
        with np.load(path, allow_pickle=False) as z:
            data = {k: z[k] for k in z.files}
    except Exception as e:  # not a zip, truncated, pickled objects...
        raise ValueError(f"{what} ({' '.join(str(e).split())[:120]}); make one with `arsound encode`") from None
    if "format" not in data or str(data["format"]) != CODES_FORMAT or "version" not in data:
        raise ValueError(f"{what} (no '{CODES_FORMAT}' format tag); make one with `arsound encode`")
    version = int(data["version"])
    if version > CODES_VERSION:
        raise ValueError(f"'{path}' is codes format version {version}, newer than this arsound reads "
                         f"({CODES_VERSION}); upgrade arsound")
    try:
        hops = [int(h) for h in data["hops"]]
        codes = [torch.from_numpy(data[f"codes_{l}"].astype(np.int64)) for l in range(len(hops))]
        cf = CodesFile(codes=codes, hops=hops, sample_rate=int(data["sample_rate"]), length=int(data["length"]),
                       model=str(data["model"]), model_sha256=str(data.get("model_sha256", "")),
                       num_codes=int(data.get("num_codes", 0)))
    except (KeyError, ValueError, TypeError) as e:
        raise ValueError(f"'{path}' is a damaged codes file (missing or bad field {e}); encode again") from None
    return cf


# ---- CLI ------------------------------------------------------------------------------------------
DEFAULT_MODEL = "vqvae-chorales"


def _load_vqvae(spec: str, device: str = "cpu") -> tuple[VQVAE, Path]:
    from ..core.checkpoint import load, resolve

    folder = resolve(spec)
    model = load(folder, device=device)
    if not isinstance(model, VQVAE):
        raise CheckpointError(f"{folder} holds a {type(model).__name__}, not a VQ-VAE; pass a VQ-VAE checkpoint "
                              f"such as {DEFAULT_MODEL}")
    return model, folder


def add_encode_parser(subparsers):
    """``arsound encode IN.wav -o CODES.npz [--model NAME_OR_DIR]``."""
    e = subparsers.add_parser("encode", help="audio -> VQ-VAE codes (.npz)",
                              description="Tokenize an audio file with a VQ-VAE, every level, in chunks with a "
                                          "context margin (codes equal whole-file encoding, memory stays bounded).")
    e.add_argument("input", help="audio file (mono mixdown; resampled to the model's rate)")
    e.add_argument("-o", "--out", required=True, help="codes file to write (.npz)")
    e.add_argument("--model", default=DEFAULT_MODEL, help=f"VQ-VAE folder or registry name (default {DEFAULT_MODEL})")
    e.add_argument("--chunk-seconds", type=float, default=10.0, help="window length (default 10 s)")
    e.add_argument("--device", default="cpu")
    e.set_defaults(func=cmd_encode)
    return e


def add_decode_parser(subparsers):
    """``arsound decode CODES.npz -o OUT.wav [--level L] [--model NAME_OR_DIR]``."""
    d = subparsers.add_parser("decode", help="VQ-VAE codes (.npz) -> audio",
                              description="Decode one level of a codes file made by `arsound encode` (windows "
                                          "with context, crossfaded). The model defaults to the one that encoded it.")
    d.add_argument("input", help="codes file (.npz) from `arsound encode`")
    d.add_argument("-o", "--out", required=True, help="audio file to write (.wav / .flac / .ogg)")
    d.add_argument("--level", type=int, default=0, help="level to decode (0 = finest, default)")
    d.add_argument("--model", help="VQ-VAE folder or registry name (default: the one named in the codes file)")
    d.add_argument("--chunk-codes", type=int, default=1024, help="codes per decoding window (default 1024)")
    d.add_argument("--device", default="cpu")
    d.set_defaults(func=cmd_decode)
    return d


def _model_id(spec: str, folder: Path) -> str:
    text = os.fspath(spec)
    return text if ("/" not in text and os.sep not in text and not Path(text).exists()) else str(folder.resolve())


def cmd_encode(args, extra: list[str]) -> int:
    if extra:
        raise ValueError(f"unrecognized arguments: {' '.join(extra)}")
    out = Path(args.out)
    if out.suffix != ".npz":
        raise ValueError(f"output '{out}' must end in .npz")
    if args.chunk_seconds <= 0:
        raise ValueError(f"--chunk-seconds must be > 0, got {args.chunk_seconds}")
    from .io import _open_info

    _open_info(Path(args.input))                                            # missing / unreadable: one line, first
    model, folder = _load_vqvae(args.model, args.device)
    codes, length = encode_file(model, args.input, args.chunk_seconds, progress=True)
    cf = CodesFile(codes=codes, hops=list(model.hops), sample_rate=model.config.sample_rate, length=length,
                   model=_model_id(args.model, folder), model_sha256=weights_sha256(folder),
                   num_codes=model.config.quantizer.num_codes)
    save_codes(out, cf)
    sr = model.config.sample_rate
    print(f"wrote {out}: {length / sr:.2f} s, " + ", ".join(
        f"level {l}: {len(c)} codes (hop {h}, {sr / h:.0f}/s)" for l, (c, h) in enumerate(zip(codes, model.hops))))
    return 0


def cmd_decode(args, extra: list[str]) -> int:
    if extra:
        raise ValueError(f"unrecognized arguments: {' '.join(extra)}")
    from .io import SAVE_FORMATS, save_audio

    out = Path(args.out)
    if out.suffix.lower() not in SAVE_FORMATS:
        raise ValueError(f"output '{out}' must end in one of {sorted(SAVE_FORMATS)}")
    if args.chunk_codes < 1:
        raise ValueError(f"--chunk-codes must be >= 1, got {args.chunk_codes}")
    cf = load_codes(args.input)
    model, folder = _load_vqvae(args.model or cf.model, args.device)
    sha = weights_sha256(folder)
    if cf.model_sha256 and cf.model_sha256 != sha:
        raise ValueError(f"'{args.input}' was encoded by model {cf.model} (weights {cf.model_sha256}), not by "
                         f"{folder} (weights {sha}); pass --model with the model that encoded it")
    if list(model.hops) != cf.hops or model.config.sample_rate != cf.sample_rate:
        raise ValueError(f"'{args.input}' has hops {cf.hops} at {cf.sample_rate} Hz but the model has "
                         f"{list(model.hops)} at {model.config.sample_rate} Hz; pass the model that encoded it")
    if not 0 <= args.level < len(cf.codes):
        raise ValueError(f"--level {args.level} out of range: '{args.input}' has levels 0..{len(cf.codes) - 1}")
    codes = cf.codes[args.level]
    if codes.numel() and int(codes.max()) >= model.config.quantizer.num_codes:
        raise ValueError(f"'{args.input}' holds code {int(codes.max())} but the model has "
                         f"{model.config.quantizer.num_codes} codes; pass the model that encoded it")
    y, _ = decode_chunked(model, codes, args.level, chunk=args.chunk_codes, progress=True)
    y = y[:cf.length]
    save_audio(out, y, cf.sample_rate)
    print(f"wrote {out}: {len(y) / cf.sample_rate:.2f} s at {cf.sample_rate} Hz from level {args.level} "
          f"(hop {cf.hops[args.level]})")
    return 0


__all__ = ["VQVAEConfig", "VQVAE", "LevelOutput", "Encoder", "Decoder", "si_sdr", "encode_chunked", "decode_chunked",
           "encode_file", "seam_jump", "CodesFile", "save_codes", "load_codes", "weights_sha256",
           "add_encode_parser", "add_decode_parser", "cmd_encode", "cmd_decode", "PRESETS"]
