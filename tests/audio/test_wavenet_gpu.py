"""WaveNet generation on a CUDA device (``benchmarks/gpu.sh`` runs it; skipped without one): at the "medium" preset,
past its receptive field, the cached step's and the fused Triton kernel's per-step logits equal the full forward's
on the generated sequence, and ``method="auto"`` takes the Triton kernel there."""
from __future__ import annotations

import pytest
import torch

from arsound.audio import wavenet_triton
from arsound.audio.wavenet import WaveNet, WaveNetConfig
from arsound.audio.wavenet_fast import CachedWaveNet

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
B, T = 4, 2600                                                   # past the 2047-sample receptive field


@pytest.fixture(scope="module")
def medium():
    torch.manual_seed(0)
    return WaveNet(WaveNetConfig(**WaveNet.presets["medium"])).cuda().eval()


@torch.inference_mode()
def test_cached_step_follows_the_full_forward(medium):
    x = medium.generate(B, length=T, method="cached", generator=torch.Generator("cuda").manual_seed(0))
    with medium.streaming():
        eng = CachedWaveNet(medium, B)
        steps = [eng.step(None if t == 0 else x[:, t - 1]).clone() for t in range(T)]
    torch.testing.assert_close(torch.stack(steps, 1), medium(x), atol=1e-3, rtol=1e-3)


@pytest.mark.skipif(not wavenet_triton.available(), reason="needs triton")
@torch.inference_mode()
def test_triton_follows_the_full_forward_and_auto_takes_it(medium):
    u = torch.rand(B, T, 1, device="cuda", generator=torch.Generator("cuda").manual_seed(1))
    logits = torch.full((B, T, 256), float("nan"), device="cuda")
    x = wavenet_triton.run_triton(medium, torch.full((B,), T), None, None, u, False, 1.0, logits=logits)
    torch.testing.assert_close(logits, medium(x), atol=1e-3, rtol=1e-3)
    assert medium.triton_covers(None, medium.device)
    torch.testing.assert_close(medium.generate(B, length=T, uniforms=u), x.long(), atol=0, rtol=0)
