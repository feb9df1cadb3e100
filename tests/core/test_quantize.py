"""VectorQuantizer: lookup consistency, straight-through gradients, commitment, EMA update, data init,
dead-code restart that resets the EMA state, health metrics, and all-reduced EMA statistics (two gloo
processes == one process on the same global batch)."""
import math
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from arsound.core.quantize import QuantizerConfig, VectorQuantizer, histogram_health, kmeans

REPO = Path(__file__).resolve().parents[2]


def make_vq(**kw) -> VectorQuantizer:
    torch.manual_seed(0)
    return VectorQuantizer(QuantizerConfig(**{"num_codes": 16, "dim": 4, **kw}))


def batch(B=3, D=4, T=20, seed=1) -> torch.Tensor:
    return torch.randn(B, D, T, generator=torch.Generator().manual_seed(seed))


# ---- lookup ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("kw", [{}, {"cosine": True}, {"lookup_dim": 2}, {"cosine": True, "lookup_dim": 2}])
def test_requantizing_quantized_vectors_returns_the_same_codes(kw):
    vq = make_vq(**kw)
    vq.train()
    for s in range(3):                                       # data init + a few EMA updates
        vq(batch(seed=s))
    vq.eval()
    z = batch(seed=9)
    out = vq(z)
    assert out.z_q.shape == z.shape and out.codes.shape == (3, 20) and out.codes.dtype == torch.long
    torch.testing.assert_close(out.z_q, vq.embed(out.codes), rtol=0, atol=1e-6)   # decode(codes) == looked-up vectors
    assert torch.equal(vq.encode(z), out.codes)
    lookup = vq.lookup_codebook()[out.codes]                                       # (B, T, d)
    assert torch.equal(vq._codes_for(lookup.reshape(-1, lookup.shape[-1])).view(3, 20), out.codes)
    if not kw.get("lookup_dim"):                                                  # in the input space too
        assert torch.equal(vq.encode(out.z_q), out.codes)
    # the nearest code, by brute force
    x = z.movedim(1, -1).reshape(-1, 4)
    if kw.get("lookup_dim"):
        x = vq.proj_in(x)
    c = vq.lookup_codebook()
    if kw.get("cosine"):
        ref = (F.normalize(x, dim=1) @ c.t()).argmax(1)
    else:
        ref = torch.cdist(x, c).argmin(1)
    assert torch.equal(ref.view(3, 20), out.codes)


def test_any_trailing_shape_keeps_positions():
    vq = make_vq()
    vq.eval()
    z = torch.randn(2, 4, 3, 5)                                                    # B x D x H x W
    out = vq(z)
    assert out.codes.shape == (2, 3, 5) and out.z_q.shape == z.shape
    for h in range(3):
        assert torch.equal(out.codes[:, h], vq.encode(z[:, :, h]))


# ---- gradients and losses -------------------------------------------------------------------------
@pytest.mark.parametrize("kw", [{}, {"lookup_dim": 2}, {"cosine": True}])
def test_straight_through_gradient_reaches_the_encoder(kw):
    vq = make_vq(commitment=0.0, **kw)
    enc = torch.nn.Conv1d(3, 4, 1)
    x = torch.randn(2, 3, 10)
    z = enc(x)
    z.retain_grad()
    vq.train()
    out = vq(z)
    out.z_q.pow(2).sum().backward()
    assert enc.weight.grad is not None and enc.weight.grad.abs().sum() > 0
    if not kw:  # plain lookup: d z_q / d z is the identity
        torch.testing.assert_close(z.grad, 2 * out.z_q.detach())
    if kw.get("lookup_dim"):
        assert vq.proj_in.weight.grad.abs().sum() > 0 and vq.proj_out.weight.grad.abs().sum() > 0


def test_commitment_loss_is_beta_times_the_distance_to_the_codes():
    vq = make_vq(commitment=0.25)
    vq.eval()
    z = batch().requires_grad_(True)
    out = vq(z)
    e = vq.embed(out.codes)
    torch.testing.assert_close(out.commit_loss, 0.25 * (z - e).pow(2).mean())
    assert out.commit_loss > 0
    out.commit_loss.backward()                                                     # pulls z towards sg(e)
    torch.testing.assert_close(z.grad, 0.25 * 2 * (z - e).detach() / z.numel())


