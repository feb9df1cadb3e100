"""Likelihood-based anomaly detection with image AR models: adversarial, noisy and unseen-class digits.

A density model ``p`` trained on clean digits should give anomalous inputs a low likelihood. Three kinds
of anomaly are scored against clean test digits:

- adversarial digits made with FGSM (Goodfellow et al., "Explaining and harnessing adversarial
  examples", ICLR 2015) against a small CNN classifier. PixelDefend (Song et al., ICLR 2018) showed that
  such images sit in low-probability regions of a PixelCNN and can be detected (and purified) that way;
- noise-corrupted digits (a stated fraction of pixels flipped / set to salt-and-pepper);
- a digit class the density model never saw in training.

Scores (higher = more anomalous), all per image ``Tensor[N]``:

- ``nll``: ``-log p(x)`` in nats. Raw likelihood can mislead: deep generative models give some
  out-of-distribution data *higher* likelihood than their training data (Nalisnick et al., "Do deep
  generative models know what they don't know?", ICLR 2019);
- ``ratio``: ``-(log p(x) - log p_ref(x))``, minus the likelihood ratio of Ren et al. ("Likelihood
  ratios for out-of-distribution detection", NeurIPS 2019), which cancels the part of the likelihood a
  simple background model explains too. The reference here is either :class:`PixelMarginal` (independent
  per-pixel categorical fit on the training images) or, in the recipe, the same architecture trained
  on noised images (Ren et al.'s background model);
- ``typicality``: ``|NLL(x) - mean in-distribution NLL|``, the per-example form of the typicality test
  of Nalisnick et al. ("Detecting out-of-distribution inputs to deep generative models using
  typicality", 2019): atypically *high* likelihood is suspicious too.

Quality is AUROC (anomalies positive): :func:`auroc` uses ``sklearn.metrics.roc_auc_score`` when
scikit-learn is installed, else the Mann-Whitney rank formula (tested to agree).

Image conventions: ``x`` is ``LongTensor[B, C, H, W]`` of levels in ``[0, K)``; :func:`to_unit` maps it
to floats in ``[0, 1]`` (classifier input), :func:`quantize` back. With ``K = 2`` a continuous image is
binarized at 0.5, the same threshold ``arsound.data.load_images`` uses for its gray sources (>= 128/255
resp. >= 8/16).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from itertools import chain
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..core.checkpoint import card_entries
from ..core.files import atomic_write, write_json, write_text

SCORES = ("nll", "ratio", "typicality")


# ---- conversions --------------------------------------------------------------------------------------
def to_unit(x: Tensor, levels: int) -> Tensor:
    """Levels ``LongTensor[...]`` in ``[0, K)`` -> float ``Tensor[...]`` in ``[0, 1]``."""
    return x.float() / (levels - 1)


def quantize(u: Tensor, levels: int) -> Tensor:
    """Float ``Tensor[...]`` in ``[0, 1]`` -> levels ``LongTensor[...]``: ``u >= 0.5`` for ``K = 2``,
    else the nearest of the ``K`` levels."""
    if levels == 2:
        return (u >= 0.5).long()
    return torch.round(u.clamp(0, 1) * (levels - 1)).long()


def _device(module: nn.Module) -> torch.device:
    t = next(chain(module.parameters(), module.buffers()), None)
    return t.device if t is not None else torch.device("cpu")


def _batches(n: int, batch_size: int, desc: str, progress: bool):
    starts = range(0, n, batch_size)
    for s in tqdm(starts, desc=desc, unit="batch", disable=not progress or len(starts) < 2, leave=False):
        yield slice(s, min(n, s + batch_size))


# ---- the classifier under attack ------------------------------------------------------------------------
@dataclass
class ClassifierConfig:
    shape: tuple[int, int, int] = (1, 28, 28)  # (C, H, W)
    levels: int = 2                            # the levels of the images it classifies
    classes: int = 10
    channels: int = 16
    hidden: int = 64


class DigitCNN(nn.Module):
    """A small CNN classifier: conv(3x3) -> conv(3x3, /2) -> conv(3x3, /2) -> MLP. Saved and loaded like
    any arsound model; trained by the shared Trainer through :meth:`loss`."""

    config_class = ClassifierConfig

    def __init__(self, config: ClassifierConfig) -> None:
        super().__init__()
        self.config = config
        C, H, W = config.shape
        ch = config.channels
        self.features = nn.Sequential(
            nn.Conv2d(C, ch, 3, padding=1), nn.ReLU(),
            nn.Conv2d(ch, 2 * ch, 3, stride=2, padding=1), nn.ReLU(),
            nn.Conv2d(2 * ch, 2 * ch, 3, stride=2, padding=1), nn.ReLU())
        h, w = math.ceil(math.ceil(H / 2) / 2), math.ceil(math.ceil(W / 2) / 2)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(2 * ch * h * w, config.hidden), nn.ReLU(),
                                  nn.Linear(config.hidden, config.classes))

    def forward(self, u: Tensor) -> Tensor:
        """``u: Tensor[B, C, H, W]`` in [0, 1] -> logits ``Tensor[B, classes]``."""
        return self.head(self.features(u))

    def loss(self, batch: dict) -> tuple[Tensor, dict[str, Tensor]]:
        """``batch = {"x": LongTensor[B, C, H, W] levels, "y": LongTensor[B]}`` -> cross-entropy, accuracy."""
        logits = self(to_unit(batch["x"], self.config.levels))
        loss = F.cross_entropy(logits, batch["y"])
        return loss, {"acc": (logits.argmax(1) == batch["y"]).float().mean().detach()}

    @torch.no_grad()
    def predict(self, x: Tensor, batch_size: int = 512) -> Tensor:
        """Levels ``LongTensor[N, C, H, W]`` -> predicted classes ``LongTensor[N]``."""
        was = self.training
        self.eval()
        dev = _device(self)
        out = torch.cat([self(to_unit(x[s].to(dev), self.config.levels)).argmax(1).cpu()
                         for s in _batches(len(x), batch_size, "classify", False)])
        self.train(was)
        return out


class _Labeled(torch.utils.data.Dataset):
    """``{"x": x[i], "y": y[i]}`` items for the Trainer's default collate."""

    def __init__(self, x: Tensor, y: Tensor) -> None:
        self.x, self.y = x, y

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> dict:
        return {"x": self.x[i], "y": self.y[i]}


