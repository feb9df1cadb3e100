"""A WaveNet generation step that never waits for the host, replayed as one CUDA graph per sample.

The cached step (:class:`~arsound.audio.wavenet_fast.CachedWaveNet`) picks each layer's ring rows and its
conditioning row in Python at every step: cheap on a CPU, and just what a CUDA graph cannot hold (a graph
replays fixed kernels on fixed addresses). Here every position is a device tensor: layer ``l`` keeps its inputs
``u_l`` in a ring of ``M_l = (k - 1) d_l + 1`` rows per stream, writes ``u_l(t)`` at row ``t mod M_l``
(``index_copy_``) and reads its ``k`` taps at rows ``(t - m d_l) mod M_l`` (``index_select``; a row not yet
written is zero, the causal padding); the gate conditioning and the uniforms of the step are row ``j`` of fixed
block buffers; the draw is the head's own ``sample`` / ``mode``; the step advances ``t`` and ``j`` itself. The
weights are the cached step's fused ones, so the arithmetic is the same.

On CUDA the step is captured once (``torch.cuda.CUDAGraph``) and each sample is one graph launch instead of some
ten kernel launches per layer; elsewhere the same step runs eagerly (that is how the tests check it against the
cached step on the CPU). It covers what the native CPU step covers: a mu-law or mixture head, no linear
prediction, no prompt, streams of one length.

Letters: B streams, L layers, R residual, G gate (2H), S skip channels, k taps, U uniforms per sample.
"""
from __future__ import annotations

import torch
from torch import Tensor

from .wavenet_fast import CachedWaveNet, FrameCond, NativeWaveNet, _glu

BLOCK = 4096  # steps per block of conditioning and uniforms (fewer where a block of conditioning is smaller)


