"""Cached WaveNet generation: O(L) work per sample with per-layer ring buffers (Fast WaveNet,
Paine et al., 2016, arXiv:1611.09482), with the whole step fused into a few preallocated matmuls.

One step feeds the previous sample and returns the parameters of the next one. Everything a step
needs is prepared once per stream:

- fused weights: the ``k`` taps of every dilated conv as one ``[k R, G]`` matrix; the residual 1x1
  with its bias and scale as one ``[H + 1, R]`` matrix (a constant-1 column in the gate buffer carries
  the bias); all ``L`` skip 1x1 convs (and the ``sqrt(1/L)`` skip scale) as one ``[L * (H + 1), S]``
  matrix, applied once per step to the gate outputs of every layer; weight norm folded (read once).
- conditioning: the projections into every gate (local + global + conv bias) for a block of steps
  at a time, in one matmul, laid out ``(t, L, B, G)``; a step copies its ``[L, B, G]`` slice into the
  gate pre-activations with one op.
- buffers: layer ``l`` (dilation ``d``) keeps its inputs in ``d`` small rings, one per ``t % d``, of
  ``2k - 1`` rows ``[B, R]``: time ``t`` sits at row ``q = -(t // d) % k`` of ring ``t % d``, so the ``k``
  taps ``u(t), u(t - d), ..., u(t - (k-1) d)`` are the ``k`` consecutive rows ``q .. q + k - 1``, one
  ``[B, k R]`` view, and rows ``k .. 2k - 2`` mirror rows ``0 .. k - 2`` so a window never wraps. The
  layer below writes ``u(t)`` in place (plus its mirror, on ``k - 1`` of every ``k`` steps): no
  buffer shifting, no concatenation, no allocation per step; all views are made once.

A step is then, per layer: one ``addmm_`` (the dilated conv onto the conditioning), ``tanh_``, ``glu``
(into the gate buffer), ``copy_`` + ``addmm_`` (residual, into the next layer's ring) and sometimes the
mirror ``copy_``; per step: input embedding, conditioning copy, and 8 small ops for the skip / output
network. On CPU eager PyTorch spends a few microseconds per op, which bounds batch-1 speed; larger
batches come almost free.

Batches of different lengths run sorted by length (longest first): when streams finish, the batch
shrinks to its first ``n`` rows (views of the same buffers), so finished streams cost nothing. The loop
itself, the draws, prompt and uniforms are the shared engine's (``core.model.run_steps``): this module
provides its step (:func:`cached_steps`).

Not here: CUDA graphs / ``torch.compile`` of the step (the slot indices change every step; untested
without a GPU). On CUDA the same eager loop runs, launch-bound at batch 1; ``wavenet_triton.py`` is the
one-launch-per-block alternative for mu-law heads (``generate(method="triton")``).
"""
from __future__ import annotations

import ctypes
import math
from pathlib import Path

import torch
from torch import Tensor
from tqdm.auto import tqdm

from ..core.device import step_threads

SQRT_HALF = math.sqrt(0.5)
COND_BLOCK_BYTES = 8 * 2 ** 20  # memory for one block of precomputed gate conditioning


_glu = torch._C._nn.glu  # F.glu without an ``out=``; this one writes into a view of the gate buffer


def _w(conv) -> Tensor:
    """A conv's weight with weight norm (if any) folded, detached: ``[out, in, k]``."""
    return conv.weight.detach()


