"""``arsound vocode IN.wav -o OUT.wav [--model NAME] [--compare]`` / ``arsound vocode --mel MEL.npy -o OUT.wav``:
audio -> log-mel -> waveform through a mel-conditioned WaveNet (:mod:`arsound.audio.vocoder`), streamed: the
input is read and the output written a block at a time, so any length fits in memory."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .common import no_extra, output_file

DEFAULT_MODEL = "wavenet-speech-en"
COMPARE_MAX_SECONDS = 600  # --compare scores whole clips in memory (Griffin-Lim, spectra)


def mel_file_blocks(path: Path, model, block: int = 512):
    """A log-mel ``.npy`` ``[M, frames]`` (memory-mapped) as normalized conditioning blocks ``[1, M, <= block]``."""
    from ..audio.features import normalize_mel

    try:
        mel = np.load(path, mmap_mode="r", allow_pickle=False)
    except (ValueError, OSError) as e:
        raise ValueError(f"cannot read mel '{path}' ({' '.join(str(e).split())}); expected a .npy array "
                         f"[{model.config.cond_channels}, frames]") from None
    if mel.ndim != 2 or mel.shape[0] != model.config.cond_channels or mel.shape[1] < 1:
        raise ValueError(f"mel '{path}' has shape {tuple(mel.shape)}; expected [{model.config.cond_channels}, frames]")
    for f0 in range(0, mel.shape[1], block):
        c = torch.from_numpy(np.array(mel[:, f0:f0 + block], dtype=np.float32))
        if not torch.isfinite(c).all():
            raise ValueError(f"mel '{path}' contains NaN/Inf values (frames {f0}..{f0 + c.shape[1] - 1})")
        yield normalize_mel(c)[None]


def cmd_vocode(args, extra: list[str]) -> int:
    from ..audio.io import SAVE_FORMATS, audio_info, load_audio, save_audio
    from ..audio.vocoder import (check_vocoder, compare_with_griffin_lim, postfilter_passes, vocode_file,
                                 vocode_frames, vocoder_name)
    from ..core.checkpoint import load
    from ..core.sampling import check_temperature

    no_extra(extra)
    if (args.input is None) == (args.mel is None):
        raise ValueError("give exactly one input: an audio file, or --mel MEL.npy")
    if args.compare and args.mel is not None:
        raise ValueError("--compare needs an audio input (it scores the resynthesis against it), not --mel")
    out = output_file(args.out, SAVE_FORMATS, inputs=[args.input, args.mel])
    gl_out = out.with_name(f"{out.stem}_griffin_lim{out.suffix}")
    if args.compare:
        output_file(gl_out, SAVE_FORMATS, inputs=[args.input])
    if args.temperature is not None:
        check_temperature(args.temperature)
    if args.postfilter is not None and args.postfilter < 0:
        raise ValueError(f"--postfilter must be a number of passes >= 0, got {args.postfilter}")
    if args.postfilter and args.match_level:
        raise ValueError("--postfilter already matches the level, band by band; drop --match-level (or pass "
                         "--postfilter 0)")
    if args.input is not None:
        info = audio_info(Path(args.input))                     # missing / unreadable / cut short: one line, first
        if args.compare and info.duration > COMPARE_MAX_SECONDS:
            raise ValueError(f"--compare scores whole clips in memory: at most {COMPARE_MAX_SECONDS} s, "
                             f"'{args.input}' is {info.duration:.0f} s (vocode it without --compare)")
    elif not Path(args.mel).is_file():
        raise FileNotFoundError(f"mel file '{args.mel}' does not exist")
    model = load(args.model, device=args.device)
    check_vocoder(model)
    cfg = model.config
    if cfg.num_speakers == 0 and args.speaker is not None:
        raise ValueError(f"vocoder '{args.model}' has no speakers/instruments; drop --speaker")
    g = None if args.speaker is None else model.speaker_index(args.speaker)
    passes = postfilter_passes(model, args.postfilter, args.match_level)     # default: the model's choice
    kw = dict(temperature=args.temperature, seed=args.seed, match_level=args.match_level, postfilter=passes)
    if args.mel is not None:
        n = vocode_frames(model, mel_file_blocks(Path(args.mel), model), out, g, **kw)
    else:
        n = vocode_file(model, args.input, out, g, **kw)
    print(f"wrote {n / cfg.sample_rate:.2f} s at {cfg.sample_rate} Hz to {out}")
    if args.compare:
        wav, _ = load_audio(args.input, sr=cfg.sample_rate, as_tensor=True)
        y, _ = load_audio(out, as_tensor=True)
        gl, scores = compare_with_griffin_lim(model, wav.clamp(-1, 1), y, full=True, postfilter=passes)
        save_audio(gl_out, gl, cfg.sample_rate)
        cols = [(k, h) for k, h in COMPARE_COLUMNS if k in scores["wavenet"]]
        pf = f" + post-filter {passes}" if passes else ""
        rows = ((vocoder_name(model) + pf, "wavenet"), ("Griffin-Lim" + pf, "griffin_lim"))
        w = max(14, *(len(name) for name, _ in rows))
        print(f"{'vs the input':{w}s} " + " ".join(f"{h:>{len(h)}s}" for _, h in cols))
        for name, key in rows:
            print(f"{name:{w}s} " + " ".join(f"{scores[key][k]:{len(h)}.2f}" if k != "stoi" else
                                             f"{scores[key][k]:{len(h)}.3f}" for k, h in cols))
        print("(LSD, MR-STFT, F0 RMSE over frames voiced in both, voicing error: lower is better; PESQ wideband "
              "and STOI are speech measures: higher is better)")
        if "stoi" not in scores["wavenet"]:
            print("(PESQ and STOI need the metrics extra: pip install 'arsound[metrics]')")
        print(f"wrote the Griffin-Lim resynthesis (32 iterations, same mel{pf}) to {gl_out}")
    return 0


COMPARE_COLUMNS = (("lsd_db", "LSD (dB)"), ("mrstft", "MR-STFT"), ("f0_rmse_cents", "F0 RMSE (cents)"),
                   ("vde", "voicing err"), ("pesq", "PESQ-WB"), ("stoi", "STOI"))


def add_parser(subparsers) -> None:
    v = subparsers.add_parser("vocode", help="resynthesize audio (or a mel .npy) with a WaveNet vocoder",
                              description="Audio -> log-mel -> waveform through a mel-conditioned WaveNet "
                                          "(fast cached generator, streamed: any length), or a log-mel .npy "
                                          "[80, frames] -> waveform.")
    v.add_argument("input", nargs="?", help="input audio file (resampled to the model's rate, mono)")
    v.add_argument("--mel", help="natural-log mel .npy [n_mels, frames] (as the model's front end makes it)")
    v.add_argument("-o", "--out", required=True, help="output audio file (.wav / .flac / .ogg)")
    v.add_argument("--model", default=DEFAULT_MODEL, help=f"vocoder folder or registry name (default {DEFAULT_MODEL})")
    v.add_argument("--speaker", help="speaker / instrument (id or name) for multi-speaker vocoders (default 0)")
    v.add_argument("--temperature", type=float, default=None,
                   help="sampling temperature (default: the one the model's recipe chose on valid clips, else 1)")
    v.add_argument("--seed", type=int, default=0)
    v.add_argument("--device", default="cpu")
    v.add_argument("--match-level", action="store_true",
                   help="scale the output so its mel's energy equals the input mel's (one gain per file; for a "
                        "vocoder that comes out a few dB too loud or quiet)")
    v.add_argument("--postfilter", type=int, default=None, metavar="K",
                   help="K passes of the band post-filter: each frame's mel bands pulled onto the input mel's, "
                        "which takes out sampling noise in quiet bands and pauses (default: the model's choice, "
                        "32 for the shipped WaveNets; 0: off, the network's raw output); with --compare "
                        "Griffin-Lim gets it too")
    v.add_argument("--compare", action="store_true",
                   help="also write OUT_griffin_lim.EXT (Griffin-Lim from the same mel) and print both vocoders' "
                        f"distances to the input: LSD, MR-STFT, F0 RMSE, voicing error, PESQ and STOI (clips up to "
                        f"{COMPARE_MAX_SECONDS} s)")
    v.set_defaults(func=cmd_vocode)
