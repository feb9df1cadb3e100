"""Sparse attention masks, the attention op, the KV cache and cached == full multi-head attention."""
import math
import warnings

import pytest
import torch

from arsound.core.attention import (PATTERNS, KVCache, MultiHeadAttention, attend, attend_reference, causal_mask,
                                    fixed_mask, flex_block_mask, kv_cache_bytes, local_mask, pattern_mask,
                                    pattern_rows, strided_mask)
from arsound.core.streaming import streaming

CASES = [("causal", {}), ("local", {"block": 4}), ("strided", {"stride": 3}), ("strided", {"stride": 5}),
         ("fixed", {"stride": 4}), ("fixed", {"stride": 4, "c": 2}), ("row", {"block": 5}),
         ("column", {"block": 4}), ("prev_row", {"block": 3}), ("prev_row", {"block": 5})]
IDS = [n + "".join(f"-{k}{v}" for k, v in kw.items()) for n, kw in CASES]


def _naive_mask(name, T, **kw):
    """The documented rules, one pair at a time."""
    m = torch.zeros(T, T, dtype=torch.bool)
    for i in range(T):
        for j in range(i + 1):
            if name == "causal":
                ok = True
            elif name == "local":
                ok = j // kw["block"] >= i // kw["block"] - 1
            elif name == "strided":
                s = kw["stride"]
                ok = i - s < j or (i - j) % s == 0
            elif name == "row":                                  # Jukebox: the same block of `block` positions
                ok = j // kw["block"] == i // kw["block"]
            elif name == "column":                               # the same offset within blocks
                ok = j % kw["block"] == i % kw["block"]
            elif name == "prev_row":                             # the previous block (and itself)
                ok = j // kw["block"] == i // kw["block"] - 1 or i == j
            else:
                s, c = kw["stride"], kw.get("c", 1)
                ok = j // s == i // s or j % s >= s - c
            m[i, j] = ok
    return m


@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_mask_matches_rule(name, kw):
    T = 29
    m = pattern_mask(name, T, **kw)
    assert m.dtype == torch.bool and m.shape == (T, T)
    assert torch.equal(m, _naive_mask(name, T, **kw))
    assert not (m & ~torch.ones(T, T, dtype=torch.bool).tril()).any()  # causal
    assert m.diagonal().all()                                          # sees itself
    rows = pattern_rows(name, [7, 20], 25, **kw)
    assert torch.equal(rows, m[[7, 20], :25])


def test_named_builders():
    T = 16
    assert torch.equal(causal_mask(T), torch.ones(T, T, dtype=torch.bool).tril())
    assert torch.equal(local_mask(T, 4), pattern_mask("local", T, block=4))
    assert torch.equal(fixed_mask(T, 4, 2), pattern_mask("fixed", T, stride=4, c=2))
    s = strided_mask(T, 4)
    assert s[13].nonzero().flatten().tolist() == [1, 5, 9, 10, 11, 12, 13]  # column + row
    f = fixed_mask(T, 4)
    assert f[13].nonzero().flatten().tolist() == [3, 7, 11, 12, 13]         # summaries + own block
    loc = local_mask(T, 4)
    assert loc[13].nonzero().flatten().tolist() == list(range(8, 14))       # previous + own block
    with pytest.raises(ValueError, match="unknown attention pattern"):
        pattern_mask("dilated", 4)
    with pytest.raises(ValueError, match="stride"):
        strided_mask(4, 0)


def _naive_attend(q, k, v, mask):
    scores = q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])
    scores = scores.masked_fill(~mask, float("-inf"))
    return scores.softmax(-1) @ v


@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_attend_matches_naive(name, kw):
    torch.manual_seed(0)
    T = 21
    q, k, v = torch.randn(3, 2, 3, T, 8).unbind(0)
    m = pattern_mask(name, T, **kw)
    torch.testing.assert_close(attend(q, k, v, m), _naive_attend(q, k, v, m), atol=1e-5, rtol=0)


def test_attend_causal_flag_is_bottom_right():
    torch.manual_seed(0)
    q, k, v = torch.randn(1, 2, 5, 8), torch.randn(1, 2, 12, 8), torch.randn(1, 2, 12, 8)
    rows = causal_mask(12)[7:]
    torch.testing.assert_close(attend(q, k, v, causal=True), _naive_attend(q, k, v, rows), atol=1e-5, rtol=0)
    qf = torch.randn(1, 2, 12, 8)
    torch.testing.assert_close(attend(qf, k, v, causal=True), _naive_attend(qf, k, v, causal_mask(12)),
                               atol=1e-5, rtol=0)


