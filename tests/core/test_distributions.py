"""Distribution families: normalization, agreement with independent NumPy transcriptions of the
reference formulae (torchaudio mu-law, PixelCNN++ mixture loss), modes, and inverse-CDF sampling."""
import math

import numpy as np
import pytest
import torch

from arsound.core import sampling
from arsound.core.distributions import (Bernoulli, Categorical, DiscretizedLogisticMixture, Gaussian,
                                        GaussianMixture, MuLaw, mu_law_decode, mu_law_encode)


def _gen(seed=0):
    return torch.Generator().manual_seed(seed)


# ---- references (float64 NumPy, written from the papers / torchaudio source) --------------------
def np_mu_law_encode(x, mu=255):
    """torchaudio.functional.mu_law_encoding(x, mu + 1), float64."""
    f = np.sign(x) * np.log1p(mu * np.abs(x)) / np.log1p(mu)
    return ((f + 1) / 2 * mu + 0.5).astype(np.int64), (f + 1) / 2 * mu + 0.5


def np_mu_law_decode(q, mu=255):
    """torchaudio.functional.mu_law_decoding(q, mu + 1), float64."""
    y = q.astype(np.float64) / mu * 2 - 1.0
    return np.sign(y) * (np.exp(np.abs(y) * np.log1p(mu)) - 1.0) / mu


def _np_softplus(z):
    return np.logaddexp(0.0, z)


def _np_sigmoid(z):
    with np.errstate(over="ignore"):
        return 1 / (1 + np.exp(-z))


def np_pixelcnn_pp(x, logit_probs, means, log_scales, K, log_scale_min=-7.0, edge_threshold=None):
    """PixelCNN++ ``discretized_mix_logistic_loss`` (Salimans et al. 2017) as a per-element log-prob.

    x: int bins ``[...]``; the rest ``[..., M]``. ``edge_threshold=0.999`` reproduces the
    r9y9/wavenet_vocoder rule that detects edge bins by value instead of by index.
    Returns (log_prob ``[...]``, per-component bool ``used_cdf_branch [..., M]``).
    """
    v = (2.0 * x / (K - 1) - 1.0)[..., None]
    ls = np.maximum(log_scales, log_scale_min)
    inv = np.exp(-ls)
    c = v - means
    plus_in, min_in = inv * (c + 1.0 / (K - 1)), inv * (c - 1.0 / (K - 1))
    cdf_delta = _np_sigmoid(plus_in) - _np_sigmoid(min_in)
    mid_in = inv * c
    log_pdf_mid = mid_in - ls - 2.0 * _np_softplus(mid_in)
    inner = np.where(cdf_delta > 1e-5, np.log(np.maximum(cdf_delta, 1e-12)), log_pdf_mid + np.log(2.0 / (K - 1)))
    if edge_threshold is None:
        first, last = (x == 0)[..., None], (x == K - 1)[..., None]
    else:
        first, last = v < -edge_threshold, v > edge_threshold
    lp = np.where(first, plus_in - _np_softplus(plus_in), np.where(last, -_np_softplus(min_in), inner))
    lw = logit_probs - np.logaddexp.reduce(logit_probs, axis=-1, keepdims=True)
    used = ~first & ~last & (cdf_delta > 1e-5) | first | last
    return np.logaddexp.reduce(lw + lp, axis=-1), used


def np_exact_bin_log_mass(x, mean, log_scale, K, log_scale_min=-7.0):
    """log P(bin x) of one logistic, cancellation-free: right tail via sigma(-b) - sigma(-a)."""
    v = 2.0 * x / (K - 1) - 1.0
    s = np.exp(max(log_scale, log_scale_min))
    a, b = (v + 1.0 / (K - 1) - mean) / s, (v - 1.0 / (K - 1) - mean) / s
    sig = _np_sigmoid
    mass = np.where(v - mean < 0, sig(a) - sig(b), sig(-b) - sig(-a))
    mass = np.where(x == 0, sig(a), np.where(x == K - 1, sig(-b), mass))
    with np.errstate(divide="ignore"):
        return np.log(mass)


# ---- mu-law -------------------------------------------------------------------------------------
GOLDEN_X = [-1, 1, 0.6, -0.25, 0.01, 0.33, -0.9999, 0.42, 0.1, -0.45]
GOLDEN_Q = [0, 255, 243, 32, 157, 230, 0, 235, 203, 18]


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_mu_law_golden(dtype):
    q = mu_law_encode(torch.tensor(GOLDEN_X, dtype=dtype))
    assert q.dtype == torch.long and q.tolist() == GOLDEN_Q
    assert MuLaw().encode(torch.tensor(GOLDEN_X, dtype=dtype)).tolist() == GOLDEN_Q


