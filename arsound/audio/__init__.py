"""Audio models and tools: ``io`` (load / save), ``features`` (log-mel), ``wavenet`` (+ ``wavenet_fast``,
the cached generator), ``cli_helpers`` (what ``arsound sample`` / ``arsound bench`` call for audio).

Submodules are imported on use (``from arsound.audio.wavenet import WaveNet``), so importing
``arsound.audio`` stays cheap.
"""
