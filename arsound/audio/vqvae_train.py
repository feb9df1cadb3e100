"""Training and evaluating VQ-VAE tokenizers on a prepared audio set (``recipes/vqvae`` runs :func:`train_vqvae`).

- Data (:class:`ClipDataset`): every file of a split cut into consecutive ``segment``-sample tiles; a
  training item is a tile shifted by a random offset (global torch RNG, so the Trainer's resume replays
  it), held-out items are the tiles themselves. An epoch visits every tile of the training split once.
- Every eval (``eval_every``): the Trainer's mean loss / per-level metrics on ``valid`` plus codebook health
  per level over the whole eval set (:func:`codebook_report`: perplexity and effective usage of the
  aggregated code histogram, codes used, dead codes by EMA count, restarts, codes used during the
  current training epoch) to ``out_dir/health.jsonl``. At the end of every training epoch the running
  usage buffers are logged (``"split": "epoch"``) and reset.
- The end: a reconstruction table per level on held-out files (``test`` split, up to ``eval.seconds``
  from the middle of each, encoded and decoded with the chunked path): SI-SDR, log-spectral distance,
  MR-STFT distance, tokens/s and bits/s (``tokens/s * log2 K``), written to ``out_dir/results.json`` and
  ``out_dir/reconstruction.md``, with example WAVs, and the exported model with a model card.
"""
from __future__ import annotations

import json
import math
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..core.checkpoint import save_pretrained
from ..core.model import eval_mode
from ..core.quantize import histogram_health
from ..core.train import Trainer
from ..data.audio import AudioDataset
from .vocoder import _write_json, crop_with_context, hardware, log_spectral_distance, mr_stft_distance
from .vqvae import VQVAE, decode_chunked, encode_chunked, si_sdr, _blocks_of


@dataclass
class VQData:
    name: str = "chorales"
    root: str = "data_cache"
    segment: int = 8192                # training crop in samples (a multiple of the largest hop)


@dataclass
class VQEval:
    batches: int = 0                   # eval batches for codebook health (0: the whole valid set)
    final_split: str = "test"
    seconds: float = 20.0              # per held-out file in the final table (the middle part)
    files: int = 0                     # held-out files in the final table (0: all)
    examples: int = 2                  # example WAVs written per level


