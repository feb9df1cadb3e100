"""WaveRNN: Efficient Neural Audio Synthesis (Kalchbrenner et al., 2018, arXiv:1802.08435), section 3.

One GRU with a dual softmax. A 16-bit sample ``v[t]`` is split into a coarse byte ``c[t] = v // 256`` and a
fine byte ``f[t] = v % 256``; the state is split in two halves ``h = [h_c, h_f]``. The input at ``t`` is
``[c[t-1], f[t-1], c[t]]`` (scaled to [-1, 1]) with the local and global conditioning; the input matrix is
masked so that the coarse half's gates never see ``c[t]``::

    h[t] = GRU(h[t-1], [c[t-1], f[t-1], c[t], cond[t]])   (coarse rows of the input matrix: no c[t] column)
    P(c[t] | ...) = softmax(O2 relu(O1 h_c[t]))            P(f[t] | ..., c[t]) = softmax(O4 relu(O3 h_f[t]))

so ``log p(v[t]) = log P(c[t]) + log P(f[t] | c[t])`` and the 65,536-way joint is exactly normalized. As an
``ARModel`` the events are the bytes interleaved, ``x[B, 2T] = [c[0], f[0], c[1], f[1], ...]``, each with a
256-way categorical head, so the shared step-wise sampler draws them in order; the cached step
(:meth:`WaveRNN.steps`) updates the coarse half at even steps and the fine half at odd steps, one GRU update per
sample in all. Conditioning as the WaveNet's: the mel through the same learned upsampler
(:class:`~arsound.audio.wavenet.ConditionUpsampler`), a speaker / instrument embedding.

Letters: B batch, T samples, C conditioning channels, H hidden (two halves of H / 2), F frames.
"""
from __future__ import annotations

import contextlib
import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.distributions import Categorical
from ..core.model import ARModel, Canvas, eval_mode, run_steps
from ..core.sampling import check_temperature
from .features import MelSpectrogram, normalize_mel
from .wavenet import ConditionUpsampler

LEVELS = 65536          # 16-bit samples
BYTE = 256
SILENCE = (128, 0)      # the bytes of the sample 0.0 (v = 32768): the input before the first sample


@dataclass
class WaveRNNConfig:
    hidden: int = 512                         # H: the GRU state, coarse and fine halves
    fc: int = 256                             # hidden width of each output network (O1 / O3)
    # local conditioning c[B, cond_channels, frames] (a vocoder's normalized log-mel); 0 = none
    cond_channels: int = 0
    hop_length: int = 256
    upsample_scales: tuple[int, ...] = (4, 4, 4, 4)
    n_fft: int = 1024                         # vocoder front end, as WaveNetConfig's
    fmin: float = 0.0
    fmax: float | None = 8000.0
    num_speakers: int = 0
    speaker_dim: int = 16
    speaker_names: tuple[str, ...] = ()
    sample_rate: int = 16000
    length: int = 16000                       # samples drawn without local conditioning
    temperature: float = 1.0


def split_bytes(v: Tensor) -> tuple[Tensor, Tensor]:
    """16-bit values ``[..]`` in ``[0, 65536)`` -> coarse and fine bytes."""
    return torch.div(v, BYTE, rounding_mode="floor"), v % BYTE


