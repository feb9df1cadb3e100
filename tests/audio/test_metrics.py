"""The distances of ``audio/metrics.py``: zero for identical signals, symmetric where they should be,
scale-invariant SI-SDR, batched == one by one."""
from __future__ import annotations

import pytest
import torch

from arsound.audio.metrics import log_spectral_distance, mr_stft_distance, si_sdr
from tests.fakes import music, tone


def test_lsd_and_mr_stft():
    g = torch.Generator().manual_seed(0)
    x = torch.from_numpy(tone(0.5, 330, 0))
    noise = 0.3 * torch.randn(x.shape, generator=g)
    assert log_spectral_distance(x, x).item() == 0
    assert log_spectral_distance(x, noise).item() > 10
    same = mr_stft_distance(x, x)
    assert all(v.item() == 0 for v in same.values())
    a, b = mr_stft_distance(x, noise), mr_stft_distance(noise, x)
    assert a["total"].item() > 1 and b["total"].item() > 1
    torch.testing.assert_close(a["mag"], b["mag"])                        # log-magnitude term is symmetric
    torch.testing.assert_close(log_spectral_distance(x, noise), log_spectral_distance(noise, x))
    # spectral convergence is relative to the original: a quieter copy is closer than a louder one
    assert mr_stft_distance(x, 0.5 * x)["sc"].item() == pytest.approx(0.5, abs=1e-4)
    assert mr_stft_distance(x, 1.5 * x)["sc"].item() == pytest.approx(0.5, abs=1e-4)
    # batched == one by one
    both = log_spectral_distance(torch.stack([x, x]), torch.stack([x, noise]))
    torch.testing.assert_close(both[1], log_spectral_distance(x, noise)[0])


def test_si_sdr():
    x = music(0.2, 5)
    assert si_sdr(x, 0.5 * x).item() > 60                                          # scale-invariant
    noisy = x + 0.1 * x.std() * torch.randn(len(x), generator=torch.Generator().manual_seed(0))
    assert si_sdr(x, noisy).item() == pytest.approx(20.0, abs=0.5)
