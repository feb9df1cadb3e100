"""Vocoder crops are aligned with the whole clip's mel frames (``data/clips.py``)."""
from __future__ import annotations

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
