"""arsound: autoregressive audio and image generation on one shared core.

    model = arsound.load("wavenet-speech-en")   # a folder or a checkpoints/registry.json name
    arsound.save_pretrained(model, "my_model")  # config.json + model.safetensors + README.md
"""
from .version import __version__
from .core.checkpoint import CheckpointError, load, save_pretrained

__all__ = ["__version__", "CheckpointError", "load", "save_pretrained"]
