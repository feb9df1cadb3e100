"""Audio I/O: lossless/lossy round trips, mixdown, soxr resampling, levels, streaming, and one-line errors."""
import numpy as np
import pytest
import soundfile as sf
import torch

from arsound.audio.io import (AudioError, iter_chunks, load_audio, normalize_loudness, normalize_peak, resample,
                              save_audio, trim_silence)

SR = 16000


def sine(freq, seconds=0.5, sr=SR, amp=0.5):
    t = np.arange(int(seconds * sr)) / sr
    return (amp * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def peak_freq(x, sr):
    spec = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    return np.fft.rfftfreq(len(x), 1 / sr)[spec.argmax()]


@pytest.mark.parametrize("ext,subtype,tol", [(".wav", None, 1 / 32768 + 1e-7), (".wav", "FLOAT", 0.0),
                                             (".flac", None, 1 / 32768 + 1e-7)])
def test_lossless_round_trip(tmp_path, ext, subtype, tol):
    x = np.random.default_rng(0).uniform(-0.9, 0.9, 4000).astype(np.float32)
    path = save_audio(tmp_path / f"a{ext}", x, SR, subtype=subtype)
    y, sr = load_audio(path)
    assert sr == SR and y.dtype == np.float32 and y.shape == x.shape
    assert np.abs(y - x).max() <= tol
    assert [p.name for p in tmp_path.iterdir()] == [f"a{ext}"]  # no temp file left behind


def test_ogg_round_trip_is_close(tmp_path):
    x = sine(440, 1.0)
    y, sr = load_audio(save_audio(tmp_path / "a.ogg", x, SR))
    assert sr == SR and abs(len(y) - len(x)) <= 1
    n = min(len(x), len(y))
    snr = 10 * np.log10(np.sum(x[:n] ** 2) / np.sum((x[:n] - y[:n]) ** 2))
    assert snr > 20  # Vorbis is lossy: a clean sine survives at > 20 dB SNR
    assert abs(peak_freq(y, sr) - 440) < 5


def test_tensor_in_tensor_out_and_stereo(tmp_path):
    left, right = sine(300), sine(500, amp=0.25)
    stereo = torch.from_numpy(np.stack([left, right]))  # [C, T]
    path = save_audio(tmp_path / "s.wav", stereo, SR, subtype="FLOAT")
    assert sf.info(str(path)).channels == 2
    both, _ = load_audio(path, mono=False)
    np.testing.assert_array_equal(both, stereo.numpy())
    mono, _ = load_audio(path, as_tensor=True)
    assert isinstance(mono, torch.Tensor) and mono.shape == (len(left),)
    torch.testing.assert_close(mono, torch.from_numpy((left + right) / 2))


@pytest.mark.parametrize("orig,target,freq", [(44100, 16000, 1000.0), (8000, 16000, 440.0), (16000, 22050, 3000.0)])
def test_resampling_keeps_frequency_and_length_ratio(tmp_path, orig, target, freq):
    x = sine(freq, 1.0, sr=orig)
    path = save_audio(tmp_path / "r.wav", x, orig, subtype="FLOAT")
    y, sr = load_audio(path, sr=target)
    assert sr == target
    assert abs(len(y) - len(x) * target / orig) <= 1
    assert abs(peak_freq(y, sr) - freq) <= 2.0  # 1 s -> 1 Hz bins
    assert np.abs(y[500:-500]).max() == pytest.approx(0.5, abs=0.01)  # no gain change


def test_resample_is_identity_at_same_rate():
    x = sine(100)
    assert resample(x, SR, SR) is x


def test_normalize_peak_and_loudness():
    x = np.stack([sine(200, amp=0.1), np.zeros(8000, np.float32)])
    y = normalize_peak(x, 0.9)
    assert np.abs(y[0]).max() == pytest.approx(0.9, rel=1e-6) and not y[1].any()
    z = normalize_loudness(torch.from_numpy(x), -20.0)
    rms_db = 20 * torch.log10(z[0].pow(2).mean().sqrt())
    assert rms_db.item() == pytest.approx(-20.0, abs=1e-3) and not z[1].any()
    capped = normalize_loudness(x[:1], 0.0, max_peak=0.5)  # a sine at 0 dB RMS would peak at 1.41
    assert np.abs(capped).max() == pytest.approx(0.5, rel=1e-5)


def test_trim_silence_cuts_leading_and_trailing_quiet():
    x = np.concatenate([np.zeros(SR, np.float32), sine(440, 1.0), 1e-4 * sine(440, 1.0)])
    y = trim_silence(x, SR, top_db=40)
    assert SR - 1 <= len(y) <= SR + 2048  # the tone, give or take one frame at each end
    assert y[-1] == 0.0  # faded out, no click


def test_iter_chunks_streams_blocks_with_overlap(tmp_path):
    x = np.random.default_rng(1).uniform(-1, 1, 10_000).astype(np.float32)
    path = save_audio(tmp_path / "long.wav", x, 1000, subtype="FLOAT")  # 10 s at 1 kHz
    chunks = list(iter_chunks(path, seconds=3.0, overlap=0.5))
    assert [len(c) for c in chunks][:-1] == [3000] * (len(chunks) - 1)
    for i, c in enumerate(chunks):  # block i starts at i * (n - m)
        np.testing.assert_array_equal(c, x[i * 2500: i * 2500 + 3000])
    assert i * 2500 + len(chunks[-1]) == len(x)


# ---- errors: one line, naming the file ------------------------------------------------------------------
def _bad_files(tmp_path):
    junk = tmp_path / "junk.wav"
    junk.write_text("this is not audio")
    empty = tmp_path / "empty.wav"
    sf.write(str(empty), np.zeros(0, np.float32), SR)
    nan = tmp_path / "nan.wav"
    x = sine(100)
    x[10] = np.nan
    sf.write(str(nan), x, SR, subtype="FLOAT")
    short = save_audio(tmp_path / "short.wav", sine(100, 0.1), SR)
    return {"missing": (tmp_path / "nope.flac", {}, "no such file"),
            "directory": (tmp_path, {}, "not a file"),
            "junk": (junk, {}, "not a readable audio file"),
            "empty": (empty, {}, "empty (0 samples)"),
            "nan": (nan, {}, "NaN/Inf"),
            "short": (short, {"min_seconds": 1.0}, "0.10 s long, need at least 1.00 s")}


@pytest.mark.parametrize("case", ["missing", "directory", "junk", "empty", "nan", "short"])
def test_load_errors_name_the_file(tmp_path, case):
    path, kwargs, needle = _bad_files(tmp_path)[case]
    with pytest.raises(AudioError) as e:
        load_audio(path, **kwargs)
    msg = str(e.value)
    assert str(path) in msg and needle in msg and "\n" not in msg
    assert isinstance(e.value, ValueError)  # the CLI reports ValueErrors as one-line user errors


@pytest.mark.parametrize("case", ["missing", "junk", "empty", "nan"])
def test_iter_chunks_errors_name_the_file(tmp_path, case):
    path, _, needle = _bad_files(tmp_path)[case]
    with pytest.raises(AudioError, match="cannot read audio") as e:
        list(iter_chunks(path, 0.01))
    assert str(path) in str(e.value) and needle in str(e.value)


def test_save_errors(tmp_path):
    with pytest.raises(AudioError, match=r"cannot save audio '.*a\.mp4': unsupported extension '\.mp4'"):
        save_audio(tmp_path / "a.mp4", sine(100), SR)
    with pytest.raises(AudioError, match="NaN/Inf"):
        save_audio(tmp_path / "b.wav", np.full(10, np.inf, np.float32), SR)
    assert list(tmp_path.iterdir()) == []
