"""The shared core: distributions, masked/causal layers, attention, streaming, ARModel, Trainer,
checkpoints and metrics. Imports nothing from ``arsound.image`` or ``arsound.audio``."""
