"""The distances of ``audio/metrics.py``: zero for identical signals, symmetric where they should be, LSD's floor
relative to the reference (level-free, blind to empty bands), scale-invariant SI-SDR, batched == one by one; PESQ,
STOI and F0 errors ranking what they should."""
from __future__ import annotations

import math

import pytest
import torch

from arsound.audio.metrics import (f0_errors, log_power_difference, log_spectral_distance, log_spectral_error_by_bin,
                                   mr_stft_distance, pesq_wb, si_sdr, stoi, vocoder_metrics)
from tests.fakes import SR, music, tone, vowels


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
    # LSD's floor sits 80 dB under the reference's strongest bin: a gain on both leaves it unchanged, ...
    for gain in (10 ** (-30 / 20), 3.0):
        torch.testing.assert_close(log_spectral_distance(gain * x, gain * noise), log_spectral_distance(x, noise))
    # ... and bands the reference leaves empty are scored on what the output puts there above that floor only:
    # a hiss 100+ dB under the tone costs nothing, the same hiss scored against the reference's silence (no
    # floor) costs dB everywhere, and a hiss 20 dB under the tone costs many
    sine = 0.5 * torch.sin(2 * math.pi * 330 * torch.arange(SR // 2) / SR)
    hiss = torch.randn(sine.shape, generator=g)
    assert log_spectral_distance(sine, sine + 1e-5 * hiss).item() < 0.1
    assert log_spectral_distance(sine, sine + 1e-5 * hiss, floor_db=300).item() > 5
    assert log_spectral_distance(sine, sine + 0.05 * hiss).item() > 10
    # spectral convergence is relative to the original: a quieter copy is closer than a louder one
    assert mr_stft_distance(x, 0.5 * x)["sc"].item() == pytest.approx(0.5, abs=1e-4)
    assert mr_stft_distance(x, 1.5 * x)["sc"].item() == pytest.approx(0.5, abs=1e-4)
    # batched == one by one
    both = log_spectral_distance(torch.stack([x, x]), torch.stack([x, noise]))
    torch.testing.assert_close(both[1], log_spectral_distance(x, noise)[0])


def test_lsd_by_bin_shows_where_in_frequency_the_error_is():
    g = torch.Generator().manual_seed(0)
    x = 0.3 * torch.randn(2, SR // 2, generator=g)
    d = log_power_difference(x, 0.5 * x)                                   # [B, K, F]: a 6 dB gain everywhere
    assert d.shape[:2] == (2, 513)
    torch.testing.assert_close(d, torch.full_like(d, 20 * math.log10(2)))
    assert torch.equal(log_spectral_distance(x, x * 0.7), log_power_difference(x, x * 0.7).square().mean(1).sqrt()
                       .mean(1))                                           # LSD is its RMS over bins, mean over frames
    # a hiss only above 4 kHz: the error by bin sits there, and below 4 kHz stays near zero
    sine = 0.5 * torch.sin(2 * math.pi * 330 * torch.arange(SR // 2) / SR)
    hiss = torch.randn(SR // 2, generator=g)
    high = torch.fft.irfft(torch.fft.rfft(hiss) * (torch.fft.rfftfreq(SR // 2, 1 / SR) > 4500), n=SR // 2)
    by_bin = log_spectral_error_by_bin(sine, sine + 0.05 * high)[0]       # bin k: k * SR / 1024 Hz
    assert by_bin[300:].mean() > 10 and by_bin[20:250].mean() < 1


def test_si_sdr():
    x = music(0.2, 5)
    assert si_sdr(x, 0.5 * x).item() > 60                                          # scale-invariant
    noisy = x + 0.1 * x.std() * torch.randn(len(x), generator=torch.Generator().manual_seed(0))
    assert si_sdr(x, noisy).item() == pytest.approx(20.0, abs=0.5)


def test_pesq_and_stoi_rank_noisier_copies_lower():
    """Wideband PESQ and STOI through their packages: the clean copy near the top of each scale, a noisier copy
    lower than a cleaner one, and a clip PESQ refuses (under 0.25 s) is NaN, not an exception."""
    x = vowels(2.0)
    g = torch.Generator().manual_seed(0)
    n = torch.randn(x.shape, generator=g) * x.square().mean().sqrt()
    clean, mild, loud = x, x + 0.1 * n, x + 1.0 * n
    p = pesq_wb(torch.stack([x, x, x]), torch.stack([clean, mild, loud]))
    s = stoi(torch.stack([x, x, x]), torch.stack([clean, mild, loud]), SR)
    assert p[0] > 4.5 and p[0] > p[1] > p[2], p
    assert s[0] > 0.99 and s[0] > s[1] > s[2], s
    assert torch.isnan(pesq_wb(x[:2000], x[:2000])).all()
    with pytest.raises(ValueError, match="16 kHz"):
        pesq_wb(x, x, sr=8000)


def test_f0_errors_in_cents_and_voicing():
    """A tone against itself: 0 cents, no voicing error; against the tone a semitone up: about 100 cents; against
    near-silence: voiced frames of the tone become voicing errors."""
    t = torch.arange(SR) / SR
    a, up = 0.3 * torch.sin(2 * torch.pi * 220 * t), 0.3 * torch.sin(2 * torch.pi * 220 * 2 ** (1 / 12) * t)
    quiet = 1e-4 * torch.randn(SR, generator=torch.Generator().manual_seed(0))
    out = f0_errors(torch.stack([a, a, a]), torch.stack([a, up, quiet]), SR)
    assert out["f0_rmse_cents"][0] == pytest.approx(0, abs=1) and out["vde"][0] == 0
    assert out["f0_rmse_cents"][1] == pytest.approx(100, abs=10) and out["vde"][1] < 0.1
    assert out["vde"][2] > 0.8, out["vde"]


def test_vocoder_metrics_speech_measures_only_for_speech():
    x = vowels(0.5)
    y = x + 0.01 * torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    assert set(vocoder_metrics(x, y, SR, speech=True)) == {"lsd_db", "mrstft", "f0_rmse_cents", "vde", "pesq", "stoi"}
    music_only = vocoder_metrics(x, y, SR, speech=False)
    assert set(music_only) == {"lsd_db", "mrstft", "f0_rmse_cents", "vde"}
    torch.testing.assert_close(music_only["lsd_db"], log_spectral_distance(x, y))
