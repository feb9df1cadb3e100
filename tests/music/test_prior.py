"""TokenPrior: exact normalization with every kind of conditioning, causality for every attention pattern and
mixed stacks, cached == full forward (step by step and with a prefilled prompt), cached == naive sampling,
save / load, float64, and a one-step training run of a top prior and an upsampler."""
from __future__ import annotations

import itertools

import pytest
import torch

import arsound
from arsound.core.model import Canvas
from arsound.core.train import Trainer, TrainConfig
from arsound.music.prior import TokenPrior, TokenPriorConfig

STACKS = [("row",), ("column",), ("prev_row",), ("causal",), ("row", "column", "prev_row")]


def tiny(attention=("row", "column", "prev_row"), upper=True, label=True, timing=True, seed=0, **kw):
    cfg = TokenPriorConfig(**{**dict(vocab=5, context=12, dim=16, layers=3, heads=2, block=3,
                                     attention=tuple(attention), num_labels=3 if label else 0, timing=timing,
                                     timing_bins=4, upper_vocab=4 if upper else 0, ratio=3, cond_depth=2), **kw})
    torch.manual_seed(seed)
    model = TokenPrior(cfg).eval()
    with torch.no_grad():  # livelier than GPT-2's init, so that comparisons are not trivial
        for p in model.parameters():
            p.add_(0.2 * torch.randn_like(p))
    return model


