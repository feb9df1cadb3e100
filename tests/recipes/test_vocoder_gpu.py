"""The vocoder's way to a GPU: ``pack_data.py`` makes a lossless FLAC copy of one language of a prepared set (or
refuses in one line, writing nothing), and ``recipes/gpu.sh`` trains the ``mulaw-gpu`` and ``lp-gpu`` presets on it
side by side, end to end on the CPU (tiny widths through ``--extra``): a probe without the report, the runs with
it, and the packed parts join back into vocoders that load."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

from arsound.audio.wavenet import WaveNet
from arsound.core.checkpoint import load
from arsound.data.audio import verify
from recipes.vocoder import pack_data
from tests.fakes import fake_prepared

REPO = Path(__file__).resolve().parents[2]
TINY = ("--model.layers=2 --model.cycles=1 --model.residual_channels=4 --model.gate_channels=8 "
        "--model.skip_channels=8 --train.batch_size=2 --train.eval_batches=1 --data.segment_frames=2 "
        "--eval.temperatures=1.0 --eval.postfilters=0,2 --eval.select_clips=1 --eval.clips=1 --eval.seconds=0.1 "
        "--eval.griffin_lim_iters=2")


@pytest.fixture()
def packed(tmp_path):
    root = tmp_path / "data"
    fake_prepared(root, "speech", [{"language": "en", "speaker": "a"}, {"language": "es", "speaker": "b"}])
    pack_data.main(["--data", "speech", "--root", str(root), "--language", "en", "-o", str(tmp_path / "gpu_data")])
    return root, tmp_path / "gpu_data"


def test_pack_data_is_lossless_keeps_the_language_and_refuses_in_one_line(packed, tmp_path, capsys):
    root, out = packed
    m = json.loads((out / "speech" / "manifest.json").read_text())
    src = {e["id"]: e for e in json.loads((root / "speech" / "manifest.json").read_text())["files"]}
    assert {e["labels"]["language"] for e in m["files"]} == {"en"} and len(m["files"]) == 4
    for e in m["files"]:
        assert e["path"].startswith("flac/") and e["path"].endswith(".flac") and e["split"] == src[e["id"]]["split"]
        a = sf.read(root / "speech" / src[e["id"]]["path"], dtype="int16")[0]
        assert np.array_equal(sf.read(out / "speech" / e["path"], dtype="int16")[0], a)
    assert verify("speech", out) == []                                 # every sha256 is the FLAC file's
    assert m["totals"]["files"] == 4 and m["packed_from"]["languages"] == ["en"]
    for argv, pattern in ((["--language", "en"], "exists; remove it or give another -o"),
                          (["--language", "xx", "-o", str(tmp_path / "other")], "no file in language(s) xx"),
                          (["--data", "nope", "-o", str(tmp_path / "other")], "no prepared 'nope' data")):
        args = ["--data", "speech", "--root", str(root), "-o", str(out), *argv]
        with pytest.raises(SystemExit) as e:
            pack_data.main(args)
        assert pattern in str(e.value) and "\n" not in str(e.value)
    assert not (tmp_path / "other").exists() and sorted(p.name for p in out.iterdir()) == ["speech"]


def test_gpu_script_trains_both_presets_side_by_side_and_packs_them(packed, tmp_path):
    _, data = packed
    out, pack = tmp_path / "out", tmp_path / "pack"
    env = {**os.environ, "PY": sys.executable, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(["bash", str(REPO / "recipes" / "gpu.sh"), "vocoder", "mulaw-gpu,lp-gpu", "--device", "cpu",
                        "--minutes", "0.001", "--out", str(out), "--pack", str(pack),
                        "--extra", f"{TINY} --data.root={data} --data.language=en",
                        "--probe-extra", "--eval.report=false"],
                       capture_output=True, text=True, env=env, timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    for p in ("mulaw-gpu", "lp-gpu"):
        assert "no report (eval.report false)" in (out / "probe" / f"{p}.log").read_text()
        assert not (out / "probe" / p / "results.json").exists()
        result = json.loads((out / "run" / p / "results.json").read_text())
        assert result["steps"] >= 100 and result["model_kind"] == p.removesuffix("-gpu")
        assert f"{p}: params " in r.stdout and "model_lsd_db" in r.stdout
    assert "steps: " in r.stdout and "(mulaw-gpu lp-gpu)" in r.stdout
    joined = tmp_path / "joined.tar"
    joined.write_bytes(b"".join(p.read_bytes() for p in sorted(pack.glob("gpu_runs.tar.part-*"))))
    with tarfile.open(joined) as tar:
        tar.extractall(tmp_path / "back", filter="data")
    for p in ("mulaw-gpu", "lp-gpu"):
        model = load(tmp_path / "back" / p / "model")
        assert isinstance(model, WaveNet) and model.config.layers == 2 and model.config.cycles == 1
        assert (tmp_path / "back" / p / "model" / "heldout.wav").is_file()
        assert (model.config.lpc_order > 0) == (p == "lp-gpu")
