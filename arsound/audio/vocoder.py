"""Mel-conditioned WaveNet vocoders: data, metrics, the shared recipe loop and ``arsound vocode``.

A WaveNet (van den Oord et al., 2016, arXiv:1609.03499) conditioned on 80-band log-mel frames, as the
vocoder of Tacotron 2 (Shen et al., 2018, arXiv:1712.05884), optionally also on a global speaker /
instrument id. The recipes ``recipes/vocoder_mulaw`` (256-way mu-law head) and ``recipes/vocoder_mol``
(16-bit discretized logistic mixture) both run :func:`train_vocoder`.

Alignment (``features.py``): a crop of ``T = k * hop`` samples starting at sample ``s`` (a multiple of
``hop``) is conditioned on the ``k`` frames centred on ``s, s + hop, ...`` of the *whole clip's* centred
mel. :class:`VocoderDataset` reads the crop with ``n_fft // 2`` samples of context on each side (zeros
past the file's ends, like centred padding) and takes an uncentred STFT, so training frames equal the
frames :func:`vocode` computes from a whole clip.

Metrics, on clips resynthesized from their own mel (``Tensor[T]`` each):

- log-spectral distance (LSD, dB): ``mean_frames sqrt(mean_freq (10 log10 P - 10 log10 P')^2)``
  on power spectra (``n_fft`` 1024, hop 256, power floor 1e-8); 0 for identical signals, symmetric.
- multi-resolution STFT distance (Yamamoto et al., 2020, arXiv:1910.11480), FFT 512 / 1024 / 2048
  (hop = FFT / 4, Hann window): per resolution spectral convergence ``||S - S'||_F / ||S||_F`` (relative
  to the original ``S``, so not symmetric) + ``mean |log S - log S'|`` (symmetric), averaged.

Griffin-Lim (``features.griffin_lim``) from the same mel is the baseline every eval reports beside it.

Letters: B batch, T samples, M mel bands, F frames.
"""
from __future__ import annotations

import json
import os
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from torch import Tensor
from torch.utils.data import Dataset

from ..core.checkpoint import hardware
from ..core.metrics import bits_per_sample
from ..core.train import Trainer, evaluate
from ..data.audio import AudioDataset, DataError
from .features import MelSpectrogram, griffin_lim

SETTINGS_FILE = "vocoder.json"  # beside config.json in a saved vocoder: mel settings + label names
MEL_SHIFT, MEL_SCALE = 5.0, 3.0  # network input c = (log_mel + MEL_SHIFT) / MEL_SCALE
LABELS = {"speech": "speaker", "chorales": "instrument"}
MR_FFTS = (512, 1024, 2048)


# ---- configs (shared by the recipes) ---------------------------------------------------------------
@dataclass
class MelSpec:
    n_fft: int = 1024
    hop: int = 256
    n_mels: int = 80
    fmin: float = 0.0
    fmax: float = 8000.0


@dataclass
class VocoderModel:
    head: str = "mulaw"                # mulaw | mol
    bits: int = 8                      # mulaw: 8 (256 classes); mol: 16
    num_mixtures: int = 10
    layers: int = 12
    cycles: int = 2
    kernel_size: int = 3
    residual_channels: int = 32
    gate_channels: int = 64
    skip_channels: int = 64
    upsample_scales: tuple[int, ...] = (4, 4, 4, 4)
    preemphasis: float = 0.0           # 0.85: model x[t] - 0.85 x[t-1], noise shaped under the spectrum (LPCNet)


@dataclass
class VocoderData:
    name: str = "speech"               # speech | chorales
    root: str = "data_cache"
    language: str = "en"               # speech only; "" = all languages (then several speakers)
    segment_frames: int = 16           # training crop: segment_frames * hop samples


@dataclass
class VocoderEval:
    clips: int = 3                     # held-out clips resynthesized at every eval
    seconds: float = 1.0               # per clip (cut to whole frames)
    griffin_lim_iters: int = 32
    temperature: float = 1.0           # periodic evals; the final report's unless temperatures is set
    temperatures: tuple[float, ...] = (1.0, 0.8, 0.6, 0.4, 0.2)  # final report: lowest LSD on valid clips
    select_clips: int = 6
    final_split: str = "test"          # split of the final report (periodic evals use valid)


