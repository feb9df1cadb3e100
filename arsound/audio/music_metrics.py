"""How much a set of clips sounds like another, with no pretrained network: statistics of log-mel frames and of
pitch classes.

- :func:`frechet_distance` between two Gaussians fitted to feature rows (as FAD, Kilgour et al. 2019, but on
  log-mel frames of the clips themselves rather than a pretrained embedding): ``|mu_a - mu_b|^2 +
  tr(S_a + S_b - 2 (S_a S_b)^(1/2))``; :func:`bootstrap_frechet`: how much it moves when the clips of one set are
  drawn again (resampled with replacement), the error bar of a figure measured on a few dozen clips.
- :func:`chroma_histogram`: a clip's energy per pitch class (librosa's ``chroma_stft`` tuned to A = 440 Hz,
  summed over frames, normalized to 1).
- :func:`chroma_frames`, :func:`chroma_agreement`: the same pitch classes frame by frame, and how alike two clips'
  are moment by moment (the mean cosine similarity of their frames), e.g. a finer level's decoding against the
  coarser level it was drawn from.
- :func:`key_clarity`: the best Pearson correlation of a chroma histogram with the 24 rotated
  Krumhansl-Kessler key profiles (Krumhansl 1990; the Krumhansl-Schmuckler key-finding algorithm), and the
  key it picks. Tonal music scores high (about 0.8-0.9), noise and atonal clusters low.

Letters: N feature rows, D feature dimensions.
"""
from __future__ import annotations

import numpy as np
import torch

from .features import MelSpectrogram

# Krumhansl-Kessler probe-tone profiles, C major and C minor (Krumhansl 1990, table 4.1)
KK_MAJOR = np.array([6.35, 2.23, 3.48, 2.33, 4.38, 4.09, 2.52, 5.19, 2.39, 3.66, 2.29, 2.88])
KK_MINOR = np.array([6.33, 2.68, 3.52, 5.38, 2.60, 3.53, 2.54, 4.75, 3.98, 2.69, 3.34, 3.17])
PITCH_CLASSES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")


def logmel_frames(wav, sr: int, n_mels: int = 64, n_fft: int = 1024, hop: int = 256) -> np.ndarray:
    """``wav[T]`` -> log-mel frames ``[frames, n_mels]`` (float64) for :func:`frechet_distance`."""
    mel = MelSpectrogram(sr, n_fft=n_fft, hop=hop, n_mels=n_mels, fmin=0.0, fmax=sr / 2)
    x = torch.as_tensor(np.asarray(wav), dtype=torch.float32).reshape(1, -1)
    return mel(x)[0].T.double().numpy()


