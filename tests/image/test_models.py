"""Properties every image model in the registry must have (DESIGN.md section 2).

Exact normalization on tiny event spaces, causality along ``generation_order()``, prompts kept by
``sample``, finite loss and gradients, and identical ``log_prob`` after save -> load.
"""
import itertools

import pytest
import torch

import arsound
from arsound.image import MODELS, build

NAMES = sorted(MODELS)


def all_images(shape, levels):
    """Every image of ``shape`` with ``levels`` levels: LongTensor[levels**D, *shape]."""
    D = torch.Size(shape).numel()
    return torch.tensor(list(itertools.product(range(levels), repeat=D))).view(-1, *shape)


def tiny(name, shape, levels, seed=0):
    torch.manual_seed(seed)
    model = build(name, shape=shape, levels=levels, size="debug").eval()
    # random (not freshly-initialised-zero) weights so every connection carries signal
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape,levels", [((1, 2, 2), 2), ((3, 1, 2), 3)])
def test_normalized_on_tiny_event_space(name, shape, levels):
    model = tiny(name, shape, levels)
    x = all_images(shape, levels)
    with torch.no_grad():
        lp = torch.cat([model.log_prob(b) for b in x.split(256)]).double()
    assert torch.isfinite(lp).all()
    assert abs(lp.exp().sum().item() - 1.0) < 1e-5


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape,levels", [((1, 4, 4), 2), ((3, 3, 3), 4)])
def test_causal_along_generation_order(name, shape, levels):
    """Changing element order[j] never changes the terms of order[:j]; it may change its own and later."""
    model = tiny(name, shape, levels, seed=1)
    order = model.generation_order()
    D = order.numel()
    assert sorted(order.tolist()) == list(range(D))
    g = torch.Generator().manual_seed(0)
    x = torch.randint(0, levels, (2, *shape), generator=g)
    with torch.no_grad():
        base = model.log_prob(x, reduce=False).flatten(1)
        for j in range(D):
            y = x.clone().flatten(1)
            y[:, order[j]] = (y[:, order[j]] + 1) % levels
            terms = model.log_prob(y.view_as(x), reduce=False).flatten(1)
            earlier = order[:j]
            assert torch.allclose(terms[:, earlier], base[:, earlier], atol=1e-5), f"element {order[j].item()} leaks"


@pytest.mark.parametrize("name", NAMES)
def test_sample_keeps_prompt(name):
    shape, levels = (1, 4, 4), 2
    model = tiny(name, shape, levels)
    prompt = torch.full(shape, -1)
    prompt[:, :2] = torch.randint(0, levels, (1, 2, 4))
    x = model.sample(3, prompt=prompt, generator=torch.Generator().manual_seed(0))
    assert x.shape == (3, *shape) and x.dtype == torch.long
    assert ((x >= 0) & (x < levels)).all()
    assert (x[:, :, :2] == prompt[:, :2]).all()


@pytest.mark.parametrize("name", NAMES)
def test_loss_and_gradients_finite(name):
    model = build(name, shape=(1, 8, 8), levels=2, size="debug").train()
    x = torch.randint(0, 2, (4, 1, 8, 8))
    loss, metrics = model.loss(x)
    loss.backward()
    assert torch.isfinite(loss) and loss > 0
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)
    assert metrics["bits_per_dim"] > 0


@pytest.mark.parametrize("name", NAMES)
def test_save_load_identical_log_prob(name, tmp_path):
    model = tiny(name, (1, 4, 4), 2)
    x = torch.randint(0, 2, (5, 1, 4, 4))
    arsound.save_pretrained(model, tmp_path / name)
    loaded = arsound.load(tmp_path / name).eval()
    with torch.no_grad():
        assert torch.equal(model.log_prob(x), loaded.log_prob(x))


@pytest.mark.parametrize("name", NAMES)
def test_runs_in_the_dtype_of_its_parameters(name):
    """After ``.double()`` the model computes in float64 (the same log-probs, cached == naive sampling); in
    bfloat16 (autocast, or its parameters cast) its log-probs stay within 0.1 nats of float32's (measured:
    at most 0.01 on these freshly built debug models) and it samples."""
    shape, levels = (3, 3, 3), 4
    model = tiny(name, shape, levels)
    x = torch.randint(0, levels, (4, *shape), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        lp32 = model.log_prob(x)
        m64 = tiny(name, shape, levels).double()
        lp64 = m64.log_prob(x)
        assert lp64.dtype == torch.float64
        torch.testing.assert_close(lp64, lp32.double(), rtol=1e-4, atol=1e-4)
        draws = [m64.sample(3, generator=torch.Generator().manual_seed(1), cached=c) for c in (True, False)]
        assert torch.equal(*draws)
        torch.manual_seed(0)
        fresh = build(name, shape=shape, levels=levels, size="debug").eval()
        ref = fresh.log_prob(x)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            auto = fresh.log_prob(x)
        cast = fresh.to(torch.bfloat16).log_prob(x)
        for lp in (auto, cast):
            torch.testing.assert_close(lp.float(), ref, rtol=0, atol=0.1)
        x16 = fresh.sample(2, generator=torch.Generator().manual_seed(2))
        assert x16.shape == (2, *shape) and ((x16 >= 0) & (x16 < levels)).all()
