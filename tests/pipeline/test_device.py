"""Device resolution: one rule for every command."""

from __future__ import annotations

import pytest
import torch

from lanp_vad.models.errors import ErrorKind, UserError
from lanp_vad.pipeline.device import resolve_device


def test_auto_is_the_gpu_when_present_else_the_cpu() -> None:
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    assert resolve_device("cpu") == torch.device("cpu")


@pytest.mark.skipif(torch.cuda.is_available(), reason="needs a machine without a CUDA GPU")
def test_cuda_without_a_gpu_is_the_users_error_said_at_once() -> None:
    with pytest.raises(UserError, match="0 CUDA GPU") as error:
        resolve_device("cuda:0")
    assert error.value.kind == ErrorKind.INVALID_ARGUMENT


def test_an_unknown_device_name_is_the_users_error() -> None:
    with pytest.raises(UserError, match="unknown device 'gpu'"):
        resolve_device("gpu")
