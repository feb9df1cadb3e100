"""Datasets that ship inside installed packages, prepared reproducibly (no downloads)."""
from .images import IMAGE_DATASETS, ImageData, load_images

__all__ = ["IMAGE_DATASETS", "ImageData", "load_images"]
