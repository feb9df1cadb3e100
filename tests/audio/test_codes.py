"""Codes files: uint8 / uint16 round trips and one-line refusals of foreign, newer and damaged files."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from arsound.audio.codes import CodesFile, load_codes, save_codes
from tests.fakes import SR


def test_codes_file_round_trip_and_refusals(tmp_path):
    cf = CodesFile(codes=[torch.tensor([0, 5, 65535]), torch.tensor([7])], hops=[4, 16], sample_rate=SR, length=12,
                   model="some-model", model_sha256="abc", num_codes=65536)
    path = save_codes(tmp_path / "c.npz", cf)
    back = load_codes(path)
    assert [c.tolist() for c in back.codes] == [[0, 5, 65535], [7]]
    assert (back.hops, back.sample_rate, back.length, back.model, back.model_sha256) == ([4, 16], SR, 12, "some-model", "abc")
    with np.load(path) as z:
        assert z["codes_0"].dtype == np.uint16 and int(z["version"]) == 1
    assert [p.name for p in tmp_path.iterdir()] == ["c.npz"]                     # no temp files
    small = CodesFile(codes=[torch.tensor([0, 255, 3]), torch.tensor([9])], hops=[4, 16], sample_rate=SR, length=12,
                      model="m", num_codes=256)
    back = load_codes(save_codes(tmp_path / "small.npz", small))
    assert [c.tolist() for c in back.codes] == [[0, 255, 3], [9]] and back.codes[0].dtype == torch.int64
    with np.load(tmp_path / "small.npz") as z:                                     # a 256-code book: one byte each
        assert z["codes_0"].dtype == z["codes_1"].dtype == np.uint8
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, x=np.zeros(3))
    newer = tmp_path / "newer.npz"
    with np.load(path) as z:
        np.savez(newer, **{**{k: z[k] for k in z.files}, "version": np.array(2)})
    garbage = tmp_path / "garbage.npz"
    garbage.write_bytes(b"not a zip")
    for bad, pattern in ((foreign, "not an arsound codes file"), (newer, "newer than this arsound reads"),
                         (garbage, "not an arsound codes file")):
        with pytest.raises(ValueError, match=pattern) as e:
            load_codes(bad)
        assert "\n" not in str(e.value)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_codes(tmp_path / "nope.npz")
    with pytest.raises(ValueError, match="uint16"):
        save_codes(tmp_path / "big.npz", CodesFile(codes=[torch.tensor([70000])], hops=[4], sample_rate=SR, length=4,
                                                   model="m"))
