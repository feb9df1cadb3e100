"""MelSpectrogram: agreement with librosa, frame alignment, batching, devices; Griffin-Lim baseline."""
import numpy as np
import pytest
import torch

from arsound.audio.features import MelSpectrogram, deemphasis, griffin_lim, preemphasis

SR = 16000


def signal(n=12_345, seed=0):
    rng = np.random.default_rng(seed)
    t = np.arange(n) / SR
    x = 0.5 * np.sin(2 * np.pi * 440 * t) + 0.1 * rng.standard_normal(n)
    x[3000:5000] = 0.0  # digital silence exercises the log floor
    return x.astype(np.float32)


@pytest.mark.parametrize("power,win", [(1, 1024), (2, 800)])
def test_matches_librosa(power, win):
    """Tolerance: max |log-mel difference| < 1e-4 nats (measured ~2e-5 in float32), i.e. ~1e-4 relative."""
    import librosa

    y = signal()
    kw = dict(n_fft=1024, n_mels=80, fmin=50.0, fmax=7600.0, power=power, center=True)
    ref = librosa.feature.melspectrogram(y=y, sr=SR, hop_length=256, win_length=win, pad_mode="constant", **kw)
    ours = MelSpectrogram(sr=SR, hop=256, win=win, **kw)(torch.from_numpy(y)).numpy()
    assert ours.shape == ref.shape
    assert np.abs(ours - np.log(np.maximum(ref, 1e-5))).max() < 1e-4


