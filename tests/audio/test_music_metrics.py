"""Set-level music metrics against closed forms: the Frechet distance of Gaussians, key clarity of the key
profiles themselves, chroma of known tones."""
from __future__ import annotations

import numpy as np
import pytest

from arsound.audio.music_metrics import (KK_MAJOR, KK_MINOR, bootstrap_frechet, chroma_agreement, chroma_frames,
                                         chroma_histogram, frechet_distance, histogram_distance, key_clarity,
                                         logmel_frames)

SR = 16000


def test_frechet_distance_matches_the_closed_form_for_diagonal_gaussians():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((20000, 3)) * [1.0, 2.0, 0.5]
    b = rng.standard_normal((20000, 3)) * [2.0, 1.0, 0.5] + [1.0, 0.0, -2.0]
    s_a, s_b = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    closed = ((a.mean(0) - b.mean(0)) ** 2).sum() + ((np.sqrt(np.diag(s_a)) - np.sqrt(np.diag(s_b))) ** 2).sum()
    assert frechet_distance(a, b) == pytest.approx(closed, rel=0.02)       # off-diagonals ~0 by construction
    assert abs(frechet_distance(a, a)) < 1e-6


def test_bootstrap_frechet_pools_clips_like_one_array_and_spreads_with_the_clips():
    """Each resample's Gaussian is the one of its clips' rows concatenated (checked against a NumPy transcription of
    the same draw); identical clips give no spread, clips that differ do; the same seed gives the same draws."""
    rng = np.random.default_rng(1)
    ref = rng.standard_normal((3000, 4))
    clips = [rng.standard_normal((int(rng.integers(50, 200)), 4)) * (1 + i % 3) + i % 2 for i in range(10)]
    got = bootstrap_frechet(clips, ref, resamples=5, seed=3)
    draw = np.random.default_rng(3)
    for r in range(5):
        pick = draw.integers(len(clips), size=len(clips))
        assert got[r] == pytest.approx(frechet_distance(np.concatenate([clips[i] for i in pick]), ref), rel=1e-9)
    assert np.array_equal(got, bootstrap_frechet(clips, ref, resamples=5, seed=3))
    assert got.std() > 0.01
    same = bootstrap_frechet([clips[0]] * 6, ref, resamples=20)
    assert np.allclose(same, frechet_distance(np.concatenate([clips[0]] * 6), ref), rtol=1e-9)


def test_key_clarity_finds_the_profiles_keys():
    assert key_clarity(KK_MAJOR / KK_MAJOR.sum()) == (pytest.approx(1.0), "C major")
    assert key_clarity(np.roll(KK_MINOR, 9))[1] == "A minor"
    flat = key_clarity(np.ones(12) + 1e-3 * np.arange(12))[0]
    assert flat < 0.5


def tones(freqs, seconds=1.0):
    t = np.arange(int(seconds * SR)) / SR
    return sum(0.2 * np.sin(2 * np.pi * f * t) for f in freqs).astype(np.float32)


def test_chroma_of_known_tones():
    a440 = chroma_histogram(tones([440.0]), SR)
    assert a440.argmax() == 9 and a440.sum() == pytest.approx(1.0)
    c_major = chroma_histogram(tones([261.63, 329.63, 392.0, 523.25]), SR)
    assert key_clarity(c_major)[1] in ("C major", "A minor", "E minor")    # the triad's own keys
    assert histogram_distance(a440, a440) == 0 and 0 < histogram_distance(a440, c_major) <= 1


def test_chroma_agreement_follows_the_notes_moment_by_moment():
    """The same notes at the same moments agree fully, at any level; a chord a tritone away hardly at all; the same
    two chords in the other order (the same histogram) no more than either chord against the other; silence
    scores 0 and the frames shared are compared."""
    c, fs = tones([261.63, 329.63, 392.0]), tones([369.99, 466.16, 554.37])
    cf, fsf = chroma_frames(c, SR), chroma_frames(fs, SR)
    assert cf.shape == (1 + SR // 1024, 12) and np.allclose(np.linalg.norm(cf, axis=1), 1)
    assert chroma_agreement(cf, cf) == pytest.approx(1.0)
    assert chroma_agreement(cf, chroma_frames(0.1 * c, SR)) == pytest.approx(1.0, abs=1e-5)
    across = chroma_agreement(cf, fsf)
    assert across < 0.3
    ab, ba = (chroma_frames(np.concatenate(p), SR) for p in ((c, fs), (fs, c)))
    assert histogram_distance(chroma_histogram(np.concatenate((c, fs)), SR),
                              chroma_histogram(np.concatenate((fs, c)), SR)) < 0.02
    assert chroma_agreement(ab, ba) < 0.5 < chroma_agreement(ab, ab)
    silent = chroma_frames(np.zeros(SR, np.float32), SR)
    assert not silent.any() and chroma_agreement(cf, silent) == 0.0
    assert chroma_agreement(cf[:5], cf) == pytest.approx(1.0) and chroma_agreement(cf[:0], cf) == 0.0


def test_logmel_frames_shape():
    f = logmel_frames(tones([440.0], 0.5), SR, n_mels=32)
    assert f.shape == (1 + 8000 // 256, 32) and np.isfinite(f).all()
