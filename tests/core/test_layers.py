"""Masked and causal layers: causality by Jacobian / perturbation, streaming == full."""
import pytest
import torch
from torch import nn
from torch.autograd.functional import jacobian

from arsound.core.layers import (CausalConv1d, GatedActivation, MaskedConv2d, MaskedLinear, gated,
                                 made_direct_mask, made_masks, pixelcnn_mask)
from arsound.core.streaming import streaming


# ---- MADE ---------------------------------------------------------------------------------------
def _made_mlp(D, hidden, masks):
    sizes = [D, *hidden, masks[-1].shape[0]]
    layers = [MaskedLinear(i, o) for i, o in zip(sizes[:-1], sizes[1:])]
    for layer, m in zip(layers, masks):
        layer.set_mask(m)

    def f(x):
        for n, layer in enumerate(layers):
            x = layer(x)
            x = torch.tanh(x) if n < len(layers) - 1 else x
        return x
    return f


def _rank(order):
    rank = torch.empty_like(order)
    rank[order] = torch.arange(len(order))
    return rank


@pytest.mark.parametrize("depth", [1, 2, 3])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_made_causal_random_order(depth, seed):
    D, P = 9, 3
    g = torch.Generator().manual_seed(100 + seed)
    order = torch.randperm(D, generator=g)
    hidden = [int(h) for h in torch.randint(4, 20, (depth,), generator=g)]
    masks = made_masks(D, hidden, order, out_mult=P, seed=seed)
    torch.manual_seed(seed)
    J = jacobian(_made_mlp(D, hidden, masks), torch.randn(D)).view(P, D, D)  # (p, out elem, in elem)
    rank = _rank(order)
    allowed = rank[:, None] > rank[None, :]  # out d may see in d' iff d' earlier in order
    assert (J.abs() > 0)[:, ~allowed].sum() == 0
    assert (J[:, order[0]] == 0).all()  # the first element is unconditional
    assert (J[:, order[-1]].abs() > 0).any()  # the last one sees something
    # every hidden unit has an incoming and an outgoing connection
    for below, above in zip(masks[:-1], masks[1:]):
        assert below.any(1).all() and above.any(0).all()


def test_made_natural_wide_is_fully_connected():
    D = 6
    order = torch.tensor([3, 0, 5, 1, 4, 2])
    masks = made_masks(D, [8, 8], order, natural=True)
    J = jacobian(_made_mlp(D, [8, 8], masks), torch.randn(D))
    rank = _rank(order)
    assert torch.equal(J.abs() > 0, rank[:, None] > rank[None, :])


def test_made_seeded_and_layout():
    a = made_masks(10, [16, 16], seed=3)
    b = made_masks(10, [16, 16], seed=3)
    c = made_masks(10, [16, 16], seed=4)
    assert all(torch.equal(x, y) for x, y in zip(a, b))
    assert not all(torch.equal(x, y) for x, y in zip(a, c))
    out = made_masks(10, [16], out_mult=2, seed=0)[-1]  # (2 * D, H), layout (out_mult, D)
    assert out.shape == (20, 16) and torch.equal(out[:10], out[10:])
    assert made_masks(4, [], seed=0)[0].shape == (4, 4)  # no hidden layer: direct mask
    assert torch.equal(made_masks(4, [], [2, 0, 3, 1])[0], made_direct_mask(4, [2, 0, 3, 1]))


def test_made_direct_mask_and_errors():
    order = torch.tensor([2, 0, 1])
    m = made_direct_mask(3, order, out_mult=2)
    # order 2, 0, 1: element 0 sees 2; element 1 sees 2 and 0; element 2 sees nothing
    want = torch.tensor([[0, 0, 1], [1, 0, 1], [0, 0, 0]], dtype=torch.bool)
    assert torch.equal(m, torch.cat([want, want]))
    with pytest.raises(ValueError, match="permutation"):
        made_masks(3, [4], [0, 0, 1])
    with pytest.raises(ValueError, match="mask shape"):
        MaskedLinear(3, 4).set_mask(torch.ones(3, 4))


# ---- PixelCNN -----------------------------------------------------------------------------------
def _raster_allowed(C_out, C_in, H, W, G, strict):
    """allowed[co, i, j, ci, i', j']: earlier pixel, or same pixel and group rule."""
    p = torch.arange(H * W)
    earlier = (p[:, None] > p[None, :]).view(H, W, H, W)
    same = torch.eye(H * W, dtype=torch.bool).view(H, W, H, W)
    go = torch.arange(C_out) // (C_out // G)
    gi = torch.arange(C_in) // (C_in // G)
    grp = gi[None, :] < go[:, None] if strict else gi[None, :] <= go[:, None]  # (co, ci)
    return earlier[None, :, :, None] | (same[None, :, :, None] & grp[:, None, None, :, None, None])


def test_pixelcnn_mask_drawing():
    A = pixelcnn_mask(1, 1, 3, "A")[0, 0].int()
    B = pixelcnn_mask(1, 1, 3, "B")[0, 0].int()
    assert A.tolist() == [[1, 1, 1], [1, 0, 0], [0, 0, 0]]
    assert B.tolist() == [[1, 1, 1], [1, 1, 0], [0, 0, 0]]
    centre = pixelcnn_mask(3, 3, 3, "A", channel_groups=3)[:, :, 1, 1].int()
    assert centre.tolist() == [[0, 0, 0], [1, 0, 0], [1, 1, 0]]
    with pytest.raises(ValueError):
        pixelcnn_mask(4, 3, 3, "A", channel_groups=3)
    with pytest.raises(ValueError):
        pixelcnn_mask(3, 3, 4, "A")


