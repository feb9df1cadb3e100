"""PixelRNN: Row LSTM's triangular context and the Diagonal BiLSTM's full context, both by gradient;
skew / unskew; R -> G -> B inside a pixel; the Row LSTM's row-cached sampler equals the naive one."""
import pytest
import torch

from arsound.image import build
from arsound.image.common import scale_input
from arsound.image.pixelrnn import skew, unskew


def randomized(name, shape, levels, seed=0, **overrides):
    """A model with large random weights, so every allowed connection carries signal."""
    torch.manual_seed(seed)
    model = build(name, shape=shape, levels=levels, size="debug", **overrides).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model.double()


# wider heads than "debug": with few channels all head ReLUs of an output can be dead for a whole batch
WIDE = dict(hidden=8, head_channels=24)


def influence(model, shape, i, j):
    """``|d out[:, :, i, j] / d input|`` summed over a batch: ``Tensor[C, H, W]``."""
    x = torch.randint(0, model.config.levels, (8, *shape), generator=torch.Generator().manual_seed(0))
    h = scale_input(x, model.config.levels).double().requires_grad_()
    model.network(h)[:, :, i, j].sum().backward()
    return h.grad.abs().sum(0)


def test_skew_moves_diagonals_to_columns_and_unskew_inverts_it():
    x = torch.randn(2, 4, 5, 3)  # (B, H, W, C)
    y = skew(x)
    assert y.shape == (2, 4, 8, 3)
    for i in range(4):
        assert torch.equal(y[:, i, i:i + 5], x[:, i])
        assert (y[:, i, :i] == 0).all() and (y[:, i, i + 5:] == 0).all()
    assert torch.equal(unskew(y), x)


@pytest.mark.parametrize("num_layers,first_kernel", [(1, 5), (2, 7), (3, 3)])
def test_row_lstm_context_is_the_papers_triangle(num_layers, first_kernel):
    """Output (i, j) sees exactly: the current row's columns j-L-r .. j-1 and, m rows up, columns
    j-L-r-m .. j+r-1+m (L layers, first kernel half-width r, k = 3): a triangle, never later pixels."""
    shape, (i, j) = (1, 7, 16), (6, 8)
    L, r = num_layers, first_kernel // 2
    model = randomized("pixelrnn", shape, 2, num_layers=L, first_kernel=first_kernel, **WIDE)
    seen = influence(model, shape, i, j)[0] > 0
    expected = torch.zeros(7, 16, dtype=torch.bool)
    expected[i, max(j - L - r, 0):j] = True
    for m in range(1, i + 1):
        expected[i - m, max(j - L - r - m, 0):j + r + m] = True
    assert torch.equal(seen, expected), f"seen:\n{seen.int()}\nexpected:\n{expected.int()}"
    assert not expected[: i].all()  # the triangle really misses some earlier pixels on this image


@pytest.mark.parametrize("num_layers,first_kernel", [(1, 3), (2, 5)])
def test_diagonal_bilstm_sees_every_earlier_pixel(num_layers, first_kernel):
    """Every pixel strictly before (i, j) in raster order reaches (i, j), whatever the depth; no other."""
    shape = (1, 5, 7)
    model = randomized("pixelrnn_diag", shape, 2, num_layers=num_layers, first_kernel=first_kernel, **WIDE)
    for i in range(5):
        for j in range(7):
            g = influence(model, shape, i, j)[0].flatten()
            t = i * 7 + j
            assert (g[:t] > 0).all(), f"output ({i}, {j}) misses pixels {(g[:t] == 0).nonzero().flatten().tolist()}"
            assert (g[t:] == 0).all(), f"output ({i}, {j}) sees the current or a later pixel"


@pytest.mark.parametrize("num_layers", [1, 3])
def test_diagonal_bilstm_as_written_misses_only_the_previous_rows_last_pixel(num_layers):
    """Without the extra column (the paper's layer as written) output (i, j) misses x[i-1, W-1] for
    j < W-1-r, at any depth, and sees every other earlier pixel."""
    shape, r = (1, 4, 7), 1
    model = randomized("pixelrnn_diag", shape, 2, num_layers=num_layers, first_kernel=2 * r + 1,
                       full_context=False, **WIDE)
    for i in range(4):
        for j in range(7):
            seen = influence(model, shape, i, j)[0] > 0
            expected = (torch.arange(28) < i * 7 + j).view(4, 7)
            if i > 0 and j < 7 - 1 - r:
                expected[i - 1, 6] = False
            assert torch.equal(seen, expected), f"output ({i}, {j}):\n{seen.int()}"


@pytest.mark.parametrize("name", ["pixelrnn", "pixelrnn_diag"])
def test_colour_channels_follow_rgb_order(name):
    """Channel c's output at a pixel sees that pixel's channels < c only."""
    shape = (3, 3, 3)
    model = randomized(name, shape, 4, **WIDE)
    x = torch.randint(0, 4, (8, *shape))
    h = scale_input(x, 4).double().requires_grad_()
    out = model.network(h).unflatten(1, (3, -1))  # (B, C, P, H, W)
    for c in range(3):
        (g,) = torch.autograd.grad(out[:, c, :, 1, 1].sum(), h, retain_graph=True)
        g = g.abs().sum(0)[:, 1, 1]  # (C,) at the same pixel
        assert (g[:c] > 0).all() and (g[c:] == 0).all(), f"channel {c}: {g.tolist()}"


@pytest.mark.parametrize("shape,levels", [((1, 4, 5), 2), ((3, 3, 4), 4)])
def test_row_cached_sampler_equals_naive_sampler(shape, levels):
    model = randomized("pixelrnn", shape, levels, seed=2, num_layers=2).float()
    n = 5
    u = torch.rand(n, *shape, model.head.num_uniforms, generator=torch.Generator().manual_seed(1))
    prompt = torch.full(shape, -1)
    prompt[:, 0, :2] = torch.randint(0, levels, prompt[:, 0, :2].shape)
    fast = model.sample(n, prompt=prompt, uniforms=u)
    slow = model.sample(n, prompt=prompt, uniforms=u, cached=False)
    assert torch.equal(fast, slow)
    assert (fast[:, :, 0, :2] == prompt[:, 0, :2]).all()
    assert len(torch.unique(fast.flatten(1), dim=0)) > 1
    assert torch.equal(model.sample(n, greedy=True), model.sample(n, greedy=True, cached=False))


def test_row_step_equals_full_forward():
    """The cached path's per-row computation reproduces the full forward pass row by row."""
    shape = (3, 4, 5)
    model = randomized("pixelrnn", shape, 4, num_layers=2)
    x = torch.randint(0, 4, (3, *shape))
    xs = scale_input(x, 4).double()
    r = model.first.kernel_size[0] // 2
    xp = torch.nn.functional.pad(xs, (0, 0, r, r))
    with torch.no_grad():
        full = model.network(xs)  # (B, C*P, H, W)
        states = [lstm.zero_state(xs, 5) for lstm in model.lstms]
        for i in range(4):
            out, states = model.row(xp, i, states)
            assert torch.allclose(out, full[:, :, i], atol=1e-12)
