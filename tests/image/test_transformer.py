"""Image GPT / Sparse Transformer / Image Transformer: attention reach per pattern, cached == naive."""
import pytest
import torch

from arsound.core.attention import causal_mask, fixed_mask, local_mask, strided_mask
from arsound.image import build
from arsound.image.transformer import pixel_major_order

NAMES = ["igpt", "sparse_transformer", "image_transformer"]


def noisy(model, seed=0):
    torch.manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model.eval()


def reach(model, shape):
    """``R[s, j]``: does input position ``j`` (element ``j - 1``, or the start vector) reach output ``s``?"""
    x = torch.randint(0, model.config.levels, (1, *shape), generator=torch.Generator().manual_seed(0))
    h = model.embed(x).detach().requires_grad_()
    out = model.body(h)                                              # (1, T, P)
    rows = []
    for s in range(out.shape[1]):
        (g,) = torch.autograd.grad(out[0, s].sum(), h, retain_graph=True)
        rows.append(g[0].abs().sum(-1) > 0)
    return torch.stack(rows)


def test_pixel_major_order():
    order = pixel_major_order((3, 2, 2))  # element (c, i, j) sits at c*4 + i*2 + j
    assert order.tolist() == [0, 4, 8, 1, 5, 9, 2, 6, 10, 3, 7, 11]


@pytest.mark.parametrize("shape", [(1, 4, 4), (3, 3, 2)])
@pytest.mark.parametrize("name,pattern", [("igpt", "causal"), ("sparse_transformer", "strided"),
                                          ("sparse_transformer", "fixed"), ("image_transformer", "local")])
def test_one_layer_reach_is_the_pattern(name, pattern, shape):
    """In a 1-layer model output s depends on input j exactly where the configured mask allows it."""
    C, H, W = shape
    T, row = C * H * W, W * C
    model = noisy(build(name, shape=shape, levels=2, size="debug", layers=1, attention=(pattern,), summary=2))
    expected = {"causal": causal_mask(T), "strided": strided_mask(T, row), "fixed": fixed_mask(T, row, 2),
                "local": local_mask(T, row)}[pattern]
    assert torch.equal(reach(model, shape), expected)
    if pattern != "causal":  # the sparse pattern really drops some earlier positions
        assert (causal_mask(T) & ~expected).any()


def test_sparse_transformer_two_layers_reach_everything_earlier():
    model = noisy(build("sparse_transformer", shape=(1, 5, 5), levels=2, size="debug", layers=2))
    assert [p for p, _ in model.patterns()] == ["strided", "fixed"]
    assert torch.equal(reach(model, (1, 5, 5)), causal_mask(25))


def test_image_transformer_two_layers_reach_two_blocks_back():
    model = noisy(build("image_transformer", shape=(1, 6, 3), levels=2, size="debug", layers=2))
    i, j = torch.arange(18)[:, None], torch.arange(18)[None, :]
    assert torch.equal(reach(model, (1, 6, 3)), (j <= i) & (j // 3 >= i // 3 - 2))


def test_default_stride_and_block_are_one_row():
    sparse = build("sparse_transformer", shape=(1, 28, 28), levels=2, size="debug")
    assert sparse.patterns() == [("strided", {"stride": 28}), ("fixed", {"stride": 28, "c": 1})]
    local = build("image_transformer", shape=(3, 4, 5), levels=4, size="debug")
    assert local.patterns()[0] == ("local", {"block": 15})


def test_unknown_pattern_is_an_error():
    with pytest.raises(ValueError, match="unknown attention pattern"):
        build("igpt", shape=(1, 2, 2), size="debug", attention=("dilated",))


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape,levels", [((1, 4, 4), 2), ((3, 3, 3), 4)])
def test_cached_steps_equal_forward(name, shape, levels):
    model = noisy(build(name, shape=shape, levels=levels, size="debug"))
    x = torch.randint(0, levels, (3, *shape), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        full = model(x).flatten(1, 3)[:, model.generation_order()]   # (B, T, P) in sequence order
        seq = model.to_sequence(x)
        with model.streaming():
            steps = [model.step(seq[:, s - 1] if s else torch.zeros_like(seq[:, 0]), s)
                     for s in range(seq.shape[1])]
    assert torch.allclose(torch.stack(steps, 1), full, atol=1e-5, rtol=0)
    assert all(not m.state for m in model.modules() if hasattr(m, "state"))  # caches cleared on exit


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape,levels", [((1, 4, 4), 2), ((3, 3, 3), 4)])
def test_cached_sampling_equals_naive(name, shape, levels):
    model = noisy(build(name, shape=shape, levels=levels, size="debug"), seed=2)
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
    # the same generator seed gives the same images on both paths too
    a = model.sample(2, generator=torch.Generator().manual_seed(5))
    b = model.sample(2, generator=torch.Generator().manual_seed(5), cached=False)
    assert torch.equal(a, b)


def test_cached_sampling_never_runs_a_full_forward(monkeypatch):
    model = noisy(build("sparse_transformer", shape=(1, 4, 4), levels=2, size="debug"))

    def full_forward(*a, **k):
        raise AssertionError("the cached sampler ran a full forward pass")

    monkeypatch.setattr(model, "forward", full_forward)
    x = model.sample(2, generator=torch.Generator().manual_seed(0))
    assert x.shape == (2, 1, 4, 4)
    with pytest.raises(AssertionError, match="full forward"):
        model.sample(2, generator=torch.Generator().manual_seed(0), cached=False)
