"""The one autoregressive-model interface every arsound model implements, and its one sampling engine.

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

Sampling, step by step. One engine (:func:`run_steps`) draws every element of a :class:`Canvas` in
generation order; a model only says how to get the parameters of the next element. ``model.steps(canvas,
**cond)`` is a context manager (set-up and clean-up: caches, ``streaming()``, threads) that yields a
*step* function::

    step(s, prev) -> params[n_s, P]     # of element order[s]; prev: the values just drawn for order[s - 1]
                                        # (None at s = 0); n_s <= n streams still running (a prefix)

The prompt, the uniforms (pre-drawn, so two paths draw the same values), temperature, greedy decoding
and the progress bar are the engine's and the canvas's, never a model's. :meth:`ARModel.naive_steps` is
the reference step: one full forward pass per element. Models with a cached path override
:meth:`ARModel.steps` and are tested to draw exactly what the naive step draws.
"""
from __future__ import annotations

import contextlib
from typing import Any, Callable, ContextManager, Iterator

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from .metrics import LN2
from .sampling import check_temperature, get_uniform
from .streaming import streaming

Step = Callable[[int, "Tensor | None"], Tensor]


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
    """One sampling run: the canvas ``x[n, *shape]`` (prompted positions set), the prompt mask, and the
    uniforms of every element, pre-drawn as ``[n, D, U]`` (``U = head.num_uniforms``) unless greedy.

    shape, order: the event shape and the generation order (default ``model.event_shape`` and
        ``model.generation_order()``; a waveform model passes the length it generates and ``arange(T)``).
    head: the distribution family draws come from (default ``model.head``; e.g. a ``Categorical`` with
        top-k / top-p filtering of the same logits).
    prompt: ``Tensor[*shape]`` or ``[n, *shape]``; entries ``>= 0`` (discrete data) or not NaN (continuous
        data) are kept. uniforms: pre-drawn ``[n, *shape, U]`` (two samplers then draw the same values).

    Every sampler draws through :meth:`draw`, so given the same generator or uniforms two samplers,
    naive or cached, produce the same values element by element.
    """

    def __init__(self, model: "ARModel", n: int, prompt: Tensor | None = None,
                 generator: torch.Generator | None = None, temperature: float = 1.0, greedy: bool = False,
                 uniforms: Tensor | None = None, shape: tuple[int, ...] | None = None,
                 order: Tensor | None = None, head=None) -> None:
        if n < 1:
            raise ValueError(f"the number of examples to sample must be >= 1, got {n}")
        if not greedy:
            check_temperature(temperature)
        self.head, self.temperature, self.greedy = head or model.head, temperature, greedy
        self.x, self.known = model._blank(n, prompt, shape)
        self.n, self.D = n, self.x[0].numel()
        self.order = (model.generation_order() if order is None else order).tolist()  # indices into x[0].flatten()
        U = self.head.num_uniforms
        if uniforms is None and not greedy:
            uniforms = get_uniform(None, (n, self.D, U), generator=generator, device=model.device)
        # step-major (D, n, U), so each step reads one contiguous block
        self.uniforms = None if greedy else uniforms.reshape(n, self.D, U).transpose(0, 1).contiguous()
        self.flat, self.known_flat = self.x.view(n, self.D), self.known.view(n, self.D)  # (n, D) views of x
        self.prompted = bool(self.known.any())

    def draw(self, pos: int, params: Tensor) -> Tensor:
        """Set element ``pos`` (an index into ``x[0].flatten()``) of the first ``m`` examples from their
        parameters ``params[m, P]`` (``m <= n``), keeping prompted values; returns the values now there,
        ``[m]``."""
        m = params.shape[0]
        if self.greedy:
            v = self.head.mode(params)
        else:
            u = self.uniforms[pos]
            v = self.head.sample(params, u if m == self.n else u[:m], temperature=self.temperature)
        if v.dtype != self.flat.dtype:
            v = v.to(self.flat.dtype)
        if self.prompted:
            v = torch.where(self.known_flat[:m, pos], self.flat[:m, pos], v)
        self.flat[:m, pos] = v
        return v


