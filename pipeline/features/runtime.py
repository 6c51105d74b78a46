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
import importlib
import inspect
import json
import logging
import os
import tempfile
import threading
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np
import torch

from lanp_vad.models import backbones
from lanp_vad.models.backbones import VideoBackbone
from lanp_vad.models.errors import ErrorKind, UserError

log = logging.getLogger(__name__)

Runtime = Literal["auto", "torch", "onnxruntime", "openvino"]
RUNTIMES: tuple[str, ...] = ("auto", "torch", "onnxruntime", "openvino")
CPU_PREFERENCE = ("openvino", "onnxruntime", "torch")
"""``auto``'s order on a CPU, the fastest first (bench/extract.py, 2-core machine): OpenVINO ran X3D-XS 2x and
EfficientNet-Lite0 1.15-1.3x faster than ONNX Runtime, both far ahead of torch eager."""
INSTALL_HINTS = {
    "onnxruntime": "pip install onnxruntime onnx (dependencies of lanp-vad: reinstall it)",
    "openvino": "pip install openvino onnx (dependencies of lanp-vad: reinstall it)",
}
CPU_BATCH_FRAMES = 64
"""Frames per call of an exported runtime: larger batches are no faster on a CPU, only bigger (activations of a
16-snippet batch at 224 px took 1.3 GiB more peak RSS than 64 frames in bench/extract.py)."""
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
    try:
        importlib.import_module(runtime)
        importlib.import_module("onnx")
    except ImportError:
        return False
    return True


def cpu_cores() -> int:
    """The cores this process may run on (its affinity, which containers and ``taskset`` narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


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
            raise UserError(f"--runtime {requested} is not installed: {INSTALL_HINTS[requested]}",
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


def _onnxruntime_runner(path: Path, threads: int) -> Runner:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # idle threads sleep at once instead of busy-waiting: the decoding processes need those cores
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def run(clips: torch.Tensor) -> torch.Tensor:
        (features,) = session.run(None, {"clips": np.ascontiguousarray(clips.numpy(), dtype=np.float32)})
        return torch.from_numpy(features)

    return run


def _openvino_runner(path: Path, threads: int) -> Runner:
    import openvino

    core = openvino.Core()
    compiled = core.compile_model(str(path), "CPU", {
        "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY",
        "ENABLE_HYPER_THREADING": False,
        # unpinned: a thread pinned to a core waits whenever the decoder (or anything else) runs there, and each
        # inference waits for its slowest thread; off ran the engine 1.5-1.6x faster (two alternating A/B pairs,
        # 2 Ped2 clips, default spec, load 6-8)
        "ENABLE_CPU_PINNING": False,
    })
    request = compiled.create_infer_request()
    lock = threading.Lock()  # an infer request serves one call at a time (the service may score from threads)

    def run(clips: torch.Tensor) -> torch.Tensor:
        with lock:
            request.infer({0: np.ascontiguousarray(clips.numpy(), dtype=np.float32)})
            return torch.from_numpy(request.get_output_tensor(0).data.copy())

    return run


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
    build = _onnxruntime_runner if runtime == "onnxruntime" else _openvino_runner
    run = build(path, threads or torch.get_num_threads())
    snippets_per_call = max(1, CPU_BATCH_FRAMES // frames)

    def run_in_parts(clips: torch.Tensor) -> torch.Tensor:
        return torch.cat([run(part) for part in clips.split(snippets_per_call)])

    return run_in_parts
