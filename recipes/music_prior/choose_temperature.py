"""Choose the levels' sampling temperatures on the validation split (never the test split).

    python recipes/music_prior/choose_temperature.py --model runs/music_new [--clips 32] \\
        [--temperatures 1 0.9 0.8 0.7] [--top-temperatures 1.2 1.1 1 0.9]

For each candidate ``T``, the real level-2 codes of ``--clips`` validation clips (the middle ``--seconds`` of the
first files) are upsampled with the top level kept and temperature ``T`` at every level below, and the result is
scored as ``evaluate.py`` scores music: the Frechet distance of log-mel frames against all the validation clips,
chroma distance and key clarity. The lowest Frechet distance wins. Then, with ``--top-temperatures``, the
top prior's: ``--clips`` clips generated from nothing at each candidate (clip ``i`` asked for the instrument of
validation clip ``i``, one seed per batch, as ``evaluate.py`` does; the upsamplers at the temperature just chosen),
scored the same way; the lowest Frechet distance wins (without it the top prior keeps its own temperature). It prints
the tables and the ``assemble.py --temperature`` to use. Use 32 clips (the default): sweeps of 8 or 16 clips
generated only one or two instruments and swung by tens of points from clip to clip (8 clips once picked 0.9
at the top; 32 clips then measured 1.1 far better than 1.0: 32.0 vs 66.1). ``--temperatures`` or
``--top-temperatures`` given with no value keep the model's own.

Then, with ``--guidances``, the upsamplers' upper-code guidance (``music/generator.py``) on ``--guidance-levels``
(default: every upsampler): the top codes of ``--clips`` clips from nothing (instruments and seeds as above, the
temperatures just chosen) are drawn once and upsampled under each weight with the same seeds, a paired
comparison, scored as above and by ``evaluate.py``'s instrument classifier (trained on the training clips).
Guidance is for pitch, and it must keep the sound: among the weights whose Frechet distance is within one
bootstrap standard deviation of the lowest and whose instrument accuracy is within 0.1 of the best, the highest
key clarity wins. (The first rule had only the Frechet condition; it chose 0.5 from 0 / 0.5 / 1, which on both
splits turned most organ clips into strings for the classifier, so the instrument condition was added, and with
0.25 among the candidates the sweep chose 0.25.)

Then, with ``--drafts``, the number of drafts on ``--draft-levels`` (default: every upsampler; each clip's draft
whose pitch follows the level above best is kept, ``music/generator.py``): the same top codes, seeds and rule,
at the guidance just chosen (or the model's own).
"""
from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from arsound.audio.music_metrics import chroma_histogram, logmel_frames  # noqa: E402
from arsound.core.checkpoint import load  # noqa: E402
from arsound.core.files import write_json  # noqa: E402
from arsound.data.audio import AudioDataset  # noqa: E402
from arsound.data.clips import heldout_files  # noqa: E402
from arsound.music.generator import CONTRASTS, MusicGenerator  # noqa: E402
from recipes.music_prior.evaluate import (instrument_accuracy, instrument_batches, instrument_classifier,  # noqa: E402
                                          reference_instruments, set_figures)


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="music-chorales")
    p.add_argument("--clips", type=int, default=32)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--temperatures", type=float, nargs="*", default=[1.0, 0.9, 0.8, 0.7])
    p.add_argument("--top-temperatures", type=float, nargs="*", default=[],
                   help="also sweep the top prior's temperature over these (generation from nothing)")
    p.add_argument("--guidances", type=float, nargs="*", default=[],
                   help="also sweep the upsamplers' upper-code guidance over these weights (from nothing)")
    p.add_argument("--guidance-levels", type=int, nargs="+", help="the levels guided (default: every upsampler)")
    p.add_argument("--drafts", type=int, nargs="*", default=[],
                   help="also sweep the upsamplers' number of drafts over these (from nothing, after guidance)")
    p.add_argument("--draft-levels", type=int, nargs="+", help="the levels drafted (default: every upsampler)")
    p.add_argument("--contrast", choices=CONTRASTS, default="reversed",
                   help="what guidance contrasts with (music/generator.py; dropped: an upsampler trained with "
                        "condition dropout)")
    p.add_argument("--root", default="data_cache")
    p.add_argument("--name", default="chorales")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--out", default="", help="also write the figures to this JSON file")
    args = p.parse_args(argv)
    gen = load(args.model)
    if not isinstance(gen, MusicGenerator):
        raise SystemExit(f"{args.model} is not a MusicGenerator")
    sr, levels = gen.sample_rate, gen.levels
    valid = AudioDataset(args.name, "valid", root=args.root)
    real_wavs, real_ids = heldout_files(valid, args.seconds)                   # every validation file
    real = [w.numpy() for w in real_wavs]
    ref_frames = np.concatenate([logmel_frames(w, sr) for w in real])
    ref_chroma = np.mean([chroma_histogram(w, sr) for w in real], 0)
    top, plan = levels[0], reference_instruments(gen, valid, real_ids, args.clips)     # clip i: real clip i's
    with torch.no_grad():
        tops = [gen.vqvae.encode(torch.from_numpy(w)[None])[top][0] for w in real[:args.clips]]
    rows = {}
    for T in args.temperatures:
        t0, wavs = time.perf_counter(), []
        for b in range(0, len(tops), args.batch):
            codes = [torch.stack(tops[b:b + args.batch]) if lv == top else [] for lv in range(len(gen.vqvae.hops))]
            res = gen.generate(args.seconds, len(codes[top]), seed=b, codes=codes, instrument=plan[b:b + args.batch],
                               temperature=(1.0,) + (T,) * (len(levels) - 1), progress=True)
            wavs += [y.numpy() for y in res.audio]
        rows[T] = {**set_figures(wavs, sr, ref_frames, ref_chroma), "seconds": round(time.perf_counter() - t0, 1)}
        print(f"T {T}: " + ", ".join(f"{k} {v:.3f}" for k, v in rows[T].items()), flush=True)
    own = gen.temperatures
    if rows:
        best = min(rows, key=lambda t: rows[t]["frechet"])
        table(rows, best, "upsampler temperature")
    below = (best,) * (len(levels) - 1) if rows else tuple(own[lv] for lv in levels[1:])
    top_rows, top_best = {}, (own[top] if not args.top_temperatures else 1.0)
    for T in args.top_temperatures:
        t0, wavs = time.perf_counter(), []
        for inst, idx in instrument_batches(plan, args.batch):
            res = gen.generate(args.seconds, len(idx), seed=idx[0], instrument=inst,
                               temperature=(T,) + below, progress=True)
            wavs += [y.numpy() for y in res.audio]
        top_rows[T] = {**set_figures(wavs, sr, ref_frames, ref_chroma), "seconds": round(time.perf_counter() - t0, 1)}
        print(f"top T {T}: " + ", ".join(f"{k} {v:.3f}" for k, v in top_rows[T].items()), flush=True)
    if top_rows:
        top_best = min(top_rows, key=lambda t: top_rows[t]["frechet"])
        table(top_rows, top_best, f"top temperature (from nothing; upsamplers at {', '.join(f'{t:g}' for t in below)})")
    chosen = (top_best,) + below
    print(f"\nchosen: assemble.py ... --temperature {' '.join(f'{t:g}' for t in chosen)}")
    guide_rows, guidance = {}, tuple(gen.guidances.values())
    draft_rows, drafts = {}, tuple(gen.drafts.values())
    if args.guidances or args.drafts:
        names = list(gen.priors[str(top)].config.label_names)
        clf = instrument_classifier(AudioDataset(args.name, "train", root=args.root), args.seconds) if names else None
        codes = [None] * len(plan)
        for inst, idx in instrument_batches(plan, args.batch):            # the top codes, drawn once
            res = gen.generate(args.seconds, len(idx), seed=idx[0], instrument=inst, temperature=top_best,
                               stop_level=top, decode=False)
            for j, i in enumerate(idx):
                codes[i] = res.codes[top][j]

        def upsampled(what: str, **settings) -> dict:
            """The top codes upsampled with the same seeds under ``settings``, scored; a paired comparison."""
            t0, wavs = time.perf_counter(), []
            for b in range(0, len(codes), args.batch):
                given = [torch.stack(codes[b:b + args.batch]) if lv == top else [] for lv in range(len(gen.vqvae.hops))]
                res = gen.generate(args.seconds, len(given[top]), seed=b, codes=given, temperature=chosen,
                                   contrast=args.contrast, progress=True, **settings,
                                   instrument=plan[b:b + args.batch])             # the clips' own, as drawn
                wavs += [y.numpy() for y in res.audio]
            acc = instrument_accuracy(clf, wavs, sr, plan) if clf is not None else 1.0
            row = {**set_figures(wavs, sr, ref_frames, ref_chroma), "instrument_accuracy": acc,
                   "seconds": round(time.perf_counter() - t0, 1)}
            print(f"{what}: " + ", ".join(f"{k} {v:.3f}" for k, v in row.items()), flush=True)
            return row

    if args.guidances:
        guided = args.guidance_levels or levels[1:]
        for w in args.guidances:
            guide_rows[w] = upsampled(f"guidance {w}", guidance=tuple(w if lv in guided else 0.0 for lv in levels),
                                      drafts=drafts)
        w_best = keeps_the_sound(guide_rows)
        guidance = tuple(w_best if lv in guided else 0.0 for lv in levels)
        table(guide_rows, w_best, f"guidance at levels {guided} (from nothing; the top at {top_best:g})")
        print(f"chosen: assemble.py ... --guidance {' '.join(f'{w:g}' for w in guidance)}")
    if args.drafts:
        drafted = args.draft_levels or levels[1:]
        for k in args.drafts:
            draft_rows[k] = upsampled(f"drafts {k}", guidance=guidance,
                                      drafts=tuple(k if lv in drafted else 1 for lv in levels))
        k_best = keeps_the_sound(draft_rows)
        drafts = tuple(k_best if lv in drafted else 1 for lv in levels)
        table(draft_rows, k_best, f"drafts at levels {drafted} (from nothing; guidance "
                                  f"{', '.join(f'{w:g}' for w in guidance)})")
        print(f"chosen: assemble.py ... --drafts {' '.join(map(str, drafts))}")
    result = {"model": args.model, "clips": len(tops), "reference_clips": len(real), "seconds": args.seconds,
              "sweep": {str(k): v for k, v in rows.items()}, "top_sweep": {str(k): v for k, v in top_rows.items()},
              "guidance_sweep": {str(k): v for k, v in guide_rows.items()},
              "draft_sweep": {str(k): v for k, v in draft_rows.items()},
              "chosen": list(chosen), "chosen_guidance": list(guidance), "chosen_drafts": list(drafts),
              "contrast": args.contrast}
    if args.out:
        write_json(args.out, result)
    return result


