"""``arsound bench NAME [options]``: run a benchmark script of the shipped ``benchmarks/`` folder (its
``main(argv)``); the options after NAME go to the benchmark's own parser (``--help`` too)."""
from __future__ import annotations

from ..core.files import load_from_path, shipped_dir

BENCHMARKS = {"wavenet": "wavenet_generation.py", "wavernn": "wavernn_generation.py", "image_zoo": "image_zoo.py",
              "vqvae": "vqvae_chunking.py", "vocode_memory": "vocode_memory.py", "music": "music_generation.py",
              "vocoder_levels": "vocoder_levels.py", "wavenet_precision": "wavenet_precision.py",
              "image_sampling": "image_sampling.py", "image_sampling_attention": "image_sampling_attention.py"}


def run_benchmark(name: str, argv: list[str]) -> int:
    if name not in BENCHMARKS:
        raise ValueError(f"unknown benchmark '{name}'; choose from {sorted(BENCHMARKS)}")
    path = shipped_dir("benchmarks") / BENCHMARKS[name]
    if not path.is_file():
        raise FileNotFoundError(f"benchmark script {path} not found; reinstall arsound")
    rc = load_from_path(path, f"arsound_bench_{name}").main(argv)
    return rc if isinstance(rc, int) else 0


def cmd_bench(args, extra: list[str]) -> int:
    return run_benchmark(args.name, extra)


def add_parser(subparsers) -> None:
    b = subparsers.add_parser("bench", help="run a speed / quality benchmark", add_help=False,
                              description="Run benchmarks/<script>.py; options after NAME go to the benchmark.")
    b.add_argument("name", metavar="NAME", help=f"benchmark: {', '.join(sorted(BENCHMARKS))}")
    b.set_defaults(func=cmd_bench)
