"""``arsound vocode IN.wav -o OUT.wav [--model NAME] [--compare]`` / ``arsound vocode --mel MEL.npy -o OUT.wav``:
audio -> log-mel -> waveform through a mel-conditioned WaveNet (:mod:`arsound.audio.vocoder`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .common import no_extra

DEFAULT_MODEL = "wavenet-speech-en"


def cmd_vocode(args, extra: list[str]) -> int:
    from ..audio.io import SAVE_FORMATS, load_audio, save_audio
    from ..audio.vocoder import check_vocoder, compare_with_griffin_lim, vocode
    from ..core.checkpoint import load

    no_extra(extra)
    if (args.input is None) == (args.mel is None):
        raise ValueError("give exactly one input: an audio file, or --mel MEL.npy")
    out = Path(args.out)
    if out.suffix.lower() not in SAVE_FORMATS:
        raise ValueError(f"output '{out}' must end in one of {sorted(SAVE_FORMATS)}")
    if args.compare and args.mel is not None:
        raise ValueError("--compare needs an audio input (it scores the resynthesis against it), not --mel")
    if args.temperature is not None and args.temperature <= 0:
        raise ValueError(f"--temperature must be > 0, got {args.temperature}")
    model = load(args.model, device=args.device)
    check_vocoder(model)
    cfg = model.config
    if cfg.num_speakers == 0 and args.speaker is not None:
        raise ValueError(f"vocoder '{args.model}' has no speakers/instruments; drop --speaker")
    g = None if args.speaker is None else model.speaker_index(args.speaker)
    if args.mel is not None:
        path = Path(args.mel)
        if not path.is_file():
            raise FileNotFoundError(f"mel file '{path}' does not exist")
        try:
            mel = torch.from_numpy(np.load(path, allow_pickle=False)).float()
        except (ValueError, OSError) as e:
            raise ValueError(f"cannot read mel '{path}': {' '.join(str(e).split())}; expected a .npy array "
                             f"[{cfg.cond_channels}, frames]") from None
        if mel.ndim != 2 or mel.shape[0] != cfg.cond_channels or mel.shape[1] < 1:
            raise ValueError(f"mel '{path}' has shape {tuple(mel.shape)}; expected [{cfg.cond_channels}, frames]")
        if not torch.isfinite(mel).all():
            raise ValueError(f"mel '{path}' contains NaN/Inf values")
        y = vocode(model, mel=mel, g=g, temperature=args.temperature, seed=args.seed)
    else:
        wav, _ = load_audio(args.input, sr=cfg.sample_rate, min_seconds=2 * cfg.hop_length / cfg.sample_rate,
                            as_tensor=True)
        wav = wav.clamp(-1, 1)
        y = vocode(model, wav=wav, g=g, temperature=args.temperature, seed=args.seed)
    save_audio(out, y, cfg.sample_rate)
    print(f"wrote {y.shape[-1] / cfg.sample_rate:.2f} s at {cfg.sample_rate} Hz to {out}")
    if args.compare:
        gl, scores = compare_with_griffin_lim(model, wav, y)
        gl_out = out.with_name(f"{out.stem}_griffin_lim{out.suffix}")
        save_audio(gl_out, gl, cfg.sample_rate)
        print(f"{'vs the input':14s} {'LSD (dB)':>9s} {'MR-STFT':>8s}")
        for name, key in (("WaveNet", "wavenet"), ("Griffin-Lim", "griffin_lim")):
            print(f"{name:14s} {scores[key]['lsd_db']:9.2f} {scores[key]['mrstft']:8.3f}")
        print(f"wrote the Griffin-Lim resynthesis (32 iterations, same mel) to {gl_out}")
    return 0


def add_parser(subparsers) -> None:
    v = subparsers.add_parser("vocode", help="resynthesize audio (or a mel .npy) with a WaveNet vocoder",
                              description="Audio -> log-mel -> waveform through a mel-conditioned WaveNet "
                                          "(fast cached generator), or a log-mel .npy [80, frames] -> waveform.")
    v.add_argument("input", nargs="?", help="input audio file (resampled to the model's rate, mono)")
    v.add_argument("--mel", help="natural-log mel .npy [n_mels, frames] (as the model's front end makes it)")
    v.add_argument("-o", "--out", required=True, help="output audio file (.wav / .flac / .ogg)")
    v.add_argument("--model", default=DEFAULT_MODEL, help=f"vocoder folder or registry name (default {DEFAULT_MODEL})")
    v.add_argument("--speaker", help="speaker / instrument (id or name) for multi-speaker vocoders (default 0)")
    v.add_argument("--temperature", type=float, default=None,
                   help="sampling temperature (default: the one the model's recipe chose on valid clips, else 1)")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--device", default="cpu")
    v.add_argument("--compare", action="store_true",
                   help="also write OUT_griffin_lim.EXT (Griffin-Lim from the same mel) and print both vocoders' "
                        "log-spectral and MR-STFT distances to the input")
    v.set_defaults(func=cmd_vocode)