def keeps_the_sound(rows: dict) -> float:
    """Of the settings whose Frechet distance is within one bootstrap sd of the lowest and whose instrument
    accuracy is within 0.1 of the best (pitch must not cost the sound), the one with the highest key clarity."""
    low = min(rows.values(), key=lambda r: r["frechet"])
    keeps = max(r["instrument_accuracy"] for r in rows.values()) - 0.1
    close = [w for w, r in rows.items() if r["frechet"] <= low["frechet"] + low["frechet_sd"]]
    near = [w for w in close if rows[w]["instrument_accuracy"] >= keeps - 1e-9] or close
    return max(near, key=lambda w: rows[w]["key_clarity"])


def table(rows: dict, best: float, what: str) -> None:
    inst = all("instrument_accuracy" in r for r in rows.values())
    print(f"\n| {what} | Frechet log-mel (± sd) | chroma distance | key clarity (± se) |"
          + (" instrument accuracy |" if inst else "") + "\n|---:|---:|---:|---:|" + ("---:|" if inst else ""))
    for T, r in rows.items():
        print(f"| {T:g}{' (chosen)' if T == best else ''} | {r['frechet']:.2f} ± {r['frechet_sd']:.2f} | "
              f"{r['chroma_tv']:.3f} | {r['key_clarity']:.3f} ± {r['key_clarity_se']:.3f} |"
              + (f" {r['instrument_accuracy']:.2f} |" if inst else ""))


if __name__ == "__main__":
    main()
