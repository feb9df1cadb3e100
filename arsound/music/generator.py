"""Music from a hierarchy of priors over VQ-VAE codes, Jukebox style: a top-level prior samples the coarsest
codes, each upsampler the next finer level given the level above, and the tokenizer's decoder of the last
level sampled turns codes into audio.

    gen = arsound.load("music-chorales")             # a MusicGenerator: tokenizer + one prior per level
    out = gen.generate(seconds=10, n=4, seed=0)      # ancestral: four clips from nothing
    out = gen.generate(seconds=20, prompt=wav)       # primed: the prompt's codes kept exactly, continued
    out = gen.generate(seconds=30, codes=codes)      # continue a codes file (or upsample its top level)
    out = gen.generate(seconds=10, stop_level=2)     # the top level only: a preview in seconds
    out.audio, out.codes                              # Tensor[n, samples], {level: LongTensor[n, T_l]}

Any length: a level of ``N`` tokens is sampled in windows of the prior's context that slide by a hop
(``hop_fraction`` of the context, a multiple of the hop ratio for upsamplers); each new window keeps the end of
the previous one as its prompt, and an upsampler's window is conditioned on exactly the upper codes above it.
A request of ``S`` samples takes ``ceil(S / top hop)`` top tokens, ``ratio`` times as many one level down, and
the decoded audio is cut to ``S`` samples. The same seed gives the same clips; ``n`` clips run as one batch.

Upper-code guidance (``guidance`` w > 0, upsamplers only; :class:`UpperGuided`): each step of an upsampler also
runs its clips under a contrast and draws from ``(1 + w) * logits(upper) - w * logits(contrast)``, the
classifier-free guidance of Ho and Salimans (2022). The contrast (``contrast``): ``"reversed"`` (the default), the
clips' upper codes reversed in time (the same codes and timbre at the wrong moments; any upsampler), or
``"dropped"``, no upper codes at all (the true unconditional branch; an upsampler trained with
``cond_dropout > 0``): either way the finer level follows what the upper level says now. It doubles that level's
batch.

Drafts (``drafts`` k > 1, upsamplers only): a level draws k drafts of every clip (one batch of ``k n``), decodes
them and the level above, and keeps, for each clip, the draft whose pitch classes agree best, frame by frame, with
those of the level above (:func:`~arsound.audio.music_metrics.chroma_agreement`): the upsamplers lose some of the
key their upper codes carry, and a draft that keeps more of it is kept. It costs k times that level's sampling.

Letters: n clips, T_l tokens at level l, S samples.
"""
from __future__ import annotations

import contextlib
import time
from dataclasses import dataclass, field
from typing import Callable, Iterator

import torch
from torch import Tensor, nn
from tqdm.auto import tqdm

from ..audio.chunked import blocks_of, decode_pieces, encode_chunked
from ..audio.codes import CodesFile
from ..audio.music_metrics import chroma_agreement, chroma_frames
from ..audio.vqvae import VQVAE, VQVAEConfig
from ..core.checkpoint import weights_id
from ..core.device import step_threads
from ..core.distributions import Categorical
from ..core.model import Canvas, run_steps
from ..core.sampling import check_temperature, get_uniform
from .prior import TokenPrior, TokenPriorConfig


PRESETS = ("debug", "small")
CONTRASTS = ("reversed", "dropped")