def conds(model, B, T, seed=1):
    g = torch.Generator().manual_seed(seed)
    out = {}
    if model.config.num_labels:
        out["label"] = torch.randint(0, model.config.num_labels, (B,), generator=g)
    if model.config.timing:
        out["start"], out["total"] = torch.full((B,), 7), torch.full((B,), 40)
    if model.config.upper_vocab:
        out["upper"] = torch.randint(0, model.config.upper_vocab, (B, -(-T // model.config.ratio)), generator=g)
    return out


def test_normalized_with_every_kind_of_conditioning():
    model = tiny(context=4, block=2, ratio=2)
    x = torch.tensor(list(itertools.product(range(5), repeat=4)))                # all 625 sequences of 4
    cond = {k: v[:1].expand(len(x), *v.shape[1:]) for k, v in conds(model, 1, 4).items()}
    with torch.no_grad():
        lp = model.log_prob(x, **cond).double()
    assert abs(lp.exp().sum().item() - 1.0) < 1e-5


@pytest.mark.parametrize("attention", STACKS, ids=["-".join(s) for s in STACKS])
def test_causal_by_perturbation(attention):
    """Changing token t never changes the logits of positions <= t; it changes the next one."""
    model = tiny(attention)
    B, T = 2, 12
    x = torch.randint(0, 5, (B, T), generator=torch.Generator().manual_seed(0))
    cond = conds(model, B, T)
    with torch.no_grad():
        base = model(x, **cond)
        for t in range(T - 1):
            y = x.clone()
            y[:, t] = (y[:, t] + 1) % 5
            diff = (model(y, **cond) - base).abs().amax((0, 2))
            assert (diff[:t + 1] == 0).all() and diff[t + 1] > 0, t


@pytest.mark.parametrize("attention", STACKS, ids=["-".join(s) for s in STACKS])
def test_cached_steps_equal_the_full_forward(attention):
    """Teacher forcing through the cached step: one token at a time, and with a prompt prefix fed as one chunk
    first; every position's logits equal the full forward within 1e-5."""
    model = tiny(attention)
    B, T = 3, 12
    x = torch.randint(0, 5, (B, T), generator=torch.Generator().manual_seed(2))
    cond = conds(model, B, T)
    with torch.no_grad():
        full = model(x, **cond)
        for p in (0, 5):                                                          # prefix 0: no chunk
            prompt = torch.full((B, T), -1)
            prompt[:, :p] = x[:, :p]
            canvas = Canvas(model, B, prompt, greedy=True, shape=(T,), order=torch.arange(T))
            got = []
            with model.steps(canvas, **cond) as step:
                prev = None
                for s in range(T):
                    got.append(step(s, prev).clone())
                    prev = x[:, s]
            torch.testing.assert_close(torch.stack(got, 1), full, atol=1e-5, rtol=0)


def test_cached_sampling_equals_naive_and_keeps_the_prompt():
    model = tiny()
    B, T = 3, 12
    cond = conds(model, B, T)
    prompt = torch.full((B, T), -1)
    prompt[:, :4] = torch.randint(0, 5, (B, 4))
    prompt[1, 9] = 2
    u = torch.rand(B, T, 1, generator=torch.Generator().manual_seed(5))
    for kw in ({}, {"prompt": prompt}):
        fast = model.sample(B, uniforms=u, **kw, **cond)
        naive = model.sample(B, uniforms=u, cached=False, **kw, **cond)
        assert torch.equal(fast, naive)
    assert (fast[prompt >= 0] == prompt[prompt >= 0]).all()
    assert torch.equal(model.sample(B, greedy=True, **cond), model.sample(B, greedy=True, cached=False, **cond))


def test_save_load_and_float64(tmp_path):
    model = tiny()
    x = torch.randint(0, 5, (2, 12))
    cond = conds(model, 2, 12)
    arsound.save_pretrained(model, tmp_path / "prior")
    loaded = arsound.load(tmp_path / "prior")
    with torch.no_grad():
        assert torch.equal(loaded.log_prob(x, **cond), model.log_prob(x, **cond))
        lp64 = tiny().double().log_prob(x, **cond)
        assert lp64.dtype == torch.float64
        torch.testing.assert_close(lp64, model.log_prob(x, **cond).double(), rtol=1e-4, atol=1e-4)


def test_conditioning_errors_are_clear():
    model = tiny()
    x = torch.randint(0, 5, (2, 12))
    with pytest.raises(ValueError, match="needs an instrument label"):
        model(x, upper=torch.zeros(2, 4, dtype=torch.long))
    with pytest.raises(ValueError, match=r"needs upper codes \[B, 4\]"):
        model(x, label=torch.zeros(2, dtype=torch.long), upper=torch.zeros(2, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="longer than the prior's context"):
        model(torch.zeros(2, 13, dtype=torch.long), label=torch.zeros(2, dtype=torch.long),
              upper=torch.zeros(2, 5, dtype=torch.long))
    with pytest.raises(ValueError, match="unknown attention patterns"):
        TokenPrior(TokenPriorConfig(attention=("diagonal",)))


@pytest.mark.parametrize("upper", [False, True], ids=["top", "upsampler"])
def test_one_training_step(upper, tmp_path):
    model = tiny(upper=upper, label=not upper)
    B, T = 8, 12
    g = torch.Generator().manual_seed(0)
    data = [{"x": torch.randint(0, 5, (T,), generator=g), **{k: v[0] for k, v in conds(model, 1, T, seed=i).items()}}
            for i in range(B)]
    cfg = TrainConfig(steps=1, batch_size=4, eval_every=1, ckpt_every=1, out_dir=str(tmp_path), progress=False,
                      device="cpu")
    result = Trainer(model.train(), cfg, data, data[:4]).fit()
    assert torch.isfinite(torch.tensor(result["loss"])) and (tmp_path / "model" / "config.json").is_file()


def test_condition_dropout():
    """A row of -1 upper codes drops them: that row's logits equal the prior's with the conditioner's output zeroed,
    the other rows are untouched, it stays normalized, and only a prior trained with cond_dropout takes it. In
    training, about cond_dropout of the windows lose their codes."""
    model = tiny(cond_dropout=0.25)
    B, T = 3, 12
    x = torch.randint(0, 5, (B, T), generator=torch.Generator().manual_seed(3))
    cond = conds(model, B, T)
    dropped = cond["upper"].clone()
    dropped[1] = -1
    with torch.no_grad():
        full, got = model(x, **cond), model(x, **{**cond, "upper": dropped})
        torch.testing.assert_close(got[[0, 2]], full[[0, 2]], atol=0, rtol=0)
        assert (got[1] - full[1]).abs().max() > 1e-3
        model.upper.norm.weight.zero_()                                          # the conditioner now adds nothing
        model.upper.norm.bias.zero_()
        torch.testing.assert_close(got[1], model(x, **cond)[1], atol=1e-6, rtol=0)
    small = tiny(cond_dropout=0.25, context=4, block=2, ratio=2)
    xs = torch.tensor(list(itertools.product(range(5), repeat=4)))
    c = {k: v[:1].expand(len(xs), *v.shape[1:]) for k, v in conds(small, 1, 4).items()}
    with torch.no_grad():
        lp = small.log_prob(xs, **{**c, "upper": torch.full((len(xs), 2), -1)}).double()
    assert abs(lp.exp().sum().item() - 1.0) < 1e-5
    with pytest.raises(ValueError, match="never learned to go without its upper codes"):
        tiny()(x, **{**cond, "upper": dropped})
    part = cond["upper"].clone()
    part[0, 1] = -1
    with pytest.raises(ValueError, match="a whole row -1"):
        model(x, **{**cond, "upper": part})
    with pytest.raises(ValueError, match="cond_dropout must be in"):
        tiny(upper=False, cond_dropout=0.1)
    # training: the share of windows whose logits equal the unconditioned ones is near cond_dropout
    many = {k: v[:1].expand(400, *v.shape[1:]) for k, v in cond.items()}
    xx = x[:1].expand(400, T)
    model = tiny(cond_dropout=0.25).train()                                     # dropout 0: only the codes drop
    torch.manual_seed(0)
    with torch.no_grad():
        train_out = model(xx, **many)
        none = model.eval()(xx, **{**many, "upper": torch.full_like(many["upper"], -1)})
    share = ((train_out - none).abs().amax((1, 2)) < 1e-6).float().mean().item()
    assert 0.18 < share < 0.32, share


def test_warm_start_adds_instrument_labels_starting_as_the_same_function(tmp_path):
    """An upsampler trained without labels warm-starts one with them: the new embedding starts at zero, so every
    label gives the source's logits; the rest of the config must still match, and labels are never dropped."""
    from arsound.core.checkpoint import CheckpointError, save_pretrained, warm_start

    src = tiny(label=False)
    save_pretrained(src, tmp_path / "src")
    model = tiny(label=True, seed=3, label_names=("choir", "organ", "piano"))
    assert warm_start(model, tmp_path / "src", added=("num_labels", "label_names")) == ["label_emb.weight"]
    x, cond = torch.randint(0, 5, (4, 12)), conds(src, 4, 12)
    with torch.no_grad():
        want = src(x, **cond)
        for label in range(3):
            assert torch.equal(model.eval()(x, label=torch.full((4,), label), **cond), want)
    with pytest.raises(CheckpointError, match="num_labels"):                                 # not asked for
        warm_start(tiny(label=True), tmp_path / "src")
    save_pretrained(model, tmp_path / "labelled")
    for other in (tiny(label=False), tiny(label=True, label_names=("a", "b", "c")), tiny(label=True, dim=8)):
        with pytest.raises(CheckpointError, match="cannot warm-start"):   # labels dropped or renamed, width changed
            warm_start(other, tmp_path / "labelled", added=("num_labels", "label_names"))
