"""Chunked VQ-VAE encoding equals whole-file encoding exactly (seams included); chunked decoding matches the
whole decode without a seam jump; without the context margin both differ (so the tests can fail)."""
from __future__ import annotations

import pytest
import soundfile as sf
import torch

from arsound.audio.chunked import blocks_of, decode_chunked, encode_chunked, encode_file, seam_jump
from arsound.audio.io import iter_chunks
from tests.fakes import SR, music



def test_encoder_margin_covers_the_receptive_field(vqvae):
    """Changing one input sample changes codes only within the analytic receptive field."""
    H = vqvae.max_hop
    x = music(0.3, 6).unsqueeze(0)[:, :4096]
    p = 2048
    z = [vqvae.encoders[l](vqvae._pad(x)[0]) for l in range(vqvae.levels)]
    x2 = x.clone()
    x2[0, p] += 0.5
    z2 = [vqvae.encoders[l](vqvae._pad(x2)[0]) for l in range(vqvae.levels)]
    for l, h in enumerate(vqvae.hops):
        changed = (z[l] - z2[l]).abs().amax(1)[0].nonzero().flatten()
        assert len(changed) > 0
        rf = vqvae.encoders[l].receptive_field
        assert (changed * h - p).abs().max() <= rf and (changed * h + h - p).abs().min() <= rf
    assert vqvae.encoder_margin() % H == 0 and vqvae.encoder_margin() >= max(e.receptive_field for e in vqvae.encoders)


def test_chunked_encoding_equals_whole_file_exactly(vqvae, tmp_path):
    x = music(1.1, 7)                                                              # 17600 samples, not a hop multiple
    whole = vqvae.encode(x.unsqueeze(0))
    H, M = vqvae.max_hop, vqvae.encoder_margin()
    chunk = 40 * H
    chunked = encode_chunked(vqvae, blocks_of(x, chunk + 2 * M, chunk), len(x), chunk, M)
    assert len(x) > 5 * chunk                                                      # several seams
    for w, c in zip(whole, chunked):
        assert torch.equal(w[0], c)                                                # every code, seams included
    # the same from a file read in chunks through io.iter_chunks (float WAV: the same samples)
    path = tmp_path / "long.wav"
    sf.write(path, x.numpy(), SR, subtype="FLOAT")
    blocks = iter_chunks(path, (chunk + 2 * M) / SR, overlap=2 * M / SR)
    for w, c in zip(whole, encode_chunked(vqvae, blocks, len(x), chunk, M)):
        assert torch.equal(w[0], c)
    codes, length = encode_file(vqvae, path, chunk_seconds=chunk / SR)
    assert length == len(x) and all(torch.equal(w[0], c) for w, c in zip(whole, codes))
    # without the context margin the codes near the seams change (so the test above can fail)
    naive = encode_chunked(vqvae, blocks_of(x, chunk, chunk), len(x), chunk, 0)
    assert any(not torch.equal(w[0], c) for w, c in zip(whole, naive))


def test_chunked_decoding_matches_whole_and_has_no_seam_jump(vqvae):
    x = music(1.0, 8)
    for l in range(vqvae.levels):
        codes = vqvae.encode(x.unsqueeze(0))[l][0]
        whole = vqvae.decode(codes, l)
        y, stats = decode_chunked(vqvae, codes, l, chunk=64)
        assert y.shape == whole.shape and len(stats.seams) == len(codes) // 64 - (len(codes) % 64 == 0)
        torch.testing.assert_close(y, whole, rtol=0, atol=1e-5)
        assert seam_jump(y, stats.seams) == pytest.approx(seam_jump(whole, stats.seams), rel=1e-3)
        naive, ns = decode_chunked(vqvae, codes, l, chunk=64, margin=0, crossfade=0)
        assert (naive - whole).abs().max() > 1e-3                                  # no context: seams differ
