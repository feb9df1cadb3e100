"""``arsound generate``: music clips from a hierarchy of priors over VQ-VAE codes (``music/generator.py``).

    arsound generate --model DIR_OR_NAME --seconds 10 [--n 4] [--seed 0] [--instrument organ] -o OUTDIR
    arsound generate ... --prompt in.wav [--prompt-seconds 3]       primed: the prompt's codes kept, continued
    arsound generate ... --codes clip.npz [--seconds 20]             continue a codes file, or upsample its top level
    arsound generate ... --levels 2 [--every-level]                  stop at level 2 (a preview), or keep each level's
    arsound generate ... --piece-seconds 32 --offset 11              timing: the middle 10 s of a 32-s piece
    arsound generate ... --guidance 0 1 0                            upper-code guidance per level (top first)
    arsound generate ... --drafts 1 4 1                              drafts per level, the best pitch kept

Writes ``OUTDIR/sample_{i}.wav`` and ``OUTDIR/sample_{i}.npz`` (its codes, ``audio/codes.py``'s format) for
each clip, ``sample_{i}_level{l}.wav`` for every level as soon as it is done with ``--every-level``, and
``settings.json`` (everything needed to run it again, and the time each level took).
"""
from __future__ import annotations

import time
from pathlib import Path

from .common import no_extra, output_file, output_folder


def add_parser(subparsers) -> None:
    p = subparsers.add_parser("generate", help="music clips from a prior hierarchy over VQ-VAE codes",
                              description="Sample music with a MusicGenerator: the top-level prior, then each "
                                          "upsampler, then the tokenizer's decoder. Settings given once apply to "
                                          "every level; give one per level (top first) to set them apart.")
    p.add_argument("--model", required=True, help="MusicGenerator folder or registry name")
    p.add_argument("--seconds", type=float, help="length of each clip (default: that of --codes)")
    p.add_argument("--n", type=int, default=1, help="clips, sampled as one batch (default 1)")
    p.add_argument("--seed", type=int, default=0, help="the same seed gives the same clips (default 0)")
    p.add_argument("--prompt", help="audio to continue (mono mixdown, resampled to the model's rate)")
    p.add_argument("--prompt-seconds", type=float, help="use the first P seconds of --prompt (default: all)")
    p.add_argument("--codes", help="codes file (.npz) to continue, or whose top level to upsample")
    p.add_argument("--levels", type=int, help="the lowest level to sample (default: the lowest prior's)")
    p.add_argument("--every-level", action="store_true", help="also write each level's decoding as it finishes")
    p.add_argument("--instrument", help="instrument name (or id) for priors trained with labels (default: one "
                                        "per clip, drawn from the seed)")
    p.add_argument("--temperature", type=float, nargs="+", metavar="T",
                   help="one, or one per level (top first); default: each level's as the model's recipe chose it")
    p.add_argument("--guidance", type=float, nargs="+", metavar="W",
                   help="upper-code guidance of the upsamplers (0: off), one, or one per level (top first; the "
                        "top's is unused); default: each level's as the model's recipe chose it")
    p.add_argument("--drafts", type=int, nargs="+", metavar="K",
                   help="drafts an upsampler draws of each clip, keeping the one whose pitch follows the level above "
                        "best (1: off), one, or one per level (top first; the top's is unused); default: each "
                        "level's as the model's recipe chose it")
    p.add_argument("--top-k", type=int, nargs="+", default=[0], metavar="K", help="0: off (default)")
    p.add_argument("--top-p", type=float, nargs="+", default=[1.0], metavar="P", help="1: off (default)")
    p.add_argument("--hop-fraction", type=float, nargs="+", default=[0.5], metavar="F",
                   help="how far a window slides, as a fraction of the prior's context (default 0.5)")
    p.add_argument("--piece-seconds", type=float,
                   help="timing: the clip is part of a piece this long (default: the clip is a whole piece, with "
                        "its opening and ending)")
    p.add_argument("--offset", type=float, default=0.0,
                   help="timing: where the clip starts in that piece, in seconds (default 0; needs --piece-seconds)")
    p.add_argument("--device", default="cpu")
    p.add_argument("-o", "--out", required=True, help="output folder")
    p.set_defaults(func=cmd_generate)


