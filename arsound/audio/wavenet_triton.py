"""Fused WaveNet generation in one Triton kernel: a whole block of time steps per launch, one program
per stream (the persistent-kernel idea of NVIDIA's nv-wavenet, written in Triton).

The eager cached generator (``wavenet_fast.py``) issues about ``5 L + 10`` small ops per sample; on a GPU
each is a kernel launch of a few microseconds, so batch 1 is launch-bound. Here one launch runs
``steps`` samples of every stream: per sample, per layer, the ``k`` taps are read from the layer's ring
buffer, multiplied by the tap weights, the conditioning (precomputed per block, with the conv bias and
the speaker term folded in) added, the gate, skip and residual computed, and the residual written into
the next layer's ring; then the output network and the inverse-CDF draw from the 256-way (``2^bits``)
mu-law softmax, whose sample is fed back at once. Nothing leaves the program but the samples (and, for
tests, the logits).

Layouts (``*p`` = next power of two, zero-padded, which is exact: padded channels stay 0):

- rings ``[B, sum_l cap_l, Rp]``: layer ``l`` keeps ``u_l(t)`` at row ``off_l + (t mod cap_l)``, ``cap_l``
  a power of two ``>= (k - 1) d_l + 1``, so tap ``j`` (lag ``j d_l``) is row ``off_l + ((t - j d_l) mod cap_l)``;
- tap weights ``[L, k, Rp, Gp]`` (tap ``j`` = conv weight ``[:, :, k - 1 - j]``), residual ``[L, Hp, Rp]``
  (zero for the last layer), skip ``[L, Hp, Sp]`` scaled by ``sqrt(1 / L)``;
- conditioning ``[B, steps, L, Gp]`` per launch.

Only the ``"mulaw"`` head, no prompt; :meth:`WaveNet.generate` takes ``method="triton"``. On the CPU the
same kernel runs in Triton's interpreter (``triton.runtime.interpreter``), which is how the tests check it
against the full forward without a GPU; it is slow there and only meant for that. Whether it beats the
eager cached loop on a given GPU is for ``benchmarks/wavenet_generation.py --methods`` to measure.
"""
import math
import os
import sys

import torch
from torch import Tensor

# Without CUDA, Triton can only interpret kernels, and its interpreter must be chosen before triton is
# imported (its own library functions are decorated at import).
if "triton" not in sys.modules and not torch.cuda.is_available():
    os.environ.setdefault("TRITON_INTERPRET", "1")
try:
    import triton
    import triton.language as tl
except ImportError:  # an optional dependency: pip install triton
    triton = None

    class tl:  # noqa: N801  (only the kernel's annotations read it; the kernel never runs without triton)
        constexpr = None

COND_BLOCK_BYTES = 256 * 2 ** 20  # conditioning memory per launch


def available() -> bool:
    return triton is not None


def _p2(n: int) -> int:
    return 1 << (int(n) - 1).bit_length()


