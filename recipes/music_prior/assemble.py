"""Join trained priors (one per level, from ``arsound train music_prior``) and their tokenizer into one
``MusicGenerator`` folder that ``arsound.load`` / ``arsound generate`` take.

    python recipes/music_prior/assemble.py runs/music_top/model runs/music_middle/model runs/music_bottom/model \\
        -o checkpoints/music-chorales [--tokenizer vqvae-chorales] [--name vqvae-chorales] \\
        [--heldout data_cache/tokens/chorales-WEIGHTS/test --pieces 1] [--temperature 1.0 0.9 0.9] \\
        [--guidance 0 0.5 0] [--drafts 1 4 1]
    python recipes/music_prior/assemble.py --split music-chorales -o runs/music_shipped   # level2/ level1/ level0/

Every prior must have been trained on this tokenizer's codes (its card names the weights); the levels must be
consecutive from the top. The card gathers each prior's card entries and test figures (``results.json`` beside
its model folder, when there). ``--heldout`` ships the first ``--pieces`` files of a test token set as
``heldout/`` beside the weights, and the card states each level's bits per token on them (the figures
``tests/test_checkpoints.py`` reproduces).
"""
from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

if __package__ in (None, ""):  # run as a script: make the recipe folder importable as a package
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from arsound.core.checkpoint import card_entries, hardware, load, resolve, save_pretrained, weights_id  # noqa: E402
from arsound.music.generator import MusicGenerator  # noqa: E402
from arsound.music.prior import TokenPrior  # noqa: E402
from arsound.music.tokens import MANIFEST, TokenSet, TokenWindows, bits_per_token  # noqa: E402

HELDOUT = "heldout"


def heldout_bits(gen: MusicGenerator, folder: str | Path, batch: int = 8) -> dict[int, float]:
    """Bits per token of each level's prior on every window that tiles the token set ``folder``."""
    out = {}
    for lv in gen.levels:
        prior = gen.priors[str(lv)]
        cfg = prior.config
        tokens = TokenSet(folder, weights=weights_id(gen.vqvae), classes=list(cfg.label_names) or None)
        windows = TokenWindows(tokens, lv, cfg.context, upper=cfg.upper_vocab > 0, labelled=cfg.num_labels > 0)
        out[lv] = bits_per_token(prior.eval(), windows, list(range(len(windows))), batch)
    return out


def heldout_subset(folder: str | Path, pieces: int, out: Path) -> list[str]:
    """Copy the first ``pieces`` files of token set ``folder`` (codes and manifest) into ``out``."""
    src = Path(folder)
    manifest = json.loads((src / MANIFEST).read_text())
    manifest["files"] = manifest["files"][:pieces]
    out.mkdir(parents=True, exist_ok=True)
    for f in manifest["files"]:
        shutil.copyfile(src / f["codes"], out / f["codes"])
    (out / MANIFEST).write_text(json.dumps(manifest, indent=2) + "\n")
    return [f["id"] for f in manifest["files"]]


def assemble(priors: list[str], tokenizer: str, name: str = "",
             temperature: tuple[float, ...] = (), guidance: tuple[float, ...] = (),
             drafts: tuple[int, ...] = ()) -> tuple[MusicGenerator, dict]:
    vq = load(tokenizer)
    wid = weights_id(vq)
    models, card = [], {"tokenizer": f"{name or tokenizer} (weights {wid})", "hardware": hardware()}
    for spec in priors:
        folder = resolve(spec)
        prior = load(folder)
        if not isinstance(prior, TokenPrior):
            raise ValueError(f"{folder} holds a {type(prior).__name__}, not a TokenPrior")
        readme = (folder / "README.md").read_text() if (folder / "README.md").is_file() else ""
        if wid not in readme:
            raise ValueError(f"{folder}: its card does not name tokenizer weights {wid}; was it trained on "
                             f"another tokenizer's codes?")
        key, entries = f"level {prior.config.level} prior", card_entries(readme)
        results = folder.parent / "results.json"
        if key in entries:                              # a prior split out of an assembled generator
            card[key] = entries[key]
        elif results.is_file():
            r = json.loads(results.read_text())
            shuffled = (f", with another piece's upper codes {r['shuffled_upper_bits']:.3f}"
                        if "shuffled_upper_bits" in r else "")
            shuffled += (f", without upper codes {r['dropped_upper_bits']:.3f} (condition dropout "
                         f"{prior.config.cond_dropout:g})" if "dropped_upper_bits" in r else "")
            line = (f"{r['bits_per_token']:.3f} bits/token on {r['test_windows']} test windows (bigram "
                    f"{r['bigram_bits']:.3f}, unigram {r['unigram_bits']:.3f}{shuffled}); {r['params']:,} parameters, "
                    f"{r['steps']} steps, {r['train_s'] / 60:.0f} min")
            init = entries.get("initialized from", "").split(";")[0]      # "SOURCE (weights ID)"
            card[key] = line + (f", started from {init}" if init else "")
        models.append(prior)
    gen = MusicGenerator.assemble(vq, models, name=name or str(tokenizer), temperature=temperature, guidance=guidance,
                                  drafts=drafts)
    return gen, card


