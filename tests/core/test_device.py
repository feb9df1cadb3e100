import pytest
import torch

from arsound.core.device import num_threads


def test_num_threads_sets_and_restores_even_on_error():
    before = torch.get_num_threads()
    want = 1 if before > 1 else 2
    with num_threads(want):
        assert torch.get_num_threads() == want
    assert torch.get_num_threads() == before
    with pytest.raises(RuntimeError), num_threads(want):
        raise RuntimeError("inside")
    assert torch.get_num_threads() == before
