"""PixelSNAIL: exact element-level reach (attention removes the conv cone), cached == naive."""
import pytest
import torch

from arsound.image import build
from arsound.image.pixelsnail import from_seq, to_seq


def noisy(model, seed=0):
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model.eval()


def reach(model, shape, upto=None):
    """``R[s, m]``: does element ``m`` (sequence order) reach output ``s``? By gradient, ``[T, T]``."""
    C, H, W = shape
    z = (torch.rand(1, *shape, generator=torch.Generator().manual_seed(0)) * 2 - 1).requires_grad_()
    out = model.net(z)                                                 # (1, T, P)
    rows = []
    for s in range(out.shape[1]):
        (g,) = torch.autograd.grad(out[0, s].sum(), z, retain_graph=True)
        rows.append(to_seq(g, C)[0, :, 0] != 0)
    return torch.stack(rows)


def test_seq_layout_round_trip():
    h = torch.randn(2, 3 * 4, 2, 5)  # C = 3 groups of 4 features
    s = to_seq(h, 3)
    assert s.shape == (2, 2 * 5 * 3, 4)
    assert torch.equal(s[:, (1 * 5 + 2) * 3 + 1], h[:, 4:8, 1, 2])     # element (c=1, i=1, j=2)
    assert torch.equal(from_seq(s, 3, 2, 5), h)


@pytest.mark.parametrize("shape", [(1, 5, 5), (3, 3, 2)])
def test_every_earlier_element_reaches_each_output(shape):
    """Strictly causal in sequence order, and attention reaches past the convolutions' cone."""
    T = torch.Size(shape).numel()
    model = noisy(build("pixelsnail", shape=shape, levels=2, size="debug", blocks=1))
    i, j = torch.arange(T)[:, None], torch.arange(T)[None, :]
    assert torch.equal(reach(model, shape), j < i)


def test_convolutions_alone_have_a_limited_reach():
    """The same model with its attention output zeroed sees only a local cone (a 3x3 pair of layers)."""
    shape = (1, 5, 5)
    model = noisy(build("pixelsnail", shape=shape, levels=2, size="debug", blocks=1))
    with torch.no_grad():
        model.blocks[0].attn.mix_attn.weight.zero_()
        model.blocks[0].attn.mix_attn.bias.zero_()
    R = reach(model, shape)
    assert not R[24, 4]        # pixel (4, 4) cannot see (0, 4) through two 3x3 masked layers
    assert R[24, 23] and R[24, 18] and (R <= torch.tril(torch.ones(25, 25, dtype=torch.bool), -1)).all()


@pytest.mark.parametrize("shape,levels", [((1, 4, 4), 2), ((3, 3, 3), 4)])
def test_cached_steps_equal_forward(shape, levels):
    model = noisy(build("pixelsnail", shape=shape, levels=levels, size="debug"))
    x = torch.randint(0, levels, (3, *shape), generator=torch.Generator().manual_seed(1))
    order = model.generation_order()
    with torch.no_grad():
        full = model(x).flatten(1, 3)[:, order]                        # (B, T, P) in sequence order
        seq = x.flatten(1)[:, order]
        with model.streaming():
            steps = [model.step(seq[:, s - 1] if s else torch.zeros_like(seq[:, 0]), s)
                     for s in range(seq.shape[1])]
    assert torch.allclose(torch.stack(steps, 1), full, atol=1e-5, rtol=0)
    assert not model.cache.state and not model.blocks[0].attn.state  # caches cleared on exit


@pytest.mark.parametrize("shape,levels", [((1, 4, 4), 2), ((3, 3, 3), 4)])
def test_cached_sampling_equals_naive(shape, levels):
    model = noisy(build("pixelsnail", shape=shape, levels=levels, size="debug"), seed=2)
    n, D = 4, torch.Size(shape).numel()
    g = torch.Generator().manual_seed(3)
    prompt = torch.full((n, *shape), -1)
    prompt[:, :, 0] = torch.randint(0, levels, (n, shape[0], shape[2]), generator=g)  # first image row
    u = torch.rand(n, D, model.head.num_uniforms, generator=g)
    for kw in (dict(uniforms=u), dict(uniforms=u, prompt=prompt), dict(greedy=True, prompt=prompt)):
        cached = model.sample(n, **kw)
        naive = model.sample(n, cached=False, **kw)
        assert torch.equal(cached, naive), kw.keys()
    assert (cached[:, :, 0] == prompt[:, :, 0]).all()


def test_step_outside_streaming_is_an_error():
    model = build("pixelsnail", shape=(1, 2, 2), levels=2, size="debug")
    with pytest.raises(RuntimeError, match="streaming"):
        model.step(torch.zeros(1, dtype=torch.long), 0)
