import pytest
import torch

from arsound.core.train import Trainer, TrainConfig
from arsound.data.anomaly import digit_sets
from arsound.data.images import load_images
from arsound.image import build
from arsound.image.anomaly import quantize, to_unit, train_classifier

# Two cores on the CI machine: keep each test process to one intra-op thread so parallel
# workers do not fight; tests that time things set threads themselves.
torch.set_num_threads(1)


# ---- the anomaly tests' shared set-up (tests/image/test_anomaly.py, tests/cli/test_eval.py) -------------------
EPS = 0.25


@pytest.fixture(scope="session")
def gray():
    return load_images("digits", "train", 17), load_images("digits", "test", 17)


@pytest.fixture(scope="session")
def classifier_dir(tmp_path_factory):
    return tmp_path_factory.mktemp("clf")


@pytest.fixture(scope="session")
def classifier(gray, classifier_dir):
    train, _ = gray
    return train_classifier(quantize(to_unit(train.x, 17), 2), train.y, 2, classifier_dir, steps=150, progress=False)


@pytest.fixture(scope="session")
def made_run(classifier, tmp_path_factory):
    """A MADE trained briefly on the binarized digits of every class but 0; exported with that card."""
    sets = digit_sets("digits", 2, classifier, holdout=0, eps=EPS, rates=(0.25,))
    out = tmp_path_factory.mktemp("made")
    torch.manual_seed(0)
    cfg = TrainConfig(steps=300, batch_size=64, lr=3e-3, eval_every=0, ckpt_every=0, out_dir=str(out), progress=False)
    trainer = Trainer(build("made", shape=(1, 8, 8), levels=2, size="small"), cfg, sets.train, sets.valid,
                      card={"holdout_class": 0})
    trainer.fit()
    return trainer.eval_model, sets, out / "model"




# ---- a VQ-VAE trained a few steps, and its saved folder (tests/audio, tests/cli) --------------------------------
@pytest.fixture(scope="session")
def vqvae():
    from tests.fakes import trained_vqvae

    return trained_vqvae()


@pytest.fixture(scope="session")
def saved_vqvae(vqvae, tmp_path_factory):
    from arsound.core.checkpoint import save_pretrained

    folder = tmp_path_factory.mktemp("ckpt") / "tiny-vqvae"
    save_pretrained(vqvae, folder, card={"data": "synthetic tones (test)"})
    return folder


# ---- a debug music hierarchy on that VQ-VAE, its priors trained a few steps (tests/cli) ------------------------
@pytest.fixture(scope="session")
def saved_music(vqvae, tmp_path_factory):
    from arsound.core.checkpoint import save_pretrained
    from tests.fakes import trained_music

    root = tmp_path_factory.mktemp("music")
    folder = root / "tiny-music"
    save_pretrained(trained_music(vqvae, root), folder, card={"data": "synthetic music (test)"})
    return folder
