"""VQ-VAE chunked vs whole-file encoding: peak memory, time, identical codes; and the seam jump of chunked decoding.

    python benchmarks/vqvae_chunking.py [--model vqvae-chorales | DIR | small] [--minutes 10] [--chunk-seconds 10]
                                        [--threads 1] [--decode-seconds 60] [--skip-whole]
    arsound bench vqvae [same options]

Encoding: a ``--minutes`` long 16 kHz test file (synthetic chords with vibrato and noise, written to a
temporary folder) is encoded by a fresh subprocess per mode:

- ``chunked``: ``vqvae.encode_file`` (reads the file in windows through ``io.iter_chunks``, context margin
  of at least the encoder's receptive field on each side, centre codes kept);
- ``whole``: the whole file loaded and ``model.encode`` on it at once.

Peak memory is the child's resident-set high-water mark, read two ways: ``/proc/self/status`` VmHWM
inside the child, and ``resource.getrusage(RUSAGE_CHILDREN).ru_maxrss`` in this process (the largest
child so far; the modes run smallest first). "baseline" is the same child stopping right after loading
the model and torch (before reading the audio), so the difference is what encoding costs.

Decoding: the first ``--decode-seconds`` of the file's level-0 codes decoded whole and with
``vqvae.decode_chunked`` (windows of ``--decode-chunk`` codes with the decoder's receptive field as
context, crossfade of one hop), and naively (no context, no crossfade). Reported: the largest deviation
from the whole decode, and the seam jump ``mean |y[s] - y[s-1]|`` at the seams over the mean step
everywhere (1.0 = seams look like any other sample; the whole decode at the same positions for reference).
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path



def vm_hwm_mb() -> float:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def build_model(spec: str):
    from arsound.audio.vqvae import VQVAE, VQVAEConfig

    if spec in ("small", "debug", "jukebox"):
        import torch

        torch.manual_seed(0)
        return VQVAE(VQVAEConfig.from_preset(spec)).eval(), f"{spec} preset (random weights)"
    from arsound.cli.codes import load_vqvae

    return load_vqvae(spec)[0], spec


def child(args) -> None:
    import torch

    torch.set_num_threads(args.threads)
    model, _ = build_model(args.model)
    out = {"mode": args.child}
    if args.child != "baseline":
        t0 = time.perf_counter()
        if args.child == "chunked":
            from arsound.audio.chunked import encode_file

            codes, _ = encode_file(model, args.wav, chunk_seconds=args.chunk_seconds)
        else:
            from arsound.audio.io import load_audio

            wav, _ = load_audio(args.wav, sr=model.config.sample_rate, as_tensor=True)
            codes = [c[0] for c in model.encode(wav.unsqueeze(0))]
        out["seconds"] = time.perf_counter() - t0
        torch.save(codes, args.codes_out)
    out["vm_hwm_mb"] = vm_hwm_mb()
    print(json.dumps(out))


def synth(path: Path, minutes: float, sr: int = 16000) -> None:
    import numpy as np
    import soundfile as sf

    rng = np.random.default_rng(0)
    with sf.SoundFile(str(path), "w", samplerate=sr, channels=1, subtype="PCM_16") as f:
        for s in range(int(minutes * 60)):                                 # one second at a time
            t = np.arange(sr) / sr + s
            notes = 110 * 2 ** (rng.integers(0, 36, 3) / 12)
            x = sum(0.15 * np.sin(2 * np.pi * n * t + 0.3 * np.sin(2 * np.pi * 5 * t)) for n in notes)
            f.write((x * (0.6 + 0.4 * np.sin(np.pi * (t - s))) + 0.005 * rng.standard_normal(sr)).astype(np.float32))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", default="small", help="checkpoint folder / registry name, or a preset (small)")
    p.add_argument("--minutes", type=float, default=10.0)
    p.add_argument("--chunk-seconds", type=float, default=10.0)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--decode-seconds", type=float, default=60.0)
    p.add_argument("--decode-chunk", type=int, default=1024, help="codes per decoding window")
    p.add_argument("--skip-whole", action="store_true", help="skip the whole-file run (needs several GB)")
    p.add_argument("--child", help=argparse.SUPPRESS)
    p.add_argument("--wav", help=argparse.SUPPRESS)
    p.add_argument("--codes-out", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.child:
        child(args)
        return 0

    import torch

    torch.set_num_threads(args.threads)
    from arsound.audio.chunked import decode_chunked, seam_jump
    from arsound.core.checkpoint import hardware

    model, model_name = build_model(args.model)
    sr = model.config.sample_rate
    with tempfile.TemporaryDirectory() as tmp:
        wav = Path(tmp) / "long.wav"
        synth(wav, args.minutes, sr)
        rows, codes = [], {}
        modes = ["baseline", "chunked"] + ([] if args.skip_whole else ["whole"])
        env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
        for mode in modes:
            cmd = [sys.executable, __file__, "--child", mode, "--wav", str(wav), "--model", args.model,
                   "--threads", str(args.threads), "--chunk-seconds", str(args.chunk_seconds),
                   "--codes-out", str(Path(tmp) / f"{mode}.pt")]
            r = subprocess.run(cmd, capture_output=True, text=True, env=env)
            if r.returncode != 0:
                print(f"{mode}: failed ({r.returncode}): {r.stderr.strip().splitlines()[-1:]}")
                continue
            info = json.loads(r.stdout.strip().splitlines()[-1])
            info["ru_maxrss_children_mb"] = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024
            rows.append(info)
            if mode != "baseline":
                codes[mode] = torch.load(Path(tmp) / f"{mode}.pt")
        same = None
        if "whole" in codes:
            same = all(torch.equal(a, b) for a, b in zip(codes["chunked"], codes["whole"]))
        # decoding seams, on the first --decode-seconds of level 0
        c0 = codes["chunked"][0][:int(args.decode_seconds * sr) // model.hops[0]]
        whole = model.decode(c0, 0)
        y, st = decode_chunked(model, c0, 0, chunk=args.decode_chunk)
        naive, ns = decode_chunked(model, c0, 0, chunk=args.decode_chunk, margin=0, crossfade=0)

    print(f"# VQ-VAE chunked vs whole encoding of a {args.minutes:g}-minute file ({model_name}, hops "
          f"{list(model.hops)}, chunk {args.chunk_seconds:g} s + margin {model.encoder_margin()} samples each side)")
    print(f"# machine: {hardware()}; load average {os.getloadavg()[0]:.2f}")
    print("| mode | peak RSS VmHWM (MB) | ru_maxrss children (MB) | encode time (s) |")
    print("|---|---|---|---|")
    for r in rows:
        print(f"| {r['mode']} | {r['vm_hwm_mb']:.0f} | {r['ru_maxrss_children_mb']:.0f} | "
              f"{r.get('seconds', float('nan')):.1f} |")
    if same is not None:
        print(f"codes identical chunked vs whole (all levels, all {sum(len(c) for c in codes['whole'])} codes): "
              f"{'yes' if same else 'NO'}")
    print(f"\n# level-0 decoding of the first {len(c0) * model.hops[0] / sr:.0f} s, windows of {args.decode_chunk} "
          f"codes, {len(st.seams)} seams")
    print("| decoding | max abs deviation from whole | seam jump (mean step at seams / mean step) |")
    print("|---|---|---|")
    print(f"| whole (same positions) | 0 | {seam_jump(whole, st.seams):.3f} |")
    print(f"| chunked, context {model.decoder_margin(0)} codes + crossfade {model.hops[0]} samples | "
          f"{(y - whole).abs().max():.2e} | {seam_jump(y, st.seams):.3f} |")
    print(f"| naive (no context, no crossfade) | {(naive - whole).abs().max():.2e} | {seam_jump(naive, ns.seams):.3f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