def _body(x_ptr, u_ptr, logit_ptr, cond_ptr, ring_ptr, prev_ptr,
          embed_ptr, wtap_ptr, wres_ptr, bres_ptr, wskip_ptr, bskip_ptr, w1_ptr, b1_ptr, w2_ptr, b2_ptr,
          dil_ptr, off_ptr, cap_ptr,
          t0, steps, T, ring_rows, inv_temp,
          L: tl.constexpr, KT: tl.constexpr, R: tl.constexpr, H: tl.constexpr, S: tl.constexpr,
          P: tl.constexpr, GREEDY: tl.constexpr, WRITE_LOGITS: tl.constexpr):
    """One program per stream runs ``steps`` samples (see the module docstring)."""
    b = tl.program_id(0)
    r = tl.arange(0, R)
    h = tl.arange(0, H)
    s_ = tl.arange(0, S)
    p = tl.arange(0, P)
    G = 2 * H
    ring = ring_ptr + b * ring_rows * R
    prev = tl.load(prev_ptr + b)
    for s in range(steps):
        t = t0 + s
        # input: embedding of the previous sample (zeros at t = 0: the network's one-step shift)
        u = tl.load(embed_ptr + prev * R + r, mask=(r * 0 + t) > 0, other=0.0)
        skip = tl.zeros([S], dtype=tl.float32)
        cond = cond_ptr + (b * steps + s) * L * G
        for l in range(L):
            d = tl.load(dil_ptr + l)
            off = tl.load(off_ptr + l)
            msk = tl.load(cap_ptr + l) - 1
            tl.store(ring + (off + (t & msk)) * R + r, u)
            za = tl.load(cond + l * G + h)
            zb = tl.load(cond + l * G + H + h)
            for j in tl.static_range(KT):
                if j == 0:
                    v = u
                else:
                    tap = t - j * d
                    v = tl.load(ring + (off + (tap & msk)) * R + r, mask=(r * 0 + tap) >= 0, other=0.0)
                w = wtap_ptr + ((l * KT + j) * R + r[:, None]) * G
                za += tl.sum(tl.load(w + h[None, :]) * v[:, None], axis=0)
                zb += tl.sum(tl.load(w + H + h[None, :]) * v[:, None], axis=0)
            a = (2.0 * tl.sigmoid(2.0 * za) - 1.0) * tl.sigmoid(zb)                  # tanh(za) sigma(zb)
            skip += tl.sum(tl.load(wskip_ptr + (l * H + h[:, None]) * S + s_[None, :]) * a[:, None], axis=0)
            res = tl.sum(tl.load(wres_ptr + (l * H + h[:, None]) * R + r[None, :]) * a[:, None], axis=0)
            u = (u + res + tl.load(bres_ptr + l * R + r)) * 0.7071067811865476         # h' = (h + res) sqrt(1/2)
        y = tl.maximum(skip + tl.load(bskip_ptr + s_), 0.0)
        y = tl.maximum(tl.sum(tl.load(w1_ptr + s_[:, None] * S + s_[None, :]) * y[:, None], axis=0)
                       + tl.load(b1_ptr + s_), 0.0)
        logits = tl.sum(tl.load(w2_ptr + s_[:, None] * P + p[None, :]) * y[:, None], axis=0) + tl.load(b2_ptr + p)
        if WRITE_LOGITS:
            tl.store(logit_ptr + (b * T + t) * P + p, logits)
        if GREEDY:
            x = tl.argmax(logits, axis=0)
        else:  # inverse CDF: the number of cdf entries <= u * total (core.sampling.inverse_cdf)
            z = logits * inv_temp
            e = tl.exp(z - tl.max(z, axis=0))
            cdf = tl.cumsum(e, axis=0)
            thr = tl.load(u_ptr + b * T + t) * tl.sum(e, axis=0)
            x = tl.minimum(tl.sum((cdf <= thr).to(tl.int32), axis=0), P - 1)
        tl.store(x_ptr + b * T + t, x)
        prev = x
        tl.debug_barrier()  # this step's ring writes are visible to every thread of the program
    tl.store(prev_ptr + b, prev)


_KERNEL = None


def _kernel(device: torch.device):
    """The kernel: compiled by Triton for CUDA tensors, run by its interpreter (``TRITON_INTERPRET=1``,
    set on import when there is no CUDA) for CPU tensors."""
    global _KERNEL
    interpreting = os.environ.get("TRITON_INTERPRET") == "1"
    if (device.type == "cuda") == interpreting:
        raise ValueError(f"method='triton' on {device.type} needs TRITON_INTERPRET={0 if device.type == 'cuda' else 1} "
                         "in the environment before triton is imported")
    if _KERNEL is None:
        _KERNEL = triton.jit(_body)
    return _KERNEL


