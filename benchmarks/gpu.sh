#!/usr/bin/env bash
# WaveNet generation on a GPU (issue 21, part 6), ready for the first machine that has one. Installs nothing (it
# uses .venv, or python3 where there is none); about three minutes on an H100-class GPU:
#   1. checks the GPU paths: the cached step, the fused Triton kernel and the CUDA-graph step against the full
#      forward at the "medium" preset (the graph also at "mol24"; tests/audio/test_wavenet_gpu.py) and the Triton
#      tests compiled for CUDA (test_wavenet_triton.py);
#   2. times every path on the GPU (benchmarks/wavenet_generation.py --device cuda --quick) and prints the table,
#      with the targets: >= 42,000 samples/s per stream at batch 1 and >= 1,000,000 in aggregate.
# Usage, from the repository root: bash benchmarks/gpu.sh [--markdown FILE]
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
[ -x "$PY" ] || PY=python3
"$PY" -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else
          "benchmarks/gpu.sh: torch sees no CUDA device here; nothing to run")'
"$PY" -c 'import torch; print(f"GPU: {torch.cuda.get_device_name(0)}, torch {torch.__version__}, CUDA {torch.version.cuda}")'
timeout 240 "$PY" -m pytest -q -p no:cacheprovider tests/audio/test_wavenet_gpu.py tests/audio/test_wavenet_triton.py
timeout 300 "$PY" benchmarks/wavenet_generation.py --device cuda --quick --targets "$@"
