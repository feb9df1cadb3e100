"""Music generation speed: the hierarchy of priors (``music/generator.py``), cached vs naive, per level and whole.

    python benchmarks/music_generation.py [--preset small | --model music-chorales] [--context 2048] [--seconds 4]
                                          [--batches 1,8] [--device cpu|cuda] [--dtype float32|bfloat16] [--threads 2]
    arsound bench music [same options]

Random weights (speed does not depend on training), the ``small`` preset unless told: the ``vqvae-chorales``
tokenizer (16 kHz, hops 8 / 32 / 128) and a 6-layer, 128-wide TokenPrior per level cycling row / column /
prev_row attention (block 32). ``--model``: a trained hierarchy (a registry name or folder) instead, each level's
window then at its own prior's context.

1. Per level, one window of ``--context`` tokens at batch 1 (default 2,048 tokens, the issue's target context):
   cached tokens/s (KV caches, one token per step through the blocks, the whole window timed) against naive
   tokens/s (no cache: one forward over the tokens so far for every new token, the best an uncached sampler
   can do; timed at 8 evenly spaced positions of the window and averaged, which is the window's mean cost;
   ``--threads`` threads, while the cached steps run on one CPU thread as the generator runs them),
   their ratio, and the KV memory one stream holds at the end of the window, beside what a full cache (every
   key of every layer) would hold.
2. The whole hierarchy at the preset's own context: ``--seconds`` of music from nothing, at each batch size:
   seconds per level, real-time factor (compute seconds per second of audio) per stream and in aggregate
   (``batch x seconds`` of audio), and the time to a top-level preview. With the model's own sampling settings
   (its upper-code guidance and drafts included); ``--unguided`` also times each batch with the plain sampler (no
   guidance, one draft per level), side by side, and prints the model's settings / plain.
The header names the device, CPU, threads and load average: other processes on the machine slow it down.
"""
from __future__ import annotations

import argparse
import contextlib
import os
import time

import torch

