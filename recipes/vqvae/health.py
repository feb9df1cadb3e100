"""Codebook health of a trained VQ-VAE over whole held-out splits (every tile, not a subset of batches).

    python recipes/vqvae/health.py MODEL_DIR_OR_NAME [--root data_cache] [--name chorales] [--splits valid,test]
                                   [--segment 8192] [--json OUT.json]

Per split and level: perplexity and effective usage (entropy / log2 K) of the code histogram over every
``segment``-sample tile of the split, codes used / unused, and the model's training-side counters (dead
codes by EMA count, restarts so far). Eval mode: nothing is updated.
"""
from __future__ import annotations

import argparse

import torch

from arsound.audio.vqvae_report import codebook_report
from arsound.core.checkpoint import load
from arsound.core.files import write_json
from arsound.data.audio import AudioDataset
from arsound.data.clips import ClipDataset


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--root", default="data_cache")
    p.add_argument("--name", default="chorales")
    p.add_argument("--splits", default="valid,test")
    p.add_argument("--segment", type=int, default=8192)
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="also write the numbers here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load(args.model)
    out = {}
    for split in args.splits.split(","):
        ds = ClipDataset(AudioDataset(args.name, split, root=args.root), split, args.segment)
        rep = codebook_report(model, ds, args.batch_size)
        out[split] = {"tiles": len(ds), "seconds": len(ds) * args.segment / ds.sample_rate, **rep}
        print(f"{split} ({len(ds)} tiles, {out[split]['seconds']:.0f} s):")
        for l in range(model.levels):
            print(f"  level {l}: perplexity {rep[f'l{l}_perplexity']:.1f}, usage {100 * rep[f'l{l}_usage']:.1f}%, "
                  f"used {rep[f'l{l}_used']}/{model.config.quantizer.num_codes} (unused {rep[f'l{l}_unused']}), "
                  f"dead by EMA count {rep[f'l{l}_dead']}, restarts {rep[f'l{l}_restarts']}")
    if args.json:
        write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
