"""Sampling filters (temperature / top-k / top-p) and inverse-CDF draws with injected uniforms."""
import math

import pytest
import torch

from arsound.core import sampling
from arsound.core.sampling import EPS, filter_logits, get_uniform, inverse_cdf, sample_logits


def _logits(*shape, seed=0):
    return torch.randn(*shape, generator=torch.Generator().manual_seed(seed)) * 2


# ---- filters ------------------------------------------------------------------------------------
def test_temperature_divides_logits():
    logits = _logits(3, 7)
    for t in (0.25, 1.0, 3.0):
        assert torch.allclose(filter_logits(logits, temperature=t), logits / t)
    for t in (0.0, -1.0):
        with pytest.raises(ValueError, match="temperature"):
            filter_logits(logits, temperature=t)


@pytest.mark.parametrize("k", [1, 3, 6])
def test_top_k_keeps_exactly_the_k_largest(k):
    logits = _logits(5, 10, seed=k)
    out = filter_logits(logits, top_k=k)
    kept = torch.isfinite(out)
    assert (kept.sum(-1) == k).all()
    top = logits.topk(k, dim=-1).indices
    assert kept.gather(-1, top).all()
    assert torch.equal(out[kept], logits[kept])


def test_top_k_edge_values():
    logits = _logits(2, 4)
    assert torch.equal(filter_logits(logits, top_k=4), logits)
    assert torch.equal(filter_logits(logits, top_k=100), logits)
    with pytest.raises(ValueError, match="top_k"):
        filter_logits(logits, top_k=0)


def _nucleus_reference(logits, p):
    """Smallest set of most-probable classes whose mass reaches ``p`` (plain Python, one row)."""
    probs = torch.softmax(logits.double(), -1).tolist()
    order = sorted(range(len(probs)), key=lambda i: -probs[i])
    keep, mass = set(), 0.0
    for i in order:
        keep.add(i)
        mass += probs[i]
        if mass >= p:
            break
    return keep


@pytest.mark.parametrize("p", [1e-6, 0.3, 0.5, 0.9, 0.999])
def test_top_p_matches_reference(p):
    logits = _logits(20, 12, seed=7)
    out = filter_logits(logits, top_p=p)
    for row, filtered in zip(logits, out):
        kept = {i for i in range(12) if math.isfinite(filtered[i].item())}
        assert kept == _nucleus_reference(row, p)
    assert torch.isfinite(out).any(-1).all()  # the top class always survives


def test_top_p_edge_values():
    logits = _logits(2, 5)
    assert torch.equal(filter_logits(logits, top_p=1.0), logits)
    for p in (0.0, -0.5):
        with pytest.raises(ValueError, match="top_p"):
            filter_logits(logits, top_p=p)


def test_top_k_then_top_p_uses_renormalized_mass():
    logits = _logits(10, 9, seed=3)
    out = filter_logits(logits, top_k=4, top_p=0.8)
    for row, filtered in zip(logits, out):
        top4 = row.topk(4).indices
        restricted = torch.full_like(row, float("-inf"))
        restricted[top4] = row[top4]
        kept = {i for i in range(9) if math.isfinite(filtered[i].item())}
        assert kept == _nucleus_reference(restricted, 0.8)


# ---- inverse CDF --------------------------------------------------------------------------------
def test_inverse_cdf_boundaries_exact():
    probs = torch.tensor([0.125, 0.25, 0.125, 0.5])  # cdf 0.125, 0.375, 0.5, 1 (exact in binary)
    u = torch.tensor([EPS, 0.1, 0.125, 0.374, 0.375, 0.49, 0.5, 0.75, 1 - EPS])
    expected = torch.tensor([0, 0, 1, 1, 2, 2, 3, 3, 3])
    assert torch.equal(inverse_cdf(probs.expand(len(u), 4), u), expected)
    assert torch.equal(inverse_cdf(3 * probs.expand(len(u), 4), u), expected)  # unnormalized is fine


