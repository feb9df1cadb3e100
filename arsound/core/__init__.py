"""The shared core: distributions, masked/causal layers, attention, streaming, ``ARModel`` and the one
sampling engine, sampling filters, the vector quantizer, the Trainer, checkpoints, files and metrics.
Imports nothing from ``arsound.image``, ``arsound.audio``, ``arsound.data`` or ``arsound.cli``."""
