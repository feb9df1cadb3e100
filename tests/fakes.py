"""Synthetic data for the audio tests, made in tmp_path: tones, music-like chords and prepared-dataset
folders laid out as ``arsound data prepare`` writes them."""
from __future__ import annotations

import json

import numpy as np
import soundfile as sf
import torch

SR = 16000


def tone(seconds: float, f0: float, seed: int) -> np.ndarray:
    t = np.arange(int(seconds * SR)) / SR
    rng = np.random.default_rng(seed)
    return (0.4 * np.sin(2 * np.pi * f0 * t) + 0.05 * rng.standard_normal(len(t))).astype(np.float32)


def music(seconds: float, seed: int = 0) -> torch.Tensor:
    """Eight random notes with a slow tremolo and a little noise, ``Tensor[T]``."""
    t = torch.arange(int(seconds * SR)) / SR
    g = torch.Generator().manual_seed(seed)
    f = 110 * 2 ** (torch.randint(0, 24, (8,), generator=g) / 12)
    env = 0.5 + 0.5 * torch.sin(2 * torch.pi * 1.3 * t)
    x = sum(0.1 * torch.sin(2 * torch.pi * fi * t + i) for i, fi in enumerate(f)) * env
    return (x + 0.01 * torch.randn(len(t), generator=g)).float()


def vowels(seconds: float = 1.0, seed: int = 0) -> torch.Tensor:
    """A 140 Hz pulse train with vibrato through two vowels' formant filters (an /a/, then an /i/), ``Tensor[T]``."""
    import scipy.signal

    rng = np.random.default_rng(seed)
    n = int(seconds * SR)
    phase = np.cumsum(140 * (1 + 0.03 * np.sin(2 * np.pi * 5 * np.arange(n) / SR)) / SR)
    src = (np.diff(np.floor(phase), prepend=0) > 0) + 0.02 * rng.standard_normal(n)
    out = np.zeros(n)
    for i, formants in enumerate([[(700, 80), (1200, 90), (2600, 120)], [(300, 60), (2300, 100), (3000, 150)]]):
        poles = [np.exp(-np.pi * bw / SR + s * 2j * np.pi * f / SR) for f, bw in formants for s in (1, -1)]
        part = slice(i * n // 2, (i + 1) * n // 2)
        out[part] = scipy.signal.lfilter([1], np.real(np.poly(poles)), src[part])
    return torch.from_numpy(0.3 * out / np.abs(out).max()).float()


def lively(cls, config, scale: float = 2.0):
    """``cls(config)`` seeded with 0, in eval mode, its parameters times ``scale``: livelier outputs than the default
    init, so comparisons between two paths are not trivial."""
    torch.manual_seed(0)
    model = cls(config).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.mul_(scale)
    return model


CHORD = (250.0, 375.0, 500.0)


def chord(samples: int, sr: int, freqs=CHORD) -> torch.Tensor:
    """Equal sines at ``freqs`` (peak 0.8), ``Tensor[samples]``: the overfit tests' signal."""
    t = torch.arange(samples) / sr
    return sum(torch.sin(2 * np.pi * f * t) for f in freqs) * (0.8 / len(freqs))


def overfit(model, batch, steps: int = 120, lr: float = 1e-2, decay: float = 0.0) -> tuple[float, float]:
    """Adam on one batch for ``steps`` steps: the first and last training losses. With ``decay`` > 0 the rate
    falls linearly to 0 over that last share of the steps, so the last step does not land on one of Adam's
    spikes (where it lands at a constant rate depends on the CPU's float rounding and the thread count)."""
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    tail = max(1.0, decay * steps)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (steps - s) / tail) if decay else 1.0)
    for step in range(steps):
        loss, _ = model.loss(batch)
        if step == 0:
            first = loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    return first, loss.item()


def tone_share(y: torch.Tensor, sr: int, width: float, freqs=CHORD) -> float:
    """The share of ``y``'s (Hann-windowed) power within ``width`` Hz of the ``freqs``."""
    power = torch.fft.rfft(y * torch.hann_window(len(y))).abs() ** 2
    f = torch.fft.rfftfreq(len(y), 1 / sr)
    on = torch.stack([(f - fr).abs() <= width for fr in freqs]).any(0)
    return (power[on].sum() / power.sum()).item()