def run_steps(model: "ARModel", canvas: Canvas, steps: ContextManager[Step], *, progress: bool = False,
              limit: int | None = None) -> Tensor:
    """Draw the elements of ``canvas`` in its generation order with the step function ``steps`` yields
    (``model.steps(canvas, ...)`` or ``model.naive_steps(canvas, ...)``); returns ``canvas.x``. ``limit``
    stops after that many elements (benchmarks time a part of a long naive run)."""
    order = canvas.order[:limit]
    with torch.no_grad(), eval_mode(model), steps as step:
        prev = None
        for s, pos in enumerate(tqdm(order, desc="sampling", unit=model.sample_unit, disable=not progress,
                                     leave=False)):
            prev = canvas.draw(pos, step(s, prev))
    return canvas.x


def run_piece(model: "ARModel", canvas: Canvas, step: Step, offset: int, first: Tensor | None) -> Tensor:
    """One piece of a run generated in pieces: the canvas's elements are the run's ``offset, offset + 1, ...``,
    drawn by the run's carried ``step``; ``first`` is the value drawn just before the piece (None at the start).
    Returns ``canvas.x``."""

    @contextlib.contextmanager
    def piece():
        yield lambda s, prev: step(offset + s, first if s == 0 else prev)

    return run_steps(model, canvas, piece())


class ARModel(nn.Module):
    """Base class. Subclasses set ``config_class``, build ``self.head`` and implement ``forward``."""

    config_class: type = None  # the model's config dataclass
    sample_unit = "el"         # what one step draws, for progress bars

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

    @property
    def dtype(self) -> torch.dtype:
        """The floating dtype of the parameters: the network runs in it (``.double()``, ``.bfloat16()``)."""
        return next(p.dtype for p in self.parameters() if p.is_floating_point())

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    # ---- sampling -------------------------------------------------------------------------------
    def _blank(self, n: int, prompt: Tensor | None, shape: tuple[int, ...] | None = None) -> tuple[Tensor, Tensor]:
        """A canvas ``x[n, *shape]`` and the boolean mask of the positions a prompt fixes."""
        dtype = torch.long if self.head.discrete else self.dtype
        x = torch.zeros((n, *(shape or self.event_shape)), dtype=dtype, device=self.device)
        known = torch.zeros(x.shape, dtype=torch.bool, device=self.device)
        if prompt is not None:
            prompt = prompt.to(self.device).expand_as(x)
            known = prompt >= 0 if self.head.discrete else ~torch.isnan(prompt)
            x = torch.where(known, prompt.to(dtype), x)
        return x, known

    @contextlib.contextmanager
    def naive_steps(self, canvas: Canvas, **cond) -> Iterator[Step]:
        """The reference step: one full forward pass over the canvas per element."""
        order = canvas.order
        yield lambda s, prev: self(canvas.x, **cond).reshape(canvas.n, canvas.D, -1)[:, order[s]]  # (n, P)

    def steps(self, canvas: Canvas, **cond) -> ContextManager[Step]:
        """The cached step where the model has one (override); the naive step otherwise."""
        return self.naive_steps(canvas, **cond)

    def sample(self, n: int, prompt: Tensor | None = None, generator: torch.Generator | None = None,
               temperature: float = 1.0, greedy: bool = False, uniforms: Tensor | None = None,
               progress: bool = False, cached: bool = True, **cond) -> Tensor:
        """Draw ``n`` examples, one element at a time in :meth:`generation_order`.

        prompt: ``Tensor[*event]`` or ``Tensor[n, *event]``; elements ``>= 0`` (discrete data) or not
            NaN (continuous data) are kept fixed, the rest generated (image completion).
        uniforms: optional pre-drawn ``Tensor[n, *event, U]`` (``U = head.num_uniforms``) so that two
            samplers can be compared exactly.
        greedy: take the mode of each conditional instead of sampling.
        cached: the model's cached step (:meth:`start`); False: the naive step (:meth:`naive_steps`).
        progress: show a progress bar over the elements.
        """
        with torch.no_grad():
            canvas = Canvas(self, n, prompt, generator, temperature, greedy, uniforms)
        steps = self.steps(canvas, **cond) if cached else self.naive_steps(canvas, **cond)
        return run_steps(self, canvas, steps, progress=progress)