# ---- mel features -----------------------------------------------------------------------------------
def mel_module(mel: MelSpec | dict, sr: int, center: bool = True) -> MelSpectrogram:
    m = asdict(mel) if isinstance(mel, MelSpec) else dict(mel)
    return MelSpectrogram(sr=sr, n_fft=m["n_fft"], hop=m["hop"], win=m["n_fft"], n_mels=m["n_mels"],
                          fmin=m["fmin"], fmax=m["fmax"], power=1.0, log=True, center=center)


def normalize_mel(log_mel: Tensor) -> Tensor:
    """Log-mel (natural log, floor 1e-5) -> the network's conditioning input, about unit scale."""
    return (log_mel + MEL_SHIFT) / MEL_SCALE


def open_split(data: VocoderData, split: str) -> AudioDataset:
    """The prepared ``split`` of ``data`` labelled by speaker / instrument (speech: of ``data.language`` only,
    all languages when it is empty)."""
    if data.name not in LABELS:
        raise DataError(f"unknown data.name '{data.name}'; choose from {sorted(LABELS)}")
    where = {"language": data.language} if data.name == "speech" and data.language else None
    return AudioDataset(data.name, split, root=data.root, label=LABELS[data.name], where=where)


def crop_with_context(path, start: int, length: int, pad: int, total: int) -> Tensor:
    """Samples ``[start - pad, start + length + pad)`` of a mono file of ``total`` samples, zeros outside."""
    lo, hi = max(0, start - pad), min(total, start + length + pad)
    x, _ = sf.read(str(path), start=lo, stop=hi, dtype="float32", always_2d=True)
    x = torch.from_numpy(np.ascontiguousarray(x.mean(axis=1)))
    return torch.nn.functional.pad(x, (lo - (start - pad), (start + length + pad) - hi)).clamp_(-1, 1)


