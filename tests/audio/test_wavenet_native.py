"""The fused native WaveNet step (``wavenet_step.c``, ``wavenet_fast.NativeWaveNet``), mu-law and mixture heads:
teacher-forced logits equal the full forward's (also for widths that take every blocked product kernel, with the
streams over two threads), greedy and sampled runs (in pieces, with frame blocks, on one or two threads) equal the
cached PyTorch step's, bfloat16 weights stay within a stated tolerance, and what it does not cover is refused in
one line."""
from __future__ import annotations

import pytest
import torch

from arsound.audio.wavenet_fast import FrameCond, NativeWaveNet
from tests.audio.test_wavenet import conds, random_x, tiny

needs_native = pytest.mark.skipif(not NativeWaveNet.available(), reason="no C compiler: the native step is off")


WIDE = dict(residual_channels=64, gate_channels=128, skip_channels=72)  # 16-, 8- and 64-column blocks, and tails


def forced_params(model, B, T, local, threads=1, precision="fp32"):
    """Teacher-forced params from the native step in two pieces, and the full forward's: ``([B, T, P], [B, T, P])``."""
    x, cond = random_x(model, B, T), conds(model, B, T)
    with torch.no_grad():
        full = model(x, **cond)                                               # (B, T, P)
    with model.streaming(), torch.inference_mode():
        kernel = NativeWaveNet(model, B, FrameCond(model, cond["c"]) if local else None, cond.get("g"),
                               threads=threads, precision=precision)
        out1, lo1 = kernel.run(20, greedy=True, forced=x[:, :20].t(), logits=True)
        out2, lo2 = kernel.run(T - 20, greedy=True, forced=x[:, 20:].t(), logits=True)
    assert torch.equal(torch.cat([out1, out2]).t(), x)
    return torch.cat([lo1, lo2]).transpose(0, 1), full


@needs_native
@pytest.mark.parametrize("head", ["mulaw", "mol"])
@pytest.mark.parametrize("k,local,glob", [(2, True, True), (3, False, True), (3, True, False), (2, False, False)])
def test_forced_logits_equal_the_full_forward(head, k, local, glob):
    got, full = forced_params(tiny(head, k, local, glob), 3, 37, local)
    torch.testing.assert_close(got, full, atol=1e-5, rtol=1e-5)


@needs_native
@pytest.mark.parametrize("head,B", [("mulaw", 9), ("mol", 9), ("mulaw", 21)])
def test_wide_layers_on_two_threads(head, B):
    """Widths that take every product kernel and their tails; streams on 2 threads: 9 as 4 + 5 (a group of 4 and
    one alone), 21 as 10 + 11 (6 + 4, and 6 + 4 + 1)."""
    model = tiny(head, 3, local=True, glob=True, **WIDE)
    got, full = forced_params(model, B, 33, True, threads=2)
    torch.testing.assert_close(got, full, atol=1e-5, rtol=1e-5)


@needs_native
@pytest.mark.parametrize("head", ["mulaw", "mol"])
def test_bf16_weights_within_tolerance(head):
    """bfloat16 weights (8 mantissa bits) move the params by well under 5 % of their spread; fp32 sums."""
    model = tiny(head, 2, local=True, glob=True, **WIDE)
    got, full = forced_params(model, 4, 33, True, precision="bf16")
    err = (got - full).abs().max() / full.std()
    assert 0 < err < 0.05, err


@needs_native
@pytest.mark.parametrize("head,k,local,glob,threads", [("mulaw", 2, True, True, 1), ("mulaw", 3, False, True, 2),
                                                       ("mol", 2, True, True, 2), ("mol", 3, False, False, 1)])
@pytest.mark.parametrize("small_blocks", [False, True])
def test_native_runs_equal_the_cached_step(head, k, local, glob, threads, small_blocks, monkeypatch, request):
    """Also with gate-conditioning blocks of 5 steps, so one piece spans many blocks."""
    from arsound.audio import wavenet_fast

    before = torch.get_num_threads()                                          # the native step's thread count
    torch.set_num_threads(threads)
    request.addfinalizer(lambda: torch.set_num_threads(before))
    model = tiny(head, k, local, glob)
    if small_blocks:
        cfg = model.config
        monkeypatch.setattr(wavenet_fast, "COND_BLOCK_BYTES", 4 * 3 * cfg.layers * cfg.gate_channels * 5)
    check_runs_equal_cached(model, "native", local)


def check_runs_equal_cached(model, method: str, local: bool, B: int = 3, T: int = 70) -> None:
    """Greedy and sampled runs of ``method`` equal the cached step's: whole, in pieces, with frame blocks."""
    cond = conds(model, B, T)
    greedy = {m: model.generate(B, length=T, greedy=True, method=m, **cond) for m in ("cached", method)}
    assert torch.equal(greedy["cached"], greedy[method]) and len(greedy[method].unique()) > 1
    for seed in (0, 1):
        a, b = (model.generate(B, length=T, method=m, generator=torch.Generator().manual_seed(seed), **cond)
                for m in ("cached", method))
        assert torch.equal(a, b), seed
    pieces = torch.cat(list(model.stream(B, length=T, chunk=9, method=method,
                                         generator=torch.Generator().manual_seed(0), **cond)), 1)
    assert torch.equal(pieces, model.generate(B, length=T, method="cached", generator=torch.Generator().manual_seed(0),
                                              **cond))
    if local:                                                                 # conditioning as frame blocks
        c = cond["c"][..., :T // 4]
        ref = model.generate(B, c=c, g=cond["g"], method="cached", generator=torch.Generator().manual_seed(3))
        blocks = iter([c[..., :5], c[..., 5:6], c[..., 6:]])
        got = torch.cat(list(model.stream(B, c=blocks, g=cond["g"], method=method, chunk=11,
                                          generator=torch.Generator().manual_seed(3))), 1)
        assert torch.equal(got, ref)


def test_what_it_does_not_cover_is_one_line():
    model = tiny("gaussian", 2, local=True)
    cond = conds(model, 1, 8)
    with pytest.raises(ValueError, match="method='native' covers the mu-law and mixture heads"):
        model.generate(1, length=8, method="native", **cond)
    with pytest.raises(ValueError, match="precision='bf16' is the native step's"):
        model.generate(1, length=8, precision="bf16", **cond)
    mulaw = tiny("mulaw", 2)
    with pytest.raises(ValueError, match="unknown precision 'int4'"):
        mulaw.generate(1, length=8, precision="int4")
    with pytest.raises(ValueError, match="method='native' covers"):
        mulaw.generate(1, length=8, method="native", prompt=torch.tensor([[3, 4]]))
    with pytest.raises(ValueError, match="method='native' covers"):
        mulaw.generate([8, 5], method="native")


def test_auto_takes_triton_only_on_cuda_where_it_covers():
    from arsound.audio import wavenet_triton

    mulaw = tiny("mulaw", 2)
    assert mulaw.triton_covers() and not mulaw.triton_covers(torch.tensor([[3]]))
    assert mulaw.triton_covers(None, "cuda") == wavenet_triton.available()
    assert not mulaw.triton_covers(None, "cpu")
    assert not tiny("mol", 2).triton_covers(None, "cuda")
    assert not tiny("mulaw", 2, local=True, lpc_order=4, preemphasis=0.0).triton_covers(None, "cuda")
