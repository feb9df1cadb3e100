"""PixelCNN and Gated PixelCNN: blind spot by gradient, cached sampling == naive, class conditioning."""
import pytest
import torch

import arsound
from arsound.core.model import Canvas
from arsound.image import build
from arsound.image.common import scale_input


def randomized(name, shape, levels, seed=0, **overrides):
    """A debug model with large random weights, so every allowed connection carries signal."""
    torch.manual_seed(seed)
    model = build(name, shape=shape, levels=levels, size="debug", **overrides).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    return model


# wider than "debug" for coverage-by-gradient tests: with 6 channels all head ReLUs of an output can
# be dead for a whole batch, which zeroes its gradient without any mask at fault
WIDE = dict(channels=12, head_channels=24)


def influence(model, shape, i, j, **cond):
    """``|d out[:, :, i, j] / d input|`` summed over a batch: ``Tensor[C, H, W]``."""
    x = torch.randint(0, model.config.levels, (8, *shape), generator=torch.Generator().manual_seed(0))
    h = scale_input(x, model.config.levels).requires_grad_()
    model.network(h, **cond)[:, :, i, j].sum().backward()
    return h.grad.abs().sum(0)


# ---- receptive fields ---------------------------------------------------------------------------
def test_gated_pixelcnn_has_no_blind_spot():
    """On 5x5 every pixel strictly before (i, j) in raster order reaches (i, j); no other pixel does.
    (Debug depth; wider than debug so that no output has all its ReLUs dead by chance.)"""
    shape = (1, 5, 5)
    model = randomized("gated_pixelcnn", shape, 2, **WIDE)
    for i in range(5):
        for j in range(5):
            g = influence(model, shape, i, j)[0].flatten()
            t = i * 5 + j
            assert (g[:t] > 0).all(), f"output ({i}, {j}) misses pixels {(g[:t] == 0).nonzero().flatten().tolist()}"
            assert (g[t:] == 0).all(), f"output ({i}, {j}) sees the current or a later pixel"


def test_plain_pixelcnn_blind_spot_exists_and_gated_covers_it():
    """7x7 mask A then 3x3 mask B: (i-1, j+4) never reaches (i, j) however deep the stack, while
    (i-2, j+4) and (i-1, j+3) do. The gated model sees (i-1, j+4)."""
    shape, (i, j) = (1, 6, 9), (5, 3)
    plain = randomized("pixelcnn", shape, 2, first_kernel=7, num_layers=4, **WIDE)
    g = influence(plain, shape, i, j)[0]
    assert g[i - 1, j + 4] == 0 and g[i - 1, j + 5] == 0   # the blind spot
    assert g[i - 2, j + 4] > 0 and g[i - 1, j + 3] > 0     # its neighbours are seen
    gated = randomized("gated_pixelcnn", shape, 2, first_kernel=7, num_layers=4, **WIDE)
    assert influence(gated, shape, i, j)[0][i - 1, j + 4] > 0


@pytest.mark.parametrize("name", ["pixelcnn", "gated_pixelcnn"])
def test_colour_channels_follow_rgb_order(name):
    """Channel c's output at a pixel sees that pixel's channels < c only."""
    shape = (3, 3, 3)
    model = randomized(name, shape, 4, **WIDE)
    x = torch.randint(0, 4, (8, *shape))
    h = scale_input(x, 4).requires_grad_()
    out = model.network(h).unflatten(1, (3, -1))  # (B, C, P, H, W)
    for c in range(3):
        (g,) = torch.autograd.grad(out[:, c, :, 1, 1].sum(), h, retain_graph=True)
        g = g.abs().sum(0)[:, 1, 1]  # (C,) at the same pixel
        assert (g[:c] > 0).all() and (g[c:] == 0).all(), f"channel {c}: {g.tolist()}"


# ---- cached sampling ----------------------------------------------------------------------------
CASES = [
    ("pixelcnn", (1, 5, 6), 2, 0),
    ("pixelcnn", (3, 4, 5), 4, 0),
    ("gated_pixelcnn", (1, 5, 6), 2, 0),
    ("gated_pixelcnn", (3, 4, 5), 4, 0),
    ("gated_pixelcnn", (1, 5, 6), 2, 3),
    ("gated_pixelcnn", (3, 3, 4), 3, 3),
]


def case_model(name, shape, levels, classes):
    extra = {"num_classes": classes} if classes else {}
    model = randomized(name, shape, levels, **extra)
    cond = {"y": torch.tensor([0, 2, 1, 2])} if classes else {}
    prompt = torch.full(shape, -1)
    prompt[:, 0, :3] = torch.randint(0, levels, (shape[0], 3))  # start of the first row
    prompt[:, 2, 1] = torch.randint(0, levels, (shape[0],))     # and one pixel further down
    return model, cond, prompt


