"""Train one level's music prior of ``config.py`` with the shared Trainer, then measure it on the test split.

- Tokens once: every split of ``data.name`` encoded by ``data.tokenizer`` into
  ``{data.tokens}/{name}-{weights}/{split}`` (``music/tokens.py``; stale folders are refused, an interrupted
  encoding resumes file by file). Windows of ``prior.context`` tokens: random starts in training, tiles held out.
- The end (EMA weights): bits per token on every test window, beside count baselines measured here on the
  same tokens (unigram; add-k bigram, k chosen on valid; both fitted on the training tokens). Upsamplers also
  get the bits with the upper codes of another test piece (the windows' upper codes rolled by one file):
  the gap shows the conditioning is used; those trained with condition dropout also get the bits with no upper codes
  (their guidance's unconditional branch). ``results.json``, ``likelihood.md`` and the model card hold them.
"""
from __future__ import annotations

from dataclasses import asdict, replace
from pathlib import Path


from arsound.audio.vqvae import VQVAE
from arsound.core.checkpoint import CheckpointError, hardware, load, save_pretrained, warm_start, weights_id
from arsound.core.files import write_json, write_text
from arsound.core.train import Trainer
from arsound.data.audio import AudioDataset
from arsound.music.ngram import Bigram
from arsound.music.prior import TokenPrior
from arsound.music.tokens import (TokenSet, TokenWindows, bits_per_token, dropped_upper, encode_files,
                                  shuffled_upper)

from .config import Config

SPLITS = ("train", "valid", "test")


def load_tokenizer(spec: str) -> VQVAE:
    model = load(spec)
    if not isinstance(model, VQVAE):
        raise CheckpointError(f"data.tokenizer '{spec}' is a {type(model).__name__}, not a VQ-VAE")
    return model


def token_sets(cfg: Config, tokenizer: VQVAE) -> dict[str, TokenSet]:
    """The splits as token sets, encoded first where missing."""
    data, wid = cfg.data, weights_id(tokenizer)
    root = Path(data.tokens) / f"{data.name}-{wid}"
    sets = {}
    for split in SPLITS:
        folder = root / split
        if not (folder / "tokens.json").is_file():
            ds = AudioDataset(data.name, split, root=data.root)
            entries = [{"id": e["id"], "path": ds.base / e["path"], "labels": e["labels"]} for e in ds.items]
            encode_files(tokenizer, entries, folder, name=data.tokenizer, label=data.label, progress=cfg.train.progress)
        sets[split] = TokenSet(folder, weights=wid)
    classes = sets["train"].classes
    for split in ("valid", "test"):
        sets[split].classes = classes
    return sets


def prior_config(cfg: Config, tokenizer: VQVAE, classes: list[str]):
    hops, K, lv = tokenizer.hops, tokenizer.config.quantizer.num_codes, cfg.level
    if not 0 <= lv < len(hops):
        raise ValueError(f"level {lv}: the tokenizer has levels 0..{len(hops) - 1}")
    upsampler = lv < len(hops) - 1
    return replace(cfg.prior, vocab=K, level=lv, upper_vocab=K if upsampler else 0,
                   ratio=hops[lv + 1] // hops[lv] if upsampler else 1,
                   num_labels=len(classes) if cfg.labels else 0, label_names=tuple(classes) if cfg.labels else ())


