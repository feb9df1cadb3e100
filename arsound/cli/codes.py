"""``arsound encode IN.wav -o CODES.npz [--model NAME_OR_DIR]`` / ``arsound decode CODES.npz -o OUT.wav
[--level L] [--model NAME_OR_DIR]``: audio <-> VQ-VAE codes files, in windows (``audio/chunked.py``), so any
length fits in memory; the codes file format is ``audio/codes.py``'s."""
from __future__ import annotations

import os
from pathlib import Path

from ..audio.chunked import decode_chunked, encode_file
from ..audio.codes import CodesFile, load_codes, save_codes
from ..audio.io import SAVE_FORMATS, audio_info, save_audio
from ..audio.vqvae import VQVAE
from ..core.checkpoint import CheckpointError, load, resolve, weights_id
from .common import no_extra, output_file

DEFAULT_MODEL = "vqvae-chorales"


def load_vqvae(spec: str, device: str = "cpu") -> tuple[VQVAE, Path]:
    """A saved VQ-VAE (folder or registry name) and its folder; another model is refused in one line."""
    folder = resolve(spec)
    model = load(folder, device=device)
    if not isinstance(model, VQVAE):
        raise CheckpointError(f"{folder} holds a {type(model).__name__}, not a VQ-VAE; pass a VQ-VAE checkpoint "
                              f"such as {DEFAULT_MODEL}")
    return model, folder


def add_parser(subparsers) -> None:
    e = subparsers.add_parser("encode", help="audio -> VQ-VAE codes (.npz)",
                              description="Tokenize an audio file with a VQ-VAE, every level, in chunks with a "
                                          "context margin (codes equal whole-file encoding, memory stays bounded).")
    e.add_argument("input", help="audio file (mono mixdown; resampled to the model's rate)")
    e.add_argument("-o", "--out", required=True, help="codes file to write (.npz)")
    e.add_argument("--model", default=DEFAULT_MODEL, help=f"VQ-VAE folder or registry name (default {DEFAULT_MODEL})")
    e.add_argument("--chunk-seconds", type=float, default=10.0, help="window length (default 10 s)")
    e.add_argument("--device", default="cpu")
    e.set_defaults(func=cmd_encode)
    d = subparsers.add_parser("decode", help="VQ-VAE codes (.npz) -> audio",
                              description="Decode one level of a codes file made by `arsound encode` (windows "
                                          "with context, crossfaded). The model defaults to the one that encoded it.")
    d.add_argument("input", help="codes file (.npz) from `arsound encode`")
    d.add_argument("-o", "--out", required=True, help="audio file to write (.wav / .flac / .ogg)")
    d.add_argument("--level", type=int, default=0, help="level to decode (0 = finest, default)")
    d.add_argument("--model", help="VQ-VAE folder or registry name (default: the one named in the codes file)")
    d.add_argument("--chunk-codes", type=int, default=1024, help="codes per decoding window (default 1024)")
    d.add_argument("--device", default="cpu")
    d.set_defaults(func=cmd_decode)


def _model_id(spec: str, folder: Path) -> str:
    text = os.fspath(spec)
    return text if ("/" not in text and os.sep not in text and not Path(text).exists()) else str(folder.resolve())


def cmd_encode(args, extra: list[str]) -> int:
    no_extra(extra)
    out = output_file(args.out, {".npz"}, inputs=[args.input])
    if args.chunk_seconds <= 0:
        raise ValueError(f"--chunk-seconds must be > 0, got {args.chunk_seconds}")
    audio_info(Path(args.input))                                            # missing / unreadable: one line, first
    model, folder = load_vqvae(args.model, args.device)
    codes, length = encode_file(model, args.input, args.chunk_seconds, progress=True)
    cf = CodesFile(codes=codes, hops=list(model.hops), sample_rate=model.config.sample_rate, length=length,
                   model=_model_id(args.model, folder), model_sha256=weights_id(model),
                   num_codes=model.config.quantizer.num_codes)
    save_codes(out, cf)
    sr = model.config.sample_rate
    print(f"wrote {out}: {length / sr:.2f} s, " + ", ".join(
        f"level {l}: {len(c)} codes (hop {h}, {sr / h:.0f}/s)" for l, (c, h) in enumerate(zip(codes, model.hops))))
    return 0


def cmd_decode(args, extra: list[str]) -> int:
    no_extra(extra)
    out = output_file(args.out, SAVE_FORMATS, inputs=[args.input])
    if args.chunk_codes < 1:
        raise ValueError(f"--chunk-codes must be >= 1, got {args.chunk_codes}")
    cf = load_codes(args.input)
    model, folder = load_vqvae(args.model or cf.model, args.device)
    sha = weights_id(model)
    if cf.model_sha256 and cf.model_sha256 != sha:
        raise ValueError(f"'{args.input}' was encoded by model {cf.model} (weights {cf.model_sha256}), not by "
                         f"{folder} (weights {sha}); pass --model with the model that encoded it")
    if list(model.hops) != cf.hops or model.config.sample_rate != cf.sample_rate:
        raise ValueError(f"'{args.input}' has hops {cf.hops} at {cf.sample_rate} Hz but the model has "
                         f"{list(model.hops)} at {model.config.sample_rate} Hz; pass the model that encoded it")
    if not 0 <= args.level < len(cf.codes):
        raise ValueError(f"--level {args.level} out of range: '{args.input}' has levels 0..{len(cf.codes) - 1}")
    codes = cf.codes[args.level]
    if codes.numel() and int(codes.max()) >= model.config.quantizer.num_codes:
        raise ValueError(f"'{args.input}' holds code {int(codes.max())} but the model has "
                         f"{model.config.quantizer.num_codes} codes; pass the model that encoded it")
    y, _ = decode_chunked(model, codes, args.level, chunk=args.chunk_codes, progress=True)
    y = y[:cf.length]
    save_audio(out, y, cf.sample_rate)
    print(f"wrote {out}: {len(y) / cf.sample_rate:.2f} s at {cf.sample_rate} Hz from level {args.level} "
          f"(hop {cf.hops[args.level]})")
    return 0
