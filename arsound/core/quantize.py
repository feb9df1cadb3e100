"""Vector quantization with an EMA codebook (van den Oord et al., 2017, arXiv:1711.00937; VQ-VAE-2,
Razavi et al., 2019; Jukebox, Dhariwal et al., 2020, arXiv:2005.00341), shared by every VQ model.

    vq = VectorQuantizer(QuantizerConfig(num_codes=512, dim=64))
    out = vq(z)              # z : Tensor[B x D x T] -> out.z_q : Tensor[B x D x T], out.codes : LongTensor[B x T]
    loss = recon + out.commit_loss

Letters: B batch, D input width, T time (any trailing positions), N = B * T vectors, K codes, d lookup width
(``d = D``, or ``lookup_dim`` with the optional low-dimensional projection).

- Lookup: nearest code in squared L2, or with ``cosine`` the largest cosine (vectors and codes are
  l2-normalized first). With ``lookup_dim > 0`` the vectors are projected ``D -> d`` (a learned linear
  map) before the lookup and the chosen code is projected back ``d -> D`` (factorized codes, as in
  "Improved VQGAN", Yu et al., 2021, and descript-audio-codec).
- Codebook: not learned by gradient. In training mode every call updates per-code EMA statistics
  ``count <- decay * count + (1 - decay) * n_k`` and ``sum <- decay * sum + (1 - decay) * sum_k`` and
  sets ``code = sum / count``.
- Initialization from data on the first training call: ``random`` (distinct random vectors of the batch),
  ``kmeans`` (k-means++ seeding + Lloyd steps on the batch) or ``none`` (keep the random init).
- Dead-code restart: after the EMA update, any code with ``count < threshold`` is replaced by a random
  vector of the current batch AND its statistics are reset (``count = max(threshold, 1)``,
  ``sum = count * vector``), so the stale average cannot pull it back (the known bug).
- Commitment ``beta * mean ||z - sg(e)||^2`` (in the lookup space); straight-through gradient
  ``z + sg(e - z)``.
- Distributed: when ``torch.distributed`` is initialized, training calls all-reduce (sum) the per-code
  counts and sums, gather the batch for initialization and restarts, and take rank 0's random choices,
  so every rank keeps an identical codebook (equal to one process on the concatenated batch).
  Eval-mode calls do no collectives (ranks may see different numbers of eval batches).
- Health: perplexity ``exp H(p)`` of the batch's code histogram, effective usage ``H / log K``, codes
  used this batch, codes used since :meth:`reset_usage` (a running usage buffer, reset per epoch),
  dead codes (EMA count under the threshold before this call's restarts), restarts so far.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch import Tensor, nn

INITS = ("random", "kmeans", "none")


@dataclass
class QuantizerConfig:
    num_codes: int = 512               # K
    dim: int = 64                      # D, the width of the vectors coming in and going out
    lookup_dim: int = 0                # d > 0: project D -> d for the lookup (codebook is K x d); 0: d = D
    cosine: bool = False               # l2-normalize vectors and codes before the lookup
    decay: float = 0.99                # EMA decay of the codebook statistics
    commitment: float = 0.02           # beta
    threshold: float = 1.0             # restart codes whose EMA count falls below this; 0 disables
    init: str = "random"               # random | kmeans | none (data init on the first training call)
    kmeans_iters: int = 10
    eps: float = 1e-5


def check_quantizer_config(cfg: QuantizerConfig) -> None:
    if cfg.num_codes < 2 or cfg.dim < 1 or cfg.lookup_dim < 0:
        raise ValueError(f"quantizer needs num_codes >= 2, dim >= 1, lookup_dim >= 0; got {cfg.num_codes}, "
                         f"{cfg.dim}, {cfg.lookup_dim}")
    if not 0 < cfg.decay < 1 or cfg.commitment < 0 or cfg.threshold < 0:
        raise ValueError(f"quantizer needs 0 < decay < 1, commitment >= 0, threshold >= 0; got {cfg.decay}, "
                         f"{cfg.commitment}, {cfg.threshold}")
    if cfg.init not in INITS:
        raise ValueError(f"quantizer.init must be one of {INITS}, got '{cfg.init}'")


@dataclass
class CodebookHealth:
    """How well a codebook is used (all plain floats/ints, so it logs as is)."""
    perplexity: float                  # exp(entropy) of the code histogram, in [1, K]
    usage: float                       # entropy / log K ("effective usage"), in [0, 1]
    used: int                          # codes used at least once in the counted vectors
    used_epoch: int                    # codes used since the last reset_usage()
    dead: int                          # codes whose EMA count is below the threshold
    restarts: int                      # codes restarted since training began
    num_codes: int

    def as_dict(self, prefix: str = "") -> dict[str, float]:
        return {f"{prefix}{k}": float(v) for k, v in vars(self).items() if k != "num_codes"}


@dataclass
class QuantizerOutput:
    """What :meth:`VectorQuantizer.forward` returns."""
    z_q: Tensor                        # Tensor[B x D x T], straight-through quantized vectors
    codes: Tensor                      # LongTensor[B x T]
    commit_loss: Tensor                # scalar: commitment * mean ||z - sg(e)||^2
    perplexity: Tensor                 # scalar, of this call's codes (global over ranks in training)
    usage: Tensor                      # scalar, entropy / log K
    used: Tensor                       # scalar, distinct codes in this call
    dead: Tensor                       # scalar, codes restarted in this call (0 in eval)


def histogram_health(counts: Tensor) -> tuple[Tensor, Tensor]:
    """Perplexity and entropy / log K of a histogram ``counts : Tensor[K]``."""
    p = counts.float() / counts.sum().clamp_min(1)
    entropy = -(p * p.clamp_min(1e-12).log()).sum()
    return entropy.exp(), entropy / math.log(len(counts))


def _distributed() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def _gather_rows(x: Tensor) -> Tensor:
    """Concatenate every rank's ``x : Tensor[N_r x d]`` in rank order (sizes may differ)."""
    if not _distributed():
        return x
    world = dist.get_world_size()
    n = torch.tensor([x.shape[0]], device=x.device)
    sizes = [torch.zeros_like(n) for _ in range(world)]
    dist.all_gather(sizes, n)
    top = int(max(s.item() for s in sizes))
    padded = torch.zeros(top, x.shape[1], dtype=x.dtype, device=x.device)
    padded[:x.shape[0]] = x
    parts = [torch.zeros_like(padded) for _ in range(world)]
    dist.all_gather(parts, padded.contiguous())
    return torch.cat([p[:int(s.item())] for p, s in zip(parts, sizes)])


