"""MusicGenerator: the hierarchical sampler proved with a rule-following "prior" (window stitching, hop
ratios, conditioning slices, labels, timing, for lengths that fit no window), then with real TokenPriors:
exact lengths, primed / continued / upsampled modes keeping given codes bit-identical, seeds, previews, the
codes format, save / load and clear errors."""
from __future__ import annotations

import contextlib
from dataclasses import replace

import pytest
import torch
from torch import nn

import arsound
from arsound.audio.codes import load_codes, save_codes
from arsound.audio.vqvae import QuantizerConfig, VQVAE, VQVAEConfig
from arsound.core.distributions import Categorical
from arsound.core.model import ARModel
from arsound.music.generator import MusicGenerator, sample_level, window_hop
from arsound.music.prior import TokenPrior, TokenPriorConfig

K = 16             # codes per level
SR = 16000
HOPS = (4, 16, 64)  # ratio 4 between levels
CTX = {2: 8, 1: 12, 0: 16}


def tokenizer_config() -> VQVAEConfig:
    return VQVAEConfig(sample_rate=SR, hops=HOPS, stride=4, width=8, depth=1, dilation_growth=3,
                       quantizer=QuantizerConfig(num_codes=K, dim=8), stft_ffts=(256, 128))


def prior_configs(labels=("organ", "piano", "strings"), cond_dropout=0.0) -> tuple[TokenPriorConfig, ...]:
    return tuple(TokenPriorConfig(vocab=K, context=CTX[lv], dim=16, layers=3, heads=2, block=4, level=lv,
                                  num_labels=len(labels), label_names=tuple(labels), timing=True, timing_bins=4,
                                  upper_vocab=0 if lv == 2 else K, ratio=4, cond_depth=2,
                                  cond_dropout=0.0 if lv == 2 else cond_dropout) for lv in (2, 1, 0))


def build(seed: int = 0, labels=("organ", "piano", "strings"), cond_dropout=0.0) -> MusicGenerator:
    from arsound.music.generator import MusicGeneratorConfig

    torch.manual_seed(seed)
    gen = MusicGenerator(MusicGeneratorConfig(tokenizer=tokenizer_config(), priors=prior_configs(labels, cond_dropout),
                                              name="test-tokenizer"))
    with torch.no_grad():  # livelier than the initialization, so that different draws differ
        for p in gen.priors.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return gen.eval()


# ---- a "prior" that follows a known rule ----------------------------------------------------------------
def rule(prev: int, pos: int, up: int, label: int) -> int:
    """The code at absolute position ``pos`` of a level: depends on the code before it, the position, the
    upper code above it and the instrument, so any slip in stitching, slicing or labels changes the result."""
    return (prev + 3 * pos + 5 * up + 7 * label + 1) % K