@dataclass
class MusicGeneratorConfig:
    tokenizer: VQVAEConfig = field(default_factory=lambda: VQVAEConfig.from_preset("small"))
    priors: tuple[TokenPriorConfig, ...] = ()    # one per level sampled, any order (``level`` says which)
    name: str = ""                               # what the codes files name as the tokenizer
    temperature: tuple[float, ...] = ()          # the default sampling temperature of each level, top first, as
                                                 # the recipe chose it (empty: 1 at every level)
    guidance: tuple[float, ...] = ()             # the default upper-code guidance of each level, top first (the
                                                 # top's is unused; empty: 0, none, at every level)
    drafts: tuple[int, ...] = ()                 # the default number of drafts of each level, top first (the top's
                                                 # is unused; empty: 1, one draft kept as drawn, at every level)

    @classmethod
    def from_preset(cls, name: str, **prior) -> "MusicGeneratorConfig":
        """``small``: the ``small`` tokenizer (``vqvae-chorales``: 16 kHz, hops 8 / 32 / 128, 256 codes) and a
        ``small`` TokenPrior per level (context 512 tokens: 4.1 s at the top, 1 s and 0.26 s below); ``debug``:
        the ``debug`` tokenizer (hops 4 / 16, 16 codes) and two ``debug`` priors. ``prior``: fields set in
        every prior's config (e.g. ``context=2048``)."""
        if name not in PRESETS:
            raise ValueError(f"unknown music preset '{name}'; choose from {PRESETS}")
        tok = VQVAEConfig.from_preset(name)
        hops, K = tok.hops, tok.quantizer.num_codes
        priors = tuple(TokenPriorConfig(**{**TokenPrior.presets[name], "vocab": K, "level": lv,
                                           "upper_vocab": K if lv < len(hops) - 1 else 0,
                                           "ratio": hops[lv + 1] // hops[lv] if lv < len(hops) - 1 else 1,
                                           **prior})
                       for lv in reversed(range(len(hops))))
        return cls(tokenizer=tok, priors=priors)


@dataclass
class Generated:
    """What :meth:`MusicGenerator.generate` returns."""
    codes: dict[int, Tensor]                     # level -> LongTensor[n, T_l], every level sampled (or given)
    audio: Tensor | None                         # Tensor[n, S] decoded from ``level`` (None: decode=False)
    level: int                                   # the level the audio is (to be) decoded from
    samples: int = 0                             # S, the length asked for
    seconds: dict[int, float] = field(default_factory=dict)  # compute time per level sampled
    instruments: list[str] | None = None         # each clip's instrument (priors with labels)


