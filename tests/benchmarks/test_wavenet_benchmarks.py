"""The WaveNet speed and precision benchmarks report what they measured: the precision table on a shipped vocoder
(its fp32 NLL checked against the PyTorch forward inside the benchmark; bf16 within 0.01 bits/sample of it), and
the targets of issue 21 met or missed from a run's figures."""
import re

import torch

from arsound.audio.wavenet_fast import NativeWaveNet
from benchmarks import wavenet_generation, wavenet_precision


def test_precision_table_on_a_shipped_vocoder(tmp_path, capsys):
    if not NativeWaveNet.available():
        assert wavenet_precision.main(["--models", "wavenet-speech-en"]) == 1
        return
    assert wavenet_precision.main(["--models", "wavenet-speech-en", "--clips", "1", "--seeds", "0", "--presets", "",
                                   "--root", str(tmp_path)]) == 0     # no prepared data here: the shipped clip
    row = next(line for line in capsys.readouterr().out.splitlines() if line.startswith("| wavenet-speech-en"))
    cells = [c.strip() for c in row.strip("|").split("|")]
    assert "heldout.wav" in cells[1]
    fp32, bf16, diff = (float(c) for c in cells[2:5])
    assert 0 < fp32 < 8 and abs(bf16 - fp32) < 0.01 and abs(diff - (bf16 - fp32)) < 2e-4
    assert all(float(c.replace(",", "")) > 0 for c in cells[8:10])


def test_targets_say_met_or_missed():
    rates = {("medium", 1): {"queue": 600.0, "native": 14_000.0}, ("mol24", 1): {"native": 2_000.0},
             ("medium", 32): {"native_threads": 120_000.0}}
    lines = wavenet_generation.targets(rates, torch.device("cpu"), 2)
    assert re.search(r"per stream at batch 1, one thread \(samples/s\): 14,000 \(>= 10,000: met\)", lines[1])
    assert "23.3x (>= 10x: met)" in lines[2] and "2,000 (>= 3,000: missed)" in lines[3]
    assert "on 2 threads (samples/s): 120,000 (>= 100,000: met)" in lines[4]
    gpu = wavenet_generation.targets({("medium", 1): {"cached": 9_000.0, "triton": 50_000.0}},
                                     torch.device("cuda"), 1)
    assert "50,000 (>= 42,000: met)" in gpu[1] and "50,000 (>= 1,000,000: missed)" in gpu[2]
    graph = wavenet_generation.targets({("medium", 1): {"cached": 9_000.0, "triton": 30_000.0, "graph": 45_000.0}},
                                       torch.device("cuda"), 1)
    assert "45,000 (>= 42,000: met)" in graph[1]                 # the best GPU path, the CUDA graph here
