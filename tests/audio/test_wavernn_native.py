"""The fused native WaveRNN step (``wavernn_step.c`` through ``core/native.py``): teacher-forced logits equal the
full forward's, greedy and sampled runs equal the PyTorch step's, and without a compiler everything falls back."""
from __future__ import annotations

import warnings

import pytest
import torch

from arsound.audio.wavernn import NativeWaveRNN
from arsound.core import native
from tests.audio.test_wavernn import conds, tiny

needs_native = pytest.mark.skipif(not NativeWaveRNN.available(), reason="no C compiler: the native step is off")


@needs_native
@pytest.mark.parametrize("local,glob", [(True, True), (False, False)])
def test_forced_logits_equal_the_full_forward(local, glob):
    model = tiny(local, glob)
    B, T = 3, 13
    x = torch.randint(0, 256, (B, 2 * T), generator=torch.Generator().manual_seed(6))
    cond = conds(model, B, T)
    with torch.no_grad():
        full = model(x, **cond)                                              # (B, 2T, 256)
        ctx = model.conditioning(cond.get("c"), cond.get("g"), T, B)         # (B, T, Cc) or None
    kernel = NativeWaveRNN(model, B)
    forced = x.view(B, T, 2).permute(1, 2, 0)                                # (T, 2, B)
    out, logits = kernel.run(None if ctx is None else ctx.transpose(0, 1), T, greedy=True, forced=forced,
                             logits=True)
    assert torch.equal(out, forced)
    torch.testing.assert_close(logits.permute(2, 0, 1, 3).reshape(B, 2 * T, 256), full, atol=1e-5, rtol=1e-5)


@needs_native
@pytest.mark.parametrize("local,glob", [(True, True), (False, True)])
def test_native_runs_equal_the_pytorch_step(local, glob):
    model = tiny(local, glob)
    B, T = 2, 40
    cond = conds(model, B, T)
    greedy = {m: model.generate(B, length=T, greedy=True, method=m, **cond) for m in ("cached", "native")}
    assert torch.equal(greedy["cached"], greedy["native"])
    for seed in (0, 1):
        a, b = (model.generate(B, length=T, method=m, generator=torch.Generator().manual_seed(seed),
                               temperature=0.8, **cond) for m in ("cached", "native"))
        assert torch.equal(a, b), seed
    pieces = torch.cat(list(model.stream(B, length=T, chunk=7, method="native",
                                         generator=torch.Generator().manual_seed(0), temperature=0.8, **cond)), 1)
    assert torch.equal(pieces, model.generate(B, length=T, method="cached", temperature=0.8,
                                              generator=torch.Generator().manual_seed(0), **cond))


def test_without_a_compiler_the_pytorch_step_runs(monkeypatch, tmp_path):
    model = tiny()
    native.library.cache_clear()
    monkeypatch.setenv("ARSOUND_NATIVE", "0")
    try:
        assert not NativeWaveRNN.available()
        x = model.generate(1, length=8, greedy=True, **conds(model, 1, 8))           # auto: the PyTorch step
        assert x.shape == (1, 16)
        with pytest.raises(RuntimeError, match="native WaveRNN step is unavailable"):
            model.generate(1, length=8, greedy=True, method="native", **conds(model, 1, 8))
        monkeypatch.setenv("ARSOUND_NATIVE", "1")
        monkeypatch.setenv("ARSOUND_CACHE", str(tmp_path))
        bad = tmp_path / "broken.c"
        bad.write_text("this is not C\n")
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            assert native.library(bad) is None
        assert any("building broken.c failed" in str(w.message) for w in caught)
        assert not list((tmp_path / "native").glob("*.so"))                   # nothing half-written
    finally:
        native.library.cache_clear()


@pytest.mark.skipif(native.compiler() is None, reason="no C compiler")
def test_builds_into_an_empty_cache(monkeypatch, tmp_path):
    """A fresh machine: both kernels compile into an empty cache, whole files only."""
    from arsound.audio.wavenet_fast import NativeWaveNet

    native.library.cache_clear()
    monkeypatch.setenv("ARSOUND_CACHE", str(tmp_path))
    try:
        for src in (NativeWaveRNN.SOURCE, NativeWaveNet.SOURCE):
            assert native.library(src) is not None
        built = sorted(p.name.split("-")[0] for p in (tmp_path / "native").iterdir())
        assert built == ["wavenet_step", "wavernn_step"]
    finally:
        native.library.cache_clear()
