"""Inference runtimes for the backbones: torch eager, or the same network exported to ONNX and run by ONNX Runtime
or OpenVINO, which run the depthwise and 3D convolutions of these networks several times faster on a CPU.

The runtime decides only *how* features are computed, never what they mean: it is not part of the feature spec
(features agree across runtimes to 1e-4, tested on real frames) and is recorded beside the spec in the manifest
and in every score. A backbone is exported from its torch module on first use (``torch.onnx.export``) and cached
under ``$LANP_CACHE_DIR`` (default ``~/.cache/lanp``) by a key of its weights' identity (``file:sha256`` or
``random-init:SEED``), its input shape and the versions of the code that built it, so a second run loads the file
and other weights get their own export. ``auto`` is torch on CUDA and, on a CPU, the fastest runtime measured
there (``bench/extract.py``) that is installed; a runtime asked for by name that is not installed is the user's
error, with the install command.
"""

from __future__ import annotations

import hashlib
import inspect
import json
import logging
import os
import tempfile
import warnings
from collections.abc import Callable
from pathlib import Path

import torch

from lanp_vad.models import backbones
from lanp_vad.models.backbones import VideoBackbone
from lanp_vad.models.errors import ErrorKind, UserError
from lanp_vad.pipeline.features.sessions import (
    EXPORTED_RUNTIMES,
    INSTALL_HINTS,
    RUNTIMES,
    exported_runner,
    importable,
)

log = logging.getLogger(__name__)

CPU_PREFERENCE = (*EXPORTED_RUNTIMES, "torch")
"""``auto``'s order on a CPU, the fastest first (bench/extract.py): both exported runtimes far ahead of torch eager."""
EXPORT_FORMAT = 1
"""Bumped when the export settings change, so that older cached files are not reused."""
OPSET = 17

Runner = Callable[[torch.Tensor], torch.Tensor]
"""Normalised float32 clips (B, 3, L, S, S) -> pooled features (B, D) on the clips' device."""


def cache_dir() -> Path:
    """Where exported backbones are kept: ``$LANP_CACHE_DIR``, else ``$XDG_CACHE_HOME/lanp``, else ``~/.cache/lanp``."""
    if os.environ.get("LANP_CACHE_DIR"):
        return Path(os.environ["LANP_CACHE_DIR"])
    return Path(os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache") / "lanp"


def _installed(runtime: str) -> bool:
    """Whether ``runtime`` and the ``onnx`` package the export needs can be imported."""
    return importable(runtime) and importable("onnx")


def choose_runtime(requested: str, device: torch.device) -> str:
    """The runtime to build: ``auto`` resolved for ``device``; an explicit one checked (installed, CPU only)."""
    if requested not in RUNTIMES:
        raise UserError(f"unknown runtime {requested!r}: choose one of {', '.join(RUNTIMES)}",
                        kind=ErrorKind.INVALID_ARGUMENT)
    if requested == "auto":
        if device.type != "cpu":
            return "torch"
        return next(runtime for runtime in CPU_PREFERENCE if runtime == "torch" or _installed(runtime))
    if requested != "torch":
        if device.type != "cpu":
            raise UserError(f"--runtime {requested} runs on the CPU only; on {device} use torch (or auto)",
                            kind=ErrorKind.INVALID_ARGUMENT)
        if not _installed(requested):
            missing = requested if not importable(requested) else "onnx"
            raise UserError(f"--runtime {requested} is not installed: {INSTALL_HINTS[missing]}",
                            kind=ErrorKind.MISSING_DEPENDENCY)
    return requested


def export_key(backbone: VideoBackbone, weights: str, frames: int, crop_size: int) -> str:
    """What an exported file depends on: the weights' identity, the input shape and the code that built it."""
    source = Path(inspect.getsourcefile(backbones) or "")
    parts = {
        "backbone": backbone.info.name, "weights": weights, "frames": frames, "crop_size": crop_size,
        "format": EXPORT_FORMAT, "opset": OPSET, "torch": torch.__version__,
        "code": hashlib.sha256(source.read_bytes()).hexdigest() if source.is_file() else "",
    }
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:20]


def exported_model(backbone: VideoBackbone, weights: str, frames: int, crop_size: int) -> Path:
    """The backbone as an ONNX file in the cache, exported now unless an export of the same key is there."""
    key = export_key(backbone, weights, frames, crop_size)
    path = cache_dir() / "onnx" / f"{backbone.info.name}-{key}.onnx"
    if path.is_file():
        log.debug("reusing the exported %s at %s", backbone.info.name, path)
        return path
    path.parent.mkdir(parents=True, exist_ok=True)
    log.info("exporting %s (%s) to ONNX for faster CPU inference: %s", backbone.info.name, weights, path)
    example = torch.zeros(1, 3, frames, crop_size, crop_size)
    module = backbone.cpu().eval()
    handle, staged = tempfile.mkstemp(dir=path.parent, prefix=f".{path.stem}.", suffix=".onnx")
    os.close(handle)
    try:
        with warnings.catch_warnings(), torch.inference_mode(False), torch.no_grad():
            warnings.simplefilter("ignore")  # the exporter's tracer warnings are about shapes we keep fixed
            torch.onnx.export(module, (example,), staged, input_names=["clips"], output_names=["features"],
                              dynamic_axes={"clips": {0: "batch"}, "features": {0: "batch"}}, opset_version=OPSET,
                              dynamo=False)
        os.replace(staged, path)  # atomic: a concurrent run sees the whole file or none
    finally:
        Path(staged).unlink(missing_ok=True)
    return path


def _torch_runner(backbone: VideoBackbone, device: torch.device) -> Runner:
    def run(clips: torch.Tensor) -> torch.Tensor:
        if device.type == "cuda":
            with torch.autocast("cuda", dtype=torch.bfloat16):
                return backbone(clips)
        return backbone(clips)

    return run


def create_runner(runtime: str, backbone: VideoBackbone, *, weights: str, device: torch.device, frames: int,
                  crop_size: int, threads: int | None = None) -> Runner:
    """The forward pass of ``backbone`` (already on ``device``) in ``runtime`` (resolved: see ``choose_runtime``),
    with ``threads`` inference threads for the exported runtimes (default: torch's, which a Ray actor sets)."""
    if runtime == "torch":
        return _torch_runner(backbone, device)
    path = exported_model(backbone, weights, frames, crop_size)
    run = exported_runner(runtime, path, threads=threads or torch.get_num_threads(), frames_per_item=frames)

    def run_exported(clips: torch.Tensor) -> torch.Tensor:
        return torch.from_numpy(run(clips.numpy()))

    return run_exported