def _from_rank0(t: Tensor) -> Tensor:
    if _distributed():
        dist.broadcast(t, src=0)
    return t


def _sample_rows(x: Tensor, n: int) -> Tensor:
    """``n`` rows of ``x`` chosen at random (distinct when ``len(x) >= n``; else repeated with a little noise),
    chosen on rank 0 (global torch RNG) when distributed. ``x`` must be the same on every rank."""
    if len(x) >= n:
        idx = torch.randperm(len(x), device=x.device)[:n]
    else:
        idx = torch.randint(len(x), (n,), device=x.device)
    idx = _from_rank0(idx.contiguous())
    out = x[idx]
    if len(x) < n:
        noise = torch.randn(out.shape, device=x.device)
        out = out + _from_rank0(noise) * (0.01 / math.sqrt(x.shape[1]))
    return out


def kmeans(x: Tensor, k: int, iters: int = 10) -> Tensor:
    """k-means on ``x : Tensor[N x d]``: k-means++ seeding, then ``iters`` Lloyd steps (an empty cluster
    keeps its centre); ``Tensor[k x d]``. Local (global torch RNG); with fewer than ``k`` rows the rows are
    repeated with a little noise instead."""
    N = len(x)
    if N <= k:
        idx = torch.randint(N, (k,), device=x.device)
        return x[idx] + torch.randn(k, x.shape[1], device=x.device) * (0.01 / math.sqrt(x.shape[1]))
    chosen = [int(torch.randint(N, (1,)))]
    d2 = (x - x[chosen[0]]).pow(2).sum(1)                                    # (N,)
    for _ in range(k - 1):
        total = d2.sum()
        i = int(torch.multinomial(d2 / total, 1)) if total > 0 else int(torch.randint(N, (1,)))
        chosen.append(i)
        d2 = torch.minimum(d2, (x - x[i]).pow(2).sum(1))
    c = x[torch.tensor(chosen, device=x.device)]
    for _ in range(iters):
        idx = torch.cdist(x, c).argmin(1)                                   # (N,)
        sums = torch.zeros_like(c).index_add_(0, idx, x)                    # (k, d)
        n = torch.bincount(idx, minlength=k).to(x.dtype)                    # (k,)
        c = torch.where(n[:, None] > 0, sums / n.clamp_min(1)[:, None], c)
    return c