# ---- EMA codebook -------------------------------------------------------------------------------------
def test_ema_update_follows_the_formula_and_eval_changes_nothing():
    vq = make_vq(init="none", threshold=0.0, decay=0.9)
    z = batch()
    count0, sum0 = vq.ema_count.clone(), vq.ema_sum.clone()
    vq.eval()
    vq(z)
    assert torch.equal(vq.ema_count, count0) and torch.equal(vq.ema_sum, sum0)
    vq.train()
    codes = vq.encode(z).flatten()
    x = z.movedim(1, -1).reshape(-1, 4)
    n = torch.bincount(codes, minlength=16).float()
    s = torch.zeros(16, 4).index_add_(0, codes, x)
    out = vq(z)
    assert torch.equal(out.codes.flatten(), codes)
    torch.testing.assert_close(vq.ema_count, 0.9 * count0 + 0.1 * n)
    torch.testing.assert_close(vq.ema_sum, 0.9 * sum0 + 0.1 * s)
    torch.testing.assert_close(vq.codebook, vq.ema_sum / vq.ema_count[:, None])


def test_data_init_random_rows_and_kmeans_centres():
    vq = make_vq(init="random", num_codes=8)
    assert not bool(vq.initialized)
    vq.train()
    z = batch(B=2, T=30)
    vq(z)
    rows = z.movedim(1, -1).reshape(-1, 4)
    assert bool(vq.initialized)
    # every code started as a distinct input vector (the EMA step then mixed in its assignments)
    vq2 = make_vq(init="random", num_codes=8, decay=0.999999, threshold=0.0)
    vq2.train()
    vq2._initialize(rows)
    d = torch.cdist(vq2.codebook, rows)
    assert d.min(1).values.max() < 1e-6 and len(set(d.argmin(1).tolist())) == 8
    # k-means finds well separated clusters
    centres = torch.tensor([[5.0, 0, 0, 0], [0, 5.0, 0, 0], [0, 0, 5.0, 0], [0, 0, 0, 5.0]])
    g = torch.Generator().manual_seed(3)
    pts = torch.cat([c + 0.1 * torch.randn(50, 4, generator=g) for c in centres])
    torch.manual_seed(0)
    found = kmeans(pts, 4, iters=20)
    assert torch.cdist(centres, found).min(1).values.max() < 0.1


def test_restart_resets_the_ema_state_of_the_restarted_code():
    """A dead code gets a current-batch vector AND counts/sums reset to it; with the old sums kept the
    stale average would overwrite it (the known bug: this test fails if the reset is removed)."""
    vq = make_vq(init="none", num_codes=4, dim=2, threshold=1.0, decay=0.99)
    far = torch.tensor([100.0, 100.0])
    with torch.no_grad():
        vq.codebook.copy_(torch.tensor([[1.0, 0], [0, 1.0], [-1.0, 0], [100.0, 100.0]]))
        vq.ema_count.copy_(torch.tensor([50.0, 50.0, 50.0, 0.5]))                 # code 3 is about to die
        vq.ema_sum.copy_(vq.codebook * vq.ema_count[:, None])
    z = torch.randn(1, 2, 64, generator=torch.Generator().manual_seed(0))
    rows = z.movedim(1, -1).reshape(-1, 2)
    vq.train()
    torch.manual_seed(0)
    out = vq(z)
    assert out.dead.item() == 1 and int(vq.restarts) == 1
    new = vq.codebook[3]
    assert torch.cdist(new[None], rows).min() < 1e-6                               # a current-batch vector
    assert vq.ema_count[3].item() == pytest.approx(1.0)                            # counts reset
    torch.testing.assert_close(vq.ema_sum[3], new * vq.ema_count[3])              # sums reset
    torch.testing.assert_close(vq.ema_sum[3] / vq.ema_count[3], new)
    # the next EMA step moves it from its new place, never back towards the old average
    vq(z)
    assert torch.linalg.vector_norm(vq.codebook[3] - far) > 100
    assert torch.linalg.vector_norm(vq.codebook[3]) < 5


