"""Does a vocoder's output level follow its input's? The shipped held-out clip at -1 and -30 dBFS (peak) and
low-passed at 4 kHz, vocoded; the output's RMS level beside the input's (issue 20's target: within 1 dB), as
the network makes it, with ``match_level`` (one gain per clip from the mel: ``vocoder.vocode``) and with
``--postfilter`` passes of the band post-filter (``features.band_postfilter``; 0 drops the column).

    python benchmarks/vocoder_levels.py [--models wavenet-speech-en,wavenet-chorales] [--seed 0] [--postfilter 32]
    arsound bench vocoder_levels [same options]
"""
from __future__ import annotations

import argparse
import math
import os
import sys
from pathlib import Path

import torch

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import arsound  # noqa: E402
from arsound.audio.io import load_audio  # noqa: E402
from arsound.audio.vocoder import vocode  # noqa: E402
from arsound.core.checkpoint import hardware, resolve  # noqa: E402
from arsound.data.clips import Augment  # noqa: E402


def rms_db(x: torch.Tensor) -> float:
    return 20 * math.log10(x.double().pow(2).mean().sqrt().item() + 1e-12)


def conditions(wav: torch.Tensor, sr: int) -> list[tuple[str, torch.Tensor]]:
    loud = wav / wav.abs().max() * 10 ** (-1 / 20)
    return [("-1 dBFS peak", loud), ("-30 dBFS peak", loud * 10 ** (-29 / 20)),
            ("-1 dBFS, low-passed at 4 kHz", Augment(lowpass=1.0, cutoff=(4000.0, 4000.0))(loud, sr))]


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="vocoder_levels", description=__doc__.split("\n")[0])
    p.add_argument("--models", default="wavenet-speech-en,wavenet-chorales")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--postfilter", type=int, default=32, help="passes of the band post-filter (0: no column)")
    args = p.parse_args(argv)
    pf = args.postfilter
    print(f"{hardware()}; load average {os.getloadavg()[0]:.2f}")
    extra = (f" post-filtered ({pf}) - input (dB) |", "---:|") if pf else ("", "")
    print("| vocoder | input | input RMS (dB) | output RMS (dB) | output - input (dB) | level matched - input (dB) |"
          + extra[0] + "\n|---|---|---:|---:|---:|---:|" + extra[1])
    for name in args.models.split(","):
        model = arsound.load(name)
        wav, _ = load_audio(resolve(name) / "heldout.wav", sr=model.config.sample_rate, as_tensor=True)
        wav = wav.reshape(-1)
        for label, x in conditions(wav, model.config.sample_rate):
            y = vocode(model, wav=x, seed=args.seed, progress=False, postfilter=0)
            m = vocode(model, wav=x, seed=args.seed, progress=False, match_level=True)
            a, b, c = rms_db(x[:y.shape[-1]]), rms_db(y), rms_db(m)
            d = ""
            if pf:
                d = f" {rms_db(vocode(model, wav=x, seed=args.seed, progress=False, postfilter=pf)) - a:+.1f} |"
            print(f"| {name} | {label} | {a:.1f} | {b:.1f} | {b - a:+.1f} | {c - a:+.1f} |{d}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
