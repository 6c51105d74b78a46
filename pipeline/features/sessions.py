"""Exported networks run by ONNX Runtime or OpenVINO on a CPU, numpy in and numpy out: no torch here.

The torch runtime (``runtime.py``) wraps these for its exported backbones; the torch-free scorer
(``exported.py``) runs a model directory's ``lanp export`` files with them directly.
"""

from __future__ import annotations

import importlib
import os
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Literal

import numpy as np

from lanp_vad.models.errors import ErrorKind, UserError

Runtime = Literal["auto", "torch", "onnxruntime", "openvino"]
"""Where a backbone runs: torch eager, or exported to ONNX and run by ONNX Runtime or OpenVINO (``auto``: the
fastest for the device)."""
RUNTIMES: tuple[str, ...] = ("auto", "torch", "onnxruntime", "openvino")
ExportedRuntime = str
"""``onnxruntime`` or ``openvino``."""
EXPORTED_RUNTIMES = ("openvino", "onnxruntime")
"""The fastest first (bench/extract.py): ``auto`` on a CPU takes the first one installed."""
INSTALL_HINTS = {
    "onnxruntime": "pip install onnxruntime (a dependency of lanp-vad: reinstall it)",
    "openvino": "pip install 'lanp-vad[openvino]'",
    "onnx": "pip install 'lanp-vad[torch]' (exporting a torch network needs onnx)",
    "torch": "pip install 'lanp-vad[torch]'",
}
CPU_BATCH_FRAMES = 64
"""Frames per call of an exported runtime: larger batches are no faster on a CPU, only bigger (their activations
raise the peak memory: bench/extract.py)."""

ArrayRunner = Callable[[np.ndarray], np.ndarray]
"""float32 inputs -> float32 outputs of one exported network (its first input and output)."""


def importable(module: str) -> bool:
    """Whether ``module`` can be imported (an optional dependency is installed)."""
    try:
        importlib.import_module(module)
    except ImportError:
        return False
    return True


def cpu_cores() -> int:
    """The cores this process may run on (its affinity, which containers and ``taskset`` narrow)."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def installed_runtime(requested: str) -> str:
    """``requested`` (``auto``: the fastest installed) if it can be imported, else a ``UserError`` with the hint."""
    if requested == "auto":
        found = next((runtime for runtime in EXPORTED_RUNTIMES if importable(runtime)), None)
        if found is None:
            raise UserError(f"no runtime for exported networks is installed: {INSTALL_HINTS['onnxruntime']}",
                            kind=ErrorKind.MISSING_DEPENDENCY)
        return found
    if requested not in EXPORTED_RUNTIMES:
        raise UserError(f"{requested!r} does not run exported networks: choose auto, "
                        f"{' or '.join(EXPORTED_RUNTIMES)}", kind=ErrorKind.INVALID_ARGUMENT)
    if not importable(requested):
        raise UserError(f"--runtime {requested} is not installed: {INSTALL_HINTS[requested]}",
                        kind=ErrorKind.MISSING_DEPENDENCY)
    return requested


def _onnxruntime_session(path: Path, threads: int) -> ArrayRunner:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    # idle threads sleep at once instead of busy-waiting: the decoding processes need those cores
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    name = session.get_inputs()[0].name

    def run(inputs: np.ndarray) -> np.ndarray:
        return session.run(None, {name: np.ascontiguousarray(inputs, dtype=np.float32)})[0]

    return run


def _openvino_session(path: Path, threads: int) -> ArrayRunner:
    import openvino

    core = openvino.Core()
    compiled = core.compile_model(str(path), "CPU", {
        "INFERENCE_NUM_THREADS": threads, "INFERENCE_PRECISION_HINT": "f32", "PERFORMANCE_HINT": "LATENCY",
        "ENABLE_HYPER_THREADING": False,
        # unpinned: a thread pinned to a core waits whenever the decoder (or anything else) runs there, and each
        # inference waits for its slowest thread, so pinning slows the engine down (measured with bench/extract.py)
        "ENABLE_CPU_PINNING": False,
    })
    request = compiled.create_infer_request()
    lock = threading.Lock()  # an infer request serves one call at a time (the service may score from threads)

    def run(inputs: np.ndarray) -> np.ndarray:
        with lock:
            request.infer({0: np.ascontiguousarray(inputs, dtype=np.float32)})
            return request.get_output_tensor(0).data.copy()

    return run


def exported_runner(runtime: ExportedRuntime, path: Path, *, threads: int, frames_per_item: int = 1) -> ArrayRunner:
    """The network in ``path`` (ONNX) run by ``runtime`` with ``threads`` threads, called on at most
    ``CPU_BATCH_FRAMES`` frames at a time (``frames_per_item`` frames per row of the input)."""
    run = (_onnxruntime_session if runtime == "onnxruntime" else _openvino_session)(path, threads)
    rows_per_call = max(1, CPU_BATCH_FRAMES // frames_per_item)

    def run_in_parts(inputs: np.ndarray) -> np.ndarray:
        if inputs.shape[0] <= rows_per_call:
            return run(inputs)
        return np.concatenate([run(inputs[first : first + rows_per_call])
                               for first in range(0, inputs.shape[0], rows_per_call)])

    return run_in_parts
