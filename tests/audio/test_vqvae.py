"""VQ-VAE: per-level encode/decode consistency, commitment on every level, save/load, chunked encoding ==
whole-file encoding (exact codes), chunked decoding vs whole, codes files, ``arsound encode/decode`` and
their one-line errors, and a one-step run of ``recipes/vqvae`` (debug) on synthetic data in tmp_path."""
from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile as sf
import torch

from arsound.audio.io import iter_chunks
from arsound.audio.vqvae import (VQVAE, CodesFile, VQVAEConfig, decode_chunked, encode_chunked, encode_file,
                                 load_codes, save_codes, seam_jump, si_sdr, weights_sha256)
from arsound.cli import load_recipe
from arsound.core.checkpoint import load, save_pretrained
from arsound.core.config import apply_overrides
from arsound.core.quantize import QuantizerConfig
from tests.audio.test_vocoder import fake_prepared, tone

SR = 16000


def tiny_config(**kw) -> VQVAEConfig:
    cfg = VQVAEConfig.from_preset("debug")
    for k, v in kw.items():
        setattr(cfg, k, v)
    return cfg


def music(seconds: float, seed: int = 0) -> torch.Tensor:
    t = torch.arange(int(seconds * SR)) / SR
    g = torch.Generator().manual_seed(seed)
    f = 110 * 2 ** (torch.randint(0, 24, (8,), generator=g) / 12)
    env = 0.5 + 0.5 * torch.sin(2 * torch.pi * 1.3 * t)
    x = sum(0.1 * torch.sin(2 * torch.pi * fi * t + i) for i, fi in enumerate(f)) * env
    return (x + 0.01 * torch.randn(len(t), generator=g)).float()


@pytest.fixture(scope="module")
def model() -> VQVAE:
    """The debug VQ-VAE (2 levels, hops 4 / 16) after a few training steps, so codes are diverse."""
    torch.manual_seed(0)
    m = VQVAE(tiny_config())
    opt = torch.optim.Adam(m.parameters(), 1e-3)
    m.train()
    for s in range(3):
        loss, _ = m.loss(torch.stack([music(0.25, s), music(0.25, s + 10)]))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return m.eval()


@pytest.fixture(scope="module")
def saved(model, tmp_path_factory):
    folder = tmp_path_factory.mktemp("ckpt") / "tiny-vqvae"
    save_pretrained(model, folder, card={"data": "synthetic tones (test)"})
    return folder


# ---- the model ------------------------------------------------------------------------------------
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


def test_encode_decode_consistency_per_level(model):
    x = music(0.2, 3).unsqueeze(0)                                                 # 3200 samples
    codes = model.encode(x)
    outs = model(x)                                                                # eval: no codebook update
    for l, (c, o) in enumerate(zip(codes, outs)):
        vq = model.quantizers[l]
        assert torch.equal(o.codes, c)
        e = vq.embed(c)                                                            # looked-up vectors (B, D, T_l)
        assert torch.equal(vq.encode(e), c)                                        # re-quantizing: same indices
        y = model.decode(c, l)
        torch.testing.assert_close(y, model.decoders[l](e).squeeze(1), rtol=0, atol=0)
        torch.testing.assert_close(o.x_hat, y[:, :x.shape[-1]], rtol=0, atol=1e-6)  # forward == decode(encode)
    with pytest.raises(ValueError, match="codes must lie in"):
        model.decode(torch.full((1, 4), 99), 0)


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


def test_save_load_round_trip(model, saved):
    again = load(saved)
    assert isinstance(again, VQVAE)
    x = music(0.3, 4)
    for a, b in zip(model.encode(x), again.encode(x)):
        assert torch.equal(a, b)
    assert torch.equal(again.quantizers[0].codebook, model.quantizers[0].codebook)


def test_si_sdr():
    x = music(0.2, 5)
    assert si_sdr(x, 0.5 * x).item() > 60                                          # scale-invariant
    noisy = x + 0.1 * x.std() * torch.randn(len(x), generator=torch.Generator().manual_seed(0))
    assert si_sdr(x, noisy).item() == pytest.approx(20.0, abs=0.5)


# ---- chunking -------------------------------------------------------------------------------------
def test_encoder_margin_covers_the_receptive_field(model):
    """Changing one input sample changes codes only within the analytic receptive field."""
    H = model.max_hop
    x = music(0.3, 6).unsqueeze(0)[:, :4096]
    p = 2048
    z = [model.encoders[l](model._pad(x)[0]) for l in range(model.levels)]
    x2 = x.clone()
    x2[0, p] += 0.5
    z2 = [model.encoders[l](model._pad(x2)[0]) for l in range(model.levels)]
    for l, h in enumerate(model.hops):
        changed = (z[l] - z2[l]).abs().amax(1)[0].nonzero().flatten()
        assert len(changed) > 0
        rf = model.encoders[l].receptive_field
        assert (changed * h - p).abs().max() <= rf and (changed * h + h - p).abs().min() <= rf
    assert model.encoder_margin() % H == 0 and model.encoder_margin() >= max(e.receptive_field for e in model.encoders)


