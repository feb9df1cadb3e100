"""``arsound sample``: draw from a trained model into a file.

    arsound sample --model NAME_OR_DIR [--n 16] [--out samples.png] [--seed 0] [--temperature 1]   (images)
    arsound sample --model WAVENET --n 2 --out gen.wav [--seconds 2] [--speaker 3] [--cond mel.npy] [--greedy]
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from .common import no_extra, output_file


def is_audio_model(model) -> bool:
    """Waveform models: one event dim and ``decode(x) -> wav``."""
    return len(model.event_shape) == 1 and hasattr(model, "decode") and hasattr(model, "generate")


def output_paths(out: str | Path, n: int) -> list[Path]:
    """``gen.wav`` for one sample; ``gen-0.wav, gen-1.wav, ...`` for several."""
    out = Path(out)
    return [out] if n == 1 else [out.with_name(f"{out.stem}-{i}{out.suffix}") for i in range(n)]


def load_cond(path: str | Path, n: int) -> torch.Tensor:
    """``.npy`` local conditioning -> ``Tensor[n, C, frames]`` (a single ``[C, frames]`` is repeated)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"conditioning file '{path}' does not exist")
    try:
        c = torch.from_numpy(np.load(path, allow_pickle=False)).float()
    except ValueError as e:
        raise ValueError(f"cannot read conditioning '{path}': {e}; expected a .npy array [C, frames]") from None
    if c.ndim == 2:
        c = c.expand(n, -1, -1)
    if c.ndim != 3 or c.shape[0] != n:
        raise ValueError(f"conditioning '{path}' has shape {tuple(c.shape)}; expected [C, frames] or [{n}, C, frames]")
    return c


@torch.no_grad()
def sample_audio(model, n: int, out: str | Path, *, seed: int = 0, temperature: float = 1.0, device: str = "cpu",
                 seconds: float | None = None, speaker: int | str | None = None, cond=None, greedy: bool = False,
                 progress: bool = True) -> list[Path]:
    """Generate ``n`` clips with ``model.stream`` and write them as audio files as they are generated (memory
    does not grow with the length; nothing is written if anything fails); returns the paths."""
    from ..audio.io import SAVE_FORMATS, save_audio_stream

    sr = model.config.sample_rate
    length = None if seconds is None else int(round(seconds * sr))
    if length is not None and length < 1:
        raise ValueError(f"--seconds must give at least one sample, got {seconds}")
    c = None if cond is None else (cond if isinstance(cond, torch.Tensor) else load_cond(cond, n)).to(device)
    paths = output_paths(out, n)
    samples = length or (c.shape[-1] * model.config.hop_length if c is not None else model.config.length)
    for p in paths:  # before any work: writable, and room for 16-bit samples
        output_file(p, SAVE_FORMATS, size_bytes=2 * samples)
    g = None if speaker is None else torch.full((n,), model.speaker_index(speaker), dtype=torch.long, device=device)
    generator = torch.Generator().manual_seed(seed)
    pieces = model.stream_waveform(n, c=c, g=g, length=length, temperature=temperature, greedy=greedy,
                                   generator=generator, progress=progress)
    save_audio_stream(paths, pieces, sr)
    return paths


def cmd_sample(args, extra: list[str]) -> int:
    no_extra(extra)
    from .. import load

    if args.n < 1:
        raise ValueError(f"--n must be >= 1, got {args.n}")
    model = load(args.model, device=args.device)
    if is_audio_model(model):
        from ..audio.io import SAVE_FORMATS

        out = output_file(args.out or "samples.wav", SAVE_FORMATS)
        paths = sample_audio(model, args.n, out, seed=args.seed, temperature=args.temperature, device=args.device,
                             seconds=args.seconds, speaker=args.speaker, cond=args.cond, greedy=args.greedy)
        first = paths[0]
        where = first if len(paths) == 1 else f"{first.parent}/{first.stem.rsplit('-', 1)[0]}-*{first.suffix}"
        print(f"wrote {len(paths)} clip(s) at {model.config.sample_rate} Hz to {where}")
        return 0
    if len(model.event_shape) != 3:  # images (B, C, H, W)
        raise ValueError(f"sampling {type(model).__name__} to a file is not supported yet")
    for flag in ("seconds", "speaker", "cond"):
        if getattr(args, flag) is not None:
            raise ValueError(f"--{flag} is for audio models; {type(model).__name__} samples images")
    from ..image.plot import save_grid

    out = output_file(args.out or "samples.png", {".png"})
    generator = torch.Generator(device=model.device).manual_seed(args.seed)
    x = model.sample(args.n, generator=generator, temperature=args.temperature, greedy=args.greedy, progress=True)
    save_grid(x, model.config.levels, out)
    print(f"wrote {args.n} samples to {out}")
    return 0


def add_parser(subparsers) -> None:
    s = subparsers.add_parser("sample", help="draw samples from a trained model",
                              description="Draw samples from a model folder or a registry name and write them "
                                          "to a file.")
    s.add_argument("--model", required=True, help="model folder (config.json + model.safetensors) or registry name")
    s.add_argument("--n", type=int, default=16, help="number of samples (default 16)")
    s.add_argument("--out", help="output file: a PNG grid for image models (default samples.png), audio for audio "
                   "models (.wav / .flac / .ogg; default samples.wav; several clips: NAME-0.wav, NAME-1.wav ...)")
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--device", default="cpu")
    s.add_argument("--temperature", type=float, default=1.0)
    s.add_argument("--greedy", action="store_true", help="take the most likely value at every step")
    s.add_argument("--seconds", type=float, help="audio models: length in seconds (default: the model's "
                   "config.length, or the conditioning's frames x hop)")
    s.add_argument("--speaker", help="audio models with global conditioning: speaker / instrument id or name")
    s.add_argument("--cond", help="audio models with local conditioning: .npy of [C, frames] or [B, C, frames]")
    s.set_defaults(func=cmd_sample)
