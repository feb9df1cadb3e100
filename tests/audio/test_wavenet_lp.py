"""The LP WaveNet (``lpc_order > 0``): the excitation model inside the mel's all-pole filter. Normalization over
every sequence of a tiny event space, causality, cached == full forward (the signal synthesized from ``x``),
greedy naive == cached, injected uniforms, the waveform from the generator's loop == the synthesis filter of
its ``x``, the targets of a crop, and a 3-tone overfit."""
from __future__ import annotations

import itertools
import math

import pytest
import torch

from arsound.audio.wavenet import WaveNet, WaveNetConfig
from tests.fakes import SR, chord, lively, overfit, tone_share, vowels

HOP, MELS, ORDER = 32, 20, 8


def tiny(bits: int = 8, **kw) -> WaveNet:
    cfg = WaveNetConfig(**{**dict(head="mulaw", bits=bits, layers=4, cycles=2, kernel_size=2, residual_channels=8,
                                  gate_channels=16, skip_channels=16, cond_channels=MELS, hop_length=HOP,
                                  upsample_scales=(4, 8), n_fft=256, fmax=SR / 2, sample_rate=SR,
                                  lpc_order=ORDER), **kw})
    return lively(WaveNet, cfg)


def mel_of(model: WaveNet, T: int, B: int = 2) -> torch.Tensor:
    """Normalized log-mel frames of B stretches of the synthetic vowels covering T samples."""
    wav = vowels(0.5)
    clips = torch.stack([wav[i * 700:i * 700 + T + HOP] for i in range(B)])
    return model.mel_condition(clips)[..., :math.ceil(T / HOP)]


def test_config_checks():
    with pytest.raises(ValueError, match="linear prediction needs"):
        tiny(head="mol")
    with pytest.raises(ValueError, match="linear prediction needs"):
        tiny(cond_channels=0)
    with pytest.raises(ValueError, match="linear prediction needs"):
        tiny(preemphasis=0.85)


def test_normalized_over_every_sequence():
    """bits=2: 4 excitation levels, T=3: the 64 sequences' probabilities sum to 1 for each conditioning."""
    model = tiny(bits=2)
    c = mel_of(model, 3, B=1)
    xs = torch.tensor(list(itertools.product(range(4), repeat=3)))
    with torch.no_grad():
        lp = model.log_prob(xs, c=c.expand(len(xs), -1, -1))
    assert torch.logsumexp(lp.double(), 0).exp().item() == pytest.approx(1.0, abs=1e-5)
    assert lp.std() > 0.1                                                   # not uniform


