"""One Trainer for every arsound model. Like minGPT's ``mingpt/trainer.py`` it has nothing to do with any
model specifically: all it calls on a model is ``model.loss(batch) -> (loss, metrics)``.

    trainer = Trainer(model, TrainConfig(steps=2000, batch_size=64, out_dir="runs/x"), train_x, valid_x)
    trainer.fit()               # picks up runs/x/resume.pt by itself when it exists
    model = trainer.eval_model  # the EMA weights when cfg.ema_decay > 0

Each step: a global batch from a per-epoch permutation seeded by ``(seed, epoch)`` (so the data position
is just ``(epoch, index)``), bf16 autocast where supported, AdamW, warm-up + decay LR, gradient
clipping, EMA. Every few steps: eval over ``valid_data`` with the EMA weights, ``out_dir/log.csv``
(+ TensorBoard when installed), resume state ``out_dir/resume.pt`` (atomic). At the end:
``save_pretrained(out_dir / "model")``.

Exact resume: model, optimizer, scheduler, EMA, step, data position and every RNG state are saved, so a
run killed at any point and restarted ends with bit-identical parameters (CPU).

Data parallel: under ``torchrun --nproc_per_node N`` each rank takes a strided share of the same global
batch (``batch_size`` is global), DDP averages the gradients, metrics are averaged across ranks and
only rank 0 writes files.
"""
from __future__ import annotations

import atexit
import copy
import csv
import dataclasses
import json
import math
import os
import random
import time
from collections import defaultdict
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.distributed as dist
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.optim.lr_scheduler import LambdaLR
from torch.utils.data import default_collate
from tqdm.auto import tqdm

from .checkpoint import CheckpointError, load_resume_state, save_pretrained, save_resume_state
from .device import autocast, resolve_amp, resolve_device
from .files import atomic_write

DECAYS = ("cosine", "linear", "none")
AMPS = ("auto", "bf16", "off")


class TrainingError(RuntimeError):
    """A run that cannot go on (non-finite loss or gradients, unusable resume state). One-line message."""


@dataclass
class TrainConfig:
    steps: int = 1000                 # optimizer steps
    batch_size: int = 64              # GLOBAL batch, split across data-parallel ranks
    lr: float = 1e-3                  # peak learning rate
    weight_decay: float = 0.0         # AdamW decay, on weights with >= 2 dims only
    betas: tuple[float, float] = (0.9, 0.999)
    warmup_steps: int = 0             # linear warm-up to lr
    decay: str = "cosine"             # after warm-up: cosine | linear | none
    min_lr_ratio: float = 0.1         # the last step runs at min_lr_ratio * lr
    grad_clip: float = 1.0            # max global gradient norm; 0 disables
    ema_decay: float = 0.0            # EMA of the weights, used for eval and export; 0 disables
    amp: str = "auto"                 # auto (bf16 on CUDA that supports it) | bf16 | off
    eval_every: int = 500             # steps between evals on valid_data (always at the end); 0: end only
    eval_batches: int = 0             # batches per eval; 0: the whole valid set
    ckpt_every: int = 500             # steps between resume checkpoints (always at the end); 0: end only
    log_every: int = 50               # steps between train rows in log.csv and progress-bar updates
    seed: int = 0                     # data order and python/numpy/torch RNGs
    device: str = "auto"              # auto (cuda when available) | cpu | cuda | cuda:1 ...
    out_dir: str = "runs/default"
    progress: bool = True             # tqdm progress bar


def check_config(cfg: TrainConfig) -> None:
    """One-line ``ValueError`` for settings that cannot work."""
    for name in ("steps", "batch_size"):
        if getattr(cfg, name) < 1:
            raise ValueError(f"train.{name} must be >= 1, got {getattr(cfg, name)}")
    for name in ("warmup_steps", "eval_every", "eval_batches", "ckpt_every", "grad_clip", "weight_decay", "lr"):
        if getattr(cfg, name) < 0:
            raise ValueError(f"train.{name} must be >= 0, got {getattr(cfg, name)}")
    if cfg.decay not in DECAYS:
        raise ValueError(f"train.decay must be one of {DECAYS}, got '{cfg.decay}'")
    if cfg.amp not in AMPS:
        raise ValueError(f"train.amp must be one of {AMPS}, got '{cfg.amp}'")
    if not 0 <= cfg.ema_decay < 1 or not 0 <= cfg.min_lr_ratio <= 1 or cfg.log_every < 1:
        raise ValueError(f"need 0 <= train.ema_decay < 1, 0 <= train.min_lr_ratio <= 1, train.log_every >= 1; got "
                         f"{cfg.ema_decay}, {cfg.min_lr_ratio}, {cfg.log_every}")


