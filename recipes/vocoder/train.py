"""Train a vocoder preset of ``config.py`` with the shared Trainer.

Every eval adds held-out resynthesis (model vs Griffin-Lim from the same mel) to
``out_dir/resynthesis.jsonl``; the end picks the sampling temperature and then the band post-filter passes on
valid clips, scores the final split (NLL in bits/sample over middle crops, resynthesis of ``eval.clips`` clips,
both vocoders after those passes) and writes ``out_dir/results.json``, example WAVs and the model (its config
holding the front end, label names, the chosen temperature and passes; a model card; ``heldout.wav``, the shipped
example its card's figures come from).
"""
from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, replace
from pathlib import Path

from torch import Tensor

from arsound.audio.io import load_audio, save_audio
from arsound.audio.metrics import log_spectral_distance, mr_stft_distance
from arsound.audio.vocoder import (compare_with_griffin_lim, griffin_lim_of, postfilter_output, postfilter_passes,
                                   vocode, vocoder_name)
from arsound.audio.wavenet import WaveNet
from arsound.audio.wavernn import WaveRNN, WaveRNNConfig
from arsound.core.checkpoint import hardware, save_pretrained, warm_start
from arsound.core.files import write_json
from arsound.core.metrics import bits_per_sample
from arsound.core.train import Trainer, evaluate
from arsound.data.audio import DataError
from arsound.data.clips import Augment, VocoderDataset, heldout_clips, open_split
from arsound.data.prepare import VOICES

from .config import Config

HELDOUT_FILE = "heldout.wav"


def kind(model) -> str:
    """What a vocoder is, in a word: ``mulaw`` / ``mol`` (the WaveNet's head), ``lp`` or ``wavernn``."""
    if isinstance(model, WaveRNN):
        return "wavernn"
    return "lp" if model.is_lp else model.config.head


def resynthesis_report(model: WaveNet, wav: Tensor, g: Tensor | None, gl_iters: int = 32, temperature: float = 1.0,
                       seed: int = 0, progress: bool = False) -> tuple[dict, dict]:
    """Resynthesize ``wav[B, T]`` (whole frames) with the model and with Griffin-Lim from the same mel, both after
    the model's band post-filter passes (``config.postfilter``):
    ``({"model" | "griffin_lim": {lsd_db, mrstft, sc, logmag, seconds}}, {"model" | "griffin_lim": Tensor[B, T]})``."""
    passes = postfilter_passes(model)                      # the model's band post-filter, on both (0 while training)
    t0 = time.perf_counter()
    y = vocode(model, wav=wav, g=g if model.config.num_speakers > 0 else None, temperature=temperature, seed=seed,
               progress=progress, postfilter=passes)
    model_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    gl = griffin_lim_of(wav, model.mel_spectrogram().cpu(), gl_iters, postfilter=passes)
    gl_s = time.perf_counter() - t0
    out = {}
    for name, z in (("model", y), ("griffin_lim", gl)):
        mr = mr_stft_distance(wav, z)
        out[name] = {"lsd_db": log_spectral_distance(wav, z).mean().item(), "mrstft": mr["total"].mean().item(),
                     "sc": mr["sc"].mean().item(), "logmag": mr["mag"].mean().item()}
    out["model"]["seconds"], out["griffin_lim"]["seconds"] = round(model_s, 2), round(gl_s, 2)
    return out, {"model": y, "griffin_lim": gl}


def unseen_voices(data) -> str:
    """Speech trained on some languages: the languages whose voice the training never heard (e.g. ``"fr"`` for
    ``language="en,es,it,ru"``: June speaks only French), comma-joined; ``""`` when there are none."""
    langs = [lang for lang in data.language.split(",") if lang]
    if data.name != "speech" or not langs:
        return ""
    heard = {VOICES[lang][1] for lang in langs}
    return ",".join(lang for lang, v in VOICES.items() if v[1] not in heard)


def selection_clips(model: WaveNet, cfg: Config) -> tuple[Tensor, Tensor | None]:
    """The ``cfg.eval.select_clips`` *valid* clips (never the test split) the sampling settings are chosen on:
    ``(clips[B, T], labels[B] or None for a model without speakers)``."""
    ev, data = cfg.eval, cfg.data
    clips, labels, _ = heldout_clips(open_split(data.name, "valid", data.root, data.language), ev.select_clips,
                                     ev.seconds, model.config.hop_length)
    return clips, labels if model.config.num_speakers > 0 else None


def distances(ref: Tensor, y: Tensor) -> dict[str, float]:
    """Mean LSD (dB) and MR-STFT distance of ``y[B, T]`` to ``ref[B, T]``: ``{"lsd_db", "mrstft"}``."""
    return {"lsd_db": log_spectral_distance(ref, y).mean().item(),
            "mrstft": mr_stft_distance(ref, y)["total"].mean().item()}