def test_flex_block_mask_equals_dense():
    torch.manual_seed(0)
    T = 48
    q, k, v = torch.randn(3, 1, 2, T, 16).unbind(0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # eager flex on CPU warns that it is unfused
        for name, kw in [("strided", {"stride": 5}), ("fixed", {"stride": 8, "c": 2}), ("row", {"block": 8}),
                         ("column", {"block": 8}), ("prev_row", {"block": 8}), ("prev_row", {"block": 6})]:
            bm = flex_block_mask(name, T, block_size=16, **kw)
            m = pattern_mask(name, T, **kw)
            reference = attend_reference(q, k, v, m)
            torch.testing.assert_close(attend(q, k, v, block_mask=bm), reference, atol=1e-5, rtol=0)
            torch.testing.assert_close(attend(q, k, v, m), reference, atol=1e-5, rtol=0)


@pytest.mark.parametrize("name,kw,most,capacity", [("row", {"block": 6}, 6, 6), ("prev_row", {"block": 6}, 12, 12),
                                                    ("local", {"block": 6}, 12, 12), ("column", {"block": 6}, 40, 64)])
def test_the_cache_keeps_only_what_its_pattern_reads(name, kw, most, capacity):
    """Step by step over 40 positions: a row layer never holds more than one block of keys, prev-row and local
    two, column all of them; the outputs still equal the full forward. Chunks longer than the window grow the
    buffer (and stay exact)."""
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 2, name, max_len=64, **kw).eval()
    x = torch.randn(2, 40, 16)
    full = mha(x)
    with torch.no_grad(), streaming(mha):
        held, steps = [], []
        for t in range(40):
            steps.append(mha(x[:, t:t + 1]))
            cache = mha.state["kv"]
            held.append(cache.length - cache.start)
        assert max(held) == most and mha.state["kv"].capacity == capacity
    torch.testing.assert_close(torch.cat(steps, 1), full, atol=1e-5, rtol=0)
    with torch.no_grad(), streaming(mha):
        chunks, capacities, held_bytes = [], [], []
        for a, b in ((0, 3), (3, 20), (20, 21), (21, 40)):
            chunks.append(mha(x[:, a:b]))
            capacities.append(mha.state["kv"].capacity)
            held_bytes.append(kv_cache_bytes(mha))
        assert capacities[1] >= 17 and capacities[2] == capacity  # grown for the chunk, back to the window after
        assert held_bytes[2] == 2 * 2 * 2 * capacity * 8 * 4      # k and v, [B=2, heads=2, capacity, 8] in fp32
    torch.testing.assert_close(torch.cat(chunks, 1), full, atol=1e-5, rtol=0)


def test_mha_flex_forward_equals_sdpa():
    torch.manual_seed(0)
    x = torch.randn(2, 32, 16)
    with warnings.catch_warnings(), torch.no_grad():  # (FlexAttention has no backward on the CPU)
        warnings.simplefilter("ignore", UserWarning)
        for name, kw in [("row", {"block": 8}), ("column", {"block": 8}), ("prev_row", {"block": 8})]:
            dense = MultiHeadAttention(16, 2, name, max_len=32, **kw).eval()
            flex = MultiHeadAttention(16, 2, name, max_len=32, flex=True, **kw).eval()
            flex.load_state_dict(dense.state_dict())
            torch.testing.assert_close(flex(x), dense(x), atol=1e-5, rtol=0)


def test_kv_cache_in_place_and_overflow():
    cache = KVCache(2, 3, 6, 4)
    ptr = cache.k.data_ptr()
    k1, v1 = torch.randn(2, 2, 3, 3, 4).unbind(0)
    k, v = cache.append(k1, v1)
    assert k.shape == (2, 3, 3, 4) and cache.length == 3 and torch.equal(k, k1) and torch.equal(v, v1)
    k2, v2 = torch.randn(2, 2, 3, 1, 4).unbind(0)
    k, v = cache.append(k2, v2)
    assert k.data_ptr() == ptr and cache.k.data_ptr() == ptr  # a view of the preallocated tensor
    assert torch.equal(k, torch.cat([k1, k2], 2)) and torch.equal(v, torch.cat([v1, v2], 2))
    with pytest.raises(RuntimeError, match="overflow: 4 cached \\+ 3 new > capacity 6"):
        cache.append(*torch.randn(2, 2, 3, 3, 4).unbind(0))
    assert cache.length == 4  # a refused append changes nothing
    with pytest.raises(ValueError, match="expected"):
        cache.append(torch.randn(1, 3, 1, 4), torch.randn(1, 3, 1, 4))


@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_mha_causal_by_perturbation(name, kw):
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 2, name, max_len=32, **kw).eval()
    x = torch.randn(2, 20, 16)
    y = mha(x)
    for t in (0, 9, 19):
        x2 = x.clone()
        x2[:, t] += 1.0
        diff = (mha(x2) - y).abs().amax((0, 2))
        assert (diff[:t] == 0).all() and diff[t] > 0


@pytest.mark.parametrize("name,kw", CASES, ids=IDS)
def test_mha_cached_equals_full(name, kw):
    torch.manual_seed(0)
    mha = MultiHeadAttention(16, 4, name, max_len=32, **kw).eval()
    T = 23
    x = torch.randn(2, T, 16)
    full = mha(x)
    with torch.no_grad(), streaming(mha):
        steps = torch.cat([mha(x[:, t:t + 1]) for t in range(T)], 1)
        assert mha.state["kv"].length == T
    with torch.no_grad(), streaming(mha):
        chunks, t0 = [], 0
        for n in (5, 1, 7, 2, 8):
            chunks.append(mha(x[:, t0:t0 + n]))
            t0 += n
    assert mha.state == {}
    torch.testing.assert_close(steps, full, atol=1e-5, rtol=0)
    torch.testing.assert_close(torch.cat(chunks, 1), full, atol=1e-5, rtol=0)


def test_mha_limits():
    mha = MultiHeadAttention(8, 2, "strided", max_len=4, stride=2).eval()
    with pytest.raises(ValueError, match="max_len"):
        mha(torch.randn(1, 5, 8))
    with torch.no_grad(), streaming(mha):
        mha(torch.randn(1, 4, 8))
        with pytest.raises(RuntimeError, match="overflow"):
            mha(torch.randn(1, 1, 8))
    with pytest.raises(ValueError, match="divisible"):
        MultiHeadAttention(10, 3)
    with pytest.raises(TypeError):
        MultiHeadAttention(8, 2, "strided")  # stride missing
    assert set(PATTERNS) == {"causal", "local", "strided", "fixed", "row", "column", "prev_row"}