def test_inverse_cdf_never_picks_zero_probability_classes():
    probs = torch.tensor([0.0, 0.5, 0.0, 0.0, 0.5, 0.0])
    u = get_uniform(torch.linspace(0, 1, 10001), (10001,))
    idx = inverse_cdf(probs.expand(len(u), -1), u)
    assert set(idx.unique().tolist()) == {1, 4}


def test_stratified_uniforms_reproduce_probabilities():
    """With u = (i + 1/2) / N the count of class k is N p_k up to one: the map u -> k is the inverse CDF."""
    logits = _logits(11, seed=5)
    N = 20000
    u = (torch.arange(N, dtype=torch.float64) + 0.5) / N
    idx = sample_logits(logits.expand(N, -1), u.float())
    counts = torch.bincount(idx, minlength=11).double()
    assert (counts - N * torch.softmax(logits.double(), -1)).abs().max() <= 1.5


def test_sample_logits_injected_uniforms_are_deterministic():
    logits = _logits(4, 6, 9)
    u = sampling.uniform((4, 6), generator=torch.Generator().manual_seed(1))
    a = sample_logits(logits, u, temperature=0.7, top_k=5)
    b = sample_logits(logits.transpose(0, 1).contiguous().transpose(0, 1), u, temperature=0.7, top_k=5)
    assert torch.equal(a, b)
    assert torch.equal(a, inverse_cdf(torch.softmax(filter_logits(logits, 0.7, top_k=5), -1), u))
    # generator path == injected path with the same seed
    c = sample_logits(logits, temperature=0.7, top_k=5, generator=torch.Generator().manual_seed(1))
    assert torch.equal(a, c)


def test_filtered_classes_are_never_sampled():
    logits = _logits(6, 8, seed=11)
    u = torch.cat([torch.tensor([0.0, 1.0]), torch.linspace(0, 1, 998)])
    idx = sample_logits(logits.unsqueeze(0).expand(len(u), -1, -1), u[:, None].expand(-1, 6), top_k=2)
    allowed = logits.topk(2, dim=-1).indices
    assert (idx.unsqueeze(-1) == allowed).any(-1).all()


def test_low_precision_logits_draw_float32_uniforms():
    """bf16 uniforms never exceed 0.996, so a class at the top of the CDF with p = 1e-3 was never drawn."""
    logits = torch.tensor([math.log(0.999), math.log(1e-3)]).bfloat16().expand(20000, 2)
    a = sample_logits(logits, generator=torch.Generator().manual_seed(0))
    b = sample_logits(logits.float(), generator=torch.Generator().manual_seed(0))
    assert torch.equal(a, b)
    assert 5 <= int(a.sum()) <= 45  # expected ~20


def test_get_uniform_checks_shape_and_clamps():
    with pytest.raises(ValueError, match="shape"):
        get_uniform(torch.rand(3, 2), (3, 1))
    u = get_uniform(torch.tensor([0.0, 1.0, 0.5]), (3,))
    assert 0 < u.min() and u.max() < 1 and u[2] == 0.5
    fresh = get_uniform(None, (1000,), generator=torch.Generator().manual_seed(0))
    assert fresh.dtype == torch.float32 and 0 < fresh.min() and fresh.max() < 1


def test_a_seed_draws_on_its_generator_device_and_moves():
    """A CPU generator asked for uniforms on another device draws on the CPU (the same values a CPU run gets)
    and moves them: one seed, one set of draws, wherever the model runs ("meta" stands in for a GPU)."""
    a = sampling.uniform((3, 4), generator=torch.Generator().manual_seed(7))
    b = sampling.uniform((3, 4), generator=torch.Generator().manual_seed(7), device="cpu")
    moved = sampling.uniform((3, 4), generator=torch.Generator().manual_seed(7), device="meta")
    assert torch.equal(a, b) and moved.device.type == "meta" and moved.shape == (3, 4)
