"""A prepared audio set as FLAC, filtered by language: the same samples in about 60 % of the bytes, to carry to a
training machine (a GPU box, ``recipes/gpu.sh``) that cannot prepare the data itself.

    python recipes/vocoder/pack_data.py --data speech --language en -o .gpu_data   # then --data.root=.gpu_data

Writes ``OUT/NAME/manifest.json`` (the source manifest with only the kept files, each ``path`` under ``flac/``
and its ``sha256`` that of the FLAC file) and the files, lossless (16-bit PCM in, the same 16-bit samples out;
checked file by file). Everything is written to a temporary folder renamed at the end, so an interrupted or
failed run leaves nothing; an existing ``OUT/NAME`` is refused.
"""
from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from tqdm.auto import tqdm

from arsound.core.files import write_json
from arsound.data.audio import DataError, read_manifest, sha256_file


def pack(name: str, root: str | Path, out: str | Path, languages: list[str], progress: bool = True) -> Path:
    """FLAC copy of prepared set ``name`` under ``root`` into ``out/name`` (only ``languages``, if given)."""
    manifest, src, dest = read_manifest(name, root), Path(root) / name, Path(out) / name
    if dest.exists():
        raise DataError(f"{dest} exists; remove it or give another -o (nothing was changed)")
    files = [e for e in manifest["files"]
             if not languages or e.get("labels", {}).get("language") in languages]
    if not files:
        have = sorted({str(e.get("labels", {}).get("language")) for e in manifest["files"]})
        raise DataError(f"'{name}' has no file in language(s) {', '.join(languages)} (it has: {', '.join(have)})")
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{name}-", dir=dest.parent))
    try:
        kept = []
        for e in tqdm(files, desc=f"pack {name}", unit="file", disable=not progress, dynamic_ncols=True):
            x, sr = sf.read(src / e["path"], dtype="int16", always_2d=False)
            parts = Path(e["path"]).parts
            rel = str(Path("flac", *parts[parts[0] == "wav":]).with_suffix(".flac"))  # wav/en/x.wav: flac/en/x.flac
            (tmp / rel).parent.mkdir(parents=True, exist_ok=True)
            sf.write(tmp / rel, x, sr, format="FLAC", subtype="PCM_16")
            if not np.array_equal(sf.read(tmp / rel, dtype="int16", always_2d=False)[0], x):
                raise DataError(f"{src / e['path']}: the FLAC copy differs from it; nothing was written")
            kept.append({**e, "path": rel, "sha256": sha256_file(tmp / rel)})
        seconds = sum(e.get("duration", 0.0) for e in kept)
        write_json(tmp / "manifest.json", {**manifest, "files": kept, "failed": [], "skipped": [],
                                           "totals": {"files": len(kept), "seconds": round(seconds, 3)},
                                           "packed_from": {"root": str(root), "languages": languages,
                                                           "format": "FLAC, 16-bit PCM, lossless"}})
        tmp.rename(dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return dest


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", default="speech", help="a prepared set under --root (speech, chorales, ...)")
    p.add_argument("--root", default="data_cache")
    p.add_argument("--language", default="", help="speech: keep these languages, e.g. en or en,es (default all)")
    p.add_argument("-o", "--out", required=True, help="folder that gets OUT/DATA/")
    args = p.parse_args(argv)
    languages = [s for s in args.language.split(",") if s]
    try:
        dest = pack(args.data, args.root, args.out, languages)
    except (DataError, sf.LibsndfileError, OSError) as e:
        sys.exit(f"pack_data: {e}")
    size = sum(f.stat().st_size for f in dest.rglob("*") if f.is_file())
    print(f"pack_data: {dest} ({size / 1e6:.1f} MB); train with --data.root={Path(args.out)}")
    return dest


if __name__ == "__main__":
    main()
