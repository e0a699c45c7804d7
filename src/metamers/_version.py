"""The package version (internal module: read it as ``metamers.__version__``)."""

__version__ = "0.1.0"