@pytest.mark.parametrize("mask_type", ["A", "B"])
@pytest.mark.parametrize("groups,dilation", [(1, 1), (3, 1), (3, 2)])
def test_masked_conv_dependencies(mask_type, groups, dilation):
    torch.manual_seed(0)
    Cin, Cout, H, W, k = 3 * 2, 3 * 2, 6, 6, 3
    conv = MaskedConv2d(Cin, Cout, k, mask_type, channel_groups=groups, dilation=dilation)
    x = torch.randn(Cin, H, W)
    J = jacobian(lambda x: conv(x[None])[0], x)  # (Cout, H, W, Cin, H, W)
    assert conv(x[None]).shape == (1, Cout, H, W)
    allowed = _raster_allowed(Cout, Cin, H, W, groups, strict=mask_type == "A")
    i = torch.arange(H)
    di = i[:, None] - i[None, :]
    near = (di.abs() <= dilation * (k // 2)) & (di % dilation == 0)            # (i, i')
    window = (near[:, None, :, None] & near[None, :, None, :])                  # (i, j, i', j')
    window = window[None, :, :, None]                                           # (1, i, j, 1, i', j')
    assert torch.equal(J.abs() > 0, allowed & window)  # exactly the masked kernel, nothing after


def test_masked_conv_stack_is_causal():
    torch.manual_seed(0)
    G, C, H, W = 3, 6, 7, 7
    net = nn.Sequential(MaskedConv2d(3, C, 5, "A", G), nn.Tanh(),
                        *[m for _ in range(3) for m in (MaskedConv2d(C, C, 3, "B", G), nn.Tanh())],
                        MaskedConv2d(C, 3 * 4, 1, "B", G))
    x = torch.randn(3, H, W)
    J = jacobian(lambda x: net(x[None])[0], x)
    allowed = _raster_allowed(12, 3, H, W, G, strict=True)
    assert (J.abs() > 0)[~allowed].sum() == 0
    dep = J.abs() > 0                                    # and it does see its near context:
    assert dep[8:, 3, 3, :2, 3, 3].all()                 # B output <- R, G of its own pixel
    assert dep[4:8, 3, 3, 0, 3, 3].all()                 # G output <- R of its own pixel
    assert dep[:, 3, 3, :, 2, 3].all() and dep[:, 3, 3, :, 3, 2].all()  # above, left


# ---- CausalConv1d -------------------------------------------------------------------------------
KD = [(k, d) for k in (2, 3) for d in (1, 2, 4)]


@pytest.mark.parametrize("k,d", KD)
def test_causal_conv_perturbation_and_receptive_field(k, d):
    torch.manual_seed(0)
    conv, T = CausalConv1d(3, 4, k, dilation=d), 24
    x = torch.randn(2, 3, T)
    y = conv(x)
    assert y.shape == (2, 4, T) and conv.receptive_field == (k - 1) * d + 1
    for t in (0, 5, T - 1):
        x2 = x.clone()
        x2[:, :, t] += 1.0
        diff = (conv(x2) - y).abs().amax((0, 1))
        assert (diff[:t] == 0).all() and diff[t] > 0
    J = jacobian(lambda x: conv(x[None])[0], x[0])  # (C_out, T, C_in, T)
    dep = (J.abs() > 0).any(2).any(0)                # (out time, in time)
    s = T - 1
    assert dep[s].nonzero().flatten().tolist() == [s - m * d for m in range(k - 1, -1, -1)]
    span = dep[s].nonzero()
    assert int(span.max() - span.min()) + 1 == conv.receptive_field


@pytest.mark.parametrize("k,d", KD)
def test_causal_conv_streaming_equals_full(k, d):
    torch.manual_seed(0)
    conv, T = CausalConv1d(3, 4, k, dilation=d), 23
    x = torch.randn(2, 3, T)
    full = conv(x)
    with streaming(conv):
        steps = torch.cat([conv(x[:, :, t:t + 1]) for t in range(T)], -1)
    with streaming(conv):
        via_step = torch.stack([conv.step(x[:, :, t]) for t in range(T)], -1)
    with streaming(conv):  # chunks shorter and longer than the buffer
        chunks, t0 = [], 0
        for n in (1, 3, 2, 9, 1, 5, 2):
            chunks.append(conv(x[:, :, t0:t0 + n]))
            t0 += n
    assert t0 == T
    for out in (steps, via_step, torch.cat(chunks, -1)):
        torch.testing.assert_close(out, full, atol=1e-5, rtol=0)


def test_causal_conv_pointwise_and_weight_norm():
    torch.manual_seed(0)
    x = torch.randn(2, 3, 10)
    conv = CausalConv1d(3, 4, 1)
    with streaming(conv):
        torch.testing.assert_close(torch.cat([conv(x[..., t:t + 1]) for t in range(10)], -1), conv(x))
    conv = nn.utils.parametrizations.weight_norm(CausalConv1d(3, 4, 3, dilation=2))
    assert conv.weight.shape == (4, 3, 3)
    with streaming(conv):
        out = torch.cat([conv(x[..., t:t + 1]) for t in range(10)], -1)
    torch.testing.assert_close(out, conv(x), atol=1e-5, rtol=0)


def test_causal_conv_step_needs_streaming():
    with pytest.raises(RuntimeError, match="streaming"):
        CausalConv1d(2, 2, 2).step(torch.randn(1, 2))


# ---- gated ----------------------------------------------------------------------------------------
def test_gated():
    x = torch.randn(2, 6, 5)
    want = torch.tanh(x[:, :3]) * torch.sigmoid(x[:, 3:])
    torch.testing.assert_close(gated(x), want)
    torch.testing.assert_close(GatedActivation(dim=-1)(x.transpose(1, 2)), want.transpose(1, 2))
    with pytest.raises(ValueError, match="odd"):
        gated(torch.randn(2, 5, 3))
