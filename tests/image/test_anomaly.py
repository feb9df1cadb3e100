"""Likelihood-based anomaly detection (arsound/image/anomaly.py) on sklearn's 8x8 digits: AUROC against a
brute-force count, FGSM inside its epsilon ball, exact corruption rates, a trained MADE that finds noisy
digits unlikely, the `eval --anomaly` CLI path and the recipe's debug config."""
import itertools
import sys

import pytest
import torch
import torch.nn.functional as F

from arsound.data.images import load_images
from arsound.image.anomaly import (ClassifierConfig, DigitCNN, PixelMarginal, auroc, corrupt,
                                   evaluate_anomaly, fgsm, quantize, scores, to_unit, train_classifier)

EPS = 0.25


def brute_auroc(pos, neg):
    wins = sum(float(p > n) + 0.5 * float(p == n) for p in pos.tolist() for n in neg.tolist())
    return wins / (len(pos) * len(neg))


# ---- AUROC ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("method", ["auto", "sklearn", "ranks"])
def test_auroc_equals_pairwise_count(method):
    g = torch.Generator().manual_seed(0)
    pos = torch.randint(0, 6, (37,), generator=g).float() + 0.7  # many ties, shifted up
    neg = torch.randint(0, 6, (53,), generator=g).float()
    assert auroc(pos, neg, method) == pytest.approx(brute_auroc(pos, neg), abs=1e-12)
    assert auroc(pos + 100, neg, method) == 1.0 and auroc(neg, pos + 100, method) == 0.0
    assert auroc(torch.ones(4), torch.ones(3), method) == 0.5


def test_auroc_falls_back_to_ranks_without_sklearn(monkeypatch):
    g = torch.Generator().manual_seed(1)
    pos, neg = torch.randn(20, generator=g).round(decimals=1), torch.randn(30, generator=g).round(decimals=1)
    monkeypatch.setitem(sys.modules, "sklearn.metrics", None)  # `from sklearn.metrics import ...` fails
    with pytest.raises(ImportError):
        auroc(pos, neg, "sklearn")
    assert auroc(pos, neg) == pytest.approx(brute_auroc(pos, neg), abs=1e-12)


def test_auroc_rejects_empty_and_nonfinite():
    with pytest.raises(ValueError, match="at least one"):
        auroc(torch.tensor([]), torch.ones(3))
    with pytest.raises(ValueError, match="finite"):
        auroc(torch.tensor([float("nan")]), torch.ones(3))


# ---- conversions, FGSM, corruption ----------------------------------------------------------------------
def test_quantize_matches_dataset_binarization(gray):
    train, _ = gray
    assert torch.equal(quantize(to_unit(train.x, 17), 2), load_images("digits", "train", 2).x)
    assert torch.equal(quantize(to_unit(train.x, 17), 17), train.x)


def test_fgsm_increases_loss_within_eps_ball_and_binarized(gray, classifier):
    _, test = gray
    u, y = to_unit(test.x, 17), test.y
    clean = quantize(u, 2)
    adv = fgsm(classifier, u, y, EPS)
    assert adv.dtype == torch.long and set(adv.unique().tolist()) <= {0, 1}
    changed = adv != clean
    assert changed.any()
    assert ((u - 0.5).abs()[changed] <= EPS + 1e-6).all()  # only pixels within eps of the threshold flip
    assert torch.equal(fgsm(classifier, u, y, 0.0), clean)
    with torch.no_grad():
        loss_clean = F.cross_entropy(classifier(to_unit(clean, 2)), y)
        loss_adv = F.cross_entropy(classifier(to_unit(adv, 2)), y)
    assert loss_adv > loss_clean + 0.1
    acc_clean = (classifier.predict(clean) == y).float().mean()
    acc_adv = (classifier.predict(adv) == y).float().mean()
    assert acc_clean > 0.8 and acc_adv < acc_clean - 0.1


def test_classifier_is_cached(gray, classifier, classifier_dir):
    train, _ = gray
    again = train_classifier(train.x[:10], train.y[:10], 2, classifier_dir, steps=1, device="auto")  # loads
    for a, b in zip(classifier.state_dict().values(), again.state_dict().values()):
        assert torch.equal(a, b)