@pytest.mark.parametrize("name,shape,levels,classes", CASES)
def test_cached_step_params_equal_forward(name, shape, levels, classes):
    """Teacher-forced through the cached path, element by element from a blank canvas: the parameters
    of every conditional match the full forward pass within 1e-5."""
    model, cond, _ = case_model(name, shape, levels, classes)
    target = torch.randint(0, levels, (4, *shape))
    with torch.no_grad():
        ref = model(target, **cond)  # (B, C, H, W, P)
    got = torch.full(ref.shape, float("nan"))
    canvas = Canvas(model, len(target), greedy=True)  # blank; every element is set to the target's below
    D = canvas.D
    with torch.no_grad(), model.steps(canvas, **cond) as step:
        prev = None
        for s, pos in enumerate(model.generation_order().tolist()):
            got.view(len(target), D, -1)[:, pos] = step(s, prev)
            canvas.flat[:, pos] = target.view(len(target), D)[:, pos]
            prev = canvas.flat[:, pos]
    assert torch.equal(canvas.x, target)
    assert torch.allclose(got, ref, atol=1e-5, rtol=0), (got - ref).abs().max()


@pytest.mark.parametrize("name,shape,levels,classes", CASES)
def test_cached_sampling_equals_naive(name, shape, levels, classes):
    model, cond, prompt = case_model(name, shape, levels, classes)
    n = 4
    for seed in range(3):
        gens = [torch.Generator().manual_seed(seed) for _ in range(2)]
        naive = model.sample(n, prompt=prompt, generator=gens[0], cached=False, **cond)
        fast = model.sample(n, prompt=prompt, generator=gens[1], **cond)
        assert torch.equal(naive, fast), f"seed {seed}"
        assert (fast[:, prompt >= 0] == prompt[prompt >= 0]).all()
    u = torch.rand(n, *shape, model.head.num_uniforms, generator=torch.Generator().manual_seed(9))
    assert torch.equal(model.sample(n, uniforms=u, temperature=0.7, cached=False, **cond),
                       model.sample(n, uniforms=u, temperature=0.7, **cond))
    assert torch.equal(model.sample(n, prompt=prompt, greedy=True, cached=False, **cond),
                       model.sample(n, prompt=prompt, greedy=True, **cond))


def test_cached_sampling_varies_with_seed_and_restores_train_mode():
    model = randomized("gated_pixelcnn", (1, 5, 6), 2).train()
    a = model.sample(4, generator=torch.Generator().manual_seed(0))
    b = model.sample(4, generator=torch.Generator().manual_seed(1))
    assert model.training and not torch.equal(a, b)


# ---- class conditioning -------------------------------------------------------------------------
def test_class_conditioning_changes_the_model():
    shape = (1, 5, 5)
    model = randomized("gated_pixelcnn", shape, 2, num_classes=3)
    x = torch.randint(0, 2, (4, *shape))
    with torch.no_grad():
        lp = [model.log_prob(x, y=torch.full((4,), k)) for k in range(3)]
        assert not torch.allclose(lp[0], lp[1]) and not torch.allclose(lp[1], lp[2])
        assert torch.equal(model.log_prob(x, y=1), lp[1])  # one label broadcasts to the batch
    # the first pixel has no context but the label, and still depends on it
    assert (influence(model, shape, 0, 0, y=0) == 0).all()
    p0 = model(x, y=torch.zeros(4, dtype=torch.long))[:, 0, 0, 0]
    p1 = model(x, y=torch.ones(4, dtype=torch.long))[:, 0, 0, 0]
    assert not torch.allclose(p0, p1)
    # normalized for every label: all 2**4 images of a 2x2 event space
    small = randomized("gated_pixelcnn", (1, 2, 2), 2, num_classes=3)
    allx = torch.tensor([[int(b) for b in f"{k:04b}"] for k in range(16)]).view(16, 1, 2, 2)
    with torch.no_grad():
        for k in range(3):
            assert abs(small.log_prob(allx, y=k).double().exp().sum().item() - 1) < 1e-5


def test_class_conditional_batches_and_errors():
    model = build("gated_pixelcnn", shape=(1, 6, 6), levels=2, size="debug", num_classes=10)
    x, y = torch.randint(0, 2, (3, 1, 6, 6)), torch.tensor([0, 5, 9])
    loss, metrics = model.loss({"x": x, "y": y})
    loss.backward()
    assert torch.isfinite(loss) and model.embed.weight.grad.abs().sum() > 0
    with pytest.raises(ValueError, match="class-conditional"):
        model.log_prob(x)
    with pytest.raises(ValueError, match=r"\[0, 10\)"):
        model.log_prob(x, y=torch.tensor([0, 1, 10]))
    with pytest.raises(ValueError, match="unconditional"):
        build("gated_pixelcnn", shape=(1, 6, 6), levels=2, size="debug").log_prob(x, y=y)


def test_class_conditional_save_load(tmp_path):
    model = randomized("gated_pixelcnn", (1, 4, 4), 2, num_classes=4)
    x, y = torch.randint(0, 2, (5, 1, 4, 4)), torch.tensor([0, 1, 2, 3, 1])
    arsound.save_pretrained(model, tmp_path / "g")
    loaded = arsound.load(tmp_path / "g").eval()
    assert loaded.config.num_classes == 4
    with torch.no_grad():
        assert torch.equal(model.log_prob(x, y=y), loaded.log_prob(x, y=y))