class CachedWaveNet:
    """Per-stream state of a :class:`~arsound.audio.wavenet.WaveNet` for cached generation.

    model: the WaveNet (eval mode); batch: streams B; cond: the local conditioning (:class:`FrameCond`) or
    None; g: ``LongTensor[B]`` or None. Lives in ``model.state`` while streaming.

    The rings hold rescaled residual streams ``u_l = h_l / sqrt(0.5)^l``: then ``h_{l+1} = sqrt(0.5)
    (h_l + r_l)`` becomes ``u_{l+1} = u_l + r_l / sqrt(0.5)^l``, a plain in-place ``addmm_``, and the
    scales live in the (once-computed) tap and residual weights.
    """

    @torch.inference_mode()
    def __init__(self, model, batch: int, cond: "FrameCond | None" = None, g: Tensor | None = None) -> None:
        cfg = model.config
        self.model = model
        dev = model.device
        dt = model.dtype
        L, R, G, k = cfg.layers, cfg.residual_channels, cfg.gate_channels, cfg.kernel_size
        H, S = G // 2, cfg.skip_channels
        self.L, self.H, self.G, self.k = L, H, G, k
        self.dilations = list(model.dilations)
        self.t, self.n = 0, batch
        # ---- input: embedding table, or the affine map of the scalar input --------------------------
        self.mulaw = cfg.head == "mulaw"
        if self.mulaw:
            self.table = model.embed.weight.detach()                        # (K, R)
        else:
            self.in_w = _w(model.input_conv)[:, 0, 0][None, :].contiguous()  # (1, R)
            self.in_b = model.input_conv.bias.detach()                      # (R,)
        # ---- linear prediction (LP WaveNet): the synthesis filter in the loop --------------------------
        self.lp = model.is_lp
        if self.lp:
            from ..core.distributions import mu_law_decode

            P = cfg.lpc_order
            self.P = P
            w = _w(model.lp_input)[:, :, 0]                                 # (R, 2): [p[t], s[t-1]]
            self.lp_w = w.t().contiguous()                                   # (2, R)
            self.lp_b = model.lp_input.bias.detach()                        # (R,)
            K = 2 ** cfg.bits
            self.levels = mu_law_decode(torch.arange(K, device=dev), K - 1).to(dt)   # (K,) excitation values
            # past signal s in a mirrored ring: slot t % P and t % P + P; s[t-P .. t-1] = hbuf[:, t % P:][:, :P]
            self.hbuf = torch.zeros(batch, 2 * P, device=dev, dtype=dt)
            self.pred = torch.zeros(batch, device=dev, dtype=dt)             # p[t] of the last step
            self.lpin = torch.zeros(batch, 2, device=dev, dtype=dt)          # [p[t], s[t-1]]
            self.log: list[Tensor] = []                                     # p[t] of the steps not yet taken
        # ---- per-layer fused weights ------------------------------------------------------------------
        self.wconv, self.wres = [], []
        wskip, bskip = [], 0
        for i, layer in enumerate(model.layers):
            W = _w(layer.conv) * SQRT_HALF ** i                             # (G, R, k), acts on u_i
            # the window holds [u(t), u(t - d), ..., u(t - (k-1) d)]; conv tap k-1-m multiplies u(t - m d)
            self.wconv.append(torch.cat([W[:, :, k - 1 - m].t() for m in range(k)], 0).contiguous())  # (kR, G)
            if layer.res is not None:
                wr = torch.cat([_w(layer.res)[:, :, 0].t(), layer.res.bias.detach()[None]], 0)  # (H + 1, R)
                self.wres.append((wr / SQRT_HALF ** i).contiguous())
            ws = _w(layer.skip)[:, :, 0].t()                                # (H, S)
            wskip.append(torch.cat([ws, ws.new_zeros(1, S)], 0))
            bskip = bskip + layer.skip.bias.detach()
        scale = math.sqrt(1.0 / L)
        self.wskip = (torch.cat(wskip, 0) * scale).contiguous()              # (L * (H + 1), S)
        self.bskip = bskip * scale                                          # (S,)
        self.w1, self.b1 = _w(model.out1)[:, :, 0].t().contiguous(), model.out1.bias.detach()
        self.w2, self.b2 = _w(model.out2)[:, :, 0].t().contiguous(), model.out2.bias.detach()
        # ---- gate conditioning: conv bias (+ speaker) per layer, local projection by blocks -------------
        bias = torch.stack([layer.conv.bias.detach() for layer in model.layers])  # (L, G)
        if g is not None:
            base = bias[:, None, :] + model.global_cond(g).view(batch, L, G).transpose(0, 1)  # (L, B, G)
        else:
            base = bias[:, None, :]                                                # (L, 1, G)
        self.base = base.contiguous()
        self.cond = cond
        if cond is not None:
            self.wc = _w(model.cond_proj)[:, :, 0]                         # (L * G, C)
            # a block of steps holds its projected conditioning [tb, L, B, G] and, while it is made, about three
            # copies of the upsampled frames [B, C, tb]: both within COND_BLOCK_BYTES
            self.block = max(1, COND_BLOCK_BYTES // (4 * batch * max(L * G, 3 * cfg.cond_channels)))
            self.cbuf = torch.empty(self.block, L, batch, G, device=dev, dtype=dt)
            if self.lp:
                self.abuf = torch.empty(self.block, batch, self.P, device=dev, dtype=dt)
            self.block_start, self.block_end = 0, 0
        # ---- buffers ----------------------------------------------------------------------------------
        # layer input rings: sub-ring r = t % d holds times r, r + d, ... at rows q = -(t // d) % k, so the k
        # taps of time t are k consecutive rows; rows k .. 2k-2 mirror rows 0 .. k-2 so they never wrap
        self.rings = [torch.zeros(d, batch, 2 * k - 1, R, device=dev, dtype=dt) for d in self.dilations]
        self.zbuf = torch.empty(L, batch, G, device=dev, dtype=dt)       # gate pre-activations
        self.gbuf = torch.ones(batch, L * (H + 1), device=dev, dtype=dt)  # gate outputs + a 1 per layer
        self.sk1 = torch.empty(batch, S, device=dev, dtype=dt)
        self.sk2 = torch.empty(batch, S, device=dev, dtype=dt)
        self.params = torch.empty(batch, model.head.num_params, device=dev, dtype=dt)
        self.xin = torch.empty(batch, 1, device=dev, dtype=dt)
        self._bind(batch)

    def _bind(self, n: int) -> None:
        """(Re)build the per-step views on the first ``n`` streams."""
        L, H = self.L, self.H
        self.n = n
        k = self.k
        # views[l][r * k + q] = (window [n, kR], row q [n, R], its mirror row or None) of sub-ring r
        views = []
        for ring, d in zip(self.rings, self.dilations):
            r_n = ring[:, :n]                                           # (d, n, 2k - 1, R)
            wins = [r_n[:, :, q:q + k].flatten(2).unbind(0) for q in range(k)]
            rows = [r_n[:, :, q].unbind(0) for q in range(k)]
            mirs = [r_n[:, :, q + k].unbind(0) if q < k - 1 else [None] * d for q in range(k)]
            views.append([(wins[q][r], rows[q][r], mirs[q][r]) for r in range(d) for q in range(k)])
        self.views0 = views[0]
        self.z_n = self.zbuf[:, :n]
        # per layer: z, the tanh half of z, gate output view, gate input view (with the 1), window weight,
        # residual weight, the next layer's views and dilation
        self.plan = []
        for i in range(L):
            z = self.zbuf[i, :n]
            nxt = (self.wres[i], views[i + 1], self.dilations[i + 1]) if i < L - 1 else (None, None, 1)
            self.plan.append((z, z[:, :H], self.gbuf[:n, i * (H + 1):i * (H + 1) + H],
                              self.gbuf[:n, i * (H + 1):(i + 1) * (H + 1)], self.wconv[i], *nxt))
        self.g_n, self.sk1_n, self.sk2_n = self.gbuf[:n], self.sk1[:n], self.sk2[:n]
        self.params_n, self.xin_n = self.params[:n], self.xin[:n]
        self.base_n = self.base if self.base.shape[1] == 1 else self.base[:, :n]
        if self.cond is not None:
            self.cblock = self.cbuf[:, :, :n]
        if self.lp:
            self.hbuf_n, self.pred_n, self.lpin_n = self.hbuf[:n], self.pred[:n], self.lpin[:n]
            self.ablock = self.abuf[:, :n]

    def shrink(self, n: int) -> None:
        """Keep only the first ``n`` streams (the others have finished)."""
        if not 1 <= n <= self.n:
            raise ValueError(f"can shrink {self.n} streams to 1..{self.n}, not {n}")
        if n < self.n:
            self._bind(n)

    def _cond(self, t: int) -> Tensor:
        """Gate conditioning of every layer at time ``t``: ``[L, n, G]`` (or ``[L, 1, G]``)."""
        if self.cond is None:
            return self.base_n
        if not self.block_start <= t < self.block_end:  # project the next block of steps at once
            t1 = self.cond.available(t + self.block)
            if t1 <= t:
                raise ValueError(f"local conditioning covers {t} samples; cannot generate sample {t + 1}")
            n, L, G = self.n, self.L, self.G
            p = torch.matmul(self.wc, self.cond.window(t, t1)[:n])     # (n, L * G, tb)
            p = p.view(n, L, G, t1 - t).permute(3, 1, 0, 2)            # (tb, L, n, G)
            torch.add(p, self.base_n, out=self.cblock[:t1 - t])
            if self.lp:                                                 # the block's per-sample predictors
                self.ablock[:t1 - t] = self.cond.lpc_window(t, t1)[:n].transpose(0, 1)
            self.block_start, self.block_end = t, t1
        return self.cblock[t - self.block_start]

    def step(self, x_prev: Tensor | None) -> Tensor:
        """Feed ``x[t - 1]`` (``[n]``; None at ``t = 0``) and return params ``[n, P]`` for ``x[t]``.

        The result is a view of a buffer that the next step overwrites: copy it to keep it. Inference
        only: call under ``torch.inference_mode()``, as the buffers are inference tensors.
        """
        t, k, d = self.t, self.k, self.dilations[0]
        win, cur, mir = self.views0[(t % d) * k + (-(t // d)) % k]      # u_0(t); zeros at t = 0
        cond = self._cond(t)
        if t > 0:
            if self.mulaw:
                torch.index_select(self.table, 0, x_prev, out=cur)
            else:
                self.xin_n.copy_(self.model.input_value(x_prev).view(-1, 1))
                torch.addmm(self.in_b, self.xin_n, self.in_w, out=cur)
        if self.lp:
            self._lp_input(t, x_prev, cur)
        if mir is not None and (t > 0 or self.lp):
            mir.copy_(cur)
        self.z_n.copy_(cond)                                            # all layers' conditioning
        for z, za, gout, gin, wconv, wr, views, d in self.plan:
            z.addmm_(win, wconv)                                        # dilated conv: k taps, one matmul
            za.tanh_()
            _glu(z, -1, out=gout)                                       # tanh(a) * sigmoid(b)
            if wr is not None:                                          # next layer: u' = u + [a, 1] @ wr
                win, nxt, mir = views[(t % d) * k + (-(t // d)) % k]
                nxt.copy_(cur).addmm_(gin, wr)
                if mir is not None:
                    mir.copy_(nxt)
                cur = nxt
        self.sk1_n.copy_(self.bskip).addmm_(self.g_n, self.wskip).relu_()
        self.sk2_n.copy_(self.b1).addmm_(self.sk1_n, self.w1).relu_()
        self.params_n.copy_(self.b2).addmm_(self.sk2_n, self.w2)
        self.t = t + 1
        return self.params_n


    def _lp_input(self, t: int, x_prev: Tensor | None, cur: Tensor) -> None:
        """The synthesis filter's step: ``s[t-1] = p[t-1] + e[t-1]`` into the ring, ``p[t] = a[t] . s[t-P .. t-1]``,
        and ``[p[t], s[t-1]]`` through the input 1x1 conv added to the row ``cur`` (``[n, R]``)."""
        P, h = self.P, self.hbuf_n
        if t > 0:
            s_prev = self.lpin_n[:, 1]
            torch.add(self.pred_n, self.levels[x_prev], out=s_prev)
            j = (t - 1) % P
            h[:, j] = s_prev
            h[:, j + P] = s_prev
        else:
            self.lpin_n[:, 1] = 0
        a = self.ablock[t - self.block_start]                           # (n, P): a[t, k - 1] multiplies s[t - k]
        torch.sum(h[:, t % P:t % P + P] * a.flip(-1), -1, out=self.pred_n)
        self.lpin_n[:, 0] = self.pred_n
        if t > 0:
            cur.addmm_(self.lpin_n, self.lp_w).add_(self.lp_b)
        else:
            torch.addmm(self.lp_b, self.lpin_n, self.lp_w, out=cur)
        self.log.append(self.pred_n.clone())

    def take_predictions(self, batch: int) -> Tensor:
        """The predictions ``p[t]`` of the steps since the last call: ``[batch, steps]`` (streams that finished
        early hold 0 past their end); the signal is ``p + e`` of the drawn excitation."""
        out = self.pred.new_zeros(batch, len(self.log))
        for i, p in enumerate(self.log):
            out[:len(p), i] = p
        self.log = []
        return out


class FrameCond:
    """A WaveNet's local conditioning, upsampled window by window: ``window(t0, t1)`` is samples ``[t0, t1)``
    of ``model.upsample(c)`` computed from the frames that reach them (a margin of frames on each side, the
    upsampler's receptive field), bitwise equal to upsampling the whole ``c`` at once. ``c`` is a
    ``Tensor[B, C, F]`` or an iterable of ``[B, C, F_i]`` blocks (frames of a stream of any length, consumed
    as generation reaches them and dropped behind it): memory stays one window."""

    def __init__(self, model, c) -> None:
        self.model, self.hop = model, model.config.hop_length
        scales, reach, rate = model.config.upsample_scales, 0.0, 1
        for s in scales:                                            # each conv sees +-s of its rate's units
            reach += s / (rate * s)
            rate *= s
        self.margin = math.ceil(reach) + 1                          # frames
        self.blocks = iter([c] if isinstance(c, Tensor) else c)
        self.buf, self.first, self.done = None, 0, False            # frames [first, first + buf.shape[-1])

    def _pull(self, frames: int) -> None:
        """Read blocks until the buffer reaches frame ``frames`` or the stream ends."""
        while not self.done and (self.buf is None or self.first + self.buf.shape[-1] < frames):
            block = next(self.blocks, None)
            if block is None:
                self.done = True
                break
            self.model.check_frames(block)
            block = block.to(self.model.device, self.model.dtype)
            self.buf = block if self.buf is None else torch.cat([self.buf, block], -1)

    @property
    def frames_end(self) -> int:
        return self.first + (0 if self.buf is None else self.buf.shape[-1])

    def available(self, t1: int) -> int:
        """``t1``, or fewer samples where the conditioning ends before it."""
        self._pull(-(-t1 // self.hop) + self.margin)
        return min(t1, self.frames_end * self.hop)

    def window(self, t0: int, t1: int) -> Tensor:
        """Upsampled conditioning of samples ``[t0, t1)``: ``Tensor[B, C, t1 - t0]`` (call :meth:`available` first)."""
        m, hop = self.margin, self.hop
        fa = max(self.first, t0 // hop - m)
        fb = min(self.frames_end, -(-t1 // hop) + m)
        if fa > self.first:                                         # frames behind the window are done with
            self.buf, self.first = self.buf[..., fa - self.first:], fa
        up = self.model.upsample(self.buf[..., :fb - fa])           # samples [fa * hop, fb * hop)
        return up[..., t0 - fa * hop:t1 - fa * hop]

    def lpc_window(self, t0: int, t1: int) -> Tensor:
        """An LP model's per-sample predictors of samples ``[t0, t1)``: ``Tensor[B, t1 - t0, P]``, equal to
        ``model.lpc`` of the whole ``c`` (call after :meth:`window` for the same span)."""
        hop = self.hop
        fb = min(self.frames_end, -(-t1 // hop) + self.margin)
        return self.model.lpc(self.buf[..., :fb - self.first], t1 - t0, start=t0 - self.first * hop)


class NativeWaveNet:
    """The fused CPU step (``wavenet_step.c``, built at first use by :mod:`arsound.core.native`) of a mu-law or
    logistic-mixture WaveNet: every step of a block of samples in one native call, on :class:`CachedWaveNet`'s fused
    weights and gate conditioning (which it keeps, block by block), the streams spread over ``threads`` threads.
    ``precision="bf16"`` stores the five big matrices as bfloat16 (half the bytes a step reads; sums stay float32).
    Holds the rings and the last sample; :meth:`run` continues."""

    SOURCE = Path(__file__).with_name("wavenet_step.c")
    PRECISIONS = ("fp32", "bf16")

    @classmethod
    def available(cls) -> bool:
        from ..core.native import library

        return library(cls.SOURCE) is not None

    @classmethod
    def check_precision(cls, precision: str) -> None:
        """Refuse a precision the native step does not have, in one line."""
        if precision not in cls.PRECISIONS:
            raise ValueError(f"unknown precision '{precision}'; choose {' or '.join(cls.PRECISIONS)}")

    @classmethod
    def covers(cls, model, prompt, lengths, device) -> bool:
        """Whether the native step can run this generation: a mu-law or mixture head, no linear prediction, no
        prompt, streams of one length, float32 on the CPU."""
        same = lengths is None or bool((lengths == lengths[0]).all())
        return (model.config.head in ("mulaw", "mol") and not model.is_lp and prompt is None and same
                and torch.device(device).type == "cpu" and model.dtype == torch.float32)

    def __init__(self, model, batch: int, cond: "FrameCond | None", g: Tensor | None, *, threads: int = 1,
                 precision: str = "fp32") -> None:
        from ..core.native import library

        self.check_precision(precision)
        self.lib = library(self.SOURCE)
        if self.lib is None:
            raise RuntimeError("the native WaveNet step is unavailable (no C compiler, or ARSOUND_NATIVE=0)")
        self.eng = eng = CachedWaveNet(model, batch, cond, g)
        f32 = (lambda t: t.detach().to("cpu", torch.float32).contiguous())
        big = f32 if precision == "fp32" else (lambda t: f32(t).to(torch.bfloat16).view(torch.int16))
        cfg, head = model.config, model.head
        self.mol = cfg.head == "mol"
        self.dims = (batch, cfg.layers, cfg.residual_channels, cfg.gate_channels, cfg.skip_channels,
                     head.num_params, cfg.kernel_size)
        self.mix = (head.num_mixtures, head.num_classes, head.log_scale_min) if self.mol else (0, 0, 0.0)
        self.threads, self.bf16 = max(1, min(threads, batch)), precision == "bf16"
        self.dil = torch.tensor(eng.dilations, dtype=torch.int32)
        if self.mol:
            self.inputs = [None, f32(eng.in_w.flatten()), f32(eng.in_b)]
        else:
            self.inputs = [f32(eng.table), None, None]
        self.weights = [big(torch.cat([w.flatten() for w in eng.wconv])),
                        big(torch.cat([w.flatten() for w in eng.wres]) if eng.wres else torch.zeros(1)),
                        big(eng.wskip), f32(eng.bskip), big(eng.w1), f32(eng.b1), big(eng.w2), f32(eng.b2)]
        k, R = cfg.kernel_size, cfg.residual_channels
        self.ring = torch.zeros(sum(batch * ((k - 1) * d + 1) * R for d in eng.dilations))
        self.prev = torch.zeros(batch, dtype=torch.long)
        self.t = 0

    def gate_conditioning(self, T: int) -> tuple[Tensor, tuple[int, int, int]]:
        """The gate conditioning of the next ``T`` steps and its (step, layer, stream) strides: ``[T, L, n, G]``
        from the engine's blocks, or without local conditioning the engine's ``[L, n or 1, G]`` with step stride 0."""
        eng, parts, t = self.eng, [], self.t
        if eng.cond is None:
            base = eng.base_n.to("cpu", torch.float32).contiguous()
            return base, (0, base.stride(0), base.stride(1) if base.shape[1] > 1 else 0)
        while t < self.t + T:
            eng._cond(t)
            end = min(eng.block_end, self.t + T)
            parts.append(eng.cblock[t - eng.block_start:end - eng.block_start].clone())  # the next block reuses it
            t = end
        c = torch.cat(parts).to("cpu", torch.float32).contiguous()
        return c, (c.stride(0), c.stride(1), c.stride(2))

    def run(self, T: int, u: Tensor | None = None, temperature: float = 1.0, greedy: bool = False,
            forced: Tensor | None = None, logits: bool = False) -> tuple[Tensor, Tensor | None]:
        """``T`` more samples: uniforms ``u[T, n, U]`` (or ``[T, n]`` when ``U = 1``; None when greedy),
        ``forced[T, n]`` samples to feed instead of drawing -> ``(x[T, n], params[T, n, P] or None)``."""
        from ..core.native import ptr

        n, L, R, G, S, P, k = self.dims
        cond, (cs_t, cs_l, cs_b) = self.gate_conditioning(T)
        out = torch.empty(T, n, dtype=torch.long)
        lo = torch.empty(T, n, P) if logits else None
        u = None if u is None or greedy else u.to("cpu", torch.float32).reshape(T, n, -1).contiguous()
        forced = None if forced is None else forced.to("cpu", torch.long).contiguous()
        M, Kb, lsmin = self.mix
        i, f, i64 = ctypes.c_int, ctypes.c_float, ctypes.c_int64
        args = [i(v) for v in (n, T, L, R, G, S, P, k)] + [ptr(self.dil), i(int(self.mol)), i(M), i(Kb), f(lsmin),
                                                           i(int(self.bf16))]
        args += [ptr(w) for w in self.inputs] + [ptr(w) for w in self.weights]
        args += [ptr(cond), i64(cs_t), i64(cs_l), i64(cs_b), ptr(self.ring), i64(self.t), ptr(self.prev), ptr(u),
                 i(1 if u is None else u.shape[-1]), f(temperature), i(int(greedy)), ptr(forced), ptr(lo), ptr(out),
                 i(self.threads)]
        if self.lib.wavenet_run(*args):
            raise MemoryError("the native WaveNet step could not allocate its buffers or threads")
        self.t += T
        return out, lo


def cached_steps(model, batch: int, lengths: Tensor | None, cond: FrameCond | None, g: Tensor | None):
    """The step function of cached generation for ``core.model.run_steps`` (call inside
    ``model.streaming()`` and ``torch.inference_mode()``): ``step(t, x[t - 1]) -> params[n_t, P]``.

    ``lengths`` (``[batch]``, sorted longest first, or None: all equal): when streams finish, the engine
    shrinks to the ``n_t`` still running, the first rows (views of the same buffers), so finished streams
    cost nothing.
    """
    eng = CachedWaveNet(model, batch, cond, g)
    model.state["engine"] = eng
    shrink_at = {}                                                         # t -> streams running from t on
    if lengths is not None:
        ends = lengths.tolist()
        for j in range(batch - 1, 0, -1):
            if ends[j] < ends[j - 1]:
                shrink_at[ends[j]] = j

    def step(t: int, prev: Tensor | None) -> Tensor:
        if t in shrink_at:
            eng.shrink(shrink_at[t])
        return eng.step(prev if prev is None or len(prev) == eng.n else prev[:eng.n])

    return step


def piece_spans(T: int | None, chunk: int, cond: FrameCond | None):
    """The spans ``(t, t1)`` of a generation in pieces: ``chunk`` samples each up to ``T``, or while the
    conditioning frames last (asked for as each piece starts, so frame blocks are read as generation reaches
    them)."""
    t = 0
    while True:
        t1 = t + chunk if T is None else min(t + chunk, T)
        if cond is not None:
            t1 = cond.available(t1)
        if t1 <= t:
            return
        yield t, t1
        t = t1


def stream_generate(model, batch: int, lengths: Tensor | None, cond: FrameCond | None, g: Tensor | None, *,
                    temperature: float, greedy: bool, generator, uniforms: Tensor | None, prompt: Tensor | None,
                    chunk: int, progress: bool, expected: int | None = None, kernel=None):
    """Cached generation in pieces of ``chunk`` samples: yields ``x[B, t]`` in order (inputs in sorted
    stream order, longest first, as :func:`cached_steps` wants; the caller unsorts). Each piece is one
    canvas of the shared engine (``core.model.run_steps``); the cached state, the last drawn values and the
    uniforms carry over, so the pieces concatenate to one uninterrupted run: uniforms are drawn time-major,
    ``(t, B, U)`` per piece, which on the CPU generator is the same sequence as one ``(T, B, U)`` draw.

    lengths: ``LongTensor[B]`` sorted descending, or None (every stream runs until ``cond`` ends).
    uniforms: injected ``[B, T, U]`` (sorted) or None. prompt: ``[B, T_p]`` (sorted) or None.
    expected: the samples the progress bar counts towards when ``cond`` blocks do not tell.
    kernel: None (the cached PyTorch step) or ``kernel(model, batch, cond, g)`` building a whole-step engine with
    ``run(t, u[t, B, U] | None, temperature, greedy) -> (x[t, B], _)``: :class:`NativeWaveNet` or
    ``wavenet_graph.GraphWaveNet`` (check their ``covers`` first).
    """
    from ..core.model import Canvas, run_piece
    from ..core.sampling import time_major_uniforms

    T = None if lengths is None else int(lengths[0])
    U, dev = model.head.num_uniforms, model.device
    unknown = -1 if model.head.discrete else float("nan")
    bar = tqdm(total=T or expected, desc="sampling", unit="sample", disable=not progress, leave=False,
               dynamic_ncols=True, delay=0.5)  # shown once a piece takes a while: an early error prints alone
    with model.streaming(), torch.inference_mode(), step_threads(dev, batch):
        if kernel is not None:
            engine = kernel(model, batch, cond, g)
        else:
            step = cached_steps(model, batch, lengths, cond, g)
        carry = None
        for t, t1 in piece_spans(T, chunk, cond):
            u = None
            if not greedy:
                u = (uniforms[:, t:t1].to(dev) if uniforms is not None else
                     time_major_uniforms(t1 - t, batch, U, generator=generator, device=dev))
            if kernel is not None:
                x, _ = engine.run(t1 - t, None if u is None else u.transpose(0, 1), temperature, greedy)
                bar.update(t1 - t)
                yield x.t().to(dev)
                continue
            p = None
            if prompt is not None and t < prompt.shape[1]:
                p = torch.nn.functional.pad(prompt[:, t:t1], (0, max(0, t1 - max(t, prompt.shape[1]))), value=unknown)
            canvas = Canvas(model, batch, p, None, temperature, greedy, u, shape=(t1 - t,), order=torch.arange(t1 - t))
            x = run_piece(model, canvas, step, t, carry)
            carry = x[:, -1].clone()                # the next piece's first step takes the rows still running
            bar.update(t1 - t)
            yield x
    bar.close()

