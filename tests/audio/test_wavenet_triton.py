"""The fused Triton generator (``arsound.audio.wavenet_triton``) against the full forward and the cached
generator: compiled on a CUDA device where there is one (``benchmarks/gpu.sh``), else run by Triton's interpreter on
CPU tensors; skipped without triton."""
from __future__ import annotations

import pytest
import torch

from arsound.audio import wavenet_triton

from .test_wavenet import conds, tiny

pytestmark = pytest.mark.skipif(not wavenet_triton.available(), reason="needs triton (pip install triton)")
DEV = "cuda" if torch.cuda.is_available() else "cpu"


def on_dev(model, cond: dict) -> tuple:
    return model.to(DEV), {k: v.to(DEV) for k, v in cond.items()}


@pytest.mark.parametrize("k,local,glob,R", [(2, True, True, 8), (3, True, False, 6), (3, False, True, 8)])
def test_fused_logits_equal_full_forward_and_draws_equal_cached(k, local, glob, R):
    """Every step's logits == the full (teacher-forced) forward on the generated sequence (<= 1e-4); with
    injected uniforms and greedily the samples equal the cached generator's. R = 6 checks the zero padding
    to powers of two; T crosses several launches (COND_BLOCK_BYTES shrunk)."""
    model = tiny("mulaw", k, local, glob, residual_channels=R)
    B, T = 2, 24
    model, cond = on_dev(model, conds(model, B, T))
    u = torch.rand(B, T, 1, generator=torch.Generator().manual_seed(5)).to(DEV)
    lengths = torch.full((B,), T)
    c_up = model.upsample_cond(cond["c"], T) if local else None
    logits = torch.full((B, T, 256), float("nan"), device=DEV)
    saved = wavenet_triton.COND_BLOCK_BYTES
    wavenet_triton.COND_BLOCK_BYTES = 4 * B * model.config.layers * 16 * 7      # 7 steps per launch
    try:
        x = wavenet_triton.run_triton(model, lengths, c_up, cond.get("g"), u, False, 1.0, logits=logits)
    finally:
        wavenet_triton.COND_BLOCK_BYTES = saved
    full = model(x, **cond)                                                     # (B, T, 256)
    torch.testing.assert_close(logits, full, atol=1e-4, rtol=1e-4)
    assert len(x.unique()) > 5
    assert torch.equal(x, model.generate(B, length=T, uniforms=u, method="cached", **cond))
    greedy = model.generate(B, length=T, greedy=True, method="triton", **cond)
    assert torch.equal(greedy, model.generate(B, length=T, greedy=True, method="cached", **cond))
    if DEV == "cuda":                                                           # method="auto" takes it there
        assert torch.equal(greedy, model.generate(B, length=T, greedy=True, **cond))


def test_temperature_lengths_and_refusals():
    model = tiny("mulaw", 2, local=True, glob=True)
    model, cond = on_dev(model, conds(model, 3, 16))
    u = torch.rand(3, 16, 1, generator=torch.Generator().manual_seed(1)).to(DEV)
    a = model.generate(3, length=16, uniforms=u, temperature=0.5, method="triton", **cond)
    assert torch.equal(a, model.generate(3, length=16, uniforms=u, temperature=0.5, method="cached", **cond))
    lengths = [16, 5, 11]
    a = model.generate(lengths, uniforms=u, temperature=2.0, method="triton", **cond)
    assert torch.equal(a, model.generate(lengths, uniforms=u, temperature=2.0, method="cached", **cond))
    with pytest.raises(ValueError, match="mulaw"):
        tiny("mol", 2).generate(1, length=4, method="triton")
    with pytest.raises(ValueError, match="prompt"):
        tiny("mulaw", 2).generate(1, length=4, method="triton", prompt=torch.tensor([3, 4]))