def window_hop(context: int, fraction: float, ratio: int = 1) -> int:
    """Tokens a window slides by: ``fraction`` of the context, a multiple of ``ratio`` (at least one)."""
    if not 0 < fraction <= 1:
        raise ValueError(f"hop_fraction must be in (0, 1], got {fraction}")
    return max(ratio, int(context * fraction) // ratio * ratio)


def sample_level(prior, total: int, n: int, *, known: Tensor | None = None, upper: Tensor | None = None,
                 label: Tensor | None = None, hop_fraction: float = 0.5, temperature: float = 1.0,
                 top_k: int | None = None, top_p: float | None = None, greedy: bool = False,
                 generator: torch.Generator | None = None, progress: bool = False, desc: str = "level",
                 on_token: Callable[[int, int], None] | None = None, offset: int = 0,
                 piece: int | None = None, guidance: float = 0.0, contrast: str = "reversed") -> Tensor:
    """``total`` tokens of one level for ``n`` clips, window by window: ``LongTensor[n, total]``.

    prior: anything with ``config.context`` (and ``config.ratio``, ``config.upper_vocab``, ``config.num_labels``),
        ``head`` and the model interface of ``core.model`` (a :class:`~arsound.music.prior.TokenPrior`).
    known: ``LongTensor[n, total]``, entries ``>= 0`` kept exactly (a prompt's or a file's codes), ``-1`` sampled.
    upper: ``LongTensor[n, total / ratio]`` codes of the level above (upsamplers).
    on_token(done, total): called after each token position is drawn (for all ``n`` clips), e.g. to show progress;
        an exception raised there stops sampling (an interrupt button).
    offset, piece: for priors with timing conditioning, the clip starts ``offset`` tokens into a piece of ``piece``
        tokens (default: the clip is the whole piece, ``offset`` 0 and ``piece`` = ``total``).
    guidance: upper-code guidance weight ``w >= 0`` (:class:`UpperGuided`; with ``upper`` only, 0: off).
    contrast: what guidance contrasts the upper codes with: ``"reversed"`` (them reversed in time) or ``"dropped"``
        (none; a prior trained with ``cond_dropout > 0``).
    """
    cfg = prior.config
    piece = total if piece is None else piece
    if offset < 0 or offset + total > piece:
        raise ValueError(f"a clip of {total} tokens at offset {offset} does not fit in a piece of {piece} tokens")
    ctx, ratio = cfg.context, (cfg.ratio if getattr(cfg, "upper_vocab", 0) else 1)
    if total < 1:
        raise ValueError(f"need at least one token, got {total}")
    if upper is not None and upper.shape[1] * ratio != total:
        raise ValueError(f"{total} tokens need {total // ratio} upper codes at ratio {ratio}, got {upper.shape[1]}")
    if not guidance >= 0:
        raise ValueError(f"guidance must be >= 0, got {guidance}")
    if contrast not in CONTRASTS:
        raise ValueError(f"unknown guidance contrast '{contrast}'; choose from {CONTRASTS}")
    hop = window_hop(ctx, hop_fraction, ratio)
    dev = prior.device
    x = torch.full((n, total), -1, dtype=torch.long, device=dev) if known is None else known.to(dev).clone()
    head = Categorical(cfg.vocab, top_k=top_k, top_p=top_p) if (top_k or top_p) else None
    rows = n
    if guidance and upper is not None:          # rows n..2n-1: the same clips under the contrast
        rows, head = 2 * n, UpperGuided(cfg.vocab, guidance, top_k=top_k, top_p=top_p)
        x = torch.cat([x, x])
        upper = torch.cat([upper, upper.flip(-1) if contrast == "reversed" else torch.full_like(upper, -1)])
        label = None if label is None else label.expand(n).repeat(2)
    bar = tqdm(total=total, desc=desc, unit="token", disable=not progress, dynamic_ncols=True)
    s = drawn = 0                                                    # drawn: positions finished so far
    with step_threads(dev, n):
        while True:
            e = min(s + ctx, total)
            cond = {"start": torch.full((rows,), offset + s, device=dev),
                    "total": torch.full((rows,), piece, device=dev)}
            if upper is not None:
                cond["upper"] = upper[:, s // ratio:-(-e // ratio)].to(dev)
            if label is not None:
                cond["label"] = label
            # the uniforms of n clips (both halves of a guided batch read the first n), as Canvas would draw them
            u = None if greedy else get_uniform(None, (n, e - s, 1), generator=generator, device=dev).repeat(
                rows // n, 1, 1)
            canvas = Canvas(prior, rows, x[:, s:e], generator, temperature, greedy, shape=(e - s,),
                            order=torch.arange(e - s), head=head, uniforms=u)
            tick = None if on_token is None else (lambda j, s0=s: on_token(s0 + j, total))
            x[:, s:e] = run_steps(prior, canvas, _counted(prior.steps(canvas, **cond), bar, drawn - s, tick))
            drawn = e
            if e == total:
                break
            s += hop
    bar.close()
    return x[:n]


class UpperGuided(Categorical):
    """Upper-code guidance over a doubled batch ``params[2n, K]``: rows ``[0, n)`` are the clips under their
    upper codes, rows ``[n, 2n)`` the same clips under the contrast (their codes reversed in time, or none). Both
    halves draw the same token, from ``(1 + w) * params[:n] - w * params[n:]`` (then temperature, top-k, top-p as
    :class:`~arsound.core.distributions.Categorical`), with the uniforms of the first half."""

    def __init__(self, num_classes: int, weight: float, top_k: int | None = None, top_p: float | None = None) -> None:
        super().__init__(num_classes, top_k=top_k, top_p=top_p)
        self.weight = weight

    def guided(self, params: Tensor) -> Tensor:
        """``params[2n, K] -> logits[n, K]``."""
        n = params.shape[0] // 2
        true = params[:n].float()
        return true + self.weight * (true - params[n:].float())

    def sample(self, params, u=None, *, generator=None, temperature=1.0) -> Tensor:
        v = super().sample(self.guided(params), None if u is None else u[:params.shape[0] // 2],
                           generator=generator, temperature=temperature)
        return torch.cat([v, v])

    def mode(self, params: Tensor) -> Tensor:
        v = super().mode(self.guided(params))
        return torch.cat([v, v])


class MusicGenerator(nn.Module):
    """A tokenizer and one :class:`~arsound.music.prior.TokenPrior` per level it samples: the highest is the
    top-level prior, each lower one an upsampler of the level above (``upper_vocab``, ``ratio`` = the hop
    ratio). Saved and loaded as one model (``arsound.load``)."""

    config_class = MusicGeneratorConfig

    def __init__(self, config: MusicGeneratorConfig) -> None:
        super().__init__()
        self.config = config
        self.vqvae = VQVAE(config.tokenizer)
        self.priors = nn.ModuleDict({str(p.level): TokenPrior(p) for p in config.priors})
        hops, K = self.vqvae.hops, config.tokenizer.quantizer.num_codes
        levels = self.levels
        if not levels:
            raise ValueError("a music hierarchy needs at least one prior")
        if len(set(levels)) != len(config.priors) or levels != list(range(levels[0], levels[-1] - 1, -1)):
            raise ValueError(f"priors must cover consecutive tokenizer levels once each, got {levels}")
        top = self.priors[str(levels[0])].config
        for level in levels:
            p = self.priors[str(level)].config
            if not 0 <= level < len(hops) or p.vocab != K:
                raise ValueError(f"prior of level {level}: the tokenizer has levels 0..{len(hops) - 1} of {K} codes")
            if level == levels[0]:
                if p.upper_vocab:
                    raise ValueError(f"the top prior (level {level}) takes no upper codes")
            elif p.upper_vocab != K or p.ratio * hops[level] != hops[level + 1]:
                raise ValueError(f"upsampler of level {level} needs upper_vocab {K} and ratio "
                                 f"{hops[level + 1] // hops[level]}, got {p.upper_vocab} and {p.ratio}")
            elif p.num_labels and (p.num_labels, p.label_names) != (top.num_labels, top.label_names):
                raise ValueError(f"upsampler of level {level} takes the instruments {list(p.label_names)}, the top "
                                 f"prior {list(top.label_names)}: they must be the same")
        if config.temperature:
            _per_level(tuple(config.temperature), levels, "config.temperature")
            for t in config.temperature:
                check_temperature(t)
        if config.guidance:
            _per_level(tuple(config.guidance), levels, "config.guidance")
            if not all(w >= 0 for w in config.guidance):
                raise ValueError(f"config.guidance must be >= 0, got {tuple(config.guidance)}")
        if config.drafts:
            _per_level(tuple(config.drafts), levels, "config.drafts")
            check_drafts(config.drafts, "config.drafts")

    @property
    def levels(self) -> list[int]:
        """The levels sampled, top first."""
        return sorted((int(k) for k in self.priors), reverse=True)

    @property
    def temperatures(self) -> dict[int, float]:
        """The default sampling temperature of each level (``config.temperature``; 1 where it is empty)."""
        return dict(zip(self.levels, self.config.temperature or [1.0] * len(self.levels)))

    @property
    def guidances(self) -> dict[int, float]:
        """The default upper-code guidance of each level (``config.guidance``; 0 where it is empty)."""
        return dict(zip(self.levels, self.config.guidance or [0.0] * len(self.levels)))

    @property
    def drafts(self) -> dict[int, int]:
        """The default number of drafts of each level (``config.drafts``; 1 where it is empty)."""
        return dict(zip(self.levels, self.config.drafts or [1] * len(self.levels)))

    @property
    def device(self) -> torch.device:
        return next(self.parameters()).device

    @property
    def sample_rate(self) -> int:
        return self.config.tokenizer.sample_rate

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    @classmethod
    def assemble(cls, vqvae: VQVAE, priors, name: str = "", temperature: tuple[float, ...] = (),
                 guidance: tuple[float, ...] = (), drafts: tuple[int, ...] = ()) -> "MusicGenerator":
        """A hierarchy from a trained tokenizer and trained priors (their weights copied); ``temperature``,
        ``guidance``, ``drafts``: each level's default, top first."""
        priors = list(priors)
        model = cls(MusicGeneratorConfig(tokenizer=vqvae.config, priors=tuple(p.config for p in priors), name=name,
                                         temperature=tuple(temperature), guidance=tuple(guidance),
                                         drafts=tuple(drafts)))
        model.vqvae.load_state_dict(vqvae.state_dict())
        for p in priors:
            model.priors[str(p.config.level)].load_state_dict(p.state_dict())
        return model.eval()

    def label_index(self, name: str | int | None) -> Tensor | None:
        """An instrument name or id -> ``LongTensor[]`` for priors that take one (None otherwise)."""
        top = self.priors[str(self.levels[0])].config
        if not top.num_labels:
            if name is not None:
                raise ValueError("this hierarchy takes no instrument")
            return None
        names = [str(v) for v in top.label_names]
        if name is None:
            raise ValueError(f"this hierarchy needs an instrument: one of {names or list(range(top.num_labels))}")
        if str(name) in names:
            return torch.tensor(names.index(str(name)))
        if not str(name).isdigit() or int(name) >= top.num_labels:
            raise ValueError(f"unknown instrument '{name}'; choose from {names or list(range(top.num_labels))}")
        return torch.tensor(int(name))

    def tokens(self, samples: int) -> dict[int, int]:
        """Tokens each level needs for ``samples`` samples: ``ceil(samples / top hop)`` at the top, times the
        hop ratio below."""
        hops, top = self.vqvae.hops, self.levels[0]
        n_top = -(-samples // hops[top])
        return {level: n_top * hops[top] // hops[level] for level in range(top, -1, -1)}

    def position(self, samples: int, piece_seconds: float | None = None,
                 offset_seconds: float = 0.0) -> tuple[dict[int, int], dict[int, int | None]]:
        """Per level: the clip's offset and the piece's length in tokens, for a clip of ``samples`` samples that
        starts ``offset_seconds`` into a piece of ``piece_seconds`` (None: the clip is the whole piece)."""
        hops, top = self.vqvae.hops, self.levels[0]
        if piece_seconds is None:
            if offset_seconds:
                raise ValueError("an offset needs piece_seconds, the length of the piece the clip sits in")
            return {lv: 0 for lv in range(top + 1)}, {lv: None for lv in range(top + 1)}
        if not offset_seconds >= 0:
            raise ValueError(f"offset_seconds must be >= 0, got {offset_seconds}")
        if offset_seconds * self.sample_rate + samples > piece_seconds * self.sample_rate + 1e-6:
            raise ValueError(f"a clip of {samples / self.sample_rate:g} s starting at {offset_seconds:g} s does not "
                             f"fit in a piece of {piece_seconds:g} s")
        totals = self.tokens(samples)
        first = int(offset_seconds * self.sample_rate) // hops[top]                 # in top tokens
        piece = max(first + totals[top], int(round(piece_seconds * self.sample_rate / hops[top])))
        ratio = {lv: hops[top] // hops[lv] for lv in range(top + 1)}
        return {lv: first * ratio[lv] for lv in ratio}, {lv: piece * ratio[lv] for lv in ratio}

    @torch.no_grad()
    def generate(self, seconds: float | None = None, n: int = 1, *, seed: int = 0, prompt: Tensor | None = None,
                 codes: list[Tensor] | None = None, stop_level: int | None = None, instrument=None,
                 temperature=None, top_k=None, top_p=None, hop_fraction=0.5, guidance=None, contrast="reversed",
                 drafts=None, greedy: bool = False,
                 progress: bool = False, decode: bool = True, piece_seconds: float | None = None,
                 offset_seconds: float = 0.0,
                 on_level: Callable[[int, Tensor, Tensor | None], None] | None = None,
                 on_token: Callable[[int, int, int], None] | None = None) -> Generated:
        """``n`` clips of ``seconds`` (see the module docstring).

        prompt: a waveform ``Tensor[T]`` at the tokenizer's rate: its codes at every level (whole tokens) are
            kept exactly and the music continues from them. codes: ``[LongTensor[T_l]]`` per tokenizer level (a
            codes file's; ``LongTensor[n, T_l]``: one row per clip): kept and continued; a level given whole (as
            long as asked) is not sampled again, so top-level codes alone are upsampled. stop_level: the lowest
            level to sample (default the lowest prior's); the audio is that level's decoding. instrument: a name
            or id for priors with labels, or a list of one per clip; None draws one per clip from the seed
            (``Generated.instruments`` names them). Upsamplers with labels take the clip's too, so give the
            instrument of codes you upsample. temperature, top_k, top_p, hop_fraction: one value, or one per
            level sampled (top first); temperature None: each level's default (:attr:`temperatures`, as the
            recipe chose them).
            guidance: upper-code guidance weight (see the module docstring), one value or one per level sampled
            (top first; the top level has no upper codes, so its value is unused); None: each level's default
            (:attr:`guidances`). contrast: what guidance contrasts with, ``"reversed"`` or ``"dropped"`` (see the
            module docstring), one value or one per level.
            drafts: how many drafts an upsampler draws of each clip, keeping the one whose pitch follows the level
            above best (see the module docstring), one value or one per level sampled (top first; the top's value
            is unused); None: each level's default (:attr:`drafts`).
            decode=False: no decoding here (``audio`` None; stream it with :meth:`decode_stream`, as ``arsound
            generate`` does). on_level(level, codes, audio): called as each level is done, with its codes and
            their decoding (None with decode=False), e.g. to play a preview.
            on_token(level, done, total): called after each token position a level draws (tokens/s, time left in
            a UI); an exception raised there stops generation and propagates.
            piece_seconds, offset_seconds: where the clip sits for the priors' timing conditioning: it starts
            ``offset_seconds`` into a piece of ``piece_seconds`` (default None: the clip is a whole piece, with its
            opening and its ending); e.g. ``piece_seconds=32, offset_seconds=11`` asks for the middle 10 s of a
            32-s piece, as the held-out clips of the music evaluation are.
        """
        if n < 1:
            raise ValueError(f"the number of clips must be >= 1, got {n}")
        if prompt is not None and codes is not None:
            raise ValueError("give a prompt waveform or codes to continue, not both")
        sr, hops, levels = self.sample_rate, self.vqvae.hops, self.levels
        stop = levels[-1] if stop_level is None else stop_level
        if stop not in levels:
            raise ValueError(f"stop_level must be one of the sampled levels {levels}, got {stop_level}")
        run = [lv for lv in levels if lv >= stop]
        if temperature is None:
            temperature = tuple(self.temperatures[lv] for lv in run)
        if guidance is None:
            guidance = tuple(self.guidances[lv] for lv in run)
        if drafts is None:
            drafts = tuple(self.drafts[lv] for lv in run)
        per = {name: _per_level(value, run, name) for name, value in
               (("temperature", temperature), ("top_k", top_k), ("top_p", top_p), ("hop_fraction", hop_fraction),
                ("guidance", guidance), ("contrast", contrast), ("drafts", drafts))}
        check_drafts(per["drafts"].values(), "drafts")
        for t in per["temperature"].values():
            if not greedy:
                check_temperature(t)
        for lv, c in per["contrast"].items():
            if c not in CONTRASTS:
                raise ValueError(f"unknown guidance contrast '{c}'; choose from {CONTRASTS}")
            if c == "dropped" and per["guidance"][lv] and lv != levels[0] and \
                    not self.priors[str(lv)].config.cond_dropout:
                raise ValueError(f"the level-{lv} upsampler never learned to go without its upper codes "
                                 "(cond_dropout 0): guide it with contrast 'reversed'")
        dev = self.device
        given = {}
        if prompt is not None:
            prompt = torch.as_tensor(prompt, dtype=torch.float32).reshape(-1)
            whole = len(prompt) // hops[levels[0]] * hops[levels[0]]
            if whole < 1:
                raise ValueError(f"the prompt is {len(prompt) / sr:.3f} s, shorter than one top-level token "
                                 f"({hops[levels[0]] / sr:.3f} s)")
            if not torch.isfinite(prompt).all():
                raise ValueError("the prompt holds NaN or Inf samples")
            chunk, margin = 64 * hops[-1], self.vqvae.encoder_margin()       # bounded memory for any prompt
            enc = encode_chunked(self.vqvae, blocks_of(prompt[:whole].to(dev), chunk + 2 * margin, chunk), whole,
                                 chunk, margin)
            given = {lv: c[:whole // hops[lv]] for lv, c in enumerate(enc)}
        elif codes is not None:
            if len(codes) != len(hops):
                raise ValueError(f"codes: give one sequence per tokenizer level ({len(hops)}), got {len(codes)}")
            given = {lv: torch.as_tensor(c).long() for lv, c in enumerate(codes) if torch.as_tensor(c).numel()}
            for lv, c in given.items():
                if c.dim() > 2 or (c.dim() == 2 and c.shape[0] != n):
                    raise ValueError(f"level {lv} codes: give LongTensor[T] or LongTensor[n={n}, T], got "
                                     f"{tuple(c.shape)}")
            K = self.config.tokenizer.quantizer.num_codes
            for lv, c in given.items():
                if int(c.min()) < 0 or int(c.max()) >= K:
                    raise ValueError(f"level {lv} codes must lie in [0, {K}), got [{int(c.min())}, {int(c.max())}]")
        have = max((c.shape[-1] * hops[lv] for lv, c in given.items() if lv in run), default=0)
        if seconds is None:
            if not have:
                raise ValueError("say how many seconds to generate")
            samples = have
        else:
            if not seconds > 0:
                raise ValueError(f"seconds must be > 0, got {seconds}")
            samples = int(round(seconds * sr))
        if samples < have:
            raise ValueError(f"{seconds} s is shorter than the {have / sr:.2f} s given; ask for more")
        totals = self.tokens(samples)
        offsets, pieces = self.position(samples, piece_seconds, offset_seconds)
        generator = torch.Generator().manual_seed(seed)
        top = self.priors[str(levels[0])].config
        if instrument is None and top.num_labels:                   # none asked: one per clip, drawn from the seed
            label = torch.randint(top.num_labels, (n,), generator=generator).to(dev)
        else:                                                       # one for every clip, or one per clip
            asked = list(instrument) if isinstance(instrument, (list, tuple)) else [instrument] * n
            if len(asked) != n:
                raise ValueError(f"give one instrument, or one per clip ({n}), got {len(asked)}")
            labels = [self.label_index(i) for i in asked]
            label = None if labels[0] is None else torch.stack(labels).to(dev)
        names = [str(v) for v in top.label_names] or [str(i) for i in range(top.num_labels)]
        instruments = None if label is None else [names[int(i)] for i in label]
        out, spent, upper = {}, {}, None
        for lv in run:
            prior = self.priors[str(lv)]
            known = torch.full((n, totals[lv]), -1, dtype=torch.long, device=dev)
            if lv in given:
                c = given[lv][..., :totals[lv]].to(dev)
                known[:, :c.shape[-1]] = c
            if (known >= 0).all():                                   # given whole: not sampled again
                x = known
            else:
                t0 = time.perf_counter()
                k = per["drafts"][lv] if upper is not None else 1     # rows j * n + i: draft j of clip i
                x = sample_level(prior, totals[lv], k * n, known=known.repeat(k, 1),
                                 upper=None if upper is None else upper.repeat(k, 1),
                                 label=label.repeat(k) if prior.config.num_labels else None,
                                 hop_fraction=per["hop_fraction"][lv], temperature=per["temperature"][lv],
                                 top_k=per["top_k"][lv], top_p=per["top_p"][lv], greedy=greedy,
                                 generator=generator, progress=progress, desc=f"level {lv}",
                                 on_token=None if on_token is None else (lambda d, t, lv=lv: on_token(lv, d, t)),
                                 offset=offsets[lv], piece=pieces[lv], guidance=per["guidance"][lv],
                                 contrast=per["contrast"][lv])
                if k > 1:
                    x = self.best_drafts(x.view(k, n, -1), upper, lv, samples)
                spent[lv] = time.perf_counter() - t0
            out[lv], upper = x, x
            audio = self.decode(x, lv, samples) if decode and (on_level is not None or lv == stop) else None
            if on_level is not None:
                on_level(lv, x, audio)
        return Generated(codes=out, audio=audio, level=stop, seconds=spent, samples=samples, instruments=instruments)

    def best_drafts(self, drafts: Tensor, upper: Tensor, level: int, samples: int) -> Tensor:
        """``drafts[k, n, T_l]`` of one level -> ``LongTensor[n, T_l]``: for each clip, the draft whose decoding
        agrees best in pitch, frame by frame, with the decoding of its ``upper[n, T_(l+1)]`` codes (the first of
        equals)."""
        k, n = drafts.shape[:2]
        sr = self.sample_rate
        ref = [chroma_frames(w, sr) for w in self.decode(upper, level + 1, samples).cpu().numpy()]
        audio = self.decode(drafts.flatten(0, 1), level, samples).cpu().numpy()
        score = torch.tensor([chroma_agreement(chroma_frames(audio[j * n + i], sr), ref[i])
                              for j in range(k) for i in range(n)]).view(k, n)
        return drafts[score.argmax(0).to(drafts.device), torch.arange(n, device=drafts.device)]

    def codes_file(self, out: Generated, i: int = 0) -> CodesFile:
        """Clip ``i`` of ``out`` in the package's codes format (``audio/codes.py``): the levels sampled or
        given, empty arrays for the levels below, named after this generator's tokenizer."""
        codes = [out.codes[lv][i].cpu() if lv in out.codes else torch.zeros(0, dtype=torch.long)
                 for lv in range(len(self.vqvae.hops))]
        return CodesFile(codes=codes, hops=list(self.vqvae.hops), sample_rate=self.sample_rate,
                         length=out.samples, model=self.config.name, model_sha256=weights_id(self.vqvae),
                         num_codes=self.config.tokenizer.quantizer.num_codes)

    def check_codes(self, cf: CodesFile, where: str = "codes") -> list[Tensor]:
        """The codes of ``cf`` if this generator's tokenizer made them (same weights, hops, rate and code
        count); one-line ``ValueError`` otherwise."""
        mine = weights_id(self.vqvae)
        if cf.model_sha256 and cf.model_sha256 != mine:
            raise ValueError(f"'{where}' was made by tokenizer {cf.model or '?'} (weights {cf.model_sha256}), not by "
                             f"this generator's {self.config.name or 'tokenizer'} (weights {mine}); encode the "
                             "audio again with it")
        if list(cf.hops) != list(self.vqvae.hops) or cf.sample_rate != self.sample_rate or \
                (cf.num_codes and cf.num_codes != self.config.tokenizer.quantizer.num_codes):
            raise ValueError(f"'{where}' has hops {list(cf.hops)} at {cf.sample_rate} Hz ({cf.num_codes} codes) but "
                             f"this generator's tokenizer has {list(self.vqvae.hops)} at {self.sample_rate} Hz "
                             f"({self.config.tokenizer.quantizer.num_codes} codes)")
        return cf.codes

    @torch.no_grad()
    def decode(self, codes: Tensor, level: int, samples: int | None = None) -> Tensor:
        """``codes[n, T_l]`` -> ``Tensor[n, samples]`` with the tokenizer's decoder of ``level`` (in windows)."""
        return torch.cat(list(self.decode_stream(codes, level, samples)), dim=1)

    @torch.no_grad()
    def decode_stream(self, codes: Tensor, level: int, samples: int | None = None,
                      chunk: int = 512) -> Iterator[Tensor]:
        """:meth:`decode` as consecutive pieces ``Tensor[n, t_i]`` (``chunk`` codes a window), cut at ``samples``:
        any length costs one window of memory besides the codes (``io.save_audio_stream`` writes them)."""
        left = codes.shape[-1] * self.vqvae.hops[level] if samples is None else samples
        for rows in zip(*(decode_pieces(self.vqvae, c, level, chunk) for c in codes)):
            piece = torch.stack(rows)[:, :left]
            left -= piece.shape[1]
            if piece.shape[1]:
                yield piece


@contextlib.contextmanager
def _counted(steps, bar, seen: int, tick: Callable[[int], None] | None = None):
    """``steps`` with one tick of ``bar`` per step from window position ``seen`` on (tokens/s, time left), and
    ``tick(positions finished in the window)`` after each of those steps when given."""
    with steps as step:
        def counted(s: int, prev):
            out = step(s, prev)
            if s >= seen:
                bar.update(1)
                if tick is not None:
                    tick(s + 1)
            return out

        yield counted


def check_drafts(values, name: str) -> None:
    """Every number of drafts a whole number >= 1, or one clear error naming ``name``."""
    if not all(isinstance(v, int) and not isinstance(v, bool) and v >= 1 for v in values):
        raise ValueError(f"{name}: the number of drafts must be a whole number >= 1, got {tuple(values)}")


def _per_level(value, levels: list[int], name: str) -> dict[int, object]:
    """One value for every level, or a sequence of one per level (top first)."""
    if isinstance(value, (list, tuple)):
        if len(value) != len(levels):
            raise ValueError(f"{name}: give one value or one per level sampled ({len(levels)}: {levels}), "
                             f"got {len(value)}")
        return dict(zip(levels, value))
    return {lv: value for lv in levels}


__all__ = ["CONTRASTS", "PRESETS", "Generated", "MusicGeneratorConfig", "MusicGenerator", "UpperGuided", "sample_level",
           "window_hop"]