# ---- helpers ------------------------------------------------------------------------------------------
def lr_factor(step: int, steps: int, warmup: int, decay: str, min_ratio: float) -> float:
    """Multiplier of the peak lr at optimizer step ``step`` (0-based): linear warm-up over ``warmup``
    steps reaching 1 at step ``warmup - 1``, then cosine/linear decay reaching ``min_ratio`` at the
    last step, or constant (``decay='none'``)."""
    if step < warmup:
        return (step + 1) / warmup
    if decay == "none":
        return 1.0
    p = min(1.0, (step - warmup) / max(1, steps - warmup - 1))
    shape = 0.5 * (1 + math.cos(math.pi * p)) if decay == "cosine" else 1 - p
    return min_ratio + (1 - min_ratio) * shape


class EMA:
    """A shadow copy of a model whose weights follow ``ema = d * ema + (1 - d) * w`` after every step.
    The decay is warmed up as ``d = min(decay, (1 + n) / (10 + n))`` (n = updates so far), so a short
    run does not stay near its initial weights. Buffers are copied, not averaged."""

    def __init__(self, model: nn.Module, decay: float) -> None:
        self.decay, self.num_updates = decay, 0
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: nn.Module) -> None:
        self.num_updates += 1
        d = min(self.decay, (1 + self.num_updates) / (10 + self.num_updates))
        for e, p in zip(self.model.parameters(), model.parameters()):
            e.lerp_(p.detach(), 1 - d)
        for e, b in zip(self.model.buffers(), model.buffers()):
            e.copy_(b)

    def state_dict(self) -> dict:
        return {"model": self.model.state_dict(), "num_updates": self.num_updates}

    def load_state_dict(self, state: dict) -> None:
        self.model.load_state_dict(state["model"])
        self.num_updates = state["num_updates"]


def rng_state() -> dict:
    """python, numpy, torch (and CUDA) RNG states, in types ``torch.load(weights_only=True)`` reads."""
    kind, keys, pos, has_gauss, gauss = np.random.get_state()
    state = {"python": random.getstate(), "numpy": (kind, keys.tolist(), pos, has_gauss, gauss),
             "torch": torch.get_rng_state()}
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def set_rng_state(state: dict) -> None:
    random.setstate(state["python"])
    kind, keys, pos, has_gauss, gauss = state["numpy"]
    np.random.set_state((kind, np.array(keys, dtype=np.uint32), pos, has_gauss, gauss))
    torch.set_rng_state(state["torch"])
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def epoch_permutation(n: int, seed: int, epoch: int) -> Tensor:
    """The order of the ``n`` training examples in ``epoch``: a function of ``(seed, epoch)`` only."""
    key = int(np.random.SeedSequence([seed % 2**63, epoch]).generate_state(1, np.uint64)[0])
    return torch.randperm(n, generator=torch.Generator().manual_seed(key))


def gather(data, idx: Tensor, collate: Callable | None = None):
    """The batch of examples ``idx`` from a Tensor or a map-style dataset (``default_collate`` unless
    ``collate`` is given)."""
    if collate is None and isinstance(data, Tensor):
        return data[idx]
    return (collate or default_collate)([data[i] for i in idx.tolist()])


def to_device(batch, device: torch.device):
    if isinstance(batch, Tensor):
        return batch.to(device, non_blocking=True)
    if isinstance(batch, dict):
        return {k: to_device(v, device) for k, v in batch.items()}
    if isinstance(batch, (list, tuple)):
        return type(batch)(to_device(v, device) for v in batch)
    return batch