def split(generator: str, out: str | Path) -> list[Path]:
    """Write each level's prior of an assembled generator as ``out/level{N}`` (weights, and a card naming the
    tokenizer weights and the generator card's line for that level), so one level can be retrained or used
    to start a run (``--init``) and the others joined again unchanged."""
    gen = load(generator)
    if not isinstance(gen, MusicGenerator):
        raise ValueError(f"{generator} holds a {type(gen).__name__}, not a MusicGenerator")
    entries = card_entries((resolve(generator) / "README.md").read_text())
    folders = []
    for lv in gen.levels:
        key = f"level {lv} prior"
        card = {"tokenizer": entries.get("tokenizer", f"weights {weights_id(gen.vqvae)}"),
                "taken from": f"{generator} (weights {weights_id(gen)})"}
        if key in entries:
            card[key] = entries[key]
        folders.append(save_pretrained(gen.priors[str(lv)], Path(out) / f"level{lv}", card=card))
    return folders


def main(argv: list[str] | None = None) -> Path:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("priors", nargs="*", help="prior folders, one per level (any order)")
    p.add_argument("--split", default="", metavar="GENERATOR",
                   help="instead: write each level's prior of GENERATOR into OUT/level{N}")
    p.add_argument("-o", "--out", required=True)
    p.add_argument("--tokenizer", default="vqvae-chorales")
    p.add_argument("--name", default="", help="the tokenizer's name in codes files (default --tokenizer)")
    p.add_argument("--card", default="", help="a JSON file of extra card entries (e.g. the music evaluation)")
    p.add_argument("--heldout", default="", help="a test token set folder: ship its first --pieces files and "
                                                  "state each level's bits/token on them")
    p.add_argument("--pieces", type=int, default=1)
    p.add_argument("--temperature", type=float, nargs="+", default=[], metavar="T",
                   help="the default sampling temperature of each level, top first (default: 1 everywhere)")
    p.add_argument("--guidance", type=float, nargs="+", default=[], metavar="W",
                   help="the default upper-code guidance of each level, top first (default: 0, none, everywhere)")
    p.add_argument("--drafts", type=int, nargs="+", default=[], metavar="K",
                   help="the default number of drafts of each level, top first (default: 1, none, everywhere)")
    args = p.parse_args(argv)
    if args.split:
        folders = split(args.split, args.out)
        print("wrote " + ", ".join(map(str, folders)))
        return Path(args.out)
    if not args.priors:
        p.error("give the prior folders, or --split GENERATOR")
    gen, card = assemble(args.priors, args.tokenizer, args.name, tuple(args.temperature), tuple(args.guidance),
                         tuple(args.drafts))
    if args.card:
        card.update(json.loads(Path(args.card).read_text()))
    card["usage"] = "arsound generate --model THIS_FOLDER --seconds 10 --seed 0 --instrument organ -o clips/"
    staging = Path(args.out).with_name(Path(args.out).name + ".heldout")
    if args.heldout:
        ids = heldout_subset(args.heldout, args.pieces, staging)
        bits = heldout_bits(gen, staging)
        card["held-out example"] = (f"`{HELDOUT}/` (test piece(s) {', '.join(ids)}): "
                                    + ", ".join(f"level {lv} {b:.4f} bits/token" for lv, b in bits.items()))
    folder = save_pretrained(gen, args.out, card=card)
    if args.heldout:
        shutil.rmtree(folder / HELDOUT, ignore_errors=True)
        staging.rename(folder / HELDOUT)
    print(f"wrote {folder}: levels {gen.levels}, {gen.num_parameters():,} parameters")
    return folder


if __name__ == "__main__":
    main()
