"""arsound: autoregressive audio and image generation on one shared core.

    model = arsound.load("made-mnist")          # a folder or a checkpoints/registry.json name
    arsound.save_pretrained(model, "my_model")  # config.json + model.safetensors + README.md
"""
__version__ = "0.1.0"

from .core.checkpoint import CheckpointError, load, save_pretrained  # noqa: E402

__all__ = ["__version__", "CheckpointError", "load", "save_pretrained"]
