"""What ``arsound sample`` (audio models) and ``arsound bench <name>`` call; wired in ``arsound/cli.py``.

    arsound sample --model DIR --n 2 --out gen.wav [--seconds 2] [--speaker 3] [--cond mel.npy] [--greedy]
    arsound bench wavenet [--device cpu] [--quick] [--threads N] [--markdown FILE]

Every user error is a ``ValueError`` / ``FileNotFoundError`` with a one-line message (the CLI prints it
and exits 2).
"""
from __future__ import annotations

import argparse
import importlib.util
from pathlib import Path

import numpy as np
import torch

BENCHMARKS_DIR = Path(__file__).resolve().parents[2] / "benchmarks"
BENCHMARKS = {"wavenet": "wavenet_generation.py", "image_zoo": "image_zoo.py", "vqvae": "vqvae_chunking.py"}


def is_audio_model(model) -> bool:
    """Waveform models: one event dim and ``decode(x) -> wav``."""
    return len(model.event_shape) == 1 and hasattr(model, "decode") and hasattr(model, "generate")


def add_audio_sample_args(parser: argparse.ArgumentParser) -> None:
    """Options of ``arsound sample`` that only audio models use."""
    parser.add_argument("--seconds", type=float, help="audio models: length in seconds (default: the model's "
                        "config.length, or the conditioning's frames x hop)")
    parser.add_argument("--speaker", type=int, help="audio models with global conditioning: speaker / instrument id")
    parser.add_argument("--cond", help="audio models with local conditioning: .npy of [C, frames] or [B, C, frames]")
    parser.add_argument("--greedy", action="store_true", help="take the most likely value at every step")


def output_paths(out: str | Path, n: int) -> list[Path]:
    """``gen.wav`` for one sample; ``gen-0.wav, gen-1.wav, ...`` for several. A non-audio suffix (the
    CLI's ``samples.png`` default) becomes ``.wav``."""
    out = Path(out)
    if out.suffix.lower() not in (".wav", ".flac", ".ogg"):
        out = out.with_suffix(".wav")
    return [out] if n == 1 else [out.with_name(f"{out.stem}-{i}{out.suffix}") for i in range(n)]


def load_cond(path: str | Path, n: int) -> torch.Tensor:
    """``.npy`` local conditioning -> ``Tensor[n, C, frames]`` (a single ``[C, frames]`` is repeated)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"conditioning file '{path}' does not exist")
    try:
        c = torch.from_numpy(np.load(path, allow_pickle=False)).float()
    except ValueError as e:
        raise ValueError(f"cannot read conditioning '{path}': {e}; expected a .npy array [C, frames]") from None
    if c.ndim == 2:
        c = c.expand(n, -1, -1)
    if c.ndim != 3 or c.shape[0] != n:
        raise ValueError(f"conditioning '{path}' has shape {tuple(c.shape)}; expected [C, frames] or [{n}, C, frames]")
    return c


@torch.no_grad()
def sample_audio(model, n: int, out: str | Path, *, seed: int = 0, temperature: float = 1.0, device: str = "cpu",
                 seconds: float | None = None, speaker: int | None = None, cond=None, greedy: bool = False,
                 progress: bool = True) -> list[Path]:
    """Generate ``n`` clips with ``model.generate`` and write them as audio files; returns the paths."""
    from .io import save_audio

    sr = model.config.sample_rate
    length = None if seconds is None else int(round(seconds * sr))
    if length is not None and length < 1:
        raise ValueError(f"--seconds must give at least one sample, got {seconds}")
    c = None if cond is None else (cond if isinstance(cond, torch.Tensor) else load_cond(cond, n)).to(device)
    g = None if speaker is None else torch.full((n,), int(speaker), dtype=torch.long, device=device)
    generator = torch.Generator(device=device).manual_seed(seed)
    x = model.generate(n, c=c, g=g, length=length, temperature=temperature, greedy=greedy,
                       generator=generator, progress=progress)
    wav = model.decode(x).cpu()
    paths = output_paths(out, n)
    for w, p in zip(wav, paths):
        save_audio(p, w, sr)
    return paths


def cmd_sample_audio(model, args) -> int:
    """``arsound sample`` for an audio model (``args`` from the sample parser + :func:`add_audio_sample_args`)."""
    paths = sample_audio(model, args.n, args.out, seed=args.seed, temperature=args.temperature, device=args.device,
                         seconds=getattr(args, "seconds", None), speaker=getattr(args, "speaker", None),
                         cond=getattr(args, "cond", None), greedy=getattr(args, "greedy", False))
    where = paths[0] if len(paths) == 1 else f"{paths[0].parent}/{paths[0].stem.rsplit('-', 1)[0]}-*{paths[0].suffix}"
    print(f"wrote {len(paths)} clip(s) at {model.config.sample_rate} Hz to {where}")
    return 0


def run_benchmark(name: str, argv: list[str]) -> int:
    """``arsound bench NAME [options]``: run ``benchmarks/<script>.py``'s ``main(argv)`` from the repo."""
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark '{name}'; choose from {sorted(BENCHMARKS)}")
    path = BENCHMARKS_DIR / BENCHMARKS[name]
    if not path.is_file():
        raise FileNotFoundError(f"benchmark script {path} not found; benchmarks run from a source checkout")
    spec = importlib.util.spec_from_file_location(f"arsound_bench_{name}", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    rc = module.main(argv)
    return rc if isinstance(rc, int) else 0


def cmd_bench(args, extra: list[str]) -> int:
    """Handler of ``arsound bench NAME``; options after the name go to the benchmark's own parser."""
    return run_benchmark(args.name, extra)


def add_bench_parser(subparsers) -> argparse.ArgumentParser:
    """Add ``arsound bench NAME [options]`` to the CLI's subparsers (``--help`` goes to the benchmark)."""
    b = subparsers.add_parser("bench", help="run a speed benchmark", add_help=False,
                              description="Run benchmarks/<script>.py; options after NAME go to the benchmark.")
    b.add_argument("name", metavar="NAME", help=f"benchmark: {', '.join(sorted(BENCHMARKS))}")
    b.set_defaults(func=cmd_bench)
    return b