def test_causality_a_later_excitation_never_changes_an_earlier_term():
    model = tiny()
    T = 50
    c = mel_of(model, T, B=1)
    x = torch.randint(0, 256, (1, T), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        base = model.log_prob(x, reduce=False, c=c)[0]
        for t in (0, 17, 49):
            y = x.clone()
            y[0, t] = (y[0, t] + 77) % 256
            other = model.log_prob(y, reduce=False, c=c)[0]
            assert torch.equal(other[:t], base[:t])
            if t < T - 1:
                assert not torch.allclose(other[t + 1:], base[t + 1:])    # the filter carries it forward


def test_streaming_steps_equal_full_forward():
    """The cached step (synthesis filter in the loop) gives the params of the full forward, whose signal is
    synthesized from x by lpc.synthesis."""
    model = tiny()
    B, T = 2, 90
    c = mel_of(model, T, B)
    x = torch.randint(0, 256, (B, T), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        full = model(x, c=c)
    with model.streaming():
        chunks = [model(x[:, :1], c=c), model(x[:, 1:40])] + [model(x[:, t:t + 1]) for t in range(40, T)]
    torch.testing.assert_close(torch.cat(chunks, 1), full, atol=1e-4, rtol=1e-4)


def test_greedy_naive_equals_cached_and_injected_uniforms():
    model = tiny()
    B, T = 2, 60
    c = mel_of(model, T, B)
    naive = model.generate(B, c=c, length=T, greedy=True, method="naive")
    cached = model.generate(B, c=c, length=T, greedy=True)
    assert len(cached.unique()) > 3 and torch.equal(naive, cached)
    u = torch.rand(B, T, model.head.num_uniforms, generator=torch.Generator().manual_seed(3))
    a = model.generate(B, c=c, length=T, uniforms=u, method="naive")
    b = model.generate(B, c=c, length=T, uniforms=u)
    assert torch.equal(a, b)


def test_stream_waveform_is_the_synthesis_filter_of_its_x():
    """The waveform taken from the generator's loop equals synthesize(x, c) of the same run, also in pieces and
    with conditioning given as frame blocks; decode() refuses an LP model's x."""
    model = tiny()
    B, T = 2, 200
    c = mel_of(model, T, B)
    x = model.generate(B, c=c, generator=torch.Generator().manual_seed(4))
    assert x.shape == (B, c.shape[-1] * HOP)
    want = model.synthesize(x, c).float()
    for chunk in (37, 10_000):
        y = torch.cat(list(model.stream_waveform(B, c=c, generator=torch.Generator().manual_seed(4), chunk=chunk)), 1)
        torch.testing.assert_close(y, want.clamp(-1, 1), atol=1e-5, rtol=0)
    blocks = [c[..., :3], c[..., 3:4], c[..., 4:]]
    y = torch.cat(list(model.stream_waveform(B, c=iter(blocks), generator=torch.Generator().manual_seed(4))), 1)
    torch.testing.assert_close(y, want.clamp(-1, 1), atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="excitation"):
        model.decode(x)
    with pytest.raises(ValueError, match="no prompt"):
        model.generate(B, c=c, prompt=x[:, :5])


def test_targets_of_a_crop():
    """The excitation of the true signal, quantized, rebuilds the signal through the synthesis filter within
    the quantization noise the filter shapes (> 25 dB SNR), and the filter takes most of the signal's power."""
    model = tiny()
    wav = vowels(0.5)[:HOP * 40 + 1]
    c = model.mel_condition(wav[None, 1:])
    item = model.targets(wav, c[0])
    x, s = item["x"], item["s"]
    assert x.shape == s.shape == (HOP * 40,) and torch.equal(s, wav[1:])
    rebuilt = model.synthesize(x[None], c)[0]
    snr = 10 * torch.log10(s.pow(2).sum() / (rebuilt - s).pow(2).sum())
    assert snr > 25
    from arsound.core.distributions import mu_law_decode
    e = mu_law_decode(x, 255)
    assert e.pow(2).sum() < 0.2 * s.pow(2).sum()                          # prediction gain > 7 dB
    loss, _ = model.loss({"x": x[None], "c": c, "s": s[None]})
    assert math.isfinite(loss.item())


def test_overfit_three_tone_chord():
    """Memorize 1024 samples of a 250 + 375 + 500 Hz chord at 16 kHz through the LP model conditioned on its mel;
    the waveform of greedy and of low-temperature draws keeps the tones. (At temperature 1 a memorizing model
    leaves its one training path after a few dozen samples and the all-pole filter, 37 dB of gain here, makes
    each excitation error loud: LPCNet trains on noisy input for that reason; the plain WaveNet's overfit
    samples at temperature 1.)"""
    T = 1024
    wav = chord(T + 1, SR)                                                   # one sample of context first
    torch.manual_seed(0)
    model = WaveNet(WaveNetConfig(head="mulaw", layers=6, cycles=2, residual_channels=16, gate_channels=32,
                                  skip_channels=32, cond_channels=MELS, hop_length=HOP, upsample_scales=(4, 8),
                                  n_fft=256, fmax=SR / 2, sample_rate=SR, lpc_order=ORDER))
    c = model.mel_condition(wav[None, 1:])
    batch = {k: v[None] for k, v in model.targets(wav, c[0]).items()} | {"c": c}
    first, last = overfit(model, batch, steps=250, decay=0.4)    # 120 steps at a constant rate landed on a
    assert first > 4.0 and last < 0.5 * first                       # spike on one CPU at one thread (share 0.60)
    model.eval()
    for opts in (dict(greedy=True), dict(temperature=0.3)):
        y = torch.cat(list(model.stream_waveform(1, c=c, generator=torch.Generator().manual_seed(0), **opts)), 1)[0]
        assert tone_share(y, SR, width=24) >= 0.9, opts                    # +- 1.5 bins around each tone