def _one_or_many(values: list, off=None):
    """One setting for every level, or a tuple of one per level; ``off`` (0 for top-k, 1 for top-p) -> None."""
    values = [None if off is not None and v == off else v for v in values]
    return values[0] if len(values) == 1 else tuple(values)


def check_args(args) -> None:
    """Everything that can be refused before a model is loaded."""
    if args.seconds is not None and not args.seconds > 0:
        raise ValueError(f"--seconds must be > 0, got {args.seconds}")
    if args.seconds is None and args.codes is None:
        raise ValueError("say how long with --seconds (or give --codes to continue)")
    if args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    if args.prompt and args.codes:
        raise ValueError("give --prompt or --codes, not both")
    if args.prompt_seconds is not None and (args.prompt is None or not args.prompt_seconds > 0):
        raise ValueError("--prompt-seconds needs --prompt and must be > 0")
    for name, values, ok, rule in (("--temperature", args.temperature or [], lambda v: v > 0, "> 0"),
                                   ("--guidance", args.guidance or [], lambda v: v >= 0, ">= 0"),
                                   ("--drafts", args.drafts or [], lambda v: v >= 1, ">= 1"),
                                   ("--top-k", args.top_k, lambda v: v >= 0, ">= 0"),
                                   ("--top-p", args.top_p, lambda v: 0 < v <= 1, "in (0, 1]"),
                                   ("--hop-fraction", args.hop_fraction, lambda v: 0 < v <= 1, "in (0, 1]")):
        bad = [v for v in values if not ok(v)]
        if bad:
            raise ValueError(f"{name} must be {rule}, got {bad[0]}")
    if args.piece_seconds is not None and not args.piece_seconds > 0:
        raise ValueError(f"--piece-seconds must be > 0, got {args.piece_seconds}")
    if args.offset and args.piece_seconds is None:
        raise ValueError("--offset needs --piece-seconds (the length of the piece the clip sits in)")
    if not args.offset >= 0:
        raise ValueError(f"--offset must be >= 0, got {args.offset}")
    if args.piece_seconds is not None and args.seconds is not None and args.offset + args.seconds > args.piece_seconds:
        raise ValueError(f"a clip of {args.seconds:g} s at --offset {args.offset:g} does not fit in --piece-seconds "
                         f"{args.piece_seconds:g}")
    for path in (args.prompt, args.codes):
        if path is not None and not Path(path).is_file():
            raise FileNotFoundError(f"'{path}' does not exist")


