"""``arsound eval --anomaly``: score a trained image model on adversarial, noisy and held-out digits.

    arsound eval --anomaly --model DIR_OR_NAME [--data mnist|digits] [--out DIR] [--holdout C]
                 [--eps 0.3] [--rates 0.01,0.05] [--classifier-steps 500] [--limit N] [--seed 0]

The FGSM target (a small CNN, :class:`arsound.image.anomaly.DigitCNN`) is trained on the fly with a fixed
seed and cached under ``OUT/classifier_<data>_<levels>lv_s<steps>_seed<seed>/``. The held-out class
comes from ``--holdout`` or from the model card's ``holdout_class`` (written by ``recipes/anomaly``);
without either, that set is skipped. Writes ``OUT/anomaly_results.json``, ``OUT/anomaly_table.md`` and
``OUT/anomaly_nll_<model>.png``. See :mod:`arsound.image.anomaly` for the scores and papers and
:mod:`arsound.data.anomaly` for the digit sets.
"""
from __future__ import annotations

from pathlib import Path

from .common import no_extra, output_folder


def add_parser(subparsers) -> None:
    e = subparsers.add_parser("eval", help="evaluate a trained model (--anomaly: likelihood-based anomaly detection)",
                              description="Score a trained image model on FGSM-adversarial, noise-corrupted and "
                              "held-out-class digits; AUROC of NLL, likelihood-ratio and typicality scores.")
    e.add_argument("--anomaly", action="store_true", help="likelihood-based anomaly detection")
    e.add_argument("--model", required=True, help="model folder (or run folder, or registry name)")
    e.add_argument("--data", choices=("mnist", "digits"), help="digit dataset (default: from the model's image shape)")
    e.add_argument("--out", default="runs/eval_anomaly", help="output folder (default runs/eval_anomaly)")
    e.add_argument("--holdout", type=int, help="the class the model was trained without (default: its model card)")
    e.add_argument("--eps", type=float, default=0.3, help="FGSM L-inf radius in [0, 1] gray units (default 0.3)")
    e.add_argument("--rates", default="0.01,0.05", help="pixel-corruption rates, comma-separated (default 0.01,0.05)")
    e.add_argument("--classifier-steps", type=int, default=500, help="training steps of the FGSM target")
    e.add_argument("--limit", type=int, default=0, help="at most this many clean test images (0: all)")
    e.add_argument("--batch-size", type=int, default=256)
    e.add_argument("--seed", type=int, default=0)
    e.add_argument("--device", default="cpu")
    e.set_defaults(func=cmd_eval)


def _rates(text: str) -> list[float]:
    try:
        rates = [float(r) for r in text.split(",") if r.strip()]
    except ValueError:
        raise ValueError(f"--rates expects comma-separated numbers in [0, 1], got '{text}'") from None
    if not all(0 <= r <= 1 for r in rates):
        raise ValueError(f"--rates must lie in [0, 1], got '{text}'")
    return rates


def cmd_eval(args, extra: list[str]) -> int:
    no_extra(extra)
    if not args.anomaly:
        raise ValueError("nothing to evaluate: pass --anomaly (the only evaluation so far)")
    if args.classifier_steps < 1 or args.limit < 0 or args.batch_size < 1 or args.eps < 0:
        raise ValueError("need --classifier-steps >= 1, --limit >= 0, --batch-size >= 1 and --eps >= 0")
    rates = _rates(args.rates)
    output_folder(args.out)
    import torch

    from ..core.checkpoint import load, resolve
    from ..data.anomaly import digit_sets, infer_dataset
    from ..data.images import IMAGE_DATASETS, load_images
    from ..image.anomaly import (PixelMarginal, card_holdout, evaluate_anomaly, markdown_table, quantize, to_unit,
                                 train_classifier, write_outputs)

    model = load(args.model, device=args.device)
    shape, levels = getattr(model, "event_shape", None), getattr(model.config, "levels", None)
    if shape is None or len(shape) != 3 or levels is None:
        raise ValueError(f"{args.model}: {type(model).__name__} is not an image model; --anomaly needs one")
    data = args.data or infer_dataset(shape)
    native, side = IMAGE_DATASETS[data]
    if tuple(shape) != (1, side, side):
        raise ValueError(f"{args.model} models images of shape {tuple(shape)}, but '{data}' has (1, {side}, {side})")
    holdout = args.holdout if args.holdout is not None else card_holdout(resolve(args.model))
    if holdout is not None and not 0 <= holdout <= 9:
        raise ValueError(f"--holdout must be a digit class 0..9, got {holdout}")
    out = Path(args.out)

    train = load_images(data, "train", native)
    cache = out / f"classifier_{data}_{levels}lv_s{args.classifier_steps}_seed{args.seed}"
    classifier = train_classifier(quantize(to_unit(train.x, native), levels), train.y, levels, cache,
                                  steps=args.classifier_steps, seed=args.seed, device=args.device)
    sets = digit_sets(data, levels, classifier, holdout, args.eps, rates, args.seed, args.limit)
    ref = PixelMarginal.fit(sets.train, levels).to(args.device)
    with torch.no_grad():
        report = evaluate_anomaly(model, sets, ref, args.batch_size, progress=True)
    name = type(model).__name__.lower()
    write_outputs(out, {"model": str(args.model), "data": data, "levels": levels, "holdout": holdout,
                        "reference": "PixelMarginal: per-pixel independent categorical fit on the in-distribution "
                                     "training images", "sets": sets.info}, {name: report}, stem="anomaly_")
    print(markdown_table({name: report}), end="")
    print(f"classifier accuracy clean {sets.info['classifier_clean_acc']:.3f}, FGSM (eps {args.eps:g}) "
          f"{sets.info['classifier_adv_acc']:.3f}" + ("" if holdout is not None else
                                                      "; no held-out class (pass --holdout C)"))
    print(f"wrote {out / 'anomaly_results.json'}, {out / 'anomaly_table.md'}, {out / f'anomaly_nll_{name}.png'}")
    return 0
