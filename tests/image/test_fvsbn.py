"""FVSBN: the weight mask is strictly lower triangular in generation order, the logits are a logistic
regression on the earlier elements (checked against a loop), and the incremental sampler equals the
generic naive sampler draw for draw."""
import math

import pytest
import torch

from arsound.image import build
from arsound.image.fvsbn import element_features


def randomized(shape, levels, seed=0, **overrides):
    torch.manual_seed(seed)
    model = build("fvsbn", shape=shape, levels=levels, size="debug", **overrides).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.5 * torch.randn_like(p))
    return model


@pytest.mark.parametrize("shape,levels,one_hot", [((1, 3, 4), 2, True), ((3, 2, 2), 4, True), ((3, 2, 2), 4, False)])
def test_weight_mask_is_strictly_lower_triangular_in_generation_order(shape, levels, one_hot):
    model = randomized(shape, levels, one_hot=one_hot)
    D, P, Fe = math.prod(shape), model.P, model.F
    order = model.generation_order()
    mask = model.linear.mask.view(P, D, Fe, D)[:, order][:, :, :, order]  # rows / columns in order
    full = torch.tril(torch.ones(D, D), -1)  # all earlier elements, nothing else
    assert torch.equal(mask, full[None, :, None, :].expand(P, D, Fe, D))
    # and only masked weights are used: changing a masked-out weight changes nothing
    x = torch.randint(0, levels, (3, *shape))
    with torch.no_grad():
        before = model(x)
        model.linear.weight.add_(100.0 * (1 - model.linear.mask))
        assert torch.equal(model(x), before)


@pytest.mark.parametrize("levels,one_hot", [(2, True), (3, True), (3, False)])
def test_logits_are_logistic_regression_on_earlier_elements(levels, one_hot):
    """Reference: logits[d] = b[d] + sum over j generated before d of w[d, j] . f(x_j), by loops."""
    shape = (3, 2, 2)
    model = randomized(shape, levels, one_hot=one_hot).double()
    D, P, Fe = 12, model.P, model.F
    W = model.linear.weight.view(P, D, Fe, D)
    b = model.linear.bias.view(P, D)
    x = torch.randint(0, levels, (4, *shape))
    f = element_features(x.flatten(1), levels, one_hot).double()  # (B, D, F)
    order = model.generation_order().tolist()
    ref = torch.zeros(4, D, P, dtype=torch.float64)
    for i, d in enumerate(order):
        ref[:, d] = b[:, d]
        for j in order[:i]:
            ref[:, d] += f[:, j] @ W[:, d, :, j].T  # (B, F) @ (F, P)
    with torch.no_grad():
        assert torch.allclose(model(x).reshape(4, D, P), ref, atol=1e-10)


def test_binary_generation_order_is_raster_with_channels_inside_a_pixel():
    model = build("fvsbn", shape=(2, 2, 2), levels=2, size="debug")
    # (C, H, W) flat index c*4 + i*2 + j; pixel by pixel, channel 0 then 1
    assert model.generation_order().tolist() == [0, 4, 1, 5, 2, 6, 3, 7]


@pytest.mark.parametrize("shape,levels", [((1, 4, 5), 2), ((3, 3, 3), 4)])
def test_incremental_sampler_equals_naive_sampler(shape, levels):
    model = randomized(shape, levels, seed=2)
    n = 6
    U = model.head.num_uniforms
    u = torch.rand(n, *shape, U, generator=torch.Generator().manual_seed(1))
    prompt = torch.full(shape, -1)
    prompt[:, 0] = torch.randint(0, levels, prompt[:, 0].shape)
    fast = model.sample(n, prompt=prompt, uniforms=u)
    slow = model.sample(n, prompt=prompt, uniforms=u, cached=False)
    assert torch.equal(fast, slow)
    assert (fast[:, :, 0] == prompt[:, 0]).all()
    assert len(torch.unique(fast.flatten(1), dim=0)) > 1  # really samples, not a constant
    assert torch.equal(model.sample(n, greedy=True), model.sample(n, greedy=True, cached=False))


def test_parameter_count_and_zero_init_is_uniform():
    model = build("fvsbn", shape=(1, 28, 28), levels=2, size="small")
    assert model.num_parameters() == 784 * 784 + 784
    x = torch.randint(0, 2, (2, 1, 28, 28))
    with torch.no_grad():  # a convex model: starting from zero is the uniform distribution
        assert torch.allclose(model.log_prob(x), torch.full((2,), -784 * math.log(2)))
