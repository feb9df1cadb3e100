"""``arsound data prepare NAME [--root DIR] [--limit N] [--force] ...``: build a dataset from installed
packages, reproducibly and resumably (:mod:`arsound.data.prepare`)."""
from __future__ import annotations

import argparse
import json
import sys
import time

from ..data import prepare as prepare_module
from ..data.audio import DEFAULT_ROOT, DataError
from ..data.images import IMAGE_DATASETS
from ..data.prepare import DATASETS, PROGRAMS, SOUNDFONT, VOICES, prepare, prepare_images
from .common import no_extra, output_folder


def add_parser(subparsers) -> None:
    d = subparsers.add_parser("data", help="prepare datasets from installed packages",
                              description="Prepare datasets from installed packages (no downloads).")
    dsub = d.add_subparsers(dest="data_verb", required=True, metavar="ACTION")
    doc = (prepare_module.__doc__ or "").split("\n\n") + ["", "", ""]  # (no docstrings under python -OO)
    p = dsub.add_parser("prepare", help="render / decode a dataset into ROOT/NAME with a manifest.json",
                        description=doc[1], epilog=doc[2],
                        formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", metavar="NAME", help=f"dataset: {', '.join([*DATASETS, *IMAGE_DATASETS])}")
    p.add_argument("--root", default=DEFAULT_ROOT, help=f"output root (default {DEFAULT_ROOT}/)")
    p.add_argument("--limit", type=int, help="prepare only the first N files (in the dataset's fixed order)")
    p.add_argument("--force", action="store_true", help="redo every file, even those that verify")
    p.add_argument("--all-programs", action="store_true",
                   help=f"chorales: render every piece with all programs {PROGRAMS} (default: one each)")
    p.add_argument("--soundfont", help=f"chorales: GM soundfont (default {SOUNDFONT})")
    p.add_argument("--languages", help=f"speech: comma-separated subset of {','.join(VOICES)} (default all)")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_data)


def cmd_data(args, extra: list[str]) -> int:
    no_extra(extra)
    if args.name not in DATASETS and args.name not in IMAGE_DATASETS:
        raise DataError(f"unknown dataset '{args.name}'; choose from {sorted([*DATASETS, *IMAGE_DATASETS])}")
    output_folder(args.root)
    options = {}
    if args.name in IMAGE_DATASETS:
        if args.limit or args.all_programs or args.soundfont or args.languages:
            raise DataError(f"'{args.name}' takes only --root (it is prepared whole from its package)")
        mpath = prepare_images(args.name, root=args.root)
        print(f"{args.name}: wrote {', '.join(f['path'] for f in json.loads(mpath.read_text())['files'])} "
              f"and {mpath.name} in {mpath.parent}")
        return 0
    if args.name in ("chorales", "chorales-2sf"):
        if args.languages:
            raise DataError("--languages applies to 'speech' only")
        if args.soundfont and args.name == "chorales-2sf":
            raise DataError("--soundfont applies to 'chorales' only ('chorales-2sf' renders with FluidR3_GM and "
                            "TimGM6mb)")
        options = {"all_programs": args.all_programs, "soundfont": args.soundfont}
    elif args.name == "speech":
        if args.all_programs or args.soundfont:
            raise DataError("--all-programs and --soundfont apply to 'chorales' only")
        options = {"languages": args.languages}
    t0 = time.monotonic()
    r = prepare(args.name, root=args.root, limit=args.limit, force=args.force, progress=not args.quiet, **options)
    print(f"{args.name}: {r.files} files, {r.seconds / 60:.1f} min of audio in {r.manifest.parent} "
          f"({r.made} made, {r.verified} verified unchanged, {len(r.failed)} failed) in {time.monotonic() - t0:.0f} s")
    for f in r.failed[:5]:
        print(f"  failed {f['id']}: {f['error']}", file=sys.stderr)
    if len(r.failed) > 5:
        print(f"  ... and {len(r.failed) - 5} more, listed in {r.manifest}", file=sys.stderr)
    return 0
