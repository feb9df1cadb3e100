"""WaveNet generation speed: naive (recompute the receptive field per sample) vs cached (ring buffers).

    python benchmarks/wavenet_generation.py [--device cpu|cuda] [--quick] [--threads N]
                                            [--presets medium,mol24] [--markdown FILE]
    arsound bench wavenet [same options]

Presets (random weights; speed does not depend on training):
  medium: 20 layers, 2 cycles of dilations 1..512, k = 2, R 64, gate 128, skip 128, 256-way mu-law
          (nv-wavenet "medium").
  mol24:  24 layers, 4 cycles, k = 3, R 128, gate 256, skip 128, 10 logistics, 16-bit (r9y9 MoL).

Measured, all while sampling at temperature 1 (the queue-shifting baseline is our own code, below):
  - per batch size (1, 8, 32 on CPU; 1, 8, 32, 256 on CUDA): naive and cached samples/s per stream
    and in aggregate, and their ratio. "naive" is one full forward over ``rf + 1`` samples per generated
    sample at steady state (the window is full, as it is after the first ``rf`` samples), timed with 1
    thread and with ``--threads`` and the faster kept. The cached loop runs single-threaded on CPU up
    to batch 64 (``core.device.SINGLE_THREAD_MAX_BATCH``), whatever ``--threads`` says.
  - the fused native CPU step (``wavenet_step.c``, ``method="native"``): per stream and in aggregate on one
    thread, in aggregate with the streams over all ``--threads`` (the scaling), and with bfloat16 weights.
  - on CUDA with triton installed, mu-law presets: the fused one-kernel generator (``wavenet_triton.py``)
    at every batch size, beside the cached loop ("not run" elsewhere: on the CPU it only interprets).
  - on CUDA: the step captured as one CUDA graph and replayed per sample (``wavenet_graph.py``, both presets).
  - cached time per sample at batch 1 vs generated length (1k, 4k, 16k): it must stay flat.
Timings are the best of ``--repeats`` runs after a warm-up; the header names device, CPU, threads and
the load average, since other processes on the machine change the numbers.
"""
from __future__ import annotations

import argparse
import os
import platform
import sys
import time

import torch

from arsound.audio.wavenet import WaveNet, WaveNetConfig
from arsound.audio.wavenet_fast import NativeWaveNet
from arsound.audio.wavenet_graph import GraphWaveNet
from arsound.core.device import num_threads

PRESETS = ("medium", "mol24")


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def build(preset: str, device: torch.device) -> WaveNet:
    torch.manual_seed(0)
    return WaveNet(WaveNetConfig(**WaveNet.presets[preset])).to(device).eval()


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def best_of(fn, repeats: int, device: torch.device) -> float:
    """Best wall time of ``repeats`` calls of ``fn`` (seconds)."""
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        t0 = time.perf_counter()
        fn()
        _sync(device)
        best = min(best, time.perf_counter() - t0)
    return best


@torch.no_grad()
def naive_seconds_per_step(model: WaveNet, batch: int, steps: int, repeats: int) -> tuple[float, int]:
    """Seconds per generated sample (for the whole batch) of the naive path at a full window, and the
    intra-op thread count that gave it: the best over 1 thread and torch's setting (big convolutions
    gain from threads on a quiet machine, lose on a busy one)."""
    dev, rf = model.device, model.receptive_field
    gen = torch.Generator(device=dev).manual_seed(0)
    x = model.encode(torch.rand(batch, rf + 1, generator=gen, device=dev) * 1.6 - 0.8)
    u = torch.rand(batch, model.head.num_uniforms, generator=gen, device=dev)

    def run():
        for _ in range(steps):  # the work of one naive step (WaveNet.naive_steps) and its draw
            params = model.network(x, None)[:, -1]
            model.head.sample(params, u)

    threads = torch.get_num_threads()
    best = (float("inf"), threads)
    for n in sorted({1, threads}) if dev.type == "cpu" else [threads]:
        torch.set_num_threads(n)
        run()  # warm-up
        best = min(best, (best_of(run, repeats, dev) / steps, n))
    torch.set_num_threads(threads)
    return best


