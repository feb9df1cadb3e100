"""Audio models and tools: ``io`` (load / save), ``features`` (log-mel, pre-emphasis, Griffin-Lim), ``metrics``
(LSD, MR-STFT, SI-SDR), ``wavenet`` (+ ``wavenet_fast``, the cached step; ``wavenet_triton``, the fused GPU
kernel), ``vocoder`` (vocoding and its baseline), ``vqvae`` (the tokenizer) with ``chunked`` (any length),
``codes`` (codes files) and ``vqvae_report`` (codebook health, reconstruction).

Submodules are imported on use (``from arsound.audio.wavenet import WaveNet``), so importing
``arsound.audio`` stays cheap. Nothing here imports ``arsound.data`` (``tests/test_layout.py``).
"""
