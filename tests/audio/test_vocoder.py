"""``vocode`` on a tiny untrained vocoder: lengths, mel input, labels by name, the config's temperature, and
vocoders saved by arsound 0.1 (front end in a ``vocoder.json``) loading into the one config."""
from __future__ import annotations

import json

import pytest
import torch

from arsound.audio.vocoder import vocode
from arsound.core.checkpoint import CheckpointError, load, save_pretrained
from tests.fakes import tiny_vocoder, tone


def test_vocode_lengths_inputs_and_defaults():
    model = tiny_vocoder(num_speakers=2, names=("choir", "organ"))
    wav = torch.from_numpy(tone(0.1, 330, 0))                              # 1600 samples = 6.25 frames
    y = vocode(model, wav=wav, progress=False)
    assert y.shape == (6 * 256,) and torch.isfinite(y).all()
    assert torch.equal(y, vocode(model, wav=wav, g="choir", progress=False))   # label 0 by default, by name
    assert not torch.equal(y, vocode(model, wav=wav, g="organ", progress=False))
    batch = vocode(model, wav=torch.stack([wav, wav]), g=torch.tensor([0, 1]), progress=False)
    assert batch.shape == (2, 6 * 256) and not torch.equal(batch[0], batch[1])
    assert torch.equal(batch, vocode(model, wav=torch.stack([wav, wav]), g=torch.tensor([0, 1]), progress=False))
    mel = model.mel_spectrogram()(wav)[:, :6]                             # the same frames, given as a mel
    assert torch.equal(vocode(model, mel=mel, progress=False), y)
    model.config.temperature = 0.5                                        # the config's temperature is the default
    assert torch.equal(vocode(model, wav=wav, progress=False), vocode(model, wav=wav, temperature=0.5, progress=False))
    with pytest.raises(ValueError, match="exactly one of wav or mel"):
        vocode(model, progress=False)


def test_a_vocoder_saved_by_arsound_0_1_loads(tmp_path):
    """The 0.1 layout: no front end in config.json, a vocoder.json beside it; it loads into the one config,
    and a vocoder.json that contradicts config.json is refused in one line."""
    folder = tmp_path / "old"
    save_pretrained(tiny_vocoder(num_speakers=2, names=("choir", "organ")), folder)
    meta = json.loads((folder / "config.json").read_text())
    for k in ("n_fft", "fmin", "fmax", "speaker_names", "temperature"):
        del meta["config"][k]
    meta["arsound_version"] = "0.1.0"
    (folder / "config.json").write_text(json.dumps(meta))
    legacy = {"mel": {"n_fft": 512, "hop": 256, "n_mels": 80, "fmin": 50.0, "fmax": 7600.0},
              "classes": ["choir", "organ"], "label": "instrument", "temperature": 0.4}
    (folder / "vocoder.json").write_text(json.dumps(legacy))
    cfg = load(folder).config
    assert (cfg.n_fft, cfg.fmin, cfg.fmax, cfg.speaker_names, cfg.temperature) == (512, 50.0, 7600.0,
                                                                                   ("choir", "organ"), 0.4)
    (folder / "vocoder.json").write_text(json.dumps({**legacy, "mel": {**legacy["mel"], "hop": 128}}))
    with pytest.raises(CheckpointError, match=r"config does not fit WaveNetConfig .*vocoder.json: hop 128") as e:
        load(folder)
    assert "\n" not in str(e.value)


def test_match_level_gives_the_output_the_inputs_mel_energy(tmp_path):
    """``match_level``: the output's mel energy equals the input's (one gain, the same draws), at any input
    level; the streaming file path agrees with the in-memory one."""
    from arsound.audio.features import mel_energy
    from arsound.audio.io import load_audio, save_audio
    from arsound.audio.vocoder import vocode_file
    from tests.fakes import SR

    model = tiny_vocoder()
    wav = torch.from_numpy(tone(0.2, 330, 0))                             # 12 whole frames
    twice = model.mel_condition(2 * wav)
    torch.testing.assert_close(mel_energy(twice), 4 * mel_energy(model.mel_condition(wav)), rtol=1e-4, atol=0)
    for gain in (0.03, 0.001):                                             # -30 and -60 dB under the tone
        x = wav * gain
        raw = vocode(model, wav=x, progress=False)
        y = vocode(model, wav=x, progress=False, match_level=True)
        e_in, e_raw, e_out = (mel_energy(model.mel_condition(z)).item() for z in (x, raw, y))
        assert abs(e_raw / e_in - 1) > 0.5                                # untrained: far off the input's level
        assert e_out == pytest.approx(e_in, rel=1e-3)
        k = (y.abs().max() / raw.abs().max()).item()
        torch.testing.assert_close(y, raw * k, atol=1e-6, rtol=1e-4)      # one gain on the same draws
    save_audio(tmp_path / "in.wav", x.numpy(), SR, subtype="FLOAT")
    n = vocode_file(model, tmp_path / "in.wav", tmp_path / "out.wav", progress=False, match_level=True)
    out = load_audio(tmp_path / "out.wav", sr=SR, as_tensor=True)[0]
    assert n == y.shape[-1]
    torch.testing.assert_close(out, y, atol=2 / 32768, rtol=0)             # 16-bit file


