"""The demo's handlers as plain functions: lengths, seeds, per-level outputs, interrupting, model discovery, and
every bad input refused in one line with nothing left in the output folder."""
from __future__ import annotations

import json
import shutil
import threading

import numpy as np
import pytest
import soundfile as sf
import torch

from demo.handlers import common, images, music, tokenizer, vocoder
from tests.fakes import SR, music as music_clip

SPEECH = "wavenet-speech-en"


def wav_file(path, x, sr=SR):
    sf.write(path, np.asarray(x, dtype=np.float32), sr)
    return str(path)


def files_in(root):
    return sorted(p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file())


def frames(path):
    return sf.info(str(path)).frames


# ---- music ------------------------------------------------------------------------------------------------------
def test_music_lengths_levels_codes_and_seeds(saved_music, tmp_path):
    kw = dict(temperature=[1.0, 0.9], out_root=tmp_path / "out")
    a = music.generate_music(str(saved_music), 0.05, seed=3, n=2, **kw)
    b = music.generate_music(str(saved_music), 0.05, seed=3, n=2, **kw)
    c = music.generate_music(str(saved_music), 0.05, seed=4, n=2, **kw)
    assert a.folder != b.folder and a.level == 0 and set(a.levels) == {1, 0}
    for clip in a.clips + a.levels[1] + a.levels[0]:
        assert frames(clip) == round(0.05 * SR)
    assert all(x.read_bytes() == y.read_bytes() for x, y in zip(a.clips + a.codes, b.clips + b.codes))
    assert a.codes[0].read_bytes() != c.codes[0].read_bytes()
    assert a.spectrograms[0].shape == (160, 480, 3) and a.spectrograms[0].dtype == np.uint8


def test_music_guidance_reaches_the_upsampler(saved_music, tmp_path):
    """The guidance and drafts boxes: the model's own when empty; a value changes the upsampled level only and is
    reported."""
    from arsound.audio.codes import load_codes

    own = music.generate_music(str(saved_music), 0.05, seed=2, out_root=tmp_path)
    guided = music.generate_music(str(saved_music), 0.05, seed=2, guidance=2.0, out_root=tmp_path)
    a, b = load_codes(own.codes[0]), load_codes(guided.codes[0])
    assert (a.codes[1] == b.codes[1]).all() and not (a.codes[0] == b.codes[0]).all()
    assert "guidance 2" in guided.message and "guidance" not in own.message
    drafted = music.generate_music(str(saved_music), 0.05, seed=2, drafts=3, out_root=tmp_path)
    c = load_codes(drafted.codes[0])
    assert (a.codes[1] == c.codes[1]).all() and not (a.codes[0] == c.codes[0]).all()
    assert "drafts 3" in drafted.message and "drafts" not in own.message


def test_music_preview_then_upsample_keeps_the_top_codes(saved_music, tmp_path):
    from arsound.audio.codes import load_codes

    preview = music.generate_music(str(saved_music), 0.1, seed=1, stop_level=1, out_root=tmp_path)
    assert preview.level == 1 and set(preview.levels) == {1}
    full = music.generate_music(str(saved_music), 0.1, seed=2, codes=str(preview.codes[0]), out_root=tmp_path)
    top, done = load_codes(preview.codes[0]), load_codes(full.codes[0])
    assert torch.equal(top.codes[1], done.codes[1]) and len(top.codes[0]) == 0 and len(done.codes[0]) == 4 * len(
        top.codes[1])
    assert frames(full.clips[0]) == round(0.1 * SR)


def test_music_progress_and_interrupt(saved_music, tmp_path):
    seen = []
    music.generate_music(str(saved_music), 0.05, out_root=tmp_path / "a", report=lambda f, d: seen.append((f, d)))
    assert seen[-1][0] == 1.0 and "tokens/s" in seen[-1][1] and "s left" in seen[-1][1]
    stop = threading.Event()

    def report(fraction, text):
        stop.set()                                  # pressed during the first level

    with pytest.raises(common.Interrupted, match="interrupted at level 1"):
        music.generate_music(str(saved_music), 0.5, out_root=tmp_path / "b", report=report, stop=stop)
    assert not (tmp_path / "b").exists() or files_in(tmp_path / "b") == []


