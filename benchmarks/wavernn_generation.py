"""WaveRNN generation speed: the fused native step (``wavernn_step.c``) beside the PyTorch cached step, and the
WaveNet vocoder's cached generator of the same front end for comparison.

    python benchmarks/wavernn_generation.py [--hidden 256] [--fc 128] [--seconds 1] [--threads 1] [--markdown FILE]
    arsound bench wavernn [same options]

A mel-conditioned WaveRNN (80 bands, hop 256, random weights: speed does not depend on training) vocodes
``--seconds`` of mel frames at batch 1, 8 and 32 at temperature 1; per method: samples/s per stream, in
aggregate, the real-time factor (seconds of compute per second of audio, per stream) and the ratio to the PyTorch
step measured in the same run. The WaveNet row is the ``recipes/vocoder`` mu-law preset's generator as ``method="auto"`` picks it (its
native step up to 4 streams, the cached one above). The
header names the CPU, the threads and the load average, since other processes change the numbers.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import torch

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from arsound.audio.wavenet import WaveNet, WaveNetConfig  # noqa: E402
from arsound.audio.wavernn import NativeWaveRNN, WaveRNN, WaveRNNConfig  # noqa: E402
from arsound.core.checkpoint import hardware  # noqa: E402

FRONT = dict(cond_channels=80, hop_length=256, upsample_scales=(4, 4, 4, 4), sample_rate=16000)


def timed(fn, repeats: int) -> float:
    fn()                                                       # warm-up (and the native build, once)
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="wavernn_generation", description=__doc__.split("\n")[0])
    p.add_argument("--hidden", type=int, default=256)
    p.add_argument("--fc", type=int, default=128)
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--batches", default="1,8,32")
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--repeats", type=int, default=2)
    p.add_argument("--markdown", help="also write the table to this markdown file")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    rnn = WaveRNN(WaveRNNConfig(hidden=args.hidden, fc=args.fc, **FRONT)).eval()
    wn = WaveNet(WaveNetConfig(head="mulaw", layers=12, cycles=2, kernel_size=3, residual_channels=48,
                               gate_channels=96, skip_channels=96, **FRONT)).eval()
    frames = max(1, int(args.seconds * 16000) // 256)
    T = frames * 256
    methods = [("WaveRNN native", rnn, "native"), ("WaveRNN PyTorch step", rnn, "cached"),
               ("WaveNet vocoder (method auto)", wn, "auto")]
    if not NativeWaveRNN.available():
        methods = methods[1:]
    head = (f"WaveRNN hidden {args.hidden}, fc {args.fc} ({rnn.num_parameters():,} params) vs the recipes/vocoder "
            f"mu-law WaveNet ({wn.num_parameters():,} params); {T} samples ({T / 16000:.2f} s) of mel conditioning "
            f"per stream; {hardware()}, load average "
            f"{os.getloadavg()[0]:.2f} at the start")
    lines = [head, "", "| model / step | batch | samples/s per stream | aggregate samples/s | RTF per stream "
                       "| vs the PyTorch step |", "|---|---:|---:|---:|---:|---:|"]
    print(head, flush=True)
    for B in (int(b) for b in args.batches.split(",")):
        c = torch.randn(B, 80, frames, generator=torch.Generator().manual_seed(B))
        base = None
        rows = []
        for name, model, method in methods:
            def run(model=model, method=method):
                gen = torch.Generator().manual_seed(0)
                if isinstance(model, WaveRNN):
                    model.generate(B, c=c, generator=gen, method=method)
                else:
                    model.generate(B, c=c, generator=gen)
            s = timed(run, args.repeats)
            per = T / s
            rows.append((name, per))
            if method == "cached":
                base = per
        for name, per in rows:
            ratio = f"{per / base:.1f}x" if base else "-"
            line = (f"| {name} | {B} | {per:,.0f} | {per * B:,.0f} | {16000 / per:.2f} | {ratio} |")
            lines.append(line)
            print(line, flush=True)
    lines.append(f"\nload average {os.getloadavg()[0]:.2f} at the end")
    print(lines[-1])
    if args.markdown:
        Path(args.markdown).write_text("\n".join(lines) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