def choose_temperature(model: WaveNet, cfg: Config, clips: Tensor, g: Tensor | None) -> tuple[float, list[dict]]:
    """The sampling temperature of ``cfg.eval.temperatures`` with the lowest LSD on the :func:`selection_clips`
    ``clips`` (labels ``g``), from the network's raw output: ``(T, [{"temperature", "lsd_db", "mrstft"}, ...])``.
    Without a sweep: ``(cfg.eval.temperature, [])``."""
    ev = cfg.eval
    if not ev.temperatures:
        return ev.temperature, []
    rows = []
    for T in ev.temperatures:
        y = vocode(model, wav=clips, g=g, temperature=T, seed=cfg.train.seed, progress=False, postfilter=0)
        rows.append({"temperature": T, **distances(clips, y)})
    return min(rows, key=lambda r: r["lsd_db"])["temperature"], rows


def choose_postfilter(model: WaveNet, cfg: Config, clips: Tensor, g: Tensor | None) -> tuple[int, list[dict]]:
    """The band post-filter passes of ``cfg.eval.postfilters`` with the lowest LSD on the same ``clips`` as
    :func:`choose_temperature`, vocoded once at the model's temperature and filtered with each count:
    ``(passes, [{"postfilter", "lsd_db", "mrstft"}, ...])``. Without candidates: ``(0, [])``."""
    if not cfg.eval.postfilters:
        return 0, []
    raw = vocode(model, wav=clips, g=g, seed=cfg.train.seed, progress=False, postfilter=0)
    c = model.mel_condition(clips)
    rows = [{"postfilter": k, **distances(clips, postfilter_output(model, raw, c, k))}   # = vocode(postfilter=k)
            for k in cfg.eval.postfilters]
    return min(rows, key=lambda r: r["lsd_db"])["postfilter"], rows


def write_heldout_example(model: WaveNet, folder: str | Path, cfg: Config, seconds: float = 1.5) -> dict:
    """Save the middle ``seconds`` of the first file of the final split as ``folder/heldout.wav`` (16-bit)
    and score ``arsound vocode folder/heldout.wav -o out.wav --compare`` on it (read back from the file,
    default seed, the model's temperature), so anyone can rerun the figures:
    ``{"clip", "seconds", "speaker", "wavenet", "griffin_lim"}``."""
    data = cfg.data
    clips, labels, ids = heldout_clips(open_split(data.name, cfg.eval.final_split, data.root, data.language), 1,
                                       seconds, model.config.hop_length)
    path = Path(folder) / HELDOUT_FILE
    save_audio(path, clips[0], model.config.sample_rate)
    wav, _ = load_audio(path, sr=model.config.sample_rate, as_tensor=True)
    g = int(labels[0]) if model.config.num_speakers > 0 else None
    y = vocode(model, wav=wav, g=g, progress=False)
    _, scores = compare_with_griffin_lim(model, wav, y)
    return {"clip": ids[0], "seconds": round(wav.shape[-1] / model.config.sample_rate, 3),
            "speaker": None if g is None else model.config.speaker_names[g], **scores}