def gaussian(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean ``[D]`` and covariance ``[D, D]`` of feature rows ``[N, D]``."""
    feats = np.asarray(feats, dtype=np.float64)
    return feats.mean(0), np.cov(feats, rowvar=False)


def frechet_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Frechet distance between Gaussians fitted to feature rows ``a[N, D]`` and ``b[M, D]``."""
    return gaussian_frechet(*gaussian(a), *gaussian(b))


def gaussian_frechet(mu_a: np.ndarray, s_a: np.ndarray, mu_b: np.ndarray, s_b: np.ndarray) -> float:
    """Frechet distance between ``N(mu_a, s_a)`` and ``N(mu_b, s_b)`` (means ``[D]``, covariances ``[D, D]``)."""
    from scipy import linalg

    root = linalg.sqrtm(s_a @ s_b)
    if not np.isfinite(root).all():  # nearly singular: the usual small offset on the diagonals
        eye = np.eye(len(mu_a)) * 1e-6
        root = linalg.sqrtm((s_a + eye) @ (s_b + eye))
    root = root.real
    d = ((mu_a - mu_b) ** 2).sum() + np.trace(s_a) + np.trace(s_b) - 2 * np.trace(root)
    return max(float(d), 0.0)  # a distance: rounding in sqrtm leaves about -1e-12 for identical sets


def bootstrap_frechet(clips: list[np.ndarray], ref: np.ndarray, resamples: int = 200,
                      seed: int = 0) -> np.ndarray:
    """:func:`frechet_distance` of ``clips`` (one ``[N_i, D]`` array of feature rows per clip) against ``ref[M, D]``,
    with the clips drawn again with replacement ``resamples`` times: ``[resamples]`` distances (``ref`` is kept).
    Their standard deviation is the figure's error bar from having only these clips; each resample pools its
    clips' rows exactly as :func:`gaussian` pools one array (sums of rows and of their outer products)."""
    clips = [np.asarray(c, dtype=np.float64) for c in clips]
    n = np.array([len(c) for c in clips], dtype=np.float64)
    s1 = np.stack([c.sum(0) for c in clips])
    s2 = np.stack([c.T @ c for c in clips])
    ref_stats = gaussian(ref)
    rng = np.random.default_rng(seed)
    out = np.empty(resamples)
    for r in range(resamples):
        w = np.bincount(rng.integers(len(clips), size=len(clips)), minlength=len(clips)).astype(np.float64)
        total = w @ n
        mu = (w @ s1) / total
        cov = (np.tensordot(w, s2, 1) - total * np.outer(mu, mu)) / (total - 1)
        out[r] = gaussian_frechet(mu, cov, *ref_stats)
    return out


def _chroma(y: np.ndarray, sr: int, n_fft: int, hop: int) -> np.ndarray:
    """librosa's ``chroma_stft`` of ``y[T]``, tuned to A = 440 Hz and unnormalized: ``[12, frames]``."""
    import librosa

    return librosa.feature.chroma_stft(y=y, sr=sr, n_fft=n_fft, hop_length=hop, norm=None, tuning=0.0)


def chroma_histogram(wav, sr: int, n_fft: int = 4096, hop: int = 1024) -> np.ndarray:
    """Energy per pitch class of ``wav[T]``: ``[12]`` summing to 1 (uniform for silence)."""
    h = _chroma(np.asarray(wav, dtype=np.float32), sr, n_fft, hop).sum(1)
    return h / h.sum() if h.sum() > 0 else np.full(12, 1 / 12)


def chroma_frames(wav, sr: int, n_fft: int = 4096, hop: int = 1024) -> np.ndarray:
    """Pitch-class energy of each frame of ``wav[T]`` (as :func:`chroma_histogram`): ``[frames, 12]``, every row
    of unit length (zero for a silent frame); a clip shorter than one window is zero-padded to it."""
    y = np.asarray(wav, dtype=np.float32)
    c = _chroma(np.pad(y, (0, max(0, n_fft - len(y)))), sr, n_fft, hop).T
    norm = np.linalg.norm(c, axis=1, keepdims=True)
    return np.divide(c, norm, out=np.zeros_like(c), where=norm > 0)


def chroma_agreement(a: np.ndarray, b: np.ndarray) -> float:
    """The mean cosine similarity of two clips' :func:`chroma_frames` ``[F_a, 12]``, ``[F_b, 12]`` over the frames
    they share: 1 when the same pitch classes sound at every moment."""
    f = min(len(a), len(b))
    return float((a[:f] * b[:f]).sum(1).mean()) if f else 0.0


def key_clarity(hist: np.ndarray) -> tuple[float, str]:
    """Best correlation of ``hist[12]`` with the 24 Krumhansl-Kessler key profiles, and that key's name."""
    best, key = -2.0, ""
    for mode, profile in (("major", KK_MAJOR), ("minor", KK_MINOR)):
        for tonic in range(12):
            r = float(np.corrcoef(hist, np.roll(profile, tonic))[0, 1])
            if r > best:
                best, key = r, f"{PITCH_CLASSES[tonic]} {mode}"
    return best, key


def histogram_distance(a: np.ndarray, b: np.ndarray) -> float:
    """Total-variation distance between two histograms (half the L1 distance): 0 equal, 1 disjoint."""
    return float(0.5 * np.abs(np.asarray(a) - np.asarray(b)).sum())


__all__ = ["KK_MAJOR", "KK_MINOR", "chroma_agreement", "chroma_frames", "chroma_histogram", "frechet_distance",
           "gaussian", "histogram_distance", "key_clarity", "logmel_frames"]
