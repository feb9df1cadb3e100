"""The Trainer: schedule, EMA, data order, learning, exact resume after a real SIGKILL, DDP on gloo
== one process, non-finite loss, config errors."""
import csv
import math
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from arsound.core.checkpoint import CheckpointError, load, load_resume_state
from arsound.core.train import (EMA, Trainer, TrainConfig, TrainingError, epoch_permutation, evaluate,
                                lr_factor, resolve_amp)
from tests.core.toy import Toy, ToyConfig, toy_data, toy_trainer

REPO = Path(__file__).resolve().parents[2]


def read_log(out):
    with open(Path(out) / "log.csv", newline="") as f:
        return list(csv.DictReader(f))


def run_script(tmp_path, name, source, *args, launcher=()):
    script = tmp_path / name
    script.write_text(f"import sys\nsys.path.insert(0, {str(REPO)!r})\n" + source)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    return subprocess.run([sys.executable, *launcher, str(script), *map(str, args)], capture_output=True,
                          text=True, env=env, timeout=180)


# ---- pieces ---------------------------------------------------------------------------------------
def test_lr_schedule_warmup_then_decay_to_min():
    f = lambda s, decay: lr_factor(s, steps=20, warmup=4, decay=decay, min_ratio=0.1)  # noqa: E731
    assert [f(s, "cosine") for s in range(4)] == [0.25, 0.5, 0.75, 1.0]
    assert f(4, "cosine") == 1.0 and f(19, "cosine") == pytest.approx(0.1)
    assert f(4, "linear") == 1.0 and f(19, "linear") == pytest.approx(0.1)
    assert f(4 + 15 // 2, "linear") == pytest.approx(1 - 0.9 * (7 / 15))
    assert f(11, "cosine") == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 7 / 15)))
    assert all(f(s, "none") == 1.0 for s in range(4, 20))
    cos = [f(s, "cosine") for s in range(4, 20)]
    assert all(a > b for a, b in zip(cos, cos[1:]))
    assert lr_factor(0, steps=1, warmup=0, decay="cosine", min_ratio=0.1) == 1.0  # no division by zero


def test_ema_matches_manual_average():
    torch.manual_seed(0)
    model = Toy(ToyConfig())
    ema = EMA(model, decay=0.9)
    expected = model.weight.detach().clone()
    for n in range(1, 30):
        with torch.no_grad():
            model.weight.add_(torch.randn_like(model.weight))
        ema.update(model)
        d = min(0.9, (1 + n) / (10 + n))
        expected = d * expected + (1 - d) * model.weight.detach()
    assert torch.allclose(ema.model.weight, expected, atol=1e-6)
    assert not ema.model.weight.requires_grad and ema.model.weight.data_ptr() != model.weight.data_ptr()


def test_amp_resolution_and_bf16_on_cpu(tmp_path):
    cpu = torch.device("cpu")
    assert resolve_amp("auto", cpu) is None and resolve_amp("off", cpu) is None
    assert resolve_amp("bf16", cpu) is torch.bfloat16
    trainer = toy_trainer(tmp_path, steps=3, amp="bf16", ckpt_every=0, eval_every=0)
    metrics = trainer.fit()
    assert math.isfinite(metrics["loss"]) and all(torch.isfinite(p).all() for p in trainer.model.parameters())


def test_each_epoch_visits_every_example_once(tmp_path):
    seen = []

    class Recording(torch.utils.data.Dataset):  # map-style, dict items -> dict batches
        def __init__(self, x):
            self.x = x

        def __len__(self):
            return len(self.x)

        def __getitem__(self, i):
            seen.append(i)
            return {"x": self.x[i]}

    torch.manual_seed(0)
    cfg = TrainConfig(steps=6, batch_size=6, lr=0.01, ckpt_every=0, seed=5, device="cpu",
                      out_dir=str(tmp_path), progress=False)
    Trainer(Toy(ToyConfig()), cfg, Recording(toy_data(20))).fit()
    assert len(seen) == 36  # 3 full batches per epoch, the tail of 2 dropped, 2 epochs
    for epoch in range(2):
        part = seen[18 * epoch:18 * (epoch + 1)]
        assert len(set(part)) == 18
        assert part == epoch_permutation(20, 5, epoch)[:18].tolist()
    assert seen[:18] != seen[18:]


def test_evaluate_is_the_mean_over_examples():
    torch.manual_seed(0)
    model, x = Toy(ToyConfig()), toy_data(37)
    got = evaluate(model, x, batch_size=8)
    with torch.no_grad():
        nll = -model.log_prob(x)
    assert got["nll"] == pytest.approx(nll.mean().item(), rel=1e-5)
    assert got["bits_per_dim"] == pytest.approx(nll.mean().item() / 6 / math.log(2), rel=1e-5)
    assert got["loss"] == pytest.approx(nll.mean().item() / 6, rel=1e-5)


