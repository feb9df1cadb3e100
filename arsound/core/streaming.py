"""Cached (streaming) inference as a context manager that resets itself.

After audiocraft's ``modules/streaming.py``: a layer that keeps state between calls subclasses
:class:`StreamingModule` and reads/writes ``self.state`` (a plain dict) only while streaming. Entering
``with model.streaming():`` switches every such submodule on; leaving the block, normally or by an
exception, switches them off and clears every cache, so no buffer is ever cleared by hand.

    with model.streaming():
        for t in range(T):
            y_t = model(x_t)        # each call sees the previous calls' cached state
    # here every cache is empty again
"""
from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

from torch import nn


class StreamingModule(nn.Module):
    """A module with per-stream state (ring buffers, KV caches) used only inside ``streaming()``."""

    def __init__(self) -> None:
        super().__init__()
        self.is_streaming = False
        self.state: dict[str, Any] = {}

    def reset_streaming(self) -> None:
        self.state = {}

    def streaming(self):
        return streaming(self)


def _streaming_modules(module: nn.Module) -> Iterator[StreamingModule]:
    return (m for m in module.modules() if isinstance(m, StreamingModule))


@contextmanager
def streaming(module: nn.Module):
    """Switch on streaming in every :class:`StreamingModule` inside ``module``; reset all on exit."""
    mods = list(_streaming_modules(module))
    if any(m.is_streaming for m in mods):
        raise RuntimeError(f"{type(module).__name__} is already streaming; nested streaming() is not allowed")
    for m in mods:
        m.reset_streaming()
        m.is_streaming = True
    try:
        yield module
    finally:
        for m in mods:
            m.is_streaming = False
            m.reset_streaming()


def reset_streaming(module: nn.Module) -> None:
    """Start a new stream inside an open ``streaming()`` block (e.g. between two utterances)."""
    for m in _streaming_modules(module):
        m.reset_streaming()
