"""``recipes/gpu.sh`` with the music priors' ``-gpu`` presets, run end to end on the CPU (``--device cpu``, tiny
widths through ``--extra``) over token sets of the shipped ``vqvae-chorales`` made of random codes: the timed probe
sets each level's steps, the three levels train side by side and report, ``--pack --half`` cuts float16 models
into parts that join back into priors ``assemble.py`` makes a generator of, and bad arguments are one line with
nothing written."""
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
SCRIPT = REPO / "recipes" / "gpu.sh"
LEVELS = ("top-gpu", "middle-gpu", "bottom-gpu")
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


def gpu_sh(*args, presets=("music_prior", ",".join(LEVELS))):
    env = {**os.environ, "PY": sys.executable, "OMP_NUM_THREADS": "1"}
    return subprocess.run(["bash", str(SCRIPT), *presets, *map(str, args)], capture_output=True, text=True, env=env,
                          timeout=300)


def test_gpu_script_probes_trains_packs_and_the_parts_assemble(tmp_path):
    tokenizer = load("vqvae-chorales")
    fake_tokens(tmp_path / "tok", tokenizer)
    out, pack = tmp_path / "out", tmp_path / "pack"
    r = gpu_sh("--device", "cpu", "--minutes", "0.001", "--out", out, "--pack", pack, "--half",
               "--extra", f"{TINY} --data.tokens={tmp_path / 'tok'}", "--probe-extra", "--eval.windows=4")
    assert r.returncode == 0, r.stdout + r.stderr
    # the probe: 60 steps each, timed from log.csv; the runs then got at least the floor of 100 steps
    for p in LEVELS:
        assert f"{p}: " in r.stderr and "s a step side by side" in r.stderr
        rows = [row for row in (out / "probe" / p / "log.csv").read_text().splitlines()[1:] if ",train," in row]
        assert len(rows) == 6
    steps = [int(s) for s in re.search(r"steps: (\d+) (\d+) (\d+) \(top-gpu middle-gpu bottom-gpu\)",
                                       r.stdout).groups()]
    results = {p: json.loads((out / "run" / p / "results.json").read_text()) for p in LEVELS}
    assert [results[p]["steps"] for p in LEVELS] == steps and min(steps) >= 100
    assert [results[p]["level"] for p in LEVELS] == [2, 1, 0]
    assert all(re.search(f"^{p}: params .*bits_per_token", r.stdout, re.M) for p in LEVELS)
    # the parts join into float16 models equal to the trained ones rounded, and they assemble into a generator
    parts = sorted(pack.glob("gpu_runs.tar.part-*"))
    assert parts
    joined = tmp_path / "joined.tar"
    joined.write_bytes(b"".join(p.read_bytes() for p in parts))
    with tarfile.open(joined) as tar:
        tar.extractall(tmp_path / "back", filter="data")
    for p in LEVELS:
        back, trained = load(tmp_path / "back" / p / "model"), load(out / "run" / p / "model")
        for (k, a), b in zip(back.state_dict().items(), trained.state_dict().values()):
            assert torch.equal(a, b.half().float() if b.is_floating_point() else b), k
        assert all((tmp_path / "back" / p / f).is_file() for f in ("results.json", "log.csv", "train.log"))
    from recipes.music_prior import assemble

    folder = assemble.main([str(tmp_path / "back" / p / "model") for p in LEVELS]
                           + ["-o", str(tmp_path / "gen")])
    gen = load(folder)
    assert isinstance(gen, MusicGenerator) and gen.levels == [2, 1, 0]
    assert gen.generate(0.016, instrument="piano").audio.shape[-1] == 256


def test_gpu_script_refuses_bad_arguments_in_one_line(tmp_path):
    (tmp_path / "taken").mkdir()
    music = ("music_prior", ",".join(LEVELS))
    for presets, args, pattern in ((music, ["--minutes", "0"], "--minutes must be a number > 0"),
                                   (music, ["--minutes", "soon"], "--minutes must be a number > 0"),
                                   (music, ["--bogus"], "unknown argument '--bogus'"),
                                   (("music_prior", "top-gpu,huge"), [], "has no preset 'huge'; choose from"),
                                   (("no_such_recipe", "x"), [], "no_such_recipe"),
                                   (("--minutes", "1"), [], "give a recipe and its presets first"),
                                   (music, ["--device", "cpu", "--out", tmp_path / "taken"], "exists; give another")):
        r = gpu_sh(*args, presets=presets)
        assert r.returncode == 2 and pattern in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["taken"] and not any((tmp_path / "taken").iterdir())


def test_gpu_presets_are_the_cpu_ones_wider_with_longer_context():
    from arsound.cli.train import load_recipe

    recipe = load_recipe("music_prior")
    for name, (context, layers) in {"top": (1024, 8), "middle": (512, 6), "bottom": (512, 4)}.items():
        cpu, gpu = recipe.config(name), recipe.config(f"{name}-gpu")
        assert (gpu.level, gpu.labels) == (cpu.level, cpu.labels) and gpu.prior.context == 2 * cpu.prior.context
        assert (gpu.prior.context, gpu.prior.dim, gpu.prior.layers, gpu.train.amp) == (context, 256, layers, "auto")
        assert gpu.prior.cond_dropout == (0.0 if name == "top" else 0.2)
        assert recipe.config(f"{name}-gpu", debug=True).level == recipe.config(name, debug=True).level