def test_chunked_encoding_equals_whole_file_exactly(model, tmp_path):
    x = music(1.1, 7)                                                              # 17600 samples, not a hop multiple
    whole = model.encode(x.unsqueeze(0))
    H, M = model.max_hop, model.encoder_margin()
    chunk = 40 * H
    from arsound.audio.vqvae import _blocks_of
    chunked = encode_chunked(model, _blocks_of(x, chunk + 2 * M, chunk), len(x), chunk, M)
    assert len(x) > 5 * chunk                                                      # several seams
    for w, c in zip(whole, chunked):
        assert torch.equal(w[0], c)                                                # every code, seams included
    # the same from a file read in chunks through io.iter_chunks (float WAV: the same samples)
    path = tmp_path / "long.wav"
    sf.write(path, x.numpy(), SR, subtype="FLOAT")
    blocks = iter_chunks(path, (chunk + 2 * M) / SR, overlap=2 * M / SR)
    for w, c in zip(whole, encode_chunked(model, blocks, len(x), chunk, M)):
        assert torch.equal(w[0], c)
    codes, length = encode_file(model, path, chunk_seconds=chunk / SR)
    assert length == len(x) and all(torch.equal(w[0], c) for w, c in zip(whole, codes))
    # without the context margin the codes near the seams change (so the test above can fail)
    naive = encode_chunked(model, _blocks_of(x, chunk, chunk), len(x), chunk, 0)
    assert any(not torch.equal(w[0], c) for w, c in zip(whole, naive))


def test_chunked_decoding_matches_whole_and_has_no_seam_jump(model):
    x = music(1.0, 8)
    for l in range(model.levels):
        codes = model.encode(x.unsqueeze(0))[l][0]
        whole = model.decode(codes, l)
        y, stats = decode_chunked(model, codes, l, chunk=64)
        assert y.shape == whole.shape and len(stats.seams) == len(codes) // 64 - (len(codes) % 64 == 0)
        torch.testing.assert_close(y, whole, rtol=0, atol=1e-5)
        assert seam_jump(y, stats.seams) == pytest.approx(seam_jump(whole, stats.seams), rel=1e-3)
        naive, ns = decode_chunked(model, codes, l, chunk=64, margin=0, crossfade=0)
        assert (naive - whole).abs().max() > 1e-3                                  # no context: seams differ


