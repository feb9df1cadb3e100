"""Peak memory of ``arsound vocode`` against the length of the input: it must stay flat (streaming).

    python benchmarks/vocode_memory.py [--model wavenet-speech-en] [--seconds 10,40,160] [--threads 1]
    arsound bench vocode_memory [same options]

For each length a synthetic speech-like WAV (a gliding harmonic tone with a syllable envelope, 16 kHz) is
vocoded by ``arsound vocode`` in a fresh process; the table gives that process's peak resident memory
(VmHWM), the wall time and samples/s, beside the memory a whole-clip pipeline would hold for the
conditioning alone (``cond_channels`` floats per sample, what grew to 15 GB for one hour before
streaming).
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

CHILD = ("import sys, json; from arsound.cli import main; rc = main(sys.argv[1:]); "
         "print(json.dumps({'hwm_mb': int([l for l in open('/proc/self/status') if l.startswith('VmHWM')][0]"
         ".split()[1]) / 1024})); sys.exit(rc)")


def synth(path: Path, seconds: float, sr: int = 16000) -> None:
    import numpy as np
    import soundfile as sf

    with sf.SoundFile(str(path), "w", sr, 1, "PCM_16") as f:
        for s in range(int(seconds)):                                      # one second at a time
            t = np.arange(sr) / sr + s
            f0 = 140 + 30 * np.sin(2 * np.pi * 0.3 * t)
            phase = 2 * np.pi * np.cumsum(f0) / sr
            x = sum(0.3 / k * np.sin(k * phase) for k in range(1, 8)) * (0.5 + 0.5 * np.sin(2 * np.pi * 3 * t) ** 2)
            f.write(x.astype(np.float32))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="wavenet-speech-en")
    p.add_argument("--seconds", default="10,40,160", help="comma-separated input lengths")
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    from arsound import load
    from arsound.core.checkpoint import hardware

    cond = load(args.model).config.cond_channels
    load_avg = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    print(f"{args.model}; {hardware()}; load average {load_avg}")
    print(f"{'input (s)':>10s} {'peak RSS (MB)':>14s} {'wall (s)':>9s} {'samples/s':>10s} {'whole-clip conditioning (MB)':>29s}")
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    with tempfile.TemporaryDirectory() as tmp:
        for seconds in (float(s) for s in args.seconds.split(",")):
            wav = Path(tmp) / "in.wav"
            synth(wav, seconds)
            t0 = time.perf_counter()
            r = subprocess.run([sys.executable, "-c", CHILD, "vocode", str(wav), "-o", str(Path(tmp) / "out.wav"),
                                "--model", args.model], capture_output=True, text=True, env=env)
            wall = time.perf_counter() - t0
            if r.returncode:
                raise SystemExit(r.stderr[-2000:])
            hwm = json.loads(r.stdout.strip().splitlines()[-1])["hwm_mb"]
            print(f"{seconds:10.0f} {hwm:14.0f} {wall:9.1f} {seconds * 16000 / wall:10.0f} "
                  f"{seconds * 16000 * cond * 4 / 1e6:29.0f}", flush=True)
    return 0


if __name__ == "__main__":
    main()
