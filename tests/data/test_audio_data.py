"""Audio data preparation: fixed splits, verified manifests, idempotent and resumable runs, one-line errors,
and the dataset reader. The generic runner is tested with a tiny synthetic dataset (no system tools needed);
the real `chorales` / `speech` sets are rendered (2-3 files) only where fluidsynth / ffmpeg are installed."""
import collections
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from arsound.cli import main as cli
from arsound.data import prepare as prep
from arsound.data.audio import AudioDataset, DataError, read_manifest, sha256_file, split_for, verify
from arsound.data.prepare import Item, prepare, program_for


# ---- fixed splits -------------------------------------------------------------------------------------
def test_split_is_a_fixed_function_of_the_name():
    assert [split_for(k) for k in ("bwv269", "bwv251", "bwv254", "digits/1")] == ["train", "test", "valid", "valid"]
    counts = collections.Counter(split_for(f"piece{i}") for i in range(5000))
    assert 0.77 < counts["train"] / 5000 < 0.83 and 0.08 < counts["valid"] / 5000 < 0.12
    assert 0.08 < counts["test"] / 5000 < 0.12


def test_program_choice_is_fixed_and_uses_every_program():
    assert [program_for(p) for p in ("bwv269", "bwv347", "bwv153.1")] == [48, 52, 19]
    assert set(program_for(f"bwv{i}") for i in range(100)) == set(prep.PROGRAMS)


# ---- the runner, on a synthetic dataset -----------------------------------------------------------------
class Tones:
    """Ten 0.25 s sines (+ a little noise) at 16 kHz, two per batch; ``fail`` ids raise like an unrenderable piece."""
    name, batch = "tones", 2
    calls: list = []

    def __init__(self, src_dir=None, fail=(), **_):
        self.src_dir, self.fail = Path(src_dir), set(fail)

    def check(self):
        pass

    def settings(self):
        return {"sample_rate": 16000, "kind": "sine"}

    def items(self):
        out = []
        for i in range(10):
            src = self.src_dir / f"tone{i}.txt"
            if not src.exists():
                src.write_text(str(200 + 50 * i))
            out.append(Item(f"tone{i}", f"wav/tone{i}.wav", f"piece{i // 2}", src,
                            {"freq": 200 + 50 * i, "parity": i % 2}, "CC0", "test tones"))
        return out

    def make(self, items, tmp):
        Tones.calls.append([it.id for it in items])
        t = np.arange(4000) / 16000
        noise = np.random.default_rng(0).uniform(-0.01, 0.01, 4000)  # no two crops of a clip are equal
        return {it.id: ValueError("cannot render\nthis one") if it.id in self.fail else
                ((0.5 * np.sin(2 * np.pi * it.labels["freq"] * t) + noise).astype(np.float32), {"made": True})
                for it in items}


@pytest.fixture
def tones(tmp_path, monkeypatch):
    (tmp_path / "src").mkdir()
    monkeypatch.setitem(prep.DATASETS, "tones", Tones)
    Tones.calls = []

    def run(**kw):
        return prepare("tones", root=tmp_path / "data", progress=False, src_dir=tmp_path / "src", **kw)
    return run, tmp_path / "data" / "tones"


def test_manifest_lists_verified_files_with_splits_and_labels(tones):
    run, base = tones
    r = run(fail=["tone3"])
    m = json.loads((base / "manifest.json").read_text())
    assert r.made == 9 and [f["id"] for f in r.failed] == ["tone3"]
    assert m["failed"][0]["error"] == "ValueError: cannot render this one"  # one line
    assert [e["id"] for e in m["files"]] == [f"tone{i}" for i in range(10) if i != 3]
    for e in m["files"]:
        path = base / e["path"]
        assert sha256_file(path) == e["sha256"]
        x, sr = sf.read(str(path))
        assert sr == 16000 and len(x) == e["samples"] == 4000 and e["duration"] == 0.25
        assert e["split"] == split_for(f"piece{int(e['id'][4:]) // 2}")
        assert e["labels"]["made"] is True and e["credit"] == "test tones"
    assert m["totals"] == {"files": 9, "seconds": 2.25, "failed": 1}
    assert sorted(p.name for p in base.iterdir()) == ["manifest.json", "wav"]  # no temp files left
    assert verify("tones", base.parent) == []