# ---- codes files ----------------------------------------------------------------------------------
def test_codes_file_round_trip_and_refusals(tmp_path):
    cf = CodesFile(codes=[torch.tensor([0, 5, 65535]), torch.tensor([7])], hops=[4, 16], sample_rate=SR, length=12,
                   model="some-model", model_sha256="abc", num_codes=65536)
    path = save_codes(tmp_path / "c.npz", cf)
    back = load_codes(path)
    assert [c.tolist() for c in back.codes] == [[0, 5, 65535], [7]]
    assert (back.hops, back.sample_rate, back.length, back.model, back.model_sha256) == ([4, 16], SR, 12, "some-model", "abc")
    with np.load(path) as z:
        assert z["codes_0"].dtype == np.uint16 and int(z["version"]) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]                     # no temp files
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, x=np.zeros(3))
    newer = tmp_path / "newer.npz"
    with np.load(path) as z:
        np.savez(newer, **{**{k: z[k] for k in z.files}, "version": np.array(2)})
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip")
    for bad, pattern in ((foreign, "not an arsound codes file"), (newer, "newer than this arsound reads"),
                         (garbage, "not an arsound codes file")):
        with pytest.raises(ValueError, match=pattern) as e:
            load_codes(bad)
        assert "\n" not in str(e.value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_codes(tmp_path / "nope.npz")
    with pytest.raises(ValueError, match="uint16"):
        save_codes(tmp_path / "big.npz", CodesFile(codes=[torch.tensor([70000])], hops=[4], sample_rate=SR, length=4,
                                                   model="m"))


# ---- CLI ------------------------------------------------------------------------------------------
def cli(argv):
    from arsound import cli as arsound_cli

    return arsound_cli.main(argv)


def test_cli_encode_decode_end_to_end(model, saved, tmp_path):
    x = music(0.7, 9)
    src = tmp_path / "in.wav"
    sf.write(src, x.numpy(), SR, subtype="FLOAT")
    npz = tmp_path / "codes.npz"
    assert cli(["encode", str(src), "-o", str(npz), "--model", str(saved), "--chunk-seconds", "0.1"]) == 0
    cf = load_codes(npz)
    assert cf.length == len(x) and cf.hops == [4, 16] and cf.model_sha256 == weights_sha256(saved)
    for w, c in zip(model.encode(x.unsqueeze(0)), cf.codes):
        assert torch.equal(w[0], c)                                                # chunked CLI == whole encoding
    for level in (0, 1):
        out = tmp_path / f"out{level}.wav"
        assert cli(["decode", str(npz), "-o", str(out), "--level", str(level), "--chunk-codes", "50"]) == 0
        y, sr = sf.read(out, dtype="float32")
        assert sr == SR and len(y) == len(x)
        ref = model.decode(cf.codes[level], level)[:len(x)].clamp(-1, 1).numpy()
        np.testing.assert_allclose(y, ref, atol=1 / 32768 + 1e-4)                 # 16-bit WAV of the decode


def test_cli_errors_are_one_line(saved, tmp_path, capsys):
    src = tmp_path / "in.wav"
    sf.write(src, music(0.2, 1).numpy(), SR)
    good = tmp_path / "good.npz"
    assert cli(["encode", str(src), "-o", str(good), "--model", str(saved)]) == 0
    capsys.readouterr()
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK garbage")
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, codes=np.zeros(4, np.uint16))
    newer = tmp_path / "newer.npz"
    with np.load(good) as z:
        np.savez(newer, **{**{k: z[k] for k in z.files}, "version": np.array(99)})
    other = tmp_path / "other"
    torch.manual_seed(5)
    save_pretrained(VQVAE(tiny_config()), other)
    cases = {
        "missing audio": (["encode", str(tmp_path / "nope.wav"), "-o", str(tmp_path / "o1.npz"), "--model", str(saved)],
                          "no such file"),
        "bad output": (["encode", str(src), "-o", str(tmp_path / "o.txt"), "--model", str(saved)], ".npz"),
        "missing model": (["encode", str(src), "-o", str(tmp_path / "o2.npz"), "--model", str(tmp_path / "none")],
                          "no checkpoint"),
        "missing codes": (["decode", str(tmp_path / "nope.npz"), "-o", str(tmp_path / "o3.wav")], "does not exist"),
        "bad npz": (["decode", str(bad), "-o", str(tmp_path / "o4.wav")], "not an arsound codes file"),
        "foreign npz": (["decode", str(foreign), "-o", str(tmp_path / "o5.wav")], "not an arsound codes file"),
        "newer npz": (["decode", str(newer), "-o", str(tmp_path / "o6.wav")], "newer"),
        "bad level": (["decode", str(good), "-o", str(tmp_path / "o7.wav"), "--level", "5"], "out of range"),
        "other model": (["decode", str(good), "-o", str(tmp_path / "o8.wav"), "--model", str(other)], "encoded by"),
    }
    for case, (argv, pattern) in cases.items():
        assert cli(argv) == 2, case
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"arsound {argv[0]}: error: ") and "\n" not in err and pattern in err, (case, err)
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("o", ".")) and p.name != "other")
    assert leftovers == [], leftovers                                              # nothing half-written


# ---- recipe ---------------------------------------------------------------------------------------
def test_recipe_debug_one_step(tmp_path):
    root = tmp_path / "data"
    fake_prepared(root, "chorales", [{"instrument": "organ"}], seconds=0.5)
    module = load_recipe("vqvae")
    cfg = module.Config.debug()
    apply_overrides(cfg, [f"--data.root={root}", f"--train.out_dir={tmp_path / 'run'}"])
    result = module.main(cfg)
    assert result["steps"] == 1 and len(result["levels"]) == 2
    for row in result["levels"]:
        assert np.isfinite(row["si_sdr_db"]) and row["lsd_db"] > 0 and row["mrstft"] > 0
        assert row["bits_per_s"] == pytest.approx(row["tokens_per_s"] * 4)        # 16 codes: 4 bits
    health = [json.loads(line) for line in (tmp_path / "run" / "health.jsonl").read_text().splitlines()]
    assert any(h["split"] == "valid" and "l1_usage" in h and "l1_dead" in h for h in health)
    model = load(tmp_path / "run" / "model")
    assert isinstance(model, VQVAE) and model.config.preset == "debug"
    assert "SI-SDR" in (tmp_path / "run" / "model" / "README.md").read_text()
    assert (tmp_path / "run" / "reconstruction.md").is_file() and (tmp_path / "run" / "resume.pt").is_file()


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
