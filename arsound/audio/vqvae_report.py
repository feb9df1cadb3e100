"""How good a VQ-VAE tokenizer is: codebook health over a dataset and reconstruction per level.

- :func:`codebook_report`: per level, perplexity and effective usage (entropy / log2 K) of the aggregated
  code histogram, codes used / unused, and the training-side counters (dead codes by EMA count,
  restarts, codes used during the current training epoch). Eval mode: nothing is updated.
- :func:`reconstruction_report` / :func:`reconstruction_table`: per level, SI-SDR, log-spectral distance
  and MR-STFT of held-out waveforms encoded and decoded with the chunked path, tokens/s and bits/s
  (``tokens/s * log2 K``).
"""
from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ..core.model import eval_mode
from ..core.quantize import histogram_health
from .chunked import blocks_of, decode_chunked, encode_chunked
from .metrics import log_spectral_distance, mr_stft_distance, si_sdr
from .vqvae import VQVAE


@torch.no_grad()
def codebook_report(model: VQVAE, data, batch_size: int, max_batches: int = 0) -> dict[str, float]:
    """Codebook health per level over ``data`` (eval mode, nothing updated): ``l{l}_perplexity``,
    ``l{l}_usage`` (entropy / log2 K of the aggregated histogram), ``l{l}_used``, ``l{l}_unused``, plus the
    training-side ``l{l}_dead`` (EMA count below threshold), ``l{l}_restarts`` and ``l{l}_used_epoch``."""
    K = model.config.quantizer.num_codes
    with eval_mode(model):
        counts = [torch.zeros(K) for _ in model.hops]
        n = math.ceil(len(data) / batch_size)
        n = min(n, max_batches) if max_batches else n
        for b in range(n):
            x = torch.stack([data[i] for i in range(b * batch_size, min(len(data), (b + 1) * batch_size))])
            for l, c in enumerate(model.encode(x)):
                counts[l] += torch.bincount(c.flatten().cpu(), minlength=K).float()
    out = {}
    for l, (c, vq) in enumerate(zip(counts, model.quantizers)):
        perplexity, usage = histogram_health(c)
        h = vq.health()
        out.update({f"l{l}_perplexity": float(perplexity), f"l{l}_usage": float(usage), f"l{l}_used": int((c > 0).sum()),
                    f"l{l}_unused": int((c == 0).sum()), f"l{l}_dead": h.dead, f"l{l}_restarts": h.restarts,
                    f"l{l}_used_epoch": h.used_epoch})
    return out


@torch.no_grad()
def reconstruction_report(model: VQVAE, wavs: list[Tensor], chunk_seconds: float = 10.0) -> tuple[list[dict], list[list[Tensor]]]:
    """Per level: mean SI-SDR (dB), LSD (dB), MR-STFT over ``wavs`` (each encoded with
    :func:`encode_chunked` and decoded with :func:`decode_chunked`), tokens/s, bits/s, and the code
    histogram's perplexity / usage on these files. Returns (rows, decoded[level][file])."""
    model.eval()
    sr, H, K = model.config.sample_rate, model.max_hop, model.config.quantizer.num_codes
    margin = model.encoder_margin()
    chunk = max(H, int(chunk_seconds * sr) // H * H)
    metrics = [{"si_sdr": [], "lsd": [], "mrstft": []} for _ in model.hops]
    counts = [torch.zeros(K) for _ in model.hops]
    decoded: list[list[Tensor]] = [[] for _ in model.hops]
    for w in wavs:
        codes = encode_chunked(model, blocks_of(w, chunk + 2 * margin, chunk), len(w), chunk, margin)
        for l, c in enumerate(codes):
            counts[l] += torch.bincount(c, minlength=K).float()
            y = decode_chunked(model, c, l, chunk=max(1, chunk // model.hops[l]))[0][:len(w)]
            decoded[l].append(y)
            metrics[l]["si_sdr"].append(si_sdr(w, y).item())
            metrics[l]["lsd"].append(log_spectral_distance(w, y).item())
            metrics[l]["mrstft"].append(mr_stft_distance(w, y)["total"].item())
    rows = []
    for l, (m, c) in enumerate(zip(metrics, counts)):
        perplexity, usage = histogram_health(c)
        tps = sr / model.hops[l]
        rows.append({"level": l, "hop": model.hops[l], "tokens_per_s": tps, "bits_per_s": tps * math.log2(K),
                     "si_sdr_db": float(np.mean(m["si_sdr"])), "lsd_db": float(np.mean(m["lsd"])),
                     "mrstft": float(np.mean(m["mrstft"])), "perplexity": float(perplexity), "usage": float(usage),
                     "used": int((c > 0).sum()), "codes": K})
    return rows, decoded


def reconstruction_table(rows: list[dict]) -> str:
    lines = ["| level | hop | tokens/s | bits/s | SI-SDR (dB) | LSD (dB) | MR-STFT | perplexity | usage | codes used |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['level']} | {r['hop']} | {r['tokens_per_s']:.1f} | {r['bits_per_s']:.0f} | {r['si_sdr_db']:.2f} | "
                     f"{r['lsd_db']:.2f} | {r['mrstft']:.3f} | {r['perplexity']:.1f} | {100 * r['usage']:.1f}% | "
                     f"{r['used']}/{r['codes']} |")
    return "\n".join(lines)


__all__ = ["codebook_report", "reconstruction_report", "reconstruction_table"]