@torch.no_grad()
def cached_seconds(model: WaveNet, batch: int, length: int, repeats: int, method: str = "cached") -> float:
    """Seconds to generate ``batch`` streams of ``length`` samples on the cached (or Triton, or CUDA-graph) path."""
    dev = model.device
    gen = torch.Generator(device=dev).manual_seed(0)
    model.generate(batch, length=min(length, 64), generator=gen, method=method)  # warm-up (and Triton's compile)
    return best_of(lambda: model.generate(batch, length=length, generator=gen, method=method), repeats, dev)


def native_seconds(model: WaveNet, batch: int, length: int, repeats: int, threads: int = 1,
                   precision: str = "fp32") -> float:
    """Seconds of the fused native step (``method="native"``) with its streams over ``threads`` threads."""
    with num_threads(threads):
        gen = torch.Generator().manual_seed(0)
        run = (lambda: model.generate(batch, length=length, generator=gen, method="native", precision=precision))
        run()
        return best_of(run, repeats, model.device)


@torch.no_grad()
def queue_generate(model: WaveNet, batch: int, length: int, generator=None, forced: torch.Tensor | None = None):
    """The common incremental way (the baseline): every layer keeps its last ``(k - 1) d + 1`` inputs in a buffer
    shifted by one sample per step (``cat`` of the buffer's tail and the new input), its dilated conv is one matmul
    over the ``k`` taps, then the same gates, residuals, skips, output network and draw as the model's. Our own code,
    written after the queue-shifting incremental forward of the most used public PyTorch WaveNet vocoder.
    ``forced[B, T]``: feed these samples and return the params ``[B, T, P]`` (a check against the model)."""
    import math

    import torch.nn.functional as F

    dev, cfg = model.device, model.config
    k, R, L = cfg.kernel_size, cfg.residual_channels, cfg.layers
    taps_w = [layer.conv.weight.reshape(layer.conv.weight.shape[0], -1) for layer in model.layers]  # (G, R k)
    bufs = [torch.zeros(batch, R, (k - 1) * d + 1, device=dev) for d in model.dilations]
    x, params = None, []
    for t in range(length):
        if x is None:
            h = torch.zeros(batch, R, device=dev)
        elif cfg.head == "mulaw":
            h = model.embed(x)
        else:
            h = model.input_conv(model.input_value(x)[:, None, None])[..., 0]
        skips = 0
        for i, (layer, d) in enumerate(zip(model.layers, model.dilations)):
            bufs[i] = torch.cat([bufs[i][:, :, 1:], h[:, :, None]], -1)          # the shift
            z = F.linear(bufs[i][:, :, ::d].reshape(batch, -1), taps_w[i], layer.conv.bias)
            a = torch.tanh(z[:, :z.shape[1] // 2]) * torch.sigmoid(z[:, z.shape[1] // 2:])
            skips = skips + F.linear(a, layer.skip.weight[:, :, 0], layer.skip.bias)
            if layer.res is not None:
                h = (h + F.linear(a, layer.res.weight[:, :, 0], layer.res.bias)) * math.sqrt(0.5)
        skips = skips * math.sqrt(1.0 / L)
        out = F.linear(F.relu(F.linear(F.relu(skips), model.out1.weight[:, :, 0], model.out1.bias)),
                       model.out2.weight[:, :, 0], model.out2.bias)
        if forced is not None:
            params.append(out)
            x = forced[:, t]
        else:
            x = model.head.sample(out, generator=generator)
    return torch.stack(params, 1) if forced is not None else None


def check_queue(model: WaveNet) -> None:
    """The baseline computes the model: its params on 64 fed samples equal the full forward's."""
    x = model.encode(torch.rand(2, 64, generator=torch.Generator().manual_seed(0), device=model.device) * 1.6 - 0.8)
    with torch.no_grad():
        torch.testing.assert_close(queue_generate(model, 2, 64, forced=x), model(x), atol=1e-4, rtol=1e-4)


def queue_seconds(model: WaveNet, batch: int, length: int, repeats: int) -> float:
    """Seconds to generate ``batch`` streams of ``length`` samples by :func:`queue_generate`."""
    gen = torch.Generator(device=model.device).manual_seed(0)
    return best_of(lambda: queue_generate(model, batch, length, generator=gen), repeats, model.device)


def use_triton(model: WaveNet, device: torch.device, flag: str) -> bool:
    """Time the fused Triton kernel too? ``auto``: on CUDA, for mu-law heads, when triton imports."""
    from arsound.audio import wavenet_triton

    ok = device.type == "cuda" and model.config.head == "mulaw" and wavenet_triton.available()
    if flag == "on" and not ok:
        raise ValueError("--triton on needs a CUDA device, a mu-law preset and the triton package")
    return ok and flag != "off"


def header(device: torch.device) -> str:
    dev = torch.cuda.get_device_name(device) if device.type == "cuda" else f"CPU: {cpu_name()}"
    load = " / ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    return (f"device {device} ({dev}), {os.cpu_count()} logical CPUs, torch {torch.__version__}, "
            f"torch threads {torch.get_num_threads()}, load average {load}")


def run(args) -> list[str]:
    device = torch.device(args.device)
    batches = [1, 8, 32] + ([256] if device.type == "cuda" else [])
    lengths = [1000, 4000] if args.quick else [1000, 4000, 16000]
    gen_len = 1000 if args.quick else 4000
    lines = [f"# WaveNet generation ({'quick' if args.quick else 'full'} run)", "", header(device), ""]
    threads = torch.get_num_threads()
    lines += ["| preset | rf | batch | naive per stream, samples/s (threads) | queue-shifting per stream (samples/s) "
              "| cached per stream (samples/s) | cached aggregate (samples/s) | cached / naive | cached / queue "
              "| native per stream, 1 thread (samples/s) | native aggregate, 1 thread | native / queue "
              f"| native aggregate, {threads} threads | thread scaling "
              "| native bf16 per stream, 1 thread | bf16 / fp32 "
              "| fused Triton aggregate (samples/s) | Triton / cached | CUDA graph aggregate (samples/s) "
              "| graph / cached |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    sweeps, rates = [], {}                          # rates[(preset, B)]: path -> aggregate samples/s
    for preset in args.presets.split(","):
        model = build(preset, device)
        check_queue(model)
        rf = model.receptive_field
        for B in batches:
            steps = 1 if B >= 32 and device.type == "cpu" else 3
            naive, naive_threads = naive_seconds_per_step(model, B, steps, min(args.repeats, 2))
            n = max(200, gen_len // (4 if B >= 32 else 1))
            cached = cached_seconds(model, B, n, args.repeats, method="cached") / n
            nq = max(100, n // 4)
            queue = queue_seconds(model, B, nq, min(args.repeats, 2)) / nq
            got = rates[(preset, B)] = {"queue": B / queue, "cached": B / cached}
            nat = "not run | - | - | - | - | - | -"
            if device.type == "cpu" and NativeWaveNet.covers(model, None, None, device) and NativeWaveNet.available():
                native = native_seconds(model, B, n, args.repeats) / n
                multi = native_seconds(model, B, n, args.repeats, threads) / n if B > 1 and threads > 1 else native
                half = native_seconds(model, B, n, args.repeats, precision="bf16") / n
                got.update(native=B / native, native_threads=B / multi)
                nat = (f"{1 / native:,.0f} | {B / native:,.0f} | {queue / native:,.1f}x | {B / multi:,.0f} | "
                       f"{native / multi:,.2f}x | {1 / half:,.0f} | {native / half:,.2f}x")
            fused = "not run | -"
            if use_triton(model, device, args.triton):
                tri = cached_seconds(model, B, n, args.repeats, method="triton") / n
                got["triton"] = B / tri
                fused = f"{B / tri:,.0f} | {cached / tri:,.2f}x"
            graph = "not run | -"
            if device.type == "cuda" and GraphWaveNet.covers(model, None, None):
                gr = cached_seconds(model, B, n, args.repeats, method="graph") / n
                got["graph"] = B / gr
                graph = f"{B / gr:,.0f} | {cached / gr:,.2f}x"
            lines.append(f"| {preset} | {rf} | {B} | {1 / naive:,.1f} ({naive_threads}) | {1 / queue:,.0f} | "
                         f"{1 / cached:,.0f} | {B / cached:,.0f} | {naive / cached:,.0f}x | {queue / cached:,.1f}x | "
                         f"{nat} | {fused} | {graph} |")
            print(lines[-1], flush=True)
        best = {T: float("inf") for T in lengths}
        for _ in range(args.repeats):  # lengths interleaved, so a busy moment does not hit one length only
            for T in lengths:
                best[T] = min(best[T], cached_seconds(model, 1, T, 1))
        for T, s in best.items():
            sweeps.append(f"| {preset} | {T:,} | {s / T * 1e6:,.0f} | {T / s:,.0f} |")
            print(sweeps[-1], flush=True)
    lines += ["", "Cached generation, batch 1: time per sample vs generated length (should stay flat).", "",
              "| preset | length | µs per sample | samples/s |", "|---|---:|---:|---:|", *sweeps]
    if args.targets:
        lines += ["", *targets(rates, device, threads)]
    return lines


def targets(rates: dict, device: torch.device, threads: int) -> list[str]:
    """Issue 21's targets against this run's figures, met or missed (a path not run is said so)."""
    def line(what: str, value: float | None, bound: float) -> str:
        if value is None:
            return f"- {what}: not measured in this run (>= {bound:,.0f}: unknown)"
        return f"- {what}: {value:,.0f} (>= {bound:,.0f}: {'met' if value >= bound else 'missed'})"

    def rate(preset: str, B: int, path: str) -> float | None:
        return rates.get((preset, B), {}).get(path)

    out = ["Targets (issue 21):"]
    if device.type == "cpu":
        m1, q1 = rate("medium", 1, "native"), rate("medium", 1, "queue")
        out.append(line("medium, native, per stream at batch 1, one thread (samples/s)", m1, 10_000))
        if m1 and q1:
            out.append(f"- medium, native / queue-shifting at batch 1: {m1 / q1:.1f}x "
                       f"(>= 10x: {'met' if m1 >= 10 * q1 else 'missed'})")
        out.append(line("mol24, native, per stream at batch 1, one thread (samples/s)",
                        rate("mol24", 1, "native"), 3000))
        out.append(line(f"medium, native, aggregate at batch 32 on {threads} threads (samples/s)",
                        rate("medium", 32, "native_threads"), 100_000))
    else:
        best1 = max(filter(None, (rate("medium", 1, p) for p in ("triton", "graph", "cached"))), default=None)
        agg = max((v for (pr, _), r in rates.items() if pr == "medium" for k, v in r.items() if k != "queue"),
                  default=None)
        out.append(line("medium, per stream at batch 1, best GPU path (samples/s)", best1, 42_000))
        out.append(line("medium, aggregate, best GPU path and batch (samples/s)", agg, 1_000_000))
    return out


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="wavenet_generation", description=__doc__.split("\n")[0])
    p.add_argument("--device", default="cpu", help="cpu, cuda, cuda:1 ... (default cpu)")
    p.add_argument("--quick", action="store_true", help="shorter runs (1k / 4k lengths)")
    p.add_argument("--threads", type=int, default=None,
                   help="torch intra-op threads (default: all logical CPUs on cpu, torch's default on cuda)")
    p.add_argument("--presets", default=",".join(PRESETS), help=f"comma-separated, from {PRESETS}")
    p.add_argument("--repeats", type=int, default=None,
                   help="timed runs per measurement, the best is kept (default 3; 1 with --quick)")
    p.add_argument("--markdown", help="also write the tables to this markdown file")
    p.add_argument("--targets", action="store_true", help="end with issue 21's targets, met or missed")
    p.add_argument("--triton", choices=("auto", "on", "off"), default="auto",
                   help="also time the fused Triton kernel (auto: on CUDA for mu-law presets when triton imports)")
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    args.repeats = args.repeats or (1 if args.quick else 3)
    bad = set(args.presets.split(",")) - set(PRESETS)
    if bad:
        raise ValueError(f"unknown preset(s) {sorted(bad)}; choose from {PRESETS}")
    if args.device.startswith("cuda") and not torch.cuda.is_available():
        raise ValueError("--device cuda asked for, but torch sees no CUDA device; use --device cpu")
    if args.threads is not None or args.device == "cpu":
        torch.set_num_threads(args.threads or os.cpu_count() or 1)
    print(header(torch.device(args.device)), flush=True)
    lines = run(args)
    load = " / ".join(f"{v:.2f}" for v in os.getloadavg()) if hasattr(os, "getloadavg") else "n/a"
    lines += ["", f"Load average at the end: {load}."]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