def test_mu_law_encode_matches_torchaudio_transcription():
    x = np.concatenate([np.linspace(-1, 1, 200001), [-1, 0, 1, 1e-9, -1e-9]])
    for mu in (255, 1023):
        ref, cont = np_mu_law_encode(x, mu)
        assert np.array_equal(mu_law_encode(torch.from_numpy(x), mu).numpy(), ref)
        # float32 may differ only at bin boundaries, by one bin
        q32 = mu_law_encode(torch.from_numpy(x).float(), mu).numpy()
        diff = q32 != ref
        assert np.abs(q32 - ref).max() <= 1
        assert np.all(np.abs(cont[diff] - np.round(cont[diff])) < 1e-4)
        assert diff.mean() < 1e-3


@pytest.mark.parametrize("mu", [255, 1023])
def test_mu_law_decode_matches_reference_and_round_trips(mu):
    q = torch.arange(mu + 1)
    ref = np.clip(np_mu_law_decode(q.numpy(), mu), -1, 1)
    assert np.allclose(mu_law_decode(q.double(), mu).numpy(), ref, rtol=0, atol=1e-12)
    assert np.allclose(mu_law_decode(q, mu).numpy(), ref, rtol=0, atol=1e-6)
    assert mu_law_decode(q, mu).dtype == torch.float32
    for dtype in (torch.float32, torch.float64):
        assert torch.equal(mu_law_encode(mu_law_decode(q.to(dtype), mu), mu), q)
    assert torch.equal(mu_law_encode(mu_law_decode(q, mu), mu), q)
    assert torch.equal(MuLaw(mu).encode(MuLaw(mu).decode(q)), q)


def test_mu_law_rejects_out_of_range():
    for bad in ([0.5, 1.0001], [-1.5, 0.0], [float("nan"), 0.1]):
        with pytest.raises(ValueError, match=r"\[-1, 1\]"):
            mu_law_encode(torch.tensor(bad))
    with pytest.raises(ValueError, match=r"1\.5"):  # names the offending range
        mu_law_encode(torch.tensor([0.0, 1.5]))
    with pytest.raises(ValueError, match="NaN"):
        mu_law_encode(torch.tensor([float("nan"), 0.1]), clip=True)
    clipped = mu_law_encode(torch.tensor([-3.0, 2.0, 0.1]), clip=True)
    assert clipped.tolist() == mu_law_encode(torch.tensor([-1.0, 1.0, 0.1])).tolist()
    with pytest.raises(ValueError, match="indices"):
        mu_law_decode(torch.tensor([0, 256]))


# ---- categorical families -----------------------------------------------------------------------
def test_bernoulli_log_prob_normalized_and_matches_torch():
    logits = torch.linspace(-30, 30, 61).unsqueeze(-1)
    d = Bernoulli()
    zeros = torch.zeros(61, dtype=torch.long)
    lp0, lp1 = d.log_prob(logits, zeros), d.log_prob(logits, zeros + 1)
    assert torch.allclose(lp0.exp() + lp1.exp(), torch.ones(61), atol=1e-6)
    ref = torch.distributions.Bernoulli(logits=logits[:, 0])
    assert torch.allclose(lp1, ref.log_prob(torch.ones(61)), atol=1e-6)
    assert torch.isfinite(lp0).all() and torch.isfinite(lp1).all()


@pytest.mark.parametrize("family", [Categorical(10), MuLaw()])
def test_categorical_log_prob_normalized_and_matches_torch(family):
    K = family.num_params
    logits = torch.randn(3, 4, K, generator=_gen()) * 3
    x = torch.arange(K).view(K, 1, 1).expand(K, 3, 4)
    lp = family.log_prob(logits.expand(K, 3, 4, K), x)  # (K, 3, 4)
    assert torch.allclose(lp.exp().sum(0), torch.ones(3, 4), atol=1e-5)
    ref = torch.distributions.Categorical(logits=logits).log_prob(x)
    assert torch.allclose(lp, ref, atol=1e-5)


def test_bernoulli_sample_is_categorical_over_zero_and_logit():
    logits = torch.randn(2000, 1, generator=_gen(1)) * 3
    u = sampling.uniform((2000, 1), generator=_gen(2))
    b = Bernoulli().sample(logits, u)
    c = Categorical(2).sample(torch.cat([torch.zeros_like(logits), logits], -1), u)
    near_tie = (u[:, 0] - torch.sigmoid(-logits[:, 0])).abs() < 1e-6
    assert torch.equal(b[~near_tie], c[~near_tie])


