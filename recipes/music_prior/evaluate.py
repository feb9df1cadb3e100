"""The music, measured: generated clips against held-out real chorales, with anchors measured the same way.

    python recipes/music_prior/evaluate.py --model music-chorales [--clips 32] [--seconds 10] [--out runs/music_eval]

Sets (``--clips`` clips of ``--seconds`` each, 16 kHz): ``real test`` (the middle of every test file, the
reference), ``real train`` (the floor: real music that is not the reference), ``VQ-VAE test`` (the test clips
encoded and decoded at level 0: the best the tokenizer allows), ``real level-L codes, upsampled`` for each level
L above the bottom (the test clips' codes from the top down to level L kept, the levels below sampled by the
upsamplers: from the top, what the hierarchy gives with a perfect top prior; from the middle, what the bottom
upsampler does alone), ``generated`` (the hierarchy from nothing, clip ``i`` asked for the instrument of real test
clip ``i``, so the generated set has the reference's mix of instruments, as every anchor does; one seed per batch),
``bigram`` (level-0 tokens from an add-k bigram fitted on the training tokens, decoded at level 0) and ``noise``
(white, at the real clips' RMS).

Figures, none from a pretrained network (``audio/music_metrics.py``): the Frechet distance between Gaussians
of log-mel frames (64 bands) of each set and of ``real test``; the total-variation distance between their
mean chroma histograms; the mean key clarity (best Krumhansl-Kessler correlation); their error bars from having
only these clips (``frechet_sd``: the standard deviation over 200 bootstrap resamples of the set's clips, the
reference kept; ``key_clarity_se``: the standard error of the mean); and instrument accuracy:
a logistic regression on clip log-mel statistics, trained on real training clips, scored on real test clips
and on generated clips against the instrument they were asked for. Writes ``results.json``, ``table.md``,
``spectrograms.png`` and example WAVs (5 s) to ``--out``.
"""
from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from arsound.audio.io import save_audio  # noqa: E402
from arsound.audio.music_metrics import (bootstrap_frechet, chroma_histogram, frechet_distance,  # noqa: E402
                                         histogram_distance, key_clarity, logmel_frames)
from arsound.core.checkpoint import hardware, load, weights_id  # noqa: E402
from arsound.core.files import write_json, write_text  # noqa: E402
from arsound.data.audio import AudioDataset  # noqa: E402
from arsound.data.clips import heldout_files  # noqa: E402
from arsound.music.generator import CONTRASTS, MusicGenerator  # noqa: E402
from arsound.music.ngram import Bigram  # noqa: E402
from arsound.music.tokens import TokenSet  # noqa: E402


def clip_features(wav: np.ndarray, sr: int) -> np.ndarray:
    """Mean and standard deviation of each log-mel band: the instrument classifier's input ``[128]``."""
    f = logmel_frames(wav, sr)
    return np.concatenate([f.mean(0), f.std(0)])


def instrument_classifier(ds: AudioDataset, seconds: float):
    """A logistic regression on :func:`clip_features` of the middle ``seconds`` of every file of ``ds``."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    wavs, _ = heldout_files(ds, seconds)
    X = np.stack([clip_features(w.numpy(), ds.sample_rate) for w in wavs])
    y = np.array([e["labels"]["instrument"] for e in ds.items])
    return make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000)).fit(X, y)


def instrument_accuracy(clf, wavs: list[np.ndarray], sr: int, labels) -> float:
    """The share of ``wavs`` that :func:`instrument_classifier`'s ``clf`` labels as ``labels`` says."""
    return float(np.mean(clf.predict(np.stack([clip_features(w, sr) for w in wavs])) == np.array(labels)))


def given_or_own(values: list[float] | None, own: dict[int, float]):
    """A per-level setting from the command line: one value, one per level (a tuple), or the model's own."""
    return tuple(own.values()) if not values else values[0] if len(values) == 1 else tuple(values)