class GraphWaveNet:
    """Generation by the sync-free step, in blocks of steps: ``run(T, u, temperature, greedy) -> x[T, B]``
    (the interface of :class:`~arsound.audio.wavenet_fast.NativeWaveNet`). Build and run it under
    ``torch.inference_mode()``. ``capture``: record the step as a CUDA graph (default: on CUDA)."""

    covers = staticmethod(lambda model, prompt, lengths: NativeWaveNet.covers(model, prompt, lengths, "cpu"))

    @torch.inference_mode()
    def __init__(self, model, batch: int, cond: FrameCond | None, g: Tensor | None, *,
                 capture: bool | None = None) -> None:
        self.model, self.B = model, batch
        self.eng = eng = CachedWaveNet(model, batch, cond, g)          # the fused weights, the conditioning blocks
        dev, dt = model.device, model.dtype
        cfg = model.config
        L, R, k, H = cfg.layers, cfg.residual_channels, cfg.kernel_size, eng.H
        self.capture = dev.type == "cuda" if capture is None else capture
        if self.capture and dev.type != "cuda":
            raise ValueError("a CUDA graph needs the model on a CUDA device")
        self.block = min(BLOCK, eng.block) if cond is not None else BLOCK
        long = dict(device=dev, dtype=torch.long)
        self.sizes = [(k - 1) * d + 1 for d in eng.dilations]
        self.offsets = [torch.arange(k, **long) * d for d in eng.dilations]    # tap m reads u(t - m d)
        self.rings = [torch.zeros(batch, M, R, device=dev, dtype=dt) for M in self.sizes]
        self.gbuf = torch.ones(batch, L * (H + 1), device=dev, dtype=dt)      # gate outputs + a 1 per layer
        self.cbuf = torch.zeros(self.block, L, batch if eng.base.shape[1] > 1 or cond is not None else 1,
                                eng.G, device=dev, dtype=dt)
        self.ubuf = torch.full((self.block, batch, model.head.num_uniforms), 0.5, device=dev, dtype=torch.float32)
        self.xbuf = torch.zeros(self.block, batch, **long)
        self.pbuf = torch.zeros(self.block, batch, model.head.num_params, device=dev, dtype=dt)
        self.t, self.j = torch.zeros(1, **long), torch.zeros(1, **long)
        self.prev = torch.zeros(batch, **long)
        self.started = torch.zeros((), device=dev, dtype=dt)                  # 0 at t = 0: u_0(0) is zero
        self.xin = torch.zeros(batch, 1, device=dev, dtype=dt)
        self.steps = 0                                                        # steps taken (host side)
        self.graph, self.recorded = None, None

    def _step(self, temperature: float, greedy: bool) -> None:
        """One sample for every stream, everything on the device: feed ``prev``, draw ``x[t]`` into ``xbuf[j]``."""
        e, H = self.eng, self.eng.H
        if e.mulaw:
            row = e.table.index_select(0, self.prev)
        else:
            self.xin.copy_(self.model.input_value(self.prev).view(-1, 1))
            row = torch.addmm(e.in_b, self.xin, e.in_w)
        row = row * self.started                                              # (B, R)
        cond = self.cbuf.index_select(0, self.j)[0]                           # (L, B or 1, G)
        for i, (ring, M, off) in enumerate(zip(self.rings, self.sizes, self.offsets)):
            ring.index_copy_(1, torch.remainder(self.t, M), row[:, None])
            win = ring.index_select(1, torch.remainder(self.t - off, M)).flatten(1)   # (B, k R)
            z = torch.addmm(cond[i], win, e.wconv[i])                        # (B, G)
            z[:, :H].tanh_()
            gin = self.gbuf[:, i * (H + 1):(i + 1) * (H + 1)]
            _glu(z, -1, out=gin[:, :H])                                       # tanh(a) * sigmoid(b)
            if i < len(self.rings) - 1:
                row = torch.addmm(row, gin, e.wres[i])                        # u' = u + [gate, 1] @ wres
        sk1 = torch.addmm(e.bskip, self.gbuf, e.wskip).relu_()
        sk2 = torch.addmm(e.b1, sk1, e.w1).relu_()
        params = torch.addmm(e.b2, sk2, e.w2)                                 # (B, P)
        head = self.model.head
        x = head.mode(params) if greedy else head.sample(params, self.ubuf.index_select(0, self.j)[0],
                                                          temperature=temperature)
        self.pbuf.index_copy_(0, self.j, params[None])
        self.xbuf.index_copy_(0, self.j, x[None])
        self.prev.copy_(x)
        self.t.add_(1)
        self.j.add_(1)
        self.started.fill_(1)

    def _reset(self) -> None:
        for ring in self.rings:
            ring.zero_()
        for v in (self.t, self.j, self.prev, self.started):
            v.zero_()

    def _record(self, temperature: float, greedy: bool) -> None:
        """Capture the step as a CUDA graph (once per temperature / greedy); only before the first step."""
        side = torch.cuda.Stream(self.model.device)
        side.wait_stream(torch.cuda.current_stream(self.model.device))
        with torch.cuda.stream(side):                                         # warm-up: allocations, library handles
            for _ in range(2):
                self._step(temperature, greedy)
        torch.cuda.current_stream(self.model.device).wait_stream(side)
        self.graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(self.graph):
            self._step(temperature, greedy)
        self._reset()                                                         # the warm-up steps are undone
        self.recorded = (temperature, greedy)

    def gate_conditioning(self, t: int, m: int) -> Tensor:
        """The gate conditioning of steps ``[t, t + m)``: ``[m, L, B, G]`` from the engine's blocks (without local
        conditioning the engine's ``[L, B or 1, G]`` for every step)."""
        e = self.eng
        if e.cond is None:
            return e.base_n.expand(m, *e.base_n.shape)
        parts, s = [], t
        while s < t + m:
            e._cond(s)
            end = min(e.block_end, t + m)
            parts.append(e.cblock[s - e.block_start:end - e.block_start])
            s = end
        return torch.cat(parts)

    @torch.inference_mode()
    def run(self, T: int, u: Tensor | None = None, temperature: float = 1.0, greedy: bool = False,
            logits: bool = False) -> tuple[Tensor, Tensor | None]:
        """``T`` more samples: uniforms ``u[T, B, U]`` (None when greedy) -> ``(x[T, B], params[T, B, P] or None)``."""
        if self.capture and self.recorded != (temperature, greedy):
            if self.steps:
                raise ValueError("a captured generation keeps its temperature and greedy setting")
            self._record(temperature, greedy)
        xs, ps, t = [], [], 0
        while t < T:
            m = min(self.block, T - t)
            self.cbuf[:m].copy_(self.gate_conditioning(self.steps + t, m))
            if u is not None and not greedy:
                self.ubuf[:m].copy_(u[t:t + m].reshape(m, self.B, -1))
            self.j.zero_()
            for _ in range(m):
                if self.graph is not None:
                    self.graph.replay()
                else:
                    self._step(temperature, greedy)
            xs.append(self.xbuf[:m].clone())
            if logits:
                ps.append(self.pbuf[:m].clone())
            t += m
        self.steps += T
        return torch.cat(xs), (torch.cat(ps) if logits else None)
