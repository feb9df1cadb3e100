"""Count baselines over token sequences: a unigram and an add-k bigram model, to measure a prior against
(bits per token on held-out codes) and to make baseline clips (bigram tokens decoded by the tokenizer).

    bigram = Bigram.fit(train_sequences, vocab=256, k=0.1)
    bits = bigram.bits(test_sequences)                  # mean bits per token; the first token of a sequence
                                                        # is scored by the unigram (it has no predecessor)
    codes = bigram.sample(n=8, length=1250, generator=g)  # LongTensor[n, length]
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass
class Bigram:
    """``unigram[K]`` and ``transition[K, K]`` (row ``a``: ``p(b | a)``), both probabilities."""
    unigram: Tensor
    transition: Tensor

    @classmethod
    def fit(cls, sequences: list[Tensor], vocab: int, k: float = 1.0) -> "Bigram":
        """Counts over ``sequences`` (``LongTensor[T_i]`` each), add-``k`` smoothed (``k > 0``)."""
        if not k > 0:
            raise ValueError(f"add-k smoothing needs k > 0, got {k}")
        uni = torch.full((vocab,), float(k), dtype=torch.float64)
        pair = torch.full((vocab, vocab), float(k), dtype=torch.float64)
        for s in sequences:
            s = s.long()
            uni += torch.bincount(s, minlength=vocab).double()
            if len(s) > 1:
                pair.view(-1).index_add_(0, s[:-1] * vocab + s[1:], torch.ones(len(s) - 1, dtype=torch.float64))
        return cls(uni / uni.sum(), pair / pair.sum(1, keepdim=True))

    def log_prob(self, seq: Tensor) -> Tensor:
        """Natural-log probability of each token of ``seq[T]``: ``Tensor[T]`` (float64)."""
        seq = seq.long()
        first = self.unigram[seq[:1]].log()
        rest = self.transition[seq[:-1], seq[1:]].log()
        return torch.cat([first, rest])

    def bits(self, sequences: list[Tensor], unigram_only: bool = False) -> float:
        """Mean bits per token over ``sequences`` (the bigram, or the unigram alone)."""
        total, count = 0.0, 0
        for s in sequences:
            lp = self.unigram[s.long()].log() if unigram_only else self.log_prob(s)
            total, count = total - float(lp.sum()), count + len(s)
        return total / count / math.log(2)

    def sample(self, n: int, length: int, generator: torch.Generator | None = None) -> Tensor:
        """``n`` sequences of ``length`` tokens: the first from the unigram, each next from the row of the last."""
        out = torch.empty(n, length, dtype=torch.long)
        out[:, 0] = torch.multinomial(self.unigram.float().expand(n, -1), 1, generator=generator)[:, 0]
        for t in range(1, length):
            out[:, t] = torch.multinomial(self.transition[out[:, t - 1]].float(), 1, generator=generator)[:, 0]
        return out


__all__ = ["Bigram"]
