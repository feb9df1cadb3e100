"""The fused native WaveNet step (``wavenet_step.c``, ``wavenet_fast.NativeWaveNet``): teacher-forced logits equal
the full forward's, greedy and sampled runs (in pieces, with frame blocks) equal the cached PyTorch step's, and
what it does not cover is refused in one line."""
from __future__ import annotations

import pytest
import torch

from arsound.audio.wavenet_fast import FrameCond, NativeWaveNet
from tests.audio.test_wavenet import conds, random_x, tiny

needs_native = pytest.mark.skipif(not NativeWaveNet.available(), reason="no C compiler: the native step is off")


@needs_native
@pytest.mark.parametrize("k,local,glob", [(2, True, True), (3, False, True), (3, True, False), (2, False, False)])
def test_forced_logits_equal_the_full_forward(k, local, glob):
    model = tiny("mulaw", k, local, glob)
    B, T = 3, 37
    x, cond = random_x(model, B, T), conds(model, B, T)
    with torch.no_grad():
        full = model(x, **cond)                                               # (B, T, 256)
    with model.streaming(), torch.inference_mode():
        kernel = NativeWaveNet(model, B, FrameCond(model, cond["c"]) if local else None, cond.get("g"))
        out1, lo1 = kernel.run(20, greedy=True, forced=x[:, :20].t(), logits=True)   # in two pieces
        out2, lo2 = kernel.run(T - 20, greedy=True, forced=x[:, 20:].t(), logits=True)
    assert torch.equal(torch.cat([out1, out2]).t(), x)
    torch.testing.assert_close(torch.cat([lo1, lo2]).transpose(0, 1), full, atol=1e-5, rtol=1e-5)


@needs_native
@pytest.mark.parametrize("k,local,glob", [(2, True, True), (3, False, True)])
@pytest.mark.parametrize("small_blocks", [False, True])
def test_native_runs_equal_the_cached_step(k, local, glob, small_blocks, monkeypatch):
    """Also with gate-conditioning blocks of 5 steps, so one piece spans many blocks."""
    from arsound.audio import wavenet_fast

    model = tiny("mulaw", k, local, glob)
    if small_blocks:
        cfg = model.config
        monkeypatch.setattr(wavenet_fast, "COND_BLOCK_BYTES", 4 * 3 * cfg.layers * cfg.gate_channels * 5)
    B, T = 3, 70
    cond = conds(model, B, T)
    greedy = {m: model.generate(B, length=T, greedy=True, method=m, **cond) for m in ("cached", "native")}
    assert torch.equal(greedy["cached"], greedy["native"]) and len(greedy["native"].unique()) > 1
    for seed in (0, 1):
        a, b = (model.generate(B, length=T, method=m, generator=torch.Generator().manual_seed(seed), **cond)
                for m in ("cached", "native"))
        assert torch.equal(a, b), seed
    pieces = torch.cat(list(model.stream(B, length=T, chunk=9, method="native",
                                         generator=torch.Generator().manual_seed(0), **cond)), 1)
    assert torch.equal(pieces, model.generate(B, length=T, method="cached", generator=torch.Generator().manual_seed(0),
                                              **cond))
    if local:                                                                 # conditioning as frame blocks
        c = cond["c"][..., :T // 4]
        ref = model.generate(B, c=c, g=cond["g"], method="cached", generator=torch.Generator().manual_seed(3))
        blocks = iter([c[..., :5], c[..., 5:6], c[..., 6:]])
        got = torch.cat(list(model.stream(B, c=blocks, g=cond["g"], method="native", chunk=11,
                                          generator=torch.Generator().manual_seed(3))), 1)
        assert torch.equal(got, ref)


def test_what_it_does_not_cover_is_one_line():
    model = tiny("mol", 2, local=True)
    cond = conds(model, 1, 8)
    with pytest.raises(ValueError, match="method='native' covers the mu-law head"):
        model.generate(1, length=8, method="native", **cond)
    mulaw = tiny("mulaw", 2)
    with pytest.raises(ValueError, match="method='native' covers"):
        mulaw.generate(1, length=8, method="native", prompt=torch.tensor([[3, 4]]))
    with pytest.raises(ValueError, match="method='native' covers"):
        mulaw.generate([8, 5], method="native")
