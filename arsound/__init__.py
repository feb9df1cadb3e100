"""arsound: autoregressive audio and image generation on one shared core.

    import arsound
    arsound.list_models()                        # {name: description} of the shipped checkpoints
    model = arsound.load("pixelsnail-mnist")     # a registry name, or a folder
    x = model.sample(16)                         # every model: log_prob, sample, generation_order
    arsound.save_pretrained(model, "my_model")   # config.json + model.safetensors + README.md

Subpackages load on first use: ``arsound.core``, ``arsound.image``, ``arsound.audio``, ``arsound.music``,
``arsound.data``.
"""
import importlib as _importlib

from .version import __version__
from .core.checkpoint import CheckpointError, load, save_pretrained

__all__ = ["__version__", "CheckpointError", "list_models", "load", "save_pretrained"]
_SUBPACKAGES = ("core", "image", "audio", "music", "data")


def list_models() -> dict[str, str]:
    """The shipped checkpoints: ``{name: description}``, each loadable with :func:`load` by name."""
    from .core.checkpoint import registry

    return {name: entry.get("description", "") for name, entry in registry().items()}


def __getattr__(name: str):
    if name in _SUBPACKAGES:
        return _importlib.import_module(f".{name}", __name__)
    raise AttributeError(f"module 'arsound' has no attribute '{name}'")
