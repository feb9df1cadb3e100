"""Score a trained vocoder on many held-out clips, beside Griffin-Lim from the same mel:

    python recipes/vocoder/score.py MODEL --data chorales [--split test] [--clips 32] [--seconds 1] \
        [--seeds 0 1 2] [--postfilter 8]

The middle ``--seconds`` of up to ``--clips`` files of the split (all of them when there are fewer),
resynthesized in one batch at the model's chosen temperature (``config.temperature``) once per sampling seed
(default: seed 0); prints per-clip LSD (averaged over the seeds), the means per speaker / instrument and
over all clips, with the fraction of clips where the vocoder's LSD is lower, and with several seeds each
seed's mean, so a margin over Griffin-Lim can be read against the sampling noise. Every measure of
``vocoder_metrics`` (LSD, MR-STFT, F0 RMSE, voicing error; PESQ and STOI for speech) is averaged the same way
and written to ``--json``. Both vocoders are scored after the model's band post-filter passes
(``features.band_postfilter``, the same stage for the WaveNet and for Griffin-Lim, from the same mel;
``config.postfilter``, 32 for the shipped WaveNets); ``--postfilter K`` sets them, 0 scores the raw outputs.
``--json`` also holds each clip's LSD and the log-power error by frequency (``metrics.log_spectral_error_by_bin``,
the mean over clips and seeds); ``--plot FILE`` draws both (PNG): per clip, the vocoder's LSD against
Griffin-Lim's, and the error by frequency of each.
"""
import argparse
import json

import torch

from arsound.audio.metrics import log_spectral_error_by_bin, vocoder_metrics
from arsound.audio.vocoder import check_vocoder, griffin_lim_of, postfilter_passes, vocode, vocoder_name
from arsound.core.checkpoint import load, resolve
from arsound.core.files import atomic_write
from arsound.data.clips import LABELS, heldout_clips, open_split


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("model")
    p.add_argument("--data", required=True, choices=sorted(LABELS))
    p.add_argument("--root", default="data_cache")
    p.add_argument("--split", default="test")
    p.add_argument("--language", default="en", help="speech: the language(s) of the clips, e.g. en or en,es "
                                                    "('' = all)")
    p.add_argument("--clips", type=int, default=1000)
    p.add_argument("--seconds", type=float, default=1.0)
    p.add_argument("--seeds", type=int, nargs="+", default=[0], help="sampling seeds (default: 0)")
    p.add_argument("--postfilter", type=int, default=None, help="passes of the band post-filter on both (default: "
                                                                "the model's choice; 0: off)")
    p.add_argument("--json", help="also write the figures to this file")
    p.add_argument("--plot", help="also draw per-clip LSD and the error by frequency to this PNG")
    args = p.parse_args()
    folder = resolve(args.model)
    model = load(folder).eval()
    check_vocoder(model)
    args.postfilter = postfilter_passes(model, args.postfilter)
    pf = f" + post-filter {args.postfilter}" if args.postfilter else ""
    me, gl_name = vocoder_name(model) + pf, "Griffin-Lim" + pf
    split = open_split(args.data, args.split, args.root, args.language)
    sr = model.config.sample_rate
    wav, labels, ids = heldout_clips(split, args.clips, args.seconds, model.config.hop_length)
    T = model.config.temperature
    speech = args.data == "speech"
    per_seed, by_bin = [], []                             # per seed: {measure: Tensor[clips]}, Tensor[K]
    for seed in args.seeds:
        y = vocode(model, wav=wav, g=labels if model.config.num_speakers else None, temperature=T, seed=seed,
                   progress=True, postfilter=args.postfilter)
        per_seed.append(vocoder_metrics(wav, y, sr, speech))
        by_bin.append(log_spectral_error_by_bin(wav, y).mean(0))
    w = {k: torch.stack([m[k] for m in per_seed]).nanmean(0) for k in per_seed[0]}
    y_gl = griffin_lim_of(wav, model.mel_spectrogram().cpu(), postfilter=args.postfilter)
    b = vocoder_metrics(wav, y_gl, sr, speech)
    lsd_w, lsd_g = w["lsd_db"], b["lsd_db"]
    for i, name in enumerate(ids):
        print(f"{name:32s} LSD {me} {lsd_w[i]:6.2f}  {gl_name} {lsd_g[i]:6.2f}")
    out = {"model": str(folder), "split": args.split, "language": args.language if speech else "",
           "clips": len(ids), "seconds": wav.shape[-1] / sr,
           "temperature": T, "seeds": args.seeds, "postfilter": args.postfilter,
           "wavenet_lsd_db_per_seed": [m["lsd_db"].mean().item() for m in per_seed],
           "wavenet": {k: v.nanmean().item() for k, v in w.items()},
           "griffin_lim": {k: v.nanmean().item() for k, v in b.items()},
           "wavenet_lower_lsd_fraction": (lsd_w < lsd_g).float().mean().item(), "per_label": {},
           "per_clip": {"id": list(ids), "wavenet_lsd_db": lsd_w.tolist(), "griffin_lim_lsd_db": lsd_g.tolist()},
           "error_by_frequency": {"hz": torch.linspace(0, sr / 2, len(by_bin[0])).tolist(),
                                  "wavenet_db": torch.stack(by_bin).mean(0).tolist(),
                                  "griffin_lim_db": log_spectral_error_by_bin(wav, y_gl).mean(0).tolist()}}
    names = split.classes                                 # heldout_clips' label indices
    for k in labels.unique().tolist():
        m = labels == k
        out["per_label"][names[k]] = {"clips": int(m.sum()), **{f"wavenet_{key}": v[m].nanmean().item()
                                                                for key, v in w.items()},
                                      **{f"griffin_lim_{key}": v[m].nanmean().item() for key, v in b.items()}}
        print(f"{LABELS[args.data]} {names[k]:12s} ({int(m.sum())} clips): LSD {me} {lsd_w[m].mean():6.2f}  "
              f"{gl_name} {lsd_g[m].mean():6.2f}")
    if len(args.seeds) > 1:
        per_seed = out["wavenet_lsd_db_per_seed"]
        print(f"{me} LSD per seed: " + ", ".join(f"{s} {v:.2f}" for s, v in zip(args.seeds, per_seed))
              + f" dB (range {max(per_seed) - min(per_seed):.2f})")
    print(f"{len(ids)} clips of {out['seconds']:.2f} s ({args.split}), T = {T:g}, {len(args.seeds)} seed(s): "
          f"LSD {me} {out['wavenet']['lsd_db']:.2f} dB vs {gl_name} {out['griffin_lim']['lsd_db']:.2f} dB "
          f"({me} lower on {100 * out['wavenet_lower_lsd_fraction']:.0f} % of clips); "
          f"MR-STFT {out['wavenet']['mrstft']:.3f} vs {out['griffin_lim']['mrstft']:.3f}")
    print(f"{me} vs {gl_name}: " + "; ".join(f"{k} {out['wavenet'][k]:.3f} vs {out['griffin_lim'][k]:.3f}"
                                                 for k in w if k not in ("lsd_db", "mrstft")))
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)
    if args.plot:
        plot(out, me, gl_name, args.plot)