def set_figures(wavs: list[np.ndarray], sr: int, ref_frames: np.ndarray, ref_chroma: np.ndarray) -> dict:
    """The figures of one set of clips against the reference's log-mel frames and mean chroma, with error bars."""
    frames = [logmel_frames(w, sr) for w in wavs]
    chroma = [chroma_histogram(w, sr) for w in wavs]
    clarity = np.array([key_clarity(c)[0] for c in chroma])
    return {"frechet": frechet_distance(np.concatenate(frames), ref_frames),
            "frechet_sd": float(bootstrap_frechet(frames, ref_frames).std(ddof=1)) if len(frames) > 1 else 0.0,
            "chroma_tv": histogram_distance(np.mean(chroma, 0), ref_chroma),
            "key_clarity": float(clarity.mean()),
            "key_clarity_se": float(clarity.std(ddof=1) / np.sqrt(len(clarity))) if len(clarity) > 1 else 0.0}


def reference_instruments(gen: MusicGenerator, ds: AudioDataset, ids: list[str], clips: int) -> list:
    """The instrument each of ``clips`` generated clips asks for: clip ``i`` that of reference clip ``ids[i]``
    (cycling), so the generated set has the reference's mix; None each for a hierarchy without instrument names."""
    if not gen.priors[str(gen.levels[0])].config.label_names:
        return [None] * clips
    instrument_of = {e["id"]: e["labels"]["instrument"] for e in ds.items}
    return [instrument_of[ids[i % len(ids)]] for i in range(clips)]


def instrument_batches(asked: list, batch: int) -> list[tuple[object, list[int]]]:
    """Clip indices grouped by the instrument asked (first appearance first) into batches of at most ``batch``:
    ``[(instrument, [i, ...]), ...]``; one generator call each (the batches and seeds of every evaluation so far)."""
    out = []
    for inst in dict.fromkeys(asked):
        idx = [i for i, a in enumerate(asked) if a == inst]
        out += [(inst, idx[b:b + batch]) for b in range(0, len(idx), batch)]
    return out