# ---- fit ------------------------------------------------------------------------------------------
def test_fit_learns_logs_and_exports_the_ema_model(tmp_path):
    trainer = toy_trainer(tmp_path, steps=60, model_kw={"dropout": 0.0}, ckpt_every=0)
    before = trainer.evaluate()
    after = trainer.fit()
    assert after["bits_per_dim"] < before["bits_per_dim"] - 0.1
    rows = read_log(tmp_path)
    assert list(rows[0]) == ["step", "split", "lr", "loss", "bits_per_dim", "nll", "seconds"]
    seconds = [float(r["seconds"]) for r in rows if r["split"] == "train"]
    assert 0 < seconds[0] and all(a < b for a, b in zip(seconds, seconds[1:]))
    assert [int(r["step"]) for r in rows if r["split"] == "train"] == [*range(3, 60, 3), 60]
    assert [int(r["step"]) for r in rows if r["split"] == "valid"] == [10, 20, 30, 40, 50, 60]
    assert float(rows[-1]["bits_per_dim"]) == pytest.approx(after["bits_per_dim"], rel=1e-5)
    assert float(rows[0]["lr"]) == pytest.approx(0.05 * 3 / 5)  # step 3 ran at warm-up lr 3/5 * lr
    exported = load(tmp_path / "model", trusted_modules=("tests",))
    assert torch.equal(exported.weight, trainer.ema_model.weight)
    assert not torch.equal(exported.weight, trainer.model.weight)
    assert "60" in (tmp_path / "model" / "README.md").read_text()
    assert load_resume_state(tmp_path / "resume.pt")["step"] == 60
    again = toy_trainer(tmp_path, steps=60, model_kw={"dropout": 0.0})  # auto-resume of a finished run: nothing left to do
    assert again.step == 60 and torch.equal(again.model.weight, trainer.model.weight)


def test_resuming_with_other_settings_is_refused(tmp_path):
    """A run folder holds one run: resuming it with another model, learning rate or length is one line and
    changes nothing; where it writes and how often it reports may change."""
    toy_trainer(tmp_path, steps=10).fit()
    before = sorted((p.name, p.stat().st_mtime_ns) for p in tmp_path.rglob("*"))
    for kw, needle in (({"lr": 0.1}, "train.lr 0.05 != 0.1"), ({"steps": 20}, "train.steps 10 != 20"),
                       ({"model_kw": {"dim": 5}}, "model.dim 6 != 5")):
        with pytest.raises(TrainingError) as err:
            toy_trainer(tmp_path, **{"steps": 10, **kw})
        msg = str(err.value)
        assert "\n" not in msg and "holds a run with other settings" in msg and needle in msg, msg
        assert "another --out" in msg and len(msg) < 300
    assert sorted((p.name, p.stat().st_mtime_ns) for p in tmp_path.rglob("*")) == before
    again = toy_trainer(tmp_path, steps=10, eval_every=2, log_every=1, progress=True)  # reporting only: resumes
    assert again.step == 10


def test_train_seconds_count_the_kept_steps_across_a_resume(tmp_path, monkeypatch):
    """On a clock that moves 1 s per step: a run stopped at step 7 (checkpoint at 5) and resumed to 10 reports
    10 s, as an uninterrupted run does: the time before the stop is restored, the 2 lost steps are not kept."""
    import arsound.core.train as train_mod

    clock = [0.0]
    monkeypatch.setattr(train_mod.time, "perf_counter", lambda: clock[0])

    def timed(trainer, stop_at=None):
        fetch = trainer._next_batch

        def next_batch():
            clock[0] += 1.0                                       # one second per step
            return fetch()

        def stop(t):
            if t.step == stop_at:
                raise KeyboardInterrupt

        trainer._next_batch = next_batch
        trainer.add_callback("on_step_end", stop)
        return trainer

    with pytest.raises(KeyboardInterrupt):
        timed(toy_trainer(tmp_path, steps=10), stop_at=7).fit()
    assert load_resume_state(tmp_path / "resume.pt")["train_seconds"] == 5.0
    again = timed(toy_trainer(tmp_path, steps=10))
    assert again.train_seconds == 5.0
    again.fit()
    assert again.train_seconds == 10.0 and load_resume_state(tmp_path / "resume.pt")["train_seconds"] == 10.0
    whole = timed(toy_trainer(tmp_path / "whole", steps=10))
    whole.fit()
    assert whole.train_seconds == 10.0


def test_resume_true_without_state_and_bad_config_are_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="no resume state at .*resume.pt"):
        toy_trainer(tmp_path, resume=True)
    with pytest.raises(ValueError, match="train.decay must be one of"):
        toy_trainer(tmp_path, decay="exp")
    with pytest.raises(ValueError, match="larger than the 50 training examples"):
        toy_trainer(tmp_path, batch_size=64)
    assert not (tmp_path / "log.csv").exists()


def test_nan_loss_stops_with_step_and_keeps_last_good_checkpoint(tmp_path):
    trainer = toy_trainer(tmp_path, model_kw={"nan_after": 12})
    with pytest.raises(TrainingError) as err:
        trainer.fit()
    msg = str(err.value)
    assert "\n" not in msg and "loss is nan at step 13" in msg and "(step 10)" in msg, msg
    assert all(torch.isfinite(p).all() for p in trainer.model.parameters())  # the bad step was not applied
    state = load_resume_state(tmp_path / "resume.pt")
    assert state["step"] == 10 and all(torch.isfinite(v).all() for v in state["model"].values())
    assert sorted(p.name for p in tmp_path.iterdir()) == ["log.csv", "resume.pt"]  # no export, no temp files


