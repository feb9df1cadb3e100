"""The plain recurrent AR model (core/rnn.py): exact normalization over every sequence of a tiny space, causality,
the cached step == the teacher-forced forward, cached == naive sampling with the same uniforms, LSTM and GRU."""
from __future__ import annotations

import itertools

import pytest
import torch

from arsound.core.rnn import SequenceRNN, SequenceRNNConfig
from arsound.image import build


def tiny(cell: str, position: bool = False, seed: int = 0) -> SequenceRNN:
    torch.manual_seed(seed)
    model = SequenceRNN(SequenceRNNConfig(length=4, vocab=3, cell=cell, hidden=8, embed=4, position=position))
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model.eval()


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_normalized_over_every_sequence(cell):
    model = tiny(cell, position=True)
    x = torch.tensor(list(itertools.product(range(3), repeat=4)))
    with torch.no_grad():
        assert model.log_prob(x).double().exp().sum().item() == pytest.approx(1.0, abs=1e-5)


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_changing_a_later_symbol_never_changes_an_earlier_term(cell):
    model = tiny(cell)
    x = torch.randint(0, 3, (5, 4), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        base = model.log_prob(x, reduce=False)
        for j in range(4):
            y = x.clone()
            y[:, j] = (y[:, j] + 1) % 3
            terms = model.log_prob(y, reduce=False)
            torch.testing.assert_close(terms[:, :j], base[:, :j])
            assert j == 3 or not torch.allclose(terms[:, j + 1:], base[:, j + 1:])  # and it does reach the later


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_cached_step_equals_the_forward_and_samples_match(cell):
    model = tiny(cell, position=True)
    x = torch.randint(0, 3, (6, 4), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(x)
        step, prev = model.net.stepper(6), None
        for s in range(4):
            torch.testing.assert_close(step(s, prev), full[:, s], atol=1e-6, rtol=1e-5)
            prev = x[:, s]
    u = torch.rand(16, 4, 1, generator=torch.Generator().manual_seed(2))
    assert torch.equal(model.sample(16, uniforms=u), model.sample(16, uniforms=u, cached=False))
    assert torch.equal(model.sample(4, greedy=True), model.sample(4, greedy=True, cached=False))


def test_image_rnn_reads_the_image_in_raster_order_and_samples_like_the_naive_path():
    """Colour digits: the cached sampler (one cell update per element) draws what the naive one draws."""
    torch.manual_seed(0)
    model = build("rnn", shape=(3, 3, 3), levels=4, size="debug").eval()
    u = torch.rand(5, 3, 3, 3, 1, generator=torch.Generator().manual_seed(3))
    prompt = torch.full((3, 3, 3), -1)
    prompt[:, 0] = 2
    fast = model.sample(5, prompt=prompt, uniforms=u)
    assert torch.equal(fast, model.sample(5, prompt=prompt, uniforms=u, cached=False))
    assert (fast[:, :, 0] == 2).all()
    with pytest.raises(ValueError, match="unknown cell"):
        build("rnn", shape=(1, 4, 4), levels=2, size="debug", cell="rnn_tanh")
