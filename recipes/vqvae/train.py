"""Train the VQ-VAE tokenizer of ``config.py`` with the shared Trainer.

- Data (:class:`~arsound.data.clips.ClipDataset`): every file of a split cut into consecutive
  ``data.segment``-sample tiles, shifted by a random offset in training.
- Every eval (``eval_every``): the Trainer's mean loss / per-level metrics on ``valid`` plus codebook health
  per level over the whole eval set (:func:`~arsound.audio.vqvae_report.codebook_report`) to
  ``out_dir/health.jsonl``. At the end of every training epoch the running usage buffers are logged
  (``"split": "epoch"``) and reset.
- The end: a reconstruction table per level on held-out files (``eval.final_split``, up to ``eval.seconds``
  from the middle of each, encoded and decoded with the chunked path) written to ``out_dir/results.json``
  and ``out_dir/reconstruction.md``, with example WAVs, and the exported model with a model card.
"""
from __future__ import annotations

import json
import time
from dataclasses import asdict
from pathlib import Path

import torch

from arsound.audio.io import save_audio
from arsound.audio.vqvae import VQVAE
from arsound.audio.vqvae_report import codebook_report, reconstruction_report, reconstruction_table
from arsound.core.checkpoint import hardware, save_pretrained
from arsound.core.files import write_json, write_text
from arsound.core.train import Trainer
from arsound.data.audio import AudioDataset
from arsound.data.clips import ClipDataset, heldout_files

from .config import Config


def collate_wavs(items: list[torch.Tensor]) -> torch.Tensor:
    return torch.stack(items)


def main(cfg: Config) -> dict:
    recipe = "vqvae"
    data, ev, tc = cfg.data, cfg.eval, cfg.train
    train, valid = (ClipDataset(AudioDataset(data.name, split, root=data.root), split, data.segment)
                    for split in ("train", "valid"))
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
    trainer = Trainer(model, tc, train, valid, collate=collate_wavs, card=card, settings={"data": asdict(data)})

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
        write_text(health_file, "".join(r + "\n" for r in keep))
    trainer.add_callback("on_step_end", log_health)
    t0 = time.perf_counter()
    trainer.fit()
    train_s = time.perf_counter() - t0
    if not trainer.is_main:
        return {}
    final = trainer.eval_model.eval()
    health = codebook_report(final, valid, tc.batch_size, ev.batches)
    held = AudioDataset(data.name, ev.final_split, root=data.root)
    wavs, ids = heldout_files(held, ev.seconds, ev.files)
    sr = held.sample_rate
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
    write_json(out / "results.json", result)
    write_text(out / "reconstruction.md", f"{recipe}, {ev.final_split} split, {len(ids)} files, "
                                          f"{result['seconds']:.0f} s, step {trainer.step}\n\n{table}\n")
    print(f"{recipe}: {ev.final_split} reconstruction per level\n{table}\nmodel in {folder}", flush=True)
    return result