def main(cfg: Config) -> dict:
    data, ev = cfg.data, cfg.eval
    probe = open_split(data.name, "train", data.root, data.language)
    classes = [str(c) for c in probe.classes]
    labelled = len(classes) > 1 and data.speaker_embedding
    cls = WaveRNN if isinstance(cfg.model, WaveRNNConfig) else WaveNet
    model = cls(replace(cfg.model, num_speakers=len(classes) if labelled else 0,
                        speaker_names=tuple(classes) if labelled else (), sample_rate=probe.sample_rate))
    recipe = "vocoder" + (f" ({kind(model)})" if kind(model) != "mulaw" else "")
    if cfg.init:  # before the Trainer, so its EMA starts from these weights (a resume.pt still wins)
        warm_start(model, cfg.init)
    mel = model.mel_spectrogram(center=False)

    def crops(split: str) -> VocoderDataset:
        augment = Augment(tuple(data.gain_db), data.lowpass) if split == "train" else None
        return VocoderDataset(open_split(data.name, split, data.root, data.language), split, data.segment_frames,
                              mel, model.targets, labelled, augment=augment)

    train, valid = crops("train"), crops("valid")
    out = Path(cfg.train.out_dir)
    credit = "; ".join(dict.fromkeys(e["credit"] for e in probe.items))
    card = {"data": f"{data.name}" + (f" ({data.language})" if data.name == "speech" and data.language else "")
            + (f", speakers {', '.join(classes)}" + ("" if labelled else " (no speaker label)") if len(classes) > 1
               else "") + f", {probe.seconds / 60:.1f} min train, crops of {data.segment_frames} frames x hop "
            f"{model.config.hop_length}", "licence / credit": credit, "recipe": recipe, "hardware": hardware()}
    if cfg.init:
        card["warm start"] = f"weights of {cfg.init}, then the steps below with a fresh optimizer and schedule"
    trainer = Trainer(model, cfg.train, train, valid, card=card, settings={"data": asdict(data), "init": cfg.init})
    clips, labels, _ = heldout_clips(open_split(data.name, "valid", data.root, data.language), ev.clips, ev.seconds,
                                     model.config.hop_length)

    def resynth_eval(tr: Trainer) -> None:
        if not tr.is_main or not (tr.cfg.eval_every and tr.step % tr.cfg.eval_every == 0) or tr.step == tr.cfg.steps:
            return
        rep, _ = resynthesis_report(tr.eval_model, clips, labels, ev.griffin_lim_iters, ev.temperature,
                                    seed=tr.cfg.seed)
        row = {"step": tr.step, "split": "valid", **{f"{k}_{m}": v for k in rep for m, v in rep[k].items()},
               **{f"valid_{k}": v for k, v in tr.last_eval.items()}}
        with open(out / "resynthesis.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        if tr.cfg.progress:
            print(f"step {tr.step}: valid {tr.last_eval.get('bits_per_dim', float('nan')):.3f} bits/sample, LSD "
                  f"{rep['model']['lsd_db']:.2f} dB (Griffin-Lim {rep['griffin_lim']['lsd_db']:.2f})", flush=True)

    trainer.add_callback("on_step_end", resynth_eval)
    trainer.fit()
    train_s = trainer.train_seconds                                    # across resumes
    if not trainer.is_main:
        return {}
    if not ev.report:
        print(f"{recipe}: {trainer.step} steps in {train_s / 60:.1f} min, no report (eval.report false); model in "
              f"{out / 'model'}", flush=True)
        return {"steps": trainer.step, "train_s": round(train_s, 1)}
    return report(trainer.eval_model.eval(), cfg, recipe, card, steps=trainer.step, train_s=train_s)


def report(final: WaveNet, cfg: Config, recipe: str, card: dict, *, steps: int, train_s: float) -> dict:
    """The final report: the temperature, then the band post-filter passes, chosen on valid clips (the network's
    raw output for the first), then on ``cfg.eval.final_split`` the NLL
    (bits/sample, middle crops) and resynthesis vs Griffin-Lim; writes ``out_dir/results.json``,
    ``out_dir/examples/`` and ``out_dir/model`` (weights and config with the chosen temperature and passes, card,
    ``heldout.wav``)."""
    data, ev, out = cfg.data, cfg.eval, Path(cfg.train.out_dir)
    chosen_on = selection_clips(final, cfg)
    temperature, sweep = choose_temperature(final, cfg, *chosen_on)
    final.config = replace(final.config, temperature=temperature)
    passes, pf_sweep = choose_postfilter(final, cfg, *chosen_on)
    final.config = replace(final.config, postfilter=passes)
    split = ev.final_split
    test = VocoderDataset(open_split(data.name, split, data.root, data.language), split, data.segment_frames,
                          final.mel_spectrogram(center=False), final.targets, final.config.num_speakers > 0)
    nll = evaluate(final, test, batch_size=cfg.train.batch_size)
    clips_t, labels_t, ids = heldout_clips(test.base, ev.clips, ev.seconds, final.config.hop_length)
    rep, audio = resynthesis_report(final, clips_t, labels_t, ev.griffin_lim_iters, temperature,
                                    seed=cfg.train.seed, progress=cfg.train.progress)
    pre = getattr(final.config, "preemphasis", 0.0)
    result = {"recipe": recipe, "data": asdict(data), "model_kind": kind(final),
              "head": getattr(final.config, "head", "dual softmax"), "bits": getattr(final.config, "bits", 16),
              "preemphasis": pre, "params": final.num_parameters(),
              "receptive_field": getattr(final, "receptive_field", None), "steps": steps,
              "train_s": round(train_s, 1), "hardware": hardware(), "split": split, "clips": ids,
              "nll_bits_per_sample": bits_per_sample(nll["nll"], test.segment),
              "nll_nats_per_sample": nll["loss"], "model": rep["model"], "griffin_lim": rep["griffin_lim"],
              "griffin_lim_iters": ev.griffin_lim_iters, "temperature": temperature, "temperature_sweep_valid": sweep,
              "postfilter": passes, "postfilter_sweep_valid": pf_sweep,
              "beats_griffin_lim_lsd": rep["model"]["lsd_db"] < rep["griffin_lim"]["lsd_db"]}
    sr = final.config.sample_rate
    for j in range(len(ids)):
        save_audio(out / "examples" / f"{j}_original.wav", clips_t[j], sr)
        save_audio(out / "examples" / f"{j}_wavenet.wav", audio["model"][j], sr)
        save_audio(out / "examples" / f"{j}_griffin_lim.wav", audio["griffin_lim"][j], sr)
    tried = ", ".join(f"{r['temperature']:g}: {r['lsd_db']:.2f} dB" for r in sweep)
    chosen = (f"temperature {temperature:g}, the lowest LSD on {ev.select_clips} valid clips of {tried}" if sweep
              else f"temperature {temperature:g}")
    tried = ", ".join(f"{r['postfilter']}: {r['lsd_db']:.2f} dB" for r in pf_sweep)
    chosen += (f"; band post-filter {passes} passes, the lowest LSD on the same clips of {tried}" if pf_sweep
               else f"; band post-filter {passes} passes")
    both = f", both after {passes} post-filter passes" if passes else ""
    card = {**card, "steps": steps, "training time": f"{train_s / 60:.1f} min",
            "batch_size": cfg.train.batch_size, "lr": cfg.train.lr, "ema_decay": cfg.train.ema_decay,
            "pre-emphasis": pre,
            f"{split} NLL": f"{result['nll_bits_per_sample']:.3f} bits/sample"
            + (" (of the pre-emphasized signal)" if pre else " (of the excitation)" if kind(final) == "lp" else ""),
            "sampling": chosen + " (config.temperature, config.postfilter)",
            f"{split} resynthesis ({len(ids)} clips of {clips_t.shape[-1] / sr:.2f} s{both})":
                f"{vocoder_name(final)} LSD {rep['model']['lsd_db']:.2f} dB, MR-STFT {rep['model']['mrstft']:.3f}; "
                f"Griffin-Lim ({ev.griffin_lim_iters} it.) LSD {rep['griffin_lim']['lsd_db']:.2f} dB, "
                f"MR-STFT {rep['griffin_lim']['mrstft']:.3f}",
            "usage": "arsound vocode in.wav -o out.wav --model THIS_FOLDER"}
    unseen = unseen_voices(data)
    try:                                               # voices it never heard (and that the data holds): apart
        unseen_split = open_split(data.name, split, data.root, unseen) if unseen else None
    except DataError:
        unseen_split = None
    if unseen_split is not None and final.config.num_speakers == 0:
        clips_u, _, ids_u = heldout_clips(unseen_split, ev.clips, ev.seconds, final.config.hop_length)
        rep_u, _ = resynthesis_report(final, clips_u, None, ev.griffin_lim_iters, temperature, seed=cfg.train.seed)
        result["unseen_voices"] = {"languages": unseen, "clips": ids_u, **rep_u}
        card[f"unseen voices ({unseen}, {len(ids_u)} {split} clips{both})"] = (
            f"{vocoder_name(final)} LSD {rep_u['model']['lsd_db']:.2f} dB, MR-STFT {rep_u['model']['mrstft']:.3f}; "
            f"Griffin-Lim LSD {rep_u['griffin_lim']['lsd_db']:.2f} dB, MR-STFT {rep_u['griffin_lim']['mrstft']:.3f}")
    ex = write_heldout_example(final, out, cfg)
    result["heldout_example"] = ex
    card[f"shipped example ({HELDOUT_FILE}: {ex['clip']}, {ex['seconds']:g} s of the {split} split{both})"] = (
        f"{vocoder_name(final)} LSD {ex['wavenet']['lsd_db']:.2f} dB, MR-STFT {ex['wavenet']['mrstft']:.3f}; "
        f"Griffin-Lim LSD {ex['griffin_lim']['lsd_db']:.2f} dB, MR-STFT {ex['griffin_lim']['mrstft']:.3f}; "
        f"rerun: arsound vocode THIS_FOLDER/{HELDOUT_FILE} -o out.wav --model THIS_FOLDER --compare"
        + (f" --speaker {ex['speaker']}" if ex["speaker"] is not None else ""))
    folder = save_pretrained(final, out / "model", card=card)  # replaces the Trainer's export, richer card
    os.replace(out / HELDOUT_FILE, folder / HELDOUT_FILE)
    write_json(out / "results.json", result)
    print(f"{recipe} on {data.name}: {split} NLL {result['nll_bits_per_sample']:.3f} bits/sample; LSD "
          f"{rep['model']['lsd_db']:.2f} dB vs Griffin-Lim {rep['griffin_lim']['lsd_db']:.2f} dB "
          f"at T = {temperature:g}; "
          f"MR-STFT {rep['model']['mrstft']:.3f} vs {rep['griffin_lim']['mrstft']:.3f}; model in {folder}")
    return result