@torch.no_grad()
def _eval_sums(model: nn.Module, data, batch_size: int, collate=None, max_batches: int = 0,
               amp_dtype: torch.dtype | None = None, rank: int = 0, world: int = 1) -> tuple[dict, int]:
    """Sums of ``{loss, **metrics} * batch size`` over this rank's share of the batches, and the count."""
    device = next(model.parameters()).device
    n_batches = math.ceil(len(data) / batch_size)
    n_batches = min(n_batches, max_batches) if max_batches else n_batches
    sums, count, was_training = defaultdict(float), 0, model.training
    model.eval()
    for b in range(rank, n_batches, world):
        idx = torch.arange(b * batch_size, min(len(data), (b + 1) * batch_size))
        with autocast(device, amp_dtype):
            loss, metrics = model.loss(to_device(gather(data, idx, collate), device))
        for k, v in {"loss": loss, **metrics}.items():
            sums[k] += float(v) * len(idx)
        count += len(idx)
    model.train(was_training)
    return dict(sums), count


def evaluate(model: nn.Module, data, batch_size: int = 256, collate=None, max_batches: int = 0,
             amp_dtype: torch.dtype | None = None) -> dict[str, float]:
    """Mean ``loss`` and metrics of ``model.loss`` over ``data`` (in order, eval mode, no grad)."""
    sums, count = _eval_sums(model, data, batch_size, collate, max_batches, amp_dtype)
    return {k: v / max(count, 1) for k, v in sums.items()}


class _RunLog:
    """``out_dir/log.csv`` (step, split, lr, loss, metrics...; train rows also the seconds of training so far) and
    TensorBoard scalars when installed. On resume, rows after the resumed step (written before the interruption)
    are dropped."""

    def __init__(self, out_dir: Path, resume_step: int | None) -> None:
        out_dir.mkdir(parents=True, exist_ok=True)
        self.path, self.fields, self.writer = out_dir / "log.csv", None, None
        if resume_step is not None and self.path.is_file():
            with open(self.path, newline="") as f:
                reader = csv.DictReader(f)
                self.fields, rows = reader.fieldnames, [r for r in reader if int(r["step"]) <= resume_step]
            with atomic_write(self.path, newline="") as f:
                writer = csv.DictWriter(f, self.fields)
                writer.writeheader()
                writer.writerows(rows)
        self.file = open(self.path, "a" if self.fields else "w", newline="")
        if self.fields:
            self.writer = csv.DictWriter(self.file, self.fields, extrasaction="ignore")
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out_dir / "tb"))
        except Exception:  # tensorboard is optional
            self.tb = None

    def write(self, step: int, split: str, lr: float, values: dict[str, float]) -> None:
        if self.writer is None:
            self.fields = ["step", "split", "lr", *values]
            self.writer = csv.DictWriter(self.file, self.fields, extrasaction="ignore")
            self.writer.writeheader()
        self.writer.writerow({"step": step, "split": split, "lr": f"{lr:.6g}",
                              **{k: f"{v:.6g}" for k, v in values.items()}})
        self.file.flush()
        if self.tb is not None:
            for k, v in values.items():
                self.tb.add_scalar(f"{split}/{k}", v, step)

    def close(self) -> None:
        self.file.close()
        if self.tb is not None:
            self.tb.close()


class _LossModule(nn.Module):
    """``forward(batch) = model.loss(batch)``, so DDP's gradient hooks fire around the loss."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, batch):
        return self.model.loss(batch)


def _init_distributed(device_spec: str) -> tuple[int, int, torch.device]:
    """(rank, world size, device); starts the process group under torchrun (gloo on CPU, nccl on CUDA)."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return 0, 1, resolve_device(device_spec)
    device = resolve_device(device_spec, int(os.environ.get("LOCAL_RANK", "0")))
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        atexit.register(lambda: dist.is_initialized() and dist.destroy_process_group())
    return dist.get_rank(), dist.get_world_size(), device


# What may differ between a run and its resumption: where it writes and how often it reports. Everything
# else in TrainConfig (and the model's config, and what the recipe passes) shapes the trajectory.
RESUMABLE_CHANGES = ("out_dir", "device", "progress", "log_every", "eval_every", "eval_batches", "ckpt_every")


def run_settings(model: nn.Module, cfg: TrainConfig, extra: dict | None = None) -> dict[str, Any]:
    """The settings a resumed run must share with the run it continues, flattened: ``{"train.lr": ...,
    "model.layers": ..., **extra}`` (JSON values, so they compare after a round trip through resume.pt)."""
    out = {f"train.{k}": v for k, v in asdict(cfg).items() if k not in RESUMABLE_CHANGES}
    config = getattr(model, "config", None)
    if dataclasses.is_dataclass(config) and not isinstance(config, type):
        out.update(_flatten("model", asdict(config)))
    out.update(_flatten("", extra or {}))
    return json.loads(json.dumps(out, default=str))


