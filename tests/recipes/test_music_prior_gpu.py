"""``recipes/music_prior/gpu.sh`` run end to end on the CPU (``--device cpu``, tiny widths through ``--extra``) over
token sets of the shipped ``vqvae-chorales`` made of random codes: the timed probe sets each level's steps, the
three levels train side by side and report, ``--pack`` cuts float16 models into parts that join back into priors
``assemble.py`` makes a generator of, and bad arguments are one line with nothing written."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import torch

from arsound.audio.codes import CodesFile, save_codes
from arsound.core.checkpoint import load, weights_id
from arsound.music.generator import MusicGenerator

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "recipes" / "music_prior" / "gpu.sh"
TINY = ("--prior.context=16 --prior.block=4 --prior.dim=16 --prior.layers=2 --prior.heads=2 --prior.cond_depth=1 "
        "--prior.timing_bins=4 --train.batch_size=2 --train.eval_batches=1 --train.warmup_steps=2")


def fake_tokens(root: Path, tokenizer) -> None:
    """Three splits of two pieces each (organ, piano), random codes at the tokenizer's three levels."""
    g = torch.Generator().manual_seed(0)
    wid, hops = weights_id(tokenizer), list(tokenizer.hops)
    for split in ("train", "valid", "test"):
        folder = root / f"chorales-{wid}" / split
        folder.mkdir(parents=True)
        files = []
        for i, instrument in enumerate(("organ", "piano")):
            top = 40 + 8 * i
            codes = [torch.randint(0, 256, (top * hops[-1] // h,), generator=g) for h in hops]
            name = f"bwv{i}_{instrument}"
            save_codes(folder / f"{name}.npz", CodesFile(codes=codes, hops=hops, sample_rate=16000, length=top * 128,
                                                         model="vqvae-chorales", model_sha256=wid, num_codes=256))
            files.append({"id": name, "codes": f"{name}.npz", "samples": top * 128,
                          "tokens": [len(c) for c in codes], "labels": {"instrument": instrument}})
        (folder / "tokens.json").write_text(json.dumps({
            "tokenizer": "vqvae-chorales", "weights": wid, "hops": hops, "sample_rate": 16000, "num_codes": 256,
            "label": "instrument", "classes": ["organ", "piano"], "files": files}))


def gpu_sh(*args):
    env = {**os.environ, "PY": sys.executable, "OMP_NUM_THREADS": "1"}
    return subprocess.run(["bash", str(SCRIPT), *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=300)


def test_gpu_script_probes_trains_packs_and_the_parts_assemble(tmp_path):
    tokenizer = load("vqvae-chorales")
    fake_tokens(tmp_path / "tok", tokenizer)
    out, pack = tmp_path / "out", tmp_path / "pack"
    r = gpu_sh("--device", "cpu", "--minutes", "0.001", "--out", out, "--pack", pack,
               "--extra", f"{TINY} --data.tokens={tmp_path / 'tok'}")
    assert r.returncode == 0, r.stdout + r.stderr
    # the probe: 60 steps each, timed from log.csv; the runs then got at least the floor of 100 steps
    for p in ("top", "middle", "bottom"):
        assert f"{p}: " in r.stderr and "s a step side by side" in r.stderr
        rows = [row for row in (out / "probe" / p / "log.csv").read_text().splitlines()[1:] if ",train," in row]
        assert len(rows) == 6
    steps = [int(s) for s in re.search(r"steps (\d+) (\d+) (\d+) \(top middle bottom\)", r.stdout).groups()]
    results = {p: json.loads((out / "run" / p / "results.json").read_text()) for p in ("top", "middle", "bottom")}
    assert [results[p]["steps"] for p in ("top", "middle", "bottom")] == steps and min(steps) >= 100
    assert [results[p]["level"] for p in ("top", "middle", "bottom")] == [2, 1, 0]
    assert all(f"{p}: " in r.stdout and "bits/token" in r.stdout for p in ("top", "middle", "bottom"))
    # the parts join into float16 models equal to the trained ones rounded, and they assemble into a generator
    parts = sorted(pack.glob("music_gpu.tar.part-*"))
    assert parts
    joined = tmp_path / "joined.tar"
    joined.write_bytes(b"".join(p.read_bytes() for p in parts))
    with tarfile.open(joined) as tar:
        tar.extractall(tmp_path / "back", filter="data")
    for p in ("top", "middle", "bottom"):
        back, trained = load(tmp_path / "back" / p / "model"), load(out / "run" / p / "model")
        for (k, a), b in zip(back.state_dict().items(), trained.state_dict().values()):
            assert torch.equal(a, b.half().float() if b.is_floating_point() else b), k
        assert (tmp_path / "back" / p / "results.json").is_file() and (tmp_path / "back" / p / "log.csv").is_file()
    from recipes.music_prior import assemble

    folder = assemble.main([str(tmp_path / "back" / p / "model") for p in ("top", "middle", "bottom")]
                           + ["-o", str(tmp_path / "gen")])
    gen = load(folder)
    assert isinstance(gen, MusicGenerator) and gen.levels == [2, 1, 0]
    assert gen.generate(0.016, instrument="piano").audio.shape[-1] == 256


def test_gpu_script_refuses_bad_arguments_in_one_line(tmp_path):
    (tmp_path / "taken").mkdir()
    for args, pattern in ((["--minutes", "0"], "--minutes must be a number > 0"),
                          (["--minutes", "soon"], "--minutes must be a number > 0"),
                          (["--bogus"], "unknown argument '--bogus'"),
                          (["--device", "cpu", "--out", tmp_path / "taken"], "exists; give another --out")):
        r = gpu_sh(*args)
        assert r.returncode == 2 and pattern in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["taken"] and not any((tmp_path / "taken").iterdir())
