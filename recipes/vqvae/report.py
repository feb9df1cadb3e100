"""The reconstruction table of a trained VQ-VAE on whole held-out files, as the recipe's final report makes it:

    python recipes/vqvae/report.py MODEL_DIR_OR_NAME [--root data_cache] [--name chorales] [--split test]
                                   [--seconds 20] [--files 0] [--json OUT.json]

Per level: SI-SDR, log-spectral distance and MR-STFT of the middle ``--seconds`` of every file of the split
(``--files`` spread over it, 0: all), encoded and decoded in windows; tokens/s, bits/s, and the code
histogram's perplexity, effective usage and codes used on these files.
"""
from __future__ import annotations

import argparse
import os

import torch

from arsound.audio.vqvae_report import reconstruction_report, reconstruction_table
from arsound.core.checkpoint import hardware, load
from arsound.core.files import write_json
from arsound.data.audio import AudioDataset
from arsound.data.clips import heldout_files


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("model")
    p.add_argument("--root", default="data_cache")
    p.add_argument("--name", default="chorales")
    p.add_argument("--split", default="test")
    p.add_argument("--seconds", type=float, default=20.0)
    p.add_argument("--files", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--json", help="also write the rows here")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    model = load(args.model)
    wavs, ids = heldout_files(AudioDataset(args.name, args.split, root=args.root), args.seconds, args.files)
    rows, _ = reconstruction_report(model, wavs)
    seconds = sum(len(w) for w in wavs) / model.config.sample_rate
    print(f"{args.model} on {args.name}/{args.split}: {len(ids)} files, {seconds:.0f} s; {hardware()}; load average "
          f"{' / '.join(f'{v:.2f}' for v in os.getloadavg())}\n\n{reconstruction_table(rows)}")
    out = {"model": args.model, "split": args.split, "files": ids, "seconds": seconds, "levels": rows}
    if args.json:
        write_json(args.json, out)
    return out


if __name__ == "__main__":
    main()