class FusedWeights:
    """The model's weights in the kernel's padded layouts (see the module docstring); made once."""

    @torch.no_grad()
    def __init__(self, model) -> None:
        cfg = model.config
        if cfg.head != "mulaw":
            raise ValueError(f"the fused Triton generator covers the 'mulaw' head only, not '{cfg.head}'; "
                             "use method='cached'")
        dev = model.device
        L, k, R, G, S = cfg.layers, cfg.kernel_size, cfg.residual_channels, cfg.gate_channels, cfg.skip_channels
        H = G // 2
        self.L, self.k, self.H = L, k, H
        self.Rp, self.Hp, self.Sp, self.P = _p2(R), _p2(H), _p2(S), 2 ** cfg.bits
        Rp, Hp, Sp = self.Rp, self.Hp, self.Sp
        f32 = dict(device=dev, dtype=torch.float32)
        self.embed = torch.zeros(self.P, Rp, **f32)
        self.embed[:, :R] = model.embed.weight
        self.wtap = torch.zeros(L, k, Rp, 2 * Hp, **f32)
        self.wres = torch.zeros(L, Hp, Rp, **f32)
        self.bres = torch.zeros(L, Rp, **f32)
        self.wskip = torch.zeros(L, Hp, Sp, **f32)
        self.bias = torch.zeros(L, 2 * Hp, **f32)       # conv bias, added to the conditioning
        bskip = torch.zeros(S, **f32)
        scale = math.sqrt(1.0 / L)
        for i, layer in enumerate(model.layers):
            W = layer.conv.weight.detach()                          # (G, R, k), weight norm folded by .weight
            for j in range(k):
                wt = W[:, :, k - 1 - j].t()                         # (R, G): tap j multiplies u(t - j d)
                self.wtap[i, j, :R, :H], self.wtap[i, j, :R, Hp:Hp + H] = wt[:, :H], wt[:, H:]
            cb = layer.conv.bias.detach()
            self.bias[i, :H], self.bias[i, Hp:Hp + H] = cb[:H], cb[H:]
            if layer.res is not None:
                self.wres[i, :H, :R] = layer.res.weight.detach()[:, :, 0].t()
                self.bres[i, :R] = layer.res.bias.detach()
            self.wskip[i, :H, :S] = layer.skip.weight.detach()[:, :, 0].t() * scale
            bskip += layer.skip.bias.detach()
        self.bskip = torch.zeros(Sp, **f32)
        self.bskip[:S] = bskip * scale
        self.w1 = torch.zeros(Sp, Sp, **f32)
        self.w1[:S, :S] = model.out1.weight.detach()[:, :, 0].t()
        self.b1 = torch.zeros(Sp, **f32)
        self.b1[:S] = model.out1.bias.detach()
        self.w2 = torch.zeros(Sp, self.P, **f32)
        self.w2[:S] = model.out2.weight.detach()[:, :, 0].t()
        self.b2 = model.out2.bias.detach().float().contiguous()
        caps = [_p2((k - 1) * d + 1) for d in model.dilations]
        self.dil = torch.tensor(list(model.dilations), dtype=torch.int32, device=dev)
        self.cap = torch.tensor(caps, dtype=torch.int32, device=dev)
        self.off = torch.tensor([sum(caps[:i]) for i in range(L)], dtype=torch.int32, device=dev)
        self.ring_rows = sum(caps)

    def cond_block(self, model, c_up: Tensor | None, g: Tensor | None, B: int, t0: int, t1: int) -> Tensor:
        """Gate conditioning of steps ``t0 .. t1 - 1``: ``[B, t1 - t0, L, Gp]`` with the conv bias folded in."""
        L, H, Hp = self.L, self.H, self.Hp
        p = model.project_cond(None if c_up is None else c_up[..., t0:t1], g)   # (B, L G, tb or 1) or None
        out = self.bias.expand(B, t1 - t0, L, 2 * Hp).clone()
        if p is not None:
            p = p.view(B, L, 2 * H, -1).permute(0, 3, 1, 2)                    # (B, tb or 1, L, G)
            out[..., :H] += p[..., :H]
            out[..., Hp:Hp + H] += p[..., H:]
        return out.contiguous()


@torch.no_grad()
def run_triton(model, lengths: Tensor, c_up: Tensor | None, g: Tensor | None, uniforms: Tensor | None,
               greedy: bool, temperature: float, progress: bool = False, logits: Tensor | None = None) -> Tensor:
    """``x[B, T_max]`` (mu-law indices) from the fused kernel; items past their length hold silence.

    uniforms: ``[B, T, 1]`` (ignored when greedy). logits: optional ``float32[B, T, P]`` that receives every
    step's logits (for the tests)."""
    from tqdm.auto import tqdm

    fw = FusedWeights(model)
    dev = model.device
    B, T = lengths.numel(), int(lengths.max())
    kern = _kernel(dev)
    x = torch.empty(B, T, dtype=torch.int32, device=dev)
    u = (uniforms[..., 0] if uniforms is not None else torch.zeros(B, T, device=dev)).float().contiguous()
    ring = torch.zeros(B, fw.ring_rows, fw.Rp, device=dev, dtype=torch.float32)
    prev = torch.zeros(B, dtype=torch.int32, device=dev)
    write_logits = logits is not None
    lg = logits if write_logits else x                                   # a dummy pointer when unused
    block = max(1, min(T, COND_BLOCK_BYTES // (4 * B * fw.L * 2 * fw.Hp)))
    bar = tqdm(total=T, desc="sampling (triton)", unit="sample", disable=not progress, leave=False)
    for t0 in range(0, T, block):
        t1 = min(T, t0 + block)
        cond = fw.cond_block(model, c_up, g, B, t0, t1)
        kern[(B,)](x, u, lg, cond, ring, prev, fw.embed, fw.wtap, fw.wres, fw.bres, fw.wskip, fw.bskip,
                   fw.w1, fw.b1, fw.w2, fw.b2, fw.dil, fw.off, fw.cap,
                   t0, t1 - t0, T, fw.ring_rows, 1.0 / temperature,
                   L=fw.L, KT=fw.k, R=fw.Rp, H=fw.Hp, S=fw.Sp, P=fw.P, GREEDY=greedy, WRITE_LOGITS=write_logits)
        bar.update(t1 - t0)
    bar.close()
    x = x.long()
    pad = torch.arange(T, device=dev)[None, :] >= lengths.to(dev)[:, None]
    return x.masked_fill_(pad, model.silence().item())