class RulePrior(ARModel):
    """Emits ``rule(...)`` as a certain (one-hot, +60 logit) distribution at every step; records its windows."""

    sample_unit = "token"

    def __init__(self, config: TokenPriorConfig, log: list) -> None:
        super().__init__(config)
        self.head = Categorical(config.vocab)
        self.anchor = nn.Parameter(torch.zeros(()))  # gives the module a device
        self.log = log

    @property
    def event_shape(self):
        return (self.config.context,)

    @contextlib.contextmanager
    def steps(self, canvas, label=None, start=None, total=None, upper=None):
        s0, ratio = int(start[0]), self.config.ratio
        self.log.append(dict(level=self.config.level, start=s0, length=canvas.D, total=int(total[0]),
                             upper=None if upper is None else upper.clone(), label=label.clone()))

        def step(s, prev):
            prev = torch.zeros(canvas.n, dtype=torch.long) if prev is None else prev
            up = upper[:, s // ratio] if upper is not None else torch.zeros(canvas.n, dtype=torch.long)
            code = [rule(int(p), s0 + s, int(u), int(lab)) for p, u, lab in zip(prev, up, label)]
            return 60.0 * nn.functional.one_hot(torch.tensor(code), K).float()

        yield step


def expected_codes(totals: dict, label: int, top_given=None) -> dict:
    """The codes the rule implies at every level, computed directly (no windows)."""
    out, upper = {}, None
    for lv in (2, 1, 0):
        codes, prev = [], 0
        for p in range(totals[lv]):
            if lv == 2 and top_given is not None and p < len(top_given):
                code = int(top_given[p])
            else:
                code = rule(prev, p, 0 if upper is None else upper[p // 4], label)
            codes.append(code)
            prev = code
        out[lv] = torch.tensor(codes)
        upper = codes
    return out


def with_rules(gen: MusicGenerator) -> list:
    log = []
    for lv, prior in list(gen.priors.items()):
        gen.priors[lv] = RulePrior(prior.config, log)
    return log


@pytest.mark.parametrize("seconds,fraction", [(0.0571, 0.75), (0.1003, 0.5), (0.004, 0.5)])
def test_windows_stitch_slice_and_condition_exactly(seconds, fraction):
    gen = build()
    log = with_rules(gen)
    samples = round(seconds * SR)
    out = gen.generate(seconds, n=2, instrument="piano", hop_fraction=fraction, seed=0)
    totals = gen.tokens(samples)
    assert totals[2] == -(-samples // 64) and totals[1] == 4 * totals[2] and totals[0] == 16 * totals[2]
    want = expected_codes(totals, label=1)
    for lv in (2, 1, 0):
        assert out.codes[lv].shape == (2, totals[lv])
        assert torch.equal(out.codes[lv][0], want[lv]) and torch.equal(out.codes[lv][1], want[lv]), lv
        # windows: start 0, slide by the hop (a multiple of the ratio), the last one ends at the total
        windows = [w for w in log if w["level"] == lv]
        hop = window_hop(CTX[lv], fraction, 1 if lv == 2 else 4)
        assert [w["start"] for w in windows] == list(range(0, len(windows) * hop, hop))
        assert windows[-1]["start"] + windows[-1]["length"] == totals[lv]
        assert all(w["length"] == min(CTX[lv], totals[lv] - w["start"]) for w in windows)
        assert all(w["total"] == totals[lv] and (w["label"] == 1).all() for w in windows)
        for w in windows:  # the upper codes handed over are exactly those above the window
            if lv < 2:
                above = out.codes[lv + 1][:, w["start"] // 4:-(-(w["start"] + w["length"]) // 4)]
                assert torch.equal(w["upper"], above)
    assert out.audio.shape == (2, samples) and out.level == 0


def test_piece_position_sets_the_timing_of_every_window():
    """A clip placed inside a longer piece: each level's windows start at the clip's offset in that level's
    tokens and are told the piece's length (the default, a clip that is the whole piece, is checked above)."""
    gen = build()
    log = with_rules(gen)
    seconds, piece, offset = 0.1003, 0.5, 0.2                  # 26 top tokens in a piece of 125, from token 50
    gen.generate(seconds, n=1, instrument="organ", piece_seconds=piece, offset_seconds=offset, seed=0)
    totals = gen.tokens(round(seconds * SR))
    for lv in (2, 1, 0):
        ratio = 4 ** (2 - lv)
        windows = [w for w in log if w["level"] == lv]
        hop = window_hop(CTX[lv], 0.5, 1 if lv == 2 else 4)
        assert [w["start"] for w in windows] == [50 * ratio + k * hop for k in range(len(windows))]
        assert windows[-1]["start"] + windows[-1]["length"] == 50 * ratio + totals[lv]
        assert all(w["total"] == 125 * ratio for w in windows)
    offsets, pieces = gen.position(round(seconds * SR))
    assert offsets == {2: 0, 1: 0, 0: 0} and pieces == {2: None, 1: None, 0: None}
    with pytest.raises(ValueError, match="does not fit in a piece of 0.2 s"):
        gen.generate(seconds, piece_seconds=0.2, offset_seconds=0.15)
    with pytest.raises(ValueError, match="an offset needs piece_seconds"):
        gen.generate(seconds, offset_seconds=0.1)
    with pytest.raises(ValueError, match="does not fit in a piece of 30 tokens"):
        sample_level(gen.priors["2"], 26, 1, label=torch.zeros(1, dtype=torch.long), offset=10, piece=30)


def test_upsampling_given_top_codes_follows_them():
    gen = build()
    with_rules(gen)
    top = torch.randint(0, K, (9,), generator=torch.Generator().manual_seed(3))
    out = gen.generate(n=1, codes=[[], [], top], instrument="organ", hop_fraction=0.5)
    want = expected_codes({2: 9, 1: 36, 0: 144}, label=0, top_given=top)
    for lv in (2, 1, 0):
        assert torch.equal(out.codes[lv][0], want[lv]), lv
    assert out.audio.shape == (1, 9 * 64)


def test_upsampling_one_row_of_top_codes_per_clip():
    """codes as [n, T]: each clip follows its own row, as it would alone."""
    gen = build()
    with_rules(gen)
    tops = torch.randint(0, K, (2, 9), generator=torch.Generator().manual_seed(5))
    out = gen.generate(n=2, codes=[[], [], tops], instrument="organ", hop_fraction=0.5)
    for i in range(2):
        want = expected_codes({2: 9, 1: 36, 0: 144}, label=0, top_given=tops[i])
        for lv in (2, 1, 0):
            assert torch.equal(out.codes[lv][i], want[lv]), (i, lv)
    with pytest.raises(ValueError, match=r"LongTensor\[n=3, T\]"):
        gen.generate(n=3, codes=[[], [], tops], instrument="organ")


def test_continuing_keeps_the_given_start_and_follows_on():
    gen = build()
    with_rules(gen)
    head = torch.randint(0, K, (5,), generator=torch.Generator().manual_seed(4))
    out = gen.generate(13 * 64 / SR, codes=[[], [], head], instrument="strings", hop_fraction=0.5)
    want = expected_codes({2: 13, 1: 52, 0: 208}, label=2, top_given=head)
    assert torch.equal(out.codes[2][0, :5], head) and torch.equal(out.codes[2][0], want[2])
    assert torch.equal(out.codes[0][0], want[0])


def test_sample_level_checks_its_upper_codes():
    gen = build()
    with pytest.raises(ValueError, match="upper codes"):
        sample_level(gen.priors["1"], 20, 1, upper=torch.zeros(1, 4, dtype=torch.long))
    with pytest.raises(ValueError, match="hop_fraction"):
        window_hop(16, 1.5)


# ---- real priors ------------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def gen():
    return build()


def test_length_seed_batch_and_per_level_settings(gen):
    a = gen.generate(0.0437, n=3, seed=5, instrument="organ", temperature=(1.0, 0.9, 0.8), top_k=(None, 8, 8))
    b = gen.generate(0.0437, n=3, seed=5, instrument="organ", temperature=(1.0, 0.9, 0.8), top_k=(None, 8, 8))
    c = gen.generate(0.0437, n=3, seed=6, instrument="organ", temperature=(1.0, 0.9, 0.8), top_k=(None, 8, 8))
    assert a.audio.shape == (3, round(0.0437 * SR))
    assert torch.equal(a.audio, b.audio) and all(torch.equal(a.codes[lv], b.codes[lv]) for lv in (2, 1, 0))
    assert not torch.equal(a.codes[0], c.codes[0])
    assert len({tuple(r.tolist()) for r in a.codes[0]}) == 3  # three different clips in one batch
    with pytest.raises(ValueError, match="one per level"):
        gen.generate(0.05, instrument="organ", temperature=(1.0, 0.9))


def test_primed_mode_keeps_the_prompt_codes_bit_identical(gen):
    noise = torch.randn(300, generator=torch.Generator().manual_seed(0))
    prompt = 0.3 * torch.sin(torch.arange(300) * 0.07) + 0.05 * noise
    out = gen.generate(0.06, n=2, prompt=prompt, seed=1, instrument="piano")
    enc = gen.vqvae.encode(prompt[None, :256])  # whole top tokens only: 256 of 300 samples
    for lv, hop in enumerate(HOPS):
        kept = 256 // hop
        assert torch.equal(out.codes[lv][:, :kept], enc[lv].expand(2, -1)), lv
    assert not torch.equal(out.codes[2][0, 4:], out.codes[2][1, 4:])  # continued differently per clip
    with pytest.raises(ValueError, match="shorter than one top-level token"):
        gen.generate(0.06, prompt=prompt[:63], instrument="piano")
    with pytest.raises(ValueError, match="shorter than the"):
        gen.generate(0.01, prompt=prompt, instrument="piano")


def test_previews_and_stop_level(gen):
    seen = []
    out = gen.generate(0.05, n=2, seed=2, instrument="organ", stop_level=1,
                       on_level=lambda lv, codes, audio: seen.append((lv, codes.shape, audio.shape)))
    samples = round(0.05 * SR)
    assert seen == [(2, (2, 13), (2, samples)), (1, (2, 52), (2, samples))]
    assert out.level == 1 and set(out.codes) == {2, 1} and out.audio.shape == (2, samples)
    # the top level alone, then upsampled from its codes: the top is kept exactly
    cf = gen.codes_file(out, 1)
    assert [len(c) for c in cf.codes] == [0, 52, 13]
    up = gen.generate(codes=gen.check_codes(cf), seed=3, instrument="organ")
    assert torch.equal(up.codes[2][0], out.codes[2][1]) and torch.equal(up.codes[1][0], out.codes[1][1])
    assert up.codes[0].shape == (1, 208)


def test_on_token_counts_every_position_once_and_can_stop(gen):
    ticks = []
    out = gen.generate(0.05, n=2, seed=2, instrument="organ", on_token=lambda *a: ticks.append(a))
    for lv in (2, 1, 0):          # several windows per level (context 8 / 12 / 16): positions 1..total, in order
        total = out.codes[lv].shape[1]
        assert [d for l, d, t in ticks if l == lv] == list(range(1, total + 1))
        assert {t for l, d, t in ticks if l == lv} == {total}

    class Stop(Exception):
        pass

    def stop(level, done, total):
        if level == 1 and done == 5:
            raise Stop

    with pytest.raises(Stop):
        gen.generate(0.05, n=2, seed=2, instrument="organ", on_token=stop)


def test_codes_round_trip_and_foreign_codes_refused(gen, tmp_path):
    out = gen.generate(0.03, n=1, seed=0, instrument="organ")
    path = save_codes(tmp_path / "c.npz", gen.codes_file(out))
    cf = load_codes(path)
    assert [torch.equal(a, out.codes[lv][0]) for lv, a in enumerate(cf.codes)] == [True] * 3
    assert cf.length == out.audio.shape[-1] and cf.model == "test-tokenizer"
    other = build(seed=1)
    with pytest.raises(ValueError, match="not by this generator"):
        other.check_codes(cf, "c.npz")


def test_errors_are_clear(gen):
    with pytest.raises(ValueError, match="seconds must be > 0"):
        gen.generate(0, instrument="organ")
    with pytest.raises(ValueError, match="unknown instrument 'banjo'"):
        gen.generate(0.05, instrument="banjo")
    with pytest.raises(ValueError, match="stop_level"):
        gen.generate(0.05, instrument="organ", stop_level=5)
    with pytest.raises(ValueError, match="NaN"):
        gen.generate(0.05, prompt=torch.full((128,), float("nan")), instrument="organ")
    with pytest.raises(ValueError, match="codes must lie in"):
        gen.generate(0.05, codes=[[], [], [99]], instrument="organ")
    with pytest.raises(ValueError, match="consecutive"):
        MusicGenerator(type(gen.config)(tokenizer=tokenizer_config(), priors=prior_configs()[::2]))
    top, middle, bottom = prior_configs()
    renamed = replace(middle, label_names=("organ", "piano", "choir"))
    for upsampler in (renamed, replace(middle, num_labels=2, label_names=("organ", "piano"))):
        with pytest.raises(ValueError, match="upsampler of level 1 takes the instruments"):   # not the top's
            MusicGenerator(type(gen.config)(tokenizer=tokenizer_config(), priors=(top, upsampler, bottom)))
    unlabelled = replace(top, num_labels=0, label_names=())
    with pytest.raises(ValueError, match=r"the top prior \[\]"):
        MusicGenerator(type(gen.config)(tokenizer=tokenizer_config(), priors=(unlabelled, middle, bottom)))


def test_save_load_generates_the_same(gen, tmp_path):
    arsound.save_pretrained(gen, tmp_path / "music")
    again = arsound.load(tmp_path / "music")
    assert isinstance(again, MusicGenerator) and again.levels == [2, 1, 0]
    a = gen.generate(0.02, seed=9, instrument="strings")
    b = again.generate(0.02, seed=9, instrument="strings")
    assert torch.equal(a.audio, b.audio)


def test_assemble_copies_trained_parts():
    vq = VQVAE(tokenizer_config())
    priors = [TokenPrior(c) for c in prior_configs()]
    gen = MusicGenerator.assemble(vq, priors, name="x")
    assert torch.equal(gen.priors["1"].tok_emb.weight, priors[1].tok_emb.weight)
    assert torch.equal(gen.vqvae.quantizers[0].codebook, vq.quantizers[0].codebook)


def test_no_instrument_draws_one_per_clip_from_the_seed(gen):
    """A labelled hierarchy asked for no instrument draws one per clip from the seed: named in the result, the
    same for the same seed, and every clip then conditioned on its own (the same as asking for it by name)."""
    names = list(gen.priors[str(gen.levels[0])].config.label_names)
    a, b = gen.generate(0.05, n=6, seed=3), gen.generate(0.05, n=6, seed=3)
    assert a.instruments == b.instruments and set(a.instruments) <= set(names)
    assert torch.equal(a.audio, b.audio)
    drawn = {tuple(gen.generate(0.05, n=6, seed=s, decode=False).instruments) for s in range(4)}
    assert len({i for d in drawn for i in d}) > 1
    assert gen.generate(0.05, instrument="organ").instruments == ["organ"]
    ruled = build()
    with_rules(ruled)
    seconds = 0.0571
    out = ruled.generate(seconds, n=6, seed=5)
    totals = ruled.tokens(round(seconds * SR))
    for i, name in enumerate(out.instruments):                   # each clip follows the rule of its own label
        want = expected_codes(totals, label=names.index(name))
        assert all(torch.equal(out.codes[lv][i], want[lv]) for lv in (2, 1, 0)), (i, name)


def test_one_instrument_per_clip_reaches_every_level():
    """``instrument=[...]``, one per clip: each clip follows the rule of its own label at every level, also when
    its top codes are given and only the upsamplers run (they take the label too); a wrong count is refused."""
    ruled = build()
    with_rules(ruled)
    seconds, asked = 14 * 64 / SR, ["strings", "organ", "piano", "organ"]              # whole top tokens
    totals = ruled.tokens(round(seconds * SR))
    want = [expected_codes(totals, label=("organ", "piano", "strings").index(a)) for a in asked]
    out = ruled.generate(seconds, n=4, seed=5, instrument=asked)
    assert out.instruments == asked
    tops = torch.stack([w[2] for w in want])
    up = ruled.generate(seconds, n=4, seed=6, instrument=asked, codes=[[], [], tops])
    for i in range(4):
        assert all(torch.equal(out.codes[lv][i], want[i][lv]) for lv in (2, 1, 0)), i
        assert torch.equal(up.codes[0][i], want[i][0])
    with pytest.raises(ValueError, match=r"one per clip \(4\), got 2"):
        ruled.generate(seconds, n=4, instrument=["organ", "piano"])
    with pytest.raises(ValueError, match="unknown instrument 'banjo'"):
        ruled.generate(seconds, n=2, instrument=["organ", "banjo"])


def saved_with(tmp_path, **fields) -> tuple[MusicGenerator, MusicGenerator]:
    """A debug hierarchy, and the same weights with config ``fields`` set, saved and loaded again."""
    plain = build()
    tuned = MusicGenerator(replace(plain.config, **fields))
    tuned.load_state_dict(plain.state_dict())
    arsound.save_pretrained(tuned, tmp_path / "tuned")
    return plain, arsound.load(tmp_path / "tuned")


def test_default_temperatures_are_the_configs(tmp_path):
    """A hierarchy saved with per-level temperatures samples with them when none is asked for (and 1 everywhere
    without); a wrong count or value is refused when it is built."""

    plain, tuned = saved_with(tmp_path, temperature=(1.0, 0.5, 0.5))
    assert plain.temperatures == {2: 1.0, 1: 1.0, 0: 1.0}
    assert tuned.temperatures == {2: 1.0, 1: 0.5, 0: 0.5}
    kw = dict(seconds=0.05, n=2, seed=4, instrument="organ", decode=False)
    chosen = tuned.generate(**kw).codes
    asked = tuned.generate(**kw, temperature=(1.0, 0.5, 0.5)).codes
    assert all(torch.equal(chosen[lv], asked[lv]) for lv in (2, 1, 0))
    ones = plain.generate(**kw).codes
    assert all(torch.equal(ones[lv], plain.generate(**kw, temperature=1.0).codes[lv]) for lv in (2, 1, 0))
    assert not torch.equal(chosen[0], ones[0])
    preview = tuned.generate(**kw, stop_level=1).codes                      # the defaults of the levels sampled
    assert torch.equal(preview[1], chosen[1])
    with pytest.raises(ValueError, match="config.temperature: give one value or one per level"):
        MusicGenerator(replace(plain.config, temperature=(1.0, 0.5)))
    with pytest.raises(ValueError, match="temperature must be a finite number > 0"):
        MusicGenerator(replace(plain.config, temperature=(1.0, 0.0, 0.5)))


# ---- upper-code guidance ----------------------------------------------------------------------------------
def test_upper_guided_head_draws_from_the_contrasted_logits():
    """Both halves of a guided batch get the token the contrasted logits (1 + w) l - w l' give with the first
    half's uniforms, through temperature and top-k / top-p as the plain head applies them."""
    from arsound.music.generator import UpperGuided

    g = torch.Generator().manual_seed(0)
    params, u = torch.randn(6, K, generator=g) * 3, torch.rand(6, 1, generator=g)
    for w, top_k, top_p in ((0.5, None, None), (2.0, 5, None), (1.0, None, 0.8)):
        head = UpperGuided(K, w, top_k=top_k, top_p=top_p)
        want = Categorical(K, top_k=top_k, top_p=top_p).sample((1 + w) * params[:3] - w * params[3:], u[:3],
                                                               temperature=0.7)
        assert torch.equal(head.sample(params, u, temperature=0.7), torch.cat([want, want]))
        mode = ((1 + w) * params[:3] - w * params[3:]).argmax(-1)
        assert torch.equal(head.mode(params), torch.cat([mode, mode]))
    plain = Categorical(K).sample(params[:3], u[:3])                       # w = 0: the plain draw
    assert torch.equal(UpperGuided(K, 0.0).sample(params, u)[:3], plain)


def test_guidance_contrasts_each_window_with_the_upper_codes_reversed():
    """With guidance an upsampler's window runs 2n rows: the clips under their upper codes, then under the whole
    clip's upper codes reversed in time (sliced at the same window); the draws follow the true codes."""
    gen = build()
    log = with_rules(gen)
    out = gen.generate(0.0571, n=2, instrument="piano", seed=0, guidance=1.5)
    want = expected_codes(gen.tokens(round(0.0571 * SR)), label=1)
    for lv in (2, 1, 0):
        assert torch.equal(out.codes[lv][0], want[lv]) and torch.equal(out.codes[lv][1], want[lv]), lv
    for w in log:
        if w["level"] == 2:
            assert w["upper"] is None and len(w["label"]) == 2            # the top level has nothing to contrast
            continue
        full = out.codes[w["level"] + 1]
        s, e = w["start"] // 4, -(-(w["start"] + w["length"]) // 4)
        assert torch.equal(w["upper"], torch.cat([full[:, s:e], full.flip(-1)[:, s:e]]))
        assert (w["label"] == 1).all() and len(w["label"]) == 4


def test_dropped_contrast_runs_the_second_half_without_upper_codes():
    """Upsamplers trained with condition dropout can be guided against no upper codes (rows of -1 in the second
    half of each window); the default still takes the reversed codes; the draws follow the true codes."""
    gen = build(cond_dropout=0.2)
    log = with_rules(gen)
    out = gen.generate(0.0571, n=2, instrument="piano", seed=0, guidance=1.5, contrast="dropped")
    want = expected_codes(gen.tokens(round(0.0571 * SR)), label=1)
    assert all(torch.equal(out.codes[lv][i], want[lv]) for lv in (2, 1, 0) for i in (0, 1))
    windows = [w for w in log if w["level"] < 2]
    assert windows
    for w in windows:
        full = out.codes[w["level"] + 1]
        s, e = w["start"] // 4, -(-(w["start"] + w["length"]) // 4)
        assert torch.equal(w["upper"], torch.cat([full[:, s:e], torch.full_like(full[:, s:e], -1)]))
    log.clear()
    gen.generate(0.0571, n=2, instrument="piano", seed=0, guidance=1.5)
    for w in (w for w in log if w["level"] < 2):
        full = out.codes[w["level"] + 1]
        s, e = w["start"] // 4, -(-(w["start"] + w["length"]) // 4)
        assert torch.equal(w["upper"], torch.cat([full[:, s:e], full.flip(-1)[:, s:e]]))


def test_contrasts_with_real_priors_and_their_errors(gen):
    """With real priors trained with condition dropout the two contrasts give different upsampled codes and the
    same top codes; asking an upsampler without condition dropout for "dropped" fails before sampling."""
    kw = dict(seconds=0.05, n=2, seed=3, instrument="organ", decode=False, guidance=2.0)
    learned = build(cond_dropout=0.2)
    dropped, reversed_ = learned.generate(**kw, contrast="dropped").codes, learned.generate(**kw).codes
    assert torch.equal(dropped[2], reversed_[2]) and not torch.equal(dropped[0], reversed_[0])
    assert all(torch.equal(reversed_[lv], learned.generate(**kw, contrast="reversed").codes[lv]) for lv in (2, 1, 0))
    mixed = learned.generate(**kw, contrast=("reversed", "dropped", "reversed")).codes       # per level
    assert torch.equal(mixed[1], dropped[1]) and not torch.equal(mixed[0], dropped[0])
    with pytest.raises(ValueError, match="level-1 upsampler never learned to go without its upper codes"):
        gen.generate(**kw, contrast="dropped")
    with pytest.raises(ValueError, match="unknown guidance contrast 'none'"):
        gen.generate(**kw, contrast="none")
    assert gen.generate(**{**kw, "guidance": 0.0}, contrast="dropped").codes[0].shape == dropped[0].shape


def test_guidance_changes_only_the_upsampled_levels_and_is_repeatable(gen):
    kw = dict(seconds=0.05, n=2, seed=3, instrument="organ", decode=False)
    plain, guided = gen.generate(**kw).codes, gen.generate(**kw, guidance=2.0).codes
    assert torch.equal(plain[2], guided[2]) and not torch.equal(plain[0], guided[0])
    again = gen.generate(**kw, guidance=(0.0, 2.0, 2.0)).codes
    assert all(torch.equal(guided[lv], again[lv]) for lv in (2, 1, 0))
    zero = gen.generate(**kw, guidance=0.0).codes
    assert all(torch.equal(plain[lv], zero[lv]) for lv in (2, 1, 0))
    with pytest.raises(ValueError, match="guidance must be >= 0"):
        gen.generate(**kw, guidance=-1.0)
    with pytest.raises(ValueError, match="guidance: give one value or one per level"):
        gen.generate(**kw, guidance=(1.0, 1.0))


def test_default_guidance_is_the_configs(tmp_path):

    plain, tuned = saved_with(tmp_path, guidance=(0.0, 1.0, 0.0))
    assert plain.guidances == {2: 0.0, 1: 0.0, 0: 0.0}
    assert tuned.guidances == {2: 0.0, 1: 1.0, 0: 0.0}
    kw = dict(seconds=0.05, n=1, seed=1, instrument="piano", decode=False)
    chosen = tuned.generate(**kw).codes
    assert all(torch.equal(chosen[lv], tuned.generate(**kw, guidance=(0.0, 1.0, 0.0)).codes[lv]) for lv in (2, 1, 0))
    assert not torch.equal(chosen[1], tuned.generate(**kw, guidance=0.0).codes[1])
    with pytest.raises(ValueError, match="config.guidance: give one value or one per level"):
        MusicGenerator(replace(plain.config, guidance=(1.0, 1.0)))
    with pytest.raises(ValueError, match="config.guidance must be >= 0"):
        MusicGenerator(replace(plain.config, guidance=(0.0, -1.0, 0.0)))


# ---- drafts ----------------------------------------------------------------------------------------------
def test_drafts_keep_each_clips_draft_that_follows_the_upper_level_best(gen, monkeypatch):
    """With k drafts an upsampler draws k different versions of every clip and keeps, per clip, the one whose
    decoding agrees best in pitch with the decoding of the codes above it (each draft decoded alone here); the
    level below is drawn under the kept codes, and the top level is drawn once."""
    from arsound.audio.music_metrics import chroma_agreement, chroma_frames

    seen, best = [], MusicGenerator.best_drafts

    def spy(self, drafts, upper, level, samples):
        kept = best(self, drafts, upper, level, samples)
        seen.append((level, drafts.clone(), upper.clone(), kept.clone(), samples))
        return kept

    monkeypatch.setattr(MusicGenerator, "best_drafts", spy)
    out = gen.generate(0.05, n=2, seed=2, instrument=["organ", "piano"], drafts=(4, 3, 2))
    assert [s[0] for s in seen] == [1, 0]
    for level, drafts, upper, kept, samples in seen:
        assert drafts.shape[:2] == ((3, 2) if level == 1 else (2, 2)) and torch.equal(kept, out.codes[level])
        assert torch.equal(upper, out.codes[level + 1])                   # drawn under the kept codes above
        for i in range(2):
            assert len({tuple(d[i].tolist()) for d in drafts}) > 1        # different drafts of clip i
            ref = chroma_frames(gen.decode(upper[i:i + 1], level + 1, samples)[0].numpy(), SR)
            score = [chroma_agreement(chroma_frames(gen.decode(d[i:i + 1], level, samples)[0].numpy(), SR), ref)
                     for d in drafts]
            assert torch.equal(kept[i], drafts[max(range(len(score)), key=score.__getitem__)][i]), (level, i)
    one = gen.generate(0.05, n=2, seed=2, instrument=["organ", "piano"], drafts=1, decode=False)
    assert torch.equal(one.codes[2], out.codes[2])                        # the top level is not drafted


def test_drafts_keep_each_clips_conditions():
    """Every draft of clip i is drawn under clip i's upper codes, instrument and prompt: with a rule prior all
    drafts of a clip are the same and follow its own rule, the given top codes are kept."""
    ruled = build()
    with_rules(ruled)
    seconds, asked = 14 * 64 / SR, ["strings", "organ", "piano"]
    totals = ruled.tokens(round(seconds * SR))
    want = [expected_codes(totals, label=("organ", "piano", "strings").index(a)) for a in asked]
    out = ruled.generate(seconds, n=3, seed=5, instrument=asked, drafts=3)
    tops = torch.stack([w[2] for w in want])
    up = ruled.generate(seconds, n=3, seed=6, instrument=asked, codes=[[], [], tops], drafts=(1, 2, 3))
    for i in range(3):
        assert all(torch.equal(out.codes[lv][i], want[i][lv]) for lv in (2, 1, 0)), i
        assert all(torch.equal(up.codes[lv][i], want[i][lv]) for lv in (2, 1, 0)), i


def test_default_drafts_are_the_configs_and_bad_counts_are_refused(gen, tmp_path):
    plain, tuned = saved_with(tmp_path, drafts=(1, 3, 1))
    assert plain.drafts == {2: 1, 1: 1, 0: 1} and tuned.drafts == {2: 1, 1: 3, 0: 1}
    kw = dict(seconds=0.05, n=2, seed=1, instrument="piano", decode=False)
    chosen = tuned.generate(**kw).codes
    assert all(torch.equal(chosen[lv], tuned.generate(**kw, drafts=(1, 3, 1)).codes[lv]) for lv in (2, 1, 0))
    once = tuned.generate(**kw, drafts=1).codes
    assert all(torch.equal(once[lv], plain.generate(**kw).codes[lv]) for lv in (2, 1, 0))   # 1: as without drafts
    assert not torch.equal(chosen[1], once[1])
    for bad in (0, 1.5, True, (1, 0, 1)):
        with pytest.raises(ValueError, match="the number of drafts must be a whole number >= 1"):
            gen.generate(**kw, drafts=bad)
    with pytest.raises(ValueError, match="drafts: give one value or one per level"):
        gen.generate(**kw, drafts=(2, 2))
    with pytest.raises(ValueError, match="config.drafts: give one value or one per level"):
        MusicGenerator(replace(plain.config, drafts=(1, 2)))
    with pytest.raises(ValueError, match="config.drafts: the number of drafts must be"):
        MusicGenerator(replace(plain.config, drafts=(1, 0, 1)))