@pytest.mark.parametrize("T", [1, 255, 256, 257, 4096, 5000])
def test_frame_count_and_alignment(T):
    m = MelSpectrogram(n_fft=1024, hop=256, n_mels=16)
    mel = m(torch.zeros(2, T))
    assert mel.shape == (2, 16, T // 256 + 1) and mel.shape[-1] == m.frames_for(T)
    k = T // 256  # a clip cropped to k * hop samples is conditioned by its first k frames
    assert m.samples_for(m.frames_for(k * 256) - 1) == k * 256


def test_frame_alignment_rule_is_a_shift():
    """Frame f is centred on sample f * hop: delaying the input by one hop delays the frames by one."""
    m = MelSpectrogram(n_fft=512, hop=128, win=512, n_mels=32)
    x = torch.from_numpy(signal(4096))
    a, b = m(x), m(torch.cat([torch.zeros(128), x]))
    torch.testing.assert_close(b[:, 1:-3], a[:, :-3], atol=1e-4, rtol=0)  # away from the padded right edge


def test_batched_equals_per_item_and_uncentred_count():
    m = MelSpectrogram(n_fft=512, hop=128, win=400, n_mels=40, power=2)
    x = torch.from_numpy(np.stack([signal(3000, seed=s) for s in range(3)]))
    batched = m(x)
    torch.testing.assert_close(batched, torch.stack([m(xi) for xi in x]), atol=1e-5, rtol=0)
    u = MelSpectrogram(n_fft=512, hop=128, n_mels=40, win=512, center=False)
    assert u(x).shape[-1] == u.frames_for(3000) == 1 + (3000 - 512) // 128


def test_buffers_follow_device_and_are_not_saved():
    m = MelSpectrogram(n_mels=20)
    assert m.state_dict() == {}
    assert m.fb.shape == (20, 513) and torch.all(m.fb >= 0)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a GPU")
def test_gpu_matches_cpu():
    m = MelSpectrogram()
    x = torch.from_numpy(np.stack([signal(), signal(seed=1)]))
    torch.testing.assert_close(m.cuda()(x.cuda()).cpu(), m.cpu()(x), atol=1e-3, rtol=0)


def test_griffin_lim_recovers_a_tone():
    sr, f0 = 8000, 1000.0
    t = np.arange(4096) / sr
    x = torch.tensor(0.5 * np.sin(2 * np.pi * f0 * t), dtype=torch.float32)
    m = MelSpectrogram(sr=sr, n_fft=256, hop=64, win=256, n_mels=40)
    y = m.invert(m(x), n_iter=8)
    assert y.shape == x.shape
    spec = np.abs(np.fft.rfft(y.numpy()))
    assert abs(np.fft.rfftfreq(len(y), 1 / sr)[spec.argmax()] - f0) < 40  # within one mel band
    batched = griffin_lim(m(torch.stack([x, x])), sr=sr, n_fft=256, hop=64, win=256, n_iter=2)
    assert batched.shape == (2, len(x))


def test_preemphasis_matches_librosa_and_inverts():
    """Independent reference: librosa.effects.(pre|de)emphasis with zi = 0 (scipy's lfilter)."""
    import librosa

    x = np.stack([signal(4000, 0), signal(4000, 1)]).astype(np.float64)
    y = preemphasis(torch.from_numpy(x), 0.85)
    np.testing.assert_allclose(y.numpy(), librosa.effects.preemphasis(x, coef=0.85, zi=np.zeros((2, 1))), atol=1e-12)
    np.testing.assert_allclose(deemphasis(y, 0.85).numpy(), x, atol=1e-12)
    assert deemphasis(y.float(), 0.85).dtype == torch.float32
    assert torch.equal(preemphasis(y, 0.0), y) and torch.equal(deemphasis(y, 0.0), y)


def test_preemphasis_moves_mu_law_noise_under_the_signal():
    """8-bit mu-law of a low-pass signal: pre-emphasis + de-emphasis cuts the error above 4 kHz (where the
    signal has little energy) by more than 6 dB, and the round trip still tracks the waveform."""
    from arsound.audio.wavenet import WaveNet, WaveNetConfig

    rng = np.random.default_rng(0)
    t = np.arange(16000) / SR
    x = sum(0.2 / k * np.sin(2 * np.pi * 220 * k * t + rng.uniform(0, 6)) for k in range(1, 8))
    x = torch.from_numpy(x.astype(np.float32)).unsqueeze(0)
    hf = lambda e: (torch.fft.rfft(e[0]).abs()[4000:] ** 2).mean().item()   # bins above 4 kHz (1 Hz bins)
    err = {}
    for a in (0.0, 0.85):
        m = WaveNet(WaveNetConfig(layers=2, cycles=1, residual_channels=4, gate_channels=8, skip_channels=8,
                                  preemphasis=a))
        y = m.decode(m.encode(x))
        assert y.shape == x.shape and (y - x).abs().max() < 0.03
        err[a] = hf(y - x)
    assert 10 * np.log10(err[0.0] / err[0.85]) > 6


def test_band_postfilter_pulls_the_mel_onto_the_conditioning():
    """``band_postfilter``: a signal already at its conditioning is left as it is (the STFT round trip); one at
    half the conditioning's level is scaled by exactly 2 (every band's ratio is 2); noise added to a tone is
    taken out band by band (the log-mel error to the tone's falls with each pass); bad shapes are refused."""
    from arsound.audio.features import MelSpectrogram, band_postfilter, normalize_mel

    fe = MelSpectrogram(sr=16000, n_fft=1024, hop=256, n_mels=80)
    t = torch.arange(24 * 256) / 16000
    tone = 0.3 * torch.sin(2 * torch.pi * 440 * t) + 0.2 * torch.sin(2 * torch.pi * 1250 * t)
    tone = tone[None]
    c = normalize_mel(fe(tone)[..., :24])
    torch.testing.assert_close(band_postfilter(tone, c, fe, passes=3), tone, atol=1e-4, rtol=0)
    torch.testing.assert_close(band_postfilter(0.5 * tone, c, fe, passes=1), tone, atol=2e-3, rtol=0)  # DC bin: 1
    assert torch.equal(band_postfilter(0.5 * tone, c, fe, passes=0), 0.5 * tone)
    noisy = tone + 0.05 * torch.randn(tone.shape, generator=torch.Generator().manual_seed(0))

    def err(y):
        return (fe(y) - fe(tone)).abs().mean().item()

    errors = [err(band_postfilter(noisy, c, fe, passes=k)) for k in (0, 1, 2, 8)]
    assert errors == sorted(errors, reverse=True) and errors[-1] < 0.3 * errors[0], errors
    for bad in (dict(y=tone[:, :-1], c=c), dict(y=tone, c=c[:, :40]), dict(y=tone, c=c, passes=-1)):
        with pytest.raises(ValueError, match="band_postfilter"):
            band_postfilter(bad["y"], bad["c"], fe, bad.get("passes", 1))
