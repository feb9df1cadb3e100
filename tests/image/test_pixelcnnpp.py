"""PixelCNN++: channel coefficients by gradient, the paper's pixel likelihood, sampling, resolutions."""
import itertools
import math

import pytest
import torch
import torch.nn.functional as F

from arsound.image import build
from arsound.image.common import scale_input


def randomized(shape, levels, seed=0, noise=0.3, **overrides):
    torch.manual_seed(seed)
    model = build("pixelcnnpp", shape=shape, levels=levels, size="debug", **overrides).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(noise * torch.randn_like(p))
    return model


def grads(model, x, c, i, j, part):
    """``|d part_c(i, j, k) / d h|`` summed over the batch and the components k: ``Tensor[C, H, W]``
    (part 0 logits, 1 means, 2 log-scales). Per component, as saturated coefficients can cancel."""
    h = scale_input(x, model.config.levels).requires_grad_()
    out = model.params_from(h, x)[part][:, c, i, j]  # (B, M)
    total = torch.zeros_like(h[0])
    for k in range(out.shape[-1]):
        (g,) = torch.autograd.grad(out[:, k].sum(), h, retain_graph=True)
        total += g.abs().sum(0)
    return total


def test_channel_coefficients_by_gradient():
    """G's and B's means move with the earlier channels of the same pixel; R's distribution never sees
    G or B of its pixel, nor anything at or after it."""
    shape = (3, 4, 4)
    model = randomized(shape, 5)
    x = torch.randint(0, 5, (6, *shape))
    i, j = 2, 1
    g = grads(model, x, 1, i, j, 1)   # G's means
    assert g[0, i, j] > 0 and g[1:, i, j].sum() == 0
    g = grads(model, x, 2, i, j, 1)   # B's means
    assert g[0, i, j] > 0 and g[1, i, j] > 0 and g[2, i, j] == 0
    later = torch.arange(16).view(4, 4) >= i * 4 + j
    for part in range(3):             # R: logits, means, scales
        g = grads(model, x, 0, i, j, part)
        assert (g[:, later] == 0).all()
        if part != 2:                 # and it does see the past
            assert g[:, ~later].sum() > 0


def test_output_sees_every_earlier_pixel():
    """No blind spot, through two down- and up-samplings (4x4 -> 2x2 -> 1x1)."""
    shape = (1, 4, 4)
    model = randomized(shape, 2, channels=16)
    assert model.num_scales == 3
    x = torch.randint(0, 2, (8, *shape))
    for t in range(16):
        i, j = divmod(t, 4)
        g = grads(model, x, 0, i, j, 1)[0].flatten()
        assert (g[:t] > 0).all() and (g[t:] == 0).all(), f"pixel ({i}, {j}): {g.tolist()}"


def _logistic_bin_log_prob(x, K, mean, log_scale):
    """Reference: log P(bin x) of one logistic, ``sigma(z+) - sigma(z-)`` with edges by index (float64);
    in the upper tail the mirrored ``sigma(-z-) - sigma(-z+)``, which does not cancel."""
    v = x * (2.0 / (K - 1)) - 1.0
    s = torch.exp(log_scale)
    z_plus, z_minus = (v + 1.0 / (K - 1) - mean) / s, (v - 1.0 / (K - 1) - mean) / s
    first, last = x == 0, x == K - 1
    p = torch.where(last, 1.0, torch.sigmoid(z_plus)) - torch.where(first, 0.0, torch.sigmoid(z_minus))
    mirrored = torch.where(first, 1.0, torch.sigmoid(-z_minus)) - torch.where(last, 0.0, torch.sigmoid(-z_plus))
    return torch.log(torch.where(z_minus > 0, mirrored, p))