def main(cfg: Config) -> dict:
    recipe, tc, data = "music_prior", cfg.train, cfg.data
    tokenizer = load_tokenizer(data.tokenizer)
    sets = token_sets(cfg, tokenizer)
    classes = sets["train"].classes
    pcfg = prior_config(cfg, tokenizer, classes)
    lv, upper, labelled = cfg.level, pcfg.upper_vocab > 0, pcfg.num_labels > 0
    train, valid, test = (TokenWindows(sets[s], lv, pcfg.context, upper=upper, labelled=labelled,
                                       random_start=s == "train") for s in SPLITS)
    model = TokenPrior(pcfg)
    added = []
    if cfg.init:  # before the Trainer, so its EMA starts from these weights (a resume.pt still wins)
        added = warm_start(model, cfg.init, added=("num_labels", "label_names"))
    hop, sr = tokenizer.hops[lv], tokenizer.config.sample_rate
    card = {"data": f"{data.name}: codes of level {lv} (hop {hop}, {sr / hop:.0f} tokens/s) by {data.tokenizer} "
                    f"(weights {weights_id(tokenizer)}); {len(train)} training windows of {pcfg.context} tokens "
                    f"({pcfg.context * hop / sr:.2f} s)",
            "recipe": f"{recipe} (level {lv})", "hardware": hardware()}
    if cfg.init:
        card["initialized from"] = (f"{cfg.init} (weights {weights_id(model)}); a fresh optimizer, schedule and EMA"
                                    + ("; instrument labels added, their embedding started at zero" if added else ""))
    trainer = Trainer(model, tc, train, valid, card=card,
                      settings={"data": asdict(data), "level": lv, "labels": cfg.labels, "init": cfg.init})
    trainer.fit()
    train_s = trainer.train_seconds                                    # across resumes
    if not trainer.is_main:
        return {}
    final = trainer.eval_model.eval()
    ids = list(range(len(test)))
    if cfg.eval.windows:
        ids = ids[::max(1, len(ids) // cfg.eval.windows)][:cfg.eval.windows]
    bits = bits_per_token(final, test, ids, tc.batch_size)
    seqs = {s: [sets[s].codes(f)[lv] for f in range(len(sets[s]))] for s in SPLITS}
    K = pcfg.vocab
    ks = {k: Bigram.fit(seqs["train"], K, k).bits(seqs["valid"]) for k in cfg.eval.bigram_k}
    k = min(ks, key=ks.get)
    bigram = Bigram.fit(seqs["train"], K, k)
    test_windows = [test[i]["x"] for i in ids]                            # the tokens the prior was scored on
    result = {"recipe": recipe, "level": lv, "hop": hop, "tokens_per_s": sr / hop, "params": final.num_parameters(),
              "steps": trainer.step, "train_s": round(train_s, 1), "hardware": hardware(), "test_windows": len(ids),
              "test_tokens": len(ids) * pcfg.context, "bits_per_token": bits,
              "bigram_bits": bigram.bits(test_windows), "bigram_k": k, "bigram_valid_bits_by_k": ks,
              "unigram_bits": bigram.bits(test_windows, unigram_only=True), "valid": trainer.last_eval,
              "prior": asdict(pcfg), "data": asdict(data)}
    result["vs_bigram"] = 1 - bits / result["bigram_bits"]
    if upper:
        result["shuffled_upper_bits"] = bits_per_token(final, test, ids, tc.batch_size, shuffled_upper(test))
        result["vs_shuffled_upper"] = 1 - bits / result["shuffled_upper_bits"]
    if upper and pcfg.cond_dropout:
        result["dropped_upper_bits"] = bits_per_token(final, test, ids, tc.batch_size, dropped_upper(test))
    rows = [("this prior", bits), ("add-k bigram (k = %g, chosen on valid)" % k, result["bigram_bits"]),
            ("unigram", result["unigram_bits"])]
    if upper:
        rows.insert(1, ("this prior, upper codes of another piece", result["shuffled_upper_bits"]))
    if "dropped_upper_bits" in result:
        rows.insert(2, ("this prior without upper codes (condition dropout)", result["dropped_upper_bits"]))
    table = "| model | test bits / token |\n|---|---:|\n" + "".join(f"| {name} | {b:.3f} |\n" for name, b in rows)
    summary = (f"level {lv} (hop {hop}), {len(ids)} test windows of {pcfg.context} tokens, step {trainer.step}: "
               f"{bits:.3f} bits/token, {100 * result['vs_bigram']:.1f}% below the bigram"
               + (f", {100 * result['vs_shuffled_upper']:.1f}% below its shuffled-condition figure" if upper else ""))
    out = Path(tc.out_dir)
    card.update({"steps": trainer.step, "training time": f"{train_s / 60:.1f} min", "batch_size": tc.batch_size,
                 "lr": tc.lr, "ema_decay": tc.ema_decay, "test likelihood": "\n\n" + table + "\n" + summary,
                 "usage": "python recipes/music_prior/assemble.py TOP MIDDLE BOTTOM -o OUT (then arsound generate)"})
    folder = save_pretrained(final, out / "model", card=card)
    write_json(out / "results.json", result)
    write_text(out / "likelihood.md", summary + "\n\n" + table)
    print(f"{recipe}: {summary}\n{table}model in {folder}", flush=True)
    return result