# ---- exact resume after a real SIGKILL -------------------------------------------------------------
KILL_SCRIPT = """
import os, signal, torch
torch.set_num_threads(1)
from tests.core.toy import toy_trainer
out, kill_at = sys.argv[1], int(sys.argv[2])
trainer = toy_trainer(out)
print("start step", trainer.step, flush=True)
if kill_at:
    trainer.add_callback("on_step_end", lambda t: t.step == kill_at and os.kill(os.getpid(), signal.SIGKILL))
trainer.fit()
"""


def test_sigkill_then_resume_is_bit_identical(tmp_path):
    out = tmp_path / "run"
    killed = run_script(tmp_path, "train.py", KILL_SCRIPT, out, 23)
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert load_resume_state(out / "resume.pt")["step"] == 20 and not (out / "model").exists()
    assert max(int(r["step"]) for r in read_log(out)) >= 21  # rows past the checkpoint were written
    resumed = run_script(tmp_path, "train.py", KILL_SCRIPT, out, 0)
    assert resumed.returncode == 0, resumed.stderr
    assert "start step 20" in resumed.stdout

    full = toy_trainer(tmp_path / "full")
    full.fit()
    a, b = load_resume_state(out / "resume.pt"), load_resume_state(tmp_path / "full" / "resume.pt")
    assert a["step"] == b["step"] == 40 and (a["epoch"], a["index"]) == (b["epoch"], b["index"])
    assert all(torch.equal(a["model"][k], b["model"][k]) for k in b["model"])
    assert all(torch.equal(a["ema"]["model"][k], b["ema"]["model"][k]) for k in b["ema"]["model"])
    for sa, sb in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(sa[k], sb[k]) for k in sb)
    assert torch.equal(a["rng"][0]["torch"], b["rng"][0]["torch"])
    assert (out / "model" / "model.safetensors").read_bytes() == \
        (tmp_path / "full" / "model" / "model.safetensors").read_bytes()
    rows, ref = read_log(out), read_log(tmp_path / "full")
    assert [(r["step"], r["split"]) for r in rows] == [(r["step"], r["split"]) for r in ref]  # no duplicates
    assert [r for r in rows if r["split"] == "valid"] == [r for r in ref if r["split"] == "valid"]


# ---- data parallel --------------------------------------------------------------------------------
DDP_SCRIPT = """
import os, torch
torch.set_num_threads(1)
from tests.core.toy import toy_trainer
out = sys.argv[1]
trainer = toy_trainer(out, steps=4, model_kw={"dropout": 0.0}, log_every=1, eval_every=2, ckpt_every=2)
assert trainer.world == 2, trainer.world
seen = []

class Recording:  # which examples this rank actually trains on
    def __init__(self, x):
        self.x = x
    def __len__(self):
        return len(self.x)
    def __getitem__(self, i):
        seen.append(i)
        return self.x[i]

trainer.train_data = Recording(trainer.train_data)
trainer.fit()
torch.save({"model": trainer.model.state_dict(), "ema": trainer.ema_model.state_dict(), "seen": seen},
           f"{out}/rank{trainer.rank}.pt")
"""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_ddp_two_processes_match_one(tmp_path):
    out = tmp_path / "ddp"
    launcher = ("-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                "--master_port", str(_free_port()))
    r = run_script(tmp_path, "ddp.py", DDP_SCRIPT, out, launcher=launcher)
    assert r.returncode == 0, r.stderr[-3000:]
    single = toy_trainer(tmp_path / "single", steps=4, model_kw={"dropout": 0.0}, log_every=1, eval_every=2,
                         ckpt_every=2)
    single.fit()
    ranks = [torch.load(out / f"rank{i}.pt") for i in range(2)]
    batches = epoch_permutation(50, 3, 0)[:32].view(4, 8)  # the 4 global batches of epoch 0
    for rank in range(2):  # each rank trains on its strided half of every global batch
        assert ranks[rank]["seen"] == batches[:, rank::2].flatten().tolist()
    for part, ref in (("model", single.model.state_dict()), ("ema", single.ema_model.state_dict())):
        for k, v in ref.items():
            assert torch.equal(ranks[0][part][k], ranks[1][part][k])  # ranks stay in sync
            assert torch.allclose(ranks[0][part][k], v, atol=1e-6), (part, k)
    rows, ref_rows = read_log(out), read_log(tmp_path / "single")
    assert [(r["step"], r["split"]) for r in rows] == [(r["step"], r["split"]) for r in ref_rows]  # rank 0 only
    for r, q in zip(rows, ref_rows):  # train metrics averaged over ranks, eval split over ranks
        assert float(r["loss"]) == pytest.approx(float(q["loss"]), rel=1e-5)
        assert float(r["bits_per_dim"]) == pytest.approx(float(q["bits_per_dim"]), rel=1e-5)
    assert load_resume_state(out / "resume.pt")["world_size"] == 2
