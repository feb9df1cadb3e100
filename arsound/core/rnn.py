"""The plain recurrent AR model: a hidden state summarizes the history, a softmax gives the next symbol.

    h_t = RNN(h_{t-1}, [embed(x_{t-1}); pos(t)]),   p(x_t | x_<t) = softmax(W h_t + b)

with ``x_{-1}`` a start symbol (index ``vocab`` of the embedding). The cell is an LSTM (Hochreiter &
Schmidhuber, 1997) or a GRU (Cho et al., 2014), ``layers`` deep; ``position`` adds a learned embedding of
the index being predicted (an image model needs to know where a row ends; text does not). Causal by
construction: term ``t`` reads ``x_{<t}`` only through the recurrence.

:class:`RecurrentNet` is the network (teacher-forced ``forward`` and a one-symbol ``step`` on a carried state);
:class:`SequenceRNN` is the AR model over any token sequence of a fixed length; ``arsound.image.rnn`` puts
the same network over pixels in raster order.

Letters: B batch, L sequence length, V vocabulary, E embedding width, H hidden width, P parameters per symbol.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .distributions import Categorical
from .model import ARModel, Canvas

CELLS = {"lstm": nn.LSTM, "gru": nn.GRU}


class RecurrentNet(nn.Module):
    """``tokens[B, L]`` (integers in ``[0, V)``) -> ``params[B, L, P]`` for the next-symbol distribution of each
    position, reading the tokens before it."""

    def __init__(self, vocab: int, length: int, out: int, cell: str = "lstm", hidden: int = 128, layers: int = 1,
                 embed: int = 32, position: bool = True) -> None:
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"unknown cell '{cell}'; choose from {sorted(CELLS)}")
        self.vocab = vocab
        self.embed = nn.Embedding(vocab + 1, embed)              # index `vocab`: the start symbol
        self.pos = nn.Embedding(length, embed) if position else None
        self.rnn = CELLS[cell](embed, hidden, layers, batch_first=True)
        self.out = nn.Linear(hidden, out)

    def inputs(self, prev: Tensor, t: Tensor) -> Tensor:
        """Previous symbols ``prev[B, N]`` (``vocab`` = start) predicting positions ``t[N]`` -> ``[B, N, E]``."""
        e = self.embed(prev)
        return e if self.pos is None else e + self.pos(t)

    def forward(self, tokens: Tensor) -> Tensor:
        B, L = tokens.shape
        prev = torch.cat([tokens.new_full((B, 1), self.vocab), tokens[:, :-1]], 1)
        h, _ = self._recur(self.inputs(prev, torch.arange(L, device=tokens.device)).to(self.out.weight.dtype))
        return self.out(h)

    def _recur(self, x: Tensor, state=None):
        """The recurrent layer. Under CPU autocast oneDNN's LSTM needs bfloat16 kernels that CPUs without AVX-512
        lack (it refuses the call); PyTorch's own kernels run it there (in float32, as autocast leaves RNNs)."""
        if x.device.type != "cpu" or not torch.is_autocast_enabled("cpu"):
            return self.rnn(x, state)
        before = torch.backends.mkldnn.enabled
        torch.backends.mkldnn.enabled = False
        try:
            return self.rnn(x, state)
        finally:
            torch.backends.mkldnn.enabled = before

    def step(self, prev: Tensor | None, t: int, state, n: int) -> tuple[Tensor, object]:
        """One symbol: the previous symbols ``prev[n]`` (None at ``t = 0``) and the carried ``state`` (None at
        the start) -> ``(params[n, P], state)``."""
        if prev is None:
            prev = torch.full((n,), self.vocab, dtype=torch.long, device=self.out.weight.device)
        x = self.inputs(prev.long()[:, None], torch.tensor([t], device=prev.device)).to(self.out.weight.dtype)
        h, state = self._recur(x, state)
        return self.out(h[:, 0]), state

    def stepper(self, n: int):
        """A sampler's cached step for ``n`` sequences: ``step(s, prev) -> params[n, P]``, the recurrent state
        carrying the history (one cell update per symbol)."""
        state = None

        def step(s: int, prev: Tensor | None) -> Tensor:
            nonlocal state
            params, state = self.step(prev, s, state, n)
            return params

        return step


@dataclass
class RecurrentConfig:
    """The recurrent network's settings, shared by every model built on :class:`RecurrentNet`."""
    cell: str = "lstm"        # "lstm" | "gru"
    hidden: int = 128
    layers: int = 1
    embed: int = 32
    position: bool = False    # a learned embedding of the position being predicted

    def net(self, vocab: int, length: int, out: int) -> RecurrentNet:
        return RecurrentNet(vocab, length, out, self.cell, self.hidden, self.layers, self.embed, self.position)


@dataclass
class SequenceRNNConfig(RecurrentConfig):
    length: int = 64          # L symbols per sequence
    vocab: int = 256          # V


class SequenceRNN(ARModel):
    """An LSTM / GRU over token sequences ``x[B, L]`` -> logits ``[B, L, V]`` (a categorical head)."""

    config_class = SequenceRNNConfig

    def __init__(self, config: SequenceRNNConfig) -> None:
        super().__init__(config)
        self.head = Categorical(config.vocab)
        self.net = config.net(config.vocab, config.length, config.vocab)

    @property
    def event_shape(self) -> tuple[int]:
        return (self.config.length,)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)

    @contextlib.contextmanager
    def steps(self, canvas: Canvas):
        yield self.net.stepper(canvas.n)


__all__ = ["CELLS", "RecurrentConfig", "RecurrentNet", "SequenceRNN", "SequenceRNNConfig"]
