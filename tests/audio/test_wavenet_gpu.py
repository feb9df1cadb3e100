"""WaveNet generation on a CUDA device (``benchmarks/gpu.sh`` runs it; skipped without one): at the "medium" preset,
past its receptive field, the per-step logits of the cached step, the fused Triton kernel and the step captured as a
CUDA graph equal the full forward's on the generated sequence (the graph's also at "mol24"), ``method="auto"`` takes
the Triton kernel in ``generate`` and the graph in ``stream``."""
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


@pytest.mark.parametrize("head", ["mulaw", "mol"])
@torch.inference_mode()
def test_cuda_graph_follows_the_full_forward_and_the_cached_step(head, medium):
    """The step captured as one CUDA graph, replayed per sample over blocks: its params equal the full forward's
    on what it drew, and its greedy run is the cached step's; ``method="auto"`` streams through it."""
    from arsound.audio.wavenet_graph import GraphWaveNet

    model = medium if head == "mulaw" else WaveNet(WaveNetConfig(**WaveNet.presets["mol24"])).cuda().eval()
    with model.streaming():
        eng = GraphWaveNet(model, B, None, None)
        assert eng.capture
        u = torch.rand(T, B, model.head.num_uniforms, device="cuda", generator=torch.Generator("cuda").manual_seed(2))
        x, params = eng.run(T, u, logits=True)
    assert eng.graph is not None
    torch.testing.assert_close(params.transpose(0, 1), model(x.t()), atol=1e-3, rtol=1e-3)
    greedy = {m: model.generate(B, length=600, greedy=True, method=m) for m in ("cached", "graph")}
    torch.testing.assert_close(greedy["graph"], greedy["cached"], atol=0, rtol=0)
    s = {m: torch.cat(list(model.stream(B, length=600, method=m, generator=torch.Generator("cuda").manual_seed(0))), 1)
         for m in ("auto", "graph")}
    torch.testing.assert_close(s["auto"], s["graph"], atol=0, rtol=0)
