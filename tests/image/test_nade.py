"""NADE: the O(D H) cumulative-sum pass equals a slow reference with one matrix product per element,
and the O(D H) incremental sampler equals the generic naive sampler draw for draw."""
import math

import pytest
import torch

from arsound.image import build
from arsound.image.fvsbn import element_features


def randomized(shape, levels, seed=0, **overrides):
    torch.manual_seed(seed)
    model = build("nade", shape=shape, levels=levels, size="debug", **overrides).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5 * torch.randn_like(p))
    return model


def slow_params(model, x):
    """Reference: for each step i, h = sigmoid(c + W[:, earlier] f(x[earlier])) by its own product."""
    K, one_hot = model.config.levels, model.config.one_hot
    B, D = x.shape[0], x[0].numel()
    f = element_features(x.flatten(1), K, one_hot, model.W.dtype)  # (B, D, F)
    order = model.generation_order().tolist()
    Wm = model.W.permute(1, 2, 0).flatten(1)  # (H, D*F)
    out = torch.zeros(B, D, model.P, dtype=model.W.dtype)
    for i, d in enumerate(order):
        seen = torch.zeros(D, 1, dtype=model.W.dtype)
        seen[order[:i]] = 1
        h = torch.sigmoid(model.c + (f * seen).flatten(1) @ Wm.T)  # (B, H)
        out[:, d] = h @ model.V[..., d] + model.b[:, d]
    return out


@pytest.mark.parametrize("shape,levels,one_hot", [((1, 4, 4), 2, True), ((3, 2, 3), 4, True), ((3, 2, 3), 4, False)])
def test_cumsum_pass_equals_one_product_per_element(shape, levels, one_hot):
    model = randomized(shape, levels, one_hot=one_hot).double()
    x = torch.randint(0, levels, (5, *shape))
    with torch.no_grad():
        fast = model(x).reshape(5, math.prod(shape), -1)
        assert torch.allclose(fast, slow_params(model, x), atol=1e-10)
        # float32 too: the cumulative sum loses nothing that matters
        m32 = model.float()
        assert torch.allclose(m32(x).reshape_as(fast).double(), fast, atol=1e-5)


def test_input_weights_are_tied_across_conditionals():
    """One W for all D conditionals: its size is H x D x F, not D separate networks."""
    model = build("nade", shape=(1, 28, 28), levels=2, size="base")
    H, D = 500, 784
    assert model.W.shape == (1, H, D)
    assert model.num_parameters() == H * D + H + D * H + D  # 785,284


@pytest.mark.parametrize("shape,levels", [((1, 4, 5), 2), ((3, 3, 3), 4)])
def test_incremental_sampler_equals_naive_sampler(shape, levels):
    model = randomized(shape, levels, seed=3)
    n = 6
    u = torch.rand(n, *shape, model.head.num_uniforms, generator=torch.Generator().manual_seed(1))
    prompt = torch.full(shape, -1)
    prompt[:, 0] = torch.randint(0, levels, prompt[:, 0].shape)
    fast = model.sample(n, prompt=prompt, uniforms=u)
    slow = model.sample(n, prompt=prompt, uniforms=u, cached=False)
    assert torch.equal(fast, slow)
    assert (fast[:, :, 0] == prompt[:, 0]).all()
    assert len(torch.unique(fast.flatten(1), dim=0)) > 1
    assert torch.equal(model.sample(n, greedy=True), model.sample(n, greedy=True, cached=False))
    # a generator gives the same images as uniforms drawn from it in the naive sampler's shape
    g1, g2 = torch.Generator().manual_seed(7), torch.Generator().manual_seed(7)
    assert torch.equal(model.sample(n, generator=g1), model.sample(n, generator=g2, cached=False))


def test_a_few_steps_of_training_lower_the_nll():
    torch.manual_seed(0)
    model = build("nade", shape=(1, 6, 6), levels=2, size="debug").train()
    x = (torch.rand(32, 1, 6, 6) < torch.linspace(0.1, 0.9, 36).view(1, 1, 6, 6)).long()
    opt = torch.optim.Adam(model.parameters(), lr=3e-2)
    first = model.loss(x)[0].item()
    for _ in range(30):
        opt.zero_grad()
        loss, _ = model.loss(x)
        loss.backward()
        opt.step()
    assert loss.item() < 0.85 * first
