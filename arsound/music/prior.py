"""A prior over one level of VQ-VAE codes: a sparse transformer (Jukebox's factored attention) with optional
instrument and timing conditioning, and, for the upsamplers, the codes of the level above.

Jukebox (Dhariwal et al., 2020, arXiv:2005.00341) models music as a top-level prior over the coarsest codes
and upsampler priors over the finer ones, each conditioned on the level above. Here one :class:`TokenPrior`
serves both roles::

    x[B, T] codes -> shift right (a learned start vector at 0) -> token + absolute position + position
      within the block (+ instrument, + where the window sits in the piece, + the upper level's codes,
      embedded, refined by a dilated residual stack and upsampled by the hop ratio)
      -> L pre-norm blocks cycling row / column / prev_row attention -> LayerNorm -> logits[B, T, K]

Conditioning (keyword arguments of ``forward``, ``log_prob``, ``sample``):

- ``label``: ``LongTensor[B]`` instrument ids (``config.num_labels > 0``);
- ``start``, ``total``: ``LongTensor[B]``, the window's first token and the piece's length in tokens
  (``config.timing``): position ``p`` of the window gets the bin of ``(start + p) / total``;
- ``upper``: ``LongTensor[B, T / ratio]`` codes of the level above covering the window
  (``config.upper_vocab > 0``); a row of ``-1`` drops them for that window (the conditioner adds nothing), which
  a prior trained with ``config.cond_dropout > 0`` has learned: in training each window's upper codes are
  dropped so with that probability (classifier-free guidance, Ho and Salimans 2022).

Cached sampling runs through the shared engine (``core.model``): inside ``streaming()`` each token is one step
through the blocks, each attention layer keeping only the keys its pattern reads; a prompt that is a prefix
of the window (the kept part of a sliding window) is fed in one chunk first.

Letters: B batch, T tokens of the window, K codes, D model width, U upper tokens (``T / ratio``).
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..core.attention import TransformerBlock
from ..core.distributions import Categorical
from ..core.model import ARModel, Canvas

PATTERNS = ("row", "column", "prev_row", "causal")


@dataclass
class TokenPriorConfig:
    vocab: int = 256                          # K codes of this level
    context: int = 512                        # T tokens a window holds
    dim: int = 128
    layers: int = 6
    heads: int = 4
    mlp_ratio: int = 4
    dropout: float = 0.0
    block: int = 32                           # block_ctx of the factored attention
    attention: tuple[str, ...] = ("row", "column", "prev_row")  # cycled over the layers
    flex: bool = False                        # FlexAttention in the full forward (GPU training)
    num_labels: int = 0                       # instrument ids; 0: unconditional
    label_names: tuple[str, ...] = ()
    timing: bool = False                      # condition on where the window sits in the piece
    timing_bins: int = 32
    upper_vocab: int = 0                      # codes of the level above; 0: a top-level prior
    ratio: int = 4                            # tokens of this level per token of the level above
    cond_depth: int = 3                       # dilated residual blocks of the upper conditioner
    cond_dilation_growth: int = 3
    level: int = 0                            # the tokenizer level it models (checked by the generator)
    cond_dropout: float = 0.0                 # training: drop a window's upper codes with this probability, so
                                              # the upsampler also learns its level without them (the
                                              # unconditional branch of classifier-free guidance)


class DilatedStack(nn.Module):
    """Non-causal residual blocks ``x + conv1(relu(conv3_dilated(relu(x))))``, dilations ``g^0 .. g^(n-1)``:
    ``[B, D, U] -> [B, D, U]`` (the upper level is known whole, so the conditioner may look both ways)."""

    def __init__(self, dim: int, depth: int, growth: int) -> None:
        super().__init__()
        self.convs = nn.ModuleList(nn.Conv1d(dim, dim, 3, padding=growth ** i, dilation=growth ** i)
                                   for i in range(depth))
        self.mixes = nn.ModuleList(nn.Conv1d(dim, dim, 1) for _ in range(depth))

    def forward(self, x: Tensor) -> Tensor:
        for conv, mix in zip(self.convs, self.mixes):
            x = x + mix(F.relu(conv(F.relu(x))))
        return x


class UpperConditioner(nn.Module):
    """Jukebox's conditioner: the level above's codes ``[B, U]`` -> embedding -> dilated residual stack ->
    transposed convolution by the hop ratio -> LayerNorm: ``[B, U * ratio, D]``, added to the input."""

    def __init__(self, cfg: TokenPriorConfig) -> None:
        super().__init__()
        r = cfg.ratio
        self.embed = nn.Embedding(cfg.upper_vocab, cfg.dim)
        self.stack = DilatedStack(cfg.dim, cfg.cond_depth, cfg.cond_dilation_growth)
        self.up = nn.ConvTranspose1d(cfg.dim, cfg.dim, 2 * r, stride=r, padding=r // 2) if r > 1 else nn.Identity()
        self.norm = nn.LayerNorm(cfg.dim)

    def forward(self, upper: Tensor) -> Tensor:
        h = self.stack(self.embed(upper).transpose(1, 2))        # (B, D, U)
        return self.norm(self.up(h).transpose(1, 2))             # (B, U * ratio, D)


class TokenPrior(ARModel):
    """``forward(x[B, T], **cond) -> logits[B, T, K]``; see the module docstring."""

    config_class = TokenPriorConfig
    sample_unit = "token"
    presets = {
        "debug": dict(vocab=16, context=32, dim=16, layers=3, heads=2, block=8),
        "small": dict(context=512, dim=128, layers=6, heads=4, block=32),
    }

    def __init__(self, config: TokenPriorConfig) -> None:
        super().__init__(config)
        cfg = config
        unknown = [p for p in cfg.attention if p not in PATTERNS]
        if unknown or not cfg.attention:
            raise ValueError(f"unknown attention patterns {unknown or cfg.attention}; choose from {PATTERNS}")
        if cfg.context % cfg.block:
            raise ValueError(f"context {cfg.context} must be a multiple of block {cfg.block}")
        if cfg.upper_vocab and (cfg.ratio < 1 or cfg.context % cfg.ratio):
            raise ValueError(f"context {cfg.context} must be a multiple of the hop ratio {cfg.ratio}")
        if not 0 <= cfg.cond_dropout < 1 or (cfg.cond_dropout and not cfg.upper_vocab):
            raise ValueError(f"cond_dropout must be in [0, 1) and needs upper codes, got {cfg.cond_dropout}")
        self.head = Categorical(cfg.vocab)
        D = cfg.dim
        self.tok_emb = nn.Embedding(cfg.vocab, D)
        self.start = nn.Parameter(torch.zeros(D))
        self.pos_emb = nn.Embedding(cfg.context, D)
        self.block_emb = nn.Embedding(cfg.block, D)
        self.label_emb = nn.Embedding(cfg.num_labels, D) if cfg.num_labels else None
        self.timing_emb = nn.Embedding(cfg.timing_bins, D) if cfg.timing else None
        self.upper = UpperConditioner(cfg) if cfg.upper_vocab else None
        self.drop = nn.Dropout(cfg.dropout)
        self.blocks = nn.ModuleList(
            TransformerBlock(D, cfg.heads, cfg.mlp_ratio, cfg.dropout, cfg.context, p, flex=cfg.flex,
                             **({} if p == "causal" else {"block": cfg.block}))
            for p in (cfg.attention[i % len(cfg.attention)] for i in range(cfg.layers)))
        self.ln_f = nn.LayerNorm(D)
        self.out = nn.Linear(D, cfg.vocab)
        for m in self.modules():  # GPT-2 initialization
            if isinstance(m, (nn.Linear, nn.Embedding)):
                nn.init.normal_(m.weight, std=0.02)
            if isinstance(m, nn.Linear) and m.bias is not None:
                nn.init.zeros_(m.bias)

    @property
    def event_shape(self) -> tuple[int]:
        return (self.config.context,)

    # ---- conditioning -----------------------------------------------------------------------------
    def condition(self, B: int, T: int, label=None, start=None, total=None, upper=None) -> Tensor:
        """Everything added to the token embeddings of a window of ``T`` tokens: ``[B or 1, T, D]``."""
        cfg, dev = self.config, self.device
        if T > cfg.context:
            raise ValueError(f"a window of {T} tokens is longer than the prior's context {cfg.context}")
        pos = torch.arange(T, device=dev)
        h = (self.pos_emb(pos) + self.block_emb(pos % cfg.block))[None]          # (1, T, D)
        if (label is None) != (self.label_emb is None):
            raise ValueError(f"this prior {'needs' if label is None else 'takes no'} an instrument label "
                             f"(num_labels={cfg.num_labels}: {list(cfg.label_names)})")
        if label is not None:
            label = torch.as_tensor(label, dtype=torch.long, device=dev).reshape(-1).expand(B)
            if int(label.min()) < 0 or int(label.max()) >= cfg.num_labels:
                raise ValueError(f"labels must lie in [0, {cfg.num_labels}), got {label.tolist()}")
            h = h + self.label_emb(label)[:, None]
        if self.timing_emb is not None:
            start = torch.zeros(B, dtype=torch.long, device=dev) if start is None else \
                torch.as_tensor(start, dtype=torch.long, device=dev).reshape(-1).expand(B)
            total = torch.full((B,), T, dtype=torch.long, device=dev) if total is None else \
                torch.as_tensor(total, dtype=torch.long, device=dev).reshape(-1).expand(B)
            frac = (start[:, None] + pos[None]).float() / total[:, None].clamp_min(1).float()
            bins = (frac * cfg.timing_bins).long().clamp_(0, cfg.timing_bins - 1)
            h = h + self.timing_emb(bins)
        if (upper is None) != (self.upper is None):
            raise ValueError(f"this prior {'needs' if upper is None else 'takes no'} the codes of the level above "
                             f"(upper_vocab={cfg.upper_vocab})")
        if upper is not None:
            upper = torch.as_tensor(upper, device=dev).long()
            need = -(-T // cfg.ratio)
            if upper.ndim != 2 or upper.shape[1] != need:
                raise ValueError(f"a window of {T} tokens needs upper codes [B, {need}], got {tuple(upper.shape)}")
            dropped = (upper == -1).all(1) if need else torch.zeros(len(upper), dtype=torch.bool, device=dev)
            if dropped.any() and not cfg.cond_dropout:
                raise ValueError("this prior never learned to go without its upper codes (cond_dropout 0); "
                                 "give every window its codes")
            kept = upper[~dropped]
            if kept.numel() and (int(kept.min()) < 0 or int(kept.max()) >= cfg.upper_vocab):
                raise ValueError(f"upper codes must lie in [0, {cfg.upper_vocab}) (or a whole row -1: dropped)")
            if self.training and cfg.cond_dropout:
                dropped = dropped | (torch.rand(len(upper), device=dev) < cfg.cond_dropout)
            c = self.upper(upper.clamp_min(0))[:, :T]
            h = h + (c * ~dropped[:, None, None] if dropped.any() else c)
        return h

    # ---- network ----------------------------------------------------------------------------------
    def body(self, h: Tensor) -> Tensor:
        """``h[B, t, D] -> logits[B, t, K]`` (in streaming, the ``t`` positions after the cached ones)."""
        for block in self.blocks:
            h = block(h)
        return self.out(self.ln_f(h))

    def forward(self, x: Tensor, label=None, start=None, total=None, upper=None) -> Tensor:
        """Teacher-forced logits ``[B, T, K]`` of the codes ``x[B, T]``."""
        B, T = x.shape
        if x.numel() and (int(x.min()) < 0 or int(x.max()) >= self.config.vocab):
            raise ValueError(f"codes must lie in [0, {self.config.vocab}), got [{int(x.min())}, {int(x.max())}]")
        inp = torch.cat([self.start.expand(B, 1, -1), self.tok_emb(x[:, :-1])], 1)  # (B, T, D)
        return self.body(self.drop(inp + self.condition(B, T, label, start, total, upper)))

    @contextlib.contextmanager
    def steps(self, canvas: Canvas, label=None, start=None, total=None, upper=None):
        """The cached step: one token through the blocks (KV caches in ``streaming()``); a prompt that is a
        prefix of every row (the kept part of a sliding window) goes through in one chunk first."""
        B, T = canvas.n, canvas.D
        cond = self.condition(B, T, label, start, total, upper)                     # (B or 1, T, D)
        known = canvas.known_flat
        p = int(known.all(0).long().cumprod(0).sum())                              # shared known prefix
        with self.streaming():
            pre = None
            if p > 1:  # positions 0 .. p-1 from one chunk: their logits, and every cache filled to p
                x = canvas.flat[:, :p]
                inp = torch.cat([self.start.expand(B, 1, -1), self.tok_emb(x[:, :-1])], 1)
                pre = self.body(inp + cond[:, :p])                                  # (B, p, K)

            def step(s: int, prev: Tensor | None) -> Tensor:
                if pre is not None and s < p:
                    return pre[:, s]
                h = self.start.expand(B, -1) if s == 0 else self.tok_emb(prev)      # (B, D)
                return self.body((h + cond[:, s])[:, None])[:, 0]                  # (B, K)

            yield step


__all__ = ["DilatedStack", "TokenPrior", "TokenPriorConfig", "UpperConditioner"]
