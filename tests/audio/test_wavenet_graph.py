"""The sync-free WaveNet step (``wavenet_graph.GraphWaveNet``), run eagerly on the CPU: the params of every step
equal the full forward's, greedy and sampled runs (in pieces, over several blocks, with frame blocks) equal the
cached step's, and what it does not cover is refused in one line. Its CUDA-graph capture is checked by
``tests/audio/test_wavenet_gpu.py`` where a GPU exists."""
from __future__ import annotations

import pytest
import torch

from arsound.audio import wavenet_graph
from arsound.audio.wavenet_fast import FrameCond
from arsound.audio.wavenet_graph import GraphWaveNet
from tests.audio.test_wavenet import conds, tiny
from tests.audio.test_wavenet_native import check_runs_equal_cached

SHAPES = [(2, True, True), (3, False, True), (3, True, False), (2, False, False)]


@pytest.mark.parametrize("head", ["mulaw", "mol"])
@pytest.mark.parametrize("k,local,glob", SHAPES)
@pytest.mark.parametrize("greedy", [True, False])
def test_step_params_equal_the_full_forward(head, k, local, glob, greedy, monkeypatch):
    """Two runs (the second across block edges: blocks of 7 steps) of what the step drew, then the full forward
    of those samples: the same params at every step."""
    monkeypatch.setattr(wavenet_graph, "BLOCK", 7)
    model = tiny(head, k, local, glob)
    B, T = 3, 37
    cond = conds(model, B, T)
    u = torch.rand(T, B, model.head.num_uniforms, generator=torch.Generator().manual_seed(5))
    with model.streaming(), torch.inference_mode():
        eng = GraphWaveNet(model, B, FrameCond(model, cond["c"]) if local else None, cond.get("g"))
        x1, p1 = eng.run(10, None if greedy else u[:10], greedy=greedy, logits=True)
        x2, p2 = eng.run(T - 10, None if greedy else u[10:], greedy=greedy, logits=True)
    x, params = torch.cat([x1, x2]).t(), torch.cat([p1, p2]).transpose(0, 1)
    with torch.no_grad():
        full = model(x, **cond)
    torch.testing.assert_close(params, full, atol=1e-5, rtol=1e-5)
    assert len(x.unique()) > 1


@pytest.mark.parametrize("head,k,local,glob", [("mulaw", 2, True, True), ("mulaw", 3, False, True),
                                               ("mol", 2, True, True), ("mol", 3, False, False)])
def test_graph_runs_equal_the_cached_step(head, k, local, glob, monkeypatch):
    monkeypatch.setattr(wavenet_graph, "BLOCK", 6)                            # many blocks per piece
    check_runs_equal_cached(tiny(head, k, local, glob), "graph", local)


def test_what_it_does_not_cover_is_one_line():
    with pytest.raises(ValueError, match="method='graph' covers the mu-law and mixture heads"):
        tiny("gaussian", 2).generate(1, length=8, method="graph")
    mulaw = tiny("mulaw", 2)
    with pytest.raises(ValueError, match="method='graph' covers"):
        mulaw.generate(1, length=8, method="graph", prompt=torch.tensor([[3, 4]]))
    with pytest.raises(ValueError, match="method='graph' covers"):
        mulaw.generate([8, 5], method="graph")
    with pytest.raises(ValueError, match="method='graph' covers"):
        tiny("mulaw", 2, local=True, lpc_order=4, preemphasis=0.0).generate(1, length=8, method="graph",
                                                                           **conds(tiny("mulaw", 2, local=True), 1, 8))
    with pytest.raises(ValueError, match="precision='bf16' is the native step's"):
        mulaw.generate(1, length=8, method="graph", precision="bf16")
    with pytest.raises(ValueError, match="a CUDA graph needs the model on a CUDA device"):
        GraphWaveNet(mulaw, 1, None, None, capture=True)
