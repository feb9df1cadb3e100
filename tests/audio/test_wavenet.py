"""WaveNet: receptive fields, causality, cached == full forward, naive == cached == batched generation,
different-length batches, injected uniforms, conditioning errors, and a 3-tone overfit."""
from __future__ import annotations

import math

import pytest
import torch

from arsound.audio.wavenet import WaveNet, WaveNetConfig, receptive_field, wavenet_dilations
from arsound.core.model import ARModel, Canvas, run_steps
from tests.fakes import chord, lively, overfit, tone_share

C, HOP = 5, 4  # tiny local conditioning: 5 channels, hop 4 = 2 * 2


def tiny(head="mulaw", k=2, local=False, glob=False, **kw) -> WaveNet:
    cfg = WaveNetConfig(**{**dict(head=head, layers=6, cycles=2, kernel_size=k, residual_channels=8,
                                  gate_channels=16, skip_channels=16, num_mixtures=3, length=40,
                                  cond_channels=C if local else 0, hop_length=HOP, upsample_scales=(2, 2),
                                  num_speakers=3 if glob else 0), **kw})
    return lively(WaveNet, cfg)


def conds(model: WaveNet, B: int, T: int, seed: int = 1) -> dict:
    g = torch.Generator().manual_seed(seed)
    out = {}
    if model.config.cond_channels:
        out["c"] = torch.randn(B, C, math.ceil(T / HOP), generator=g)
    if model.config.num_speakers:
        out["g"] = torch.randint(0, 3, (B,), generator=g)
    return out


def random_x(model: WaveNet, B: int, T: int, seed: int = 2) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return model.encode(torch.rand(B, T, generator=g) * 1.8 - 0.9)


# ---- receptive field ------------------------------------------------------------------------------
@pytest.mark.parametrize("layers,cycles,k,rf", [(30, 3, 3, 6139), (24, 4, 3, 505), (12, 2, 3, 253),
                                                (8, 2, 3, 61), (16, 4, 2, 61), (30, 3, 2, 3070)])
def test_receptive_field_numbers(layers, cycles, k, rf):
    assert receptive_field(layers, cycles, k) == rf


def test_receptive_field_matches_model_and_presets():
    assert wavenet_dilations(6, 2) == [1, 2, 4, 1, 2, 4]
    assert WaveNet(WaveNetConfig(**WaveNet.presets["medium"])).receptive_field == 2047
    assert tiny(k=3).receptive_field == receptive_field(6, 2, 3) == 29
    with pytest.raises(ValueError, match="multiple of cycles"):
        receptive_field(10, 3, 2)


@pytest.mark.parametrize("k", [2, 3])
def test_causality_by_perturbation(k):
    """Params at t change only when x[t - rf : t] changes: never at <= p, always at p + 1."""
    model = tiny(k=k, glob=True)
    rf, T, p = model.receptive_field, 80, 20
    x, cond = random_x(model, 1, T), conds(model, 1, T)
    y = x.clone()
    y[0, p] = (y[0, p] + 97) % 256
    with torch.no_grad():
        a, b = model(x, **cond), model(y, **cond)
    diff = (a - b).abs().amax(-1)[0]                                    # (T,)
    assert diff[:p + 1].max() == 0                                       # past and present untouched
    assert diff[p + 1] > 1e-3                                            # the next sample sees it
    assert diff[p + rf + 1:].max() < 1e-6                                # beyond the receptive field
    assert diff[p + rf] > 0                                              # ... which is exactly rf wide


# ---- cached == full forward ---------------------------------------------------------------------
@pytest.mark.parametrize("k", [2, 3])
@pytest.mark.parametrize("local,glob,head", [(False, False, "mulaw"), (True, False, "mol"),
                                             (False, True, "gaussian"), (True, True, "mulaw"),
                                             (True, True, "gmm")])