def test_fgsm_on_gray_levels_moves_at_most_eps_levels(gray):
    _, test = gray
    torch.manual_seed(0)
    clf = DigitCNN(ClassifierConfig(shape=(1, 8, 8), levels=17, channels=8, hidden=16))
    adv = fgsm(clf, test.x[:50], test.y[:50], 2 / 16, levels=17)  # levels in, 2 levels of radius
    step = (adv - test.x[:50]).abs()
    assert step.max() == 2 and ((step == 0) | (step == 2) | (adv == 0) | (adv == 16)).all()
    assert adv.min() >= 0 and adv.max() <= 16


def test_corrupt_flips_the_stated_fraction():
    x = (torch.rand(10, 1, 8, 8, generator=torch.Generator().manual_seed(0)) > 0.5).long()
    out = corrupt(x, 0.25, torch.Generator().manual_seed(1))
    assert ((out != x).flatten(1).sum(1) == 16).all()  # exactly 25% of 64 pixels in every image
    assert torch.equal(out, corrupt(x, 0.25, torch.Generator().manual_seed(1)))
    assert not torch.equal(out, corrupt(x, 0.25, torch.Generator().manual_seed(2)))
    assert torch.equal(corrupt(x, 0.0), x)
    assert ((corrupt(x, 1.0) != x).all())
    with pytest.raises(ValueError, match="rate"):
        corrupt(x, 1.5)


def test_corrupt_gray_is_salt_and_pepper():
    x = torch.full((6, 1, 8, 8), 7)
    out = corrupt(x, 0.5, torch.Generator().manual_seed(0), levels=17)
    changed = out != x
    assert (changed.flatten(1).sum(1) == 32).all()  # every chosen pixel changes here (7 is neither 0 nor 16)
    assert set(out[changed].unique().tolist()) == {0, 16}


# ---- scores -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("levels", [2, 3])
def test_pixel_marginal_is_normalized(levels):
    x = torch.randint(0, levels, (30, 1, 2, 2), generator=torch.Generator().manual_seed(0))
    ref = PixelMarginal.fit(x, levels)
    every = torch.tensor(list(itertools.product(range(levels), repeat=4))).view(-1, 1, 2, 2)
    assert ref.log_prob(every).exp().sum().item() == pytest.approx(1.0, abs=1e-5)
    counts = (x[:, 0, 0, 0] == 1).sum().item()  # add-one smoothing
    p = ref.log_prob(x, reduce=False)[:, 0, 0, 0][x[:, 0, 0, 0] == 1]
    assert p.exp()[0].item() == pytest.approx((counts + 1) / (30 + levels), rel=1e-5)


def test_scores_definitions(made_run):
    model, sets, _ = made_run
    ref = PixelMarginal.fit(sets.train, 2)
    x = sets.clean[:20]
    s = scores(model, x, ref, train_nll=torch.tensor([30.0, 34.0]))
    lp = model.log_prob(x).detach()
    torch.testing.assert_close(s["nll"], -lp)
    torch.testing.assert_close(s["ratio"], -(lp - ref.log_prob(x)))
    torch.testing.assert_close(s["typicality"], (-lp - 32.0).abs())
    assert set(scores(model, x, {"a": ref, "b": ref})) == {"nll", "ratio_a", "ratio_b"}


def test_trained_made_finds_corrupted_digits_unlikely(made_run):
    model, sets, _ = made_run
    report = evaluate_anomaly(model, sets, {"marginal": PixelMarginal.fit(sets.train, 2)})
    assert set(report.auroc) == {"fgsm", "fgsm_fooled", "noise_0.25", "holdout_0"}
    assert set(report.auroc["noise_0.25"]) == {"nll", "ratio_marginal", "typicality"}
    assert report.auroc["noise_0.25"]["nll"] > 0.9
    assert report.auroc["noise_0.25"]["typicality"] > 0.9
    assert report.mean_nll["noise_0.25"] > report.mean_nll["clean"] + 10