def test_postfilter_in_memory_streamed_and_refused(tmp_path):
    """``postfilter=k``: ``vocode`` is its raw output through ``band_postfilter`` (clipped); the file path, which
    filters a block at a time with context, equals filtering the whole output at once (also across many small
    blocks); a bad count, or with ``match_level``, is refused in one line."""
    import numpy as np
    import soundfile as sf

    from arsound.audio.features import band_postfilter
    from arsound.audio.io import load_audio, save_audio
    from arsound.audio.vocoder import postfiltered_blocks, vocode_file
    from tests.fakes import SR

    model = tiny_vocoder()
    fe = model.mel_spectrogram()
    wav = torch.from_numpy(tone(0.3, 330, 0))                             # 18 whole frames
    raw = vocode(model, wav=wav, progress=False)
    y = vocode(model, wav=wav, progress=False, postfilter=3)
    c = model.mel_condition(wav[None])
    torch.testing.assert_close(y, band_postfilter(raw[None], c, fe, 3)[0].clamp(-1, 1))
    assert (fe(y) - fe(wav)).abs().mean() < 0.5 * (fe(raw) - fe(wav)).abs().mean()   # nearer the input's mel
    save_audio(tmp_path / "in.wav", wav.numpy(), SR, subtype="FLOAT")
    n = vocode_file(model, tmp_path / "in.wav", tmp_path / "out.wav", progress=False, postfilter=3)
    out = load_audio(tmp_path / "out.wav", sr=SR, as_tensor=True)[0]
    assert n == y.shape[-1]
    torch.testing.assert_close(out, y, atol=2 / 32768, rtol=0)             # 16-bit file
    long = 0.3 * torch.randn(1, 40 * 256, generator=torch.Generator().manual_seed(1))
    cl = model.mel_condition(torch.from_numpy(tone(40 * 256 / SR, 220, 1))[None])
    sf.write(tmp_path / "raw.wav", long[0].numpy(), SR, subtype="FLOAT")
    (tmp_path / "mel.f32").write_bytes(cl[0].t().contiguous().numpy().astype(np.float32).tobytes())
    pieces = list(postfiltered_blocks(model, tmp_path / "raw.wav", tmp_path / "mel.f32", passes=2, block=7))
    assert [p.shape[-1] for p in pieces] == [7 * 256] * 5 + [5 * 256]
    torch.testing.assert_close(torch.cat(pieces, -1), band_postfilter(long, cl, fe, 2).clamp(-1, 1),
                               atol=1e-5, rtol=0)
    for bad, match in ((dict(postfilter=-1), "number of passes"), (dict(postfilter=True), "number of passes"),
                       (dict(postfilter=2, match_level=True), "drop match_level")):
        with pytest.raises(ValueError, match=match) as e:
            vocode(model, wav=wav, progress=False, **bad)
        assert "\n" not in str(e.value)


def test_postfilter_default_is_the_models_choice(tmp_path):
    """Left out, the post-filter passes are the config's (``config.postfilter``, saved and loaded with the model):
    ``vocode``, ``vocode_file`` and ``compare_with_griffin_lim`` run them, ``postfilter=0`` gives the raw output,
    and ``match_level`` alone drops them; a model without the field filters nothing."""
    from arsound.audio.features import band_postfilter
    from arsound.audio.io import load_audio, save_audio
    from arsound.audio.vocoder import compare_with_griffin_lim, griffin_lim_of, postfilter_passes, vocode_file
    from tests.fakes import SR

    plain = tiny_vocoder()
    assert postfilter_passes(plain) == 0
    wav = torch.from_numpy(tone(0.3, 330, 0))
    raw = vocode(plain, wav=wav, progress=False)
    plain.config.postfilter = 3
    save_pretrained(plain, tmp_path / "voc")
    model = load(tmp_path / "voc")
    assert model.config.postfilter == 3 and postfilter_passes(model) == 3
    assert postfilter_passes(model, 0) == 0 and postfilter_passes(model, match_level=True) == 0
    y = vocode(model, wav=wav, progress=False)
    torch.testing.assert_close(y, vocode(model, wav=wav, progress=False, postfilter=3), atol=0, rtol=0)
    torch.testing.assert_close(vocode(model, wav=wav, progress=False, postfilter=0), raw, atol=0, rtol=0)
    assert not torch.equal(y, raw)
    torch.testing.assert_close(vocode(model, wav=wav, progress=False, match_level=True),
                               vocode(model, wav=wav, progress=False, match_level=True, postfilter=0), atol=0, rtol=0)
    gl, _ = compare_with_griffin_lim(model, wav, y)                       # Griffin-Lim gets the same 3 passes
    torch.testing.assert_close(gl, griffin_lim_of(wav[:y.shape[-1]], model.mel_spectrogram(), postfilter=3))
    assert not torch.allclose(gl, griffin_lim_of(wav[:y.shape[-1]], model.mel_spectrogram()))
    save_audio(tmp_path / "in.wav", wav.numpy(), SR, subtype="FLOAT")
    vocode_file(model, tmp_path / "in.wav", tmp_path / "out.wav", progress=False)
    out = load_audio(tmp_path / "out.wav", sr=SR, as_tensor=True)[0]
    torch.testing.assert_close(out, y, atol=2 / 32768, rtol=0)             # 16-bit file
    c = model.mel_condition(wav[None])
    torch.testing.assert_close(y, band_postfilter(raw[None], c, model.mel_spectrogram(), 3)[0].clamp(-1, 1))
    model.config.postfilter = -2                                         # a hand-edited config: one line
    with pytest.raises(ValueError, match=r"the model's config.postfilter must be a number of passes >= 0, got -2"):
        vocode(model, wav=wav, progress=False)