def test_streaming_steps_equal_full_forward(k, local, glob, head):
    model = tiny(head, k, local, glob)
    B, T = 3, 37
    x, cond = random_x(model, B, T), conds(model, B, T)
    with torch.no_grad():
        full = model(x, **cond)                                          # (B, T, P)
    with model.streaming():
        chunks = [model(x[:, :1], **cond), model(x[:, 1:5]), model(x[:, 5:6])]
        chunks += [model(x[:, t:t + 1]) for t in range(6, T)]
        assert "engine" in model.state
    assert model.state == {}                                             # reset on exit
    cached = torch.cat(chunks, 1)
    assert cached.shape == full.shape == (B, T, model.head.num_params)
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=0)


def test_streaming_equals_full_with_weight_norm_and_16_bit_mol():
    model = tiny("mol", 3, local=True, glob=True, weight_norm=True, bits=16)
    x, cond = random_x(model, 2, 30), conds(model, 2, 30)
    assert int(x.max()) > 255                                            # 16-bit bins
    with torch.no_grad():
        full = model(x, **cond)
    with model.streaming():
        cached = model(x, **cond)
    torch.testing.assert_close(cached, full, atol=1e-5, rtol=0)


# ---- generation ---------------------------------------------------------------------------------
@pytest.mark.parametrize("head,k,local,glob", [("mulaw", 2, True, True), ("mol", 3, True, False),
                                               ("mulaw", 3, False, True)])
def test_greedy_naive_equals_cached_equals_batched(head, k, local, glob):
    model = tiny(head, k, local, glob)
    B, T = 3, 48
    cond = conds(model, B, T)
    naive = model.generate(B, length=T, greedy=True, method="naive", **cond)
    cached = model.generate(B, length=T, greedy=True, method="cached", **cond)
    assert naive.shape == (B, T) and naive.dtype == torch.long
    assert len(naive.unique()) > (3 if local else 1)                     # not one constant output
    assert torch.equal(naive, cached)
    canvas = Canvas(model, B, greedy=True)                               # the generic one-pass-per-sample step
    reference = run_steps(model, canvas, ARModel.naive_steps(model, canvas, **cond))
    assert torch.equal(reference, cached[:, :model.config.length])
    for i in range(B):                                                   # batched == one at a time
        one = model.generate(1, length=T, greedy=True, **{k_: v[i:i + 1] for k_, v in cond.items()})
        assert torch.equal(one[0], cached[i])


@pytest.mark.parametrize("head", ["mulaw", "mol", "gmm"])
def test_injected_uniforms_give_identical_samples(head):
    model = tiny(head, 2, local=True, glob=True)
    B, T = 2, 40
    cond = conds(model, B, T)
    u = torch.rand(B, T, model.head.num_uniforms, generator=torch.Generator().manual_seed(5))
    naive = model.generate(B, length=T, uniforms=u, method="naive", **cond)
    cached = model.generate(B, length=T, uniforms=u, **cond)
    if model.head.discrete:
        assert torch.equal(naive, cached)
    else:
        torch.testing.assert_close(naive, cached, atol=1e-5, rtol=0)
    # the same generator seed draws the same uniforms on both paths
    a = model.generate(B, length=T, generator=torch.Generator().manual_seed(3), method="naive", **cond)
    b = model.generate(B, length=T, generator=torch.Generator().manual_seed(3), **cond)
    torch.testing.assert_close(a, b, atol=1e-5, rtol=0)
    other = model.generate(B, length=T, generator=torch.Generator().manual_seed(4), **cond)
    assert not torch.equal(other, b)


def test_different_lengths_batched_equal_each_alone():
    model = tiny("mulaw", 3, local=True, glob=True)
    lengths = [13, 40, 1, 27]
    B, T = len(lengths), max(lengths)
    cond = conds(model, B, T)
    u = torch.rand(B, T, 1, generator=torch.Generator().manual_seed(7))
    batch = model.generate(lengths, uniforms=u, **cond)
    naive = model.generate(lengths, uniforms=u, method="naive", **cond)
    assert batch.shape == (B, T) and torch.equal(batch, naive)
    silence = int(model.silence())
    for i, n in enumerate(lengths):
        alone = model.generate(1, length=n, uniforms=u[i:i + 1, :n], **{k: v[i:i + 1] for k, v in cond.items()})
        assert torch.equal(batch[i, :n], alone[0])
        assert (batch[i, n:] == silence).all()                            # padded with silence


