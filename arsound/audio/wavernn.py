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
import ctypes
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..core.distributions import Categorical
from ..core.model import ARModel, Canvas, eval_mode, run_piece, run_steps
from ..core.sampling import check_temperature, time_major_uniforms
from .features import MelFrontEnd
from .wavenet import ConditionUpsampler

LEVELS = 65536          # 16-bit samples
BYTE = 256
SILENCE = (128, 0)      # the bytes of the sample 0.0 (v = 32768): the input before the first sample
# "auto" takes the native step up to this many streams: above it PyTorch's batched matmuls win (hidden 256, one
# thread: native 11x the PyTorch step at batch 1, 2x at 8, 0.7x at 32; benchmarks/wavernn_generation.py)
NATIVE_MAX_BATCH = 16


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
    postfilter: int = 0                       # default band post-filter passes, as WaveNetConfig's


def split_bytes(v: Tensor) -> tuple[Tensor, Tensor]:
    """16-bit values ``[..]`` in ``[0, 65536)`` -> coarse and fine bytes."""
    return torch.div(v, BYTE, rounding_mode="floor"), v % BYTE


class WaveRNN(MelFrontEnd, ARModel):
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

    # ---- the vocoder's front end: features.MelFrontEnd ---------------------------------------------
    def targets(self, wav: Tensor, c: Tensor) -> dict[str, Tensor]:
        """A crop with one sample of context first, ``wav[..., T + 1]`` -> ``{"x": bytes[..., 2T]}``."""
        return {"x": self.encode(wav[..., 1:])}

    # ---- conditioning -----------------------------------------------------------------------------
    def check_cond(self, c: Tensor | None, g: Tensor | None, local: bool | None = None) -> None:
        """The conditioning this model needs, no more (``local``: whether ``c`` is given, when it comes as blocks)."""
        cfg = self.config
        local = c is not None if local is None else local
        if local != (self.upsample is not None):
            raise ValueError(f"this WaveRNN {'needs' if not local else 'takes no'} local conditioning "
                             f"(cond_channels={cfg.cond_channels}): c[B, C, frames]")
        if c is not None:
            self.check_frames(c)
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
    def half_weights(self) -> dict[str, tuple[Tensor, Tensor, Tensor, Tensor]]:
        """The GRU's weights split by half, ``{"c": ..., "f": ...}``, each ``(W_ih[3 H/2, In] (masked), W_hh[3 H/2, H],
        b_ih, b_hh)``: the rows r, z, n of that half's units, detached (what the cached and native steps run)."""
        H = self.config.hidden
        H2 = H // 2
        w_ih = self.gru.weight_ih_l0 * self.input_mask
        params = (w_ih, self.gru.weight_hh_l0, self.gru.bias_ih_l0, self.gru.bias_hh_l0)
        out = {}
        for half, o in (("c", 0), ("f", H2)):
            rows = torch.cat([torch.arange(k * H + o, k * H + o + H2) for k in range(3)])
            out[half] = tuple(p.detach()[rows] for p in params)
        return out

    def stepper(self, n: int, cond=None, g: Tensor | None = None):
        """The cached step for ``n`` streams: ``step(s, prev) -> logits[n, 256]`` for byte ``s`` (counted from the
        start of the stream), ``prev`` the byte drawn before it. Even ``s = 2t``: the coarse half's GRU update from
        ``h[t-1]`` and ``[c[t-1], f[t-1]]``; odd: the fine half's, with the drawn ``c[t]``; O(H^2) per sample.
        ``cond``: a :class:`~arsound.audio.wavenet_fast.FrameCond` (frames upsampled a block of steps at a time)."""
        H = self.config.hidden
        H2 = H // 2
        W = {half: (wi.t().contiguous(), wh.t().contiguous(), bi, bh)
             for half, (wi, wh, bi, bh) in self.half_weights().items()}
        dev, dt = self.device, self.dtype
        spk = None if g is None else self.speaker_embed(g.to(dev))  # (n, speaker_dim)
        st = {"h": torch.zeros(n, H, device=dev, dtype=dt), "c": None, "block": (0, 0, None)}

        def inputs(t: int) -> Tensor:
            """The conditioning part of the input at sample ``t``: ``[n, Cc]`` (or an empty ``[n, 0]``)."""
            parts = []
            if cond is not None:
                t0, t1, up = st["block"]
                if not t0 <= t < t1:
                    t1 = cond.available(t + 1024)
                    if t1 <= t:
                        raise ValueError(f"local conditioning covers {t} samples; cannot generate sample {t + 1}")
                    up = cond.window(t, t1).transpose(1, 2)          # (n, tb, C)
                    st["block"] = t0, t1, up = (t, t1, up)
                parts.append(up[:n, t - t0])
            if spk is not None:
                parts.append(spk)
            return torch.cat(parts, -1) if parts else torch.empty(n, 0, device=dev, dtype=dt)

        def half(name: str, x_in: Tensor, h: Tensor, h_half: Tensor) -> Tensor:
            wi, wh, bi, bh = W[name]
            gi, gh = torch.addmm(bi, x_in, wi), torch.addmm(bh, h, wh)
            r = torch.sigmoid(gi[:, :H2] + gh[:, :H2])
            z = torch.sigmoid(gi[:, H2:2 * H2] + gh[:, H2:2 * H2])
            cand = torch.tanh(gi[:, 2 * H2:] + r * gh[:, 2 * H2:])
            return (1 - z) * cand + z * h_half

        def step(s: int, prev: Tensor | None) -> Tensor:
            if s % 2 == 0:
                if s == 0:
                    pc = torch.full((n,), SILENCE[0], device=dev)
                    pf = torch.full((n,), SILENCE[1], device=dev)
                else:
                    pc, pf = st["c"], prev
                x = torch.cat([torch.stack([self.scaled(pc), self.scaled(pf), torch.zeros(n, device=dev)], -1).to(dt),
                               inputs(s // 2)], -1)
                st["x"] = x
                st["hc"] = half("c", x, st["h"], st["h"][:, :H2])
                return self.coarse(st["hc"])
            x = st["x"].clone()
            x[:, 2] = self.scaled(prev)                             # the coarse byte just drawn
            hf = half("f", x, st["h"], st["h"][:, H2:])
            st["h"], st["c"] = torch.cat([st["hc"], hf], 1), prev
            return self.fine(hf)

        return step

    @contextlib.contextmanager
    def steps(self, canvas: Canvas, c: Tensor | None = None, g: Tensor | None = None):
        """The cached step over one canvas (see :meth:`stepper`)."""
        from .wavenet_fast import FrameCond

        self.check_cond(c, g)
        with torch.no_grad():
            yield self.stepper(canvas.n, None if c is None else FrameCond(self, c), g)

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
        else ``config.length``. ``method``: ``"auto"``, ``"cached"`` or ``"native"`` (:meth:`stream`'s pieces joined)
        or ``"naive"`` (a full forward per byte, the reference). The uniforms are drawn time-major from
        ``generator``; ``uniforms[B, 2T, 1]`` make two runs draw identical values."""
        if method not in ("auto", "cached", "native", "naive"):
            raise ValueError(f"unknown method '{method}'; choose auto, cached, native or naive")
        if method != "naive":
            return torch.cat(list(self.stream(n, c, g, length=length, temperature=temperature, greedy=greedy,
                                              generator=generator, uniforms=uniforms, progress=progress,
                                              method=method)), 1)
        B, T, c, g = self._prepare(n, c, g, length, temperature, greedy)
        if uniforms is None and not greedy:
            uniforms = time_major_uniforms(2 * T, B, 1, generator=generator, device=self.device)
        canvas = Canvas(self, B, None, None, temperature, greedy, uniforms, shape=(2 * T,), order=torch.arange(2 * T))
        with eval_mode(self):
            return run_steps(self, canvas, self.naive_steps(canvas, c=c, g=g), progress=progress)

    def _prepare(self, n, c, g, length, temperature, greedy, blocks: bool = False):
        """Checked and moved arguments of :meth:`generate` / :meth:`stream`: ``(B, T or None, c, g)``."""
        if not greedy:
            check_temperature(temperature)
        self.check_cond(None if blocks else c, g, local=True if blocks else None)
        B = n if n is not None else (g.shape[0] if g is not None else c.shape[0] if c is not None and not blocks
                                     else 1)
        T = None if blocks and length is None else self._canvas_length(None if blocks else c, length)
        if B < 1 or (T is not None and T < 1):
            raise ValueError(f"need at least one stream of at least one sample, got {B} x {T}")
        if not blocks and c is not None and c.shape[0] != B:
            raise ValueError(f"c has batch {c.shape[0]} but {B} streams were asked for")
        move = (lambda v: None if v is None else v.to(self.device))
        return B, T, (c if blocks else move(c)), move(g)

    @torch.no_grad()
    def stream(self, n: int | None = None, c=None, g: Tensor | None = None, *, length: int | None = None,
               temperature: float = 1.0, greedy: bool = False, generator: torch.Generator | None = None,
               uniforms: Tensor | None = None, chunk: int = 8192, progress: bool = False,
               expected: int | None = None, method: str = "auto") -> Iterator[Tensor]:
        """Cached generation in pieces of ``chunk`` samples: yields bytes ``x[B, 2t]`` that concatenated are
        :meth:`generate`'s result. ``c``: ``Tensor[B, C, F]`` or an iterable of ``[B, C, F_i]`` frame blocks,
        consumed as generation reaches them (the stream then runs until they end). Memory: the state, one piece
        and one window of conditioning. ``method``: ``"native"`` (the fused C step, :class:`NativeWaveRNN`),
        ``"cached"`` (the PyTorch step) or ``"auto"`` (native on a CPU model in float32 where it builds, up to
        ``NATIVE_MAX_BATCH`` streams)."""
        from .wavenet_fast import FrameCond, piece_spans

        if method not in ("auto", "cached", "native"):
            raise ValueError(f"unknown method '{method}'; choose auto, cached or native")
        blocks = c is not None and not isinstance(c, Tensor)
        B, T, c, g = self._prepare(n, c, g, length, temperature, greedy, blocks=blocks)
        cond = None if c is None else FrameCond(self, c)
        native = method == "native" or (method == "auto" and self.device.type == "cpu" and self.dtype == torch.float32
                                         and B <= NATIVE_MAX_BATCH and NativeWaveRNN.available())
        if native:
            kernel = NativeWaveRNN(self, B)
            spk = None if g is None else self.speaker_embed(g).float().cpu()     # (B, speaker_dim)
        else:
            step = self.stepper(B, cond, g)
        bar = tqdm(total=T or expected, desc="sampling", unit="sample", disable=not progress, leave=False,
                   dynamic_ncols=True, delay=0.5)
        carry = None
        with eval_mode(self):
            for t, t1 in piece_spans(T, chunk, cond):
                u = None
                if not greedy:
                    u = (uniforms[:, 2 * t:2 * t1].to(self.device) if uniforms is not None
                         else time_major_uniforms(2 * (t1 - t), B, 1, generator=generator, device=self.device))
                if native:
                    x = self._native_piece(kernel, cond, spk, t, t1, u, temperature, greedy)
                else:
                    canvas = Canvas(self, B, None, None, temperature, greedy, u, shape=(2 * (t1 - t),),
                                    order=torch.arange(2 * (t1 - t)))
                    x = run_piece(self, canvas, step, 2 * t, carry)
                    carry = x[:, -1].clone()
                bar.update(t1 - t)
                yield x
        bar.close()

    def _native_piece(self, kernel: NativeWaveRNN, cond, spk: Tensor | None, t: int, t1: int, u: Tensor | None,
                      temperature: float, greedy: bool) -> Tensor:
        """Samples ``[t, t1)`` by the fused step: bytes ``x[B, 2 (t1 - t)]`` (``u``: ``[B, 2 (t1 - t), 1]``)."""
        B, tb = kernel.n, t1 - t
        parts = []
        if cond is not None:
            parts.append(cond.window(t, t1).permute(2, 0, 1).float().cpu())           # (tb, B, C)
        if spk is not None:
            parts.append(spk[None].expand(tb, -1, -1))
        ctx = torch.cat(parts, -1) if parts else None
        u = None if u is None else u[..., 0].cpu().transpose(0, 1).reshape(tb, 2, B)
        out, _ = kernel.run(ctx, tb, u, temperature, greedy)
        return out.permute(2, 0, 1).reshape(B, 2 * tb).to(self.device)

    def stream_waveform(self, *args, **kw) -> Iterator[Tensor]:
        """:meth:`stream`'s pieces as waveform pieces ``[B, t]`` (CPU, float32)."""
        for x in self.stream(*args, **kw):
            yield self.decode(x).cpu()

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


class NativeWaveRNN:
    """The fused CPU step (``wavernn_step.c``, built at first use by :mod:`arsound.core.native`): every byte of a
    block of samples in one native call. Holds the weights (float32, contiguous), the state ``h[n, H]`` and the
    previous bytes; :meth:`run` continues the stream. ``available()`` says whether the kernel could be built."""

    SOURCE = Path(__file__).with_name("wavernn_step.c")

    @classmethod
    def available(cls) -> bool:
        from ..core.native import library

        return library(cls.SOURCE) is not None

    def __init__(self, model: "WaveRNN", n: int) -> None:
        from ..core.native import library

        self.lib = library(self.SOURCE)
        if self.lib is None:
            raise RuntimeError("the native WaveRNN step is unavailable (no C compiler, or ARSOUND_NATIVE=0)")
        cfg, H = model.config, model.config.hidden
        f32 = (lambda t: t.detach().to("cpu", torch.float32).contiguous())
        self.weights = []
        for wi, wh, bi, bh in model.half_weights().values():     # "c", then "f"; matrices as [in, out] (the C file)
            self.weights += [f32(wi.t()), f32(wh.t()), f32(bi), f32(bh)]
        for net in (model.coarse, model.fine):
            self.weights += [f32(net[0].weight.t()), f32(net[0].bias), f32(net[2].weight.t()), f32(net[2].bias)]
        self.n, self.H, self.fc, self.In = n, H, cfg.fc, model.gru.input_size
        self.h = torch.zeros(n, H)
        self.prev = torch.tensor([SILENCE] * n, dtype=torch.long)

    def run(self, cond: Tensor | None, T: int, u: Tensor | None = None, temperature: float = 1.0,
            greedy: bool = False, forced: Tensor | None = None, logits: bool = False) -> tuple[Tensor, Tensor | None]:
        """``T`` more samples: ``cond[T, n, In - 3]`` (or None), uniforms ``u[T, 2, n]`` (None when greedy),
        ``forced[T, 2, n]`` bytes to feed instead of drawing -> ``(bytes[T, 2, n], logits[T, 2, n, 256] or None)``."""
        from ..core.native import ptr

        n = self.n
        out = torch.empty(T, 2, n, dtype=torch.long)
        lo = torch.empty(T, 2, n, BYTE) if logits else None
        args = [ctypes.c_int(v) for v in (n, T, self.H, self.In, self.fc)] + [ptr(w) for w in self.weights]
        cond = None if cond is None else cond.to("cpu", torch.float32).contiguous()
        u = None if u is None or greedy else u.to("cpu", torch.float32).contiguous()
        forced = None if forced is None else forced.to("cpu", torch.long).contiguous()
        args += [ptr(cond), ptr(self.h), ptr(self.prev), ptr(u), ctypes.c_float(temperature),
                 ctypes.c_int(int(greedy)), ptr(forced), ptr(lo), ptr(out)]
        if self.lib.wavernn_run(*args):
            raise MemoryError("the native WaveRNN step could not allocate its buffers")
        return out, lo


__all__ = ["NativeWaveRNN", "WaveRNN", "WaveRNNConfig", "split_bytes"]
