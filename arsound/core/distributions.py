"""Output distributions: a network outputs *parameters*, a family turns them into nats and samples.

Every family is a small stateless object with

- ``num_params`` (P): parameters per element, the trailing dim of ``params[..., P]``;
- ``num_uniforms`` (U): uniforms one draw consumes, ``u[..., U]``;
- ``discrete``: ``x`` is a LongTensor of class / bin indices (True) or float values (False);
- ``log_prob(params[..., P], x[...]) -> Tensor[...]`` in nats, one term per element;
- ``sample(params[..., P], u[..., U] | None, *, generator, temperature) -> x[...]``;
- ``mode(params[..., P]) -> x[...]``, the greedy value.

All sampling is by inverse CDF of uniforms (``core.sampling``), so injected uniforms give identical
draws on two code paths (naive vs cached, CPU vs GPU). Uniforms are always float32, whatever the
parameter dtype, so a generator yields the same draws for float32 and float64 parameters.
Half-precision parameters are upcast to float32 before any log-probability.

Formulae (``sigma`` = logistic sigmoid, ``softplus(z) = log(1 + e^z)``):

- ``Bernoulli``: ``params = [l]``; ``log p(1) = -softplus(-l)``, ``log p(0) = -softplus(l)``.
- ``Categorical``: ``log p(k) = log_softmax(logits)[k]``; temperature, top-k and top-p act in
  ``sample`` only (``core.sampling.filter_logits``).
- ``MuLaw`` (WaveNet, van den Oord et al. 2016, arXiv:1609.03499): a categorical over ``mu + 1``
  classes. ``f(x) = sign(x) ln(1 + mu|x|) / ln(1 + mu)``, ``q = floor((f + 1) / 2 * mu + 0.5)``
  (round half up: exactly ``torchaudio.functional.mu_law_encoding(x, mu + 1)``), decoded by
  ``x = sign(y) ((1 + mu)^|y| - 1) / mu`` with ``y = 2q / mu - 1``.
- ``DiscretizedLogisticMixture`` (PixelCNN++, Salimans et al. 2017, arXiv:1701.05517): ``K`` bins
  with centres ``v = 2x / (K - 1) - 1`` and half-width ``h = 1 / (K - 1)``; component ``j`` has mean
  ``m_j`` and ``log s_j`` (clamped at ``log_scale_min``). With ``z+ = (v + h - m) / s`` and
  ``z- = (v - h - m) / s``::

      first bin (x == 0):      log sigma(z+)              = -softplus(-z+)
      last bin  (x == K - 1):  log (1 - sigma(z-))        = -softplus(z-)
      interior:                log (sigma(z+) - sigma(z-)) = -softplus(-z+) - softplus(z-)
                                                            + log(1 - exp(-(z+ - z-)))

  using ``sigma(a) - sigma(b) = sigma(a) sigma(-b) (1 - e^(b - a))``, with ``z+ - z- = 2h / s``.
  Edge bins are detected *by index*, never by a ``|v| > 0.999`` threshold (which is right only for
  ``K = 256``). The interior closed form is PixelCNN++'s ``log(sigma(z+) - sigma(z-))`` computed
  without cancellation, so it needs no fallback: where PixelCNN++ switches to
  ``log pdf(v) + log(2h)`` (difference ``< 1e-5``) that midpoint rule under-counts narrow tail bins
  by up to ``sinh(h/s) / (h/s)``; here every bin is exact and the ``K`` probabilities telescope to 1.
  The mixture is ``logsumexp_j(log_softmax(pi)_j + log p_j(x))``.
- ``Gaussian``: ``log N(x; m, s) = -((x - m) / s)^2 / 2 - log s - log(2 pi) / 2``, drawn as
  ``m + s * ndtri(u)``. ``GaussianMixture``: ``logsumexp_j(log_softmax(pi)_j + log N(x; m_j, s_j))``.

Temperature ``T`` (``T > 0``): categorical logits are divided by ``T``; mixtures divide the component
logits by ``T`` and multiply every scale by ``T``, so ``T -> 0`` gives the centre of the heaviest
component. ``mode`` is that limit for every family (argmax for the categorical ones; for the
discretized mixture the bin nearest the heaviest mean, see its docstring).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor

from . import sampling

__all__ = [
    "Distribution", "Bernoulli", "Categorical", "MuLaw", "mu_law_encode", "mu_law_decode",
    "DiscretizedLogisticMixture", "Gaussian", "GaussianMixture", "bin_centres", "nearest_bin",
]


def _upcast(t: Tensor) -> Tensor:
    """float16 / bfloat16 -> float32; float32 / float64 unchanged."""
    return t.float() if t.dtype in (torch.float16, torch.bfloat16) else t


_check_temperature = sampling.check_temperature


class Distribution:
    """A stateless family; see the module docstring for the contract."""

    num_params: int
    num_uniforms: int
    discrete: bool

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        raise NotImplementedError

    def sample(self, params: Tensor, u: Tensor | None = None, *, generator: torch.Generator | None = None,
               temperature: float = 1.0) -> Tensor:
        raise NotImplementedError

    def mode(self, params: Tensor) -> Tensor:
        raise NotImplementedError

    # ---- helpers ---------------------------------------------------------------------------------
    def _check(self, params: Tensor) -> None:
        if params.shape[-1] != self.num_params:
            raise ValueError(f"{self!r} expects params[..., {self.num_params}], got shape {tuple(params.shape)}")

    def _uniforms(self, params: Tensor, u: Tensor | None, generator) -> Tensor:
        """Injected or fresh float32 uniforms ``u[..., U]`` for ``params[..., P]``."""
        shape = (*params.shape[:-1], self.num_uniforms)
        return sampling.get_uniform(u, shape, generator=generator, device=params.device).float()

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in vars(self).items())
        return f"{type(self).__name__}({args})"


# ---- discrete classes ---------------------------------------------------------------------------
class Bernoulli(Distribution):
    """Binary ``x`` in {0, 1} (long) from one logit: ``params[..., 1]``."""

    num_params, num_uniforms, discrete = 1, 1, True

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        self._check(params)
        logit = _upcast(params[..., 0])
        return -F.softplus(torch.where(x.bool(), -logit, logit))

    def sample(self, params, u=None, *, generator=None, temperature=1.0) -> Tensor:
        """``x = 1`` iff ``u >= P(x = 0)`` (inverse CDF over classes [0, 1])."""
        self._check(params)
        _check_temperature(temperature)
        u = self._uniforms(params, u, generator)[..., 0]
        return (u >= torch.sigmoid(-params[..., 0].float() / temperature)).long()

    def mode(self, params: Tensor) -> Tensor:
        self._check(params)
        return (params[..., 0] > 0).long()  # ties -> 0, like argmax


class Categorical(Distribution):
    """``K`` classes from logits ``params[..., K]``; ``x`` LongTensor in ``[0, K)``.

    ``top_k`` / ``top_p`` (and ``temperature``) filter the logits in :meth:`sample` only.
    """

    num_uniforms, discrete = 1, True

    def __init__(self, num_classes: int, top_k: int | None = None, top_p: float | None = None) -> None:
        if num_classes < 2:
            raise ValueError(f"num_classes must be >= 2, got {num_classes}")
        if top_k is not None and top_k < 1:
            raise ValueError(f"top_k must be >= 1, got {top_k}")
        if top_p is not None and not 0 < top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {top_p}")
        self.num_classes, self.top_k, self.top_p = num_classes, top_k, top_p

    @property
    def num_params(self) -> int:
        return self.num_classes

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        self._check(params)
        logp = F.log_softmax(_upcast(params), dim=-1)
        return logp.gather(-1, x.long().unsqueeze(-1)).squeeze(-1)

    def sample(self, params, u=None, *, generator=None, temperature=1.0) -> Tensor:
        self._check(params)
        u = self._uniforms(params, u, generator)[..., 0]
        return sampling.sample_logits(params, u, temperature=temperature, top_k=self.top_k, top_p=self.top_p)

    def mode(self, params: Tensor) -> Tensor:
        self._check(params)
        return params.argmax(-1)


# ---- mu-law -------------------------------------------------------------------------------------
def mu_law_encode(x: Tensor, mu: int = 255, *, clip: bool = False) -> Tensor:
    """Waveform ``x[...]`` in [-1, 1] -> LongTensor[...] of indices in ``[0, mu]``.

    Same indices as ``torchaudio.functional.mu_law_encoding(x, mu + 1)`` (same operations, same
    dtype). Values outside [-1, 1] raise ``ValueError`` unless ``clip=True``; NaN always raises.
    """
    x = torch.as_tensor(x)
    if not x.is_floating_point():
        x = x.float()
    bad = ~(x.abs() <= 1)  # catches NaN too
    if clip:
        bad = torch.isnan(x)
        x = x.clamp(-1.0, 1.0)
    if bool(bad.any()):
        finite = x[~torch.isnan(x)]
        lo, hi = (finite.min().item(), finite.max().item()) if finite.numel() else (float("nan"),) * 2
        n_nan = int(torch.isnan(x).sum())
        raise ValueError(
            f"mu_law_encode expects audio in [-1, 1]; got {int(bad.sum())} of {x.numel()} values outside "
            f"(range [{lo:.6g}, {hi:.6g}], {n_nan} NaN). Rescale the audio, or pass clip=True to clip.")
    mu_t = torch.tensor(float(mu), dtype=x.dtype, device=x.device)
    f = torch.sign(x) * torch.log1p(mu_t * torch.abs(x)) / torch.log1p(mu_t)
    return ((f + 1) / 2 * mu_t + 0.5).to(torch.int64)


def mu_law_decode(q: Tensor, mu: int = 255) -> Tensor:
    """Indices ``q[...]`` in ``[0, mu]`` -> float waveform ``[...]`` in [-1, 1].

    ``torchaudio.functional.mu_law_decoding(q, mu + 1)`` (float32 for integer ``q``), clamped to
    [-1, 1] (torchaudio's ``q = mu`` can overshoot 1 by an ulp, which ``mu_law_encode`` would reject).
    """
    q = torch.as_tensor(q)
    if not q.is_floating_point():
        if q.numel() and (int(q.min()) < 0 or int(q.max()) > mu):
            raise ValueError(f"mu_law_decode expects indices in [0, {mu}], got range "
                             f"[{int(q.min())}, {int(q.max())}]")
        q = q.float()
    mu_t = torch.tensor(float(mu), dtype=q.dtype, device=q.device)
    y = q / mu_t * 2 - 1.0
    x = torch.sign(y) * (torch.exp(torch.abs(y) * torch.log1p(mu_t)) - 1.0) / mu_t
    return x.clamp(-1.0, 1.0)


class MuLaw(Categorical):
    """WaveNet's 8-bit output: a categorical over the ``mu + 1`` mu-law classes of a waveform."""

    def __init__(self, mu: int = 255, top_k: int | None = None, top_p: float | None = None) -> None:
        super().__init__(mu + 1, top_k=top_k, top_p=top_p)
        self.mu = mu

    def encode(self, x: Tensor, *, clip: bool = False) -> Tensor:
        """Waveform in [-1, 1] -> class indices (see :func:`mu_law_encode`)."""
        return mu_law_encode(x, self.mu, clip=clip)

    def decode(self, q: Tensor) -> Tensor:
        """Class indices -> waveform (see :func:`mu_law_decode`)."""
        return mu_law_decode(q, self.mu)


# ---- bins of [-1, 1] ----------------------------------------------------------------------------
def bin_centres(x: Tensor, num_bins: int, dtype: torch.dtype = torch.float32) -> Tensor:
    """Bin (level) indices ``x[...]`` in ``[0, K)`` -> their centres ``2x / (K - 1) - 1`` in [-1, 1] as
    ``dtype``: image levels as network input, linear PCM bins as sample values, the mixture's bin centres."""
    return x.to(dtype) * (2.0 / (num_bins - 1)) - 1.0


def nearest_bin(y: Tensor, num_bins: int) -> Tensor:
    """Values ``y[...]`` (clipped to [-1, 1]) -> LongTensor of the nearest of ``K`` bins, ties rounded up:
    ``floor((y + 1) (K - 1) / 2 + 1/2)`` (the mu-law rule), computed in ``y``'s dtype (pass float64 for
    16-bit audio)."""
    return torch.floor((y.clamp(-1.0, 1.0) + 1.0) * ((num_bins - 1) / 2) + 0.5).long()


# ---- mixtures -----------------------------------------------------------------------------------
def _split3(params: Tensor, m: int) -> tuple[Tensor, Tensor, Tensor]:
    """``params[..., 3M]`` -> ``(logit_probs, means, log_scales)``, each ``[..., M]``."""
    return params[..., :m], params[..., m:2 * m], params[..., 2 * m:]


def _gather(t: Tensor, idx: Tensor) -> Tensor:
    """``t[..., M]``, ``idx[...]`` -> ``t[..., idx]``: ``[...]``."""
    return t.gather(-1, idx.unsqueeze(-1)).squeeze(-1)


class DiscretizedLogisticMixture(Distribution):
    """PixelCNN++ / WaveNet-MoL: ``M`` logistics discretized into ``K`` bins over [-1, 1].

    params: ``Tensor[..., 3M]`` laid out ``[logit_probs(M), means(M), log_scales(M)]``.
    x: LongTensor[...] of bin indices in ``[0, K)``; bin ``x`` has centre ``2x / (K - 1) - 1``.
    Draws use ``u[..., 0]`` to pick the component (inverse CDF) and ``u[..., 1]`` for the logistic.
    """

    num_uniforms, discrete = 2, True

    def __init__(self, num_classes: int, num_mixtures: int, log_scale_min: float = -7.0) -> None:
        if num_classes < 2 or num_mixtures < 1:
            raise ValueError(f"need num_classes >= 2 and num_mixtures >= 1, got {num_classes}, {num_mixtures}")
        self.num_classes, self.num_mixtures, self.log_scale_min = num_classes, num_mixtures, log_scale_min

    @property
    def num_params(self) -> int:
        return 3 * self.num_mixtures

    def split(self, params: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``params[..., 3M]`` -> ``(logit_probs, means, log_scales)``, each ``[..., M]`` (scales unclamped)."""
        self._check(params)
        return _split3(params, self.num_mixtures)

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        return self.log_prob_from(*self.split(_upcast(params)), x)

    def log_prob_from(self, logit_probs: Tensor, means: Tensor, log_scales: Tensor, x: Tensor) -> Tensor:
        """Mixture log-probability of bins ``x[...]`` from split ``[..., M]`` tensors: ``Tensor[...]``.

        Broadcasts ``x[..., None]`` against the components (PixelCNN++ passes channel-adjusted means).
        """
        logit_probs, means, log_scales = map(_upcast, (logit_probs, means, log_scales))
        K = self.num_classes
        x = x.long().unsqueeze(-1)  # (..., 1)
        log_scales = log_scales.clamp(min=self.log_scale_min)
        inv_s = torch.exp(-log_scales)
        centred = bin_centres(x, K, means.dtype) - means
        z_plus = inv_s * (centred + 1.0 / (K - 1))
        z_minus = inv_s * (centred - 1.0 / (K - 1))
        # log(1 - exp(-d)) with d = z+ - z- = 2h/s > 0; clamped so d never underflows to 0
        d = (inv_s * (2.0 / (K - 1))).clamp(min=1e-30)
        log1m_exp = torch.log(-torch.expm1(-d))
        upper = -F.softplus(-z_plus)  # log sigma(z+), zero for the last bin
        lower = -F.softplus(z_minus)  # log(1 - sigma(z-)), zero for the first bin
        first, last = x == 0, x == K - 1
        lp = (torch.where(last, 0.0, upper) + torch.where(first, 0.0, lower)
              + torch.where(first | last, 0.0, log1m_exp))  # (..., M)
        return torch.logsumexp(F.log_softmax(logit_probs, dim=-1) + lp, dim=-1)

    def sample(self, params, u=None, *, generator=None, temperature=1.0) -> Tensor:
        parts = self.split(params)
        return self.sample_from(*parts, self._uniforms(params, u, generator), temperature=temperature)

    def sample_from(self, logit_probs: Tensor, means: Tensor, log_scales: Tensor, u: Tensor,
                    temperature: float = 1.0) -> Tensor:
        """Bins ``[...]`` from split ``[..., M]`` tensors and uniforms ``u[..., 2]``.

        The continuous draw ``m + s T logit(u1)`` is clipped to [-1, 1] and rounded to the nearest bin,
        which gives each bin exactly its discretized mass (edges collect the tails).
        """
        _check_temperature(temperature)
        k = sampling.sample_logits(logit_probs, u[..., 0], temperature=temperature)  # (...)
        mean, log_s = _gather(_upcast(means), k), _gather(_upcast(log_scales), k).clamp(min=self.log_scale_min)
        u1 = u[..., 1].to(mean.dtype)
        y = mean + torch.exp(log_s) * temperature * (torch.log(u1) - torch.log1p(-u1))
        return self._to_bin(y)

    def _to_bin(self, y: Tensor) -> Tensor:
        """Values -> nearest bin index, clipped to ``[0, K)``."""
        return nearest_bin(y, self.num_classes)

    def mode(self, params: Tensor) -> Tensor:
        """The bin nearest the mean of the heaviest component: the ``T -> 0`` limit of :meth:`sample`.

        That is the most probable *interior* bin of that component. The edge bins also collect the
        tails beyond +-1 and can hold more mass when ``s`` is large against the distance to the edge
        (ever more often as ``K`` grows); they are deliberately not preferred, or greedy audio would
        jump to full scale. ``O(M)`` per element.
        """
        logit_probs, means, _ = self.split(params)
        return self._to_bin(_gather(_upcast(means), logit_probs.argmax(-1)))


class Gaussian(Distribution):
    """Continuous ``x`` from ``params[..., 2] = [mean, log_scale]`` (log-scale clamped at the floor).

    ``bounds = (lo, hi)`` clips draws and modes to the data's range (a waveform's [-1, 1]); ``log_prob``
    stays the unbounded density.
    """

    num_params, num_uniforms, discrete = 2, 1, False

    def __init__(self, log_scale_min: float = -9.0, bounds: tuple[float, float] | None = None) -> None:
        self.log_scale_min, self.bounds = log_scale_min, bounds

    def _clip(self, v: Tensor) -> Tensor:
        return v if self.bounds is None else v.clamp(*self.bounds)

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        self._check(params)
        params = _upcast(params)
        return _normal_log_prob(x.to(params.dtype), params[..., 0], params[..., 1].clamp(min=self.log_scale_min))

    def sample(self, params, u=None, *, generator=None, temperature=1.0) -> Tensor:
        self._check(params)
        _check_temperature(temperature)
        params = _upcast(params)
        u = self._uniforms(params, u, generator)[..., 0].to(params.dtype)
        log_s = params[..., 1].clamp(min=self.log_scale_min)
        return self._clip(params[..., 0] + torch.exp(log_s) * temperature * torch.special.ndtri(u))

    def mode(self, params: Tensor) -> Tensor:
        self._check(params)
        return self._clip(params[..., 0])


def _normal_log_prob(x: Tensor, mean: Tensor, log_scale: Tensor) -> Tensor:
    return -0.5 * ((x - mean) * torch.exp(-log_scale)) ** 2 - log_scale - 0.5 * math.log(2 * math.pi)


class GaussianMixture(Distribution):
    """``M`` Gaussians, ``params[..., 3M] = [logit_probs(M), means(M), log_scales(M)]``.

    Draws use ``u[..., 0]`` for the component and ``u[..., 1]`` for the Gaussian; ``bounds`` as
    :class:`Gaussian`'s.
    """

    num_uniforms, discrete = 2, False
    _clip = Gaussian._clip

    def __init__(self, num_mixtures: int, log_scale_min: float = -9.0,
                 bounds: tuple[float, float] | None = None) -> None:
        if num_mixtures < 1:
            raise ValueError(f"num_mixtures must be >= 1, got {num_mixtures}")
        self.num_mixtures, self.log_scale_min, self.bounds = num_mixtures, log_scale_min, bounds

    @property
    def num_params(self) -> int:
        return 3 * self.num_mixtures

    def split(self, params: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``params[..., 3M]`` -> ``(logit_probs, means, log_scales)``, each ``[..., M]`` (scales unclamped)."""
        self._check(params)
        return _split3(params, self.num_mixtures)

    def log_prob(self, params: Tensor, x: Tensor) -> Tensor:
        logit_probs, means, log_scales = self.split(_upcast(params))
        lp = _normal_log_prob(x.to(means.dtype).unsqueeze(-1), means, log_scales.clamp(min=self.log_scale_min))
        return torch.logsumexp(F.log_softmax(logit_probs, dim=-1) + lp, dim=-1)

    def sample(self, params, u=None, *, generator=None, temperature=1.0) -> Tensor:
        _check_temperature(temperature)
        logit_probs, means, log_scales = self.split(_upcast(params))
        u = self._uniforms(params, u, generator)
        k = sampling.sample_logits(logit_probs, u[..., 0], temperature=temperature)  # (...)
        log_s = _gather(log_scales, k).clamp(min=self.log_scale_min)
        z = torch.special.ndtri(u[..., 1].to(means.dtype))
        return self._clip(_gather(means, k) + torch.exp(log_s) * temperature * z)

    def mode(self, params: Tensor) -> Tensor:
        """The mean of the heaviest component: the ``T -> 0`` limit of :meth:`sample` (the mixture's
        mode when the components are well separated and equally wide)."""
        logit_probs, means, _ = self.split(params)
        return self._clip(_gather(means, logit_probs.argmax(-1)))