def test_second_run_does_no_work_and_a_corrupt_file_is_remade(tones):
    run, base = tones
    run(fail=["tone3"])
    Tones.calls = []
    mtimes = {p: p.stat().st_mtime_ns for p in base.rglob("*.wav")}
    r = run(fail=["tone3"])
    assert Tones.calls == [] and r.made == 0 and r.verified == 9 and len(r.failed) == 1  # known failure not retried
    assert {p: p.stat().st_mtime_ns for p in base.rglob("*.wav")} == mtimes

    data = bytearray((base / "wav/tone5.wav").read_bytes())
    data[-1] ^= 0xFF  # one flipped sample: same size, different checksum
    (base / "wav/tone5.wav").write_bytes(bytes(data))
    assert verify("tones", base.parent) == ["wav/tone5.wav"]
    r = run(fail=["tone3"])
    assert Tones.calls == [["tone5"]] and r.made == 1 and r.verified == 8
    assert verify("tones", base.parent) == []

    Tones.calls = []
    r = run(force=True)  # --force redoes everything, including the former failure
    assert r.made == 10 and r.failed == [] and sum(map(len, Tones.calls)) == 10


def test_limit_then_full_run_resumes_and_changed_sources_are_remade(tones, tmp_path):
    run, base = tones
    assert run(limit=3).made == 3
    Tones.calls = []
    r = run()
    assert r.verified == 3 and r.made == 7 and [c[0] for c in Tones.calls][0] == "tone3"
    (tmp_path / "src" / "tone0.txt").write_text("999")  # the source changed: its output is stale
    Tones.calls = []
    assert run().made == 1 and Tones.calls == [["tone0"]]
    assert run(limit=2).verified == 2 and len(read_manifest("tones", base.parent)["files"]) == 10  # rest kept


def test_interrupted_run_keeps_finished_files(tones, monkeypatch):
    run, base = tones
    make = Tones.make

    def make_then_interrupt(self, items, tmp):
        if len(Tones.calls) == 2:
            raise KeyboardInterrupt
        return make(self, items, tmp)
    monkeypatch.setattr(Tones, "make", make_then_interrupt)
    with pytest.raises(KeyboardInterrupt):
        run()
    assert [e["id"] for e in read_manifest("tones", base.parent)["files"]] == ["tone0", "tone1", "tone2", "tone3"]
    assert sorted(p.name for p in base.iterdir()) == ["manifest.json", "wav"]
    monkeypatch.setattr(Tones, "make", make)
    r = run()
    assert r.verified == 4 and r.made == 6


def test_all_failing_is_an_error(tones):
    run, _ = tones
    with pytest.raises(DataError, match="every 'tones' file failed, e.g. tone0: ValueError: cannot render"):
        run(fail=[f"tone{i}" for i in range(10)])


# ---- the dataset reader ---------------------------------------------------------------------------------
def test_audio_dataset_crops_labels_and_filters(tones):
    run, base = tones
    run()
    root = base.parent
    train = AudioDataset("tones", "train", root=root, label="freq")
    every = [e for e in read_manifest("tones", root)["files"]]
    assert len(train) == sum(e["split"] == "train" for e in every)
    assert train.classes == sorted(e["labels"]["freq"] for e in every)  # all splits: same indices everywhere
    wav, y = train[0]
    assert wav.shape == (4000,) and wav.dtype == torch.float32
    assert train.classes[int(y)] == train.items[0]["labels"]["freq"]
    g = torch.Generator().manual_seed(0)
    crops = AudioDataset("tones", "train", root=root, segment=1000, align=256, generator=g)
    full, _ = AudioDataset("tones", "train", root=root)[0]
    for _ in range(5):
        c, y = crops[0]
        starts = [s for s in range(0, 3001, 256) if torch.equal(full[s:s + 1000], c)]
        assert c.shape == (1000,) and len(starts) == 1 and int(y) == -1  # aligned to the hop
    padded, _ = AudioDataset("tones", "train", root=root, segment=5000)[0]
    assert padded.shape == (5000,) and not padded[4000:].any()
    odd = AudioDataset("tones", "train", root=root, where={"parity": 1})
    assert all(e["labels"]["parity"] == 1 for e in odd.items)


def test_audio_dataset_errors(tones, tmp_path):
    run, base = tones
    with pytest.raises(DataError, match="no prepared 'tones' data at .*run `arsound data prepare tones"):
        AudioDataset("tones", root=base.parent)
    run()
    with pytest.raises(DataError, match="unknown split 'dev'"):
        AudioDataset("tones", "dev", root=base.parent)
    (base / "wav/tone1.wav").write_bytes(b"RIFF")
    split = read_manifest("tones", base.parent)["files"][1]["split"]
    with pytest.raises(DataError, match="differ from the manifest"):
        AudioDataset("tones", split, root=base.parent, verify=True)