def test_temperature_prompt_and_sample_contract():
    model = tiny("mulaw", 2)
    prompt = torch.full((30,), -1, dtype=torch.long)
    prompt[:10] = torch.arange(100, 110)
    x = model.sample(2, prompt=prompt, generator=torch.Generator().manual_seed(0))  # ARModel.sample
    assert x.shape == (2, 40)
    assert torch.equal(x[:, :10], torch.arange(100, 110).expand(2, 10))
    naive = model.generate(2, prompt=prompt, generator=torch.Generator().manual_seed(0), method="naive")
    assert torch.equal(x, naive)
    u = torch.rand(4, 40, 1, generator=torch.Generator().manual_seed(1))
    cold = model.generate(4, uniforms=u, temperature=0.01)
    assert torch.equal(cold, model.generate(4, greedy=True))               # T -> 0 is greedy here
    with pytest.raises(ValueError, match="temperature"):
        model.generate(1, temperature=0.0)


# ---- data and conditioning checks ---------------------------------------------------------------
def test_encode_decode_and_loss_for_every_head():
    wav = torch.linspace(-1, 1, 101)[None]
    for head, bits, tol in [("mulaw", 8, 0.04), ("mol", 8, 1 / 255), ("mol", 16, 1 / 65535), ("gaussian", 8, 0)]:
        model = tiny(head, bits=bits)
        x = model.encode(wav)
        assert torch.allclose(model.decode(x), wav, atol=tol + 1e-6)
        if model.head.discrete:
            assert x.dtype == torch.long and x.min() == 0 and x.max() == 2 ** bits - 1
        loss, metrics = model.loss(x)
        loss.backward()
        assert torch.isfinite(loss) and math.isfinite(metrics["bits_per_dim"])
        with pytest.raises(ValueError, match=r"\[-1, 1\]"):
            model.encode(wav * 1.5)


def test_upsampling_scale_must_equal_hop():
    with pytest.raises(ValueError, match="hop_length is 256"):
        WaveNet(WaveNetConfig(cond_channels=80, hop_length=256, upsample_scales=(4, 4, 4)))
    model = tiny(local=True)
    up = model.upsample_cond(torch.randn(2, C, 5), 20)
    assert up.shape == (2, C, 20)


def test_conditioning_errors_are_clear():
    model = tiny(local=True, glob=True)
    x = random_x(model, 2, 16)
    c, g = torch.randn(2, C, 4), torch.tensor([0, 2])
    with pytest.raises(ValueError, match="needs local conditioning"):
        model(x, g=g)
    with pytest.raises(ValueError, match="needs global conditioning"):
        model(x, c=c)
    with pytest.raises(ValueError, match="fewer than"):
        model(x, c=c[..., :3], g=g)
    with pytest.raises(ValueError, match=r"c\[B, 5, frames\]"):
        model(x, c=torch.randn(2, 7, 4), g=g)
    with pytest.raises(ValueError, match="speaker ids"):
        model(x, c=c, g=torch.tensor([0, 3]))
    with pytest.raises(ValueError, match="takes no local"):
        tiny()(x, c=c)
    assert model.generate(g=g, c=c).shape == (2, 4 * HOP)                  # length from the frames


def test_save_and_load_round_trip(tmp_path):
    import arsound

    model = tiny("mol", 3, local=True, glob=True, weight_norm=True)
    x, cond = random_x(model, 2, 24), conds(model, 2, 24)
    arsound.save_pretrained(model, tmp_path / "wn")
    loaded = arsound.load(tmp_path / "wn").eval()
    assert isinstance(loaded, WaveNet) and loaded.config == model.config
    with torch.no_grad():
        assert torch.equal(loaded(x, **cond), model(x, **cond))


