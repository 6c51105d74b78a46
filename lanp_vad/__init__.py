"""lanp-vad: unsupervised video anomaly detection with LANP (ECCV 2024), from surveillance video to per-frame scores.

One import namespace over the rooms of the house, top to bottom: ``lanp_vad.cli`` (the ``lanp`` shell) >
``lanp_vad.service`` (the web API) > ``lanp_vad.pipeline`` (data flow and jobs, one sub-package per concern) >
``lanp_vad.models`` (the method, pure torch/numpy). The rooms' folders sit at the repository root (``models/``,
``pipeline/``, ``service/``) and are mapped into this package by ``pyproject.toml``.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("lanp-vad")
except PackageNotFoundError:  # a source tree that was never installed
    __version__ = "0+unknown"