# ---- missing tools and packages: one line naming what to install ----------------------------------------
def test_missing_system_tools_name_the_packages(tmp_path, monkeypatch):
    monkeypatch.setenv("PATH", str(tmp_path))  # no fluidsynth, no ffmpeg
    monkeypatch.setitem(__import__("sys").modules, "music21", None)  # import music21 -> ImportError
    with pytest.raises(DataError) as e:
        prepare("chorales", root=tmp_path / "d", progress=False, soundfont=None)
    msg = str(e.value)
    assert "\n" not in msg and "apt-get install fluidsynth" in msg and "pip install music21" in msg
    with pytest.raises(DataError) as e:
        prepare("speech", root=tmp_path / "d", progress=False, languages="en,fr", sounds_dir=tmp_path)
    assert str(e.value) == ("preparing 'speech' needs software that is not installed: apt-get install "
                            "asterisk-core-sounds-en-g722 asterisk-core-sounds-fr-g722 ffmpeg")
    assert not (tmp_path / "d").exists()  # nothing written


# ---- the real datasets, where their tools are installed -------------------------------------------------
HAVE_CHORALES = bool(shutil.which("fluidsynth")) and Path(prep.SOUNDFONT).is_file()
try:
    import music21  # noqa: F401
except ImportError:
    HAVE_CHORALES = False


@pytest.mark.skipif(not HAVE_CHORALES, reason="needs fluidsynth, fluid-soundfont-gm, music21 (error path tested above)")
def test_two_chorales_render_and_rerun_does_nothing(tmp_path, capsys):
    assert cli(["data", "prepare", "chorales", "--root", str(tmp_path), "--limit", "2", "--quiet"]) == 0
    assert "chorales: 2 files" in capsys.readouterr().out
    m = read_manifest("chorales", tmp_path)
    assert [e["id"] for e in m["files"]] == ["bwv269_strings", "bwv347_choir"]
    for e in m["files"]:
        x, sr = sf.read(str(tmp_path / "chorales" / e["path"]))
        assert sr == 16000 and x.ndim == 1 and 20 < e["duration"] < 60
        assert np.abs(x).max() == pytest.approx(0.891, abs=2e-3) and abs(x[-1]) < 1e-3  # peak-normalized, faded
        assert e["labels"]["program"] == program_for(e["labels"]["piece"]) and "Bach" in e["credit"]
    r = prepare("chorales", root=tmp_path, limit=2, progress=False)
    assert r.made == 0 and r.verified == 2


HAVE_SPEECH = bool(shutil.which("ffmpeg")) and any(Path(prep.SOUNDS_DIR, "en_US_f_Allison").glob("*.g722"))


@pytest.mark.skipif(not HAVE_SPEECH, reason="needs ffmpeg and asterisk-core-sounds-en-g722 (error path tested above)")
def test_three_prompts_decode_with_labels(tmp_path):
    r = prepare("speech", root=tmp_path, limit=3, languages="en", progress=False)
    assert r.made == 3 and r.failed == []
    m = read_manifest("speech", tmp_path)
    assert [e["labels"]["prompt"] for e in m["files"]] == ["activated", "added", "agent-alreadyon"]
    e = m["files"][0]
    assert e["labels"]["speaker"] == "allison" and e["licence"] == "CC-BY-SA-3.0" and "Allison Smith" in e["credit"]
    assert 0.5 < e["duration"] < 2.0 and sf.info(str(tmp_path / "speech" / e["path"])).samplerate == 16000
    assert prepare("speech", root=tmp_path, limit=3, languages="en", progress=False).made == 0


def test_chorale_list_is_deduplicated_and_all_programs_share_a_split():
    pytest.importorskip("music21")
    one = prep.Chorales().items()
    pieces = [it.split_key for it in one]
    assert len(pieces) == len(set(pieces)) == 350  # music21's 371-entry list names 20 pieces twice
    assert all(it.labels["program"] == program_for(it.split_key) for it in one)
    assert next(it for it in one if it.split_key == "bwv18.5-l").source.name == "bwv18.5-lz.mxl"
    every = prep.Chorales(all_programs=True).items()
    assert len(every) == 4 * 350 and len({it.id for it in every}) == len(every)
    assert {it.labels["instrument"] for it in every if it.split_key == "bwv269"} == set(prep.PROGRAMS.values())


