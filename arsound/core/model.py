"""The one autoregressive-model interface every arsound model implements.

A model is ``Model(cfg)`` with ``cfg`` a dataclass (saved inside every checkpoint). Its network maps a
teacher-forced input ``x`` to per-element distribution *parameters*; a distribution family from
``core.distributions`` (``self.head``) turns those into log-probabilities (nats) and samples.

Contract (``../shared/DESIGN.md`` section 2):

- ``log_prob(x, reduce=True, **cond) -> Tensor[B]`` in nats; ``reduce=False`` gives one term per
  element, shaped like ``x``.
- ``generation_order() -> LongTensor[D]``: indices into ``x[0].flatten()``; the term of element
  ``order[i]`` depends only on ``x`` at ``order[:i]`` (and on ``cond``).
- ``sample(n, prompt=None, generator=None, **cond)``: a prompt fixes the given positions.
- ``loss(batch) -> (loss, metrics)``: all the Trainer knows about a model.

The generic :meth:`ARModel.sample` is the *naive* sampler: one full forward pass per element. Models
with a cached fast path override :meth:`sample`, build the same :class:`Canvas` (so they draw the same
values from the same uniforms) and are tested against this one.
"""
from __future__ import annotations

import contextlib
from typing import Any

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .metrics import LN2
from .sampling import get_uniform
from .streaming import streaming


@contextlib.contextmanager
def eval_mode(module: nn.Module):
    """``with eval_mode(model):`` evaluation mode inside, the previous mode restored after (errors too)."""
    was_training = module.training
    module.eval()
    try:
        yield module
    finally:
        module.train(was_training)


class Canvas:
    """One sampling run: the canvas ``x[n, *event]`` (prompted positions set), the prompt mask, and the
    uniforms of every element, pre-drawn as ``[n, D, U]`` (``U = head.num_uniforms``) unless greedy.

    Every sampler, naive or cached, draws through :meth:`draw`, so given the same generator or
    uniforms they produce the same values element by element.
    """

    def __init__(self, model: "ARModel", n: int, prompt: Tensor | None = None,
                 generator: torch.Generator | None = None, temperature: float = 1.0, greedy: bool = False,
                 uniforms: Tensor | None = None) -> None:
        self.head, self.temperature, self.greedy = model.head, temperature, greedy
        self.x, self.known = model._blank(n, prompt)
        D = self.x[0].numel()
        shape = (n, D, model.head.num_uniforms)
        if uniforms is None and not greedy:
            uniforms = get_uniform(None, shape, generator=generator, device=model.device)
        self.uniforms = None if uniforms is None else uniforms.reshape(shape)
        self.flat, self.known_flat = self.x.view(n, D), self.known.view(n, D)  # (n, D) views of x

    def draw(self, pos: int, params: Tensor) -> Tensor:
        """Set element ``pos`` (an index into ``x[0].flatten()``) of every example from its parameters
        ``params[n, P]``, keeping prompted values; returns the values now there, ``[n]``."""
        if self.greedy:
            v = self.head.mode(params)
        else:
            v = self.head.sample(params, self.uniforms[:, pos], temperature=self.temperature)
        self.flat[:, pos] = torch.where(self.known_flat[:, pos], self.flat[:, pos], v.to(self.flat.dtype))
        return self.flat[:, pos]


class ARModel(nn.Module):
    """Base class. Subclasses set ``config_class``, build ``self.head`` and implement ``forward``."""

    config_class: type = None  # the model's config dataclass

    def __init__(self, config) -> None:
        super().__init__()
        self.config = config

    # ---- to implement ---------------------------------------------------------------------------
    @property
    def event_shape(self) -> tuple[int, ...]:
        """Shape of one example ``x[0]``, e.g. ``(C, H, W)`` or ``(T,)``."""
        raise NotImplementedError

    def forward(self, x: Tensor, **cond) -> Tensor:
        """Teacher-forced parameters: ``x[B, *event_shape] -> params[B, *event_shape, P]``."""
        raise NotImplementedError

    # ---- the contract ---------------------------------------------------------------------------
    def generation_order(self) -> Tensor:
        """Raster order unless the model says otherwise."""
        return torch.arange(int(torch.Size(self.event_shape).numel()))

    def log_prob(self, x: Tensor, reduce: bool = True, **cond) -> Tensor:
        lp = self.head.log_prob(self(x, **cond), x)  # (B, *event_shape)
        return lp.flatten(1).sum(1) if reduce else lp

    def split_batch(self, batch) -> tuple[Tensor, dict[str, Any]]:
        """A batch is ``x`` or a dict ``{"x": x, **cond}``."""
        if isinstance(batch, dict):
            cond = dict(batch)
            return cond.pop("x"), cond
        return batch, {}

    def loss(self, batch) -> tuple[Tensor, dict[str, Tensor]]:
        """Mean NLL per element in nats (the training loss) and metrics per example / per dim."""
        x, cond = self.split_batch(batch)
        nll = -self.log_prob(x, **cond).mean()
        dims = x[0].numel()
        nats_per_dim = nll / dims
        return nats_per_dim, {"nll": nll.detach(), "bits_per_dim": nats_per_dim.detach() / LN2}

    def streaming(self):
        """``with model.streaming():`` cached single-step inference; caches reset on exit."""
        return streaming(self)

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    # ---- generic (naive) sampling ---------------------------------------------------------------
    def _blank(self, n: int, prompt: Tensor | None) -> tuple[Tensor, Tensor]:
        """A canvas ``x[n, *event]`` and the boolean mask of the positions a prompt fixes."""
        dtype = torch.long if self.head.discrete else torch.float32
        x = torch.zeros((n, *self.event_shape), dtype=dtype, device=self.device)
        known = torch.zeros(x.shape, dtype=torch.bool, device=self.device)
        if prompt is not None:
            prompt = prompt.to(self.device).expand_as(x)
            known = prompt >= 0 if self.head.discrete else ~torch.isnan(prompt)
            x = torch.where(known, prompt.to(dtype), x)
        return x, known

    @torch.no_grad()
    def sample(self, n: int, prompt: Tensor | None = None, generator: torch.Generator | None = None,
               temperature: float = 1.0, greedy: bool = False, uniforms: Tensor | None = None,
               progress: bool = False, **cond) -> Tensor:
        """Draw ``n`` examples, one element at a time in :meth:`generation_order`.

        prompt: ``Tensor[*event]`` or ``Tensor[n, *event]``; elements ``>= 0`` (discrete data) or not
            NaN (continuous data) are kept fixed, the rest generated (image completion).
        uniforms: optional pre-drawn ``Tensor[n, *event, U]`` (``U = head.num_uniforms``) so that two
            samplers can be compared exactly.
        greedy: take the mode of each conditional instead of sampling.
        progress: show a progress bar over the elements.
        """
        with eval_mode(self):
            canvas = Canvas(self, n, prompt, generator, temperature, greedy, uniforms)
            D = canvas.flat.shape[1]
            for pos in tqdm(self.generation_order().tolist(), desc="sampling", unit="el", disable=not progress,
                            leave=False):
                canvas.draw(pos, self(canvas.x, **cond).reshape(n, D, -1)[:, pos])  # (n, P)
        return canvas.x

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