class VectorQuantizer(nn.Module):
    """EMA vector quantizer; see the module docstring. ``VectorQuantizer(QuantizerConfig(...))``.

    Buffers (saved with the model): ``codebook : [K x d]``, ``ema_count : [K]``, ``ema_sum : [K x d]``,
    ``initialized``, ``usage_count : [K]`` (codes chosen since :meth:`reset_usage`), ``restarts``.
    """

    def __init__(self, cfg: QuantizerConfig) -> None:
        super().__init__()
        check_quantizer_config(cfg)
        self.cfg = cfg
        K, d = cfg.num_codes, cfg.lookup_dim or cfg.dim
        self.lookup_dim = d
        if cfg.lookup_dim:
            self.proj_in, self.proj_out = nn.Linear(cfg.dim, d), nn.Linear(d, cfg.dim)
        else:
            self.proj_in = self.proj_out = None
        code = torch.randn(K, d) / math.sqrt(d)
        self.register_buffer("codebook", code)
        self.register_buffer("ema_count", torch.ones(K))
        self.register_buffer("ema_sum", code.clone())
        self.register_buffer("initialized", torch.tensor(cfg.init == "none"))
        self.register_buffer("usage_count", torch.zeros(K))
        self.register_buffer("restarts", torch.zeros((), dtype=torch.long))

    @property
    def num_codes(self) -> int:
        return self.cfg.num_codes

    # ---- lookup -------------------------------------------------------------------------------------
    def _to_lookup(self, z: Tensor) -> Tensor:
        """``z : Tensor[B x D x T] -> x : Tensor[N x d]`` (projected, normalized with ``cosine``)."""
        x = z.movedim(1, -1).reshape(-1, z.shape[1]).float()                # (N, D)
        if self.proj_in is not None:
            x = self.proj_in(x)                                             # (N, d)
        return F.normalize(x, dim=1) if self.cfg.cosine else x

    def _codes_for(self, x: Tensor) -> Tensor:
        """Nearest codes of ``x : Tensor[N x d]``: ``LongTensor[N]``."""
        c = self.lookup_codebook()
        if self.cfg.cosine:
            return (x @ c.t()).argmax(1)
        dist2 = x.pow(2).sum(1, keepdim=True) - 2 * x @ c.t() + c.pow(2).sum(1)[None]   # (N, K)
        return dist2.argmin(1)

    def lookup_codebook(self) -> Tensor:
        """The codes as used in the lookup space: ``Tensor[K x d]`` (l2-normalized with ``cosine``)."""
        return F.normalize(self.codebook, dim=1) if self.cfg.cosine else self.codebook

    def embed(self, codes: Tensor) -> Tensor:
        """``codes : LongTensor[B x T] -> Tensor[B x D x T]``: the vectors the decoder sees for ``codes``."""
        e = F.embedding(codes, self.lookup_codebook())                     # (B, T, d)
        if self.proj_out is not None:
            e = self.proj_out(e)                                            # (B, T, D)
        return e.movedim(-1, 1)

    @torch.no_grad()
    def encode(self, z: Tensor) -> Tensor:
        """``z : Tensor[B x D x T] -> LongTensor[B x T]`` (no codebook update)."""
        return self._codes_for(self._to_lookup(z)).view(z.shape[0], *z.shape[2:])

    # ---- training-time codebook maintenance ----------------------------------------------------------
    @torch.no_grad()
    def _initialize(self, x: Tensor) -> None:
        allx = _gather_rows(x)
        K = self.cfg.num_codes
        if self.cfg.init == "kmeans":
            c = _from_rank0(kmeans(allx, K, self.cfg.kmeans_iters).contiguous())   # rank 0's result everywhere
        else:
            c = _sample_rows(allx, K)
        self.codebook.copy_(c)
        self.ema_sum.copy_(c)
        self.ema_count.fill_(1.0)
        self.initialized.fill_(True)

    @torch.no_grad()
    def _update(self, x: Tensor, codes: Tensor) -> tuple[Tensor, Tensor]:
        """EMA update from ``x : [N x d]`` and its ``codes : [N]``, then restarts. Returns the global
        per-code counts of this call ``[K]`` and the number of codes restarted."""
        K, decay = self.cfg.num_codes, self.cfg.decay
        counts = torch.bincount(codes, minlength=K).to(x.dtype)             # (K,)
        sums = torch.zeros(K, x.shape[1], dtype=x.dtype, device=x.device).index_add_(0, codes, x)  # (K, d)
        if _distributed():
            dist.all_reduce(counts)
            dist.all_reduce(sums)
        self.usage_count.add_(counts)
        self.ema_count.mul_(decay).add_(counts, alpha=1 - decay)
        self.ema_sum.mul_(decay).add_(sums, alpha=1 - decay)
        self.codebook.copy_(self.ema_sum / self.ema_count.clamp_min(self.cfg.eps)[:, None])
        dead = self.ema_count < self.cfg.threshold                          # (K,) identical on every rank
        n_dead = int(dead.sum())
        if n_dead:
            self.restart(dead, _gather_rows(x))
        return counts, torch.tensor(float(n_dead), device=x.device)

    @torch.no_grad()
    def restart(self, dead: Tensor, candidates: Tensor) -> None:
        """Replace the codes where ``dead : BoolTensor[K]`` by random rows of ``candidates : [N x d]``
        and RESET their EMA statistics to those rows (count ``max(threshold, 1)``)."""
        new = _sample_rows(candidates, int(dead.sum()))
        count = max(self.cfg.threshold, 1.0)
        self.codebook[dead] = new
        self.ema_count[dead] = count
        self.ema_sum[dead] = new * count
        self.restarts.add_(int(dead.sum()))

    def reset_usage(self) -> None:
        """Start a new usage window (e.g. per epoch) for ``health().used_epoch``."""
        self.usage_count.zero_()

    def health(self, counts: Tensor | None = None) -> CodebookHealth:
        """Health of the codebook: perplexity / usage / used of ``counts : [K]`` (default: the running
        usage buffer), plus codes used since :meth:`reset_usage`, dead codes by EMA count, restarts."""
        counts = self.usage_count if counts is None else counts
        perplexity, usage = histogram_health(counts)
        return CodebookHealth(perplexity=float(perplexity), usage=float(usage), used=int((counts > 0).sum()),
                              used_epoch=int((self.usage_count > 0).sum()),
                              dead=int((self.ema_count < self.cfg.threshold).sum()),
                              restarts=int(self.restarts), num_codes=self.cfg.num_codes)

    # ---- forward ------------------------------------------------------------------------------------
    def forward(self, z: Tensor) -> QuantizerOutput:
        """``z : Tensor[B x D x T]`` -> :class:`QuantizerOutput`. Training mode also updates the codebook
        (after the lookup, so ``z_q`` holds the codes the lookup chose)."""
        B, T = z.shape[0], z.shape[2:]
        x = self._to_lookup(z)                                              # (N, d)
        if self.training and not bool(self.initialized):
            self._initialize(x.detach())
        codes = self._codes_for(x.detach())                                 # (N,)
        e = F.embedding(codes, self.lookup_codebook()).detach()            # (N, d) before the update
        commit = self.cfg.commitment * F.mse_loss(x, e)
        x_q = x + (e - x).detach()                                          # straight-through
        if self.training:
            counts, n_dead = self._update(x.detach(), codes)
        else:
            counts, n_dead = torch.bincount(codes, minlength=self.cfg.num_codes).float(), torch.zeros((), device=z.device)
        if self.proj_out is not None:
            x_q = self.proj_out(x_q)                                        # (N, D)
        z_q = x_q.view(B, *T, -1).movedim(-1, 1).to(z.dtype)                # (B, D, T)
        perplexity, usage = histogram_health(counts)
        return QuantizerOutput(z_q=z_q, codes=codes.view(B, *T), commit_loss=commit, perplexity=perplexity,
                               usage=usage, used=(counts > 0).sum().float(), dead=n_dead)


__all__ = ["QuantizerConfig", "VectorQuantizer", "QuantizerOutput", "CodebookHealth", "histogram_health", "kmeans"]
