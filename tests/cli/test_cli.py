"""The CLI end to end: a real (tiny) training run on real digits, sampling, and one-line errors."""
import subprocess
import sys

import pytest


def run(*args, cwd=None):
    return subprocess.run([sys.executable, "-m", "arsound", *args], capture_output=True, text=True, cwd=cwd,
                          timeout=240)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    out = tmp_path_factory.mktemp("run")
    r = run("train", "image_zoo", "--debug", "--out", str(out), "--seed", "1")
    assert r.returncode == 0, r.stderr
    return out


def test_train_debug_writes_model_log_samples(trained):
    assert (trained / "model" / "config.json").is_file()
    assert (trained / "model" / "model.safetensors").is_file()
    assert (trained / "log.csv").is_file()
    assert (trained / "samples.png").stat().st_size > 0
    assert (trained / "results.json").is_file()


def test_sample_writes_png(trained, tmp_path):
    out = tmp_path / "s.png"
    r = run("sample", "--model", str(trained / "model"), "--n", "4", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


@pytest.mark.parametrize("args,needle", [
    (["train", "image_zoo", "--debug", "--train.stepz=3"], "unknown config key 'train.stepz'"),
    (["train", "image_zoo", "--debug", "--train.steps=many"], "expected a value of type int"),
    (["train", "no_such_recipe"], "no recipe 'no_such_recipe'"),
    (["sample", "--model", "/nonexistent/model"], "/nonexistent/model"),
    (["sample", "--model", ".", "--n", "0"], "--n must be >= 1"),
    (["data", "prepare", "nope"], "unknown dataset 'nope'"),
])
def test_user_errors_are_one_line_and_nonzero(args, needle, tmp_path):
    r = run(*args, cwd=tmp_path)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and needle in lines[0], r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "runs").exists()  # nothing half-written


def test_help_lists_verbs():
    r = run("--help")
    assert r.returncode == 0 and "train" in r.stdout and "sample" in r.stdout
