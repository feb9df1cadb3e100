"""Datasets that ship inside installed packages, prepared reproducibly (no downloads): ``images`` (digits),
``audio`` (prepared sets and their manifests), ``prepare`` (making them), ``clips`` (training crops and
held-out clips of audio sets), ``anomaly`` (the digit sets of anomaly detection)."""
from .images import IMAGE_DATASETS, ImageData, load_images

__all__ = ["IMAGE_DATASETS", "ImageData", "load_images"]
