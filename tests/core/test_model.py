"""The one sampling engine (``core/model.py``): the canvas keeps prompts and draws from pre-drawn uniforms,
``run_steps`` visits the generation order once, a cached step draws exactly what the naive step draws, and a
step may return fewer rows (finished streams) without touching the others."""
from __future__ import annotations

import contextlib

import pytest
import torch
from torch import nn

from arsound.core.distributions import Categorical
from arsound.core.model import ARModel, Canvas, run_steps


class Counter(ARModel):
    """A categorical AR model over ``D`` tokens in reversed order whose logits are a learned function of the
    previous tokens' sum; its cached step keeps that sum (an O(1) state) and records every call."""

    config_class = dict

    def __init__(self, D: int = 6, K: int = 5) -> None:
        super().__init__({"D": D, "K": K})
        self.D, self.K = D, K
        self.head = Categorical(K)
        self.w = nn.Parameter(torch.randn(K, K + 1, generator=torch.Generator().manual_seed(0)))
        self.calls: list[tuple[int, int]] = []

    @property
    def event_shape(self):
        return (self.D,)

    def generation_order(self):
        return torch.arange(self.D).flip(0)

    def logits(self, total):  # total: (n,) sum of the tokens so far, clipped to K
        return nn.functional.one_hot(total.clamp(max=self.K), self.K + 1).float() @ self.w.T  # (n, K)

    def forward(self, x):
        order = self.generation_order()
        before = torch.cumsum(x[:, order], 1) - x[:, order]                # exclusive sums in generation order
        out = torch.empty(x.shape[0], self.D, self.K)
        out[:, order] = self.logits(before.flatten()).view(x.shape[0], self.D, self.K)
        return out

    @contextlib.contextmanager
    def steps(self, canvas):
        total = torch.zeros(canvas.n, dtype=torch.long)

        def step(s, prev):
            nonlocal total
            self.calls.append((s, 0 if prev is None else len(prev)))
            if s:
                total = total + prev
            return self.logits(total)

        yield step


def test_cached_equals_naive_and_keeps_the_prompt():
    model = Counter()
    prompt = torch.full((6,), -1)
    prompt[[1, 4]] = torch.tensor([3, 0])
    for seed in range(4):
        fast = model.sample(8, prompt=prompt, generator=torch.Generator().manual_seed(seed))
        naive = model.sample(8, prompt=prompt, generator=torch.Generator().manual_seed(seed), cached=False)
        assert torch.equal(fast, naive) and (fast[:, [1, 4]] == torch.tensor([3, 0])).all()
    assert [s for s, _ in model.calls[-6:]] == list(range(6))                # one step per element, in order
    u = torch.rand(8, 6, 1, generator=torch.Generator().manual_seed(9))
    a, b = model.sample(8, uniforms=u, temperature=0.5), model.sample(8, uniforms=u.clone(), temperature=0.5)
    assert torch.equal(a, b) and not torch.equal(a, model.sample(8, uniforms=u, temperature=2.0))
    assert torch.equal(model.sample(3, greedy=True), model.sample(3, greedy=True, cached=False))
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        model.sample(2, temperature=0)


def test_a_step_may_return_fewer_rows():
    """Rows a step leaves out keep what the canvas holds (finished streams); the engine passes the drawn rows on."""
    model = Counter()
    canvas = Canvas(model, 4, generator=torch.Generator().manual_seed(0))
    seen = []

    @contextlib.contextmanager
    def shrinking():
        def step(s, prev):
            seen.append(None if prev is None else len(prev))
            return model.logits(torch.zeros(4 - s // 2, dtype=torch.long))   # 4, 4, 3, 3, 2, 2 rows

        yield step

    x = run_steps(model, canvas, shrinking())
    assert seen == [None, 4, 4, 3, 3, 2]
    order = model.generation_order().tolist()
    for s, pos in enumerate(order):
        assert (x[4 - s // 2:, pos] == 0).all()                               # never drawn: the blank canvas
    model.calls.clear()
    canvas = Canvas(model, 2, generator=torch.Generator().manual_seed(1))
    run_steps(model, canvas, model.steps(canvas), limit=3)                  # benchmarks time a prefix of a run
    assert [s for s, _ in model.calls] == [0, 1, 2]
