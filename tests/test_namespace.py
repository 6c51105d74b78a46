"""One import namespace: the installed product is ``lanp_vad`` and nothing else, whatever the user's folder holds."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from setuptools import find_packages

from tests.conftest import REPO_ROOT

ROOMS = {"lanp_vad.models": "models", "lanp_vad.pipeline": "pipeline", "lanp_vad.service": "service",
         "lanp_vad.cli": "lanp_vad/cli"}


def test_the_package_links_every_room_and_setuptools_finds_all_of_it() -> None:
    """``lanp_vad/models`` is ``models/`` (and so on), and every package folder of a room is installed."""
    for package, folder in ROOMS.items():
        linked = REPO_ROOT / package.replace(".", "/")
        assert linked.resolve() == (REPO_ROOT / folder).resolve(), f"{linked} does not lead to {folder}/"
    expected = {"lanp_vad"} | {
        ".".join([package, *init.parent.relative_to(REPO_ROOT / folder).parts])
        for package, folder in ROOMS.items() for init in (REPO_ROOT / folder).rglob("__init__.py")
    }
    assert set(find_packages(where=str(REPO_ROOT), include=["lanp_vad*"])) == expected


def test_the_api_imports_from_a_folder_with_its_own_models_pipeline_and_service(tmp_path: Path) -> None:
    """A notebook next to the user's own ``models.py`` / ``pipeline/`` / ``service.py`` still gets ours."""
    (tmp_path / "models.py").write_text("raise ImportError('the user models.py was imported')\n")
    (tmp_path / "pipeline").mkdir()
    (tmp_path / "pipeline" / "__init__.py").write_text("raise ImportError('the user pipeline was imported')\n")
    (tmp_path / "service.py").write_text("raise ImportError('the user service.py was imported')\n")
    code = (
        "import importlib.util, lanp_vad\n"
        "from lanp_vad.pipeline import api\n"
        "from lanp_vad.models.errors import LANPError\n"
        "from lanp_vad.service.settings import Settings\n"
        "print(api.__name__, lanp_vad.__version__)\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr
    assert run.stdout.startswith("lanp_vad.pipeline.api ")


def test_no_bare_room_is_importable_after_installation(tmp_path: Path) -> None:
    """Outside the source tree, ``models``, ``pipeline`` and ``service`` are not ours to take."""
    code = (
        "import importlib.util, sys\n"
        "sys.path = [p for p in sys.path if p not in ('', '.')]\n"
        "print([name for name in ('models', 'pipeline', 'service', 'cli') if importlib.util.find_spec(name)])\n"
    )
    run = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert run.returncode == 0, run.stderr
    assert run.stdout.strip() == "[]"
