"""Token sets: encoded codes equal the tokenizer's, an interrupted encoding resumes, stale tokens are refused,
windows carry the right upper codes, labels and timing; the count baselines are normalized and score what
they should."""
from __future__ import annotations

import math

import pytest
import soundfile as sf
import torch

from arsound.music.ngram import Bigram
from arsound.music.tokens import TokenSet, TokenWindows, encode_files
from tests.fakes import SR, music


@pytest.fixture(scope="module")
def token_set(vqvae, tmp_path_factory):
    root = tmp_path_factory.mktemp("tokens")
    entries = []
    for i, (name, inst) in enumerate([("a", "organ"), ("b", "piano"), ("c", "organ")]):
        sf.write(root / f"{name}.wav", music(0.3 + 0.1 * i, i).numpy(), SR, subtype="FLOAT")
        entries.append({"id": name, "path": root / f"{name}.wav", "labels": {"instrument": inst}})
    folder = encode_files(vqvae, entries, root / "train", name="tiny", label="instrument", progress=False)
    return folder, entries


def test_codes_equal_the_tokenizer_and_encoding_resumes(vqvae, token_set):
    folder, entries = token_set
    ts = TokenSet(folder)
    assert len(ts) == 3 and ts.classes == ["organ", "piano"] and [ts.labels(i) for i in range(3)] == [0, 1, 0]
    x, _ = sf.read(entries[1]["path"], dtype="float32")
    for got, want in zip(ts.codes(1), vqvae.encode(torch.from_numpy(x)[None])):
        assert torch.equal(got, want[0])
    stamp = (folder / "a.npz").stat().st_mtime_ns
    encode_files(vqvae, entries, folder, name="tiny", label="instrument", progress=False)   # again: kept
    assert (folder / "a.npz").stat().st_mtime_ns == stamp


def test_stale_tokens_are_refused(token_set):
    with pytest.raises(ValueError, match="stale"):
        TokenSet(token_set[0], weights="0000000000000000")
    with pytest.raises(FileNotFoundError, match="encode the split first"):
        TokenSet(token_set[0].parent / "nowhere")


def test_windows_align_upper_codes_labels_and_timing(token_set):
    ts = TokenSet(token_set[0])
    w = TokenWindows(ts, 0, 16, upper=True, labelled=True)
    assert w.ratio == 4 and len(w) == sum(n // 16 for n in w.lengths)
    for i in range(len(w)):
        item = w[i]
        f, start = w.windows[i]
        assert item["x"].shape == (16,) and item["upper"].shape == (4,) and int(item["start"]) == start
        assert torch.equal(item["upper"], ts.codes(f)[1][start // 4:start // 4 + 4])
        assert torch.equal(item["x"], ts.codes(f)[0][start:start + 16])
        assert int(item["total"]) == w.lengths[f] and int(item["label"]) == ts.labels(f)
    torch.manual_seed(0)
    rand = TokenWindows(ts, 0, 16, upper=True, random_start=True)
    starts = {int(rand[0]["start"]) for _ in range(30)}
    assert len(starts) > 3 and all(s % 4 == 0 for s in starts)
    with pytest.raises(ValueError, match="levels"):
        TokenWindows(ts, 1, 8, upper=True)                                # the top level has nothing above


def test_bigram_is_normalized_and_scores_by_hand():
    seqs = [torch.tensor([0, 1, 1, 2]), torch.tensor([2, 0])]
    bg = Bigram.fit(seqs, vocab=3, k=0.5)
    assert torch.allclose(bg.unigram.sum(), torch.tensor(1.0, dtype=torch.float64))
    assert torch.allclose(bg.transition.sum(1), torch.ones(3, dtype=torch.float64))
    # unigram counts 0:2 1:2 2:2 (+0.5 each) -> 1/3; pairs from 1: (1,1), (1,2) -> p(2|1) = 1.5 / 3.5
    assert bg.unigram[1] == pytest.approx(1 / 3) and bg.transition[1, 2] == pytest.approx(1.5 / 3.5)
    want = -(math.log(1 / 3) + math.log(bg.transition[1, 2].item())) / 2 / math.log(2)
    assert bg.bits([torch.tensor([1, 2])]) == pytest.approx(want)
    g = torch.Generator().manual_seed(0)
    s = Bigram.fit([torch.tensor([0, 1] * 50)], vocab=3, k=1e-6).sample(4, 10, generator=g)
    assert s.shape == (4, 10) and all((r[1:] != r[:-1]).all() for r in s)  # 0 -> 1 -> 0 ... almost surely
    with pytest.raises(ValueError, match="k > 0"):
        Bigram.fit(seqs, 3, k=0)
