"""WaveRNN: 16-bit bytes round trip, the 65,536-way joint normalized, causality over the interleaved bytes (the
coarse byte never sees itself), cached step == full forward, greedy naive == cached, injected uniforms."""
from __future__ import annotations

import pytest
import torch

from arsound.audio.wavernn import WaveRNN, WaveRNNConfig, split_bytes

C, HOP = 5, 4


def tiny(local: bool = True, glob: bool = True, **kw) -> WaveRNN:
    cfg = WaveRNNConfig(**{**dict(hidden=16, fc=12, cond_channels=C if local else 0, hop_length=HOP,
                                  upsample_scales=(2, 2), num_speakers=3 if glob else 0, length=20), **kw})
    torch.manual_seed(0)
    model = WaveRNN(cfg).eval()
    with torch.no_grad():  # livelier outputs than the default init, so comparisons are not trivial
        for name, p in model.named_parameters():
            p.mul_(3.0 if "gru" in name else 2.0)
    return model


def conds(model: WaveRNN, B: int, T: int, seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    out = {}
    if model.config.cond_channels:
        out["c"] = torch.randn(B, C, -(-T // HOP), generator=g)
    if model.config.num_speakers:
        out["g"] = torch.randint(0, 3, (B,), generator=g)
    return out


def test_bytes_round_trip():
    model = tiny()
    wav = torch.tensor([[-1.0, -0.5, 0.0, 0.25, 1.0]])
    x = model.encode(wav)
    assert x.shape == (1, 10) and x.min() >= 0 and x.max() <= 255
    assert x[0, 4:6].tolist() == [128, 0]                                   # 0.0 -> 32768
    torch.testing.assert_close(model.decode(x), wav, atol=1 / 65535, rtol=0)
    c, f = split_bytes(torch.tensor([0, 255, 256, 65535]))
    assert c.tolist() == [0, 0, 1, 255] and f.tolist() == [0, 255, 0, 255]
    with pytest.raises(ValueError, match=r"\[-1, 1\]"):
        model.encode(torch.tensor([[1.5]]))


@pytest.mark.parametrize("local,glob", [(False, False), (True, True)])
def test_joint_of_a_sample_is_normalized(local, glob):
    """All 65,536 values of one sample (after one given sample): probabilities sum to 1."""
    model = tiny(local, glob)
    first = torch.tensor([77, 201])
    v = torch.arange(65536)
    x = torch.cat([first.expand(len(v), 2), torch.stack(split_bytes(v), 1)], 1)  # (65536, 4)
    cond = {k: t[:1].expand(len(v), *t.shape[1:]) for k, t in conds(model, 1, 2).items()}
    with torch.no_grad():
        lp = model.log_prob(x, reduce=False, **cond)                         # (65536, 4)
    joint = lp[:, 2:].sum(1).double()
    assert torch.logsumexp(joint, 0).exp().item() == pytest.approx(1.0, abs=1e-6)
    assert joint.std() > 0.2                                                 # not uniform (std 0)


def test_causality_over_bytes():
    """Changing byte ``p`` never changes the logits of bytes ``<= p``: in particular a coarse byte's own value
    does not reach its logits (the masked input), and it does reach the fine byte after it."""
    model = tiny()
    B, T = 2, 12
    x = torch.randint(0, 256, (B, 2 * T), generator=torch.Generator().manual_seed(3))
    cond = conds(model, B, T)
    with torch.no_grad():
        base = model(x, **cond)
        for p in (0, 7, 10, 2 * T - 1):
            y = x.clone()
            y[:, p] = (y[:, p] + 101) % 256
            out = model(y, **cond)
            assert torch.equal(out[:, :p + 1], base[:, :p + 1]), p
            if p < 2 * T - 1:
                assert not torch.allclose(out[:, p + 1], base[:, p + 1]), p


def test_cached_step_equals_full_forward():
    """Fed the true bytes, the cached step gives the full forward's logits, byte by byte."""
    from arsound.core.model import Canvas

    model = tiny()
    B, T = 3, 15
    x = torch.randint(0, 256, (B, 2 * T), generator=torch.Generator().manual_seed(4))
    cond = conds(model, B, T)
    with torch.no_grad():
        full = model(x, **cond)
    canvas = Canvas(model, B, greedy=True, shape=(2 * T,), order=torch.arange(2 * T))
    with model.steps(canvas, **cond) as step:
        cached = torch.stack([step(s, None if s == 0 else x[:, s - 1]) for s in range(2 * T)], 1)
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("local,glob", [(True, True), (False, True), (False, False)])
def test_greedy_naive_equals_cached_and_injected_uniforms(local, glob):
    model = tiny(local, glob)
    B, T = 2, 16
    cond = conds(model, B, T)
    naive = model.generate(B, length=T, greedy=True, method="naive", **cond)
    cached = model.generate(B, length=T, greedy=True, method="cached", **cond)
    assert naive.shape == (B, 2 * T) and len(cached.unique()) > (3 if local else 2)
    assert torch.equal(naive, cached)
    u = torch.rand(B, 2 * T, 1, generator=torch.Generator().manual_seed(5))
    assert torch.equal(model.generate(B, length=T, uniforms=u, method="naive", **cond),
                       model.generate(B, length=T, uniforms=u, method="cached", **cond))
    wav = model.decode(cached)
    assert wav.shape == (B, T) and wav.abs().max() <= 1


def test_mask_survives_training_and_conditioning_errors():
    """An optimizer step leaves the masked weights at zero; missing or extra conditioning is one clear error."""
    model = tiny()
    model.train()
    opt = torch.optim.Adam(model.parameters(), lr=0.1)
    x = torch.randint(0, 256, (2, 16))
    loss, _ = model.loss({"x": x, **conds(model, 2, 8)})
    loss.backward()
    opt.step()
    w, mask = model.gru.weight_ih_l0, model.input_mask
    assert (w[mask == 0] == 0).all() and (w[mask == 1] != 0).any()
    with pytest.raises(ValueError, match="needs local conditioning"):
        model(x, g=torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="speaker ids"):
        model(x, c=conds(model, 2, 8)["c"], g=torch.tensor([0, 5]))
    with pytest.raises(ValueError, match="hidden must be even"):
        WaveRNN(WaveRNNConfig(hidden=15))


def test_stream_pieces_and_frame_blocks_join_into_one_run():
    """Pieces of any size, and conditioning given as frame blocks, give what one run gives (the state, the last
    byte and the time-major uniforms carry over); naive with the same generator draws the same."""
    model = tiny()
    B, T = 2, 22
    cond = conds(model, B, T)
    whole = model.generate(B, length=T, generator=torch.Generator().manual_seed(1), method="cached", **cond)
    naive = model.generate(B, length=T, generator=torch.Generator().manual_seed(1), method="naive", **cond)
    assert torch.equal(whole, naive)
    for chunk in (1, 5, 1000):
        pieces = list(model.stream(B, length=T, generator=torch.Generator().manual_seed(1), chunk=chunk,
                                   method="cached", **cond))
        assert all(p.shape[1] <= 2 * chunk for p in pieces) and torch.equal(torch.cat(pieces, 1), whole)
    c = cond["c"][..., :T // HOP]                                            # whole frames: 20 samples
    ref = model.generate(B, c=c, g=cond["g"], generator=torch.Generator().manual_seed(2), method="cached")
    for method in ("cached", "auto"):
        blocks = iter([c[..., :2], c[..., 2:3], c[..., 3:]])
        got = torch.cat(list(model.stream(B, c=blocks, g=cond["g"], generator=torch.Generator().manual_seed(2),
                                          chunk=3, method=method)), 1)
        assert ref.shape == (B, 2 * 20) and torch.equal(got, ref), method


def test_vocode_runs_a_wavernn_vocoder(tmp_path):
    """The vocoder API takes a WaveRNN with the vocoder front end: vocode() and the streaming vocode_file()."""
    from arsound.audio.io import load_audio, save_audio
    from arsound.audio.vocoder import vocode, vocode_file
    from tests.fakes import SR, tone

    torch.manual_seed(0)
    model = WaveRNN(WaveRNNConfig(hidden=16, fc=8, cond_channels=80, hop_length=256, num_speakers=2,
                                  speaker_names=("a", "b"), sample_rate=SR)).eval()
    wav = torch.from_numpy(tone(0.1, 330, 0))                                # 6 whole frames
    y = vocode(model, wav=wav, g="b", progress=False)
    assert y.shape == (6 * 256,) and torch.isfinite(y).all() and y.abs().max() <= 1
    save_audio(tmp_path / "in.wav", wav.numpy(), SR)
    n = vocode_file(model, tmp_path / "in.wav", tmp_path / "out.wav", g="b", progress=False)
    out = load_audio(tmp_path / "out.wav", sr=SR, as_tensor=True)[0]
    assert n == 6 * 256 and out.shape == y.shape
    torch.testing.assert_close(out, y, atol=1 / 32768, rtol=0)               # 16-bit file
    with pytest.raises(ValueError, match="precision='bf16' is the WaveNet's native step's; a WaveRNN runs in fp32"):
        vocode(model, wav=wav, g="b", progress=False, precision="bf16")
