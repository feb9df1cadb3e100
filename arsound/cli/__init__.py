"""``arsound <verb>``: a CLI of a few verbs (after descript-audio-codec's ``dac/__main__.py``), one module
per verb group; only this package parses arguments.

    arsound train RECIPE [--preset P] [--debug] [--out DIR] [--seed N] [--device D] [--a.b=value ...]
    arsound sample --model NAME_OR_DIR [--n N] [--out FILE] [--seed N] [--device D]     (images: PNG grid)
    arsound sample --model WAVENET [--seconds S] [--speaker ID] [--cond mel.npy] --out out.wav
    arsound generate --model MUSIC --seconds S [--n N] [--seed K] [--prompt in.wav | --codes c.npz] -o OUTDIR
    arsound vocode in.wav -o out.wav [--model NAME] [--compare]  |  arsound vocode --mel mel.npy -o out.wav
    arsound encode in.wav -o codes.npz [--model NAME_OR_DIR]  |  arsound decode codes.npz -o out.wav [--level L]
    arsound data prepare NAME [--root DIR] [--limit N] [--force]
    arsound eval --anomaly --model DIR_OR_NAME [--holdout C] [--out DIR]
    arsound bench NAME [options]
    arsound demo [--port 7860] [--share off]                   (the Gradio listening demo, 127.0.0.1)

User errors (bad arguments, missing or corrupt files, a diverging run) print one line
``arsound <verb>: error: ...`` and exit with status 2; set ``ARSOUND_DEBUG=1`` for the traceback.
"""
from __future__ import annotations

import argparse
import os
import sys

from ..core.checkpoint import CheckpointError
from ..core.train import TrainingError
from . import bench, codes, data, demo, generate, sample, train, vocode
from . import eval as eval_verb

USER_ERRORS = (ValueError, FileNotFoundError, CheckpointError, TrainingError)
VERBS = (train, sample, generate, bench, data, eval_verb, vocode, codes, demo)  # each: add_parser(subparsers)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="arsound", description="Autoregressive audio and image generation.")
    sub = p.add_subparsers(dest="verb", required=True, metavar="VERB")
    for verb in VERBS:
        verb.add_parser(sub)
    return p


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    try:
        return args.func(args, extra)
    except USER_ERRORS as e:
        if os.environ.get("ARSOUND_DEBUG"):
            raise
        print(f"arsound {args.verb}: error: {' '.join(str(e).split())}", file=sys.stderr)
        return 2
    except OSError as e:  # the file system refused (full disk, permissions changed mid-run ...): one line too
        if os.environ.get("ARSOUND_DEBUG"):
            raise
        where = f" '{e.filename}'" if e.filename else ""
        print(f"arsound {args.verb}: error: {e.strerror or e}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("arsound: interrupted", file=sys.stderr)
        return 130