def test_categorical_top_k_restricts_samples():
    logits = torch.randn(500, 12, generator=_gen(3))
    s = Categorical(12, top_k=3).sample(logits, generator=_gen(4))
    assert (s.unsqueeze(-1) == logits.topk(3, -1).indices).any(-1).all()
    with pytest.raises(ValueError):
        Categorical(12, top_k=0)
    with pytest.raises(ValueError):
        Categorical(12, top_p=1.5)


# ---- discretized logistic mixture ---------------------------------------------------------------
def _dlm_grid(K, dtype=torch.float64):
    """params ``[G, 3]`` (M = 1) over means incl. the edges and beyond, log-scales incl. the floor."""
    h = 1.0 / (K - 1)
    means = [-1.5, -1.0, -1 + h / 2, -0.999, -0.5, 0.0, 0.37, 0.999, 1 - h / 3, 1.0, 1.5]
    log_scales = [-12.0, -7.0, -6.0, -4.0, -1.0, 2.0, 8.0]
    grid = [(0.0, m, s) for m in means for s in log_scales]
    return torch.tensor(grid, dtype=dtype)


@pytest.mark.parametrize("K", [2, 3, 256, 65536])
def test_dlm_normalizes_over_all_bins(K):
    d = DiscretizedLogisticMixture(K, 1)
    params = _dlm_grid(K)
    x = torch.arange(K)
    lp = d.log_prob(params[:, None, :], x)  # (G, K)
    assert (lp.exp().sum(-1) - 1).abs().max() < 1e-5
    lp32 = d.log_prob(params.float()[:, None, :], x)
    assert torch.isfinite(lp32).all()
    assert (lp32.double().exp().sum(-1) - 1).abs().max() < 1e-4
    # a mixture of three random components
    d3 = DiscretizedLogisticMixture(K, 3)
    p3 = torch.randn(8, 9, generator=_gen(K), dtype=torch.float64) * 2
    assert (d3.log_prob(p3[:, None, :], x).exp().sum(-1) - 1).abs().max() < 1e-5


def test_value_threshold_edge_rule_breaks_at_16_bit():
    """r9y9's ``|v| > 0.999`` edge rule normalizes at K = 256 only; index-based edges always do."""
    sums = {}
    for K in (256, 65536):
        x = np.arange(K)
        lw, mean, ls = np.zeros((1, 1)), np.array([[-1.0]]), np.array([[-7.0]])
        lp_thr, _ = np_pixelcnn_pp(x, lw, mean, ls, K, edge_threshold=0.999)
        params = torch.tensor([0.0, -1.0, -7.0], dtype=torch.float64)
        ours = DiscretizedLogisticMixture(K, 1).log_prob(params, torch.arange(K))
        sums[K] = np.exp(lp_thr).sum(), ours.exp().sum().item()
    assert abs(sums[256][0] - 1) < 1e-4 and abs(sums[256][1] - 1) < 1e-9
    assert sums[65536][0] > 2.0  # mass of ~33 "edge" bins counted as the whole left tail
    assert abs(sums[65536][1] - 1) < 1e-9


@pytest.mark.parametrize("M, ls_range", [(1, (-9.0, 1.0)), (4, (-2.5, 1.0))])
def test_dlm_agrees_with_pixelcnn_pp_transcription(M, ls_range):
    K, G = 256, 64
    g = _gen(5 + M)
    logit_probs = torch.randn(G, M, generator=g, dtype=torch.float64)
    means = torch.rand(G, M, generator=g, dtype=torch.float64) * 3 - 1.5
    lo, hi = ls_range  # M = 1 reaches below the floor
    log_scales = torch.rand(G, M, generator=g, dtype=torch.float64) * (hi - lo) + lo
    params = torch.cat([logit_probs, means, log_scales], -1)  # layout [pi, mu, log s]
    d = DiscretizedLogisticMixture(K, M)
    x = torch.arange(K)
    ours = d.log_prob(params[:, None, :], x).numpy()  # (G, K)
    split = (t[:, None, :].numpy() for t in (logit_probs, means, log_scales))
    ref, used = np_pixelcnn_pp(x.numpy()[None, :], *split, K)
    # identical wherever PixelCNN++ uses its exact branch (edges or cdf difference) for every component ...
    exact = used.all(-1)
    assert exact.mean() > 0.3
    assert np.abs(ours[exact] - ref[exact]).max() < 1e-5
    # ... and the same probabilities everywhere (its log-pdf fallback only touches bins below 1e-5)
    assert np.abs(np.exp(ours) - np.exp(ref)).max() < 1e-5
    # float32 agrees too where the mass is not tiny
    ours32 = d.log_prob(params.float()[:, None, :], x).double().numpy()
    big = np.exp(ref) > 1e-4
    assert np.abs(ours32[big] - ref[big]).max() < 1e-3
    # split / log_prob_from see the same layout
    assert np.allclose(d.log_prob_from(*d.split(params[:, None, :]), x).numpy(), ours, atol=1e-12)