class WaveRNN(ARModel):
    """WaveRNN on waveforms: ``x[B, 2T]`` (bytes interleaved, :meth:`encode`) -> ``params[B, 2T, 256]``."""

    config_class = WaveRNNConfig
    sample_unit = "byte"
    presets = {"debug": dict(hidden=16, fc=16, length=200)}

    def __init__(self, config: WaveRNNConfig) -> None:
        super().__init__(config)
        cfg = config
        H = cfg.hidden
        if H < 2 or H % 2:
            raise ValueError(f"hidden must be even (coarse and fine halves), got {H}")
        self.head = Categorical(BYTE)
        self.upsample = None
        cond = 0
        if cfg.cond_channels > 0:
            self.upsample = ConditionUpsampler(cfg.cond_channels, cfg.upsample_scales)
            if self.upsample.scale != cfg.hop_length:
                raise ValueError(f"upsample_scales {tuple(cfg.upsample_scales)} multiply to {self.upsample.scale}, "
                                 f"but hop_length is {cfg.hop_length}")
            cond += cfg.cond_channels
        self.speaker_embed = None
        if cfg.num_speakers > 0:
            self.speaker_embed = nn.Embedding(cfg.num_speakers, cfg.speaker_dim)
            cond += cfg.speaker_dim
        self.gru = nn.GRU(3 + cond, H, batch_first=True)
        # the coarse half's gate rows (r, z, n) must not read c[t] (input column 2)
        mask = torch.ones_like(self.gru.weight_ih_l0)
        for g in range(3):
            mask[g * H:g * H + H // 2, 2] = 0
        self.register_buffer("input_mask", mask, persistent=False)
        with torch.no_grad():
            self.gru.weight_ih_l0.mul_(mask)
        self.gru.weight_ih_l0.register_hook(lambda grad: grad * self.input_mask)
        self.coarse = nn.Sequential(nn.Linear(H // 2, cfg.fc), nn.ReLU(), nn.Linear(cfg.fc, BYTE))
        self.fine = nn.Sequential(nn.Linear(H // 2, cfg.fc), nn.ReLU(), nn.Linear(cfg.fc, BYTE))

    # ---- shapes and conversions -------------------------------------------------------------------
    @property
    def event_shape(self) -> tuple[int]:
        return (2 * self.config.length,)

    def encode(self, wav: Tensor) -> Tensor:
        """Waveform ``[B, T]`` in [-1, 1] -> bytes ``x[B, 2T]`` (coarse, fine interleaved) of the nearest of
        65,536 levels."""
        if wav.is_floating_point() and wav.numel() and wav.abs().max() > 1:
            raise ValueError(f"waveform must lie in [-1, 1], got max |x| = {wav.abs().max().item():.4f}")
        v = torch.round((wav.double().clamp(-1, 1) + 1) / 2 * (LEVELS - 1)).long()
        c, f = split_bytes(v)
        return torch.stack([c, f], -1).flatten(-2)

    def decode(self, x: Tensor) -> Tensor:
        """Bytes ``x[B, 2T]`` -> waveform ``[B, T]`` (float32)."""
        v = x[..., 0::2] * BYTE + x[..., 1::2]
        return (v.double() / (LEVELS - 1) * 2 - 1).float()

    @staticmethod
    def scaled(b: Tensor) -> Tensor:
        """A byte -> the network's input value in [-1, 1]."""
        return b.float() / 127.5 - 1.0

    # ---- the vocoder's front end (as the WaveNet's) ------------------------------------------------
    @property
    def is_vocoder(self) -> bool:
        return self.config.cond_channels > 0

    def mel_spectrogram(self, center: bool = True) -> MelSpectrogram:
        cfg = self.config
        return MelSpectrogram(sr=cfg.sample_rate, n_fft=cfg.n_fft, hop=cfg.hop_length, win=cfg.n_fft,
                              n_mels=cfg.cond_channels, fmin=cfg.fmin, fmax=cfg.fmax, power=1.0, log=True,
                              center=center).to(self.device)

    def mel_condition(self, wav: Tensor) -> Tensor:
        """Waveform ``[B, T]`` -> ``c[B, C, T // hop]`` (sample ``n`` conditioned on frame ``n // hop``)."""
        frames = wav.shape[-1] // self.config.hop_length
        return normalize_mel(self.mel_spectrogram()(wav.to(self.device, torch.float32))[..., :frames])

    def targets(self, wav: Tensor, c: Tensor) -> dict[str, Tensor]:
        """A crop with one sample of context first, ``wav[..., T + 1]`` -> ``{"x": bytes[..., 2T]}``."""
        return {"x": self.encode(wav[..., 1:])}

    # ---- conditioning -----------------------------------------------------------------------------
    def check_cond(self, c: Tensor | None, g: Tensor | None) -> None:
        cfg = self.config
        if (c is None) != (self.upsample is None):
            raise ValueError(f"this WaveRNN {'needs' if c is None else 'takes no'} local conditioning "
                             f"(cond_channels={cfg.cond_channels}): c[B, C, frames]")
        if c is not None and (c.ndim != 3 or c.shape[1] != cfg.cond_channels or not torch.isfinite(c).all()):
            raise ValueError(f"local conditioning must be finite c[B, {cfg.cond_channels}, frames], got "
                             f"{tuple(c.shape)}")
        if (g is None) != (self.speaker_embed is None):
            raise ValueError(f"this WaveRNN {'needs' if g is None else 'takes no'} global conditioning "
                             f"(num_speakers={cfg.num_speakers}): g = LongTensor[B]")
        if g is not None and g.numel() and (g.min() < 0 or g.max() >= cfg.num_speakers):
            raise ValueError(f"speaker ids must lie in [0, {cfg.num_speakers}), got {g.tolist()}")

    def conditioning(self, c: Tensor | None, g: Tensor | None, T: int, B: int) -> Tensor | None:
        """The conditioning part of every input: ``[B, T, C (+ speaker_dim)]`` or None."""
        self.check_cond(c, g)
        parts = []
        if c is not None:
            if c.shape[-1] * self.config.hop_length < T:
                raise ValueError(f"{c.shape[-1]} conditioning frames cover {c.shape[-1] * self.config.hop_length} "
                                 f"samples, fewer than the {T} asked for")
            parts.append(self.upsample(c.to(self.dtype))[..., :T].transpose(1, 2))
        if g is not None:
            parts.append(self.speaker_embed(g)[:, None, :].expand(B, T, -1))
        return torch.cat(parts, -1) if parts else None

    # ---- network ----------------------------------------------------------------------------------
    def forward(self, x: Tensor, c: Tensor | None = None, g: Tensor | None = None) -> Tensor:
        """Teacher-forced logits ``[B, 2T, 256]``: coarse at even positions, fine at odd ones."""
        B, T2 = x.shape
        if T2 % 2:
            raise ValueError(f"x holds coarse and fine bytes in pairs, got an odd length {T2}")
        T = T2 // 2
        coarse, fine = x[:, 0::2], x[:, 1::2]
        prev_c = torch.cat([coarse.new_full((B, 1), SILENCE[0]), coarse[:, :-1]], 1)
        prev_f = torch.cat([fine.new_full((B, 1), SILENCE[1]), fine[:, :-1]], 1)
        inp = torch.stack([self.scaled(prev_c), self.scaled(prev_f), self.scaled(coarse)], -1).to(self.dtype)
        cond = self.conditioning(c, g, T, B)
        if cond is not None:
            inp = torch.cat([inp, cond], -1)
        with torch.no_grad():                                       # the mask holds whatever an optimizer did
            self.gru.weight_ih_l0.mul_(self.input_mask)
        h, _ = self.gru(inp)                                        # (B, T, H)
        H2 = self.config.hidden // 2
        out = torch.stack([self.coarse(h[..., :H2]), self.fine(h[..., H2:])], 2)  # (B, T, 2, 256)
        return out.flatten(1, 2)

    # ---- generation -------------------------------------------------------------------------------
    @contextlib.contextmanager
    def steps(self, canvas: Canvas, c: Tensor | None = None, g: Tensor | None = None):
        """The cached step: ``step(s, prev)``; even ``s = 2t``: the coarse half's GRU update from ``h[t-1]`` and
        ``[c[t-1], f[t-1]]`` -> coarse logits; odd ``s``: the fine half's update with the drawn ``c[t]`` -> fine
        logits. O(H^2) per sample, the state ``[n, H]`` carried."""
        n, H = canvas.n, self.config.hidden
        H2 = H // 2
        T = canvas.D // 2
        cond = self.conditioning(c, g, T, n)                        # (n, T, Cc) or None
        w_ih = (self.gru.weight_ih_l0 * self.input_mask).detach()   # (3H, In)
        w_hh, b_ih, b_hh = (p.detach() for p in (self.gru.weight_hh_l0, self.gru.bias_ih_l0, self.gru.bias_hh_l0))
        rows = {half: torch.cat([torch.arange(g_ * H + o, g_ * H + o + H2) for g_ in range(3)])
                for half, o in (("c", 0), ("f", H2))}
        W = {k: (w_ih[r], w_hh[r], b_ih[r], b_hh[r]) for k, r in rows.items()}
        dev, dt = self.device, self.dtype
        state = {"h": torch.zeros(n, H, device=dev, dtype=dt), "c": None, "f": None, "x": None}

        def half(name: str, x_in: Tensor, h: Tensor, h_half: Tensor) -> Tensor:
            wi, wh, bi, bh = W[name]
            gi, gh = torch.addmm(bi, x_in, wi.t()), torch.addmm(bh, h, wh.t())
            r = torch.sigmoid(gi[:, :H2] + gh[:, :H2])
            z = torch.sigmoid(gi[:, H2:2 * H2] + gh[:, H2:2 * H2])
            nn_ = torch.tanh(gi[:, 2 * H2:] + r * gh[:, 2 * H2:])
            return (1 - z) * nn_ + z * h_half

        def step(s: int, prev: Tensor | None) -> Tensor:
            t = s // 2
            if s % 2 == 0:
                if s == 0:
                    pc = torch.full((n,), SILENCE[0], device=dev)
                    pf = torch.full((n,), SILENCE[1], device=dev)
                else:
                    pc, pf = state["c"], prev
                x = torch.stack([self.scaled(pc), self.scaled(pf), torch.zeros(n, device=dev)], -1).to(dt)
                if cond is not None:
                    x = torch.cat([x, cond[:, t]], -1)
                state["x"] = x
                state["hc"] = half("c", x, state["h"], state["h"][:, :H2])
                return self.coarse(state["hc"])
            x = state["x"].clone()
            x[:, 2] = self.scaled(prev)                             # the coarse byte just drawn
            hf = half("f", x, state["h"], state["h"][:, H2:])
            state["h"] = torch.cat([state["hc"], hf], 1)
            state["c"] = prev
            return self.fine(hf)

        with torch.no_grad():
            yield step

    def _canvas_length(self, c: Tensor | None, length: int | None) -> int:
        if length is not None:
            return int(length)
        return c.shape[-1] * self.config.hop_length if c is not None else self.config.length

    @torch.no_grad()
    def generate(self, n: int | None = None, c: Tensor | None = None, g: Tensor | None = None, *,
                 length: int | None = None, temperature: float = 1.0, greedy: bool = False,
                 generator: torch.Generator | None = None, uniforms: Tensor | None = None, method: str = "auto",
                 progress: bool = False) -> Tensor:
        """Bytes ``x[B, 2T]`` (:meth:`decode` for the waveform); ``T`` is ``length``, else ``c``'s frames x hop,
        else ``config.length``. ``method``: ``"auto"`` / ``"cached"`` (:meth:`steps`) or ``"naive"`` (a full
        forward per byte, the reference). ``uniforms[B, 2T, 1]`` make two runs draw identical values."""
        if method not in ("auto", "cached", "naive"):
            raise ValueError(f"unknown method '{method}'; choose auto, cached or naive")
        if not greedy:
            check_temperature(temperature)
        B = n if n is not None else (c.shape[0] if c is not None else g.shape[0] if g is not None else 1)
        T = self._canvas_length(c, length)
        if B < 1 or T < 1:
            raise ValueError(f"need at least one stream of at least one sample, got {B} x {T}")
        c = None if c is None else c.to(self.device)
        g = None if g is None else g.to(self.device)
        canvas = Canvas(self, B, None, generator, temperature, greedy, uniforms, shape=(2 * T,),
                        order=torch.arange(2 * T))
        with eval_mode(self):
            steps = (self.naive_steps(canvas, c=c, g=g) if method == "naive" else self.steps(canvas, c=c, g=g))
            return run_steps(self, canvas, steps, progress=progress)

    @torch.no_grad()
    def sample(self, n: int, prompt: Tensor | None = None, generator: torch.Generator | None = None,
               temperature: float = 1.0, greedy: bool = False, uniforms: Tensor | None = None,
               progress: bool = False, cached: bool = True, **cond) -> Tensor:
        """ARModel's ``sample``: ``x[n, 2T]`` through :meth:`generate` (no prompt: the state starts at rest)."""
        if prompt is not None:
            raise ValueError("WaveRNN.sample takes no prompt")
        return self.generate(n, cond.pop("c", None), cond.pop("g", None), length=cond.pop("length", None),
                             temperature=temperature, greedy=greedy, generator=generator, uniforms=uniforms,
                             method="auto" if cached else "naive", progress=progress)

    def bits_per_sample(self, x: Tensor, **cond) -> Tensor:
        """Bits per 16-bit sample of ``x[B, 2T]``: ``Tensor[B]``."""
        return -self.log_prob(x, **cond) / (x.shape[1] // 2) / math.log(2)


__all__ = ["WaveRNN", "WaveRNNConfig", "split_bytes"]