def cmd_generate(args, extra: list[str]) -> int:
    no_extra(extra)
    check_args(args)
    out = output_folder(args.out)
    from ..audio.codes import load_codes, save_codes
    from ..audio.io import load_audio, save_audio_stream
    from ..core.checkpoint import CheckpointError, load, resolve
    from ..core.files import write_json
    from ..music.generator import MusicGenerator
    from ..version import __version__

    folder = resolve(args.model)
    gen = load(folder, device=args.device)
    if not isinstance(gen, MusicGenerator):
        raise CheckpointError(f"{folder} holds a {type(gen).__name__}, not a MusicGenerator; `arsound generate` "
                              "needs a prior hierarchy")
    if args.instrument is not None:
        gen.label_index(args.instrument)                                 # unknown instrument: one line, now
    sr, levels = gen.sample_rate, gen.levels
    stop = levels[-1] if args.levels is None else args.levels
    if stop not in levels:
        raise ValueError(f"--levels {args.levels}: this model samples levels {levels} (top first)")
    prompt = codes = None
    if args.prompt:
        prompt, _ = load_audio(args.prompt, sr=sr, as_tensor=True)
        if args.prompt_seconds is not None:
            prompt = prompt[:int(round(args.prompt_seconds * sr))]
    if args.codes:
        codes = gen.check_codes(load_codes(args.codes), args.codes)
    samples = None if args.seconds is None else int(round(args.seconds * sr))
    paths = [out / f"sample_{i}.wav" for i in range(args.n)]
    for p in paths:  # before any work: writable, room for 16-bit samples
        output_file(p, {".wav"}, inputs=[args.prompt], size_bytes=2 * (samples or 0))

    def preview(level: int, level_codes, audio) -> None:
        if args.every_level:
            previews = [out / f"sample_{i}_level{level}.wav" for i in range(args.n)]
            save_audio_stream(previews, gen.decode_stream(level_codes, level, samples_of(level_codes, level)), sr)
            print(f"level {level} preview: {', '.join(map(str, previews))}", flush=True)

    def samples_of(codes, level: int) -> int:
        return samples or codes.shape[-1] * gen.vqvae.hops[level]

    settings = dict(model=str(args.model), seconds=args.seconds, n=args.n, seed=args.seed, prompt=args.prompt,
                    prompt_seconds=args.prompt_seconds, codes=args.codes, levels=stop, instrument=args.instrument,
                    temperature=(_one_or_many(args.temperature) if args.temperature else
                                 tuple(gen.temperatures[lv] for lv in levels if lv >= stop)),
                    guidance=(_one_or_many(args.guidance) if args.guidance else
                              tuple(gen.guidances[lv] for lv in levels if lv >= stop)),
                    drafts=(_one_or_many(args.drafts) if args.drafts else
                            tuple(gen.drafts[lv] for lv in levels if lv >= stop)),
                    top_k=_one_or_many(args.top_k, 0),
                    top_p=_one_or_many(args.top_p, 1.0), hop_fraction=_one_or_many(args.hop_fraction),
                    piece_seconds=args.piece_seconds, offset_seconds=args.offset)
    t0 = time.perf_counter()
    result = gen.generate(args.seconds, args.n, seed=args.seed, prompt=prompt, codes=codes, stop_level=stop,
                          instrument=args.instrument, temperature=settings["temperature"],
                          guidance=settings["guidance"], drafts=settings["drafts"], top_k=settings["top_k"],
                          top_p=settings["top_p"], hop_fraction=settings["hop_fraction"], progress=True,
                          decode=False, on_level=preview, piece_seconds=args.piece_seconds,
                          offset_seconds=args.offset)
    length = result.samples                                              # audio streams to disk, window by window
    save_audio_stream(paths, gen.decode_stream(result.codes[stop], stop, length), sr)
    wall = time.perf_counter() - t0
    for i, p in enumerate(paths):
        save_codes(p.with_suffix(".npz"), gen.codes_file(result, i))
    tokens = {lv: int(c.shape[-1]) for lv, c in result.codes.items()}
    settings.update(arsound_version=__version__, sample_rate=sr, samples=length, tokens_per_clip=tokens,
                    instruments=result.instruments,
                    level_seconds={lv: round(s, 3) for lv, s in result.seconds.items()},
                    wall_seconds=round(wall, 3), rtf=round(wall / (args.n * length / sr), 3))
    write_json(out / "settings.json", settings)
    per = ", ".join(f"level {lv} " + (f"{result.seconds[lv]:.1f} s ({tokens[lv] * args.n / result.seconds[lv]:.0f} "
                                        f"tokens/s)" if lv in result.seconds else "given")
                    for lv in result.codes)
    print(f"wrote {args.n} clip(s) of {length / sr:.2f} s (level {stop}) in {wall:.1f} s, real-time factor "
          f"{settings['rtf']:.2f} for the batch; {per}", flush=True)
    for i, p in enumerate(paths):
        print(f"  {p}" + (f" ({result.instruments[i]})" if result.instruments else ""), flush=True)
    return 0
