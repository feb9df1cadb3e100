"""What bfloat16 weights cost a WaveNet: held-out NLL, vocoded LSD and speed, fp32 and bf16 side by side.

    python benchmarks/wavenet_precision.py [--models wavenet-speech-en,wavenet-chorales] [--clips 8]
                                           [--seconds 1] [--seeds 0 1 2] [--root data_cache]
    arsound bench wavenet_precision [same options]

The native step (``wavenet_step.c``) can keep its five big matrices in bfloat16 (``precision="bf16"``): half the
bytes a step reads, sums in float32. Per shipped mu-law / mixture WaveNet vocoder, on ``--clips`` clips of its
data's test split (``make data``; without it, the checkpoint's ``heldout.wav`` alone):

- NLL (bits/sample) of the true samples, teacher-forced through the native step in each precision; the fp32
  figure is checked against the PyTorch forward's (they must agree to 1e-3 bits);
- LSD of the resynthesis (the model's temperature, the mean over ``--seeds``) in each precision, beside
  Griffin-Lim's from the same mel for scale;
- native samples/s at batch 1 on one thread in each precision; and the same for the random-weight presets
  medium and mol24 (where a step's weights, 12.5 MB in fp32, no longer fit the caches).
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import torch

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import arsound  # noqa: E402
from arsound.audio.io import load_audio  # noqa: E402
from arsound.audio.metrics import log_spectral_distance  # noqa: E402
from arsound.audio.vocoder import griffin_lim_of, vocode  # noqa: E402
from arsound.audio.wavenet import WaveNet, WaveNetConfig  # noqa: E402
from arsound.audio.wavenet_fast import FrameCond, NativeWaveNet  # noqa: E402
from arsound.core.checkpoint import hardware, resolve  # noqa: E402
from arsound.core.device import num_threads  # noqa: E402
from arsound.data.audio import DataError  # noqa: E402
from arsound.data.clips import heldout_clips, open_split  # noqa: E402

PRECISIONS = ("fp32", "bf16")


def clips_of(name: str, model, root: str, n: int, seconds: float) -> tuple[torch.Tensor, torch.Tensor | None, str]:
    """``wav[B, T]`` (whole frames) of the model's test split, or its shipped held-out clip, and their speaker /
    instrument ids (None for a model without global conditioning)."""
    data = "chorales" if "chorales" in name else "speech"
    names = list(model.config.speaker_names)
    try:
        ds = open_split(data, "test", root, "en" if data == "speech" else "")
        wav, labels, _ = heldout_clips(ds, n, seconds, model.config.hop_length)
        g = torch.tensor([names.index(str(ds.classes[i])) for i in labels]) if names else None
        return wav, g, f"{len(wav)} {data} test clips of {wav.shape[-1] / model.config.sample_rate:g} s"
    except DataError:
        wav, _ = load_audio(resolve(name) / "heldout.wav", sr=model.config.sample_rate, as_tensor=True)
        wav = wav.reshape(1, -1)
        T = wav.shape[-1] // model.config.hop_length * model.config.hop_length
        return (wav[:, :T], torch.zeros(1, dtype=torch.long) if names else None,
                "the shipped heldout.wav (no prepared data: run `make data` for test clips)")


@torch.inference_mode()
def forced_bits(model, wav: torch.Tensor, g: torch.Tensor | None, precision: str) -> float:
    """Mean NLL in bits/sample of ``wav``'s samples, teacher-forced through the native step."""
    c, x = model.mel_condition(wav), model.encode(wav)
    with model.streaming():
        kernel = NativeWaveNet(model, len(wav), FrameCond(model, c), g, precision=precision)
        _, params = kernel.run(x.shape[1], greedy=True, forced=x.t(), logits=True)
    return -model.head.log_prob(params.transpose(0, 1), x).mean().item() / math.log(2)


@torch.inference_mode()
def torch_bits(model, wav: torch.Tensor, g: torch.Tensor | None) -> float:
    c, x = model.mel_condition(wav), model.encode(wav)
    return -model.head.log_prob(model(x, c=c, g=g), x).mean().item() / math.log(2)


