"""Where torch work runs: one rule for every command (extraction, training, evaluation, scoring, the service).

``auto`` is the GPU when one is present, else the CPU; an explicit ``cuda``/``cuda:N`` without that GPU is the
user's error (said at once, not as a CUDA traceback half-way through a run).
"""

from __future__ import annotations

import torch

from lanp_vad.models.errors import ErrorKind, UserError


def resolve_device(device: str | torch.device) -> torch.device:
    """``auto`` -> ``cuda`` when available, else ``cpu``; any other name checked against the machine."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except (RuntimeError, TypeError) as error:
        raise UserError(f"unknown device {device!r}: use auto, cpu, cuda or cuda:N",
                        kind=ErrorKind.INVALID_ARGUMENT) from error
    if resolved.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0 or (resolved.index or 0) >= count:
            raise UserError(f"device {device!r} requested but this machine has {count} CUDA GPU(s)",
                            kind=ErrorKind.INVALID_ARGUMENT)
    return resolved