def plot(out: dict, me: str, gl_name: str, path: str) -> None:
    """Per clip, the vocoder's LSD against Griffin-Lim's (under the diagonal: the vocoder is closer), and the
    RMS log-power error by frequency of each."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    clips, curve = out["per_clip"], out["error_by_frequency"]
    fig, (a, b) = plt.subplots(1, 2, figsize=(11, 4.2))
    a.scatter(clips["griffin_lim_lsd_db"], clips["wavenet_lsd_db"], s=12, alpha=0.7)
    lo = min(clips["griffin_lim_lsd_db"] + clips["wavenet_lsd_db"]) - 0.5
    hi = max(clips["griffin_lim_lsd_db"] + clips["wavenet_lsd_db"]) + 0.5
    a.plot([lo, hi], [lo, hi], "k--", lw=1)
    a.set(xlim=(lo, hi), ylim=(lo, hi), xlabel=f"{gl_name} LSD (dB)", ylabel=f"{me} LSD (dB)",
          title=f"{out['clips']} {out['split']} clips: {me} lower on {100 * out['wavenet_lower_lsd_fraction']:.0f} %")
    khz = [h / 1000 for h in curve["hz"]]
    a_w, a_g = out["wavenet"]["lsd_db"], out["griffin_lim"]["lsd_db"]
    b.plot(khz, curve["wavenet_db"], label=f"{me} (LSD {a_w:.2f} dB)")
    b.plot(khz, curve["griffin_lim_db"], label=f"{gl_name} (LSD {a_g:.2f} dB)")
    b.set(xlabel="frequency (kHz)", ylabel="RMS log-power error over frames (dB)", title="where the error is")
    b.legend()
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, format="png", dpi=100)
    plt.close(fig)
    print(f"plot: {path}")


if __name__ == "__main__":
    torch.set_num_threads(1)
    main()