def main(argv: list[str] | None = None) -> dict:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="music-chorales")
    p.add_argument("--clips", type=int, default=32)
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--root", default="data_cache")
    p.add_argument("--tokens", default="data_cache/tokens")
    p.add_argument("--name", default="chorales")
    p.add_argument("--temperature", type=float, nargs="+", metavar="T",
                   help="one, or one per level (top first); default: the model's own per level")
    p.add_argument("--guidance", type=float, nargs="+", metavar="W",
                   help="upper-code guidance, one or one per level (top first); default: the model's own per level")
    p.add_argument("--drafts", type=int, nargs="+", metavar="K",
                   help="drafts per clip at each level, the best pitch kept, one or one per level (top first); "
                        "default: the model's own per level")
    p.add_argument("--contrast", choices=CONTRASTS, default="reversed",
                   help="what guidance contrasts with (music/generator.py; dropped: an upsampler trained with "
                        "condition dropout)")
    p.add_argument("--out", default="runs/music_eval")
    args = p.parse_args(argv)
    gen = load(args.model)
    if not isinstance(gen, MusicGenerator):
        raise SystemExit(f"{args.model} is not a MusicGenerator")
    sr, out = gen.sample_rate, Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    test, train = (AudioDataset(args.name, s, root=args.root) for s in ("test", "train"))
    real_wavs, real_ids = heldout_files(test, args.seconds, args.clips)
    real = [w.numpy() for w in real_wavs]
    instrument_of = {e["id"]: e["labels"]["instrument"] for e in test.items}
    floor = [w.numpy() for w in heldout_files(train, args.seconds, args.clips)[0]]
    with torch.no_grad():
        recon = [gen.decode(gen.vqvae.encode(torch.from_numpy(w)[None])[0], 0, len(w))[0].numpy() for w in real]
    # bigram level-0 tokens, fitted on the training token set of this tokenizer
    tok = TokenSet(Path(args.tokens) / f"{args.name}-{weights_id(gen.vqvae)}" / "train", weights=weights_id(gen.vqvae))
    bigram = Bigram.fit([tok.codes(i)[0] for i in range(len(tok))], gen.config.tokenizer.quantizer.num_codes, 0.1)
    samples = int(args.seconds * sr)
    codes = bigram.sample(args.clips, samples // gen.vqvae.hops[0], generator=torch.Generator().manual_seed(0))
    bigram_wavs = [y.numpy() for y in gen.decode(codes, 0, samples)]
    rms = float(np.sqrt(np.mean(np.concatenate(real) ** 2)))
    noise = [np.random.default_rng(i).standard_normal(samples).astype(np.float32) * rms for i in range(args.clips)]
    temperature, guidance = given_or_own(args.temperature, gen.temperatures), given_or_own(args.guidance, gen.guidances)
    drafts = given_or_own(args.drafts, gen.drafts)
    # the real test clips' codes down to each upper level, the levels below sampled by the upsamplers: what the
    # upsamplers do alone (from the top: a perfect top prior; from the middle: the bottom upsampler alone)
    with torch.no_grad():
        real_codes = [gen.vqvae.encode(torch.from_numpy(w)[None]) for w in real]
    upsampled, up_s, plan = {}, {}, reference_instruments(gen, test, real_ids, args.clips)
    for upper in gen.levels[:-1]:
        upsampled[upper], up_s[upper] = [], 0.0
        for b in range(0, args.clips, args.batch):
            codes_ = [torch.stack([c[lv][0] for c in real_codes[b:b + args.batch]]) if lv >= upper else []
                      for lv in range(len(gen.vqvae.hops))]
            t1 = time.perf_counter()
            res = gen.generate(args.seconds, len(codes_[upper]), seed=b, codes=codes_, temperature=temperature,
                               guidance=guidance, contrast=args.contrast, drafts=drafts, progress=True,
                               instrument=plan[b:b + args.batch])                 # the real clips' own
            up_s[upper] += time.perf_counter() - t1
            upsampled[upper] += [y.numpy() for y in res.audio]
    # generated: clip i asks for the instrument of real test clip i (the reference's mix), one seed per batch
    names = list(gen.priors[str(gen.levels[0])].config.label_names) or [None]
    generated, asked, gen_s = [], [], 0.0
    for inst, idx in instrument_batches(plan, args.batch):
        t1 = time.perf_counter()
        res = gen.generate(args.seconds, len(idx), seed=idx[0], instrument=inst, temperature=temperature,
                           guidance=guidance, contrast=args.contrast, drafts=drafts, progress=True)
        gen_s += time.perf_counter() - t1
        generated += [y.numpy() for y in res.audio]
        asked += [inst] * len(idx)
    ref_frames = np.concatenate([logmel_frames(w, sr) for w in real])
    ref_chroma = np.mean([chroma_histogram(w, sr) for w in real], 0)
    sets = {"real test": real, "real train": floor, "VQ-VAE test (level 0)": recon,
            **{f"real level-{lv} codes, upsampled": w for lv, w in upsampled.items()}, "generated": generated,
            "bigram tokens (level 0)": bigram_wavs, "noise": noise}
    rows = {name: set_figures(w, sr, ref_frames, ref_chroma) for name, w in sets.items()}
    clf = instrument_classifier(train, args.seconds)
    acc_real = instrument_accuracy(clf, real, sr, [instrument_of[i] for i in real_ids])
    acc_gen = instrument_accuracy(clf, generated, sr, asked) if names != [None] else float("nan")
    result = {"model": args.model, "clips": args.clips, "seconds": args.seconds, "temperature": temperature,
              "guidance": guidance, "contrast": args.contrast, "drafts": drafts,
              "hardware": hardware(),
              "load": os.getloadavg(), "generation_s": round(gen_s, 1), "rtf": gen_s / (args.clips * args.seconds),
              "upsampling_s": {f"from level {lv}": round(t, 1) for lv, t in up_s.items()},
              "sets": rows, "instrument_accuracy": {"real test": acc_real, "generated": acc_gen},
              "generated_instruments": {str(k): asked.count(k) for k in dict.fromkeys(asked)},
              "wall_s": round(time.perf_counter() - t0, 1)}
    ref = rows["real test"]
    lines = ["| set | Frechet log-mel (± bootstrap sd) | chroma distance | key clarity (± se) |",
             "|---|---:|---:|---:|"]
    lines += [f"| {name} | {r['frechet']:.2f} ± {r['frechet_sd']:.2f} | {r['chroma_tv']:.3f} | "
              f"{r['key_clarity']:.3f} ± {r['key_clarity_se']:.3f} |" for name, r in rows.items()]
    g, bg, vq = rows["generated"], rows["bigram tokens (level 0)"], rows["VQ-VAE test (level 0)"]
    targets = [("Frechet: generated at least 2x closer than bigram", bg["frechet"] / max(g["frechet"], 1e-9), ">= 2",
                lambda v: v >= 2),
               ("Frechet: generated within 2x of VQ-VAE reconstructions", g["frechet"] / max(vq["frechet"], 1e-9),
                "<= 2", lambda v: v <= 2),
               ("key clarity: generated within 10% of real", g["key_clarity"] / ref["key_clarity"], "0.9 - 1.1",
                lambda v: 0.9 <= v <= 1.1),
               ("instrument accuracy: generated / real", acc_gen / max(acc_real, 1e-9), ">= 0.5", lambda v: v >= 0.5)]
    lines += ["", f"Instrument accuracy (logistic regression on real training clips): real test {acc_real:.2f}, "
                  f"generated {acc_gen:.2f}.", "", "| target | measured | wanted | |", "|---|---:|---|---|"]
    lines += [f"| {t} | {v:.3f} | {w} | {'met' if ok(v) else 'missed'} |" for t, v, w, ok in targets]
    result["targets"] = {t: v for t, v, _, _ in targets}
    result["targets_met"] = {t: bool(ok(v)) for t, v, _, ok in targets}
    table = "\n".join(lines) + "\n"
    write_text(out / "table.md", f"{args.model}, {args.clips} clips of {args.seconds:g} s, temperature "
                                 f"{temperature}, guidance {guidance} ({args.contrast} contrast), drafts {drafts}; "
                                 f"{hardware()}; generation "
                                 f"{gen_s:.0f} s (RTF {result['rtf']:.2f})\n\n{table}")
    write_json(out / "results.json", result)
    examples(out, sr, generated, asked, real)
    shown = ("real test", "generated", "VQ-VAE test (level 0)", "bigram tokens (level 0)")
    spectrograms(out / "spectrograms.png", sr, {k: sets[k][0] for k in shown})
    print(table, flush=True)
    return result


def examples(out: Path, sr: int, generated, asked, real, seconds: float = 5.0) -> None:
    """Four short generated WAVs (one per instrument where there are four) and one real clip beside them."""
    seen, k = set(), int(seconds * sr)
    for w, inst in zip(generated, asked):
        if inst not in seen and len(seen) < 4:
            seen.add(inst)
            save_audio(out / "examples" / f"generated_{inst or len(seen)}.wav", w[:k], sr)
    save_audio(out / "examples" / "real_test.wav", real[0][:k], sr)


def spectrograms(path: Path, sr: int, clips: dict) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(len(clips), 1, figsize=(10, 2.2 * len(clips)), sharex=True)
    for ax, (name, w) in zip(axes, clips.items()):
        f = logmel_frames(w[:5 * sr], sr)
        ax.imshow(f.T, origin="lower", aspect="auto", cmap="magma", extent=(0, len(f) * 256 / sr, 0, f.shape[1]))
        ax.set_title(name, fontsize=9)
        ax.set_ylabel("mel band")
    axes[-1].set_xlabel("seconds")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


if __name__ == "__main__":
    main()
