"""Music priors over the chorale tokens, Jukebox style: one run trains one level's :class:`TokenPrior`; the
presets name the three levels of the ``vqvae-chorales`` tokenizer (``top``: level 2, hop 128, 125 tokens/s,
with instrument and timing; ``middle``: level 1, hop 32, conditioned on level 2; ``bottom``: level 0, hop 8,
conditioned on level 1), and ``assemble.py`` joins the three with the tokenizer into the ``MusicGenerator``
that ``arsound generate`` loads.

    arsound train music_prior --preset top --out runs/music_top          # encodes the splits once, then trains
    arsound train music_prior --preset middle --out runs/music_middle
    arsound train music_prior --preset bottom --out runs/music_bottom
    python recipes/music_prior/assemble.py runs/music_top/model runs/music_middle/model \\
        runs/music_bottom/model -o checkpoints/music-chorales
    arsound train music_prior --debug --data.tokenizer=DIR --data.root=DIR     # seconds, for the tests

Sizes (chosen so the whole hierarchy trains in about an hour and a half on this 2-core CPU, two levels at a
time, one thread each): width 128, row / column / prev_row attention over blocks of 32 tokens. The top prior,
which carries the music (melody, harmony, key), gets the longest context and the most depth: 6 layers, 512
tokens (4.1 s), batch 8, 1,200 steps (about 3 s a step beside another run). The upsamplers only add detail
under codes they are given, so they are shallower and see less: 4 layers, 256 tokens (0.5 s in the middle,
0.13 s at the bottom), batch 16, 1,500 steps (about 1.4 s a step).

The ``-gpu`` presets (``top-gpu``, ``middle-gpu``, ``bottom-gpu``) are the next step, sized for one GPU and a
few minutes each (``recipes/gpu.sh`` trains the three side by side and sets their steps from a timed probe):
width 256, twice the context, bf16, condition dropout 0.2 from the start for the upsamplers. Their depth stays
near the CPU presets' (8 / 6 / 4 layers), because the generator runs on CPUs too: the bottom level, 2,000 tokens
a second, is what ``make run`` waits for.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from arsound.core.train import TrainConfig
from arsound.music.prior import TokenPriorConfig


@dataclass
class TokenData:
    name: str = "chorales"
    root: str = "data_cache"               # prepared audio (arsound data prepare)
    tokenizer: str = "vqvae-chorales"      # name or folder of the VQ-VAE whose codes the prior models
    tokens: str = "data_cache/tokens"      # token sets go to {tokens}/{name}-{tokenizer weights}/{split}
    label: str = "instrument"              # the label the priors may take


@dataclass
class PriorEval:
    windows: int = 0                       # test windows for the final bits/token (0: every window)
    bigram_k: tuple[float, ...] = (0.01, 0.1, 0.5, 1.0)  # add-k smoothing, the best on valid is used


@dataclass
class Config:
    level: int = 2
    labels: bool = True                    # condition on the instrument
    init: str = ""                         # warm start from a saved prior of this level (folder or name; a fresh
                                           # optimizer, schedule and EMA); assemble.py --split takes one out of
                                           # a shipped generator
    prior: TokenPriorConfig = field(default_factory=lambda: TokenPriorConfig(
        context=512, dim=128, layers=6, heads=4, block=32, dropout=0.1, timing=True, timing_bins=32))
    data: TokenData = field(default_factory=TokenData)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=2000, batch_size=16, lr=1e-3, warmup_steps=100, min_lr_ratio=0.1, grad_clip=1.0, eval_every=250,
        eval_batches=16, ckpt_every=50, ema_decay=0.999, log_every=25, amp="off", out_dir="runs/music_prior"))
    eval: PriorEval = field(default_factory=PriorEval)

    @classmethod
    def top(cls) -> "Config":
        cfg = cls(level=2, labels=True)
        cfg.train.steps, cfg.train.batch_size, cfg.train.out_dir = 1200, 8, "runs/music_top"
        return cfg

    @classmethod
    def _upsampler(cls, level: int, out_dir: str) -> "Config":
        cfg = cls(level=level, labels=False)
        cfg.prior = replace(cfg.prior, context=256, layers=4)
        cfg.train.steps, cfg.train.out_dir = 1500, out_dir
        return cfg

    @classmethod
    def middle(cls) -> "Config":
        return cls._upsampler(1, "runs/music_middle")

    @classmethod
    def bottom(cls) -> "Config":
        return cls._upsampler(0, "runs/music_bottom")

    @classmethod
    def gpu(cls, preset: str) -> "Config":
        """A CPU preset at GPU scale; ``recipes/gpu.sh`` overrides ``train.steps`` with what fits its time budget."""
        cfg = PRESETS[preset]()
        context, layers, batch = {"top": (1024, 8, 32), "middle": (512, 6, 64), "bottom": (512, 4, 64)}[preset]
        cfg.prior = replace(cfg.prior, context=context, dim=256, layers=layers, heads=8,
                            cond_dropout=0.0 if preset == "top" else 0.2)
        cfg.train = replace(cfg.train, steps=20000, batch_size=batch, lr=5e-4, warmup_steps=200, amp="auto",
                            eval_every=1000, eval_batches=32, ckpt_every=1000, log_every=50,
                            out_dir=f"runs/music_{preset}_gpu")
        return cfg

    @classmethod
    def debug(cls, preset: str = "top") -> "Config":
        level = {"top": 1, "middle": 0, "bottom": 0}.get(preset.removesuffix("-gpu"), 1)  # debug tokenizer: 2 levels
        cfg = cls(level=level, labels=level == 1,
                  prior=TokenPriorConfig(context=16, dim=16, layers=3, heads=2, block=4, timing=True, timing_bins=4,
                                         cond_depth=2),
                  eval=PriorEval(windows=4, bigram_k=(0.1, 1.0)))
        cfg.train = TrainConfig(steps=1, batch_size=2, lr=1e-3, eval_every=1, eval_batches=1, ckpt_every=1,
                                ema_decay=0.0, amp="off", out_dir="runs/music_prior_debug", progress=False)
        return cfg


PRESETS = {"top": Config.top, "middle": Config.middle, "bottom": Config.bottom}
PRESETS.update({f"{p}-gpu": (lambda p=p: Config.gpu(p)) for p in list(PRESETS)})
