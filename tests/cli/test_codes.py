"""``arsound encode`` / ``arsound decode`` end to end (chunked CLI == whole encoding) and their one-line errors
with nothing half-written."""
from __future__ import annotations

import hashlib

import numpy as np
import soundfile as sf
import torch

from arsound.audio.codes import load_codes
from arsound.audio.vqvae import VQVAE, VQVAEConfig
from arsound.core.checkpoint import save_pretrained
from tests.fakes import SR, music


def cli(argv):
    from arsound.cli import main

    return main(argv)


def test_cli_encode_decode_end_to_end(vqvae, saved_vqvae, tmp_path):
    x = music(0.7, 9)
    src = tmp_path / "in.wav"
    sf.write(src, x.numpy(), SR, subtype="FLOAT")
    npz = tmp_path / "codes.npz"
    assert cli(["encode", str(src), "-o", str(npz), "--model", str(saved_vqvae), "--chunk-seconds", "0.1"]) == 0
    cf = load_codes(npz)
    assert cf.length == len(x) and cf.hops == [4, 16] and cf.model_sha256 == hashlib.sha256(
        (saved_vqvae / "model.safetensors").read_bytes()).hexdigest()[:16]
    for w, c in zip(vqvae.encode(x.unsqueeze(0)), cf.codes):
        assert torch.equal(w[0], c)                                                # chunked CLI == whole encoding
    for level in (0, 1):
        out = tmp_path / f"out{level}.wav"
        assert cli(["decode", str(npz), "-o", str(out), "--level", str(level), "--chunk-codes", "50"]) == 0
        y, sr = sf.read(out, dtype="float32")
        assert sr == SR and len(y) == len(x)
        ref = vqvae.decode(cf.codes[level], level)[:len(x)].clamp(-1, 1).numpy()
        np.testing.assert_allclose(y, ref, atol=1 / 32768 + 1e-4)                 # 16-bit WAV of the decode


def test_cli_errors_are_one_line(saved_vqvae, tmp_path, capsys):
    src = tmp_path / "in.wav"
    sf.write(src, music(0.2, 1).numpy(), SR)
    good = tmp_path / "good.npz"
    assert cli(["encode", str(src), "-o", str(good), "--model", str(saved_vqvae)]) == 0
    capsys.readouterr()
    bad = tmp_path / "bad.npz"
    bad.write_bytes(b"PK garbage")
    foreign = tmp_path / "foreign.npz"
    np.savez(foreign, codes=np.zeros(4, np.uint16))
    newer = tmp_path / "newer.npz"
    with np.load(good) as z:
        np.savez(newer, **{**{k: z[k] for k in z.files}, "version": np.array(99)})
    other = tmp_path / "other"
    torch.manual_seed(5)
    save_pretrained(VQVAE(VQVAEConfig.from_preset("debug")), other)
    cases = {
        "missing audio": (["encode", str(tmp_path / "nope.wav"), "-o", str(tmp_path / "o1.npz"), "--model", str(saved_vqvae)],
                          "no such file"),
        "bad output": (["encode", str(src), "-o", str(tmp_path / "o.txt"), "--model", str(saved_vqvae)], ".npz"),
        "missing model": (["encode", str(src), "-o", str(tmp_path / "o2.npz"), "--model", str(tmp_path / "none")],
                          "no checkpoint"),
        "missing codes": (["decode", str(tmp_path / "nope.npz"), "-o", str(tmp_path / "o3.wav")], "does not exist"),
        "bad npz": (["decode", str(bad), "-o", str(tmp_path / "o4.wav")], "not an arsound codes file"),
        "foreign npz": (["decode", str(foreign), "-o", str(tmp_path / "o5.wav")], "not an arsound codes file"),
        "newer npz": (["decode", str(newer), "-o", str(tmp_path / "o6.wav")], "newer"),
        "bad level": (["decode", str(good), "-o", str(tmp_path / "o7.wav"), "--level", "5"], "out of range"),
        "other model": (["decode", str(good), "-o", str(tmp_path / "o8.wav"), "--model", str(other)], "encoded by"),
    }
    for case, (argv, pattern) in cases.items():
        assert cli(argv) == 2, case
        err = capsys.readouterr().err.strip()
        assert err.startswith(f"arsound {argv[0]}: error: ") and "\n" not in err and pattern in err, (case, err)
    leftovers = sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(("o", ".")) and p.name != "other")
    assert leftovers == [], leftovers                                              # nothing half-written
