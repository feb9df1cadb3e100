"""MADE specifics: the mask ensemble is a normalized mixture and its state survives save/load."""
import math

import torch

import arsound
from arsound.image import build
from tests.image.test_models import all_images


def test_mask_ensemble_is_log_mean_exp_and_normalized():
    model = build("made", shape=(1, 2, 2), levels=2, size="debug", num_masks=3).eval()
    x = all_images((1, 2, 2), 2)
    with torch.no_grad():
        ens = model.log_prob(x)
        per_mask = []
        for m in range(3):
            model.set_mask(m)
            per_mask.append(model.log_prob(x, reduce=False).flatten(1).sum(1))
    model.set_mask(0)
    assert torch.allclose(ens, torch.logsumexp(torch.stack(per_mask), 0) - math.log(3), atol=1e-6)
    assert abs(ens.double().exp().sum().item() - 1) < 1e-5
    # averaging the masks' logits instead would be a different (unnormalized) model: make sure we differ
    assert not torch.allclose(per_mask[0], per_mask[1])


def test_training_cycles_masks_and_checkpoint_keeps_the_current_one(tmp_path):
    model = build("made", shape=(1, 3, 3), levels=2, size="debug", num_masks=3).train()
    x = torch.randint(0, 2, (4, 1, 3, 3))
    seen = []
    for _ in range(4):
        model.loss(x)
        seen.append(int(model.mask_index))
    assert seen == [1, 2, 0, 1]
    arsound.save_pretrained(model, tmp_path / "m")
    loaded = arsound.load(tmp_path / "m")
    assert int(loaded.mask_index) == 1 and torch.equal(loaded.generation_order(), model.generation_order())
    with torch.no_grad():
        assert torch.equal(loaded.log_prob(x, reduce=False), model.eval().log_prob(x, reduce=False))


def test_every_mask_set_is_causal_along_its_own_order_and_orders_differ():
    """Order-agnostic training: each mask set is an AR model along its own ordering."""
    shape, levels = (3, 2, 2), 3
    torch.manual_seed(0)
    model = build("made", shape=shape, levels=levels, size="debug", num_masks=3).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.3 * torch.randn_like(p))
    x = torch.randint(0, levels, (4, *shape))
    orders = []
    for m in range(3):
        model.set_mask(m)
        order = model.generation_order()
        orders.append(order.tolist())
        with torch.no_grad():
            base = model.log_prob(x, reduce=False).flatten(1)
            for j in range(order.numel()):
                y = x.clone().flatten(1)
                y[:, order[j]] = (y[:, order[j]] + 1) % levels
                terms = model.log_prob(y.view_as(x), reduce=False).flatten(1)
                assert torch.allclose(terms[:, order[:j]], base[:, order[:j]], atol=1e-6), f"mask {m}, step {j}"
    assert orders[0] == list(range(12)) and len({tuple(o) for o in orders}) == 3


def test_ensemble_normalized_with_three_levels():
    model = build("made", shape=(3, 1, 2), levels=3, size="debug", num_masks=3).eval()
    with torch.no_grad():
        lp = model.log_prob(all_images((3, 1, 2), 3)).double()
    assert abs(lp.exp().sum().item() - 1) < 1e-5
