"""Vocoder crops are aligned with the whole clip's mel frames (``data/clips.py``)."""
from __future__ import annotations

import pytest
import soundfile as sf
import torch

from arsound.audio.features import normalize_mel, preemphasis
from arsound.data.clips import VocoderDataset, open_split
from tests.fakes import fake_prepared, tiny_vocoder


def test_crop_mel_equals_whole_clip_frames(tmp_path):
    """Training crops are conditioned on exactly the frames vocode() computes from the whole clip."""
    fake_prepared(tmp_path, "chorales", [{"instrument": "organ"}, {"instrument": "strings"}])
    model = tiny_vocoder()
    hop = model.config.hop_length
    base = open_split("chorales", "valid", tmp_path)
    ds = VocoderDataset(base, "valid", 4, model.mel_spectrogram(center=False), lambda w, c: {"x": w[1:]},
                       with_label=True)
    item = ds[0]
    e = ds.base.items[0]
    wav = torch.from_numpy(sf.read(ds.base.base / e["path"], dtype="float32")[0])
    whole = normalize_mel(model.mel_spectrogram()(wav))                   # (M, T // hop + 1), centred
    pick = ((e["samples"] - ds.segment) // hop + 1) // 2                  # the middle crop of a held-out split
    assert item["c"].shape == (80, 4)
    torch.testing.assert_close(item["c"], whole[:, pick:pick + 4], atol=1e-4, rtol=1e-4)
    torch.testing.assert_close(item["x"], wav[pick * hop:(pick + 4) * hop])
    assert item["g"].item() == 0
    # the model's own conditioning of the whole clip is the same frames (sample n -> frame n // hop)
    torch.testing.assert_close(model.mel_condition(wav[None])[0], whole[:, :len(wav) // hop])
    # a pre-emphasized target sees its true predecessor: the crop's x equals the whole file's, sliced
    pre = VocoderDataset(base, "valid", 4, model.mel_spectrogram(center=False),
                         lambda w, c: {"x": preemphasis(w, 0.85)[1:]},
                         with_label=True)[0]
    torch.testing.assert_close(pre["x"], preemphasis(wav, 0.85)[pick * hop:(pick + 4) * hop])


def test_two_soundfont_chorales_open_with_their_instrument(tmp_path):
    fake_prepared(tmp_path, "chorales-2sf", [{"instrument": "organ", "soundfont": "fluidr3"},
                                             {"instrument": "organ", "soundfont": "timgm6mb"}])
    split = open_split("chorales-2sf", "valid", tmp_path)
    assert split.classes == ["organ"] and split[0][1].item() == 0


def test_augment_level_and_bandwidth():
    """Gains land in their range (the peak kept below 1), a low-pass leaves little above its cutoff, the draws
    come from the global torch RNG (so a resumed run replays them), and no augmentation is the plain crop."""
    from arsound.data.clips import Augment

    sr, T = 16000, 4096
    g = torch.Generator().manual_seed(0)
    wav = 0.1 * torch.randn(T, generator=g)                                    # white: energy at every frequency
    aug = Augment(gain_db=(-30.0, 0.0))
    torch.manual_seed(1)
    gains = [20 * torch.log10(aug(wav, sr).abs().max() / wav.abs().max()).item() for _ in range(50)]
    assert -30 <= min(gains) < -20 and -10 < max(gains) <= 0.01
    loud = Augment(gain_db=(20.0, 20.0))(wav, sr)
    assert loud.abs().max().item() == pytest.approx(0.999, abs=1e-6)         # capped below full scale
    lp = Augment(lowpass=1.0, cutoff=(4000.0, 4000.0))
    y = lp(wav, sr)
    f = torch.fft.rfftfreq(T, 1 / sr)
    p_in, p_out = torch.fft.rfft(wav).abs() ** 2, torch.fft.rfft(y).abs() ** 2
    assert p_out[f > 4250].sum() < 1e-6 * p_in[f > 4250].sum()
    torch.testing.assert_close(p_out[f < 3700].sum(), p_in[f < 3700].sum(), rtol=1e-4, atol=0)
    torch.manual_seed(7)
    a = [Augment(gain_db=(-10.0, 0.0), lowpass=0.5)(wav, sr) for _ in range(4)]
    torch.manual_seed(7)
    b = [Augment(gain_db=(-10.0, 0.0), lowpass=0.5)(wav, sr) for _ in range(4)]
    assert all(torch.equal(x, z) for x, z in zip(a, b))
    assert not Augment().active and Augment(lowpass=0.1).active


def test_open_split_takes_several_languages(tmp_path):
    from tests.fakes import fake_prepared

    fake_prepared(tmp_path, "speech", [{"language": "en", "speaker": "a"}, {"language": "es", "speaker": "b"},
                                       {"language": "fr", "speaker": "c"}])
    assert {e["labels"]["language"] for e in open_split("speech", "train", tmp_path, "en,fr").items} == {"en", "fr"}
    assert {e["labels"]["language"] for e in open_split("speech", "train", tmp_path, "es").items} == {"es"}
    assert len(open_split("speech", "train", tmp_path, "").items) == 6