def test_music_bad_inputs_one_line_nothing_written(saved_music, tmp_path):
    from arsound.audio.codes import CodesFile, save_codes

    out = tmp_path / "out"
    text = tmp_path / "notes.wav"
    text.write_text("not audio at all\n")
    silent = wav_file(tmp_path / "silent.wav", np.zeros(SR // 2))
    short = wav_file(tmp_path / "short.wav", music_clip(0.2).numpy())
    hour = tmp_path / "hour.wav"
    sf.write(hour, np.zeros(3600 * 100, dtype=np.int16), 100, subtype="PCM_16")   # an hour at 100 Hz (small file)
    foreign = tmp_path / "foreign.npz"
    save_codes(foreign, CodesFile(codes=[torch.zeros(0, dtype=torch.long), torch.zeros(8, dtype=torch.long)],
                                  hops=[4, 16], sample_rate=SR, length=128, model="other", model_sha256="0" * 16,
                                  num_codes=16))
    not_codes = tmp_path / "junk.npz"
    not_codes.write_bytes(b"PK\x03\x04 not really a zip")
    cases = [(dict(prompt=str(text)), "not a readable audio file"),
             (dict(prompt=silent), "silent"),
             (dict(prompt=str(hour)), "60.0 min long"),
             (dict(prompt=short, prompt_seconds=0.5), "longer than the clip"),
             (dict(prompt=short, prompt_seconds=0.2, seconds=0.1), "shorter than the 0.20 s given"),
             (dict(codes=str(foreign)), "was made by tokenizer other"),
             (dict(codes=str(not_codes)), "not an arsound codes file"),
             (dict(n=9), "number of clips"),
             (dict(stop_level=5), "this hierarchy samples levels"),
             (dict(instrument="banjo"), "unknown instrument"),
             (dict(guidance=-1), "guidance must be a finite number >= 0"),
             (dict(guidance=float("inf")), "guidance must be a finite number >= 0"),
             (dict(drafts=0), "number of drafts must be a whole number >= 1"),
             (dict(drafts=2.5), "number of drafts must be a whole number >= 1"),
             (dict(drafts="inf"), "number of drafts must be a whole number >= 1"),
             (dict(drafts=float("nan")), "number of drafts must be a whole number >= 1")]
    for kw, match in cases:
        kw = {"seconds": 0.5, **kw}
        with pytest.raises(common.USER_ERRORS, match=match) as e:
            music.generate_music(str(saved_music), kw.pop("seconds"), out_root=out, **kw)
        assert "\n" not in common.one_line(e.value)
    assert not out.exists() or files_in(out) == []


def test_music_models_come_from_the_registry_by_config(saved_music, tmp_path, monkeypatch):
    root = tmp_path / "ckpts"
    shutil.copytree(saved_music, root / "tiny-music")
    (root / "broken").mkdir()
    (root / "registry.json").write_text(json.dumps({
        "tiny-music": {"path": "tiny-music", "description": "test hierarchy"},
        "broken": {"path": "broken", "description": "no config"},
        "digits": {"path": str(common.checkpoints_dir() / "pixelsnail-mnist"), "description": "an image model"}}))
    shipped = common.checkpoints_dir()
    monkeypatch.setenv("ARSOUND_CHECKPOINTS", str(root))
    assert music.music_models() == {"tiny-music": "test hierarchy"}
    assert list(images.image_models()) == ["digits"]
    assert music.model_info("tiny-music")["instruments"] == ["organ", "piano"]
    monkeypatch.setenv("ARSOUND_CHECKPOINTS", str(shipped))
    with pytest.raises(common.DemoError, match="not a music hierarchy"):
        music.load_generator("pixelsnail-mnist")


# ---- vocoder, tokenizer -----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def tiny_vocoder(tmp_path_factory):
    """An untrained 2-layer vocoder (the shipped 12-layer ones take tens of seconds on a busy CPU)."""
    from arsound.core.checkpoint import save_pretrained
    from tests.fakes import tiny_vocoder

    return str(save_pretrained(tiny_vocoder(), tmp_path_factory.mktemp("voc") / "tiny-vocoder"))


def test_vocoder_side_by_side(tiny_vocoder, tmp_path):
    assert {f"{SPEECH} held-out clip", "wavenet-chorales held-out clip"} <= set(vocoder.examples())
    assert {SPEECH, "wavenet-chorales"} <= set(vocoder.vocoder_models())
    clip = wav_file(tmp_path / "in.wav", sf.read(vocoder.examples()[f"{SPEECH} held-out clip"])[0][:SR // 5])
    a = vocoder.vocode_clip(tiny_vocoder, clip, seed=1, out_root=tmp_path / "out")
    b = vocoder.vocode_clip(tiny_vocoder, clip, seed=1, out_root=tmp_path / "out")
    n = (SR // 5) // 256 * 256
    assert frames(a.wavenet) == frames(a.griffin_lim) == n
    assert a.wavenet.read_bytes() == b.wavenet.read_bytes()
    assert set(a.scores) == {"wavenet", "griffin_lim"} and all(v["lsd_db"] > 0 for v in a.scores.values())
    assert set(a.spectrograms) == {"input", "wavenet", "griffin_lim"} and "LSD" in a.message
    from arsound.audio.vocoder import vocode
    from arsound.core.checkpoint import load

    c = vocoder.vocode_clip(tiny_vocoder, clip, seed=1, postfilter=2, out_root=tmp_path / "out")   # both filtered
    wav = torch.from_numpy(sf.read(clip, dtype="float32")[0])
    y = vocode(load(tiny_vocoder), wav=wav, seed=1, progress=False, postfilter=2)
    np.testing.assert_allclose(sf.read(c.wavenet)[0], y.numpy(), atol=1 / 32768 + 1e-6)
    assert "2 post-filter passes" in c.message and c.scores["griffin_lim"] != a.scores["griffin_lim"]
    chosen = tmp_path / "chosen"                                   # a model whose config chose 2 passes: the default
    shutil.copytree(tiny_vocoder, chosen)
    meta = json.loads((chosen / "config.json").read_text())
    meta["config"]["postfilter"] = 2
    (chosen / "config.json").write_text(json.dumps(meta))
    d = vocoder.vocode_clip(str(chosen), clip, seed=1, postfilter=" ", out_root=tmp_path / "out")   # the textbox
    assert d.wavenet.read_bytes() == c.wavenet.read_bytes() and d.scores == c.scores
    e = vocoder.vocode_clip(str(chosen), clip, seed=1, postfilter="0", out_root=tmp_path / "out")
    assert e.wavenet.read_bytes() == a.wavenet.read_bytes() and "post-filter" not in e.message
    for bad in (-1, 1.5, 999, "two", "inf", float("nan")):
        with pytest.raises(common.DemoError, match="post-filter passes"):
            vocoder.vocode_clip(tiny_vocoder, clip, postfilter=bad, out_root=tmp_path / "bad")
    with pytest.raises(common.DemoError, match="unknown example"):
        vocoder.vocode_clip(tiny_vocoder, example="nope", out_root=tmp_path / "bad")
    with pytest.raises(common.DemoError, match="upload or record"):
        vocoder.vocode_clip(tiny_vocoder, out_root=tmp_path / "bad")
    assert not (tmp_path / "bad").exists()


def test_tokenizer_levels_bitrate_si_sdr(tmp_path):
    clip = wav_file(tmp_path / "in.wav", music_clip(0.5).numpy())
    r = tokenizer.reconstruct("vqvae-chorales", clip, out_root=tmp_path / "out")
    assert [frames(p) for p in r.levels] == [SR // 2] * 3
    assert [row["bits_per_s"] for row in r.rows] == [2000 * 8, 500 * 8, 125 * 8]
    assert r.rows[0]["si_sdr_db"] > r.rows[2]["si_sdr_db"]          # the finest level reconstructs best
    with pytest.raises(common.DemoError, match="no upload"):
        tokenizer.reconstruct("vqvae-chorales", None, out_root=tmp_path / "bad")


# ---- images -----------------------------------------------------------------------------------------------------
def test_image_grid_completion_and_score(tmp_path):
    g = images.sample_grid("gated-pixelcnn-mnist", seed=5, count=4)
    assert g.shape == (4 * (2 * 29 + 1),) * 2 and g.dtype == np.uint8
    assert np.array_equal(g, images.sample_grid("gated-pixelcnn-mnist", seed=5, count=4))
    assert not np.array_equal(g, images.sample_grid("gated-pixelcnn-mnist", seed=6, count=4))
    page = np.full((280, 280, 4), 0, np.uint8)                     # a transparent sketch, a black stroke
    page[40:240, 130:150] = (0, 0, 0, 255)
    digit = images.to_digit({"composite": page}, (1, 28, 28), 2)
    assert digit.shape == (1, 1, 28, 28) and digit[0, 0, 10, 14] == 1 and digit[0, 0, 10, 3] == 0
    out = images.complete("gated-pixelcnn-mnist", {"composite": page}, seed=0, n=3)
    assert out.shape == (4 * (29 + 1), 4 * (4 * 29 + 1))          # one row: the kept half, 3 completions
    top = out[4:4 + 14 * 4]                                       # the kept half is the same in every picture
    assert all(np.array_equal(top[:, 4:4 + 112], top[:, 4 + 116 * k:4 + 116 * k + 112]) for k in range(4))
    s = images.score("gated-pixelcnn-mnist", {"composite": page})
    assert s.nll > 0 and abs(s.bits_per_dim - s.nll / (784 * np.log(2))) < 1e-9 and 0 <= s.percentile <= 100
    with pytest.raises(common.DemoError, match="blank"):
        images.score("gated-pixelcnn-mnist", np.zeros((280, 280, 4), np.uint8))