def _flatten(prefix: str, d: dict) -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}.{k}" if prefix else str(k)
        out.update(_flatten(key, v) if isinstance(v, dict) else {key: v})
    return out


# ---- the trainer --------------------------------------------------------------------------------------
class Trainer:
    """Train any ``ARModel`` (anything with ``loss(batch) -> (loss, metrics)``).

    train_data / valid_data: a Tensor (examples along dim 0) or a map-style dataset (``len`` +
        ``__getitem__``); batches are built with ``collate`` (default ``default_collate``).
    resume: True restores ``out_dir/resume.pt`` (an error if absent), False starts fresh (overwriting
        the log), None (default) resumes exactly when the file exists.
    card: extra model-card entries for the exported model (e.g. ``{"data": "MNIST 28x28 binarized"}``).
    """

    def __init__(self, model: nn.Module, cfg: TrainConfig, train_data, valid_data=None,
                 collate: Callable | None = None, resume: bool | None = None, card: dict | None = None,
                 settings: dict | None = None) -> None:
        check_config(cfg)
        self.settings = run_settings(model, cfg, settings)
        self.cfg, self.train_data, self.valid_data, self.collate = cfg, train_data, valid_data, collate
        self.card = dict(card or {})
        self.rank, self.world, self.device = _init_distributed(cfg.device)
        self.is_main = self.rank == 0
        if len(train_data) < cfg.batch_size:
            raise ValueError(f"train.batch_size {cfg.batch_size} is larger than the {len(train_data)} training "
                             "examples; lower --train.batch_size")
        if cfg.batch_size % self.world:
            raise ValueError(f"train.batch_size {cfg.batch_size} is not divisible by {self.world} processes")
        self.out_dir = Path(cfg.out_dir)
        self.resume_path = self.out_dir / "resume.pt"
        self.model = model.to(self.device)
        self.amp_dtype = resolve_amp(cfg.amp, self.device)
        self.ema = EMA(self.model, cfg.ema_decay) if cfg.ema_decay > 0 else None
        decay = [p for p in model.parameters() if p.requires_grad and p.dim() >= 2]
        no_decay = [p for p in model.parameters() if p.requires_grad and p.dim() < 2]
        self.optimizer = torch.optim.AdamW([{"params": decay, "weight_decay": cfg.weight_decay},
                                            {"params": no_decay, "weight_decay": 0.0}], lr=cfg.lr,
                                           betas=tuple(cfg.betas))
        self.scheduler = LambdaLR(self.optimizer, partial(lr_factor, steps=cfg.steps, warmup=cfg.warmup_steps,
                                                          decay=cfg.decay, min_ratio=cfg.min_lr_ratio))
        if self.world > 1:
            ids = [self.device.index] if self.device.type == "cuda" else None
            self.loss_fn = DistributedDataParallel(_LossModule(self.model), device_ids=ids)
        else:
            self.loss_fn = self.model.loss
        self.step = self.epoch = self.index = 0  # optimizer steps done; data position (epoch, index)
        self.last_ckpt_step: int | None = None
        self.last_eval: dict[str, float] = {}
        self.train_seconds = 0.0  # wall time of the steps kept so far, across resumes (see _tick)
        self.callbacks: dict[str, list[Callable]] = defaultdict(list)
        self._keys: list[str] | None = None  # metric names, fixed at the first step
        self.resumed = self.resume_path.is_file() if resume is None else resume
        if self.resumed:
            self._restore()
        else:
            seed_everything(cfg.seed + self.rank)

    @property
    def ema_model(self) -> nn.Module | None:
        return self.ema.model if self.ema is not None else None

    @property
    def eval_model(self) -> nn.Module:
        """The weights to evaluate and export: the EMA copy when enabled, else the model itself."""
        return self.ema.model if self.ema is not None else self.model

    def add_callback(self, event: str, fn: Callable[[Trainer], Any]) -> None:
        """``fn(trainer)`` on ``"on_step_end"`` (after logging, eval and checkpointing of a step)."""
        self.callbacks[event].append(fn)

    # ---- data -----------------------------------------------------------------------------------------
    def _next_batch(self):
        """This rank's strided share of the next global batch; drops each epoch's incomplete tail."""
        n, bs = len(self.train_data), self.cfg.batch_size
        if self.index + bs > n:
            self.epoch, self.index = self.epoch + 1, 0
        idx = epoch_permutation(n, self.cfg.seed, self.epoch)[self.index:self.index + bs]
        self.index += bs
        return to_device(gather(self.train_data, idx[self.rank::self.world], self.collate), self.device)

    # ---- one step -------------------------------------------------------------------------------------
    def _train_step(self, batch) -> tuple[Tensor, float]:
        """Forward, non-finite check, backward, clip, AdamW, LR schedule, EMA. Returns the rank-averaged
        ``[loss, *metrics]`` and the lr used."""
        self.model.train()
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.device, self.amp_dtype):
            loss, metrics = self.loss_fn(batch)
        if self._keys is None:
            self._keys = sorted(metrics)
        stats = torch.stack([loss.detach().float().mean()] + [
            torch.as_tensor(metrics[k], device=self.device).detach().float().mean() for k in self._keys])
        if self.world > 1:
            dist.all_reduce(stats)
            stats /= self.world
        if not torch.isfinite(stats[0]):
            self._fail(f"loss is {stats[0].item()}")
        loss.backward()
        if self.cfg.grad_clip > 0:
            norm = nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.grad_clip)
            if not torch.isfinite(norm):
                self._fail(f"gradient norm is {norm.item()}")
        lr = self.optimizer.param_groups[0]["lr"]
        self.optimizer.step()
        self.scheduler.step()
        if self.ema is not None:
            self.ema.update(self.model)
        return stats, lr

    def _fail(self, what: str) -> None:
        where = (f"the last good checkpoint {self.resume_path} (step {self.last_ckpt_step}) is untouched"
                 if self.last_ckpt_step is not None else "no checkpoint was written")
        raise TrainingError(f"{what} at step {self.step + 1}; stopped, {where}; try a lower --train.lr, "
                            "more --train.warmup_steps or --train.grad_clip")

    # ---- the loop -------------------------------------------------------------------------------------
    def fit(self) -> dict[str, float]:
        """Train to ``cfg.steps``; returns the last eval metrics (empty without valid_data)."""
        cfg = self.cfg
        log = _RunLog(self.out_dir, self.step if self.resumed else None) if self.is_main else None
        bar = tqdm(total=cfg.steps, initial=self.step, desc="train", unit="step", dynamic_ncols=True,
                   disable=not (cfg.progress and self.is_main))
        acc, n_acc = None, 0
        self._clock = time.perf_counter()
        try:
            while self.step < cfg.steps:
                stats, lr = self._train_step(self._next_batch())
                self.step += 1
                acc, n_acc = (stats if acc is None else acc + stats), n_acc + 1
                bar.update(1)
                last = self.step == cfg.steps
                if self.step % cfg.log_every == 0 or last:
                    values = dict(zip(["loss", *self._keys], (acc / n_acc).tolist()))
                    acc, n_acc = None, 0
                    bar.set_postfix({k: f"{values[k]:.4f}" for k in ("loss", "bits_per_dim") if k in values})
                    if log is not None:  # with the wall time of the steps so far, across resumes
                        seconds = self.train_seconds + time.perf_counter() - self._clock
                        log.write(self.step, "train", lr, {**values, "seconds": seconds})
                if self.valid_data is not None and ((cfg.eval_every and self.step % cfg.eval_every == 0) or last):
                    self.last_eval = self.evaluate()
                    if log is not None:
                        log.write(self.step, "valid", lr, self.last_eval)
                if (cfg.ckpt_every and self.step % cfg.ckpt_every == 0) or last:
                    self.save_checkpoint()
                for fn in self.callbacks["on_step_end"]:
                    fn(self)
            self._tick()
            if self.is_main:
                self.export()
            if self.world > 1:  # finish together: no rank tears the process group down under another
                dist.barrier()
        finally:
            bar.close()
            if log is not None:
                log.close()
        return self.last_eval

    def evaluate(self, data=None, max_batches: int | None = None) -> dict[str, float]:
        """Mean loss and metrics of the eval model over ``data`` (default valid_data), split across ranks."""
        data = self.valid_data if data is None else data
        max_batches = self.cfg.eval_batches if max_batches is None else max_batches
        sums, count = _eval_sums(self.eval_model, data, self.cfg.batch_size, self.collate, max_batches,
                                 self.amp_dtype, self.rank, self.world)
        if self.world > 1:
            parts = [None] * self.world
            dist.all_gather_object(parts, (sums, count))
            sums, count = defaultdict(float), sum(c for _, c in parts)
            for s, _ in parts:
                for k, v in s.items():
                    sums[k] += v
        return {k: v / max(count, 1) for k, v in sums.items()}

    def _tick(self) -> None:
        """Add the wall time since the last tick to ``train_seconds``: what the resume state holds is the time of
        the steps it holds (steps lost to a kill after the last checkpoint are not counted twice)."""
        now = time.perf_counter()
        self.train_seconds += now - getattr(self, "_clock", now)
        self._clock = now

    # ---- checkpoints ----------------------------------------------------------------------------------
    def save_checkpoint(self) -> None:
        """Write ``out_dir/resume.pt`` atomically (rank 0; every rank's RNG state goes in)."""
        self._tick()
        rngs = [rng_state()]
        if self.world > 1:
            rngs = [None] * self.world
            dist.all_gather_object(rngs, rng_state())
        if self.is_main:
            save_resume_state({
                "step": self.step, "epoch": self.epoch, "index": self.index,
                "model": self.model.state_dict(), "optimizer": self.optimizer.state_dict(),
                "scheduler": self.scheduler.state_dict(),
                "ema": self.ema.state_dict() if self.ema is not None else None,
                "rng": rngs, "config": asdict(self.cfg), "world_size": self.world, "last_eval": self.last_eval,
                "settings": self.settings, "train_seconds": self.train_seconds,
            }, self.resume_path)
        self.last_ckpt_step = self.step

    def _restore(self) -> None:
        state = load_resume_state(self.resume_path)
        if "settings" in state:  # resume states written before 0.2 did not record them
            diff = [f"{k} {state['settings'].get(k)!r} != {v!r}" for k, v in self.settings.items()
                    if state["settings"].get(k) != v]
            diff += [f"{k} {v!r} (now absent)" for k, v in state["settings"].items() if k not in self.settings]
            if diff:
                raise TrainingError(f"{self.out_dir} holds a run with other settings ({'; '.join(diff[:4])}"
                                    f"{' ...' if len(diff) > 4 else ''}); pass another --out, or delete that "
                                    "folder to start over")
        try:
            self.model.load_state_dict(state["model"])
            self.optimizer.load_state_dict(state["optimizer"])
            self.scheduler.load_state_dict(state["scheduler"])
            if self.ema is not None and state["ema"] is not None:
                self.ema.load_state_dict(state["ema"])
            elif self.ema is not None:
                self.ema = EMA(self.model, self.cfg.ema_decay)
        except (RuntimeError, KeyError, ValueError) as e:
            msg = " ".join(str(e).split())
            raise TrainingError(f"{self.resume_path} does not fit this model ({msg[:120]}{'...' * (len(msg) > 120)}); "
                                "pass another --out, or delete that folder to start over") from None
        self.step, self.epoch, self.index = state["step"], state["epoch"], state["index"]
        self.last_ckpt_step, self.last_eval = self.step, dict(state.get("last_eval") or {})
        self.train_seconds = float(state.get("train_seconds", 0.0))
        rngs = state["rng"]
        if len(rngs) == self.world:
            set_rng_state(rngs[self.rank])
        else:  # different number of processes: exact continuation is impossible anyway
            seed_everything(self.cfg.seed + self.rank + self.step)
        if self.is_main and self.cfg.progress:
            tqdm.write(f"resuming {self.resume_path} at step {self.step}")

    def export(self, path: str | Path | None = None) -> Path:
        """``save_pretrained`` the eval model (EMA when enabled) to ``out_dir/model`` with a model card."""
        card = {"data": f"{len(self.train_data)} training examples", **self.card, "steps": self.step,
                "batch_size": self.cfg.batch_size, "lr": self.cfg.lr, "ema_decay": self.cfg.ema_decay}
        if self.last_eval:
            card["valid metrics"] = self.last_eval
        return save_pretrained(self.eval_model, path or self.out_dir / "model", card=card)


__all__ = ["CheckpointError", "EMA", "TrainConfig", "Trainer", "TrainingError", "evaluate", "lr_factor"]
