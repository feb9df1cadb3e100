"""The package version (a leaf module: core reads it into every saved checkpoint)."""
__version__ = "0.2.0"
