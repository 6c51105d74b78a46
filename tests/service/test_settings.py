"""Settings from the environment: an empty variable is the same as an unset one."""

from __future__ import annotations

from pathlib import Path

import pytest

from lanp_vad.service.settings import Settings
from tests.conftest import REPO_ROOT


def test_an_empty_api_key_variable_leaves_the_api_open(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("LANP_MODEL_DIR", str(tmp_path))
    monkeypatch.setenv("LANP_API_KEY", "")
    assert Settings().api_key is None  # type: ignore[call-arg]
    monkeypatch.setenv("LANP_API_KEY", "s3cret")
    assert Settings().api_key.get_secret_value() == "s3cret"  # type: ignore[call-arg,union-attr]


def test_every_setting_is_documented_in_the_settings_reference() -> None:
    reference = (REPO_ROOT / "docs/service.md").read_text()
    missing = [name for name in Settings.model_fields if f"| `LANP_{name.upper()}` |" not in reference]
    assert not missing, f"settings without a row in docs/service.md: {missing}"