@pytest.mark.parametrize("head", ["mulaw", "mol", "gaussian", "gmm"])
def test_runs_in_the_dtype_of_its_parameters(head):
    """After ``.double()`` the network and the cached generator run in float64 (log-probs equal float32's
    within 1e-4, cached == naive draws); under bf16 autocast the log-probs stay finite and within 1 %."""
    model = tiny(head, 3, local=True, glob=True)
    B, T = 2, 30
    cond = conds(model, B, T)
    x = random_x(model, B, T)
    with torch.no_grad():
        lp32 = model.log_prob(x, **cond)
        m64 = tiny(head, 3, local=True, glob=True).double()
        lp64 = m64.log_prob(x if m64.head.discrete else x.double(), **cond)
        assert lp64.dtype == torch.float64
        torch.testing.assert_close(lp64, lp32.double(), rtol=1e-4, atol=1e-4)
        u = torch.rand(B, T, m64.head.num_uniforms, generator=torch.Generator().manual_seed(3))
        cached, naive = (m64.generate(B, length=T, uniforms=u, method=m, **cond) for m in ("cached", "naive"))
        assert torch.equal(cached, naive) if m64.head.discrete else torch.allclose(cached, naive, atol=1e-9)
        with torch.autocast("cpu", dtype=torch.bfloat16):
            lp16 = model.log_prob(x, **cond)
        assert torch.isfinite(lp16).all()
        torch.testing.assert_close(lp16.float(), lp32, rtol=0.01, atol=0.5)


# ---- overfit ------------------------------------------------------------------------------------
def test_overfit_three_tone_chord():
    """Memorize 1000 samples of a 250 + 375 + 500 Hz chord at 8 kHz; sampled audio keeps the tones."""
    sr, T = 8000, 1000
    wav = chord(T, sr)
    torch.manual_seed(0)
    model = WaveNet(WaveNetConfig(head="mulaw", layers=6, cycles=2, residual_channels=16, gate_channels=32,
                                  skip_channels=32, sample_rate=sr, length=T))
    first, last = overfit(model, model.encode(wav)[None])
    assert first > 5.0 and last < 0.5                                      # ln 256 = 5.55 nats -> memorized
    y = model.decode(model.generate(1, generator=torch.Generator().manual_seed(0)))[0]
    assert tone_share(y, sr, width=12) >= 0.7                              # +- 1.5 bins around each tone


# ---- streaming ----------------------------------------------------------------------------------
def test_stream_pieces_join_into_one_run():
    """Pieces of any size join into what one run gives: the cached state, the last draws, the uniforms (drawn
    time-major) and a prompt carry over; conditioning given as frame blocks equals the whole tensor."""
    model = tiny("mulaw", 3, local=True, glob=True)
    B, T = 3, 70
    cond = conds(model, B, T)
    prompt = torch.full((B, 20), -1, dtype=torch.long)
    prompt[:, 3:9] = 100
    whole = model.generate(B, length=T, generator=torch.Generator().manual_seed(1), prompt=prompt, **cond)
    naive = model.generate(B, length=T, generator=torch.Generator().manual_seed(1), prompt=prompt, method="naive",
                           **cond)
    assert torch.equal(whole, naive) and (whole[:, 3:9] == 100).all()
    for chunk in (1, 7, 33, 1000):
        pieces = list(model.stream(B, length=T, generator=torch.Generator().manual_seed(1), prompt=prompt,
                                   chunk=chunk, **cond))
        assert all(p.shape[1] <= chunk for p in pieces) and torch.equal(torch.cat(pieces, 1), whole)
    c = cond["c"][..., :T // HOP]
    ref = model.generate(B, c=c, g=cond["g"], generator=torch.Generator().manual_seed(2))
    blocks = (c[..., i:i + 3] for i in range(0, c.shape[-1], 3))
    got = torch.cat(list(model.stream(B, c=blocks, g=cond["g"], generator=torch.Generator().manual_seed(2),
                                      chunk=11)), 1)
    assert torch.equal(got, ref)
    with pytest.raises(ValueError, match="conditioning given as blocks sets the length"):
        next(model.stream(B, c=iter([c]), g=cond["g"], length=5))