@pytest.mark.parametrize("C", [1, 3])
def test_pixel_likelihood_is_the_papers_shared_component_mixture(C):
    """Sum of the per-channel terms == log sum_k pi_k prod_c p_ck(x_c), means m_c + sum coeff * x_c'
    (the PixelCNN++ formula, computed here from the raw network output)."""
    K, M, shape = 7, 2, (C, 2, 4)
    # moderate weights and a high log-scale floor keep every bin's mass well above underflow, where
    # the plain sigma difference of the reference is accurate
    model = randomized(shape, K, noise=0.05, num_mixtures=M).double()
    model.head.log_scale_min = -3.0
    x = torch.randint(0, K, (5, *shape))
    h = scale_input(x, K).double()
    with torch.no_grad():
        raw = model.network(h).permute(0, 2, 3, 1)           # (B, H, W, M (1 + 2C + C(C-1)/2))
        terms = model.log_prob(x.long(), reduce=False)      # (B, C, H, W)
    pi = raw[..., :M]
    means = raw[..., M:M + C * M].unflatten(-1, (C, M))
    log_scales = raw[..., M + C * M:M + 2 * C * M].unflatten(-1, (C, M)).clamp(min=-3.0)
    coeffs = torch.tanh(raw[..., M + 2 * C * M:].unflatten(-1, (C * (C - 1) // 2, M)))
    hv, xv = h.permute(0, 2, 3, 1), x.permute(0, 2, 3, 1)
    lp = F.log_softmax(pi, -1)
    for c, pairs in enumerate([[]] + [list(range(c)) for c in range(1, C)]):
        m = means[..., c, :]
        for c_prev in pairs:
            k = c * (c - 1) // 2 + c_prev  # coefficients in order (G|R), (B|R), (B|G)
            m = m + coeffs[..., k, :] * hv[..., c_prev, None]
        lp = lp + _logistic_bin_log_prob(xv[..., c, None].double(), K, m, log_scales[..., c, :])
    ref = torch.logsumexp(lp, -1)                           # (B, H, W)
    assert torch.allclose(terms.sum(1), ref, atol=1e-7, rtol=0)  # core softplus threshold: <= 2e-9 per term


def test_channel_by_channel_sampling_matches_the_joint():
    """Empirical frequencies of 20k draws (R, then G | R, then B | R, G) match exp(log_prob) on a
    single 3-channel pixel: the sampler uses the same coefficients and component posterior."""
    K, shape, n = 3, (3, 1, 1), 20000
    model = randomized(shape, K, num_mixtures=3)
    draws = model.sample(n, generator=torch.Generator().manual_seed(0))  # (n, 3, 1, 1)
    codes = (draws.flatten(1) * torch.tensor([9, 3, 1])).sum(1)
    freq = torch.bincount(codes, minlength=27).double() / n
    allx = torch.tensor(list(itertools.product(range(K), repeat=3))).view(27, *shape)
    with torch.no_grad():
        p = model.log_prob(allx).double().exp()
    assert abs(p.sum().item() - 1) < 1e-5
    assert 0.5 * (freq - p).abs().sum() < 0.03  # total variation; ~0.01 expected at n = 20k


@pytest.mark.parametrize("hw,scales", [((28, 28), 3), ((8, 12), 3), ((6, 6), 2), ((2, 2), 2), ((1, 2), 1),
                                       ((3, 3), 1)])
def test_resolutions_follow_image_size(hw, scales):
    model = build("pixelcnnpp", shape=(1, *hw), levels=2, size="debug")
    assert model.num_scales == scales
    x = torch.randint(0, 2, (2, 1, *hw))
    loss, _ = model.loss(x)
    loss.backward()
    assert torch.isfinite(loss)
    assert model(x).shape == (2, 1, *hw, 3 * model.config.num_mixtures)


def test_dropout_only_in_training():
    model = build("pixelcnnpp", shape=(1, 4, 4), levels=2, size="debug", dropout=0.5)
    x = torch.randint(0, 2, (3, 1, 4, 4))
    model.eval()
    assert torch.equal(model.log_prob(x), model.log_prob(x))
    model.train()
    torch.manual_seed(0)
    a = model.log_prob(x)
    assert not torch.equal(a, model.log_prob(x))
    assert math.isfinite(a.sum().item())