class VocoderDataset(Dataset):
    """``ds[i] -> {"x": LongTensor[T], "c": Tensor[M, T // hop], ("g": LongTensor[])}`` from a prepared set.

    ``x`` is ``encode(wav)`` (the model's targets), ``c`` the normalized log-mel of the crop (frames of the
    whole clip, see the module docstring), ``g`` the label index when ``with_label``. Train crops are
    random (global torch RNG, so the Trainer's resume replays them); other splits take the middle crop.
    """

    def __init__(self, data: VocoderData, split: str, mel: MelSpec, encode, with_label: bool,
                 random_crop: bool | None = None) -> None:
        self.base = open_split(data, split)
        self.segment = data.segment_frames * mel.hop
        self.hop, self.pad = mel.hop, mel.n_fft // 2
        self.mel = mel_module(mel, self.base.sample_rate, center=False)
        self.encode, self.with_label = encode, with_label
        self.random_crop = split == "train" if random_crop is None else random_crop

    @property
    def classes(self) -> list:
        return self.base.classes

    def __len__(self) -> int:
        return len(self.base)

    def __getitem__(self, i: int) -> dict:
        e = self.base.items[i]
        slots = max(0, e["samples"] - self.segment) // self.hop + 1
        pick = int(torch.randint(slots, (1,))) if self.random_crop else slots // 2
        wav = crop_with_context(self.base.base / e["path"], pick * self.hop, self.segment, self.pad, e["samples"])
        with torch.no_grad():
            c = normalize_mel(self.mel(wav))[:, :self.segment // self.hop]   # (M, k)
        # one sample of context, so a pre-emphasized model's first target sees its true predecessor
        item = {"x": self.encode(wav[self.pad - 1:self.pad + self.segment])[1:], "c": c}
        if self.with_label:
            item["g"] = torch.tensor(self.base._index[e["labels"][self.base.label]], dtype=torch.long)
        return item


def heldout_clips(data: VocoderData, split: str, n: int, seconds: float, hop: int) -> tuple[Tensor, Tensor, list]:
    """``n`` clips of ``split`` spread over the file list: ``(wav[n, T], label[n], ids)``, ``T`` whole frames,
    each the middle of its file (zero-padded when shorter)."""
    ds = open_split(data, split)
    sr = ds.sample_rate
    T = max(1, int(seconds * sr) // hop) * hop
    pick = sorted({round(j * (len(ds) - 1) / max(1, n - 1)) for j in range(n)}) if n > 1 else [0]
    wavs, labels, ids = [], [], []
    for i in pick:
        e = ds.items[i]
        start = max(0, (e["samples"] - T) // 2 // hop * hop)
        wavs.append(crop_with_context(ds.base / e["path"], start, T, 0, e["samples"]))
        labels.append(ds._index[e["labels"][ds.label]])
        ids.append(e["id"])
    return torch.stack(wavs), torch.tensor(labels, dtype=torch.long), ids


# ---- metrics ----------------------------------------------------------------------------------------
def _stft_mag(x: Tensor, n_fft: int, hop: int) -> Tensor:
    """``[B, T] -> |STFT| [B, K, F]`` (Hann window, centred)."""
    win = torch.hann_window(n_fft, device=x.device)
    return torch.stft(x.float(), n_fft, hop, n_fft, win, center=True, return_complex=True).abs()


def _pair(x: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
    x, y = (x.unsqueeze(0) if x.ndim == 1 else x), (y.unsqueeze(0) if y.ndim == 1 else y)
    T = min(x.shape[-1], y.shape[-1])
    return x[..., :T], y[..., :T]


def log_spectral_distance(x: Tensor, y: Tensor, n_fft: int = 1024, hop: int = 256, floor: float = 1e-8) -> Tensor:
    """LSD in dB between waveforms ``x``, ``y`` (``[T]`` or ``[B, T]``, cut to the shorter): ``Tensor[B]``."""
    x, y = _pair(x, y)
    px = 10 * torch.log10(_stft_mag(x, n_fft, hop).square().clamp_min(floor))
    py = 10 * torch.log10(_stft_mag(y, n_fft, hop).square().clamp_min(floor))
    return (px - py).square().mean(dim=1).sqrt().mean(dim=1)


def mr_stft_distance(x: Tensor, y: Tensor, ffts=MR_FFTS, eps: float = 1e-5) -> dict[str, Tensor]:
    """Multi-resolution STFT distance of ``y`` to the original ``x``: ``{"sc", "mag", "total"}``, each
    ``Tensor[B]`` averaged over the resolutions (``total = sc + mag``)."""
    x, y = _pair(x, y)
    sc, mag = 0, 0
    for n in ffts:
        sx, sy = _stft_mag(x, n, n // 4), _stft_mag(y, n, n // 4)
        sc = sc + torch.linalg.vector_norm(sx - sy, dim=(1, 2)) / torch.linalg.vector_norm(sx, dim=(1, 2)).clamp_min(eps)
        mag = mag + (sx.clamp_min(eps).log() - sy.clamp_min(eps).log()).abs().mean(dim=(1, 2))
    sc, mag = sc / len(ffts), mag / len(ffts)
    return {"sc": sc, "mag": mag, "total": sc + mag}


# ---- vocoding ---------------------------------------------------------------------------------------
def vocoder_settings(model, folder: str | Path | None = None) -> dict:
    """``{"mel": MelSpec dict, "classes": [...]}`` from ``folder/vocoder.json``, else defaults for the model."""
    if folder is not None and (Path(folder) / SETTINGS_FILE).is_file():
        return json.loads((Path(folder) / SETTINGS_FILE).read_text())
    cfg = model.config
    return {"mel": asdict(MelSpec(hop=cfg.hop_length, n_mels=cfg.cond_channels)), "classes": []}


def check_vocoder(model) -> None:
    cfg = getattr(model, "config", None)
    if cfg is None or not hasattr(model, "generate") or getattr(cfg, "cond_channels", 0) <= 0:
        raise ValueError(f"{type(model).__name__} is not a mel-conditioned WaveNet (cond_channels > 0); "
                         "pass a vocoder checkpoint such as wavenet-speech-en")


@torch.no_grad()
def vocode(model, wav: Tensor | None = None, mel: Tensor | None = None, g: Tensor | int | None = None, *,
           settings: dict | None = None, temperature: float = 1.0, greedy: bool = False, seed: int = 0,
           progress: bool = True) -> Tensor:
    """Waveform from a mel-conditioned WaveNet through the fast cached generator (with a progress bar).

    wav: ``Tensor[T]`` / ``[B, T]`` in [-1, 1] -> its log-mel (``settings["mel"]``) -> resynthesized
        ``Tensor[T']`` / ``[B, T']`` with ``T' = (T // hop) * hop``.
    mel: ``Tensor[M, F]`` / ``[B, M, F]`` natural-log mel as :class:`MelSpectrogram` makes it -> ``F * hop``
        samples. Exactly one of ``wav`` / ``mel``.
    g: speaker / instrument id (int or ``LongTensor[B]``) for models with global conditioning (default 0).
    """
    check_vocoder(model)
    if (wav is None) == (mel is None):
        raise ValueError("vocode needs exactly one of wav or mel")
    cfg = model.config
    settings = settings or vocoder_settings(model)
    ms = settings["mel"]
    if ms["hop"] != cfg.hop_length or ms["n_mels"] != cfg.cond_channels:
        raise ValueError(f"mel settings (hop {ms['hop']}, {ms['n_mels']} bands) do not fit the model "
                         f"(hop {cfg.hop_length}, {cfg.cond_channels} bands)")
    dev = model.device
    if wav is not None:
        squeeze = wav.ndim == 1
        wav = wav.unsqueeze(0) if squeeze else wav
        if wav.ndim != 2 or wav.shape[-1] < ms["hop"]:
            raise ValueError(f"waveform must be [T] or [B, T] with T >= {ms['hop']} samples, got {tuple(wav.shape)}")
        if not torch.isfinite(wav).all():
            raise ValueError("waveform contains NaN/Inf samples")
        frames = wav.shape[-1] // ms["hop"]
        mel = mel_module(ms, cfg.sample_rate).to(wav.device)(wav.float())[..., :frames]   # (B, M, F)
    else:
        squeeze = mel.ndim == 2
        mel = mel.unsqueeze(0) if squeeze else mel
        if mel.ndim != 3 or mel.shape[1] != cfg.cond_channels or mel.shape[-1] < 1:
            raise ValueError(f"mel must be [{cfg.cond_channels}, frames] or [B, {cfg.cond_channels}, frames], "
                             f"got {tuple(mel.shape)}")
        if not torch.isfinite(mel).all():
            raise ValueError("mel contains NaN/Inf values")
    B = mel.shape[0]
    if cfg.num_speakers > 0:
        g = torch.zeros(B, dtype=torch.long) if g is None else torch.as_tensor(g, dtype=torch.long).reshape(-1)
        g = g.expand(B) if g.numel() == 1 else g
        g = g.to(dev)
    else:
        if g is not None:
            raise ValueError("this vocoder has no global conditioning; drop the speaker id")
    generator = torch.Generator(device=dev).manual_seed(seed)
    x = model.generate(c=normalize_mel(mel.float()).to(dev), g=g, temperature=temperature, greedy=greedy,
                       generator=generator, progress=progress)
    out = model.decode(x).cpu()
    return out[0] if squeeze else out


def resynthesis_report(model, wav: Tensor, g: Tensor | None, settings: dict, gl_iters: int = 32,
                       temperature: float = 1.0, seed: int = 0, progress: bool = False) -> tuple[dict, dict]:
    """Resynthesize ``wav[B, T]`` (whole frames) with the model and with Griffin-Lim from the same mel.
    Returns (metrics: ``{lsd_db, mrstft, sc, logmag}`` for ``model`` and ``griffin_lim`` plus NLL-free
    timings, audio ``{"model": Tensor[B, T], "griffin_lim": Tensor[B, T]}``)."""
    ms = settings["mel"]
    t0 = time.perf_counter()
    y = vocode(model, wav=wav, g=g if model.config.num_speakers > 0 else None, settings=settings,
               temperature=temperature, seed=seed, progress=progress)
    model_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    gl = griffin_lim_of(wav, ms, model.config.sample_rate, gl_iters)
    gl_s = time.perf_counter() - t0
    out = {}
    for name, z in (("model", y), ("griffin_lim", gl)):
        mr = mr_stft_distance(wav, z)
        out[name] = {"lsd_db": log_spectral_distance(wav, z).mean().item(), "mrstft": mr["total"].mean().item(),
                     "sc": mr["sc"].mean().item(), "logmag": mr["mag"].mean().item()}
    out["model"]["seconds"], out["griffin_lim"]["seconds"] = round(model_s, 2), round(gl_s, 2)
    return out, {"model": y, "griffin_lim": gl}


def griffin_lim_of(wav: Tensor, mel: dict, sr: int, n_iter: int = 32) -> Tensor:
    """The baseline: Griffin-Lim (seeded) from ``wav``'s own log-mel (``mel`` settings), ``[.., T] -> [.., T]``."""
    return griffin_lim(mel_module(mel, sr)(wav), sr=sr, n_fft=mel["n_fft"], hop=mel["hop"], win=mel["n_fft"],
                       fmin=mel["fmin"], fmax=mel["fmax"], n_iter=n_iter, length=wav.shape[-1])


def compare_with_griffin_lim(model, wav: Tensor, y: Tensor, settings: dict, gl_iters: int = 32) -> tuple[Tensor, dict]:
    """Griffin-Lim (``gl_iters`` iterations) from ``wav``'s mel and both resyntheses scored against ``wav``
    (``[T]``, cut to ``y``'s length): ``(griffin_lim[T'], {"wavenet": {lsd_db, mrstft}, "griffin_lim": ...})``."""
    ref = wav[..., :y.shape[-1]]
    gl = griffin_lim_of(ref, settings["mel"], model.config.sample_rate, gl_iters)
    scores = {name: {"lsd_db": round(log_spectral_distance(ref, z).mean().item(), 3),
                     "mrstft": round(mr_stft_distance(ref, z)["total"].mean().item(), 4)}
              for name, z in (("wavenet", y), ("griffin_lim", gl))}
    return gl, scores


HELDOUT_FILE = "heldout.wav"


def write_heldout_example(model, folder: str | Path, data: VocoderData, settings: dict, split: str = "test",
                          seconds: float = 1.5) -> dict:
    """Save the middle ``seconds`` of the first ``split`` file as ``folder/heldout.wav`` (16-bit) and score
    ``arsound vocode folder/heldout.wav -o out.wav --compare`` on it (read back from the file, default seed,
    the settings' temperature), so anyone can rerun the figures: ``{"clip", "seconds", "wavenet", "griffin_lim"}``."""
    from .io import load_audio, save_audio

    clips, labels, ids = heldout_clips(data, split, 1, seconds, settings["mel"]["hop"])
    path = Path(folder) / HELDOUT_FILE
    save_audio(path, clips[0], model.config.sample_rate)
    wav, _ = load_audio(path, sr=model.config.sample_rate, as_tensor=True)
    g = int(labels[0]) if model.config.num_speakers > 0 else None
    y = vocode(model, wav=wav, g=g, settings=settings, temperature=settings.get("temperature", 1.0), progress=False)
    _, scores = compare_with_griffin_lim(model, wav, y, settings)
    return {"clip": ids[0], "seconds": round(wav.shape[-1] / model.config.sample_rate, 3),
            "speaker": None if g is None else settings["classes"][g], **scores}


# ---- the shared recipe loop -------------------------------------------------------------------------
def build_vocoder(model: VocoderModel, mel: MelSpec, num_speakers: int, sample_rate: int):
    from .wavenet import WaveNet, WaveNetConfig

    m = asdict(model)
    return WaveNet(WaveNetConfig(**{**m, "upsample_scales": tuple(m["upsample_scales"])}, cond_channels=mel.n_mels,
                                 hop_length=mel.hop, num_speakers=num_speakers, sample_rate=sample_rate))


def warm_start(model, source: str | Path) -> None:
    """Copy the weights of the saved vocoder ``source`` (folder or registry name) into ``model`` (fine-tuning:
    the optimizer, schedule and EMA start fresh). The architectures must match exactly."""
    from ..core.checkpoint import CheckpointError, load

    src = load(source)
    a, b = asdict(src.config), asdict(model.config)
    diff = [f"{k} {a.get(k)!r} != {b.get(k)!r}" for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]
    if type(src) is not type(model) or diff:
        raise CheckpointError(f"{source}: cannot warm-start, its model differs from the recipe's "
                              f"({', '.join(diff) or type(src).__name__}); pass the same --model.* settings")
    model.load_state_dict(src.state_dict())


def _write_json(path: Path, obj) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    with os.fdopen(fd, "w") as f:
        f.write(json.dumps(obj, indent=2) + "\n")
    os.replace(tmp, path)


def train_vocoder(cfg, recipe: str) -> dict:
    """Train a vocoder recipe ``cfg`` (fields ``model: VocoderModel, data: VocoderData, mel: MelSpec,
    train: TrainConfig, eval: VocoderEval``) with the shared Trainer; every eval adds held-out
    resynthesis (model vs Griffin-Lim) to ``out_dir/resynthesis.jsonl``; the end writes
    ``out_dir/results.json``, example WAVs and the exported model (+ ``vocoder.json``, model card)."""
    from .io import save_audio

    data, mel, ev = cfg.data, cfg.mel, cfg.eval
    probe = open_split(data, "train")
    classes = probe.classes
    num_speakers = len(classes) if len(classes) > 1 else 0
    model = build_vocoder(cfg.model, mel, num_speakers, probe.sample_rate)
    init = getattr(cfg, "init", "")
    if init:   # before the Trainer, so its EMA starts from these weights (a resume.pt still wins)
        warm_start(model, init)
    train = VocoderDataset(data, "train", mel, model.encode, num_speakers > 0)
    valid = VocoderDataset(data, "valid", mel, model.encode, num_speakers > 0)
    settings = {"mel": asdict(mel), "classes": classes if num_speakers else [], "label": LABELS[data.name]}
    out = Path(cfg.train.out_dir)
    credit = "; ".join(dict.fromkeys(e["credit"] for e in probe.items))
    card = {"data": f"{data.name}" + (f" ({data.language})" if data.name == "speech" and data.language else "")
            + f", {probe.seconds / 60:.1f} min train, crops of {data.segment_frames} frames x hop {mel.hop}",
            "licence / credit": credit, "recipe": recipe, "hardware": hardware()}
    if init:
        card["warm start"] = f"weights of {init}, then the steps below with a fresh optimizer and schedule"
    trainer = Trainer(model, cfg.train, train, valid, card=card)
    clips, labels, _ = heldout_clips(data, "valid", ev.clips, ev.seconds, mel.hop)

    def resynth_eval(tr: Trainer) -> None:
        if not tr.is_main or not (tr.cfg.eval_every and tr.step % tr.cfg.eval_every == 0) or tr.step == tr.cfg.steps:
            return
        rep, _ = resynthesis_report(tr.eval_model, clips, labels, settings, ev.griffin_lim_iters, ev.temperature,
                                    seed=tr.cfg.seed)
        row = {"step": tr.step, "split": "valid", **{f"{k}_{m}": v for k in rep for m, v in rep[k].items()},
               **{f"valid_{k}": v for k, v in tr.last_eval.items()}}
        with open(out / "resynthesis.jsonl", "a") as f:
            f.write(json.dumps(row) + "\n")
        if tr.cfg.progress:
            print(f"step {tr.step}: valid {tr.last_eval.get('bits_per_dim', float('nan')):.3f} bits/sample, LSD "
                  f"{rep['model']['lsd_db']:.2f} dB (Griffin-Lim {rep['griffin_lim']['lsd_db']:.2f})", flush=True)

    trainer.add_callback("on_step_end", resynth_eval)
    t0 = time.perf_counter()
    trainer.fit()
    train_s = time.perf_counter() - t0
    if not trainer.is_main:
        return {}
    return report_vocoder(trainer.eval_model.eval(), cfg, recipe, settings, card, steps=trainer.step,
                          train_s=train_s)


def choose_temperature(model, cfg, settings: dict) -> tuple[float, list[dict]]:
    """The sampling temperature of ``cfg.eval.temperatures`` with the lowest LSD on ``cfg.eval.select_clips``
    *valid* clips (never the test split): ``(T, [{"temperature", "lsd_db", "mrstft"}, ...])``. Without a
    sweep: ``(cfg.eval.temperature, [])``."""
    ev = cfg.eval
    if not ev.temperatures:
        return ev.temperature, []
    clips, labels, _ = heldout_clips(cfg.data, "valid", ev.select_clips, ev.seconds, cfg.mel.hop)
    rows = []
    for T in ev.temperatures:
        y = vocode(model, wav=clips, g=labels if model.config.num_speakers > 0 else None, settings=settings,
                   temperature=T, seed=cfg.train.seed, progress=False)
        rows.append({"temperature": T, "lsd_db": log_spectral_distance(clips, y).mean().item(),
                     "mrstft": mr_stft_distance(clips, y)["total"].mean().item()})
    return min(rows, key=lambda r: r["lsd_db"])["temperature"], rows


def report_vocoder(final, cfg, recipe: str, settings: dict, card: dict, *, steps: int, train_s: float) -> dict:
    """Final report of a trained vocoder: pick the temperature on valid clips (:func:`choose_temperature`),
    then on ``cfg.eval.final_split`` the NLL (bits/sample, middle crops) and resynthesis vs Griffin-Lim; writes
    ``out_dir/results.json``, ``out_dir/examples/`` and ``out_dir/model`` (weights, ``vocoder.json`` with the
    chosen temperature, model card)."""
    from ..core.checkpoint import save_pretrained
    from .io import save_audio

    data, mel, ev, out = cfg.data, cfg.mel, cfg.eval, Path(cfg.train.out_dir)
    num_speakers = final.config.num_speakers
    temperature, sweep = choose_temperature(final, cfg, settings)
    settings = {**settings, "temperature": temperature}
    test = VocoderDataset(data, ev.final_split, mel, final.encode, num_speakers > 0)
    nll = evaluate(final, test, batch_size=cfg.train.batch_size)
    clips_t, labels_t, ids = heldout_clips(data, ev.final_split, ev.clips, ev.seconds, mel.hop)
    rep, audio = resynthesis_report(final, clips_t, labels_t, settings, ev.griffin_lim_iters, temperature,
                                    seed=cfg.train.seed, progress=cfg.train.progress)
    result = {"recipe": recipe, "data": asdict(data), "head": cfg.model.head, "bits": cfg.model.bits,
              "preemphasis": final.config.preemphasis,
              "params": final.num_parameters(), "receptive_field": final.receptive_field, "steps": steps,
              "train_s": round(train_s, 1), "hardware": hardware(), "split": ev.final_split, "clips": ids,
              "nll_bits_per_sample": bits_per_sample(nll["nll"], test.segment),
              "nll_nats_per_sample": nll["loss"], "model": rep["model"], "griffin_lim": rep["griffin_lim"],
              "griffin_lim_iters": ev.griffin_lim_iters, "temperature": temperature, "temperature_sweep_valid": sweep,
              "beats_griffin_lim_lsd": rep["model"]["lsd_db"] < rep["griffin_lim"]["lsd_db"]}
    out.mkdir(parents=True, exist_ok=True)
    for j in range(len(ids)):
        save_audio(out / "examples" / f"{j}_original.wav", clips_t[j], final.config.sample_rate)
        save_audio(out / "examples" / f"{j}_wavenet.wav", audio["model"][j], final.config.sample_rate)
        save_audio(out / "examples" / f"{j}_griffin_lim.wav", audio["griffin_lim"][j], final.config.sample_rate)
    tried = ", ".join(f"{r['temperature']:g}: {r['lsd_db']:.2f} dB" for r in sweep)
    chosen = (f"temperature {temperature:g}, the lowest LSD on {ev.select_clips} valid clips of {tried}" if sweep
              else f"temperature {temperature:g}")
    card = {**card, "steps": steps, "training time": f"{train_s / 60:.1f} min",
            "batch_size": cfg.train.batch_size, "lr": cfg.train.lr, "ema_decay": cfg.train.ema_decay,
            "pre-emphasis": final.config.preemphasis,
            f"{ev.final_split} NLL": f"{result['nll_bits_per_sample']:.3f} bits/sample"
            + (" (of the pre-emphasized signal)" if final.config.preemphasis else ""),
            "sampling": chosen,
            f"{ev.final_split} resynthesis ({len(ids)} clips of {clips_t.shape[-1] / final.config.sample_rate:.2f} s)":
                f"WaveNet LSD {rep['model']['lsd_db']:.2f} dB, MR-STFT {rep['model']['mrstft']:.3f}; "
                f"Griffin-Lim ({ev.griffin_lim_iters} it.) LSD {rep['griffin_lim']['lsd_db']:.2f} dB, "
                f"MR-STFT {rep['griffin_lim']['mrstft']:.3f}",
            "mel": settings["mel"], "classes": settings["classes"],
            "usage": "arsound vocode in.wav -o out.wav --model THIS_FOLDER"}
    ex = write_heldout_example(final, out, data, settings, ev.final_split)
    result["heldout_example"] = ex
    card[f"shipped example ({HELDOUT_FILE}: {ex['clip']}, {ex['seconds']:g} s of the {ev.final_split} split)"] = (
        f"WaveNet LSD {ex['wavenet']['lsd_db']:.2f} dB, MR-STFT {ex['wavenet']['mrstft']:.3f}; Griffin-Lim LSD "
        f"{ex['griffin_lim']['lsd_db']:.2f} dB, MR-STFT {ex['griffin_lim']['mrstft']:.3f}; rerun: arsound vocode "
        f"THIS_FOLDER/{HELDOUT_FILE} -o out.wav --model THIS_FOLDER --compare"
        + (f" --speaker {ex['speaker']}" if ex["speaker"] is not None else ""))
    folder = save_pretrained(final, out / "model", card=card)  # replaces the Trainer's export, richer card
    os.replace(out / HELDOUT_FILE, folder / HELDOUT_FILE)
    _write_json(folder / SETTINGS_FILE, settings)
    _write_json(out / "results.json", result)
    print(f"{recipe} on {data.name}: {ev.final_split} NLL {result['nll_bits_per_sample']:.3f} bits/sample; LSD "
          f"{rep['model']['lsd_db']:.2f} dB vs Griffin-Lim {rep['griffin_lim']['lsd_db']:.2f} dB at T = {temperature:g}; "
          f"MR-STFT {rep['model']['mrstft']:.3f} vs {rep['griffin_lim']['mrstft']:.3f}; model in {folder}")
    return result


# ---- CLI: arsound vocode ----------------------------------------------------------------------------
DEFAULT_MODEL = "wavenet-speech-en"


def add_vocode_parser(subparsers):
    """``arsound vocode IN.wav -o OUT.wav [--model NAME]`` / ``arsound vocode --mel MEL.npy -o OUT.wav``."""
    v = subparsers.add_parser("vocode", help="resynthesize audio (or a mel .npy) with a WaveNet vocoder",
                              description="Audio -> log-mel -> waveform through a mel-conditioned WaveNet "
                                          "(fast cached generator), or a log-mel .npy [80, frames] -> waveform.")
    v.add_argument("input", nargs="?", help="input audio file (resampled to the model's rate, mono)")
    v.add_argument("--mel", help="natural-log mel .npy [n_mels, frames] (as arsound's MelSpectrogram makes it)")
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
    return v


def _speaker_id(spec: str | None, classes: list, n: int) -> int | None:
    if spec is None:
        return None
    if spec in [str(c) for c in classes]:
        return [str(c) for c in classes].index(spec)
    if not spec.lstrip("-").isdigit() or not 0 <= int(spec) < n:
        raise ValueError(f"--speaker must be an id in [0, {n}) or one of {classes}, got '{spec}'")
    return int(spec)


def cmd_vocode(args, extra: list[str]) -> int:
    from ..core.checkpoint import load, resolve
    from .io import SAVE_FORMATS, load_audio, save_audio

    if extra:
        raise ValueError(f"unrecognized arguments: {' '.join(extra)}")
    if (args.input is None) == (args.mel is None):
        raise ValueError("give exactly one input: an audio file, or --mel MEL.npy")
    out = Path(args.out)
    if out.suffix.lower() not in SAVE_FORMATS:
        raise ValueError(f"output '{out}' must end in one of {sorted(SAVE_FORMATS)}")
    if args.compare and args.mel is not None:
        raise ValueError("--compare needs an audio input (it scores the resynthesis against it), not --mel")
    if args.temperature is not None and args.temperature <= 0:
        raise ValueError(f"--temperature must be > 0, got {args.temperature}")
    folder = resolve(args.model)
    model = load(folder, device=args.device)
    check_vocoder(model)
    settings = vocoder_settings(model, folder)
    temperature = settings.get("temperature", 1.0) if args.temperature is None else args.temperature
    cfg = model.config
    if cfg.num_speakers == 0 and args.speaker is not None:
        raise ValueError(f"vocoder '{args.model}' has no speakers/instruments; drop --speaker")
    g = _speaker_id(args.speaker, settings.get("classes", []), cfg.num_speakers)
    if cfg.num_speakers > 0 and g is None:
        g = 0
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
        y = vocode(model, mel=mel, g=g, settings=settings, temperature=temperature, seed=args.seed)
    else:
        hop = settings["mel"]["hop"]
        wav, _ = load_audio(args.input, sr=cfg.sample_rate, min_seconds=2 * hop / cfg.sample_rate, as_tensor=True)
        wav = wav.clamp(-1, 1)
        y = vocode(model, wav=wav, g=g, settings=settings, temperature=temperature, seed=args.seed)
    save_audio(out, y, cfg.sample_rate)
    print(f"wrote {y.shape[-1] / cfg.sample_rate:.2f} s at {cfg.sample_rate} Hz to {out}")
    if args.compare:
        gl, scores = compare_with_griffin_lim(model, wav, y, settings)
        gl_out = out.with_name(f"{out.stem}_griffin_lim{out.suffix}")
        save_audio(gl_out, gl, cfg.sample_rate)
        print(f"{'vs the input':14s} {'LSD (dB)':>9s} {'MR-STFT':>8s}")
        for name, key in (("WaveNet", "wavenet"), ("Griffin-Lim", "griffin_lim")):
            print(f"{name:14s} {scores[key]['lsd_db']:9.2f} {scores[key]['mrstft']:8.3f}")
        print(f"wrote the Griffin-Lim resynthesis (32 iterations, same mel) to {gl_out}")
    return 0


__all__ = ["MelSpec", "VocoderModel", "VocoderData", "VocoderEval", "VocoderDataset", "heldout_clips",
           "log_spectral_distance", "mr_stft_distance", "vocode", "resynthesis_report", "train_vocoder",
           "choose_temperature", "report_vocoder", "compare_with_griffin_lim", "griffin_lim_of",
           "write_heldout_example",
           "add_vocode_parser", "cmd_vocode", "normalize_mel", "build_vocoder"]