def test_health_metrics():
    vq = make_vq(init="none", num_codes=4, dim=2, threshold=0.0)
    with torch.no_grad():
        vq.codebook.copy_(torch.tensor([[1.0, 0], [0, 1.0], [-1.0, 0], [0, -1.0]]))
        vq.ema_sum.copy_(vq.codebook)
    z = torch.tensor([[[1.0, 0, -1, 0], [0, 1, 0, -1]]])                          # one vector per code
    vq.train()
    out = vq(z)
    assert out.perplexity.item() == pytest.approx(4.0) and out.usage.item() == pytest.approx(1.0)
    assert out.used.item() == 4
    vq.reset_usage()
    vq(z[..., :1].expand(1, 2, 6).contiguous())                                    # 6 times code 0
    h = vq.health()
    assert (h.perplexity, h.usage, h.used, h.used_epoch, h.restarts) == (pytest.approx(1.0), pytest.approx(0.0), 1, 1, 0)
    p, u = histogram_health(torch.tensor([1.0, 1.0, 2.0, 0.0]))
    H = -(2 * 0.25 * math.log(0.25) + 0.5 * math.log(0.5))
    assert p.item() == pytest.approx(math.exp(H)) and u.item() == pytest.approx(H / math.log(4))
    vq.reset_usage()
    assert vq.health().used_epoch == 0


# ---- data parallel --------------------------------------------------------------------------------
DDP_SCRIPT = """
import sys, os, torch
sys.path.insert(0, sys.argv[2])
torch.set_num_threads(1)
import torch.distributed as dist
from arsound.core.quantize import QuantizerConfig, VectorQuantizer
out = sys.argv[1]
world = int(os.environ.get("WORLD_SIZE", "1"))
if world > 1:
    dist.init_process_group("gloo")
rank = dist.get_rank() if world > 1 else 0
torch.manual_seed(0)
vq = VectorQuantizer(QuantizerConfig(num_codes=32, dim=4, threshold=3.0, init=sys.argv[3]))
vq.train()
for step in range(4):
    z = torch.randn(4, 4, 24, generator=torch.Generator().manual_seed(step)) * (1 + step)  # the global batch
    torch.manual_seed(100 + step + 7 * rank)      # rank 1's RNG differs: random choices must come from rank 0
    part = z.chunk(world)[rank]
    vq(part)
torch.save({k: v.clone() for k, v in vq.state_dict().items()}, f"{out}/rank{rank}_w{world}.pt")
if world > 1:
    dist.barrier()
    dist.destroy_process_group()   # a gloo group left to interpreter exit can abort the process
"""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("init", ["random", "kmeans"])
def test_ddp_two_processes_keep_the_codebook_of_one(tmp_path, init):
    script = tmp_path / "ddp_vq.py"
    script.write_text(DDP_SCRIPT)
    env = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1"}
    launcher = ["-m", "torch.distributed.run", "--nproc_per_node", "2", "--master_addr", "127.0.0.1",
                "--master_port", str(_free_port())]
    for cmd in ([sys.executable, *launcher, str(script)], [sys.executable, str(script)]):
        r = subprocess.run([*cmd, str(tmp_path), str(REPO), init], capture_output=True, text=True, env=env, timeout=180)
        assert r.returncode == 0, r.stderr[-3000:]
    r0, r1, single = (torch.load(tmp_path / f) for f in ("rank0_w2.pt", "rank1_w2.pt", "rank0_w1.pt"))
    assert int(single["restarts"]) > 0                                             # restarts did happen
    for k in single:
        assert torch.equal(r0[k], r1[k]), k                                        # ranks identical
        if k in ("restarts", "initialized"):
            assert torch.equal(r0[k], single[k]), k
        else:
            torch.testing.assert_close(r0[k], single[k], rtol=1e-5, atol=1e-5, msg=k)  # == one process
