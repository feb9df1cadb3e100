"""Mixture-of-logistics WaveNet vocoder recipe: a small WaveNet (van den Oord et al., 2016) whose output is
a discretized mixture of 10 logistics over **16-bit** linear PCM (65536 bins; PixelCNN++, Salimans et al.,
2017; Parallel WaveNet, van den Oord et al., 2018), conditioned on 80-band log-mel frames (hop 256 at
16 kHz, as Tacotron 2's WaveNet, Shen et al., 2018) and on a global speaker / instrument label when the
data has several. Trained by the shared Trainer; every eval reports held-out NLL (bits/sample, of the
16-bit samples) and resynthesis LSD / MR-STFT beside Griffin-Lim (``arsound.audio.vocoder``).

    arsound train vocoder_mol --data.name=chorales --out runs/vocoder_mol_chorales
    arsound train vocoder_mol --debug
"""
from __future__ import annotations

from dataclasses import dataclass, field

from arsound.audio.vocoder import MelSpec, VocoderData, VocoderEval, VocoderModel, train_vocoder
from arsound.core.train import TrainConfig


@dataclass
class Config:
    model: VocoderModel = field(default_factory=lambda: VocoderModel(
        head="mol", bits=16, num_mixtures=10, layers=12, cycles=2, kernel_size=3, residual_channels=32,
        gate_channels=64, skip_channels=64))
    data: VocoderData = field(default_factory=VocoderData)
    mel: MelSpec = field(default_factory=MelSpec)
    train: TrainConfig = field(default_factory=lambda: TrainConfig(
        steps=1500, batch_size=8, lr=2e-3, warmup_steps=50, eval_every=500, eval_batches=4, ckpt_every=100,
        ema_decay=0.995, log_every=25, out_dir="runs/vocoder_mol"))
    eval: VocoderEval = field(default_factory=VocoderEval)
    init: str = ""   # warm start (fine-tune) from a saved vocoder: folder or checkpoint name, same --model.*

    @classmethod
    def debug(cls) -> "Config":
        cfg = cls(model=VocoderModel(head="mol", bits=16, num_mixtures=2, layers=2, cycles=1, kernel_size=2,
                                     residual_channels=4, gate_channels=8, skip_channels=8),
                  data=VocoderData(segment_frames=2),
                  eval=VocoderEval(clips=1, seconds=0.1, griffin_lim_iters=2, temperatures=(1.0, 0.5), select_clips=1))
        cfg.train = TrainConfig(steps=1, batch_size=2, lr=1e-3, eval_every=1, eval_batches=1, ckpt_every=1,
                                ema_decay=0.0, out_dir="runs/vocoder_mol_debug", progress=False)
        return cfg


def main(cfg: Config) -> dict:
    return train_vocoder(cfg, "vocoder_mol")