from arsound.core.attention import kv_cache_bytes
from arsound.core.checkpoint import hardware
from arsound.core.device import step_threads
from arsound.core.model import Canvas, run_steps
from arsound.music.generator import PRESETS, MusicGenerator, MusicGeneratorConfig


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def conditions(prior, B: int, T: int, device) -> dict:
    cfg, g = prior.config, torch.Generator().manual_seed(1)
    cond = {}
    if cfg.num_labels:
        cond["label"] = torch.zeros(B, dtype=torch.long, device=device)
    if cfg.timing:
        cond["start"], cond["total"] = torch.zeros(B, dtype=torch.long), torch.full((B,), 4 * T)
    if cfg.upper_vocab:
        cond["upper"] = torch.randint(0, cfg.upper_vocab, (B, -(-T // cfg.ratio)), generator=g).to(device)
    return cond


@contextlib.contextmanager
def noting_caches(prior, steps, last: int, held: dict):
    """``steps`` that note the bytes the prior's KV caches hold at step ``last``."""
    with steps as step:
        def noted(s, prev):
            out = step(s, prev)
            if s == last:
                held["bytes"] = kv_cache_bytes(prior)
            return out

        yield noted


def cached_window(prior, T: int, device) -> tuple[float, int]:
    """Seconds to sample one window of ``T`` tokens with the KV caches, and the KV bytes held at its end."""
    warm = Canvas(prior, 1, generator=torch.Generator().manual_seed(0), shape=(8,), order=torch.arange(8))
    run_steps(prior, warm, prior.steps(warm, **conditions(prior, 1, 8, device)))
    canvas = Canvas(prior, 1, generator=torch.Generator().manual_seed(0), shape=(T,), order=torch.arange(T))
    held = {}
    _sync(device)
    t0 = time.perf_counter()
    with step_threads(device, 1):  # as the generator runs its steps
        run_steps(prior, canvas, noting_caches(prior, prior.steps(canvas, **conditions(prior, 1, T, device)), T - 1,
                                               held))
    _sync(device)
    return time.perf_counter() - t0, held["bytes"]


@torch.no_grad()
def naive_token_seconds(prior, T: int, device, points: int = 8) -> float:
    """Mean seconds per token without a cache: one forward over the first ``s + 1`` tokens for new token ``s``,
    at ``points`` evenly spaced ``s`` (each timed once after one warm-up)."""
    x = torch.randint(0, prior.config.vocab, (1, T), generator=torch.Generator().manual_seed(2)).to(device)
    times = []
    for s in torch.linspace(0, T - 1, points).round().long().tolist():
        cond = conditions(prior, 1, s + 1, device)
        prior(x[:, :s + 1], **cond)
        _sync(device)
        t0 = time.perf_counter()
        prior(x[:, :s + 1], **cond)
        _sync(device)
        times.append(time.perf_counter() - t0)
    return sum(times) / len(times)


def full_cache_bytes(prior, dtype) -> int:
    cfg = prior.config
    return 2 * cfg.layers * cfg.context * cfg.dim * torch.tensor([], dtype=dtype).element_size()


def build(args, device, dtype, **prior) -> MusicGenerator:
    """The ``--model`` hierarchy, or the ``--preset`` one with random weights (``prior``: its overrides)."""
    if args.model:
        from arsound.core.checkpoint import load

        gen = load(args.model)
        if not isinstance(gen, MusicGenerator):
            raise SystemExit(f"--model {args.model}: a {type(gen).__name__}, not a MusicGenerator")
        return gen.to(device=device, dtype=dtype).eval()
    torch.manual_seed(0)
    return MusicGenerator(MusicGeneratorConfig.from_preset(args.preset, **prior)).to(device=device, dtype=dtype).eval()


def per_level(args, device, dtype) -> list[dict]:
    gen = build(args, device, dtype, context=args.context)
    rows = []
    for lv in gen.levels:
        prior = gen.priors[str(lv)]
        T = prior.config.context if args.model else args.context
        cached, held = cached_window(prior, T, device)
        naive = naive_token_seconds(prior, T, device, args.naive_points)
        row = dict(level=lv, context=T, cached_tokens_s=T / cached, naive_tokens_s=1 / naive,
                   kv_stream_kb=held / 1024, kv_full_kb=full_cache_bytes(prior, dtype) / 1024)
        row["speedup"] = row["cached_tokens_s"] / row["naive_tokens_s"]
        rows.append(row)
        print(f"| {lv} | {T} | {row['cached_tokens_s']:.0f} | {row['naive_tokens_s']:.1f} | "
              f"{row['speedup']:.0f}x | {row['kv_stream_kb']:.0f} | {row['kv_full_kb']:.0f} |", flush=True)
    return rows


def whole(args, device, dtype) -> list[dict]:
    gen = build(args, device, dtype)
    top = gen.priors[str(gen.levels[0])].config
    instrument = 0 if top.num_labels else None                             # the first, where it takes one
    rows = []
    for n in (int(b) for b in args.batches.split(",")):
        gen.generate(gen.vqvae.max_hop / gen.sample_rate, n, seed=0, instrument=instrument)  # warm-up: one token
        _sync(device)
        t0 = time.perf_counter()
        out = gen.generate(args.seconds, n, seed=0, instrument=instrument)
        _sync(device)
        wall = time.perf_counter() - t0
        row = dict(batch=n, seconds=args.seconds, wall=wall, rtf_stream=wall / args.seconds,
                   rtf_aggregate=wall / (n * args.seconds), preview=out.seconds[gen.levels[0]],
                   **{f"level{lv}": s for lv, s in out.seconds.items()})
        extra = ""
        if args.unguided:
            t0 = time.perf_counter()
            plain = gen.generate(args.seconds, n, seed=0, instrument=instrument, guidance=0.0, drafts=1)
            _sync(device)
            row.update(unguided_wall=time.perf_counter() - t0,
                       **{f"unguided_level{lv}": s for lv, s in plain.seconds.items()})
            extra = f" {row['unguided_wall']:.1f} | {wall / row['unguided_wall']:.2f} |"
        rows.append(row)
        levels = " | ".join(f"{out.seconds[lv]:.1f}" for lv in gen.levels)
        print(f"| {n} | {args.seconds:g} | {levels} | {wall:.1f} | {row['rtf_stream']:.2f} | "
              f"{row['rtf_aggregate']:.2f} |{extra}", flush=True)
    return rows


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", default="small", choices=PRESETS)
    p.add_argument("--model", default="", help="a trained MusicGenerator (name or folder) instead of --preset")
    p.add_argument("--context", type=int, default=2048, help="window of the cached-vs-naive table (tokens)")
    p.add_argument("--naive-points", type=int, default=8)
    p.add_argument("--seconds", type=float, default=4.0, help="music per clip in the whole-hierarchy table")
    p.add_argument("--batches", default="1,8")
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16"))
    p.add_argument("--threads", type=int, default=torch.get_num_threads())
    p.add_argument("--skip-levels", action="store_true", help="only the whole-hierarchy table")
    p.add_argument("--unguided", action="store_true",
                   help="also time the plain sampler: no upper-code guidance, one draft per level")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("--device cuda: no CUDA device here")
    where = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    load = " / ".join(f"{v:.2f}" for v in os.getloadavg())
    what = f"model {args.model}" if args.model else f"preset {args.preset}, random weights"
    print(f"music generation, {what}, {args.dtype} on {where}; {hardware()}; load average {load}")
    result = {"levels": [], "whole": []}
    if not args.skip_levels:
        print("\n1. one window per level, batch 1\n\n"
              "| level | context | cached tokens/s | naive tokens/s | cached / naive | KV per stream (KiB) | "
              "full KV cache (KiB) |\n|---:|---:|---:|---:|---:|---:|---:|", flush=True)
        result["levels"] = per_level(args, device, dtype)
    config = build(args, device, dtype).config if args.model else MusicGeneratorConfig.from_preset(args.preset)
    priors = sorted(config.priors, key=lambda c: -c.level)                      # top first, as generated
    contexts = ", ".join(f"level {c.level}: context {c.context}" for c in priors)
    guidance = ", ".join(f"{w:g}" for w in (config.guidance or [0.0] * len(priors)))
    drafts = ", ".join(str(k) for k in (config.drafts or [1] * len(priors)))
    levels = " | ".join(f"level {c.level} (s)" for c in priors)
    print(f"\n2. the whole hierarchy ({contexts}; hop fraction 0.5; guidance {guidance}; drafts {drafts}), "
          f"{args.seconds:g} s per clip "
          f"from nothing\n\n| batch | seconds | {levels} | total (s) | RTF per stream | RTF aggregate |"
          + (" plain total (s) | own settings / plain |" if args.unguided else "")
          + f"\n|---:|---:|{'---:|' * len(priors)}---:|---:|---:|" + ("---:|---:|" if args.unguided else ""),
          flush=True)
    result["whole"] = whole(args, device, dtype)
    print(f"\nload average at the end {' / '.join(f'{v:.2f}' for v in os.getloadavg())}")
    return result


if __name__ == "__main__":
    main()