def fake_prepared(root, name: str, labels: list[dict], seconds: float = 0.5) -> None:
    """A prepared-dataset folder like ``arsound data prepare`` writes: WAVs + manifest.json, 2 files per split
    and label set."""
    files = []
    for j, lab in enumerate(labels):
        for s, split in enumerate(("train", "train", "valid", "test")):
            fid = f"{j}_{s}"
            wav = tone(seconds, 220 * (j + 1) + 30 * s, seed=10 * j + s)
            path = root / name / "wav" / f"{fid}.wav"
            path.parent.mkdir(parents=True, exist_ok=True)
            sf.write(path, wav, SR, subtype="PCM_16")
            files.append({"id": fid, "path": f"wav/{fid}.wav", "sha256": "", "samples": len(wav),
                          "duration": len(wav) / SR, "split": split, "labels": lab, "licence": "test",
                          "credit": "synthetic test tones"})
    manifest = {"name": name, "sample_rate": SR, "settings": {}, "credits": ["synthetic"], "files": files}
    (root / name / "manifest.json").write_text(json.dumps(manifest))


def tiny_vocoder(num_speakers: int = 0, names: tuple[str, ...] = (), seed: int = 0):
    """An untrained 2-layer mu-law WaveNet with the vocoder front end of ``recipes/vocoder``."""
    from arsound.audio.wavenet import WaveNet, WaveNetConfig

    torch.manual_seed(seed)
    return WaveNet(WaveNetConfig(head="mulaw", layers=2, cycles=1, kernel_size=2, residual_channels=4, gate_channels=8,
                                 skip_channels=8, cond_channels=80, hop_length=256, num_speakers=num_speakers,
                                 speaker_names=names, sample_rate=SR))


def trained_vqvae():
    """The debug VQ-VAE (2 levels, hops 4 / 16) after a few training steps, so codes are diverse."""
    from arsound.audio.vqvae import VQVAE, VQVAEConfig

    torch.manual_seed(0)
    m = VQVAE(VQVAEConfig.from_preset("debug"))
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    m.train()
    for s in range(3):
        loss, _ = m.loss(torch.stack([music(0.25, s), music(0.25, s + 10)]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return m.eval()


def trained_music(vqvae, out_dir, steps: int = 3):
    """A debug MusicGenerator on ``vqvae`` (2 levels, hops 4 / 16): a top prior with two instruments and timing,
    and an upsampler, each trained ``steps`` steps with the Trainer on codes of synthetic music."""
    from arsound import load
    from arsound.core.train import TrainConfig, Trainer
    from arsound.music.generator import MusicGenerator
    from arsound.music.prior import TokenPrior, TokenPriorConfig

    K = vqvae.config.quantizer.num_codes
    clips = [vqvae.encode(music(0.4, s)[None]) for s in range(4)]                # [level][1, T_l] per clip
    windows = {1: [], 0: []}
    for i, codes in enumerate(clips):
        top, low = codes[1][0], codes[0][0]
        for s in range(0, len(top) - 8 + 1, 4):
            windows[1].append({"x": top[s:s + 8], "label": torch.tensor(i % 2), "start": torch.tensor(s),
                               "total": torch.tensor(len(top))})
        for s in range(0, len(low) - 16 + 1, 8):
            windows[0].append({"x": low[s:s + 16], "upper": top[s // 4:(s + 16) // 4]})
    configs = {1: TokenPriorConfig(vocab=K, context=8, dim=16, layers=3, heads=2, block=4, level=1, num_labels=2,
                                   label_names=("organ", "piano"), timing=True, timing_bins=4),
               0: TokenPriorConfig(vocab=K, context=16, dim=16, layers=3, heads=2, block=4, level=0, upper_vocab=K,
                                   ratio=4, cond_depth=2)}
    priors = []
    for level, cfg in configs.items():
        torch.manual_seed(level)
        tc = TrainConfig(steps=steps, batch_size=4, lr=3e-3, eval_every=steps, ckpt_every=steps,
                         out_dir=str(out_dir / f"prior{level}"), progress=False, device="cpu")
        Trainer(TokenPrior(cfg).train(), tc, windows[level], windows[level][:4]).fit()
        priors.append(load(out_dir / f"prior{level}" / "model"))                  # the saved prior, as users get it
    return MusicGenerator.assemble(vqvae, priors, name="tiny-vqvae")
