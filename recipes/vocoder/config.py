"""Mel-conditioned WaveNet vocoders: a small WaveNet (van den Oord et al., 2016) conditioned on 80-band
log-mel frames (n_fft 1024, hop 256, 0-8 kHz at 16 kHz, as Tacotron 2's WaveNet, Shen et al., 2018) and,
when the data has several speakers / instruments, on a global label. Three presets:

- ``mulaw`` (default, the shipped checkpoints): 8-bit mu-law softmax on the pre-emphasized signal (0.85).
- ``mol``: a discretized mixture of 10 logistics over 16-bit linear PCM (PixelCNN++, Salimans et al.,
  2017; Parallel WaveNet, van den Oord et al., 2018).
- ``lp``: the mu-law network of ``mulaw`` modelling the excitation of an order-16 all-pole filter computed
  from the mel (LP-WaveNet, Hwang et al., 2018; LPCNet, Valin & Skoglund, 2019; ``audio/lpc.py``); no
  pre-emphasis (the filter carries the tilt).
- ``wavernn``: not a WaveNet: WaveRNN's GRU with a dual softmax over 16-bit samples (Kalchbrenner et al., 2018;
  ``audio/wavernn.py``), hidden 256, the same front end and upsampler.

    arsound train vocoder --data.name=speech --out runs/vocoder_speech
    arsound train vocoder --preset mol --data.name=chorales --out runs/vocoder_mol_chorales
    arsound train vocoder --preset lp --data.name=speech --out runs/vocoder_lp_speech
    arsound train vocoder --debug                       # (--preset mol --debug: the mixture head's)

``mulaw-gpu`` and ``lp-gpu`` are those two at GPU scale (``recipes/gpu.sh`` trains them side by side for a time
budget): 16 layers in 2 cycles of dilations 1..128 (receptive field 1,021 samples, 64 ms: several pitch periods
where 253 hold about one), the same widths, so a CPU still vocodes faster than real time (random weights, one
thread: 23,300 samples/s for the mu-law one against 35,600 at 12 layers); batch 32 crops of 16 frames, bf16.

The front end lives in ``model`` (the WaveNet's config: ``cond_channels`` mels, ``hop_length``, ``n_fft``,
``fmin``, ``fmax``), so the saved model vocodes by itself; the recipe fills in ``sample_rate``,
``num_speakers`` / ``speaker_names`` from the data and ``temperature`` from the valid clips.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from arsound.audio.wavenet import WaveNetConfig
from arsound.audio.wavernn import WaveRNNConfig
from arsound.core.train import TrainConfig

FRONT_END = dict(cond_channels=80, hop_length=256, upsample_scales=(4, 4, 4, 4), n_fft=1024, fmin=0.0, fmax=8000.0)


def mulaw_model(**over) -> WaveNetConfig:
    """12 layers in 2 cycles of dilations 1..32, k = 3 (receptive field 253), residual 48, gate / skip 96."""
    return WaveNetConfig(**{**FRONT_END, **dict(head="mulaw", bits=8, layers=12, cycles=2, kernel_size=3,
                                                residual_channels=48, gate_channels=96, skip_channels=96,
                                                preemphasis=0.85), **over})


def mol_model(**over) -> WaveNetConfig:
    return WaveNetConfig(**{**FRONT_END, **dict(head="mol", bits=16, num_mixtures=10, layers=12, cycles=2,
                                                kernel_size=3, residual_channels=32, gate_channels=64,
                                                skip_channels=64), **over})


def lp_model(**over) -> WaveNetConfig:
    """``mulaw_model`` on the excitation of an order-16 linear predictor from the mel, without pre-emphasis."""
    return mulaw_model(**{**dict(preemphasis=0.0, lpc_order=16), **over})


def wavernn_model(**over) -> WaveRNNConfig:
    """A GRU of 256 (two halves of 128), output networks of 128, on the vocoder front end."""
    return WaveRNNConfig(**{**FRONT_END, **dict(hidden=256, fc=128), **over})


@dataclass
class VocoderData:
    name: str = "speech"               # speech | chorales | chorales-2sf (two soundfonts)
    root: str = "data_cache"
    language: str = "en"               # speech only: "en", several "en,es,it,ru" (the other voices are held
                                       # out and scored apart), "" = all languages (then several speakers)
    speaker_embedding: bool = True     # False: one vocoder for every voice, no label (vocodes unseen voices)
    segment_frames: int = 16           # training crop: segment_frames * hop samples
    gain_db: tuple[float, float] = (0.0, 0.0)  # training crops: a random gain in this range (dB), e.g. (-30, 0)
    lowpass: float = 0.0               # training crops: probability of a random low-pass (3-7 kHz)


@dataclass
class VocoderEval:
    clips: int = 3                     # held-out clips resynthesized at every eval
    seconds: float = 1.0               # per clip (cut to whole frames)
    griffin_lim_iters: int = 32
    temperature: float = 1.0           # periodic evals; the final report's unless temperatures is set
    temperatures: tuple[float, ...] = (1.0, 0.8, 0.6, 0.4, 0.2)  # final report: lowest LSD on valid clips
    postfilters: tuple[int, ...] = (0, 8, 16, 32)  # final report: post-filter passes, lowest LSD on those clips
    select_clips: int = 6
    final_split: str = "test"          # split of the final report (periodic evals use valid)
    report: bool = True                # False: train and export only (a timing probe; score.py measures later)


def _debug_train(name: str) -> TrainConfig:
    return TrainConfig(steps=1, batch_size=2, lr=1e-3, eval_every=1, eval_batches=1, ckpt_every=1, ema_decay=0.0,
                       out_dir=f"runs/{name}_debug", progress=False)


def _debug_eval() -> VocoderEval:
    return VocoderEval(clips=1, seconds=0.1, griffin_lim_iters=2, temperatures=(1.0, 0.5), postfilters=(0, 2),
                       select_clips=1)


TINY = dict(layers=2, cycles=1, kernel_size=2, residual_channels=4, gate_channels=8, skip_channels=8)


@dataclass
class Config:
    model: WaveNetConfig | WaveRNNConfig = field(default_factory=mulaw_model)
    data: VocoderData = field(default_factory=lambda: VocoderData(segment_frames=8))
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=4000, batch_size=8, lr=2e-3, warmup_steps=50, eval_every=1000, eval_batches=4, ckpt_every=100,
        ema_decay=0.998, log_every=25, out_dir="runs/vocoder"))
    eval: VocoderEval = field(default_factory=VocoderEval)
    init: str = ""   # warm start (fine-tune) from a saved vocoder: folder or checkpoint name, same --model.*

    @classmethod
    def mol(cls) -> "Config":
        return cls(model=mol_model(), data=VocoderData(), train=TrainConfig(
            steps=1500, batch_size=8, lr=2e-3, warmup_steps=50, eval_every=500, eval_batches=4, ckpt_every=100,
            ema_decay=0.995, log_every=25, out_dir="runs/vocoder_mol"))

    @classmethod
    def lp(cls) -> "Config":
        cfg = cls(model=lp_model())
        cfg.train.out_dir = "runs/vocoder_lp"
        return cfg

    @classmethod
    def wavernn(cls) -> "Config":
        cfg = cls(model=wavernn_model())
        cfg.train.out_dir = "runs/vocoder_wavernn"
        return cfg

    @classmethod
    def gpu(cls, preset: str) -> "Config":
        """``mulaw`` or ``lp`` at GPU scale; ``recipes/gpu.sh`` overrides ``train.steps`` with what fits its budget."""
        cfg = PRESETS[preset]()
        cfg.model = replace(cfg.model, layers=16, cycles=2)
        cfg.data.segment_frames = 16
        cfg.train = replace(cfg.train, steps=20000, batch_size=32, lr=1e-3, warmup_steps=200, amp="auto",
                            eval_every=2000, eval_batches=16, ckpt_every=1000, log_every=50,
                            out_dir=f"runs/vocoder_{preset}_gpu")
        return cfg

    @classmethod
    def debug(cls, preset: str = "mulaw") -> "Config":
        model = {"mulaw": lambda: mulaw_model(**TINY), "lp": lambda: lp_model(**TINY),
                 "mol": lambda: mol_model(**TINY, num_mixtures=2),
                 "wavernn": lambda: wavernn_model(hidden=8, fc=8)}[preset.removesuffix("-gpu")]()
        return cls(model=model, data=VocoderData(segment_frames=2), train=_debug_train(f"vocoder_{preset}"),
                   eval=_debug_eval())


PRESETS = {"mulaw": Config, "mol": Config.mol, "lp": Config.lp, "wavernn": Config.wavernn}
PRESETS.update({f"{p}-gpu": (lambda p=p: Config.gpu(p)) for p in ("mulaw", "lp")})