class ClipDataset(Dataset):
    """``ds[i] -> Tensor[segment]``: tile ``i`` of the split's files (see the module docstring)."""

    def __init__(self, data: VQData, split: str, random_offset: bool | None = None) -> None:
        self.base = AudioDataset(data.name, split, root=data.root)
        self.segment, self.split = data.segment, split
        self.random_offset = split == "train" if random_offset is None else random_offset
        self.tiles = [(f, k) for f, e in enumerate(self.base.items) for k in range(max(1, e["samples"] // self.segment))]

    @property
    def sample_rate(self) -> int:
        return self.base.sample_rate

    def __len__(self) -> int:
        return len(self.tiles)

    def __getitem__(self, i: int) -> Tensor:
        f, k = self.tiles[i]
        e = self.base.items[f]
        start = k * self.segment
        if self.random_offset:
            start += int(torch.randint(self.segment, (1,)))
        start = max(0, min(start, e["samples"] - self.segment))
        return crop_with_context(self.base.base / e["path"], start, self.segment, 0, e["samples"])  # zeros past the end


def collate_wavs(items: list[Tensor]) -> Tensor:
    return torch.stack(items)


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


def heldout_files(data: VQData, split: str, seconds: float, files: int = 0) -> tuple[list[Tensor], list[str], int]:
    """The middle ``seconds`` of each file of ``split`` (all files, or ``files`` spread over the list)."""
    ds = AudioDataset(data.name, split, root=data.root)
    idx = list(range(len(ds)))
    if files and files < len(idx):
        idx = sorted({round(j * (len(ds) - 1) / max(1, files - 1)) for j in range(files)})
    wavs, ids = [], []
    for i in idx:
        e = ds.items[i]
        T = min(e["samples"], int(seconds * ds.sample_rate))
        start = (e["samples"] - T) // 2
        wavs.append(crop_with_context(ds.base / e["path"], start, T, 0, e["samples"]))
        ids.append(e["id"])
    return wavs, ids, ds.sample_rate


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
        codes = encode_chunked(model, _blocks_of(w, chunk + 2 * margin, chunk), len(w), chunk, margin)
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


def train_vqvae(cfg, recipe: str) -> dict:
    """Train recipe ``cfg`` (fields ``model: VQVAEConfig, data: VQData, train: TrainConfig, eval: VQEval``)."""
    from .io import save_audio

    data, ev, tc = cfg.data, cfg.eval, cfg.train
    train, valid = ClipDataset(data, "train"), ClipDataset(data, "valid")
    if train.sample_rate != cfg.model.sample_rate:
        raise ValueError(f"data '{data.name}' is at {train.sample_rate} Hz but model.sample_rate is "
                         f"{cfg.model.sample_rate}; set --model.sample_rate={train.sample_rate}")
    model = VQVAE(cfg.model)
    if data.segment % model.max_hop:
        raise ValueError(f"data.segment {data.segment} must be a multiple of the largest hop {model.max_hop}")
    out = Path(tc.out_dir)
    credit = "; ".join(dict.fromkeys(e["credit"] for e in train.base.items))
    licence = "; ".join(dict.fromkeys(e.get("licence", "") for e in train.base.items))
    card = {"data": f"{data.name}, {train.base.seconds / 60:.1f} min train ({len(train.base)} files), crops of "
                    f"{data.segment} samples", "licence": licence, "credit": credit, "recipe": recipe,
            "hardware": hardware()}
    trainer = Trainer(model, tc, train, valid, collate=collate_wavs, card=card)

    def log_health(tr: Trainer) -> None:
        rows = []
        if tr.index + tr.cfg.batch_size > len(tr.train_data):                # the next batch starts a new epoch
            rows.append({"step": tr.step, "split": "epoch", "epoch": tr.epoch, **tr.model.health()})
            tr.model.reset_usage()
        if tr.is_main and ((tr.cfg.eval_every and tr.step % tr.cfg.eval_every == 0) or tr.step == tr.cfg.steps):
            rep = codebook_report(tr.eval_model, valid, tr.cfg.batch_size, ev.batches)
            rows.append({"step": tr.step, "split": "valid", **rep})
            if tr.cfg.progress:
                print(f"step {tr.step}: valid loss {tr.last_eval.get('loss', float('nan')):.3f}; " + "; ".join(
                    f"l{l} perplexity {rep[f'l{l}_perplexity']:.1f} usage {100 * rep[f'l{l}_usage']:.1f}% used "
                    f"{rep[f'l{l}_used']} dead {rep[f'l{l}_dead']}" for l in range(model.levels)), flush=True)
        if rows and tr.is_main:
            with open(health_file, "a") as f:
                for r in rows:
                    f.write(json.dumps(r) + "\n")

    health_file = out / "health.jsonl"
    if trainer.is_main and health_file.is_file():                          # rows past the resumed step: drop
        keep = [r for r in health_file.read_text().splitlines() if trainer.resumed and json.loads(r)["step"] <= trainer.step]
        health_file.write_text("".join(r + "\n" for r in keep))
    trainer.add_callback("on_step_end", log_health)
    t0 = time.perf_counter()
    trainer.fit()
    train_s = time.perf_counter() - t0
    if not trainer.is_main:
        return {}
    final = trainer.eval_model.eval()
    health = codebook_report(final, valid, tc.batch_size, ev.batches)
    wavs, ids, sr = heldout_files(data, ev.final_split, ev.seconds, ev.files)
    rows, decoded = reconstruction_report(final, wavs)
    table = reconstruction_table(rows)
    result = {"recipe": recipe, "data": asdict(data), "model": asdict(cfg.model), "params": final.num_parameters(),
              "steps": trainer.step, "train_s": round(train_s, 1), "hardware": hardware(), "split": ev.final_split,
              "files": ids, "seconds": round(sum(len(w) for w in wavs) / sr, 2), "levels": rows,
              "valid_health": health, "valid": trainer.last_eval}
    out.mkdir(parents=True, exist_ok=True)
    for l in range(final.levels):
        for j in range(min(ev.examples, len(wavs))):
            if l == 0:
                save_audio(out / "examples" / f"{j}_original.wav", wavs[j], sr)
            save_audio(out / "examples" / f"{j}_level{l}.wav", decoded[l][j], sr)
    card.update({"steps": trainer.step, "training time": f"{train_s / 60:.1f} min", "batch_size": tc.batch_size,
                 "lr": tc.lr, "ema_decay": tc.ema_decay,
                 "codebook health (valid, end of training)": {f"level {l}": (
                     f"perplexity {health[f'l{l}_perplexity']:.1f}, usage {100 * health[f'l{l}_usage']:.1f}%, used "
                     f"{health[f'l{l}_used']}/{final.config.quantizer.num_codes}, dead {health[f'l{l}_dead']}, "
                     f"restarts {health[f'l{l}_restarts']}") for l in range(final.levels)},
                 f"{ev.final_split} reconstruction ({len(ids)} files, {result['seconds']:.0f} s)": "\n\n" + table + "\n",
                 "usage": "arsound encode in.wav -o codes.npz --model THIS_FOLDER; arsound decode codes.npz -o out.wav --level 0"})
    folder = save_pretrained(final, out / "model", card=card)
    _write_json(out / "results.json", result)
    (out / "reconstruction.md").write_text(f"{recipe}, {ev.final_split} split, {len(ids)} files, "
                                           f"{result['seconds']:.0f} s, step {trainer.step}\n\n{table}\n")
    print(f"{recipe}: {ev.final_split} reconstruction per level\n{table}\nmodel in {folder}", flush=True)
    return result


__all__ = ["VQData", "VQEval", "ClipDataset", "codebook_report", "reconstruction_report", "reconstruction_table",
           "heldout_files", "train_vqvae", "collate_wavs"]