def speed(model, precision: str, c: torch.Tensor | None, g: torch.Tensor | None, length: int) -> float:
    """Native samples/s at batch 1, one thread (best of 2 after a warm-up)."""
    with num_threads(1):
        kw = {"c": c[:1], "g": g} if c is not None else {"length": length}
        model.generate(1, method="native", precision=precision, **({"c": c[:1, :, :4], "g": g} if c is not None
                                                                   else {"length": 64}))     # warm-up
        best = float("inf")
        for _ in range(2):
            t0 = time.perf_counter()
            y = model.generate(1, method="native", precision=precision, generator=torch.Generator().manual_seed(0),
                               **kw)
            best = min(best, time.perf_counter() - t0)
        return y.shape[-1] / best


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="wavenet_precision", description=__doc__.split("\n")[0])
    p.add_argument("--models", default="wavenet-speech-en,wavenet-chorales")
    p.add_argument("--clips", type=int, default=8)
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--root", default="data_cache")
    p.add_argument("--presets", default="medium,mol24", help="random-weight presets for the speed rows ('' = none)")
    args = p.parse_args(argv)
    if not NativeWaveNet.available():
        print("the native step is unavailable here (no C compiler, or ARSOUND_NATIVE=0): nothing to compare")
        return 1
    print(f"{hardware()}; load average {os.getloadavg()[0]:.2f}")
    print("| model | clips | NLL fp32 (bits/sample) | NLL bf16 | bf16 - fp32 | LSD fp32 (dB) | LSD bf16 | "
          "Griffin-Lim LSD | samples/s fp32 | samples/s bf16 | bf16 / fp32 speed |\n"
          "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|", flush=True)
    for name in filter(None, args.models.split(",")):
        model = arsound.load(name).eval()
        if not NativeWaveNet.covers(model, None, None, "cpu"):
            print(f"| {name} | not run: the native step does not cover this model (linear prediction?) |")
            continue
        wav, g, what = clips_of(name, model, args.root, args.clips, args.seconds)
        bits = {pr: forced_bits(model, wav, g, pr) for pr in PRECISIONS}
        ref = torch_bits(model, wav, g)
        if abs(bits["fp32"] - ref) > 1e-3:
            raise AssertionError(f"{name}: native fp32 NLL {bits['fp32']:.5f} != PyTorch forward's {ref:.5f}")
        raw = dict(g=g, progress=False, postfilter=0)                  # the network's own output, unfiltered
        lsd = {pr: sum(log_spectral_distance(wav, vocode(model, wav=wav, seed=s, precision=pr, **raw)).mean().item()
                       for s in args.seeds) / len(args.seeds) for pr in PRECISIONS}
        gl = log_spectral_distance(wav, griffin_lim_of(wav, model.mel_spectrogram().cpu())).mean().item()
        c = model.mel_condition(wav[:1])
        sps = {pr: speed(model, pr, c, None if g is None else g[:1], 0) for pr in PRECISIONS}
        print(f"| {name} | {what} | {bits['fp32']:.4f} | {bits['bf16']:.4f} | {bits['bf16'] - bits['fp32']:+.4f} | "
              f"{lsd['fp32']:.2f} | {lsd['bf16']:.2f} | {gl:.2f} | {sps['fp32']:,.0f} | {sps['bf16']:,.0f} | "
              f"{sps['bf16'] / sps['fp32']:.2f}x |", flush=True)
    for preset in filter(None, args.presets.split(",")):
        torch.manual_seed(0)
        model = WaveNet(WaveNetConfig(**WaveNet.presets[preset])).eval()
        sps = {pr: speed(model, pr, None, None, 4000) for pr in PRECISIONS}
        print(f"| {preset} (random weights) | - | - | - | - | - | - | - | {sps['fp32']:,.0f} | {sps['bf16']:,.0f} | "
              f"{sps['bf16'] / sps['fp32']:.2f}x |", flush=True)
    print(f"load average at the end {os.getloadavg()[0]:.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