def train_classifier(x: Tensor, y: Tensor, levels: int, out_dir: str | Path, steps: int = 500,
                     batch_size: int = 64, seed: int = 0, device: str = "auto", progress: bool = True) -> DigitCNN:
    """Train a :class:`DigitCNN` on ``x: LongTensor[N, C, H, W]``, ``y: LongTensor[N]`` with the shared
    Trainer (every 10th example held out for validation), or load it when ``out_dir/model`` already
    holds one (a cache: the same arguments give the same classifier). Returns it in eval mode."""
    from ..core.checkpoint import CONFIG, load
    from ..core.device import resolve_device
    from ..core.train import TrainConfig, Trainer

    out_dir = Path(out_dir)
    if (out_dir / "model" / CONFIG).is_file():
        return load(out_dir / "model", device=resolve_device(device))
    with torch.random.fork_rng(devices=[]):  # seeded initial weights; the Trainer seeds the data order
        torch.manual_seed(seed)
        model = DigitCNN(ClassifierConfig(shape=tuple(x.shape[1:]), levels=levels))
    valid = torch.arange(len(x)) % 10 == 0
    cfg = TrainConfig(steps=steps, batch_size=min(batch_size, int((~valid).sum())), lr=2e-3, warmup_steps=0,
                      eval_every=0, ckpt_every=0, log_every=max(1, steps // 20), seed=seed, device=device,
                      out_dir=str(out_dir), progress=progress)
    trainer = Trainer(model, cfg, _Labeled(x[~valid], y[~valid]), _Labeled(x[valid], y[valid]), resume=False,
                      card={"data": f"{int((~valid).sum())} labeled digits, {levels} levels",
                            "task": "digit classifier attacked by FGSM in arsound.image.anomaly"})
    trainer.fit()
    return trainer.eval_model.eval()


# ---- anomalies --------------------------------------------------------------------------------------------
def fgsm(classifier: nn.Module, x: Tensor, y: Tensor, eps: float, levels: int = 2,
         batch_size: int = 512) -> Tensor:
    """Fast gradient sign method (Goodfellow et al. 2015) under quantization.

    x: the *continuous* images ``Tensor[B, C, H, W]`` in [0, 1] (e.g. the gray source of binarized
        digits), or levels ``LongTensor[B, C, H, W]`` (then ``to_unit(x, levels)``).
    y: ``LongTensor[B]`` true labels.
    eps: L-inf radius in [0, 1] units (``k / (K - 1)`` moves gray images by ``k`` levels).
    The classifier sees ``quantize(x)``; the gradient of its cross-entropy w.r.t. that input gives the
    step ``eps * sign(grad)``, added to the continuous ``x``, clipped to [0, 1] and re-quantized. For
    ``K = 2`` a pixel can only flip where ``|x - 0.5| <= eps``, and only towards the gradient sign.
    Returns levels ``LongTensor[B, C, H, W]``.
    """
    if eps < 0:
        raise ValueError(f"fgsm: eps must be >= 0, got {eps}")
    u = x if x.is_floating_point() else to_unit(x, levels)
    was = classifier.training
    classifier.eval()
    dev = _device(classifier)
    out = []
    for s in _batches(len(u), batch_size, "fgsm", False):
        xs = u[s].to(dev)
        q = to_unit(quantize(xs, levels), levels).requires_grad_(True)
        with torch.enable_grad():
            loss = F.cross_entropy(classifier(q), y[s].to(dev), reduction="sum")
            (grad,) = torch.autograd.grad(loss, q)
        out.append(quantize((xs + eps * grad.sign()).clamp(0, 1), levels).to(x.device))
    classifier.train(was)
    return torch.cat(out)


def corrupt(x: Tensor, rate: float, generator: torch.Generator | None = None, levels: int = 2) -> Tensor:
    """Corrupt exactly ``round(rate * D)`` randomly chosen pixels of each image (``D = C*H*W``).

    x: levels ``LongTensor[B, C, H, W]``. Binary images (``levels = 2``): the chosen pixels are flipped.
    Gray images: they become salt or pepper (``K - 1`` or ``0``, each with probability 1/2).
    Returns ``LongTensor[B, C, H, W]``.
    """
    if not 0 <= rate <= 1:
        raise ValueError(f"corrupt: rate must be in [0, 1], got {rate}")
    B, D = x.shape[0], x[0].numel()
    dev = generator.device if generator is not None else torch.device("cpu")
    k = round(rate * D)
    idx = torch.rand(B, D, generator=generator, device=dev).argsort(1)[:, :k]  # (B, k) distinct positions
    chosen = torch.zeros(B, D, dtype=torch.bool, device=dev).scatter_(1, idx, True).to(x.device)
    flat = x.reshape(B, D)
    if levels == 2:
        new = 1 - flat
    else:
        new = torch.randint(0, 2, (B, D), generator=generator, device=dev).to(x.device) * (levels - 1)
    return torch.where(chosen, new, flat).view_as(x)


# ---- the reference model and the scores --------------------------------------------------------------------
@dataclass
class MarginalConfig:
    shape: tuple[int, int, int] = (1, 28, 28)
    levels: int = 2


class PixelMarginal(nn.Module):
    """Independent per-pixel categorical (Bernoulli for ``K = 2``): ``log p(x) = sum_d log p_d(x_d)``.
    The simple background model for likelihood ratios; fit by counting with add-``alpha`` smoothing."""

    config_class = MarginalConfig

    def __init__(self, config: MarginalConfig) -> None:
        super().__init__()
        self.config = config
        self.register_buffer("log_probs", torch.full((*config.shape, config.levels), -math.log(config.levels)))

    @property
    def event_shape(self) -> tuple[int, int, int]:
        return tuple(self.config.shape)

    @classmethod
    def fit(cls, x: Tensor, levels: int, alpha: float = 1.0) -> "PixelMarginal":
        """``x: LongTensor[N, C, H, W]`` -> the smoothed per-pixel frequencies of each level."""
        model = cls(MarginalConfig(shape=tuple(x.shape[1:]), levels=levels))
        counts = F.one_hot(x, levels).sum(0).double() + alpha  # (C, H, W, K)
        model.log_probs.copy_((counts / counts.sum(-1, keepdim=True)).log().float())
        return model

    def log_prob(self, x: Tensor, reduce: bool = True) -> Tensor:
        """``x: LongTensor[B, C, H, W]`` -> ``Tensor[B]`` nats (``reduce=False``: ``Tensor[B, C, H, W]``)."""
        lp = self.log_probs.expand(*x.shape, -1).gather(-1, x.unsqueeze(-1)).squeeze(-1)
        return lp.flatten(1).sum(1) if reduce else lp


@torch.no_grad()
def nll(model: nn.Module, x: Tensor, batch_size: int = 256, progress: bool = False) -> Tensor:
    """``-model.log_prob(x)`` per image in eval mode: ``x: LongTensor[N, ...]`` -> ``Tensor[N]`` (CPU)."""
    was = model.training
    model.eval()
    dev = _device(model)
    out = torch.cat([-model.log_prob(x[s].to(dev)).float().cpu()
                     for s in _batches(len(x), batch_size, "nll", progress)])
    model.train(was)
    return out


def scores(model: nn.Module, x: Tensor, ref_model: nn.Module | dict[str, nn.Module] | None = None,
           train_nll: float | Tensor | None = None, batch_size: int = 256,
           progress: bool = False) -> dict[str, Tensor]:
    """Anomaly scores of ``x: LongTensor[N, C, H, W]``, each ``Tensor[N]``, higher = more anomalous.

    - ``nll``: ``-log p(x)`` (nats);
    - ``ratio`` (with ``ref_model``): ``nll(x) - nll_ref(x)`` = minus Ren et al.'s likelihood ratio. A dict
      ``{name: model}`` gives one ``ratio_<name>`` per reference;
    - ``typicality`` (with ``train_nll``, the mean in-distribution NLL or a ``Tensor`` of per-image NLLs
      to average): ``|nll(x) - train_nll|`` (Nalisnick et al.).
    """
    out = {"nll": nll(model, x, batch_size, progress)}
    refs = {} if ref_model is None else ref_model if isinstance(ref_model, dict) else {"": ref_model}
    for name, ref in refs.items():
        out[f"ratio_{name}" if name else "ratio"] = out["nll"] - nll(ref, x, batch_size, progress)
    if train_nll is not None:
        mean = float(train_nll.float().mean()) if isinstance(train_nll, Tensor) else float(train_nll)
        out["typicality"] = (out["nll"] - mean).abs()
    return out


def _auroc_ranks(pos: np.ndarray, neg: np.ndarray) -> float:
    """Mann-Whitney: ``U / (n_pos n_neg)`` with average ranks for ties."""
    s = np.concatenate([pos, neg])
    _, inverse, counts = np.unique(s, return_inverse=True, return_counts=True)
    ranks = (np.cumsum(counts) - (counts - 1) / 2.0)[inverse]  # 1-based average ranks
    u = ranks[: len(pos)].sum() - len(pos) * (len(pos) + 1) / 2.0
    return float(u / (len(pos) * len(neg)))


def auroc(pos_scores: Tensor, neg_scores: Tensor, method: str = "auto") -> float:
    """Area under the ROC curve = ``P(pos > neg) + P(pos == neg) / 2`` for scores ``Tensor[P]``, ``Tensor[N]``.

    method: ``auto`` (scikit-learn when installed, else ranks), ``sklearn`` or ``ranks``.
    """
    pos = np.asarray(torch.as_tensor(pos_scores).detach().cpu().double().flatten())
    neg = np.asarray(torch.as_tensor(neg_scores).detach().cpu().double().flatten())
    if not len(pos) or not len(neg):
        raise ValueError(f"auroc needs at least one score on each side, got {len(pos)} and {len(neg)}")
    if not (np.isfinite(pos).all() and np.isfinite(neg).all()):
        raise ValueError("auroc: scores must be finite")
    if method not in ("auto", "sklearn", "ranks"):
        raise ValueError(f"auroc: method must be auto, sklearn or ranks, got '{method}'")
    if method != "ranks":
        try:
            from sklearn.metrics import roc_auc_score
        except ImportError:
            if method == "sklearn":
                raise
        else:
            labels = np.r_[np.ones(len(pos)), np.zeros(len(neg))]
            return float(roc_auc_score(labels, np.r_[pos, neg]))
    return _auroc_ranks(pos, neg)


# ---- a whole benchmark on digits ---------------------------------------------------------------------------
@dataclass
class DigitSets:
    """In-distribution digits (classes != holdout) and the anomaly sets made from the test split.

    train / valid: ``LongTensor[N, C, H, W]`` in-distribution training images (every 10th image of the
    training split is ``valid``: the typicality mean comes from it). clean: in-distribution test
    images; anomalies: ``{name: LongTensor[M, C, H, W]}``; info: classifier accuracies and set sizes.
    """

    train: Tensor
    valid: Tensor
    clean: Tensor
    anomalies: dict[str, Tensor]
    info: dict = field(default_factory=dict)


@dataclass
class AnomalyReport:
    """AUROC per anomaly set and score, mean NLLs, and the per-image NLLs (``Tensor[N]``) for histograms."""

    auroc: dict[str, dict[str, float]]
    mean_nll: dict[str, float]
    nll: dict[str, Tensor]

    def to_dict(self) -> dict:
        return {"auroc": self.auroc, "mean_nll": self.mean_nll}


def evaluate_anomaly(model: nn.Module, sets: DigitSets, ref_model=None, batch_size: int = 256,
                     progress: bool = False) -> AnomalyReport:
    """Score the clean and every anomaly set of ``sets`` with :func:`scores` and compute the AUROCs
    (anomalies positive). The typicality mean is the NLL of ``sets.valid``."""
    train_nll = nll(model, sets.valid, batch_size, progress)
    clean = scores(model, sets.clean, ref_model, train_nll, batch_size, progress)
    table, means, nlls = {}, {"valid": float(train_nll.mean()), "clean": float(clean["nll"].mean())}, {
        "clean": clean["nll"]}
    for name, x in sets.anomalies.items():
        s = scores(model, x, ref_model, train_nll, batch_size, progress)
        table[name] = {k: auroc(v, clean[k]) for k, v in s.items()}
        means[name], nlls[name] = float(s["nll"].mean()), s["nll"]
    return AnomalyReport(table, means, nlls)


def markdown_table(reports: dict[str, AnomalyReport]) -> str:
    """One row per (model, anomaly set), one AUROC column per score: ``{model: report} -> str``."""
    cols = list(dict.fromkeys(k for r in reports.values() for row in r.auroc.values() for k in row))
    lines = ["| model | anomaly set | mean NLL clean / set | " + " | ".join(f"AUROC {c}" for c in cols) + " |",
             "|---|---|---:|" + "---:|" * len(cols)]
    for model, r in reports.items():
        for name, row in r.auroc.items():
            vals = " | ".join(f"{row[c]:.3f}" if c in row else "" for c in cols)
            lines.append(f"| {model} | {name} | {r.mean_nll['clean']:.1f} / {r.mean_nll[name]:.1f} | {vals} |")
    return "\n".join(lines) + "\n"


def histogram_png(clean_nll: Tensor, others: dict[str, Tensor], path: str | Path, title: str = "",
                  bins: int = 40) -> Path:
    """NLL histograms, clean vs each set of ``others = {name: Tensor[M]}`` (one panel each), written
    atomically to ``path`` (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    n = max(1, len(others))
    cols = min(n, 3)
    rows = math.ceil(n / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.2 * cols, 3.2 * rows), squeeze=False)
    clean = clean_nll.detach().cpu().numpy()
    for ax, (name, v) in zip(axes.flat, others.items()):
        v = v.detach().cpu().numpy()
        lo, hi = np.percentile(np.r_[clean, v], [0.5, 99.5])
        edges = np.linspace(lo, hi if hi > lo else lo + 1, bins + 1)
        ax.hist(clean, edges, density=True, alpha=0.55, label=f"clean ({len(clean)})")
        ax.hist(v, edges, density=True, alpha=0.55, label=f"{name} ({len(v)})")
        ax.set_xlabel("NLL (nats / image)")
        ax.legend(fontsize=8)
    for ax in list(axes.flat)[len(others):]:
        ax.axis("off")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    with atomic_write(path, "wb") as f:
        fig.savefig(f, dpi=90, format="png")
    plt.close(fig)
    return Path(path)


def write_outputs(out_dir: str | Path, results: dict, reports: dict[str, AnomalyReport], stem: str = "") -> dict:
    """Write ``<stem>results.json`` (``results`` + each report), ``<stem>table.md`` and one NLL histogram
    ``<stem>nll_<model>.png`` per model into ``out_dir``, each atomically. Returns the JSON dict."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    results = {**results, "models": {m: r.to_dict() for m, r in reports.items()}}
    for m, r in reports.items():
        others = {k: v for k, v in r.nll.items() if k != "clean"}
        histogram_png(r.nll["clean"], others, out / f"{stem}nll_{m}.png", title=f"{m}: NLL, clean vs anomalies")
    write_text(out / f"{stem}table.md", markdown_table(reports))
    write_json(out / f"{stem}results.json", results)
    return results


def card_holdout(folder: str | Path) -> int | None:
    """The ``holdout_class`` entry of a saved model's card (``README.md``), if it has one."""
    card = Path(folder) / "README.md"
    value = card_entries(card.read_text()).get("holdout_class", "") if card.is_file() else ""
    return int(value) if value.isdigit() else None


__all__ = ["AnomalyReport", "ClassifierConfig", "DigitCNN", "DigitSets", "PixelMarginal", "SCORES", "auroc",
           "card_holdout", "corrupt", "evaluate_anomaly", "fgsm", "histogram_png",
           "markdown_table", "nll", "quantize", "scores", "to_unit", "train_classifier", "write_outputs"]