def test_dlm_tail_bins_are_exact_where_pixelcnn_pp_approximates():
    """The midpoint fallback under-counts narrow tail bins; our closed form matches the exact mass."""
    K = 256
    x = np.arange(K)
    for mean, ls in [(0.0, -7.0), (0.9, -6.5), (-0.3, -5.0), (0.5, 0.5)]:
        exact = np_exact_bin_log_mass(x, mean, ls, K)
        ours = DiscretizedLogisticMixture(K, 1).log_prob(
            torch.tensor([0.0, mean, ls], dtype=torch.float64), torch.arange(K)).numpy()
        ok = exact > -600
        assert np.allclose(ours[ok], exact[ok], rtol=1e-9, atol=1e-9)
    ref, used = np_pixelcnn_pp(x, np.zeros((1, 1)), np.array([[0.0]]), np.array([[-7.0]]), K)
    assert (~used).any()  # the fallback does kick in at the floor, where the two differ
    assert np.abs(ref[~used[:, 0]] - np_exact_bin_log_mass(x, 0.0, -7.0, K)[~used[:, 0]]).max() > 0.5


@pytest.mark.parametrize("K", [256, 65536])
def test_dlm_finite_loss_and_gradients_at_edges_and_floor(K):
    d = DiscretizedLogisticMixture(K, 2)
    cases = []
    for x in (0, 1, K // 2, K - 2, K - 1):
        for m in (-1.5, -1.0, 0.0, 1.0, 1.5):
            for ls in (-20.0, -7.0, 0.0, 12.0):
                cases.append((x, [0.3, -0.3, m, -m, ls, ls]))
    x = torch.tensor([c[0] for c in cases])
    params = torch.tensor([c[1] for c in cases], requires_grad=True)
    loss = -d.log_prob(params, x)
    assert torch.isfinite(loss).all() and (loss >= -1e-6).all()
    loss.sum().backward()
    assert torch.isfinite(params.grad).all()
    assert (params.grad[:, 4:][torch.tensor([c[1][4] for c in cases]) < -7] == 0).all()  # clamped floor
    # half-precision parameters are upcast
    assert torch.isfinite(d.log_prob(params.detach().bfloat16(), x)).all()


def test_dlm_stratified_draws_reproduce_bin_masses():
    """M = 1, u1 = (i + 1/2) / N: every bin count is N p(bin) up to one (exact inverse CDF)."""
    K, N = 64, 40000
    d = DiscretizedLogisticMixture(K, 1)
    for mean, ls in [(0.1, -3.0), (-0.98, -2.5), (1.2, -1.0), (0.0, 1.0)]:
        params = torch.tensor([0.0, mean, ls], dtype=torch.float64).expand(N, 3)
        u1 = (torch.arange(N, dtype=torch.float64) + 0.5) / N
        u = torch.stack([torch.full((N,), 0.5), u1.float()], -1)
        counts = torch.bincount(d.sample(params, u), minlength=K).double()
        expected = N * d.log_prob(params[:1].expand(K, 3), torch.arange(K)).exp()
        assert (counts - expected).abs().max() <= 1.5


def test_dlm_sampling_histogram_matches_probabilities():
    K, N = 16, 40000
    d = DiscretizedLogisticMixture(K, 3)
    params = torch.tensor([1.0, 0.0, -0.5, -0.6, 0.2, 1.1, -2.5, -1.5, -2.0])
    s = d.sample(params.expand(N, 9), generator=_gen(6))
    counts = torch.bincount(s, minlength=K).double()
    expected = N * d.log_prob(params.expand(K, 9), torch.arange(K)).double().exp()
    assert abs(expected.sum().item() - N) < 1
    keep = expected >= 5
    chi2 = (((counts - expected) ** 2) / expected)[keep].sum().item()
    assert chi2 < 50, chi2  # df <= 15: the 99.99% quantile is ~44


def test_dlm_mode_is_argmax_over_all_bins():
    """Single logistics whose scale is small against the distance to the edges, and separated mixtures."""
    K = 256
    g = _gen(7)
    d = DiscretizedLogisticMixture(K, 1)
    G = 300
    params = torch.stack([torch.zeros(G), torch.rand(G, generator=g) * 1.6 - 0.8,
                          torch.rand(G, generator=g) * 5 - 9], -1).double()  # floor .. e^-4
    full = d.log_prob(params[:, None, :], torch.arange(K)).argmax(-1)
    assert torch.equal(d.mode(params), full)
    # beyond the edges the edge bin is the mode
    assert d.mode(torch.tensor([[0.0, -1.3, -2.0], [0.0, 1.01, 0.0]])).tolist() == [0, K - 1]
    # well-separated components of equal width: the heaviest one holds the mode
    d3 = DiscretizedLogisticMixture(K, 3)
    p3 = torch.tensor([[0.0, 1.0, -1.0, -0.6, 0.1, 0.7, -4.0, -4.0, -4.0],
                       [2.0, 0.0, 0.0, -0.6, 0.1, 0.7, -3.0, -3.0, -3.0],
                       [0.0, 0.0, 3.0, -1.2, 0.1, 0.5, -4.0, -4.0, -4.0]], dtype=torch.float64)
    assert torch.equal(d3.mode(p3), d3.log_prob(p3[:, None, :], torch.arange(K)).argmax(-1))


def test_dlm_mode_ignores_censored_tails():
    """A wide logistic puts ~half its mass in each edge bin; the greedy value stays at its centre."""
    K = 256
    p = torch.tensor([0.0, 0.1, 3.0])
    assert DiscretizedLogisticMixture(K, 1).log_prob(p.expand(K, 3), torch.arange(K)).argmax() in (0, K - 1)
    assert DiscretizedLogisticMixture(K, 1).mode(p).item() == round(1.1 * 255 / 2)


# ---- Gaussians ----------------------------------------------------------------------------------
def test_gaussian_log_prob_matches_torch_and_clamps():
    g = _gen(8)
    params = torch.randn(50, 2, generator=g)
    x = torch.randn(50, generator=g)
    ref = torch.distributions.Normal(params[:, 0], params[:, 1].exp()).log_prob(x)
    assert torch.allclose(Gaussian().log_prob(params, x), ref, atol=1e-5)
    floor = Gaussian(log_scale_min=-9.0)
    a = floor.log_prob(torch.tensor([0.0, -30.0]), torch.tensor(1e-5))
    b = floor.log_prob(torch.tensor([0.0, -9.0]), torch.tensor(1e-5))
    assert torch.isfinite(a) and a == b


def test_gaussian_mixture_log_prob_matches_torch():
    g = _gen(9)
    M = 4
    params = torch.randn(50, 3 * M, generator=g, dtype=torch.float64)
    x = torch.randn(50, generator=g, dtype=torch.float64) * 2
    ref = torch.distributions.MixtureSameFamily(
        torch.distributions.Categorical(logits=params[:, :M]),
        torch.distributions.Normal(params[:, M:2 * M], params[:, 2 * M:].exp())).log_prob(x)
    assert torch.allclose(GaussianMixture(M).log_prob(params, x), ref, atol=1e-10)


def test_gaussian_inverse_cdf_and_moments():
    d = Gaussian()
    p = torch.tensor([0.5, math.log(2.0)])
    u = torch.tensor([[0.5], [0.8413447460685429]])  # Phi(0), Phi(1)
    assert torch.allclose(d.sample(p.expand(2, 2), u), torch.tensor([0.5, 2.5]), atol=1e-5)
    N = 100000
    s = d.sample(p.expand(N, 2), generator=_gen(10)).double()
    assert abs(s.mean() - 0.5) < 4 * 2 / math.sqrt(N)
    assert abs(s.std() - 2.0) < 0.03


def test_gaussian_mixture_sample_moments():
    M, N = 3, 100000
    w = torch.tensor([0.2, 0.5, 0.3])
    m = torch.tensor([-2.0, 0.0, 3.0])
    s = torch.tensor([0.5, 1.0, 0.3])
    params = torch.cat([w.log(), m, s.log()])
    x = GaussianMixture(M).sample(params.expand(N, 3 * M), generator=_gen(11)).double()
    mean = (w * m).sum().item()
    var = (w * (s ** 2 + m ** 2)).sum().item() - mean ** 2
    assert abs(x.mean().item() - mean) < 4 * math.sqrt(var / N)
    assert abs(x.var().item() - var) / var < 0.03


def test_gaussian_mixture_mode_is_heaviest_separated_mean():
    d = GaussianMixture(3)
    params = torch.tensor([[0.0, 1.0, 0.5, -2.0, 0.3, 4.0, -1.0, -1.0, -1.0],
                           [0.0, 0.0, 2.0, -2.0, 0.3, 4.0, -2.0, -2.0, -2.0]])
    assert torch.equal(d.mode(params), torch.tensor([0.3, 4.0]))
    grid = torch.linspace(-4, 6, 100001)
    dens = d.log_prob(params[:, None, :], grid)  # (2, G): the mode is the density's argmax
    assert torch.allclose(grid[dens.argmax(-1)], d.mode(params), atol=1e-3)


# ---- every family: determinism, shapes, temperature, modes --------------------------------------
FAMILIES = {
    "bernoulli": Bernoulli(),
    "categorical": Categorical(7),
    "categorical_topk_topp": Categorical(7, top_k=5, top_p=0.9),
    "mulaw": MuLaw(15),
    "dlm256": DiscretizedLogisticMixture(256, 3),
    "dlm65536": DiscretizedLogisticMixture(65536, 2, log_scale_min=-16.0),
    "gaussian": Gaussian(),
    "gmm": GaussianMixture(3),
}


def _params(d, shape=(4, 5), seed=0):
    p = torch.randn(*shape, d.num_params, generator=_gen(seed))
    if isinstance(d, (DiscretizedLogisticMixture, GaussianMixture)):
        M = d.num_mixtures
        p[..., M:2 * M] = p[..., M:2 * M].tanh() * 0.9
        p[..., 2 * M:] = p[..., 2 * M:] - 4
    return p


@pytest.mark.parametrize("name", FAMILIES)
def test_injected_uniforms_give_identical_draws(name):
    d = FAMILIES[name]
    p = _params(d)
    u = sampling.uniform((4, 5, d.num_uniforms), generator=_gen(1))
    a = d.sample(p, u, temperature=0.8)
    assert a.shape == (4, 5)
    assert a.dtype == (torch.long if d.discrete else torch.float32)
    assert torch.equal(a, d.sample(p, u.clone(), temperature=0.8))
    non_contiguous = p.transpose(0, 1).contiguous().transpose(0, 1)
    assert not non_contiguous.is_contiguous()
    assert torch.equal(a, d.sample(non_contiguous, u, temperature=0.8))
    # the generator path draws exactly these uniforms
    assert torch.equal(a, d.sample(p, generator=_gen(1), temperature=0.8))
    # and different uniforms do give different draws
    assert not torch.equal(a, d.sample(p, generator=_gen(2), temperature=0.8))
    # log_prob of the draws is finite
    assert torch.isfinite(d.log_prob(p, a)).all()


@pytest.mark.parametrize("name", FAMILIES)
def test_small_temperature_gives_mode(name):
    d = FAMILIES[name]
    p = _params(d, shape=(64,), seed=3)
    draws = d.sample(p, generator=_gen(4), temperature=1e-5)
    if d.discrete:
        assert torch.equal(draws, d.mode(p))
    else:
        assert torch.allclose(draws, d.mode(p), atol=1e-3)


@pytest.mark.parametrize("name", ["bernoulli", "categorical", "mulaw"])
def test_mode_is_argmax_of_log_prob(name):
    d = FAMILIES[name]
    K = 2 if name == "bernoulli" else d.num_params
    p = _params(d, shape=(30,), seed=5)
    lp = d.log_prob(p.unsqueeze(0).expand(K, 30, -1), torch.arange(K)[:, None].expand(K, 30))
    assert torch.equal(d.mode(p), lp.argmax(0))


@pytest.mark.parametrize("name", FAMILIES)
def test_bad_arguments_raise(name):
    d = FAMILIES[name]
    p = _params(d)
    with pytest.raises(ValueError):
        d.sample(p, temperature=0.0)
    with pytest.raises(ValueError, match="shape"):
        d.sample(p, torch.rand(4, 5, d.num_uniforms + 1))
    with pytest.raises(ValueError, match="params"):
        d.log_prob(torch.randn(4, d.num_params + 1), torch.zeros(4, dtype=torch.long if d.discrete else torch.float))
