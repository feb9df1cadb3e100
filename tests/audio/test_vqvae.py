"""VQ-VAE: presets and shapes, per-level encode/decode consistency, commitment on every level, save/load, and
data-parallel training that keeps the codebooks of every rank identical."""
from __future__ import annotations

import pytest
import torch

from arsound.audio.vqvae import VQVAE, VQVAEConfig
from arsound.core.checkpoint import load
from tests.fakes import music


def tiny_config(**kw) -> VQVAEConfig:
    cfg = VQVAEConfig.from_preset("debug")
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg



def test_presets_and_shapes():
    juke = VQVAEConfig.from_preset("jukebox")
    assert juke.hops == (8, 32, 128) and (juke.quantizer.num_codes, juke.quantizer.dim) == (2048, 64)
    small = VQVAE(VQVAEConfig.from_preset("small"))
    assert small.levels == 3 and small.hops == (8, 32, 128)
    assert len({id(e) for e in small.encoders}) == 3 and len({id(d) for d in small.decoders}) == 3  # own nets
    codes = small.eval().encode(torch.zeros(2, 1000))                              # padded to 1024
    assert [tuple(c.shape) for c in codes] == [(2, 128), (2, 32), (2, 8)]
    assert all(c.dtype == torch.long for c in codes)
    assert small.decode(codes[2], 2).shape == (2, 1024)
    with pytest.raises(ValueError, match="power"):
        VQVAE(tiny_config(hops=(4, 12)))
    with pytest.raises(ValueError, match="unknown VQ-VAE preset"):
        VQVAEConfig.from_preset("huge")


def test_encode_decode_consistency_per_level(vqvae):
    x = music(0.2, 3).unsqueeze(0)                                                 # 3200 samples
    codes = vqvae.encode(x)
    outs = vqvae(x)                                                                # eval: no codebook update
    for l, (c, o) in enumerate(zip(codes, outs)):
        vq = vqvae.quantizers[l]
        assert torch.equal(o.codes, c)
        e = vq.embed(c)                                                            # looked-up vectors (B, D, T_l)
        assert torch.equal(vq.encode(e), c)                                        # re-quantizing: same indices
        y = vqvae.decode(c, l)
        torch.testing.assert_close(y, vqvae.decoders[l](e).squeeze(1), rtol=0, atol=0)
        torch.testing.assert_close(o.x_hat, y[:, :x.shape[-1]], rtol=0, atol=1e-6)  # forward == decode(encode)
    with pytest.raises(ValueError, match="codes must lie in"):
        vqvae.decode(torch.full((1, 4), 99), 0)


def test_commitment_on_every_level_and_gradients_reach_every_encoder():
    torch.manual_seed(1)
    m = VQVAE(tiny_config()).train()
    x = torch.stack([music(0.1, 1), music(0.1, 2)])
    loss, metrics = m.loss(x)
    for l in range(m.levels):
        assert metrics[f"l{l}_commit"] > 0, l
        for k in ("mse", "stft", "perplexity", "usage", "used", "dead"):
            assert f"l{l}_{k}" in metrics
    loss.backward()
    for l in range(m.levels):                                                      # straight-through per level
        assert m.encoders[l].net[0].weight.grad.abs().sum() > 0, l
        assert m.decoders[l].net[0].weight.grad.abs().sum() > 0, l


def test_save_load_round_trip(vqvae, saved_vqvae):
    again = load(saved_vqvae)
    assert isinstance(again, VQVAE)
    x = music(0.3, 4)
    for a, b in zip(vqvae.encode(x), again.encode(x)):
        assert torch.equal(a, b)
    assert torch.equal(again.quantizers[0].codebook, vqvae.quantizers[0].codebook)


# ---- data parallel through the shared Trainer -------------------------------------------------------
DDP_SCRIPT = """
import sys, torch
sys.path.insert(0, sys.argv[2])
torch.set_num_threads(1)
from arsound.audio.vqvae import VQVAE, VQVAEConfig
from arsound.core.train import Trainer, TrainConfig
torch.manual_seed(0)
model = VQVAE(VQVAEConfig.from_preset("debug"))
t = torch.arange(1024) / 16000
data = torch.stack([0.3 * torch.sin(2 * torch.pi * (100 + 37 * i) * t) for i in range(16)])
cfg = TrainConfig(steps=3, batch_size=4, eval_every=2, eval_batches=3, ckpt_every=0, device="cpu",
                  out_dir=sys.argv[1], progress=False)
tr = Trainer(model, cfg, data, data[:6])
tr.fit()
torch.save({k: v for k, v in model.state_dict().items() if "quantizers" in k}, f"{sys.argv[1]}/rank{tr.rank}.pt")
"""


def test_trainer_ddp_keeps_codebooks_identical_on_every_rank(tmp_path):
    """Two gloo processes through the Trainer (ranks seeded differently, 3 eval batches split unevenly):
    no collective deadlocks, and every rank ends with the same codebooks and EMA statistics."""
    import os
    import subprocess
    import sys

    from tests.core.test_quantize import REPO, _free_port

    script = tmp_path / "ddp_vqvae.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
           "--master_port", str(_free_port()), str(script), str(tmp_path), str(REPO)]
    r = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=180)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = torch.load(tmp_path / "rank0.pt"), torch.load(tmp_path / "rank1.pt")
    assert any(k.endswith("codebook") for k in a) and all(bool(v) for k, v in a.items() if k.endswith("initialized"))
    for k in a:
        assert torch.equal(a[k], b[k]), k