# ---- rendering safeguards -------------------------------------------------------------------------------
def test_runaway_renderer_is_stopped(tmp_path):
    out = tmp_path / "grows.bin"
    writer = f"f = open({str(out)!r}, 'wb')\nwhile True: f.write(b'0' * 65536); f.flush()"
    with pytest.raises(DataError, match="output ran past 1 MB"):
        prep._run([__import__("sys").executable, "-c", writer], "renderer", watch=(out, 1_000_000))
    with pytest.raises(DataError, match="renderer: boom"):
        prep._run([__import__("sys").executable, "-c", "import sys; sys.exit('boom')"], "renderer")


def test_midi_voices_get_own_channels_and_program():
    pytest.importorskip("music21")
    from music21 import midi, note, stream, tempo

    score = stream.Score()
    for _ in range(2):  # two parts in unison, same instrument: music21 alone puts both on one channel
        part = stream.Part([tempo.MetronomeMark(number=60), note.Note("C4", quarterLength=4)])
        score.insert(0, part)
    mf = midi.translate.music21ObjectToMidiFile(score)
    prep._one_program_per_channel(mf, 52)
    on = [(e.channel, e.pitch) for t in mf.tracks for e in t.events
          if isinstance(e, midi.MidiEvent) and e.type == midi.ChannelVoiceMessages.NOTE_ON]
    programs = {e.data for t in mf.tracks for e in t.events
                if isinstance(e, midi.MidiEvent) and e.type == midi.ChannelVoiceMessages.PROGRAM_CHANGE}
    assert sorted(on) == [(1, 60), (2, 60)] and programs == {52}
    assert prep._midi_seconds(mf) == pytest.approx(5.0)  # 4 quarters at 60 bpm + music21's 1-beat end pad


def test_two_soundfont_chorales_pair_every_render_in_one_split(monkeypatch, capsys, tmp_path):
    pytest.importorskip("music21")
    one, two = prep.Chorales().items(), prep.ChoralesTwoFonts().items()
    assert len(two) == 2 * len(one) and len({it.id for it in two}) == len(two)
    for a, (f, t) in zip(one, zip(two[::2], two[1::2])):   # each piece: its FluidR3 render, then its TimGM6mb one
        assert (f.labels["soundfont"], t.labels["soundfont"]) == ("fluidr3", "timgm6mb")
        assert f.split_key == t.split_key == a.split_key and f.labels["program"] == t.labels["program"]
        assert f.out == f"wav/fluidr3/{a.id}.wav" and t.out == f"wav/timgm6mb/{a.id}.wav"
        assert "FluidR3" in f.credit and "TimGM6mb" in t.credit and "GPL-2" in t.licence
    assert prep.Chorales().settings()["soundfont"] == "FluidR3_GM.sf2"   # chorales' settings (and renders) unchanged
    monkeypatch.setitem(__import__("sys").modules, "pretty_midi", None)  # not installed
    with pytest.raises(DataError, match="pip install pretty_midi"):
        prep.ChoralesTwoFonts().check()
    assert cli(["data", "prepare", "chorales-2sf", "--soundfont", "x.sf2", "--root", str(tmp_path / "d")]) != 0
    assert "--soundfont applies to 'chorales' only" in capsys.readouterr().err and not (tmp_path / "d").exists()


HAVE_TWO_FONTS = HAVE_CHORALES and prep.pretty_midi_soundfont() is not None


@pytest.mark.skipif(not HAVE_TWO_FONTS, reason="needs fluidsynth, fluid-soundfont-gm, music21 and pretty_midi")
def test_one_chorale_renders_with_both_soundfonts(tmp_path):
    r = prepare("chorales-2sf", root=tmp_path, limit=2, progress=False)
    assert r.made == 2 and r.failed == []
    m = read_manifest("chorales-2sf", tmp_path)
    (f, t) = m["files"]
    assert f["split"] == t["split"] and f["labels"]["piece"] == t["labels"]["piece"] == "bwv269"
    assert "sha256:" in m["settings"]["soundfonts"]["timgm6mb"]
    x, y = (sf.read(str(tmp_path / "chorales-2sf" / e["path"]))[0] for e in (f, t))
    assert abs(len(x) - len(y)) < 2 * 16000                    # one score: about the same length (reverb tails differ)
    n = min(len(x), len(y))
    assert np.corrcoef(x[:n], y[:n])[0, 1] < 0.9               # two timbres, not one render twice
